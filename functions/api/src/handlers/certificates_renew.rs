//! `POST /v1/certificates/{id}/renew`: renews now (status `validating`, backoff reset); safe
//! to repeat while the renewal is under way.

use edgecert_core::ItemKind;
use edgecert_core::ids::CertificateId;
use edgecert_core::usecases::certificates;
use lambda_http::{Body, Request, Response};

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::CertificateView;

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", CertificateId::parse, ItemKind::Certificate)?;
        let certificate = certificates::renew(&state.services, &account, &id).await?;
        tracing::info!(account_id = %account, certificate_id = %id, "manual renewal requested");
        Ok(json(202, &CertificateView::from(&certificate)))
    })
    .await
}
