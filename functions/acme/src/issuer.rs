//! [`Issuer`]: the core's issue use case ([`IssuanceEngine`]) assembled with this crate's ACME
//! CA ([`AcmeCa`](crate::AcmeCa)) from one [`IssuerConfig`] — what every process that issues
//! builds once and shares as `Arc<dyn Issuance>`.
//!
//! Everything about a certificate's life (when, what, what a failure means, what is stored
//! when) is the core's; this type only wires the protocol to it.

use std::sync::Arc;

use async_trait::async_trait;
use edgecert_core::model::{BucketLevel, Certificate};
use edgecert_core::ports::{Issuance, IssueOutcome, Profiles};
use edgecert_core::usecases::Services;
use edgecert_core::usecases::issuance::{IssuanceEngine, StepHook};
use edgecert_core::{AccountId, CertificateId, RenewalSuggestion};
use instant_acme::HttpClient;

use crate::ca::AcmeCa;
use crate::config::IssuerConfig;
use crate::error::Result;
use crate::http::{self, RetryAfterRecorder};

/// Obtains, renews and revokes certificates over ACME; implements
/// [`Issuance`](edgecert_core::ports::Issuance).
///
/// Build it once per process and share it (`Arc<dyn Issuance>`): it holds the ACME account,
/// loaded from the vault or registered on first use.
pub struct Issuer {
    engine: IssuanceEngine,
    config: IssuerConfig,
}

impl Issuer {
    /// An issuer over `services` (store, vault, resolver, clock, plans, edge settings, DNS
    /// providers) talking to `config.directory_url` with the default CA client
    /// ([`ca_http_client`](crate::ca_http_client)).
    ///
    /// `services.issuance` is not used. Fails when the CA root file cannot be read.
    pub fn new(services: Services, config: IssuerConfig) -> Result<Issuer> {
        let http = http::ca_http_client(config.ca_root_pem.as_deref(), config.request_timeout)?;
        Ok(Issuer::with_http_client(services, config, http))
    }

    /// An issuer talking to the CA through `http` (a fault layer in tests, or a client with
    /// other TLS settings); `config.ca_root_pem` and `config.request_timeout` are then up to
    /// that client.
    pub fn with_http_client(
        services: Services,
        config: IssuerConfig,
        http: Box<dyn HttpClient>,
    ) -> Issuer {
        let http: Arc<dyn HttpClient> = Arc::new(RetryAfterRecorder { inner: http });
        let ca = AcmeCa::new(&config, http, Arc::clone(&services.vault));
        let engine = IssuanceEngine::new(services, Arc::new(ca), config.issuance_settings());
        Issuer { engine, config }
    }

    /// Calls `hook` after each step of every run (crash-safety tests).
    pub fn with_step_hook(mut self, hook: Arc<dyn StepHook>) -> Issuer {
        self.engine = self.engine.with_step_hook(hook);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &IssuerConfig {
        &self.config
    }
}

#[async_trait]
impl Issuance for Issuer {
    async fn issue(
        &self,
        account: &AccountId,
        certificate: &CertificateId,
    ) -> edgecert_core::Result<IssueOutcome> {
        self.engine.issue(account, certificate).await
    }

    async fn issue_certificate(
        &self,
        certificate: &Certificate,
    ) -> edgecert_core::Result<IssueOutcome> {
        self.engine.issue_certificate(certificate).await
    }

    async fn revoke(&self, certificate: &Certificate) -> edgecert_core::Result<()> {
        self.engine.revoke(certificate).await
    }

    async fn renewal_window(
        &self,
        certificate: &Certificate,
    ) -> edgecert_core::Result<Option<RenewalSuggestion>> {
        self.engine.renewal_window(certificate).await
    }

    async fn profiles(&self) -> edgecert_core::Result<Option<Profiles>> {
        self.engine.profiles().await
    }

    async fn order_budget_level(&self) -> edgecert_core::Result<Option<BucketLevel>> {
        self.engine.order_budget_level().await
    }

    fn ca_directory_url(&self) -> Option<&str> {
        self.engine.ca_directory_url()
    }
}
