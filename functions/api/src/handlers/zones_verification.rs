//! `GET /v1/zones/verification?name=<zone>`: the TXT record the account publishes to prove that
//! a zone's owner lets it use the zone, before `POST /v1/zones` imports it.

use edgecert_core::usecases::zones;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;

#[derive(Serialize)]
struct Verification {
    #[serde(rename = "type")]
    record_type: &'static str,
    /// `_edgecert-zone.<zone>` for the zone named, `null` without one.
    name: Option<String>,
    /// The record's label under any zone.
    label: &'static str,
    /// The account's zone token.
    value: String,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let zone = request::query(&request, "name").filter(|name| !name.trim().is_empty());
        let record = zones::token_record(&state.services, &account, zone.as_deref()).await?;
        Ok(json(
            200,
            &Verification {
                record_type: "TXT",
                name: record.name,
                label: record.label,
                value: record.value,
            },
        ))
    })
    .await
}
