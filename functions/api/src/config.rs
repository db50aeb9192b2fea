//! The API's configuration, read once at start from the environment. Every variable here also
//! appears in template.yaml and in the local runner's defaults, and nowhere else.

use std::net::{IpAddr, SocketAddr};

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
    /// Hex SHA-256 of the operator's admin key.
    pub const ADMIN_KEY_SHA256: &str = "EDGECERT_ADMIN_KEY_SHA256";
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
}

/// What the API needs to know about its deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Where customers point DNS.
    pub edge: EdgeSettings,
    /// The admin key's hash, if admin endpoints are enabled.
    pub admin_key: Option<ApiKeyHash>,
    /// Allowed origin address kinds.
    pub origin_policy: OriginPolicy,
    /// The DNS server to ask, if not the system's.
    pub dns_server: Option<SocketAddr>,
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
        Ok(ApiConfig {
            edge: EdgeSettings {
                hostname,
                addresses,
            },
            admin_key,
            origin_policy,
            dns_server,
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
    }
}
