//! `PATCH /v1/domains/{id}`: points the domain at another origin.

use edgecert_core::ItemKind;
use edgecert_core::ids::DomainId;
use edgecert_core::usecases::domains;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::DomainView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    origin_url: String,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", DomainId::parse, ItemKind::Domain)?;
        let changes: Changes = request::json_body(&request)?;
        let domain =
            domains::update_origin(&state.services, &account, &id, &changes.origin_url).await?;
        Ok(json(200, &DomainView::new(&domain, &state.services.edge)))
    })
    .await
}
