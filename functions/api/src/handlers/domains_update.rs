//! `PATCH /v1/domains/{id}`: points the domain at another origin, or changes the ACME profile
//! its certificate is ordered with.

use edgecert_core::ItemKind;
use edgecert_core::ids::DomainId;
use edgecert_core::usecases::domains::{self, DomainChanges};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::DomainView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    origin_url: Option<String>,
    #[serde(default, deserialize_with = "request::nullable")]
    acme_profile: Option<Option<String>>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", DomainId::parse, ItemKind::Domain)?;
        let changes: Changes = request::json_body(&request)?;
        request::some_change(
            changes.origin_url.is_some() || changes.acme_profile.is_some(),
            "`origin_url` or `acme_profile`",
        )?;
        let changes = DomainChanges {
            origin_url: changes.origin_url,
            acme_profile: changes.acme_profile,
        };
        let domain = domains::update_domain(&state.services, &account, &id, changes).await?;
        Ok(json(200, &DomainView::new(&domain, &state.services.edge)))
    })
    .await
}
