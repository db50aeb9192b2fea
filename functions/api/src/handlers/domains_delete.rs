//! `DELETE /v1/domains/{id}`: stops serving the domain and deletes its certificate.

use edgecert_core::ItemKind;
use edgecert_core::ids::DomainId;
use edgecert_core::usecases::domains;
use lambda_http::{Body, Request, Response};

use crate::request;
use crate::response::{no_content, respond};
use crate::state::ApiState;

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", DomainId::parse, ItemKind::Domain)?;
        domains::delete_domain(&state.services, &account, &id).await?;
        tracing::info!(account_id = %account, domain_id = %id, "domain deleted");
        Ok(no_content())
    })
    .await
}
