//! The DNS provider port: writes records in zones the account controls (DNS-01 challenges and
//! zone verification). Adapters: Route 53 in AWS, pebble-challtestsrv locally.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::model::Zone;

/// Writes TXT records in a zone.
///
/// `set_txt` replaces whatever TXT values the name had with exactly one: challtestsrv cannot
/// hold two values at one name, so callers validate authorizations that share a record name one
/// after the other.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Creates or replaces the TXT record `name` (no trailing dot) with `value`.
    async fn set_txt(&self, zone: &Zone, name: &str, value: &str) -> Result<()>;
    /// Removes the TXT record `name` (no error when absent).
    async fn clear_txt(&self, zone: &Zone, name: &str) -> Result<()>;
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
