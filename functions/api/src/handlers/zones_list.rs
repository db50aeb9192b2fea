//! `GET /v1/zones?cursor=&limit=`: the account's zones, a page at a time.

use edgecert_core::usecases::{domains, zones};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::ZoneView;

#[derive(Serialize)]
struct ZonePage {
    zones: Vec<ZoneView>,
    next_cursor: Option<String>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let limit = request::limit(&request, domains::MAX_PAGE_SIZE)?;
        let page =
            zones::list_zones(&state.services, &account, request::cursor(&request), limit).await?;
        Ok(json(
            200,
            &ZonePage {
                zones: page.items.iter().map(ZoneView::from).collect(),
                next_cursor: page.next_cursor,
            },
        ))
    })
    .await
}
