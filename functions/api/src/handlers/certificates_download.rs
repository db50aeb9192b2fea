//! `GET /v1/certificates/{id}/download`: the leaf, the intermediates and the private key of an
//! issued certificate (`409 not_issued` before that).

use edgecert_core::ItemKind;
use edgecert_core::ids::CertificateId;
use edgecert_core::usecases::certificates;
use lambda_http::{Body, Request, Response};

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::DownloadView;

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", CertificateId::parse, ItemKind::Certificate)?;
        let download = certificates::download(&state.services, &account, &id).await?;
        // Who took a private key out is worth an audit line; the key itself never is.
        tracing::info!(account_id = %account, certificate_id = %id, "certificate downloaded");
        Ok(json(200, &DownloadView::from(&download)))
    })
    .await
}
