//! The DNS resolver port: what EdgeCert needs to read from public DNS (ownership TXT records,
//! whether a domain points at the edge, what an origin resolves to).

use std::net::IpAddr;

use async_trait::async_trait;

use crate::error::Result;

/// Reads DNS. A name that does not exist, or has no record of the asked type, answers empty;
/// only a failure to ask (timeout, SERVFAIL) is an error.
#[async_trait]
pub trait DnsResolver: Send + Sync {
    /// The TXT strings at `name` (each record's strings joined).
    async fn txt(&self, name: &str) -> Result<Vec<String>>;
    /// The A and AAAA addresses of `name`, following CNAMEs.
    async fn ip_addresses(&self, name: &str) -> Result<Vec<IpAddr>>;
    /// The CNAME target of `name` without its trailing dot, if `name` is an alias.
    async fn cname(&self, name: &str) -> Result<Option<String>>;
}
