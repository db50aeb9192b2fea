//! `GET /v1/accounts?cursor=&limit=` (admin key): every account, oldest first, a page at a
//! time (the operator's view). API keys are never listed: only their hashes are stored.

use edgecert_core::usecases::{accounts, domains};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::AccountView;

#[derive(Serialize)]
struct AccountPage {
    accounts: Vec<AccountView>,
    next_cursor: Option<String>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        request::admin(&request)?;
        let limit = request::limit(&request, domains::MAX_PAGE_SIZE)?;
        let page =
            accounts::list_accounts(&state.services, request::cursor(&request), limit).await?;
        Ok(json(
            200,
            &AccountPage {
                accounts: page.items.iter().map(AccountView::from).collect(),
                next_cursor: page.next_cursor,
            },
        ))
    })
    .await
}
