//! `POST /v1/accounts` (admin key): creates an account and shows its API key once.

use edgecert_core::PlanName;
use edgecert_core::usecases::accounts::{self, NewAccount};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::AccountView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body_ {
    name: String,
    plan: PlanName,
    #[serde(default)]
    require_ownership_verification: bool,
}

#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    account: AccountView,
    /// Shown once; only its hash is stored.
    api_key: String,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        request::admin(&request)?;
        let body: Body_ = request::json_body(&request)?;
        let new = NewAccount {
            name: body.name,
            plan: body.plan,
            require_ownership_verification: body.require_ownership_verification,
        };
        let (account, key) = accounts::create_account(&state.services, new).await?;
        tracing::info!(account_id = %account.id, plan = account.plan.as_str(), "account created");
        Ok(json(
            201,
            &Created {
                account: AccountView::from(&account),
                api_key: key.expose().to_owned(),
            },
        ))
    })
    .await
}
