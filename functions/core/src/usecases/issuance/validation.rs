//! [`ValidationContext`]: what an issuance run gives the CA's adapter while it validates an
//! order — answers published where the CA will look (HTTP-01 in the store, for every edge to
//! serve; DNS-01 through the zone's provider), progress in the certificate's log, the lease.

use async_trait::async_trait;

use super::lease::LeaseKeeper;
use super::preflight::Validation;
use super::{IssuanceEngine, Step};
use crate::model::{Certificate, EventLevel, Http01Challenge, IssueFailure, IssueStop};
use crate::ports::{Publication, ValidationRun};

const STEP: &str = "challenge";

/// One run's side of validation.
pub(crate) struct ValidationContext<'a> {
    pub(crate) engine: &'a IssuanceEngine,
    pub(crate) certificate: &'a Certificate,
    pub(crate) validation: &'a Validation,
    pub(crate) lease: &'a LeaseKeeper,
}

#[async_trait]
impl ValidationRun for ValidationContext<'_> {
    async fn publish(&self, name: &str, publication: &Publication) -> Result<(), IssueFailure> {
        match (publication, self.validation) {
            (
                Publication::Http01 {
                    token,
                    key_authorization,
                },
                _,
            ) => {
                let challenge = Http01Challenge {
                    token: token.clone(),
                    key_authorization: key_authorization.clone(),
                    expires_at: self.engine.now() + self.engine.settings.http01_ttl,
                };
                self.engine
                    .services
                    .store
                    .put_http01(&challenge)
                    .await
                    .map_err(|error| {
                        let doing = format!("Publishing the HTTP-01 answer for {name}");
                        IssueFailure::from_core(STEP, &doing, &error)
                    })
            }
            (Publication::Dns01 { record, value }, Validation::Dns01 { zone, provider }) => {
                provider
                    .set_txt(zone, record, value)
                    .await
                    .map_err(|error| {
                        IssueFailure::from_core(
                            STEP,
                            &format!("Writing TXT record {record}"),
                            &error,
                        )
                    })
            }
            (Publication::Dns01 { .. }, Validation::Http01) => {
                Err(IssueFailure::new(STEP, "A DNS-01 answer without a zone"))
            }
        }
    }

    async fn withdraw(&self, publication: &Publication) {
        let result = match (publication, self.validation) {
            (Publication::Http01 { token, .. }, _) => {
                self.engine.services.store.delete_http01(token).await
            }
            (Publication::Dns01 { record, .. }, Validation::Dns01 { zone, provider }) => {
                provider.clear_txt(zone, record).await
            }
            (Publication::Dns01 { .. }, Validation::Http01) => Ok(()),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "could not withdraw a challenge answer");
            let what = match publication {
                Publication::Http01 { .. } => "an HTTP-01 answer (it expires by itself)".to_owned(),
                Publication::Dns01 { record, .. } => format!("TXT record {record}"),
            };
            self.note(
                EventLevel::Warning,
                format!("Could not remove {what}"),
                None,
            )
            .await;
        }
    }

    async fn note(&self, level: EventLevel, message: String, problem: Option<String>) {
        self.engine
            .event(&self.certificate.id, STEP, level, message, problem)
            .await;
    }

    fn check_lease(&self) -> Result<(), IssueStop> {
        self.lease.check()
    }

    fn challenge_ready(&self) {
        self.engine.step(Step::ChallengeReady, &self.certificate.id);
    }
}
