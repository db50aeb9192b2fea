//! `GET /v1/domains/{id}`.

use edgecert_core::ItemKind;
use edgecert_core::ids::DomainId;
use edgecert_core::usecases::domains;
use lambda_http::{Body, Request, Response};

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::DomainView;

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", DomainId::parse, ItemKind::Domain)?;
        let domain = domains::get_domain(&state.services, &account, &id).await?;
        Ok(json(200, &DomainView::new(&domain, &state.services.edge)))
    })
    .await
}
