//! `GET /v1/domains?cursor=&limit=`: the account's domains, a page at a time.

use edgecert_core::Error;
use edgecert_core::usecases::domains;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::DomainView;

#[derive(Serialize)]
struct DomainPage {
    domains: Vec<DomainView>,
    next_cursor: Option<String>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let limit =
            match request::query(&request, "limit") {
                None => None,
                Some(text) => Some(text.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(
                    || Error::BadRequest {
                        code: "invalid_limit",
                        message: format!(
                            "limit must be a number from 1 to {}",
                            domains::MAX_PAGE_SIZE
                        ),
                    },
                )?),
            };
        let cursor = request::query(&request, "cursor").filter(|cursor| !cursor.is_empty());
        let page = domains::list_domains(&state.services, &account, cursor, limit).await?;
        let edge = &state.services.edge;
        Ok(json(
            200,
            &DomainPage {
                domains: page
                    .items
                    .iter()
                    .map(|domain| DomainView::new(domain, edge))
                    .collect(),
                next_cursor: page.next_cursor,
            },
        ))
    })
    .await
}
