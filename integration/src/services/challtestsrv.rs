//! Handle on a running pebble-challtestsrv: mock DNS data and challenge responses through its
//! management API.
//!
//! The process itself belongs to [`Pebble`](super::Pebble), which resolves every name through
//! this server. Management calls are plain JSON POSTs to `http://127.0.0.1:<port>/<endpoint>`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::json;

use super::http_client;

/// One CAA record value served by [`Challtestsrv::add_caa`], e.g. tag `issue`, value
/// `letsencrypt.org`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaaPolicy {
    /// The CAA property tag: `issue`, `issuewild` or `iodef`.
    pub tag: String,
    /// The property value, e.g. the CA's domain.
    pub value: String,
}

/// Cheap, cloneable handle on a running pebble-challtestsrv.
///
/// Host names get a trailing dot added when missing, as challtestsrv keys its records by FQDN.
#[derive(Debug, Clone)]
pub struct Challtestsrv {
    management_url: String,
    dns_addr: SocketAddr,
    http01_addr: Option<SocketAddr>,
}

impl Challtestsrv {
    pub(crate) fn new(
        management_addr: SocketAddr,
        dns_addr: SocketAddr,
        http01_addr: Option<SocketAddr>,
    ) -> Self {
        Self {
            management_url: format!("http://{management_addr}"),
            dns_addr,
            http01_addr,
        }
    }

    /// Base URL of the management API, e.g. `http://127.0.0.1:38211`.
    pub fn management_url(&self) -> &str {
        &self.management_url
    }

    /// The mock DNS server (UDP and TCP) that Pebble resolves through; point our own DNS
    /// resolver here in tests.
    pub fn dns_server_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    /// Where challtestsrv answers HTTP-01 requests, if it was asked to.
    pub fn http01_addr(&self) -> Option<SocketAddr> {
        self.http01_addr
    }

    /// Serves TXT `value` for `host` (e.g. `_acme-challenge.a.example`), in addition to the
    /// values already set for it.
    pub async fn set_txt(&self, host: &str, value: &str) -> anyhow::Result<()> {
        self.post("set-txt", json!({ "host": fqdn(host), "value": value }))
            .await
    }

    /// Removes every TXT value of `host`.
    pub async fn clear_txt(&self, host: &str) -> anyhow::Result<()> {
        self.post("clear-txt", json!({ "host": fqdn(host) })).await
    }

    /// Answers A queries for `host` with `addresses` instead of the default 127.0.0.1.
    pub async fn add_a(&self, host: &str, addresses: &[Ipv4Addr]) -> anyhow::Result<()> {
        let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        self.post(
            "add-a",
            json!({ "host": fqdn(host), "addresses": addresses }),
        )
        .await
    }

    /// Removes the A records added for `host`.
    pub async fn clear_a(&self, host: &str) -> anyhow::Result<()> {
        self.post("clear-a", json!({ "host": fqdn(host) })).await
    }

    /// Answers AAAA queries for `host` with `addresses`.
    pub async fn add_aaaa(&self, host: &str, addresses: &[Ipv6Addr]) -> anyhow::Result<()> {
        let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        self.post(
            "add-aaaa",
            json!({ "host": fqdn(host), "addresses": addresses }),
        )
        .await
    }

    /// Removes the AAAA records added for `host`.
    pub async fn clear_aaaa(&self, host: &str) -> anyhow::Result<()> {
        self.post("clear-aaaa", json!({ "host": fqdn(host) })).await
    }

    /// Makes `host` an alias (CNAME) of `target`.
    pub async fn set_cname(&self, host: &str, target: &str) -> anyhow::Result<()> {
        self.post(
            "set-cname",
            json!({ "host": fqdn(host), "target": fqdn(target) }),
        )
        .await
    }

    /// Removes the CNAME of `host`.
    pub async fn clear_cname(&self, host: &str) -> anyhow::Result<()> {
        self.post("clear-cname", json!({ "host": fqdn(host) }))
            .await
    }

    /// Serves CAA `policies` for `host`. (Pebble 2.4 itself does not check CAA.)
    pub async fn add_caa(&self, host: &str, policies: &[CaaPolicy]) -> anyhow::Result<()> {
        self.post(
            "add-caa",
            json!({ "host": fqdn(host), "policies": policies }),
        )
        .await
    }

    /// Removes the CAA policies of `host`.
    pub async fn clear_caa(&self, host: &str) -> anyhow::Result<()> {
        self.post("clear-caa", json!({ "host": fqdn(host) })).await
    }

    /// Answers every query for `host` with SERVFAIL, overriding all other records.
    pub async fn set_servfail(&self, host: &str) -> anyhow::Result<()> {
        self.post("set-servfail", json!({ "host": fqdn(host) }))
            .await
    }

    /// Stops answering SERVFAIL for `host`.
    pub async fn clear_servfail(&self, host: &str) -> anyhow::Result<()> {
        self.post("clear-servfail", json!({ "host": fqdn(host) }))
            .await
    }

    /// Serves `content` at `/.well-known/acme-challenge/<token>` (only useful when challtestsrv
    /// listens for HTTP-01, see [`ChalltestsrvHttp01`](super::ChalltestsrvHttp01)).
    pub async fn add_http01(&self, token: &str, content: &str) -> anyhow::Result<()> {
        self.post("add-http01", json!({ "token": token, "content": content }))
            .await
    }

    /// Stops serving the HTTP-01 response for `token`.
    pub async fn del_http01(&self, token: &str) -> anyhow::Result<()> {
        self.post("del-http01", json!({ "token": token })).await
    }

    /// The DNS queries challtestsrv received for `host`, as its JSON event list.
    pub async fn dns_request_history(&self, host: &str) -> anyhow::Result<serde_json::Value> {
        let response = self
            .send("dns-request-history", json!({ "host": history_key(host) }))
            .await?;
        response
            .json()
            .await
            .context("decoding challtestsrv's DNS request history")
    }

    /// Forgets the DNS request history of `host`.
    pub async fn clear_dns_request_history(&self, host: &str) -> anyhow::Result<()> {
        self.post(
            "clear-request-history",
            json!({ "host": history_key(host), "type": "dns" }),
        )
        .await
    }

    async fn post(&self, endpoint: &str, body: serde_json::Value) -> anyhow::Result<()> {
        self.send(endpoint, body).await.map(drop)
    }

    /// POSTs `body` to `endpoint`, failing on any non-success status.
    async fn send(
        &self,
        endpoint: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}/{endpoint}", self.management_url);
        let response = http_client(&[])?
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("POST {url} with {body} answered {status}: {}", text.trim());
        }
        Ok(response)
    }
}

/// `host` without its trailing dot: challtestsrv's request history is keyed that way, unlike
/// its records.
fn history_key(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// `host` with a trailing dot.
fn fqdn(host: &str) -> String {
    if host.ends_with('.') {
        host.to_owned()
    } else {
        format!("{host}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_adds_a_single_trailing_dot() {
        assert_eq!(
            fqdn("_acme-challenge.a.example"),
            "_acme-challenge.a.example."
        );
        assert_eq!(fqdn("a.example."), "a.example.");
    }
}
