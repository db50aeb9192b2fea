//! A recording proxy in front of moto: every AWS call a function makes, as IAM would authorize
//! it (action and resource ARN), attributed to the function by the endpoint it was given.
//! DynamoDB, Secrets Manager and KMS (JSON protocols), Route 53 (REST) and STS (query) are
//! read.
//!
//! Each function gets an endpoint of its own ([`AwsRecorder::endpoint_for`]: a listener on a
//! port of 127.0.0.1 that only that function is told about, as `AWS_ENDPOINT_URL`). The proxy
//! forwards every request to moto unchanged but for `Host`, returns moto's answer, and records
//! what the request needed ([`crate::iam::request`]). moto does not check signatures, so the
//! rewritten `Host` costs nothing.
//!
//! Credentials an `sts:AssumeRole` answer hands out are remembered: calls signed with them are
//! recorded as that role's ([`CallerCredentials::AssumedRole`]), not the function's.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::{Moto, Route53Zone};
use crate::iam::request::{
    Authorization, AwsRequest, Signature, assumed_access_key_in_response, authorizations,
    kms_key_arn_in_response, secret_arn_in_response,
};
use crate::template::stack::ACCOUNT_ID;

/// The largest request or response body forwarded (moto's answers and EdgeCert's requests are
/// far smaller).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long moto may take to answer one forwarded request.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// Whose credentials signed a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerCredentials {
    /// The function's own (its role's).
    Own,
    /// Credentials an `sts:AssumeRole` call of this recorder returned for `role_arn`.
    AssumedRole {
        /// The role assumed.
        role_arn: String,
    },
    /// None: the request was not signed.
    Unsigned,
}

/// One authorization one recorded request needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCall {
    /// The function that made it (the name its endpoint was created for).
    pub caller: String,
    /// Whose credentials signed it.
    pub credentials: CallerCredentials,
    /// The region it was signed for.
    pub region: Option<String>,
    /// Action, resource and the keys of the items it touched.
    pub authorization: Authorization,
    /// moto's status code (502 when moto could not be reached).
    pub status: u16,
}

/// What the listeners share.
struct Shared {
    upstream: String,
    client: reqwest::Client,
    calls: Mutex<Vec<AwsCall>>,
    /// Access keys handed out by `AssumeRole`, with the role they stand for.
    assumed: Mutex<HashMap<String, String>>,
    /// Hosted zones whose records are published in DNS after each change.
    zones: Mutex<Vec<Arc<Route53Zone>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic cannot leave these collections half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The recording proxy; its listeners stop when it is dropped.
pub struct AwsRecorder {
    shared: Arc<Shared>,
    moto_env: Vec<(String, String)>,
    endpoints: Mutex<HashMap<String, SocketAddr>>,
    listeners: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for AwsRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsRecorder")
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl AwsRecorder {
    /// A recorder forwarding to `moto`.
    pub fn new(moto: &Moto) -> anyhow::Result<AwsRecorder> {
        let client = super::http_client_builder(&[])?
            .timeout(UPSTREAM_TIMEOUT)
            .build()
            .context("building the recorder's HTTP client")?;
        Ok(AwsRecorder {
            shared: Arc::new(Shared {
                upstream: moto.endpoint_url(),
                client,
                calls: Mutex::new(Vec::new()),
                assumed: Mutex::new(HashMap::new()),
                zones: Mutex::new(Vec::new()),
            }),
            moto_env: moto.aws_env(),
            endpoints: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
        })
    }

    /// The endpoint URL of `caller` (e.g. `http://127.0.0.1:41234`): every request to it is
    /// recorded as `caller`'s. The same caller always gets the same endpoint.
    pub async fn endpoint_for(&self, caller: &str) -> anyhow::Result<String> {
        if let Some(address) = lock(&self.endpoints).get(caller) {
            return Ok(format!("http://{address}"));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding a recorder endpoint on 127.0.0.1")?;
        let address = listener.local_addr().context("the recorder's address")?;
        let mut endpoints = lock(&self.endpoints);
        if let Some(existing) = endpoints.get(caller) {
            // Another task created it meanwhile; this listener is dropped unused.
            return Ok(format!("http://{existing}"));
        }
        endpoints.insert(caller.to_owned(), address);
        lock(&self.listeners).push(tokio::spawn(serve(
            listener,
            caller.to_owned(),
            Arc::clone(&self.shared),
        )));
        Ok(format!("http://{address}"))
    }

    /// The AWS environment of a process that is `caller`: moto's ([`Moto::aws_env`]) with the
    /// endpoint replaced by `caller`'s.
    pub async fn aws_env(&self, caller: &str) -> anyhow::Result<Vec<(String, String)>> {
        let endpoint = self.endpoint_for(caller).await?;
        Ok(self
            .moto_env
            .iter()
            .map(|(name, value)| {
                if name == "AWS_ENDPOINT_URL" {
                    (name.clone(), endpoint.clone())
                } else {
                    (name.clone(), value.clone())
                }
            })
            .collect())
    }

    /// Publishes `zone`'s records in DNS after every change a caller makes to it, before the
    /// caller gets its answer (see [`Route53Zone`]).
    pub fn publish_in_dns(&self, zone: Arc<Route53Zone>) {
        lock(&self.shared.zones).push(zone);
    }

    /// Every call recorded so far, in the order they were answered.
    pub fn calls(&self) -> Vec<AwsCall> {
        lock(&self.shared.calls).clone()
    }
}

impl Drop for AwsRecorder {
    fn drop(&mut self) {
        for listener in lock(&self.listeners).drain(..) {
            listener.abort();
        }
    }
}

async fn serve(listener: TcpListener, caller: String, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (caller, shared) = (caller.clone(), Arc::clone(&shared));
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let (caller, shared) = (caller.clone(), Arc::clone(&shared));
                        async move { Ok::<_, Infallible>(forward(&caller, &shared, request).await) }
                    });
                    if let Err(error) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%error, "recorder connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Headers not forwarded either way: the connection's own, and what the client recomputes.
const NOT_FORWARDED: [&str; 5] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

/// Forwards `request` to moto, records it, and returns moto's answer.
async fn forward(
    caller: &str,
    shared: &Shared,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the recorder could not read the request: {error}"),
            );
        }
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let signature = header("authorization").and_then(Signature::read);
    let target = header("x-amz-target");
    let aws_request = AwsRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        target,
        signature: signature.as_ref(),
        body: &body,
    };
    let needed = authorizations(&aws_request, ACCOUNT_ID);

    let path_and_query = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut upstream = shared
        .client
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", shared.upstream),
        )
        .body(body.clone());
    for (name, value) in &parts.headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let (status, headers, answer) = match upstream.send().await {
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            match response.bytes().await {
                Ok(answer) => (status, headers, answer),
                Err(error) => (
                    StatusCode::BAD_GATEWAY,
                    Default::default(),
                    Bytes::from(format!("reading moto's answer: {error}")),
                ),
            }
        }
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            Default::default(),
            Bytes::from(format!("forwarding to moto: {error}")),
        ),
    };

    if status.is_success() {
        publish_changed_zones(shared, &needed).await;
    }
    record(caller, shared, signature.as_ref(), needed, status, &answer);

    let mut response = Response::new(Full::new(answer));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// Publishes in DNS the zones a successful request changed records of.
async fn publish_changed_zones(shared: &Shared, needed: &[Authorization]) {
    let changed: Vec<Arc<Route53Zone>> = lock(&shared.zones)
        .iter()
        .filter(|zone| {
            needed.iter().any(|authorization| {
                authorization.action.as_deref() == Some("route53:ChangeResourceRecordSets")
                    && authorization
                        .resource
                        .ends_with(&format!("hostedzone/{}", zone.bare_id()))
            })
        })
        .cloned()
        .collect();
    for zone in changed {
        if let Err(error) = zone.publish().await {
            tracing::warn!(error = %format!("{error:#}"), zone = %zone.id, "publishing a hosted zone in DNS");
        }
    }
}

/// Records the authorizations of one answered request.
fn record(
    caller: &str,
    shared: &Shared,
    signature: Option<&Signature>,
    needed: Vec<Authorization>,
    status: StatusCode,
    answer: &[u8],
) {
    let credentials = match signature {
        None => CallerCredentials::Unsigned,
        Some(signature) => match lock(&shared.assumed).get(&signature.access_key_id) {
            Some(role_arn) => CallerCredentials::AssumedRole {
                role_arn: role_arn.clone(),
            },
            None => CallerCredentials::Own,
        },
    };
    let mut calls = Vec::with_capacity(needed.len());
    for mut authorization in needed {
        let action = authorization.action.as_deref().unwrap_or_default();
        if action.starts_with("secretsmanager:") && status.is_success() {
            // The full ARN, with the random suffix IAM matches against.
            if let Some(arn) = secret_arn_in_response(answer) {
                authorization.resource = arn;
            }
        }
        if action.starts_with("kms:") && authorization.resource == "*" && status.is_success() {
            // A request that named no key: the answer names the one used.
            if let Some(arn) = kms_key_arn_in_response(answer) {
                authorization.resource = arn;
            }
        }
        if action == "sts:AssumeRole" && status.is_success() {
            if let Some(key) = assumed_access_key_in_response(answer) {
                lock(&shared.assumed).insert(key, authorization.resource.clone());
            }
        }
        calls.push(AwsCall {
            caller: caller.to_owned(),
            credentials: credentials.clone(),
            region: signature.map(|signature| signature.region.clone()),
            authorization,
            status: status.as_u16(),
        });
    }
    lock(&shared.calls).extend(calls);
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_recorded_per_endpoint_and_answered_by_moto() {
        let moto = Moto::shared().await.unwrap();
        let recorder = AwsRecorder::new(moto).unwrap();
        let first = recorder.endpoint_for("domains-get").await.unwrap();
        assert_eq!(recorder.endpoint_for("domains-get").await.unwrap(), first);
        let other = recorder.endpoint_for("issuer").await.unwrap();
        assert_ne!(first, other);

        let client = crate::http_client(&[]).unwrap();
        let signed = "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00";
        let answer = client
            .post(&first)
            .header("authorization", signed)
            .header("x-amz-target", "DynamoDB_20120810.DescribeTable")
            .header("content-type", "application/x-amz-json-1.0")
            .body(r#"{"TableName": "edgecert-recorder-absent"}"#)
            .send()
            .await
            .unwrap();
        // moto's own answer comes back: the table does not exist.
        assert_eq!(answer.status(), 400);
        assert!(
            answer
                .text()
                .await
                .unwrap()
                .contains("ResourceNotFoundException")
        );

        let calls = recorder.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].caller, "domains-get");
        assert_eq!(calls[0].credentials, CallerCredentials::Own);
        assert_eq!(
            calls[0].authorization.action.as_deref(),
            Some("dynamodb:DescribeTable")
        );
        assert_eq!(
            calls[0].authorization.resource,
            "arn:aws:dynamodb:us-east-1:123456789012:table/edgecert-recorder-absent"
        );
        assert_eq!(calls[0].status, 400);

        let env = recorder.aws_env("issuer").await.unwrap();
        assert!(env.contains(&("AWS_ENDPOINT_URL".to_owned(), other)));
        assert!(env.iter().any(|(name, _)| name == "AWS_ACCESS_KEY_ID"));
    }
}
