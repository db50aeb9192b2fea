//! The API's configuration, read once at start from the environment. Every variable here also
//! appears in template.yaml and in the local runner's defaults, and nowhere else.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use edgecert_core::model::ApiKeyHash;
use edgecert_core::origin::OriginPolicy;
use edgecert_core::usecases::EdgeSettings;

/// A configuration error naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// Names of the environment variables.
pub mod vars {
    /// CNAME target customers point subdomains at.
    pub const EDGE_HOSTNAME: &str = "EDGECERT_EDGE_HOSTNAME";
    /// Comma-separated edge addresses for apex names.
    pub const EDGE_IPS: &str = "EDGECERT_EDGE_IPS";
    /// Hex SHA-256 of the operator's admin key (the local runner's way to give it).
    pub const ADMIN_KEY_SHA256: &str = "EDGECERT_ADMIN_KEY_SHA256";
    /// ARN or name of the Secrets Manager secret holding the operator's admin key (the Lambda
    /// authorizer's way: template.yaml gives it only to the authorizer).
    pub const ADMIN_KEY_SECRET: &str = "EDGECERT_ADMIN_KEY_SECRET";
    /// `true` to allow loopback origins (local stack only).
    pub const ALLOW_LOOPBACK_ORIGINS: &str = "EDGECERT_ALLOW_LOOPBACK_ORIGINS";
    /// `true` to allow private, CGNAT and unique-local origins.
    pub const ALLOW_PRIVATE_ORIGINS: &str = "EDGECERT_ALLOW_PRIVATE_ORIGINS";
    /// `host:port` of the only DNS server to ask; unset means the system's resolvers.
    pub const DNS_SERVER: &str = "EDGECERT_DNS_SERVER";
    /// DynamoDB table name.
    pub const TABLE_NAME: &str = "EDGECERT_TABLE_NAME";
    /// Prefix of Secrets Manager secret names.
    pub const SECRET_PREFIX: &str = "EDGECERT_SECRET_PREFIX";
    /// ACME directory URL; set only for functions that talk to the CA (revocation).
    pub const ACME_DIRECTORY: &str = "EDGECERT_ACME_DIRECTORY";
    /// PEM file of the root of the CA's HTTPS listener (Pebble locally); unset: system roots.
    pub const ACME_CA_ROOT: &str = "EDGECERT_ACME_CA_ROOT";
    /// Contact e-mail of the ACME account.
    pub const ACME_CONTACT: &str = "EDGECERT_ACME_CONTACT";
    /// Comma-separated CA identities accepted in CAA records (default `letsencrypt.org`).
    pub const CAA_IDENTITIES: &str = "EDGECERT_CAA_IDENTITIES";
}

/// How to reach the ACME CA, for the functions that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The ACME directory URL (https).
    pub directory_url: String,
    /// Root of the CA's HTTPS listener, if not a system root.
    pub ca_root_pem: Option<PathBuf>,
    /// Contact e-mail of the ACME account.
    pub contact_email: Option<String>,
    /// CA identities accepted in CAA records; empty keeps the issuer's default.
    pub caa_identities: Vec<String>,
}

/// What the API needs to know about its deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Where customers point DNS.
    pub edge: EdgeSettings,
    /// The admin key's hash, if given as a hash.
    pub admin_key: Option<ApiKeyHash>,
    /// The secret holding the admin key, if given as a secret (never with `admin_key`).
    pub admin_key_secret: Option<String>,
    /// Allowed origin address kinds.
    pub origin_policy: OriginPolicy,
    /// The DNS server to ask, if not the system's.
    pub dns_server: Option<SocketAddr>,
    /// The ACME CA, when this function talks to it.
    pub acme: Option<AcmeSettings>,
}

impl ApiConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<ApiConfig, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ApiConfig, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let hostname = get(vars::EDGE_HOSTNAME).ok_or(ConfigError {
            variable: vars::EDGE_HOSTNAME,
            problem: "is required".to_owned(),
        })?;
        let addresses = match get(vars::EDGE_IPS) {
            None => vec![],
            Some(list) => list
                .split(',')
                .map(|item| {
                    item.trim().parse::<IpAddr>().map_err(|_| ConfigError {
                        variable: vars::EDGE_IPS,
                        problem: format!("'{}' is not an IP address", item.trim()),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let admin_key = match get(vars::ADMIN_KEY_SHA256) {
            None => None,
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(ApiKeyHash::from_stored(hex.to_ascii_lowercase()))
            }
            Some(_) => {
                return Err(ConfigError {
                    variable: vars::ADMIN_KEY_SHA256,
                    problem: "must be 64 hex digits".to_owned(),
                });
            }
        };
        let admin_key_secret = get(vars::ADMIN_KEY_SECRET);
        if admin_key.is_some() && admin_key_secret.is_some() {
            return Err(ConfigError {
                variable: vars::ADMIN_KEY_SECRET,
                problem: format!(
                    "give the admin key once: {} is set too",
                    vars::ADMIN_KEY_SHA256
                ),
            });
        }
        let flag = |name: &'static str| -> Result<bool, ConfigError> {
            match get(name).as_deref() {
                None | Some("false") | Some("0") => Ok(false),
                Some("true") | Some("1") => Ok(true),
                Some(other) => Err(ConfigError {
                    variable: name,
                    problem: format!("'{other}' is not true or false"),
                }),
            }
        };
        let origin_policy = OriginPolicy {
            allow_loopback: flag(vars::ALLOW_LOOPBACK_ORIGINS)?,
            allow_private: flag(vars::ALLOW_PRIVATE_ORIGINS)?,
        };
        let dns_server = match get(vars::DNS_SERVER) {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| ConfigError {
                variable: vars::DNS_SERVER,
                problem: format!("'{text}' is not host:port"),
            })?),
        };
        let acme = match get(vars::ACME_DIRECTORY) {
            None => None,
            Some(url) if url.starts_with("https://") => Some(AcmeSettings {
                directory_url: url,
                ca_root_pem: get(vars::ACME_CA_ROOT).map(PathBuf::from),
                contact_email: match get(vars::ACME_CONTACT) {
                    Some(email) if !email.contains('@') || email.contains(char::is_whitespace) => {
                        return Err(ConfigError {
                            variable: vars::ACME_CONTACT,
                            problem: format!("'{email}' is not an e-mail address"),
                        });
                    }
                    email => email,
                },
                caa_identities: get(vars::CAA_IDENTITIES)
                    .map(|list| {
                        list.split(',')
                            .map(str::trim)
                            .filter(|identity| !identity.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(other) => {
                return Err(ConfigError {
                    variable: vars::ACME_DIRECTORY,
                    problem: format!("'{other}' is not an https:// URL"),
                });
            }
        };
        Ok(ApiConfig {
            edge: EdgeSettings {
                hostname,
                addresses,
            },
            admin_key,
            admin_key_secret,
            origin_policy,
            dns_server,
            acme,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<ApiConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ApiConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(config(&[]).unwrap_err().variable, vars::EDGE_HOSTNAME);
        let error = config(&[
            (vars::EDGE_HOSTNAME, "edge.example"),
            (vars::EDGE_IPS, "1.2.3.4, nope"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, vars::EDGE_IPS);
        assert!(error.to_string().contains("nope"));
        let error = config(&[
            (vars::EDGE_HOSTNAME, "edge.example"),
            (vars::ALLOW_LOOPBACK_ORIGINS, "yes"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, vars::ALLOW_LOOPBACK_ORIGINS);
    }

    #[test]
    fn a_full_configuration_reads_back() {
        let config = config(&[
            (vars::EDGE_HOSTNAME, "edge.example"),
            (vars::EDGE_IPS, "203.0.113.1,2001:db8::1"),
            (vars::ALLOW_LOOPBACK_ORIGINS, "true"),
            (vars::DNS_SERVER, "127.0.0.1:8053"),
        ])
        .unwrap();
        assert_eq!(config.edge.addresses.len(), 2);
        assert!(config.origin_policy.allow_loopback && !config.origin_policy.allow_private);
        assert_eq!(config.dns_server, Some("127.0.0.1:8053".parse().unwrap()));
        assert_eq!(config.admin_key, None);
        assert_eq!(config.acme, None);
    }

    #[test]
    fn the_admin_key_is_given_as_a_hash_or_as_a_secret_never_both() {
        let secret =
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:edgecert/admin-key-Ab12Cd";
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let from_secret = config(&[
            (vars::EDGE_HOSTNAME, "edge.example"),
            (vars::ADMIN_KEY_SECRET, secret),
        ])
        .unwrap();
        assert_eq!(from_secret.admin_key_secret.as_deref(), Some(secret));
        assert_eq!(from_secret.admin_key, None);
        let error = config(&[
            (vars::EDGE_HOSTNAME, "edge.example"),
            (vars::ADMIN_KEY_SECRET, secret),
            (vars::ADMIN_KEY_SHA256, hash),
        ])
        .unwrap_err();
        assert_eq!(error.variable, vars::ADMIN_KEY_SECRET);
    }

    #[test]
    fn acme_settings_are_read_when_a_directory_is_given() {
        let acme = config(&[
            (vars::EDGE_HOSTNAME, "edge.example"),
            (
                vars::ACME_DIRECTORY,
                "https://acme-staging-v02.api.letsencrypt.org/directory",
            ),
            (vars::ACME_CONTACT, "ops@example.com"),
            (
                vars::CAA_IDENTITIES,
                "letsencrypt.org, pebble.letsencrypt.org,",
            ),
        ])
        .unwrap()
        .acme
        .unwrap();
        assert_eq!(acme.contact_email.as_deref(), Some("ops@example.com"));
        assert_eq!(
            acme.caa_identities,
            ["letsencrypt.org", "pebble.letsencrypt.org"]
        );
        assert_eq!(acme.ca_root_pem, None);
        for (variable, value) in [
            (vars::ACME_DIRECTORY, "http://acme.example/directory"),
            (vars::ACME_CONTACT, "not an address"),
        ] {
            let mut pairs = vec![
                (vars::EDGE_HOSTNAME, "edge.example"),
                (vars::ACME_DIRECTORY, "https://acme.example/directory"),
            ];
            pairs.retain(|(name, _)| *name != variable);
            pairs.push((variable, value));
            assert_eq!(config(&pairs).unwrap_err().variable, variable);
        }
    }
}
