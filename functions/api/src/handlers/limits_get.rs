//! `GET /v1/limits`: the account's plan limits and current usage.

use edgecert_core::usecases::accounts;
use lambda_http::{Body, Request, Response};

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::LimitsView;

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let limits = accounts::limits(&state.services, &account).await?;
        Ok(json(200, &LimitsView::from(&limits)))
    })
    .await
}
