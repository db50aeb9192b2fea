//! `GET /v1/domains/{id}/dns`: the DNS records the customer must create.

use edgecert_core::ItemKind;
use edgecert_core::ids::DomainId;
use edgecert_core::usecases::domains;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;

#[derive(Serialize)]
struct Dns {
    hostname: String,
    dns_instructions: domains::DnsInstructions,
    #[serde(skip_serializing_if = "Option::is_none")]
    ownership_verification: Option<domains::DnsRecord>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", DomainId::parse, ItemKind::Domain)?;
        let domain = domains::get_domain(&state.services, &account, &id).await?;
        Ok(json(
            200,
            &Dns {
                hostname: domain.hostname.to_string(),
                dns_instructions: domains::dns_instructions(&state.services.edge, &domain.hostname),
                ownership_verification: (!domain.ownership_verified)
                    .then(|| domains::ownership_record(&domain)),
            },
        ))
    })
    .await
}
