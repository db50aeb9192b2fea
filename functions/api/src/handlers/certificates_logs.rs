//! `GET /v1/certificates/{id}/logs?limit=`: the certificate's events, newest first.

use edgecert_core::ItemKind;
use edgecert_core::ids::CertificateId;
use edgecert_core::usecases::certificates;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::EventView;

#[derive(Serialize)]
struct Events {
    events: Vec<EventView>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", CertificateId::parse, ItemKind::Certificate)?;
        let limit = request::limit(&request, certificates::MAX_EVENTS)?;
        let events = certificates::events(&state.services, &account, &id, limit).await?;
        Ok(json(
            200,
            &Events {
                events: events.iter().map(EventView::from).collect(),
            },
        ))
    })
    .await
}
