//! `POST /v1/certificates`: requests a downloadable certificate on a verified zone. Issuance is
//! asynchronous: the answer is `202` with the certificate `pending`.

use edgecert_core::model::KeyType;
use edgecert_core::usecases::certificates::{self, CertificateRequest};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::CertificateView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCertificate {
    zone_id: String,
    domain: String,
    #[serde(default)]
    sans: Vec<String>,
    #[serde(default)]
    wildcard: bool,
    #[serde(default)]
    auto_renew: bool,
    #[serde(default)]
    key_type: KeyType,
    acme_profile: Option<String>,
}

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let body: NewCertificate = request::json_body(&request)?;
        let wanted = CertificateRequest {
            zone_id: body.zone_id,
            domain: body.domain,
            sans: body.sans,
            wildcard: body.wildcard,
            auto_renew: body.auto_renew,
            key_type: body.key_type,
            acme_profile: body.acme_profile,
        };
        let certificate =
            certificates::request_certificate(&state.services, &account, wanted).await?;
        tracing::info!(account_id = %account, certificate_id = %certificate.id, domain = %certificate.domain, "certificate requested");
        Ok(json(202, &CertificateView::from(&certificate)))
    })
    .await
}
