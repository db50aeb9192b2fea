//! `POST /v1/domains/{id}/ssl/nudge`: runs the current provisioning step now and resets its
//! backoff. Safe to call repeatedly.

use edgecert_core::ItemKind;
use edgecert_core::ids::DomainId;
use edgecert_core::usecases::domains;
use lambda_http::{Body, Request, Response};

use crate::handlers::domains_ssl::ssl_view;
use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", DomainId::parse, ItemKind::Domain)?;
        domains::nudge(&state.services, &account, &id).await?;
        let status = domains::ssl_status(&state.services, &account, &id).await?;
        Ok(json(200, &ssl_view(state, &status)))
    })
    .await
}
