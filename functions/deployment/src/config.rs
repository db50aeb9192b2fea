//! The shared variables ([`vars`]), their reader ([`Variables`]) and what they configure
//! ([`DeploymentConfig`]). Each variable here also appears in template.yaml (for the processes
//! that need it there) and in the local runner's defaults, and nowhere else; a test in
//! `integration/local/tests/configuration.rs` holds all three together.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use edgecert_acme::IssuerConfig;
use edgecert_aws::KeyStorage;
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::ZoneGrants;
use edgecert_core::usecases::EdgeSettings;
use edgecert_core::usecases::issuance::OrderBudget;

/// Names of the variables every deployed process shares.
pub mod vars {
    /// DynamoDB table name.
    pub const TABLE_NAME: &str = "EDGECERT_TABLE_NAME";
    /// Prefix of Secrets Manager secret names (default `edgecert/`).
    pub const SECRET_PREFIX: &str = "EDGECERT_SECRET_PREFIX";
    /// CNAME target customers point subdomains at (what "points at the edge" means).
    pub const EDGE_HOSTNAME: &str = "EDGECERT_EDGE_HOSTNAME";
    /// Comma-separated edge addresses for apex names.
    pub const EDGE_IPS: &str = "EDGECERT_EDGE_IPS";
    /// `true` to allow loopback origins (local stack only).
    pub const ALLOW_LOOPBACK_ORIGINS: &str = "EDGECERT_ALLOW_LOOPBACK_ORIGINS";
    /// `true` to allow private, CGNAT and unique-local origins.
    pub const ALLOW_PRIVATE_ORIGINS: &str = "EDGECERT_ALLOW_PRIVATE_ORIGINS";
    /// `host:port` of the only DNS server to ask; unset means the system's resolvers.
    pub const DNS_SERVER: &str = "EDGECERT_DNS_SERVER";
    /// ACME directory URL; set only for the processes that talk to the CA.
    pub const ACME_DIRECTORY: &str = "EDGECERT_ACME_DIRECTORY";
    /// PEM file of the root of the CA's HTTPS listener (Pebble locally); unset: system roots.
    pub const ACME_CA_ROOT: &str = "EDGECERT_ACME_CA_ROOT";
    /// Contact e-mail of the ACME account.
    pub const ACME_CONTACT: &str = "EDGECERT_ACME_CONTACT";
    /// Comma-separated CA identities accepted in CAA records (default `letsencrypt.org`).
    pub const CAA_IDENTITIES: &str = "EDGECERT_CAA_IDENTITIES";
    /// New ACME orders the processes that order (the edge's first requests, the issuer, the
    /// renewer) may place together per budget period (default 300).
    pub const ORDER_BUDGET: &str = "EDGECERT_ORDER_BUDGET";
    /// The budget period in seconds (default 10800: 300 orders per 3 hours, Let's Encrypt's
    /// limit of new orders per account).
    pub const ORDER_BUDGET_PERIOD_SECONDS: &str = "EDGECERT_ORDER_BUDGET_PERIOD_SECONDS";
    /// Route 53 hosted zones of the operator's AWS account granted to accounts,
    /// `acct_…=Z…` comma-separated (`ZoneGrants`); empty grants none.
    pub const ROUTE53_ZONE_GRANTS: &str = "EDGECERT_ROUTE53_ZONE_GRANTS";
    /// Where new certificate keys go: `sealed` (in the table, under a data key the KMS key
    /// protects) or `secrets-manager` (one secret per certificate). Unset: `secrets-manager`,
    /// where a process deployed before key storage existed kept them.
    pub const KEY_STORAGE: &str = "EDGECERT_KEY_STORAGE";
    /// The KMS key (id, ARN or alias) wrapping the data keys of sealed key storage; required
    /// with `sealed`, and read in either mode so sealed material stays readable.
    pub const KMS_KEY_ID: &str = "EDGECERT_KMS_KEY_ID";
}

/// A configuration error naming the variable at fault.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// As its message: a binary whose `main` returns it prints `Error: configuration: ...`.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl ConfigError {
    /// The error of `variable`.
    pub fn new(variable: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            variable,
            problem: problem.into(),
        }
    }
}

/// Typed reads of variables through a lookup (the process environment, or a map in tests):
/// values are trimmed, and an empty value is an unset one.
pub struct Variables<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Variables<'a> {
    /// Reads through `lookup`.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Variables<'a> {
        Variables { lookup }
    }

    /// The trimmed value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// The value of `name`, which must be set.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::new(name, "is required"))
    }

    /// `true`/`1` or `false`/`0`; unset is `false`.
    pub fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ConfigError::new(
                name,
                format!("'{other}' is not true or false"),
            )),
        }
    }

    /// The non-empty items of a comma-separated list, if set.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// The value of `name` parsed as `T`, if set; `what` names the expected form in errors
    /// (`"host:port"`).
    pub fn parsed<T: FromStr>(
        &self,
        name: &'static str,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| ConfigError::new(name, format!("'{text}' is not {what}"))),
        }
    }

    /// A whole number of at least `minimum`, if set.
    pub fn whole_number(
        &self,
        name: &'static str,
        minimum: u64,
    ) -> Result<Option<u64>, ConfigError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        match text.parse::<u64>() {
            Ok(value) if value >= minimum => Ok(Some(value)),
            _ => Err(ConfigError::new(
                name,
                format!("'{text}' is not a whole number of at least {minimum}"),
            )),
        }
    }
}

/// How to reach the ACME CA, for the processes that talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The ACME directory URL (https).
    pub directory_url: String,
    /// Root of the CA's HTTPS listener, if not a system root.
    pub ca_root_pem: Option<PathBuf>,
    /// Contact e-mail of the ACME account.
    pub contact_email: Option<String>,
    /// CA identities accepted in CAA records; empty keeps the issuer's default
    /// (`letsencrypt.org`).
    pub caa_identities: Vec<String>,
    /// The budgets of new orders every process that orders draws from.
    pub order_budget: OrderBudget,
}

impl AcmeSettings {
    /// The issuer's configuration for this CA (the issuer's defaults for everything else).
    pub fn issuer_config(&self) -> IssuerConfig {
        let mut config = IssuerConfig::new(self.directory_url.clone());
        if let Some(root) = &self.ca_root_pem {
            config = config.with_ca_root_pem(root.clone());
        }
        if let Some(email) = &self.contact_email {
            config = config.with_contact_email(email.clone());
        }
        if !self.caa_identities.is_empty() {
            config = config.with_caa_identities(self.caa_identities.iter().cloned());
        }
        config.with_order_budget(self.order_budget.clone())
    }
}

/// The order budget of the CA account at `directory_url`: `ORDER_BUDGET` orders per
/// `ORDER_BUDGET_PERIOD_SECONDS`, Let's Encrypt's limits when unset.
fn order_budget(
    variables: &Variables<'_>,
    directory_url: &str,
) -> Result<OrderBudget, ConfigError> {
    let too_large = |variable| ConfigError::new(variable, "is too large");
    let orders = match variables.whole_number(vars::ORDER_BUDGET, 0)? {
        Some(orders) => u32::try_from(orders).map_err(|_| too_large(vars::ORDER_BUDGET))?,
        None => OrderBudget::DEFAULT_ORDERS,
    };
    let period = match variables.whole_number(vars::ORDER_BUDGET_PERIOD_SECONDS, 1)? {
        Some(seconds) => time::Duration::seconds(
            i64::try_from(seconds).map_err(|_| too_large(vars::ORDER_BUDGET_PERIOD_SECONDS))?,
        ),
        None => OrderBudget::DEFAULT_PERIOD,
    };
    Ok(OrderBudget::new(directory_url, orders, period))
}

/// What every deployed process knows about its deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentConfig {
    /// The DynamoDB table.
    pub table_name: String,
    /// The prefix of every Secrets Manager secret name.
    pub secret_prefix: String,
    /// Where new certificate keys go.
    pub key_storage: KeyStorage,
    /// The KMS key of sealed key storage, if the deployment has one.
    pub kms_key_id: Option<String>,
    /// Where customers point DNS.
    pub edge: EdgeSettings,
    /// Allowed origin address kinds.
    pub origin_policy: OriginPolicy,
    /// The DNS server to ask, if not the system's.
    pub dns_server: Option<SocketAddr>,
    /// The ACME CA, for the processes given one.
    pub acme: Option<AcmeSettings>,
    /// Route 53 hosted zones the operator granted to accounts (reached with the process's own
    /// credentials, for those accounts only).
    pub route53_zone_grants: ZoneGrants,
}

/// The secret prefix when none is given.
const DEFAULT_SECRET_PREFIX: &str = "edgecert/";

impl DeploymentConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<DeploymentConfig, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests and the local runner pass a map).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<DeploymentConfig, ConfigError> {
        let variables = Variables::new(&lookup);
        let addresses = match variables.list(vars::EDGE_IPS) {
            None => Vec::new(),
            Some(items) => items
                .iter()
                .map(|item| {
                    item.parse::<IpAddr>().map_err(|_| {
                        ConfigError::new(vars::EDGE_IPS, format!("'{item}' is not an IP address"))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let edge = EdgeSettings {
            hostname: variables.required(vars::EDGE_HOSTNAME)?,
            addresses,
        };
        let origin_policy = OriginPolicy {
            allow_loopback: variables.flag(vars::ALLOW_LOOPBACK_ORIGINS)?,
            allow_private: variables.flag(vars::ALLOW_PRIVATE_ORIGINS)?,
        };
        let dns_server = variables.parsed(vars::DNS_SERVER, "host:port")?;
        let acme = match variables.get(vars::ACME_DIRECTORY) {
            None => None,
            Some(url) if url.starts_with("https://") => Some(AcmeSettings {
                order_budget: order_budget(&variables, &url)?,
                directory_url: url,
                ca_root_pem: variables.get(vars::ACME_CA_ROOT).map(PathBuf::from),
                contact_email: match variables.get(vars::ACME_CONTACT) {
                    Some(email) if !email.contains('@') || email.contains(char::is_whitespace) => {
                        return Err(ConfigError::new(
                            vars::ACME_CONTACT,
                            format!("'{email}' is not an e-mail address"),
                        ));
                    }
                    email => email,
                },
                caa_identities: variables.list(vars::CAA_IDENTITIES).unwrap_or_default(),
            }),
            Some(other) => {
                return Err(ConfigError::new(
                    vars::ACME_DIRECTORY,
                    format!("'{other}' is not an https:// URL"),
                ));
            }
        };
        let key_storage = variables
            .parsed::<KeyStorage>(vars::KEY_STORAGE, "sealed or secrets-manager")?
            .unwrap_or(KeyStorage::SecretsManager);
        let kms_key_id = variables.get(vars::KMS_KEY_ID);
        if key_storage == KeyStorage::Sealed && kms_key_id.is_none() {
            return Err(ConfigError::new(
                vars::KMS_KEY_ID,
                "is required when EDGECERT_KEY_STORAGE is sealed",
            ));
        }
        let route53_zone_grants =
            ZoneGrants::parse(&variables.get(vars::ROUTE53_ZONE_GRANTS).unwrap_or_default())
                .map_err(|problem| ConfigError::new(vars::ROUTE53_ZONE_GRANTS, problem))?;
        Ok(DeploymentConfig {
            route53_zone_grants,
            table_name: variables.required(vars::TABLE_NAME)?,
            secret_prefix: variables
                .get(vars::SECRET_PREFIX)
                .unwrap_or_else(|| DEFAULT_SECRET_PREFIX.to_owned()),
            key_storage,
            kms_key_id,
            edge,
            origin_policy,
            dns_server,
            acme,
        })
    }

    /// The CA settings, which `process` cannot run without.
    pub fn required_acme(&self, process: &str) -> Result<&AcmeSettings, ConfigError> {
        self.acme.as_ref().ok_or_else(|| {
            ConfigError::new(vars::ACME_DIRECTORY, format!("is required by {process}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<DeploymentConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        DeploymentConfig::from_lookup(|name| map.get(name).cloned())
    }

    const REQUIRED: [(&str, &str); 2] = [
        (vars::EDGE_HOSTNAME, "edge.example"),
        (vars::TABLE_NAME, "edgecert"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        REQUIRED.iter().chain(extra).copied().collect()
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(config(&[]).unwrap_err().variable, vars::EDGE_HOSTNAME);
        let missing = config(&[(vars::EDGE_HOSTNAME, "edge.example")]).unwrap_err();
        assert_eq!(missing, ConfigError::new(vars::TABLE_NAME, "is required"));
        // What a binary whose `main` returns it prints after `Error: `.
        assert_eq!(
            format!("{missing:?}"),
            "configuration: EDGECERT_TABLE_NAME: is required"
        );
        let error = config(&with(&[(vars::EDGE_IPS, "1.2.3.4, nope")])).unwrap_err();
        assert_eq!(error.variable, vars::EDGE_IPS);
        assert!(error.to_string().contains("nope"), "{error}");
        for (variable, value) in [
            (vars::ALLOW_LOOPBACK_ORIGINS, "yes"),
            (vars::DNS_SERVER, "resolver"),
            (vars::ACME_DIRECTORY, "http://acme.example/directory"),
        ] {
            let error = config(&with(&[(variable, value)])).unwrap_err();
            assert_eq!(error.variable, variable);
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("configuration: {variable}: "))
            );
        }
        let error = config(&with(&[
            (vars::ACME_DIRECTORY, "https://acme.example/directory"),
            (vars::ACME_CONTACT, "not an address"),
        ]))
        .unwrap_err();
        assert_eq!(error.variable, vars::ACME_CONTACT);
    }

    #[test]
    fn a_full_configuration_reads_back() {
        let config = config(&with(&[
            (vars::EDGE_IPS, "203.0.113.1,2001:db8::1"),
            (vars::ALLOW_LOOPBACK_ORIGINS, "true"),
            (vars::DNS_SERVER, "127.0.0.1:8053"),
            (vars::SECRET_PREFIX, " stack/ "),
        ]))
        .unwrap();
        assert_eq!(config.edge.addresses.len(), 2);
        assert!(config.origin_policy.allow_loopback && !config.origin_policy.allow_private);
        assert_eq!(config.dns_server, Some("127.0.0.1:8053".parse().unwrap()));
        assert_eq!(config.secret_prefix, "stack/");
        assert_eq!(config.acme, None);
        // Keys stay where a deployment without the variable kept them.
        assert_eq!(config.key_storage, KeyStorage::SecretsManager);
        assert_eq!(config.kms_key_id, None);
        assert_eq!(
            config.required_acme("the workers").unwrap_err().to_string(),
            "configuration: EDGECERT_ACME_DIRECTORY: is required by the workers"
        );
    }

    #[test]
    fn sealed_key_storage_needs_its_kms_key() {
        let error = config(&with(&[(vars::KEY_STORAGE, "sealed")])).unwrap_err();
        assert_eq!(error.variable, vars::KMS_KEY_ID);
        let sealed = config(&with(&[
            (vars::KEY_STORAGE, "sealed"),
            (vars::KMS_KEY_ID, "arn:aws:kms:us-east-1:123456789012:key/k"),
        ]))
        .unwrap();
        assert_eq!(sealed.key_storage, KeyStorage::Sealed);
        assert_eq!(
            sealed.kms_key_id.as_deref(),
            Some("arn:aws:kms:us-east-1:123456789012:key/k")
        );
        let error = config(&with(&[(vars::KEY_STORAGE, "kms")])).unwrap_err();
        assert_eq!(error.variable, vars::KEY_STORAGE);
        assert!(error.to_string().contains("'kms'"), "{error}");
    }

    #[test]
    fn acme_settings_are_read_when_a_directory_is_given() {
        let config = config(&with(&[
            (
                vars::ACME_DIRECTORY,
                "https://acme-staging-v02.api.letsencrypt.org/directory",
            ),
            (vars::ACME_CONTACT, "ops@example.com"),
            (
                vars::CAA_IDENTITIES,
                "letsencrypt.org, pebble.letsencrypt.org,",
            ),
        ]))
        .unwrap();
        assert_eq!(config.secret_prefix, "edgecert/");
        let acme = config.required_acme("the terminator").unwrap();
        assert_eq!(acme.contact_email.as_deref(), Some("ops@example.com"));
        assert_eq!(
            acme.caa_identities,
            ["letsencrypt.org", "pebble.letsencrypt.org"]
        );
        assert_eq!(acme.ca_root_pem, None);
        let issuer = acme.issuer_config();
        assert_eq!(
            issuer.caa_identities,
            ["letsencrypt.org", "pebble.letsencrypt.org"]
        );
        // Without identities, the issuer keeps its default.
        let mut plain = acme.clone();
        plain.caa_identities.clear();
        assert_eq!(plain.issuer_config().caa_identities, ["letsencrypt.org"]);
    }
}
