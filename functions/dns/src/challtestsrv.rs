//! The DNS provider adapter for the local stack: TXT records written through
//! pebble-challtestsrv's management API, which is also the DNS server Pebble validates against.
//!
//! challtestsrv keeps a list of values per name and `/set-txt` appends to it, while the port
//! promises that `set_txt` replaces: every write clears the name first. The management API is
//! plain HTTP on loopback, so a bare hyper client is enough (no TLS stack, no proxy).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use edgecert_core::model::Zone;
use edgecert_core::ports::DnsProvider;
use edgecert_core::{Error, Result};
use http::Uri;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

/// Deadline of one management request: challtestsrv answers in microseconds when it is up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes TXT records through challtestsrv's management API (`/set-txt`, `/clear-txt`).
///
/// Record names are absolute in challtestsrv (`_acme-challenge.a.example.`); callers pass them
/// without the trailing dot, as with every [`DnsProvider`].
#[derive(Debug, Clone)]
pub struct ChalltestsrvDnsProvider {
    management_url: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl ChalltestsrvDnsProvider {
    /// A provider for the management API at `management_url`, e.g. `http://127.0.0.1:8055`.
    ///
    /// Only plain-HTTP loopback URLs are accepted: this adapter is for the local stack and tests,
    /// and must never be pointed at a remote host.
    pub fn new(management_url: &str) -> Result<ChalltestsrvDnsProvider> {
        let management_url = management_url.trim_end_matches('/').to_owned();
        let uri: Uri = management_url
            .parse()
            .map_err(|_| invalid_url(&management_url))?;
        let loopback = matches!(
            uri.host(),
            Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
        );
        if uri.scheme_str() != Some("http") || !loopback {
            return Err(invalid_url(&management_url));
        }
        // No idle connections: the provider may outlive the runtime that made a request (tests
        // build one per runtime), and a pooled connection would belong to a dead runtime.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        Ok(ChalltestsrvDnsProvider {
            management_url,
            client,
        })
    }

    /// POSTs `body` to `endpoint`, failing on any non-success answer.
    async fn post(&self, endpoint: &str, body: serde_json::Value) -> Result<()> {
        let url = format!("{}/{endpoint}", self.management_url);
        let request = http::Request::post(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(Error::dns)?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| Error::dns(format!("POST {url} timed out")))?
            .map_err(Error::dns)?;
        let status = response.status();
        if !status.is_success() {
            let text = response
                .into_body()
                .collect()
                .await
                .map(|body| String::from_utf8_lossy(&body.to_bytes()).trim().to_owned())
                .unwrap_or_default();
            return Err(Error::dns(format!("POST {url} answered {status}: {text}")));
        }
        Ok(())
    }
}

fn invalid_url(url: &str) -> Error {
    Error::BadRequest {
        code: "invalid_dns_provider",
        message: format!("challtestsrv management URL must be http:// on loopback, got {url}"),
    }
}

/// `name` as challtestsrv keys it: absolute, with one trailing dot.
fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

#[async_trait]
impl DnsProvider for ChalltestsrvDnsProvider {
    async fn set_txt(&self, _zone: &Zone, name: &str, value: &str) -> Result<()> {
        let host = fqdn(name);
        self.post("clear-txt", json!({ "host": host })).await?;
        self.post("set-txt", json!({ "host": host, "value": value }))
            .await
    }

    async fn clear_txt(&self, _zone: &Zone, name: &str) -> Result<()> {
        self.post("clear-txt", json!({ "host": fqdn(name) })).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_management_urls_are_accepted() {
        assert!(ChalltestsrvDnsProvider::new("http://127.0.0.1:8055").is_ok());
        assert!(ChalltestsrvDnsProvider::new("http://localhost:8055/").is_ok());
        for refused in [
            "https://127.0.0.1:8055",
            "http://10.0.0.5:8055",
            "http://challtestsrv.example:8055",
            "not a url",
        ] {
            let error = ChalltestsrvDnsProvider::new(refused).unwrap_err();
            assert_eq!(error.code(), "invalid_dns_provider", "{refused}");
        }
    }

    #[test]
    fn names_get_exactly_one_trailing_dot() {
        assert_eq!(
            fqdn("_acme-challenge.a.example"),
            "_acme-challenge.a.example."
        );
        assert_eq!(
            fqdn("_acme-challenge.a.example."),
            "_acme-challenge.a.example."
        );
    }
}
