//! `GET /v1/certificates/{id}`: one downloadable certificate.

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
        let certificate = certificates::get_certificate(&state.services, &account, &id).await?;
        Ok(json(200, &CertificateView::from(&certificate)))
    })
    .await
}
