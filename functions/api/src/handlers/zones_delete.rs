//! `DELETE /v1/zones/{id}`: removes an imported zone.

use edgecert_core::ItemKind;
use edgecert_core::ids::ZoneId;
use edgecert_core::usecases::zones;
use lambda_http::{Body, Request, Response};

use crate::request;
use crate::response::{no_content, respond};
use crate::state::ApiState;

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", ZoneId::parse, ItemKind::Zone)?;
        zones::delete_zone(&state.services, &account, &id).await?;
        tracing::info!(account_id = %account, zone_id = %id, "zone deleted");
        Ok(no_content())
    })
    .await
}
