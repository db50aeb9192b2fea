//! The DNS resolver port: what EdgeCert needs to read from public DNS (ownership TXT records,
//! whether a domain points at the edge, what an origin resolves to).

use std::net::IpAddr;

use async_trait::async_trait;

use crate::error::Result;

/// One CAA record (RFC 8659): which certificate authorities may issue for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaRecord {
    /// Flags octet; 128 is the issuer-critical bit.
    pub flags: u8,
    /// Property tag, lower case: `issue`, `issuewild`, `iodef` or another.
    pub tag: String,
    /// Property value as text, parameters included, e.g. `letsencrypt.org` or
    /// `letsencrypt.org; validationmethods=dns-01`.
    pub value: String,
}

impl CaaRecord {
    /// Whether a CA that does not understand the tag must refuse to issue.
    pub fn is_critical(&self) -> bool {
        self.flags & 0x80 != 0
    }
}

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
    /// The CAA records at `name` itself (no climbing to parents: callers walk the tree).
    async fn caa(&self, name: &str) -> Result<Vec<CaaRecord>>;
}
