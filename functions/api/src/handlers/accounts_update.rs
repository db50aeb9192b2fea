//! `PATCH /v1/accounts/{id}` (admin key): changes an account's plan, name or ownership setting.

use edgecert_core::ids::AccountId;
use edgecert_core::usecases::accounts::{self, AccountChanges};
use edgecert_core::{ItemKind, PlanName};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::AccountView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    plan: Option<PlanName>,
    name: Option<String>,
    require_ownership_verification: Option<bool>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        request::admin(&request)?;
        let id = request::path_id(&request, "id", AccountId::parse, ItemKind::Account)?;
        let changes: Changes = request::json_body(&request)?;
        let changes = AccountChanges {
            plan: changes.plan,
            name: changes.name,
            require_ownership_verification: changes.require_ownership_verification,
        };
        let account = accounts::update_account(&state.services, &id, changes).await?;
        Ok(json(200, &AccountView::from(&account)))
    })
    .await
}
