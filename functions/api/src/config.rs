//! The API's own configuration: the operator's admin key, which only the authorizer checks.
//! Everything the API shares with the workers and the terminator (table, secrets, edge, DNS,
//! ACME CA) is [`edgecert_deployment::DeploymentConfig`], read from the same variables. Every
//! variable here also appears in template.yaml and in the local runner's defaults, and
//! nowhere else.

use edgecert_core::model::ApiKeyHash;
pub use edgecert_deployment::ConfigError;
use edgecert_deployment::Variables;

/// Names of the API's own environment variables.
pub mod vars {
    /// Hex SHA-256 of the operator's admin key (the local runner's way to give it).
    pub const ADMIN_KEY_SHA256: &str = "EDGECERT_ADMIN_KEY_SHA256";
    /// ARN or name of the Secrets Manager secret holding the operator's admin key (the Lambda
    /// authorizer's way: template.yaml gives it only to the authorizer).
    pub const ADMIN_KEY_SECRET: &str = "EDGECERT_ADMIN_KEY_SECRET";
}

/// Where the authorizer finds the operator's admin key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminKeySource {
    /// No admin key: the admin endpoints are disabled.
    None,
    /// Its hash, given directly.
    Hash(ApiKeyHash),
    /// The secret holding it, read at cold start and refreshed (rotation needs no redeploy).
    Secret(String),
}

/// The admin key's source from the process environment.
pub fn admin_key_source_from_env() -> Result<AdminKeySource, ConfigError> {
    admin_key_source(|name| std::env::var(name).ok())
}

/// The admin key's source read through `lookup` (tests pass a map): a hash or a secret, never
/// both.
pub fn admin_key_source(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<AdminKeySource, ConfigError> {
    let variables = Variables::new(&lookup);
    let secret = variables.get(vars::ADMIN_KEY_SECRET);
    let hash = admin_key(&lookup)?;
    match (hash, secret) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            vars::ADMIN_KEY_SECRET,
            format!(
                "give the admin key once: {} is set too",
                vars::ADMIN_KEY_SHA256
            ),
        )),
        (Some(hash), None) => Ok(AdminKeySource::Hash(hash)),
        (None, Some(secret)) => Ok(AdminKeySource::Secret(secret)),
        (None, None) => Ok(AdminKeySource::None),
    }
}

/// The admin key's hash read through `lookup`, when given as a hash.
pub fn admin_key(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<ApiKeyHash>, ConfigError> {
    match Variables::new(&lookup).get(vars::ADMIN_KEY_SHA256) {
        None => Ok(None),
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(ApiKeyHash::from_stored(hex.to_ascii_lowercase())))
        }
        Some(_) => Err(ConfigError::new(
            vars::ADMIN_KEY_SHA256,
            "must be 64 hex digits",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_admin_key_is_64_hex_digits_or_unset() {
        let read = |value: &'static str| admin_key(move |_| Some(value.to_owned()));
        assert_eq!(read("").unwrap(), None);
        let upper = "AB".repeat(32);
        let hash = admin_key(|_| Some(upper.clone())).unwrap().unwrap();
        assert_eq!(hash.as_str(), "ab".repeat(32));
        let error = read("abc").unwrap_err();
        assert_eq!(error.variable, vars::ADMIN_KEY_SHA256);
        assert_eq!(
            error.to_string(),
            "configuration: EDGECERT_ADMIN_KEY_SHA256: must be 64 hex digits"
        );
    }

    #[test]
    fn the_admin_key_is_given_as_a_hash_or_as_a_secret_never_both() {
        let source = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect();
            admin_key_source(move |name| map.get(name).cloned())
        };
        let secret =
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:edgecert/admin-key-Ab12Cd";
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(
            source(&[(vars::ADMIN_KEY_SECRET, secret)]).unwrap(),
            AdminKeySource::Secret(secret.to_owned())
        );
        assert_eq!(
            source(&[(vars::ADMIN_KEY_SHA256, hash)]).unwrap(),
            AdminKeySource::Hash(ApiKeyHash::from_stored(hash.to_owned()))
        );
        assert_eq!(source(&[]).unwrap(), AdminKeySource::None);
        let error = source(&[
            (vars::ADMIN_KEY_SECRET, secret),
            (vars::ADMIN_KEY_SHA256, hash),
        ])
        .unwrap_err();
        assert_eq!(error.variable, vars::ADMIN_KEY_SECRET);
    }
}
