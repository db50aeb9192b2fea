//! `PATCH /v1/certificates/{id}`: turns auto-renewal on (plan permitting) or off, or changes
//! the ACME profile of its next order.

use edgecert_core::ItemKind;
use edgecert_core::ids::CertificateId;
use edgecert_core::usecases::certificates::{self, CertificateChanges};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::CertificateView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    auto_renew: Option<bool>,
    #[serde(default, deserialize_with = "request::nullable")]
    acme_profile: Option<Option<String>>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", CertificateId::parse, ItemKind::Certificate)?;
        let changes: Changes = request::json_body(&request)?;
        request::some_change(
            changes.auto_renew.is_some() || changes.acme_profile.is_some(),
            "`auto_renew` or `acme_profile`",
        )?;
        let changes = CertificateChanges {
            auto_renew: changes.auto_renew,
            acme_profile: changes.acme_profile,
        };
        let certificate =
            certificates::update_certificate(&state.services, &account, &id, changes).await?;
        Ok(json(200, &CertificateView::from(&certificate)))
    })
    .await
}
