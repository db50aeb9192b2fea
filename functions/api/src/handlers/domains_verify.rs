//! `POST /v1/domains/{id}/verify`: checks the ownership TXT record now (422 `txt_not_found`
//! when it is not there).

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
        let domain = domains::verify_ownership(&state.services, &account, &id).await?;
        Ok(json(200, &DomainView::new(&domain, &state.services.edge)))
    })
    .await
}
