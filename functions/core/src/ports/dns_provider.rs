//! The DNS provider port: writes records in zones the account controls (DNS-01 challenges and
//! zone verification). Adapters: Route 53 in AWS, pebble-challtestsrv locally.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::ids::AccountId;
use crate::model::Zone;

/// Writes TXT records in a zone.
///
/// `set_txt` replaces whatever TXT values the name had with exactly one: challtestsrv cannot
/// hold two values at one name, so callers validate authorizations that share a record name one
/// after the other.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Whether the zone's account may use the zone through this provider at all: with
    /// credentials of its own that it gave (Route 53: `Zone::role_arn`), or by an operator's
    /// [`ZoneGrants`]. [`ZoneAccessDenied`](Error::ZoneAccessDenied) otherwise, or when
    /// those credentials do not reach the zone. Zone import and the issuer's pre-flight ask;
    /// `set_txt` and `clear_txt` refuse the same zones.
    ///
    /// The default lets every zone through: for providers whose writes are the customer's own
    /// DNS (challtestsrv is "the customer's DNS" of the local stack).
    async fn check_access(&self, zone: &Zone) -> Result<()> {
        let _ = zone;
        Ok(())
    }
    /// Creates or replaces the TXT record `name` (no trailing dot) with `value`.
    async fn set_txt(&self, zone: &Zone, name: &str, value: &str) -> Result<()>;
    /// Removes the TXT record `name` (no error when absent).
    async fn clear_txt(&self, zone: &Zone, name: &str) -> Result<()>;
}

/// Zones the operator granted to accounts by configuration: a provider may reach these with
/// EdgeCert's own credentials, for that account only. Written `acct_a=Z1,acct_b=Z2` (account
/// id `=` provider zone id, comma-separated; Route 53 ids with or without `/hostedzone/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneGrants {
    grants: Vec<(AccountId, String)>,
}

impl ZoneGrants {
    /// Parses the configuration form; the error names the entry at fault.
    pub fn parse(text: &str) -> std::result::Result<ZoneGrants, String> {
        let mut grants = Vec::new();
        for entry in text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (account, zone) = entry
                .split_once('=')
                .ok_or_else(|| format!("'{entry}' is not account_id=zone_id"))?;
            let account = AccountId::parse(account.trim())
                .map_err(|_| format!("'{entry}': '{}' is not an account id", account.trim()))?;
            let zone = normalized_zone_id(zone);
            if zone.is_empty() || !zone.bytes().all(|byte| byte.is_ascii_graphic()) {
                return Err(format!("'{entry}': the zone id is empty or not printable"));
            }
            grants.push((account, zone.to_owned()));
        }
        Ok(ZoneGrants { grants })
    }

    /// Whether the operator granted the zone `provider_zone_id` to `account`.
    pub fn allows(&self, account: &AccountId, provider_zone_id: &str) -> bool {
        let zone = normalized_zone_id(provider_zone_id);
        self.grants
            .iter()
            .any(|(granted, granted_zone)| granted == account && granted_zone == zone)
    }

    /// Whether no zone is granted.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

/// A provider zone id without Route 53's `/hostedzone/` prefix, so both spellings compare equal.
fn normalized_zone_id(id: &str) -> &str {
    let id = id.trim();
    id.strip_prefix("/hostedzone/").unwrap_or(id)
}

/// The DNS providers available, by the name zones refer to (`route53`, `challtestsrv`).
#[derive(Clone, Default)]
pub struct DnsProviders {
    providers: HashMap<String, Arc<dyn DnsProvider>>,
}

impl DnsProviders {
    /// Adds (or replaces) a provider under `name`.
    pub fn with(mut self, name: &str, provider: Arc<dyn DnsProvider>) -> Self {
        self.providers.insert(name.to_owned(), provider);
        self
    }

    /// The provider a zone uses.
    pub fn for_zone(&self, zone: &Zone) -> Result<Arc<dyn DnsProvider>> {
        self.get(&zone.provider)
    }

    /// The provider named `name`; a 400 `unknown_dns_provider` otherwise.
    pub fn get(&self, name: &str) -> Result<Arc<dyn DnsProvider>> {
        self.providers
            .get(name)
            .cloned()
            .ok_or_else(|| Error::BadRequest {
                code: "unknown_dns_provider",
                message: format!("DNS provider must be one of: {}", self.names().join(", ")),
            })
    }

    /// Names of the configured providers, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.providers.keys().cloned().collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_name_one_zone_for_one_account() {
        let first = AccountId::generate();
        let second = AccountId::generate();
        let grants = ZoneGrants::parse(&format!(
            " {first}=Z0123456789, {second}=/hostedzone/ZOTHER ,"
        ))
        .unwrap();
        assert!(grants.allows(&first, "Z0123456789"));
        assert!(grants.allows(&first, "/hostedzone/Z0123456789"));
        assert!(grants.allows(&second, "ZOTHER"));
        assert!(!grants.allows(&second, "Z0123456789"));
        assert!(!grants.allows(&AccountId::generate(), "ZOTHER"));
        assert!(ZoneGrants::parse("").unwrap().is_empty());
    }

    #[test]
    fn malformed_grants_name_the_entry() {
        for (text, named) in [
            ("Z0123", "'Z0123'"),
            ("dom_x=Z1", "'dom_x'"),
            ("acct_x=", "'acct_x='"),
        ] {
            let error = ZoneGrants::parse(text).unwrap_err();
            assert!(error.contains(named), "{text}: {error}");
        }
    }
}
