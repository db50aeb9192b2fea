//! `POST /v1/domains`: whitelists a hostname with its origin; answers with DNS instructions
//! (and the ownership TXT record when the account requires one).

use edgecert_core::usecases::domains::{self, DomainRequest};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::DomainView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDomain {
    hostname: String,
    origin_url: String,
    acme_profile: Option<String>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let body: NewDomain = request::json_body(&request)?;
        let wanted = DomainRequest {
            hostname: body.hostname,
            origin_url: body.origin_url,
            acme_profile: body.acme_profile,
        };
        let domain = domains::whitelist(&state.services, &account, wanted).await?;
        tracing::info!(account_id = %account, domain_id = %domain.id, hostname = %domain.hostname, "domain whitelisted");
        Ok(json(201, &DomainView::new(&domain, &state.services.edge)))
    })
    .await
}
