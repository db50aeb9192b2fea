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
    /// Hex SHA-256 of the operator's admin key (the authorizer's).
    pub const ADMIN_KEY_SHA256: &str = "EDGECERT_ADMIN_KEY_SHA256";
}

/// The admin key's hash from the process environment; `None` disables the admin endpoints.
pub fn admin_key_from_env() -> Result<Option<ApiKeyHash>, ConfigError> {
    admin_key(|name| std::env::var(name).ok())
}

/// The admin key's hash read through `lookup` (tests pass a map).
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
}
