//! `GET /v1/certificates?cursor=&limit=`: the account's downloadable certificates with the
//! plan's limits, as in the reference (`{certificates, limits}`), plus `next_cursor`.

use edgecert_core::usecases::certificates;
use lambda_http::{Body, Request, Response};

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::CertificateListView;

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let limit = request::limit(&request, certificates::MAX_LIST_SIZE)?;
        let list = certificates::list_certificates(
            &state.services,
            &account,
            request::cursor(&request),
            limit,
        )
        .await?;
        Ok(json(200, &CertificateListView::from(&list)))
    })
    .await
}
