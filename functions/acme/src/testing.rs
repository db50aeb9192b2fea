//! Fakes for tests of issuance, here and in other crates. None of them belongs in production.
//!
//! - [`CaFaults`] builds a [`FaultyCaClient`]: an HTTP client around the real one that injects
//!   `429` with `Retry-After`, `503` and connection resets, and counts what it saw (newOrder
//!   and newAccount requests, error answers by problem type).
//! - [`FailingVault`] fails `put_material` on demand.
//! - [`SkippingDnsProvider`] accepts TXT writes and writes nothing (a challenge that must
//!   fail).
//! - [`CrashAfter`] stops a run dead after a named [`Step`], as a crash would.
//!
//! [`CaFaults::serve_renewal_info`] also turns the CA into one that offers ARI (Pebble 2.4 does
//! not): the directory gains a `renewalInfo` URL that the fault layer answers itself.
//! [`CaFaults::advertise_profiles`] makes it advertise ACME profiles (`meta.profiles`, which
//! Pebble 2.4 lacks too); the lifetime of what it issues is then Pebble's
//! `certificateValidityPeriod`, and [`CaFaults::order_profiles`] tells which profile each order
//! asked for.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use edgecert_core::model::{SecretString, Zone};
use edgecert_core::ports::{
    CertificateMaterial, DnsProvider, MaterialSweep, MaterialVersion, Vault,
};
use edgecert_core::{CertificateId, Error, RenewalWindow, Result};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, StatusCode};
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use edgecert_core::usecases::issuance::{Step, StepHook};

type ResponseFuture =
    Pin<Box<dyn Future<Output = std::result::Result<BytesResponse, instant_acme::Error>> + Send>>;

/// The `renewalInfo` URL the fault layer puts in the directory and answers itself; `.invalid`
/// so that nothing ever reaches a real host with it.
pub const RENEWAL_INFO_STUB_URL: &str = "https://ari.edgecert.invalid/renewal-info";

/// Which requests a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// POST to the directory's `newOrder`.
    NewOrder,
    /// POST to the directory's `newAccount`.
    NewAccount,
    /// POST to an order's finalize URL.
    Finalize,
    /// POST to a challenge URL (Pebble's `/chalZ/…`): asking the CA to validate it.
    Challenge,
    /// Any POST.
    AnyPost,
}

/// What to do instead of (or after) the real exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer `429` with a `rateLimited` problem and `Retry-After: <seconds>`, without sending.
    RateLimited {
        /// The `Retry-After` delay.
        retry_after: Duration,
    },
    /// Answer `503` with a `serverInternal` problem and no `Retry-After`, without sending.
    ServiceUnavailable,
    /// Send the request, then lose the answer as a reset connection would: the CA acted on it.
    ConnectionReset,
    /// Send the request, wait `after`, then answer with the challenge marked `invalid` and
    /// carrying an (injected) problem: what a CA answers when it finished a failing
    /// validation before answering the request that started it. Pebble does so now and then.
    ValidationFinishedFirst {
        /// How long the CA's own validation is given to finish before the answer.
        after: Duration,
    },
}

#[derive(Debug)]
struct Rule {
    endpoint: Endpoint,
    fault: Fault,
    remaining: usize,
}

#[derive(Debug, Default)]
struct FaultState {
    rules: Vec<Rule>,
    new_order_url: Option<String>,
    new_account_url: Option<String>,
    new_order_requests: usize,
    new_orders: usize,
    orders_replacing: Vec<String>,
    /// Orders the CA created, by each name they were for.
    orders_by_name: HashMap<String, usize>,
    /// Every order seen, by its finalize URL: its names and last status.
    orders: HashMap<String, (Vec<String>, String)>,
    /// New orders created while an order for one of their names was still open.
    overlapping_orders: Vec<String>,
    new_accounts: usize,
    requests: usize,
    problems: HashMap<String, usize>,
    renewal_info: Option<(RenewalWindow, Duration)>,
    refuses_replaces: usize,
    renewal_info_requests: Vec<String>,
    profiles: Option<Vec<(String, String)>>,
    /// The profile each created order asked for, in order.
    order_profiles: Vec<Option<String>>,
}

/// Shared control and counters of every [`FaultyCaClient`] made from it; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CaFaults {
    state: Arc<Mutex<FaultState>>,
}

impl CaFaults {
    /// No faults yet, counters at zero.
    pub fn new() -> CaFaults {
        CaFaults::default()
    }

    /// Wraps `inner` (e.g. [`ca_http_client`](crate::ca_http_client)) in a client that obeys
    /// and reports to these faults.
    pub fn client(&self, inner: Box<dyn HttpClient>) -> Box<dyn HttpClient> {
        Box::new(FaultyCaClient {
            inner,
            faults: self.clone(),
        })
    }

    /// Applies `fault` to the next `times` requests to `endpoint`.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: usize) {
        self.lock().rules.push(Rule {
            endpoint,
            fault,
            remaining: times,
        });
    }

    /// Orders the CA created: newOrder requests it answered with success, including one
    /// whose answer a [`Fault::ConnectionReset`] then lost. A request refused with `badNonce`
    /// and signed again by instant-acme creates one order, and counts once.
    pub fn new_orders(&self) -> usize {
        self.lock().new_orders
    }

    /// Orders the CA created that include `name` (newOrder requests answered with success).
    pub fn orders_for(&self, name: &str) -> usize {
        self.lock()
            .orders_by_name
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    /// New orders the CA created while another order for one of their names had not ended
    /// (`valid` or `invalid`, or one of its authorizations seen final and not valid) as far as
    /// the client had seen: two orders for a name at once.
    pub fn overlapping_orders(&self) -> Vec<String> {
        self.lock().overlapping_orders.clone()
    }

    /// Notes an order object in an answer (`status`, `identifiers`, `finalize`); when the
    /// answer created it, checks that no order for its names is still open. An authorization
    /// seen `invalid` (or `deactivated`, `expired`, `revoked`) ends the open orders for its name:
    /// the CA makes such an order `invalid` (RFC 8555 §7.1.6), though the client that saw the
    /// failed validation never reads the order again.
    fn observe_order(&self, creates: Creates, status: StatusCode, body: &[u8]) {
        if !status.is_success() {
            return;
        }
        let Ok(order) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        if let (Some(name), Some("invalid" | "deactivated" | "expired" | "revoked")) = (
            order
                .pointer("/identifier/value")
                .and_then(|name| name.as_str()),
            order.get("status").and_then(|state| state.as_str()),
        ) {
            for (names, state) in self.lock().orders.values_mut() {
                if names.iter().any(|other| other == name)
                    && !matches!(state.as_str(), "valid" | "invalid")
                {
                    "invalid".clone_into(state);
                }
            }
            return;
        }
        let (Some(finalize), Some(state), Some(identifiers)) = (
            order.get("finalize").and_then(|url| url.as_str()),
            order.get("status").and_then(|state| state.as_str()),
            order.get("identifiers").and_then(|list| list.as_array()),
        ) else {
            return;
        };
        let names: Vec<String> = identifiers
            .iter()
            .filter_map(|identifier| identifier.get("value")?.as_str().map(str::to_owned))
            .collect();
        let mut faults = self.lock();
        if creates == Creates::Order {
            let open: Vec<String> = faults
                .orders
                .iter()
                .filter(|(url, (other, other_state))| {
                    url.as_str() != finalize
                        && !matches!(other_state.as_str(), "valid" | "invalid")
                        && other.iter().any(|name| names.contains(name))
                })
                .map(|(url, (_, other_state))| format!("{url} ({other_state})"))
                .collect();
            if !open.is_empty() {
                faults.overlapping_orders.push(format!(
                    "a new order for {} while {} was open",
                    names.join(","),
                    open.join(", ")
                ));
            }
        }
        faults
            .orders
            .insert(finalize.to_owned(), (names, state.to_owned()));
    }

    /// The `replaces` identifiers of the orders the CA created with one, in order.
    pub fn orders_replacing(&self) -> Vec<String> {
        self.lock().orders_replacing.clone()
    }

    /// Every newOrder request, including refused, retried and injected ones.
    pub fn new_order_requests(&self) -> usize {
        self.lock().new_order_requests
    }

    /// Accounts the CA registered (newAccount requests answered with success).
    pub fn new_accounts(&self) -> usize {
        self.lock().new_accounts
    }

    /// Every request seen.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Makes the CA offer ARI: directories read from now on list
    /// [`RENEWAL_INFO_STUB_URL`] as `renewalInfo`, and every request for it is answered with
    /// `window` and `Retry-After: retry_after` without reaching the CA. Call it before the
    /// issuer's first request: an issuer reads the directory once, with its ACME account.
    /// Calling it again changes the window served.
    pub fn serve_renewal_info(&self, window: RenewalWindow, retry_after: Duration) {
        self.lock().renewal_info = Some((window, retry_after));
    }

    /// Answers the next `times` newOrder requests carrying `replaces` with `409
    /// alreadyReplaced` (the certificate was already replaced), as an ARI CA does; orders
    /// without `replaces` go through.
    pub fn refuse_replaces(&self, times: usize) {
        self.lock().refuses_replaces = times;
    }

    /// The certificate identifiers (`AKI.serial`) asked for at the `renewalInfo` stub, in
    /// order.
    pub fn renewal_info_requests(&self) -> Vec<String> {
        self.lock().renewal_info_requests.clone()
    }

    /// The stub's answer to `uri`, when ARI is served and `uri` is the stub's.
    fn renewal_info_answer(&self, method: &Method, uri: &str) -> Option<BytesResponse> {
        let id = uri.strip_prefix(RENEWAL_INFO_STUB_URL)?.strip_prefix('/')?;
        if method != Method::GET {
            return None;
        }
        let mut state = self.lock();
        let (window, retry_after) = state.renewal_info?;
        state.renewal_info_requests.push(id.to_owned());
        let format = |at: time::OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let body = serde_json::json!({
            "suggestedWindow": {"start": format(window.start), "end": format(window.end)},
        })
        .to_string();
        Some(response(
            StatusCode::OK,
            "application/json",
            Some(retry_after),
            body,
        ))
    }

    /// Makes the CA's directory advertise `profiles` (name, description) in `meta.profiles`,
    /// as Let's Encrypt's does. Call it before the issuer's first request: an issuer reads the
    /// directory once.
    pub fn advertise_profiles(&self, profiles: &[(&str, &str)]) {
        self.lock().profiles = Some(
            profiles
                .iter()
                .map(|(name, description)| ((*name).to_owned(), (*description).to_owned()))
                .collect(),
        );
    }

    /// The `profile` of each order the CA created (`None`: the order named none), in order.
    pub fn order_profiles(&self) -> Vec<Option<String>> {
        self.lock().order_profiles.clone()
    }

    /// Whether this order carrying `replaces` is to be refused ([`CaFaults::refuse_replaces`]).
    fn take_replaces_refusal(&self) -> bool {
        let mut state = self.lock();
        if state.refuses_replaces == 0 {
            return false;
        }
        state.refuses_replaces -= 1;
        true
    }

    /// A created order carrying `replaces`, echoing it as an ARI CA does (Pebble 2.4 drops
    /// it, and instant-acme refuses an answer without it), and counting it; `None` when the CA
    /// offers no ARI (the order is answered as Pebble answered it).
    fn with_replaces(&self, body: &[u8], replaces: Option<&str>) -> Option<Bytes> {
        let replaces = replaces?;
        let mut state = self.lock();
        state.renewal_info?;
        state.orders_replacing.push(replaces.to_owned());
        drop(state);
        let mut order = serde_json::from_slice::<serde_json::Value>(body).ok()?;
        order
            .as_object_mut()?
            .insert("replaces".to_owned(), serde_json::json!(replaces));
        Some(Bytes::from(order.to_string()))
    }

    /// The directory as this CA offers it, when `body` is a directory and it offers more
    /// than Pebble: [`RENEWAL_INFO_STUB_URL`] when ARI is served, and the advertised profiles.
    fn with_extensions(&self, body: &[u8]) -> Option<Bytes> {
        let state = self.lock();
        if state.renewal_info.is_none() && state.profiles.is_none() {
            return None;
        }
        let mut directory = serde_json::from_slice::<serde_json::Value>(body).ok()?;
        let fields = directory.as_object_mut()?;
        if !fields.contains_key("newOrder") {
            return None;
        }
        if state.renewal_info.is_some() {
            fields.insert(
                "renewalInfo".to_owned(),
                serde_json::Value::String(RENEWAL_INFO_STUB_URL.to_owned()),
            );
        }
        if let Some(profiles) = &state.profiles {
            let advertised: serde_json::Map<String, serde_json::Value> = profiles
                .iter()
                .map(|(name, description)| (name.clone(), serde_json::json!(description)))
                .collect();
            let meta = fields
                .entry("meta")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert("profiles".to_owned(), serde_json::Value::Object(advertised));
            }
        }
        Some(Bytes::from(directory.to_string()))
    }

    /// Error answers from the CA (not injected ones) with problem type
    /// `urn:ietf:params:acme:error:<short_type>`, e.g. `badNonce`.
    pub fn problems(&self, short_type: &str) -> usize {
        self.lock()
            .problems
            .get(short_type)
            .copied()
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `request`, says what it is, and takes the fault that applies to it, if any.
    fn classify(&self, method: &Method, uri: &str) -> (Creates, Option<Fault>) {
        let mut state = self.lock();
        state.requests += 1;
        let post = method == Method::POST;
        let creates = if post && state.new_order_url.as_deref() == Some(uri) {
            state.new_order_requests += 1;
            Creates::Order
        } else if post && state.new_account_url.as_deref() == Some(uri) {
            Creates::Account
        } else {
            Creates::Nothing
        };
        let matches = |endpoint: &Endpoint| match endpoint {
            Endpoint::NewOrder => creates == Creates::Order,
            Endpoint::NewAccount => creates == Creates::Account,
            Endpoint::Finalize => post && uri.contains("finalize"),
            Endpoint::Challenge => post && uri.contains("/chalZ/"),
            Endpoint::AnyPost => post,
        };
        let fault = state
            .rules
            .iter_mut()
            .find(|rule| rule.remaining > 0 && matches(&rule.endpoint))
            .map(|rule| {
                rule.remaining -= 1;
                rule.fault.clone()
            });
        (creates, fault)
    }

    /// Counts what the CA created.
    fn created(&self, creates: Creates, status: StatusCode, order: &OrderAsked) {
        if !status.is_success() {
            return;
        }
        let mut state = self.lock();
        match creates {
            Creates::Order => {
                state.new_orders += 1;
                state.order_profiles.push(order.profile.clone());
                for name in &order.names {
                    *state.orders_by_name.entry(name.clone()).or_default() += 1;
                }
            }
            Creates::Account => state.new_accounts += 1,
            Creates::Nothing => {}
        }
    }

    /// Learns endpoint URLs from a directory, and counts problem types of error answers.
    fn observe(&self, status: StatusCode, body: &[u8]) {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let mut state = self.lock();
        if status.is_success() {
            if let Some(url) = json.get("newOrder").and_then(|url| url.as_str()) {
                state.new_order_url = Some(url.to_owned());
            }
            if let Some(url) = json.get("newAccount").and_then(|url| url.as_str()) {
                state.new_account_url = Some(url.to_owned());
            }
        } else if let Some(kind) = json.get("type").and_then(|kind| kind.as_str()) {
            let short = kind.trim_start_matches("urn:ietf:params:acme:error:");
            *state.problems.entry(short.to_owned()).or_default() += 1;
        }
    }
}

/// What a request asks the CA to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Creates {
    Order,
    Account,
    Nothing,
}

/// An HTTP client that injects the faults of its [`CaFaults`] and counts requests.
pub struct FaultyCaClient {
    inner: Box<dyn HttpClient>,
    faults: CaFaults,
}

impl HttpClient for FaultyCaClient {
    fn request(&self, request: Request<BodyWrapper<Bytes>>) -> ResponseFuture {
        if let Some(answer) = self
            .faults
            .renewal_info_answer(request.method(), &request.uri().to_string())
        {
            return Box::pin(async move { Ok(answer) });
        }
        let (creates, fault) = self
            .faults
            .classify(request.method(), &request.uri().to_string());
        let (request, order) = match creates {
            Creates::Order => order_asked(request),
            _ => (request, OrderAsked::default()),
        };
        let replaces = order.replaces.clone();
        let observes = request.method() == Method::GET;
        let faults = self.faults.clone();
        if replaces.is_some() && faults.take_replaces_refusal() {
            return Box::pin(async move {
                Ok(problem_response(
                    StatusCode::CONFLICT,
                    "alreadyReplaced",
                    "injected: the certificate was already replaced",
                    None,
                ))
            });
        }
        match fault {
            Some(Fault::RateLimited { retry_after }) => Box::pin(async move {
                Ok(problem_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rateLimited",
                    "injected rate limit",
                    Some(retry_after),
                ))
            }),
            Some(Fault::ServiceUnavailable) => Box::pin(async move {
                Ok(problem_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "serverInternal",
                    "injected unavailability",
                    None,
                ))
            }),
            Some(Fault::ConnectionReset) => {
                let response = self.inner.request(request);
                Box::pin(async move {
                    // The CA processes the request; only its answer is lost.
                    if let Ok(response) = response.await {
                        faults.created(creates, response.parts.status, &order);
                    }
                    Err(instant_acme::Error::Other(Box::new(std::io::Error::from(
                        std::io::ErrorKind::ConnectionReset,
                    ))))
                })
            }
            Some(Fault::ValidationFinishedFirst { after }) => {
                let response = self.inner.request(request);
                Box::pin(async move {
                    let mut response = response.await?;
                    tokio::time::sleep(after).await;
                    let body = response
                        .body
                        .into_bytes()
                        .await
                        .map_err(instant_acme::Error::Other)?;
                    let body = failed_challenge(&body).unwrap_or(body);
                    let mut parts = response.parts;
                    parts.headers.remove(http::header::CONTENT_LENGTH);
                    Ok(BytesResponse {
                        parts,
                        body: Box::new(body),
                    })
                })
            }
            None => {
                let response = self.inner.request(request);
                Box::pin(async move {
                    let mut response = response.await?;
                    let status = response.parts.status;
                    faults.created(creates, status, &order);
                    // Read the body to look at it, then hand instant-acme a copy.
                    let body = response
                        .body
                        .into_bytes()
                        .await
                        .map_err(instant_acme::Error::Other)?;
                    faults.observe(status, &body);
                    faults.observe_order(creates, status, &body);
                    let body = if status.is_success() && observes {
                        faults.with_extensions(&body).unwrap_or(body)
                    } else if status.is_success() && creates == Creates::Order {
                        faults
                            .with_replaces(&body, replaces.as_deref())
                            .unwrap_or(body)
                    } else {
                        body
                    };
                    let mut parts = response.parts;
                    // The body may have grown: let the client read it whole.
                    parts.headers.remove(http::header::CONTENT_LENGTH);
                    Ok(BytesResponse {
                        parts,
                        body: Box::new(body),
                    })
                })
            }
        }
    }
}

/// What a newOrder request asks for (from its JWS payload).
#[derive(Debug, Default)]
struct OrderAsked {
    names: Vec<String>,
    replaces: Option<String>,
    profile: Option<String>,
}

/// What a newOrder request asks for, and the request whole again.
fn order_asked(request: Request<BodyWrapper<Bytes>>) -> (Request<BodyWrapper<Bytes>>, OrderAsked) {
    use std::future::Future as _;

    use base64::Engine as _;
    use http_body_util::BodyExt as _;
    let (parts, body) = request.into_parts();
    // A body of one in-memory frame: collecting it is ready at the first poll.
    let mut collecting = std::pin::pin!(body.collect());
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let bytes = match collecting.as_mut().poll(&mut context) {
        std::task::Poll::Ready(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
    };
    let order = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|jws| {
            let payload = jws.get("payload")?.as_str()?;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|payload| serde_json::from_slice::<serde_json::Value>(&payload).ok());
    let field = |name: &str| {
        order
            .as_ref()
            .and_then(|order| order.get(name)?.as_str().map(str::to_owned))
    };
    let (replaces, profile) = (field("replaces"), field("profile"));
    let names = order
        .and_then(|order| {
            let identifiers = order.get("identifiers")?.as_array()?.clone();
            Some(
                identifiers
                    .iter()
                    .filter_map(|identifier| identifier.get("value")?.as_str().map(str::to_owned))
                    .collect(),
            )
        })
        .unwrap_or_default();
    (
        Request::from_parts(parts, BodyWrapper::from(bytes.to_vec())),
        OrderAsked {
            names,
            replaces,
            profile,
        },
    )
}

/// `body`, a challenge, marked `invalid` with an injected `unauthorized` problem.
fn failed_challenge(body: &[u8]) -> Option<Bytes> {
    let mut challenge = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let fields = challenge.as_object_mut()?;
    fields.insert("status".to_owned(), serde_json::json!("invalid"));
    fields.insert(
        "error".to_owned(),
        serde_json::json!({
            "type": "urn:ietf:params:acme:error:unauthorized",
            "detail": "injected: the validation finished before the answer",
            "status": 403,
        }),
    );
    Some(Bytes::from(challenge.to_string()))
}

fn problem_response(
    status: StatusCode,
    short_type: &str,
    detail: &str,
    retry_after: Option<Duration>,
) -> BytesResponse {
    let body = serde_json::json!({
        "type": format!("urn:ietf:params:acme:error:{short_type}"),
        "detail": detail,
        "status": status.as_u16(),
    })
    .to_string();
    response(status, "application/problem+json", retry_after, body)
}

fn response(
    status: StatusCode,
    content_type: &str,
    retry_after: Option<Duration>,
    body: String,
) -> BytesResponse {
    let mut builder = http::Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type);
    if let Some(delay) = retry_after {
        builder = builder.header(RETRY_AFTER, delay.as_secs().to_string());
    }
    let (parts, ()) = match builder.body(()) {
        Ok(response) => response.into_parts(),
        // The parts above are all valid; fall back to a bare status if that ever changes.
        Err(_) => {
            let mut response = http::Response::new(());
            *response.status_mut() = status;
            response.into_parts()
        }
    };
    BytesResponse {
        parts,
        body: Box::new(Bytes::from(body)),
    }
}

/// A vault that fails `put_material` when told to, and otherwise forwards to `inner`.
pub struct FailingVault {
    inner: Arc<dyn Vault>,
    key_writes_to_fail: AtomicUsize,
    chain_writes_to_fail: AtomicUsize,
}

impl FailingVault {
    /// Forwards everything to `inner` until told to fail.
    pub fn new(inner: Arc<dyn Vault>) -> FailingVault {
        FailingVault {
            inner,
            key_writes_to_fail: AtomicUsize::new(0),
            chain_writes_to_fail: AtomicUsize::new(0),
        }
    }

    /// Fails the next `times` writes of a key alone (an order's pending key).
    pub fn fail_key_writes(&self, times: usize) {
        self.key_writes_to_fail.store(times, Ordering::SeqCst);
    }

    /// Fails the next `times` writes of an issued chain with its key.
    pub fn fail_chain_writes(&self, times: usize) {
        self.chain_writes_to_fail.store(times, Ordering::SeqCst);
    }
}

/// Takes one from `counter` if it is above zero.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

#[async_trait]
impl Vault for FailingVault {
    async fn put_material(
        &self,
        certificate: &CertificateId,
        material: &CertificateMaterial,
    ) -> Result<MaterialVersion> {
        let counter = match material.chain_pem {
            Some(_) => &self.chain_writes_to_fail,
            None => &self.key_writes_to_fail,
        };
        if take_one(counter) {
            return Err(Error::vault(std::io::Error::other(
                "injected vault write failure",
            )));
        }
        self.inner.put_material(certificate, material).await
    }

    async fn get_material(
        &self,
        certificate: &CertificateId,
        version: &MaterialVersion,
    ) -> Result<CertificateMaterial> {
        self.inner.get_material(certificate, version).await
    }

    async fn delete_material(&self, certificate: &CertificateId) -> Result<()> {
        self.inner.delete_material(certificate).await
    }

    async fn put_acme_account(
        &self,
        directory_url: &str,
        credentials: &SecretString,
    ) -> Result<()> {
        self.inner
            .put_acme_account(directory_url, credentials)
            .await
    }

    async fn get_acme_account(&self, directory_url: &str) -> Result<Option<SecretString>> {
        self.inner.get_acme_account(directory_url).await
    }

    async fn prune_material(
        &self,
        certificate: &CertificateId,
        keep: &[MaterialVersion],
        superseded: &[MaterialVersion],
    ) -> Result<()> {
        self.inner
            .prune_material(certificate, keep, superseded)
            .await
    }

    async fn storage_generation(&self) -> Result<Option<String>> {
        self.inner.storage_generation().await
    }

    fn is_in_generation(&self, version: &MaterialVersion, generation: &str) -> bool {
        self.inner.is_in_generation(version, generation)
    }

    async fn rotate_data_key(&self) -> Result<bool> {
        self.inner.rotate_data_key().await
    }

    async fn load_sweep(&self) -> Result<Option<MaterialSweep>> {
        self.inner.load_sweep().await
    }

    async fn save_sweep(&self, sweep: &MaterialSweep) -> Result<()> {
        self.inner.save_sweep(sweep).await
    }
}

/// A DNS provider that accepts every write and writes nothing, so DNS-01 validation fails.
#[derive(Debug, Default)]
pub struct SkippingDnsProvider {
    skipped: AtomicUsize,
}

impl SkippingDnsProvider {
    /// A provider that has skipped nothing yet.
    pub fn new() -> SkippingDnsProvider {
        SkippingDnsProvider::default()
    }

    /// How many `set_txt` calls it ignored.
    pub fn skipped_writes(&self) -> usize {
        self.skipped.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl DnsProvider for SkippingDnsProvider {
    async fn set_txt(&self, _zone: &Zone, _name: &str, _value: &str) -> Result<()> {
        self.skipped.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn clear_txt(&self, _zone: &Zone, _name: &str) -> Result<()> {
        Ok(())
    }
}

/// A [`StepHook`] that panics right after `step`, as a crash would: nothing after it runs (no
/// cleanup, no failure recorded, the lease left to expire). Run the issuance in a spawned task
/// and expect the panic from its `JoinHandle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashAfter(pub Step);

impl StepHook for CrashAfter {
    fn after(&self, step: Step, certificate: &CertificateId) {
        if step == self.0 {
            panic!("simulated crash after step {step} of {certificate}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(finalize: &str, name: &str, status: &str) -> Vec<u8> {
        serde_json::json!({
            "status": status,
            "identifiers": [{"type": "dns", "value": name}],
            "finalize": finalize,
        })
        .to_string()
        .into_bytes()
    }

    /// The soak (issue 12) saw a validation time out, its authorization `invalid`, and a later
    /// run's new order counted as overlapping the dead one, which the client had last seen
    /// `pending`.
    #[test]
    fn an_invalid_authorization_ends_the_open_orders_for_its_name() {
        let ended = CaFaults::new();
        ended.observe_order(
            Creates::Order,
            StatusCode::CREATED,
            &order("https://ca/finalize/1", "a.example", "pending"),
        );
        let authorization = serde_json::json!({
            "status": "invalid",
            "identifier": {"type": "dns", "value": "a.example"},
        });
        ended.observe_order(
            Creates::Nothing,
            StatusCode::OK,
            authorization.to_string().as_bytes(),
        );
        ended.observe_order(
            Creates::Order,
            StatusCode::CREATED,
            &order("https://ca/finalize/2", "a.example", "pending"),
        );
        assert_eq!(ended.overlapping_orders(), Vec::<String>::new());

        // Without it, the first order is still open.
        let open = CaFaults::new();
        open.observe_order(
            Creates::Order,
            StatusCode::CREATED,
            &order("https://ca/finalize/1", "a.example", "pending"),
        );
        open.observe_order(
            Creates::Order,
            StatusCode::CREATED,
            &order("https://ca/finalize/2", "a.example", "pending"),
        );
        assert_eq!(open.overlapping_orders().len(), 1);
    }
}
