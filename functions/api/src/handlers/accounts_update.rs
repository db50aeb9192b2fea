//! `PATCH /v1/accounts/{id}` (admin key): changes an account's plan, name, ownership setting or
//! ACME profile.

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
    #[serde(default, deserialize_with = "request::nullable")]
    acme_profile: Option<Option<String>>,
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
            acme_profile: changes.acme_profile,
        };
        let account = accounts::update_account(&state.services, &id, changes).await?;
        Ok(json(200, &AccountView::from(&account)))
    })
    .await
}
