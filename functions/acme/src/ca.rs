//! [`AcmeCa`]: an ACME CA as the core's [`CertificateAuthority`] port — the account, orders
//! (resumed or placed, with `replaces` and a profile), keys, ARI, profiles and revocation.
//!
//! A renewal's order carries `replaces` (RFC 9773): inside the CA's window such orders are
//! exempt from Let's Encrypt's rate limits. When the CA answers that the certificate was
//! already replaced, or refuses `replaces` at all, the order is placed again without it and
//! the refusal is reported ([`OrderNote::ReplacesRefused`]): a renewal must never fail for the
//! sake of a rate-limit exemption.

use std::sync::Arc;

use async_trait::async_trait;
use edgecert_core::model::{IssueFailure, KeyType, SecretString};
use edgecert_core::ports::{
    CertificateAuthority, OpenedOrder, OrderNote, OrderRequest, Profiles, Vault,
};
use edgecert_core::{Error, RenewalSuggestion};
use http::Request;
use instant_acme::{
    Account, BodyWrapper, HttpClient, Identifier, NewOrder, OrderStatus, Problem, RevocationRequest,
};
use rustls::pki_types::CertificateDer;
use tokio::sync::OnceCell;

use crate::account::{AccountFailure, AccountSlot};
use crate::challenges::Polling;
use crate::config::IssuerConfig;
use crate::error::AcmeError;
use crate::errors::{from_account, from_acme, from_local};
use crate::http::with_retry_after_slot;
use crate::orders::AcmeOrder;
use crate::{ari, keys};

/// One ACME CA, reached through one HTTP client, with the ACME account kept in the vault.
pub struct AcmeCa {
    directory_url: String,
    account: AccountSlot,
    http: Arc<dyn HttpClient>,
    vault: Arc<dyn Vault>,
    polling: Polling,
    /// The directory's profiles, read once.
    profiles: OnceCell<Profiles>,
}

impl AcmeCa {
    /// The CA of `config`, talking through `http` (already wrapped to record `Retry-After`),
    /// its account's credentials in `vault`.
    pub(crate) fn new(
        config: &IssuerConfig,
        http: Arc<dyn HttpClient>,
        vault: Arc<dyn Vault>,
    ) -> AcmeCa {
        AcmeCa {
            directory_url: config.directory_url.clone(),
            account: AccountSlot::new(
                config.directory_url.clone(),
                config.contact_email.clone(),
                Arc::clone(&http),
            ),
            http,
            vault,
            polling: Polling {
                initial_delay: config.poll_initial_delay,
                timeout: config.poll_timeout,
            },
            profiles: OnceCell::new(),
        }
    }

    async fn account(&self) -> Result<&Account, IssueFailure> {
        self.account
            .get(self.vault.as_ref())
            .await
            .map_err(from_account)
    }

    /// The directory's `meta.profiles`, read with a plain GET: asking which profiles exist
    /// needs no ACME account (API functions ask it, and never register one).
    async fn read_profiles(&self) -> Result<Profiles, IssueFailure> {
        let doing = "Reading the certificate authority's directory";
        let request = Request::get(&self.directory_url)
            .body(BodyWrapper::from(Vec::new()))
            .map_err(|error| IssueFailure::new("profiles", format!("{doing}: {error}")))?;
        let mut response = self
            .http
            .request(request)
            .await
            .map_err(|error| from_acme("profiles", doing, error))?;
        let body = response
            .body
            .into_bytes()
            .await
            .map_err(|error| from_acme("profiles", doing, instant_acme::Error::Other(error)))?;
        if !response.parts.status.is_success() {
            return Err(IssueFailure::new(
                "profiles",
                format!("{doing}: it answered {}", response.parts.status),
            ));
        }
        let directory: serde_json::Value = serde_json::from_slice(&body).map_err(|error| {
            IssueFailure::new("profiles", format!("{doing}: unreadable JSON ({error})"))
        })?;
        Ok(directory
            .pointer("/meta/profiles")
            .and_then(|profiles| profiles.as_object())
            .map(|profiles| {
                profiles
                    .iter()
                    .map(|(name, description)| {
                        (
                            name.clone(),
                            description.as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Whether the CA's answer to an order carrying `replaces` refuses `replaces` itself (the
/// certificate was already replaced, is unknown to it, or it takes no `replaces` at all),
/// rather than the order: then the order is placed again without it.
fn refuses_replaces(error: &instant_acme::Error) -> bool {
    match error {
        // The CA offers no ARI: it cannot take `replaces` (instant-acme refuses before asking).
        instant_acme::Error::Unsupported(_) => true,
        instant_acme::Error::Api(problem) => {
            let kind = problem
                .r#type
                .as_deref()
                .and_then(|kind| kind.strip_prefix("urn:ietf:params:acme:error:"));
            matches!(kind, Some("alreadyReplaced" | "conflict" | "malformed"))
                || problem.status == Some(409)
        }
        // The CA placed the order but ignored `replaces` (Pebble 2.4, a CA without ARI
        // support): instant-acme refuses such an answer, and the order is placed without it.
        other => other.to_string().contains("replaces field mismatch"),
    }
}

fn problem_detail(problem: &Problem) -> String {
    problem
        .detail
        .as_deref()
        .map(str::trim)
        .filter(|detail| !detail.is_empty())
        .unwrap_or("no detail given")
        .to_owned()
}

#[async_trait]
impl CertificateAuthority for AcmeCa {
    fn directory_url(&self) -> &str {
        &self.directory_url
    }

    async fn profiles(&self) -> Result<Profiles, IssueFailure> {
        self.profiles
            .get_or_try_init(|| with_retry_after_slot(self.read_profiles()))
            .await
            .cloned()
    }

    async fn open_order(&self, request: OrderRequest<'_>) -> Result<OpenedOrder, IssueFailure> {
        with_retry_after_slot(async {
            let account = self.account().await?;
            let mut notes = Vec::new();
            if let Some(url) = request.resume {
                match account.order(url.to_owned()).await {
                    Ok(mut order) => {
                        if order.state().status != OrderStatus::Invalid {
                            return Ok(OpenedOrder {
                                order: Box::new(AcmeOrder {
                                    order,
                                    polling: self.polling,
                                }),
                                resumed: true,
                                notes,
                            });
                        }
                        notes.push(OrderNote::StoredInvalid);
                    }
                    // An order the CA no longer knows (expired, or another account's).
                    Err(instant_acme::Error::Api(problem)) => {
                        notes.push(OrderNote::StoredUnknown {
                            detail: problem_detail(&problem),
                            problem: problem.r#type.clone(),
                        });
                    }
                    Err(error) => return Err(from_acme("order", "Resuming the order", error)),
                }
            }
            let identifiers: Vec<Identifier> = request
                .names
                .iter()
                .map(|name| Identifier::Dns(name.to_string()))
                .collect();
            let plain = || {
                let order = NewOrder::new(&identifiers);
                match request.profile {
                    Some(profile) => order.profile(profile),
                    None => order,
                }
            };
            let replaces = request.replaces.and_then(ari::identifier);
            let placed = match replaces {
                Some(replaces) => match account.new_order(&plain().replaces(replaces)).await {
                    Err(error) if refuses_replaces(&error) => {
                        if let instant_acme::Error::Api(problem) = &error {
                            notes.push(OrderNote::ReplacesRefused {
                                detail: problem_detail(problem),
                                problem: problem.r#type.clone(),
                            });
                        }
                        account.new_order(&plain()).await
                    }
                    placed => placed,
                },
                None => account.new_order(&plain()).await,
            };
            let order = placed.map_err(|error| from_acme("order", "Creating the order", error))?;
            Ok(OpenedOrder {
                order: Box::new(AcmeOrder {
                    order,
                    polling: self.polling,
                }),
                resumed: false,
                notes,
            })
        })
        .await
    }

    fn generate_key(&self, key_type: KeyType) -> Result<SecretString, IssueFailure> {
        keys::generate(key_type)
            .map(|key| SecretString::new(key.serialize_pem()))
            .map_err(|error| from_local("key", "Generating the key", &error))
    }

    async fn renewal_info(&self, ari_id: &str) -> Option<RenewalSuggestion> {
        let account = match self.account().await {
            Ok(account) => account,
            // The renewal itself will meet (and record) the same CA failure.
            Err(failure) => {
                tracing::warn!(reason = %failure.message, "no ACME account to ask for the renewal window");
                return None;
            }
        };
        ari::suggestion(account, ari_id).await
    }

    async fn revoke(&self, chain_pem: &str) -> edgecert_core::Result<()> {
        let leaf = keys::leaf(chain_pem)?;
        let account =
            self.account
                .get(self.vault.as_ref())
                .await
                .map_err(|failure| match failure {
                    AccountFailure::Vault(error) => error,
                    AccountFailure::Acme(error) => Error::from(error),
                })?;
        let der = CertificateDer::from(leaf.der);
        let revoked = with_retry_after_slot(account.revoke(&RevocationRequest {
            certificate: &der,
            reason: None,
        }))
        .await;
        match revoked {
            Ok(()) => Ok(()),
            // Revoking twice is not an error for the caller: the outcome is what was asked.
            Err(instant_acme::Error::Api(problem))
                if problem.r#type.as_deref()
                    == Some("urn:ietf:params:acme:error:alreadyRevoked") =>
            {
                Ok(())
            }
            Err(error) => Err(AcmeError::from(error).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str, status: u16) -> instant_acme::Error {
        instant_acme::Error::Api(
            serde_json::from_value(serde_json::json!({
                "type": format!("urn:ietf:params:acme:error:{kind}"),
                "detail": "refused",
                "status": status,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn only_refusals_of_replaces_send_the_order_again_without_it() {
        assert!(refuses_replaces(&problem("alreadyReplaced", 409)));
        assert!(refuses_replaces(&problem("malformed", 400)));
        assert!(refuses_replaces(&instant_acme::Error::Unsupported("ARI")));
        // A rate limit or an outage is the order's fate, with or without `replaces`.
        assert!(!refuses_replaces(&problem("rateLimited", 429)));
        assert!(!refuses_replaces(&problem("serverInternal", 500)));
    }
}
