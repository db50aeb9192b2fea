//! The reverse proxy: one request from a client (HTTP/1.1 or h2) to its domain's origin and
//! back, bodies streamed both ways.
//!
//! - The request's host (`Host`, or `:authority` in h2) must be the TLS server name: a client
//!   cannot use one customer's certificate to reach another customer's origin (421).
//! - The request head is checked first ([`crate::request_head`]): over `max_header_bytes`
//!   answers `431`, two `Host` fields `400`; neither reaches the origin.
//! - Hop-by-hop headers are dropped both ways (RFC 9110, section 7.6.1): `Connection` and every
//!   header it names, `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`,
//!   `Trailer` and the proxy authentication headers.
//! - What the origin learns about the client comes from the edge alone: `X-Forwarded-For`
//!   and `X-Real-IP` (the client's address as the edge's socket saw it), `X-Forwarded-Proto`
//!   (`https`), `X-Forwarded-Host` (the requested host) and `Forwarded` (RFC 7239, the same
//!   three facts) are set by the edge; any the client sent, and the other client-address
//!   headers some origins trust (`X-Client-IP`, `True-Client-IP`, `X-Cluster-Client-IP`), are
//!   dropped. The edge is the first hop it can vouch for. `Host` becomes the origin URL's host
//!   unless `preserve_host`.
//! - Each request to an origin carries `Via: 1.1 <edge hostname>`. A request that arrives with
//!   this edge already in its `Via` came back from an origin: the site's origin leads to the
//!   edge itself (say, the vanity name), and it is answered `508 Loop Detected` instead of being
//!   proxied again and again.
//! - Only WebSocket upgrades are passed on (an HTTP/1.1 `GET` with `Connection: upgrade` and
//!   `websocket` among its `Upgrade` protocols, forwarded as `Upgrade: websocket`); after the
//!   origin's `101`, both upgraded connections are spliced together. Any other upgrade (`h2c`,
//!   a bare `Connection: upgrade`) is proxied as a plain request, without its upgrade headers.
//! - Origin failures answer `502` or `504` with a plain body naming no internals; the reason
//!   is logged with the server name.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use url::Url;

use crate::cache::{Owner, Route, normalize_name};
use crate::metrics::PROXY_RESPONSES;
use crate::origin::{BoxError, ConnectError, OriginClient, connect_error, limited};
use crate::request_head;
use crate::shared::Shared;

/// Body of every response the proxy sends.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// What the proxy knows about the client connection a request came on.
#[derive(Debug, Clone)]
pub(crate) struct ClientConnection {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// The TLS server name, normalised.
    pub(crate) server_name: String,
    /// The domain record whose certificate the handshake presented: requests are proxied only
    /// while the hostname still belongs to it.
    pub(crate) owner: Option<Owner>,
}

/// Headers that describe one connection, never forwarded (RFC 9110, section 7.6.1), besides
/// those `Connection` names.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Headers through which a client could claim another address to an origin that trusts
/// them; the edge sets the ones it speaks ([`X_FORWARDED_FOR`], [`X_REAL_IP`], `Forwarded`)
/// and drops the rest, with every `X-Forwarded-*`.
const CLIENT_ADDRESS_HEADERS: [HeaderName; 5] = [
    header::FORWARDED,
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The only upgrade passed on to origins.
const WEBSOCKET: &str = "websocket";

/// The proxy: the shared state and the pooled client to origins.
pub(crate) struct Proxy {
    shared: Arc<Shared>,
    client: OriginClient,
    /// This edge's `Via` entry, `1.1 <edge hostname>`.
    via: HeaderValue,
    /// Its received-by part, the edge hostname, looked for in arriving requests.
    via_name: String,
}

impl Proxy {
    pub(crate) fn new(shared: Arc<Shared>, client: OriginClient) -> Proxy {
        let via = HeaderValue::from_str(&format!("1.1 {}", shared.services.edge.hostname))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 edgecert"));
        let via_name = via
            .to_str()
            .ok()
            .and_then(received_by)
            .unwrap_or("edgecert")
            .to_owned();
        Proxy {
            shared,
            client,
            via,
            via_name,
        }
    }

    /// Answers one request; never fails (failures are responses).
    pub(crate) async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        connection: Arc<ClientConnection>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let response = self.respond(request, &connection).await;
        self.shared
            .metrics
            .count(PROXY_RESPONSES, "code", response.status().as_str());
        Ok(response)
    }

    async fn respond(
        &self,
        mut request: Request<Incoming>,
        connection: &ClientConnection,
    ) -> Response<ProxyBody> {
        if let Some(refusal) = request_head::refusal(&request, self.shared.config.max_header_bytes)
        {
            tracing::info!(
                sni = %connection.server_name,
                failure = "bad_request_head",
                status = refusal.status().as_u16(),
                "request head refused"
            );
            return refusal;
        }
        let Some(host) = request_host(&request) else {
            return plain(
                StatusCode::BAD_REQUEST,
                "Bad Request: no host in the request\n",
            );
        };
        if host != connection.server_name {
            tracing::info!(
                sni = %connection.server_name,
                host = %host,
                failure = "host_mismatch",
                "request host differs from the TLS server name"
            );
            return plain(
                StatusCode::MISDIRECTED_REQUEST,
                "Misdirected Request: the host does not match this connection\n",
            );
        }
        if self.passed_through_here(request.headers()) {
            tracing::warn!(
                sni = %host,
                failure = "proxy_loop",
                "the request came back through this edge: the site's origin leads to the edge"
            );
            return plain(
                StatusCode::LOOP_DETECTED,
                "Loop Detected: this site's origin leads back to the edge\n",
            );
        }
        let route = match self.route(&host, connection).await {
            Some(route) if connection.owner.as_ref() == Some(&route.owner) => route,
            // The hostname was deleted, and perhaps claimed again, since this connection's
            // handshake: the client must connect again, and get the new owner's certificate or
            // none.
            Some(_) => return changed_hands(&host),
            None if self.deleted_since_handshake(connection) => return changed_hands(&host),
            None => {
                return plain(StatusCode::NOT_FOUND, "Not Found: no site for this host\n");
            }
        };
        let Some(origin) = route.origin.clone() else {
            tracing::warn!(sni = %host, failure = "invalid_origin_url", "the domain's origin URL cannot be used");
            return bad_gateway();
        };
        let upgrade = upgrade_protocol(&request);
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
        let upstream = match self.upstream_request(request, &origin, connection, upgrade) {
            Ok(upstream) => upstream,
            Err(reason) => {
                tracing::warn!(sni = %host, failure = "bad_upstream_request", reason, "could not build the origin request");
                return bad_gateway();
            }
        };
        let started = Instant::now();
        let sent = tokio::time::timeout(
            self.shared.config.origin_header_timeout,
            self.client.request(upstream),
        )
        .await;
        let mut response = match sent {
            Err(_) => {
                tracing::warn!(sni = %host, origin = %origin, failure = "origin_timeout", "the origin did not answer in time");
                return gateway_timeout();
            }
            Ok(Err(error)) => return self.origin_failure(&host, &origin, &error),
            Ok(Ok(response)) => response,
        };
        self.shared.metrics.origin_latency(started.elapsed());
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let origin_upgrade = hyper::upgrade::on(&mut response);
                tokio::spawn(splice(client_upgrade, origin_upgrade, host.clone()));
                let (parts, _) = response.into_parts();
                return Response::from_parts(parts, empty());
            }
            // A 101 nobody asked for cannot be passed on.
            return bad_gateway();
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Response::from_parts(parts, limited(body, self.shared.config.origin_idle_timeout))
    }

    /// Whether the domain record this connection was opened for was deleted since.
    fn deleted_since_handshake(&self, connection: &ClientConnection) -> bool {
        connection
            .owner
            .as_ref()
            .is_some_and(|owner| self.shared.cache.was_deleted(&owner.domain_id))
    }

    /// The route of a hostname: from the cache, else (its site was evicted since the
    /// handshake) the store. A record deleted since is not asked about again: the answer is
    /// known, and requests repeated on an open connection must not become store reads.
    async fn route(&self, host: &str, connection: &ClientConnection) -> Option<Route> {
        if let Some(route) = self.shared.cache.route(host) {
            return Some(route);
        }
        if self.deleted_since_handshake(connection) {
            return None;
        }
        let hostname = edgecert_core::Hostname::parse_domain(host).ok()?;
        match self
            .shared
            .services
            .store
            .domain_by_hostname(&hostname)
            .await
        {
            Ok(Some(domain)) => {
                self.shared.cache.insert_route(&domain);
                self.shared.cache.route(host)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(sni = %host, %error, "could not read the domain's route");
                None
            }
        }
    }

    fn upstream_request(
        &self,
        request: Request<Incoming>,
        origin: &Url,
        connection: &ClientConnection,
        upgrade: Option<HeaderValue>,
    ) -> Result<Request<Incoming>, &'static str> {
        let (mut parts, body) = request.into_parts();
        let client_host = parts
            .headers
            .get(header::HOST)
            .cloned()
            .or_else(|| {
                parts
                    .uri
                    .authority()
                    .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
            })
            .ok_or("no host")?;
        let origin_authority = origin_authority(origin).ok_or("origin without host")?;
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(if origin.scheme() == "https" {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        });
        uri.authority = Some(origin_authority.clone());
        uri.path_and_query = Some(join_path(origin, &parts.uri)?);
        parts.uri = Uri::from_parts(uri).map_err(|_| "invalid origin URI")?;
        // Origins are spoken to in HTTP/1.1 whatever the client used.
        parts.version = Version::HTTP_11;

        let headers = &mut parts.headers;
        strip_hop_by_hop(headers);
        for name in &CLIENT_ADDRESS_HEADERS {
            headers.remove(name);
        }
        let forwarded: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("x-forwarded-"))
            .cloned()
            .collect();
        for name in forwarded {
            headers.remove(name);
        }
        if let Some(protocol) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol);
        }
        let client_ip = connection.peer.ip();
        let peer = HeaderValue::from_str(&client_ip.to_string()).map_err(|_| "peer address")?;
        headers.insert(X_FORWARDED_FOR.clone(), peer.clone());
        headers.insert(X_REAL_IP.clone(), peer);
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
        headers.insert(X_FORWARDED_HOST.clone(), client_host.clone());
        headers.insert(
            header::FORWARDED,
            forwarded_value(client_ip, &client_host).ok_or("forwarded header")?,
        );
        headers.append(header::VIA, self.via.clone());
        let host = if self.shared.config.preserve_host {
            client_host
        } else {
            HeaderValue::from_str(origin_authority.as_str()).map_err(|_| "origin host")?
        };
        headers.insert(header::HOST, host);
        Ok(Request::from_parts(parts, body))
    }

    /// Whether `headers` carry this edge's own `Via` entry (the received-by part, compared
    /// without case).
    fn passed_through_here(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::VIA)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(received_by)
            .any(|by| by.eq_ignore_ascii_case(&self.via_name))
    }

    fn origin_failure(
        &self,
        host: &str,
        origin: &Url,
        error: &hyper_util::client::legacy::Error,
    ) -> Response<ProxyBody> {
        let (status, failure, detail) = match connect_error(error) {
            Some(ConnectError::Timeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                "origin_connect_timeout",
                String::new(),
            ),
            Some(refused @ ConnectError::Refused { .. }) => (
                StatusCode::BAD_GATEWAY,
                "origin_address_refused",
                refused.to_string(),
            ),
            Some(other) => (
                StatusCode::BAD_GATEWAY,
                "origin_connect_failed",
                other.to_string(),
            ),
            None => (
                StatusCode::BAD_GATEWAY,
                "origin_request_failed",
                error_chain(error),
            ),
        };
        tracing::warn!(sni = %host, origin = %origin, failure, detail, "origin request failed");
        if status == StatusCode::GATEWAY_TIMEOUT {
            gateway_timeout()
        } else {
            bad_gateway()
        }
    }
}

/// Copies bytes both ways between the client's and the origin's upgraded connections.
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    origin: hyper::upgrade::OnUpgrade,
    host: String,
) {
    let (client, origin) = match tokio::try_join!(client, origin) {
        Ok(both) => both,
        Err(error) => {
            tracing::debug!(sni = %host, %error, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut origin = TokioIo::new(origin);
    match tokio::io::copy_bidirectional(&mut client, &mut origin).await {
        Ok((up, down)) => tracing::debug!(sni = %host, up, down, "upgraded connection closed"),
        Err(error) => tracing::debug!(sni = %host, %error, "upgraded connection ended"),
    }
}

/// The received-by part of one `Via` entry (`1.1 edge.example.com (comment)`).
fn received_by(entry: &str) -> Option<&str> {
    entry.split_whitespace().nth(1)
}

/// The request's host, lower case, without port or trailing dot.
fn request_host<B>(request: &Request<B>) -> Option<String> {
    let authority = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok()?.parse::<Authority>().ok()?,
        None => request.uri().authority()?.clone(),
    };
    // h2 requests carry `:authority`; if both are present they must agree.
    if let Some(uri_authority) = request.uri().authority() {
        if !uri_authority.host().eq_ignore_ascii_case(authority.host()) {
            return None;
        }
    }
    Some(normalize_name(authority.host()))
}

/// `Upgrade: websocket` when the request is a WebSocket upgrade: HTTP/1.1 `GET` with
/// `Connection: upgrade` and `websocket` among its `Upgrade` protocols. Any other protocol
/// (`h2c`...) is not passed on: the origin would switch a connection the edge cannot follow.
fn upgrade_protocol<B>(request: &Request<B>) -> Option<HeaderValue> {
    if request.version() != Version::HTTP_11 || request.method() != Method::GET {
        return None;
    }
    let tokens = |name: header::HeaderName| {
        request
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    let wants_upgrade = tokens(header::CONNECTION)
        .iter()
        .any(|token| token.eq_ignore_ascii_case("upgrade"));
    // A protocol may carry a version (`websocket/13` is not registered, but `name/version`
    // is the syntax): only the name is compared.
    let websocket = tokens(header::UPGRADE).iter().any(|protocol| {
        protocol
            .split('/')
            .next()
            .is_some_and(|name| name.trim().eq_ignore_ascii_case(WEBSOCKET))
    });
    (wants_upgrade && websocket).then(|| HeaderValue::from_static(WEBSOCKET))
}

/// `Forwarded` (RFC 7239) from what the edge knows: the client's address, the requested host
/// and `https`. IPv6 addresses and hosts are quoted, as the RFC's syntax requires for `[`, `:`.
fn forwarded_value(client: std::net::IpAddr, host: &HeaderValue) -> Option<HeaderValue> {
    let host = host.to_str().ok()?;
    if host.contains(['"', '\\']) {
        return None;
    }
    let client = match client {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    HeaderValue::from_str(&format!("for={client};host=\"{host}\";proto=https")).ok()
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// `host[:port]` of the origin, the port only when not the scheme's default.
fn origin_authority(origin: &Url) -> Option<Authority> {
    let host = match origin.host()? {
        url::Host::Domain(name) => name.to_owned(),
        url::Host::Ipv4(v4) => v4.to_string(),
        url::Host::Ipv6(v6) => format!("[{v6}]"),
    };
    let text = match origin.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    text.parse().ok()
}

/// The origin URL's path as a prefix of the request's path and query.
fn join_path(origin: &Url, request: &Uri) -> Result<PathAndQuery, &'static str> {
    let prefix = origin.path().trim_end_matches('/');
    let path = request.path();
    let path = if path.starts_with('/') { path } else { "/" };
    let joined = match request.query() {
        Some(query) => format!("{prefix}{path}?{query}"),
        None => format!("{prefix}{path}"),
    };
    joined.parse().map_err(|_| "invalid path")
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A short plain-text response.
pub(crate) fn plain(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `421`: the site changed hands since the connection's handshake.
fn changed_hands(host: &str) -> Response<ProxyBody> {
    tracing::info!(sni = %host, failure = "owner_changed", "the hostname changed hands since the handshake");
    plain(
        StatusCode::MISDIRECTED_REQUEST,
        "Misdirected Request: this site changed since the connection was opened\n",
    )
}

fn bad_gateway() -> Response<ProxyBody> {
    plain(StatusCode::BAD_GATEWAY, "Bad Gateway\n")
}

fn gateway_timeout() -> Response<ProxyBody> {
    plain(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(uri: &str, host: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_request_host_is_normalised_and_must_agree_with_the_authority() {
        assert_eq!(
            request_host(&request("/", Some("Shop.Example.com:443"))).as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(
            request_host(&request("https://shop.example.com/x", None)).as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(
            request_host(&request(
                "https://shop.example.com/x",
                Some("other.example.com")
            )),
            None
        );
        assert_eq!(request_host(&request("/", None)), None);
    }

    #[test]
    fn paths_join_under_the_origin_prefix() {
        let origin = Url::parse("https://origin.example.net/app/").unwrap();
        let uri: Uri = "/a/b?c=d".parse().unwrap();
        assert_eq!(join_path(&origin, &uri).unwrap().as_str(), "/app/a/b?c=d");
        let bare = Url::parse("http://origin.example.net").unwrap();
        assert_eq!(join_path(&bare, &uri).unwrap().as_str(), "/a/b?c=d");
        assert_eq!(
            origin_authority(&Url::parse("http://[::1]:8080/").unwrap())
                .unwrap()
                .as_str(),
            "[::1]:8080"
        );
        assert_eq!(
            origin_authority(&Url::parse("https://origin.example.net:443/").unwrap())
                .unwrap()
                .as_str(),
            "origin.example.net"
        );
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn only_http11_connection_upgrade_requests_upgrade() {
        let upgrade = Request::builder()
            .uri("/ws")
            .header(header::CONNECTION, "keep-alive, Upgrade")
            .header(header::UPGRADE, "websocket")
            .body(())
            .unwrap();
        assert_eq!(upgrade_protocol(&upgrade).unwrap(), "websocket");
        let plain = Request::builder()
            .uri("/ws")
            .header(header::UPGRADE, "websocket")
            .body(())
            .unwrap();
        assert!(upgrade_protocol(&plain).is_none());
        let h2c = Request::builder()
            .uri("/")
            .header(header::CONNECTION, "Upgrade, HTTP2-Settings")
            .header(header::UPGRADE, "h2c")
            .body(())
            .unwrap();
        assert!(upgrade_protocol(&h2c).is_none());
        let listed = Request::builder()
            .uri("/ws")
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "h2c, WebSocket")
            .body(())
            .unwrap();
        assert_eq!(upgrade_protocol(&listed).unwrap(), "websocket");
        let posted = Request::post("/ws")
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .body(())
            .unwrap();
        assert!(upgrade_protocol(&posted).is_none());
    }

    #[test]
    fn forwarded_says_what_the_edge_saw() {
        let host = HeaderValue::from_static("shop.example.com:8443");
        assert_eq!(
            forwarded_value("203.0.113.5".parse().unwrap(), &host).unwrap(),
            "for=203.0.113.5;host=\"shop.example.com:8443\";proto=https"
        );
        assert_eq!(
            forwarded_value("2001:db8::5".parse().unwrap(), &host).unwrap(),
            "for=\"[2001:db8::5]\";host=\"shop.example.com:8443\";proto=https"
        );
    }
}
