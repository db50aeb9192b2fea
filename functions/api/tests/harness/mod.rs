//! The harness of the handler tests: the API over a fresh SQLite file and real DNS answers from
//! pebble-challtestsrv, and requests built from the API Gateway events in `events/`.
//!
//! Pebble and challtestsrv are started once per test binary ([`dns`]) and shared: each test
//! uses its own hostnames ([`unique_apex`]) for any DNS record it sets, and its own database.
//! A request is an event file patched as JSON ([`ApiCall`]), turned into a `lambda_http`
//! request exactly as the Lambda runtime does (`lambda_http::request::from_str`), and handed to
//! the handler the route table names for that event's function.

// Each test binary (handlers, certificates) uses a different part of the harness.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use edgecert_api::{ApiState, ROUTES, gateway};
use edgecert_core::model::ApiKeyHash;
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::SystemClock;
use edgecert_core::usecases::EdgeSettings;
use edgecert_dns::HickoryResolver;
use edgecert_integration::{Challtestsrv, Pebble, PebbleOptions};
use edgecert_testkit::{Adapters, services_over};
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// The account id in the fixtures' authorizer context (and in `accounts-update`'s path).
pub const ACCOUNT_PLACEHOLDER: &str = "acct_placeholder000000000";

/// The edge's CNAME target in these tests. A name under a real public suffix (not `.test`,
/// which is special-use and refused anyway), so the rule that the operator's registered domain
/// ([`OPERATOR_DOMAIN`]) cannot be whitelisted is what the tests see.
pub const EDGE_HOSTNAME: &str = "edge.edgecert-operator.com";

/// The registrable domain of [`EDGE_HOSTNAME`]: the operator's own.
pub const OPERATOR_DOMAIN: &str = "edgecert-operator.com";

/// The edge's address in these tests: challtestsrv answers every A query with 127.0.0.1 unless
/// told otherwise, so a hostname "points at the edge" until a test gives it another address.
pub const EDGE_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// An origin host that resolves to a globally reachable address, so the strict origin policy
/// accepts it. (Documentation ranges such as 198.51.100.0/24 are not globally reachable in the
/// IANA registry, so the policy refuses them.) Handler tests never connect to it.
pub const ORIGIN_HOST: &str = "origin.saas-platform.com";
const ORIGIN_ADDRESS: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);

/// The event files, by the function (Lambda binary) of their route.
pub const FIXTURES: &[(&str, &str)] = &[
    (
        "accounts-create",
        include_str!("../../../../events/accounts-create.json"),
    ),
    (
        "accounts-list",
        include_str!("../../../../events/accounts-list.json"),
    ),
    (
        "accounts-update",
        include_str!("../../../../events/accounts-update.json"),
    ),
    (
        "limits-get",
        include_str!("../../../../events/limits-get.json"),
    ),
    (
        "domains-create",
        include_str!("../../../../events/domains-create.json"),
    ),
    (
        "domains-list",
        include_str!("../../../../events/domains-list.json"),
    ),
    (
        "domains-get",
        include_str!("../../../../events/domains-get.json"),
    ),
    (
        "domains-update",
        include_str!("../../../../events/domains-update.json"),
    ),
    (
        "domains-delete",
        include_str!("../../../../events/domains-delete.json"),
    ),
    (
        "domains-dns",
        include_str!("../../../../events/domains-dns.json"),
    ),
    (
        "domains-verify",
        include_str!("../../../../events/domains-verify.json"),
    ),
    (
        "domains-ssl",
        include_str!("../../../../events/domains-ssl.json"),
    ),
    (
        "domains-nudge",
        include_str!("../../../../events/domains-nudge.json"),
    ),
    (
        "zones-create",
        include_str!("../../../../events/zones-create.json"),
    ),
    (
        "zones-list",
        include_str!("../../../../events/zones-list.json"),
    ),
    (
        "zones-delete",
        include_str!("../../../../events/zones-delete.json"),
    ),
    (
        "zones-verification",
        include_str!("../../../../events/zones-verification.json"),
    ),
    (
        "certificates-create",
        include_str!("../../../../events/certificates-create.json"),
    ),
    (
        "certificates-list",
        include_str!("../../../../events/certificates-list.json"),
    ),
    (
        "certificates-get",
        include_str!("../../../../events/certificates-get.json"),
    ),
    (
        "certificates-download",
        include_str!("../../../../events/certificates-download.json"),
    ),
    (
        "certificates-renew",
        include_str!("../../../../events/certificates-renew.json"),
    ),
    (
        "certificates-update",
        include_str!("../../../../events/certificates-update.json"),
    ),
    (
        "certificates-delete",
        include_str!("../../../../events/certificates-delete.json"),
    ),
    (
        "certificates-logs",
        include_str!("../../../../events/certificates-logs.json"),
    ),
];

/// The authorizer's `REQUEST` event.
pub const AUTHORIZER_EVENT: &str = include_str!("../../../../events/authorizer.json");

static PEBBLE: OnceCell<Pebble> = OnceCell::const_new();

/// challtestsrv, started (with Pebble) on first use and shared by every test of this binary,
/// with [`ORIGIN_HOST`]'s A record set. Its processes stop when the test binary exits.
pub async fn dns() -> Challtestsrv {
    pebble().await.challtestsrv().clone()
}

/// The Pebble (with its challtestsrv) shared by every test of this binary, started on first
/// use.
pub async fn pebble() -> &'static Pebble {
    PEBBLE
        .get_or_try_init(|| async {
            let pebble = Pebble::start(PebbleOptions::default()).await?;
            // Once only: challtestsrv appends to a host's A records at every call, and sends
            // answers past 512 bytes over UDP without truncating them; the resolver cannot
            // read those and every lookup of the origin would time out (about 9 s).
            pebble
                .challtestsrv()
                .add_a(ORIGIN_HOST, &[ORIGIN_ADDRESS])
                .await?;
            anyhow::Ok(pebble)
        })
        .await
        .expect("Pebble and pebble-challtestsrv start (apt-get install -y pebble)")
}

/// A registrable name (`<label>.com`) no other test of this process uses, for tests that set
/// DNS records in the shared challtestsrv.
pub fn unique_apex(purpose: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{purpose}-{}-{}.com",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// An account created through `POST /v1/accounts`.
#[derive(Debug, Clone)]
pub struct TestAccount {
    /// `acct_…`
    pub id: String,
    /// The key shown once at creation.
    pub api_key: String,
}

/// The API over a fresh database, with challtestsrv as its only DNS server.
pub struct Harness {
    /// What the handlers get.
    pub state: ApiState,
    /// The shared mock DNS.
    pub dns: Challtestsrv,
    admin_key: String,
    // Dropped last: the database file lives here.
    _adapters: Adapters,
}

impl Harness {
    /// The API with the strict origin policy (no loopback, private or link-local origins).
    pub async fn start() -> Harness {
        Self::with_origin_policy(OriginPolicy::default()).await
    }

    /// The API with `origin_policy`.
    pub async fn with_origin_policy(origin_policy: OriginPolicy) -> Harness {
        let dns = dns().await;
        let adapters = Adapters::sqlite_in(tempfile::tempdir().expect("a temporary directory"));
        let admin_key = format!("eca_admin_{}", unique_apex("key"));
        let mut services = services_over(
            adapters.store.clone(),
            adapters.vault.clone(),
            Arc::new(HickoryResolver::with_name_server(dns.dns_server_addr())),
            Arc::new(SystemClock),
            origin_policy,
        );
        services.edge = EdgeSettings {
            hostname: EDGE_HOSTNAME.to_owned(),
            addresses: vec![EDGE_ADDRESS],
        };
        Harness {
            state: ApiState {
                services,
                admin_key: Some(ApiKeyHash::of(&admin_key)),
            },
            dns,
            admin_key,
            _adapters: adapters,
        }
    }

    /// The operator's admin key (plain text).
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// Runs `call` through the handler the route table names for its function.
    pub async fn call(&self, call: ApiCall) -> Reply {
        let route = ROUTES
            .iter()
            .find(|route| route.function == call.function)
            .unwrap_or_else(|| panic!("no route is served by {}", call.function));
        let text = serde_json::to_string(&call.event).expect("events serialise");
        let request = lambda_http::request::from_str(&text).unwrap_or_else(|error| {
            panic!("{} is not an API Gateway event: {error}", call.function)
        });
        Reply::read((route.handler)(&self.state, request).await)
    }

    /// Serves a raw HTTP request the way API Gateway (as emulated by the local runner) would.
    pub async fn dispatch(
        &self,
        method: &str,
        uri: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(value) = authorization {
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        let (parts, ()) = builder.body(()).expect("a valid request").into_parts();
        Reply::read(gateway::dispatch(&self.state, parts, body.to_vec()).await)
    }

    /// Creates an account on `plan` through `POST /v1/accounts`.
    pub async fn create_account(&self, plan: &str, require_ownership: bool) -> TestAccount {
        let reply = self
            .call(ApiCall::new("accounts-create").by_admin().json(json!({
                "name": format!("Customer on {plan}"),
                "plan": plan,
                "require_ownership_verification": require_ownership,
            })))
            .await;
        let body = reply.expect(201);
        TestAccount {
            id: body["id"].as_str().expect("an account id").to_owned(),
            api_key: body["api_key"].as_str().expect("an API key").to_owned(),
        }
    }

    /// Whitelists `hostname` for `account` with a valid origin; the created domain.
    pub async fn create_domain(&self, account: &TestAccount, hostname: &str) -> Value {
        self.call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .json(json!({ "hostname": hostname, "origin_url": origin_url() })),
        )
        .await
        .expect(201)
    }

    /// Calls the route of `function` on domain `id` as `account`.
    pub async fn on_domain(
        &self,
        function: &'static str,
        account: &TestAccount,
        id: &str,
    ) -> Reply {
        self.call(ApiCall::new(function).by_account(&account.id).id(id))
            .await
    }
}

/// An origin URL the strict policy accepts.
pub fn origin_url() -> String {
    format!("https://{ORIGIN_HOST}/")
}

/// One request, built from the event file of `function` and patched.
#[derive(Debug, Clone)]
pub struct ApiCall {
    function: &'static str,
    event: Value,
}

impl ApiCall {
    /// The event file of `function`, unpatched.
    pub fn new(function: &'static str) -> ApiCall {
        let (_, text) = FIXTURES
            .iter()
            .find(|(name, _)| *name == function)
            .unwrap_or_else(|| panic!("no event file for {function}"));
        ApiCall {
            function,
            event: serde_json::from_str(text)
                .unwrap_or_else(|error| panic!("events/{function}.json: {error}")),
        }
    }

    /// The event as JSON.
    pub fn event(&self) -> &Value {
        &self.event
    }

    /// As if the authorizer returned `context` (what `auth::authorize` gives).
    pub fn with_authorizer_context(mut self, context: Value) -> ApiCall {
        self.event["requestContext"]["authorizer"] = json!({ "lambda": context });
        self
    }

    /// As an account's API key.
    pub fn by_account(self, account_id: &str) -> ApiCall {
        self.with_authorizer_context(json!({ "role": "account", "account_id": account_id }))
    }

    /// As the operator's admin key.
    pub fn by_admin(self) -> ApiCall {
        self.with_authorizer_context(json!({ "role": "admin" }))
    }

    /// With no authorizer context at all.
    pub fn without_authorizer(mut self) -> ApiCall {
        if let Some(context) = self.event["requestContext"].as_object_mut() {
            context.remove("authorizer");
        }
        self
    }

    /// With `id` as the `{id}` path parameter, in `pathParameters`, `rawPath` and
    /// `requestContext.http.path`.
    pub fn id(mut self, id: &str) -> ApiCall {
        let placeholder = self.event["pathParameters"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{} has no {{id}} parameter", self.function))
            .to_owned();
        self.event["pathParameters"]["id"] = json!(id);
        let patched = self.event["rawPath"]
            .as_str()
            .expect("a rawPath")
            .replace(&format!("/{placeholder}"), &format!("/{id}"));
        self.event["requestContext"]["http"]["path"] = json!(patched);
        self.event["rawPath"] = json!(patched);
        self
    }

    /// With `text` as the body (and its `content-length`).
    pub fn body(mut self, text: &str) -> ApiCall {
        self.event["body"] = json!(text);
        self.event["headers"]["content-length"] = json!(text.len().to_string());
        self.event["headers"]["content-type"] = json!("application/json");
        self
    }

    /// With `bytes` as a base64-encoded body, as API Gateway sends bodies whose content type it
    /// does not take for text.
    pub fn base64_body(mut self, bytes: &[u8], content_type: &str) -> ApiCall {
        use base64::Engine as _;
        self.event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
        self.event["isBase64Encoded"] = json!(true);
        self.event["headers"]["content-length"] = json!(bytes.len().to_string());
        self.event["headers"]["content-type"] = json!(content_type);
        self
    }

    /// With `value` as the JSON body.
    pub fn json(self, value: Value) -> ApiCall {
        self.body(&value.to_string())
    }

    /// With no body.
    pub fn without_body(mut self) -> ApiCall {
        if let Some(event) = self.event.as_object_mut() {
            event.remove("body");
        }
        if let Some(headers) = self.event["headers"].as_object_mut() {
            headers.remove("content-length");
        }
        self
    }

    /// With this query string (`rawQueryString` and `queryStringParameters`).
    pub fn query(mut self, pairs: &[(&str, &str)]) -> ApiCall {
        let raw: Vec<String> = pairs
            .iter()
            .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
            .collect();
        self.event["rawQueryString"] = json!(raw.join("&"));
        let parameters: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), json!(value)))
            .collect();
        self.event["queryStringParameters"] = Value::Object(parameters);
        self
    }
}

/// `text` with everything but unreserved characters percent-encoded, as a client would send it.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A handler's response, read.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `content-type`, if any.
    pub content_type: Option<String>,
    /// The JSON body; `Null` when there is none.
    pub body: Value,
}

impl Reply {
    fn read(response: Response<Body>) -> Reply {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes: &[u8] = match response.body() {
            Body::Empty => &[],
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            _ => &[],
        };
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes).unwrap_or_else(|error| {
                panic!(
                    "status {status}: body is not JSON ({error}): {}",
                    String::from_utf8_lossy(bytes)
                )
            })
        };
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// The body, after checking the status is `status`.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "expected status {status}, got {} with {}",
            self.status, self.body
        );
        self.body
    }

    /// The error code, after checking the status and the error shape
    /// (`{"error": {"code", "message"}}`, JSON content type, a non-empty message).
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> String {
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/json"),
            "errors are JSON"
        );
        let body = self.expect(status);
        assert_eq!(body["error"]["code"], json!(code), "in {body}");
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("an error message in {body}"));
        assert!(!message.is_empty(), "an empty message in {body}");
        let keys: Vec<_> = body.as_object().expect("an object").keys().collect();
        assert_eq!(keys, ["error"], "nothing but the error in {body}");
        message.to_owned()
    }
}
