//! Handler tests on the real API Gateway events in `events/`: every endpoint's success path and
//! every documented error, as a client of the API sees them (status and JSON body).
//!
//! Each request is an event file with its placeholders replaced (see `events/README.md`), read
//! by `lambda_http` as the Lambda runtime reads it, and served by the handler the route table
//! names for that event. State is a fresh SQLite file per test; DNS answers come from a real
//! pebble-challtestsrv shared by the test binary (`harness`).

#[path = "../harness/mod.rs"]
mod harness;

mod accounts;
mod creating_domains;
mod event_files;
mod gateway;
mod isolation;
mod ownership_and_certificates;
mod reading_domains;

use harness::{ApiCall, Harness, TestAccount, origin_url};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Every route that takes `{id}` of a domain.
const DOMAIN_ID_ROUTES: [&str; 7] = [
    "domains-get",
    "domains-update",
    "domains-delete",
    "domains-dns",
    "domains-verify",
    "domains-ssl",
    "domains-nudge",
];

/// A call of `function` on domain `id` as `account`, with a valid body where one is needed.
fn domain_call(function: &'static str, account: &TestAccount, id: &str) -> ApiCall {
    let call = ApiCall::new(function).by_account(&account.id).id(id);
    if function == "domains-update" {
        call.json(json!({ "origin_url": origin_url() }))
    } else {
        call
    }
}

fn timestamp(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a timestamp"), &Rfc3339)
        .unwrap_or_else(|error| panic!("{value} is not RFC 3339: {error}"))
}

async fn limits(harness: &Harness, account: &TestAccount) -> Value {
    harness
        .call(ApiCall::new("limits-get").by_account(&account.id))
        .await
        .expect(200)
}
