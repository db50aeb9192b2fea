//! [`AcmeOrder`]: one ACME order at the CA, as the issue use case drives it
//! ([`CaOrder`]): validation ([`challenges`](crate::challenges)), the CSR, the chain.

use async_trait::async_trait;
use edgecert_core::Hostname;
use edgecert_core::model::{IssueFailure, IssueStop, SecretString};
use edgecert_core::ports::{CaOrder, ChallengeKind, IssuedChain, OrderState, ValidationRun};
use instant_acme::{Order, OrderStatus};

use crate::challenges::{self, Polling};
use crate::errors::{from_acme, from_local};
use crate::http::with_retry_after_slot;
use crate::{ari, keys};

/// An order of this CA.
pub(crate) struct AcmeOrder {
    pub(crate) order: Order,
    pub(crate) polling: Polling,
}

#[async_trait]
impl CaOrder for AcmeOrder {
    fn url(&self) -> &str {
        self.order.url()
    }

    fn state(&mut self) -> OrderState {
        match self.order.state().status {
            OrderStatus::Pending => OrderState::Pending,
            OrderStatus::Ready => OrderState::Ready,
            OrderStatus::Processing => OrderState::Processing,
            OrderStatus::Valid => OrderState::Valid,
            OrderStatus::Invalid => OrderState::Invalid,
        }
    }

    async fn validate(
        &mut self,
        kind: ChallengeKind,
        names: &[Hostname],
        run: &dyn ValidationRun,
    ) -> Result<(), IssueStop> {
        let polling = self.polling;
        with_retry_after_slot(challenges::validate(
            &mut self.order,
            kind,
            names,
            run,
            polling,
        ))
        .await
    }

    async fn finalize(
        &mut self,
        names: &[Hostname],
        key_pem: &SecretString,
    ) -> Result<bool, IssueFailure> {
        if self.order.state().status != OrderStatus::Ready {
            return Ok(false);
        }
        let key = keys::parse(key_pem.expose())
            .map_err(|error| from_local("key", "Reading the pending key", &error))?;
        let csr = keys::csr(names, &key)
            .map_err(|error| from_local("finalize", "Building the CSR", &error))?;
        with_retry_after_slot(async {
            self.order
                .finalize_csr(&csr)
                .await
                .map_err(|error| from_acme("finalize", "Finalizing the order", error))
        })
        .await?;
        Ok(true)
    }

    async fn certificate(&mut self, key_pem: &SecretString) -> Result<IssuedChain, IssueFailure> {
        let polling = self.polling;
        let chain = with_retry_after_slot(async {
            let downloading = |error| from_acme("download", "Downloading the certificate", error);
            // A CA that issued while answering the finalize has the chain ready: take it
            // without waiting for the first poll.
            if self.order.state().status == OrderStatus::Valid {
                self.order
                    .certificate()
                    .await
                    .map_err(downloading)?
                    .ok_or_else(|| {
                        downloading(instant_acme::Error::Str(
                            "no certificates received from ACME CA",
                        ))
                    })
            } else {
                self.order
                    .poll_certificate(&polling.retry_policy())
                    .await
                    .map_err(downloading)
            }
        })
        .await?;
        let leaf = keys::leaf(&chain).map_err(|error| {
            from_local("download", "Reading the certificate", &error).with_dead_order()
        })?;
        let key = keys::parse(key_pem.expose())
            .map_err(|error| from_local("key", "Reading the pending key", &error))?;
        if !leaf.matches(&key) {
            return Err(IssueFailure::new(
                "download",
                "The certificate from the certificate authority does not match the stored key; \
                 a new order will be placed",
            )
            .with_dead_order());
        }
        let ari_id = match ari::certificate_id(&leaf.der) {
            Ok(id) => Some(id.to_string()),
            Err(error) => {
                tracing::warn!(%error, "the certificate has no ARI identifier");
                None
            }
        };
        Ok(IssuedChain {
            chain_pem: chain,
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            ari_id,
        })
    }
}
