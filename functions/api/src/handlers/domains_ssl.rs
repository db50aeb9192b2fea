//! `GET /v1/domains/{id}/ssl`: where provisioning stands, why, and the certificate.

use edgecert_core::ItemKind;
use edgecert_core::ids::DomainId;
use edgecert_core::usecases::domains;
use lambda_http::{Body, Request, Response};

use crate::request;
use crate::response::{json, respond};
use crate::state::ApiState;
use crate::views::{CertificateSummary, SslView};

/// Handles the request.
pub async fn handle(state: &ApiState, request: Request) -> Response<Body> {
    respond(async {
        let account = request::account(&request)?;
        let id = request::path_id(&request, "id", DomainId::parse, ItemKind::Domain)?;
        let status = domains::ssl_status(&state.services, &account, &id).await?;
        Ok(json(200, &ssl_view(state, &status)))
    })
    .await
}

/// The `/ssl` view, shared with the nudge endpoint.
pub fn ssl_view(state: &ApiState, status: &domains::SslStatus) -> SslView {
    let domain = &status.domain;
    let certificate_error = status
        .certificate
        .as_ref()
        .and_then(|certificate| certificate.last_error.clone());
    SslView {
        provisioning_step: domain.provisioning_step.as_str(),
        error: domain.last_error.clone().or(certificate_error),
        next_attempt_at: domain
            .next_attempt_at
            .or_else(|| {
                status
                    .certificate
                    .as_ref()
                    .and_then(|certificate| certificate.next_attempt_at)
            })
            .and_then(|at| {
                at.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
        dns_instructions: domains::dns_instructions(&state.services.edge, &domain.hostname),
        certificate: status.certificate.as_ref().map(CertificateSummary::from),
    }
}
