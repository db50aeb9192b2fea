//! `DELETE /v1/certificates/{id}?revoke=true`: deletes a certificate and its key; with
//! `revoke=true`, revokes it at the CA first (and deletes nothing if that fails).

use edgecert_core::ItemKind;
use edgecert_core::ids::CertificateId;
use edgecert_core::usecases::certificates;
use lambda_http::{Body, Request, Response};

use crate::request;
use crate::response::{no_content, respond};
use crate::state::ApiState;

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", CertificateId::parse, ItemKind::Certificate)?;
        let revoke = request::flag(&request, "revoke")?;
        certificates::delete_certificate(&state.services, &account, &id, revoke).await?;
        tracing::info!(account_id = %account, certificate_id = %id, revoke, "certificate deleted");
        Ok(no_content())
    })
    .await
}
