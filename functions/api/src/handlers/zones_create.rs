//! `POST /v1/zones`: imports a DNS zone for DNS-01 certificates once the account proved it may
//! use it (its zone token at `_edgecert-zone.<zone>`, see `GET /v1/zones/verification`), the
//! provider let it reach the zone, and a TXT record written through the provider was read
//! back from DNS; stored only when all of that worked.

use edgecert_core::usecases::zones::{self, NewZone};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::ZoneView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportZone {
    name: String,
    provider: String,
    provider_zone_id: String,
    #[serde(default)]
    role_arn: Option<String>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let body: ImportZone = request::json_body(&request)?;
        let new = NewZone {
            name: body.name,
            provider: body.provider,
            provider_zone_id: body.provider_zone_id,
            role_arn: body.role_arn,
        };
        let zone = zones::import_zone(&state.services, &account, new).await?;
        tracing::info!(account_id = %account, zone_id = %zone.id, zone = %zone.name, provider = %zone.provider, "zone imported");
        Ok(json(201, &ZoneView::from(&zone)))
    })
    .await
}
