//! Solving an order's challenges: HTTP-01 answers in the store, DNS-01 TXT records through the
//! zone's provider.
//!
//! Answers are published in rounds. A DNS provider's `set_txt` replaces the record, so two
//! authorizations sharing a record name (`example.com` and `*.example.com` both validate at
//! `_acme-challenge.example.com`) go in different rounds, one after the other; everything else
//! goes in the first round together. In each round the answers are published, the CA is told
//! to validate, and every authorization of the round is polled until it is final: the CA
//! checks an answer several times (multi-perspective), so nothing is withdrawn before that.
//! Then the round's answers are withdrawn, on success and on failure alike.

use std::collections::BTreeSet;
use std::time::Duration;

use edgecert_core::model::{Certificate, EventLevel, Http01Challenge};
use instant_acme::{
    AuthorizationState, AuthorizationStatus, ChallengeStatus, ChallengeType, Order, OrderStatus,
};

use crate::failure::{Failure, Stop};
use crate::issuer::Issuer;
use crate::lease::LeaseKeeper;
use crate::preflight::Validation;
use crate::steps::Step;

/// Longest pause between two polls of a round's authorizations.
const MAX_POLL_DELAY: Duration = Duration::from_secs(5);

const STEP: &str = "challenge";

/// What has to be published for one pending authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    authorization_url: String,
    /// The name as ordered (`*.example.com` for a wildcard), for messages.
    name: String,
    /// The challenge's status when read: `processing` when an interrupted run already asked
    /// the CA to validate it.
    status: ChallengeStatus,
    publication: Publication,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Publication {
    /// Served at `/.well-known/acme-challenge/{token}` by every terminator, from the store.
    Http01 {
        token: String,
        key_authorization: String,
    },
    /// TXT `record` (no trailing dot) holding `value`.
    Dns01 { record: String, value: String },
}

impl Publication {
    /// What two answers must not share within one round.
    fn slot(&self) -> &str {
        match self {
            Publication::Http01 { token, .. } => token,
            Publication::Dns01 { record, .. } => record,
        }
    }
}

fn challenge_type(validation: &Validation) -> ChallengeType {
    match validation {
        Validation::Http01 => ChallengeType::Http01,
        Validation::Dns01 { .. } => ChallengeType::Dns01,
    }
}

fn challenge_name(kind: &ChallengeType) -> &'static str {
    match kind {
        ChallengeType::Http01 => "HTTP-01",
        ChallengeType::Dns01 => "DNS-01",
        _ => "requested",
    }
}

/// The DNS-01 record of a name: the wildcard label is not part of it.
fn dns01_record(name: &str) -> String {
    format!("_acme-challenge.{}", name.trim_start_matches("*."))
}

/// The answer of `round` for the authorization at `url`, if the round has one.
fn answer_for<'a>(round: &'a [Answer], url: &str) -> Option<&'a Answer> {
    round.iter().find(|answer| answer.authorization_url == url)
}

/// The failure an authorization in a final state other than valid stands for, with the
/// CA's problem for the challenge when it gave one; `None` while pending or once valid.
fn validation_failure(
    answer: &Answer,
    state: &AuthorizationState,
    kind: &ChallengeType,
) -> Option<Failure> {
    if matches!(
        state.status,
        AuthorizationStatus::Pending | AuthorizationStatus::Valid
    ) {
        return None;
    }
    let doing = format!("Validation of {} failed", answer.name);
    let problem = state
        .challenges
        .iter()
        .find(|challenge| challenge.r#type == *kind)
        .and_then(|challenge| challenge.error.as_ref());
    let failure = match problem {
        Some(problem) => Failure::from_problem(STEP, &doing, problem, None),
        None => Failure::new(
            STEP,
            format!("{doing}: the authorization is {:?}", state.status),
        ),
    };
    Some(failure.with_dead_order())
}

/// Splits answers into rounds in which no two share a slot, keeping their order.
fn into_rounds(answers: Vec<Answer>) -> Vec<Vec<Answer>> {
    let mut rounds: Vec<Vec<Answer>> = Vec::new();
    for answer in answers {
        let free = rounds.iter().position(|round| {
            round
                .iter()
                .all(|other| other.publication.slot() != answer.publication.slot())
        });
        match free {
            Some(index) => rounds[index].push(answer),
            None => rounds.push(vec![answer]),
        }
    }
    rounds
}

impl Issuer {
    /// Validates every pending authorization of `order` and waits until the order is ready.
    /// The slots withdrawn along the way are added to `withdrawn`.
    pub(crate) async fn validate(
        &self,
        order: &mut Order,
        certificate: &Certificate,
        validation: &Validation,
        lease: &LeaseKeeper,
        withdrawn: &mut BTreeSet<String>,
    ) -> Result<(), Stop> {
        let kind = challenge_type(validation);
        let answers = collect(order, &kind, validation).await?;
        if !answers.is_empty() {
            let names: Vec<&str> = answers.iter().map(|answer| answer.name.as_str()).collect();
            self.event(
                &certificate.id,
                STEP,
                EventLevel::Info,
                format!(
                    "Validating {} by {}",
                    names.join(", "),
                    challenge_name(&kind)
                ),
                None,
            )
            .await;
        }
        for (index, round) in into_rounds(answers).iter().enumerate() {
            lease.check()?;
            let outcome = self
                .run_round(order, certificate, validation, &kind, round, index == 0)
                .await;
            self.withdraw(certificate, validation, round, withdrawn)
                .await;
            outcome?;
        }
        // Every authorization was just seen valid, so the order is most likely ready already:
        // look once before polling with its initial delay.
        let waiting = |error| {
            Failure::from_acme(STEP, "Waiting for the order to become ready", error)
                .with_dead_order()
        };
        let status = match order.refresh().await.map_err(waiting)?.status {
            status @ (OrderStatus::Ready | OrderStatus::Invalid) => status,
            _ => order
                .poll_ready(&self.retry_policy())
                .await
                .map_err(waiting)?,
        };
        if status != OrderStatus::Ready {
            return Err(Failure::new(
                STEP,
                "The certificate authority marked the order invalid after validation; \
                 a new order will be placed",
            )
            .with_dead_order()
            .into());
        }
        self.event(
            &certificate.id,
            STEP,
            EventLevel::Info,
            "Every name is validated",
            None,
        )
        .await;
        Ok(())
    }

    /// Publishes a round, asks the CA to validate it and waits until each authorization of
    /// the round is final.
    async fn run_round(
        &self,
        order: &mut Order,
        certificate: &Certificate,
        validation: &Validation,
        kind: &ChallengeType,
        round: &[Answer],
        first: bool,
    ) -> Result<(), Stop> {
        for answer in round {
            self.publish(validation, answer).await?;
        }
        let mut rejected = None;
        let mut authorizations = order.authorizations();
        while let Some(handle) = authorizations.next().await {
            let mut handle = handle
                .map_err(|error| Failure::from_acme(STEP, "Reading the authorizations", error))?;
            let Some(answer) = answer_for(round, handle.url()) else {
                continue;
            };
            // A challenge an interrupted run already submitted is being validated: only wait.
            if answer.status != ChallengeStatus::Pending {
                continue;
            }
            let asked = match handle.challenge(kind.clone()) {
                Some(mut challenge) => challenge.set_ready().await,
                None => continue,
            };
            if let Err(error) = asked {
                rejected = Some((answer.name.clone(), error));
                break;
            }
        }
        if let Some((name, error)) = rejected {
            // The CA may finish validating before it answers the request that started it;
            // the challenge it returns then carries the validation's problem, which
            // instant-acme reports as an error. The authorizations tell the two apart.
            self.pending_names(order, kind, round).await?;
            let doing = format!("Asking the certificate authority to validate {name}");
            return Err(Failure::from_acme(STEP, &doing, error).into());
        }
        if first {
            self.step(Step::ChallengeReady, &certificate.id);
        }
        self.await_round(order, kind, round).await
    }

    /// Polls the round's authorizations until none is pending.
    async fn await_round(
        &self,
        order: &mut Order,
        kind: &ChallengeType,
        round: &[Answer],
    ) -> Result<(), Stop> {
        let started = tokio::time::Instant::now();
        let mut delay = self.config.poll_initial_delay;
        loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_POLL_DELAY);
            let open = self.pending_names(order, kind, round).await?;
            if open.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= self.config.poll_timeout {
                return Err(Failure::new(
                    STEP,
                    format!(
                        "The certificate authority had not validated {} after {} seconds; \
                         it will be asked again",
                        open.join(", "),
                        self.config.poll_timeout.as_secs()
                    ),
                )
                .into());
            }
        }
    }

    /// Reads the round's authorizations once: the names still pending, or the failure of
    /// the first one the CA declared invalid.
    async fn pending_names(
        &self,
        order: &mut Order,
        kind: &ChallengeType,
        round: &[Answer],
    ) -> Result<Vec<String>, Stop> {
        let mut open = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(handle) = authorizations.next().await {
            let mut handle = handle
                .map_err(|error| Failure::from_acme(STEP, "Reading the authorizations", error))?;
            let Some(answer) = answer_for(round, handle.url()) else {
                continue;
            };
            let state = handle.refresh().await.map_err(|error| {
                let doing = format!("Checking the validation of {}", answer.name);
                Failure::from_acme(STEP, &doing, error)
            })?;
            if state.status == AuthorizationStatus::Pending {
                open.push(answer.name.clone());
            } else if let Some(failure) = validation_failure(answer, state, kind) {
                return Err(failure.into());
            }
        }
        Ok(open)
    }

    async fn publish(&self, validation: &Validation, answer: &Answer) -> Result<(), Stop> {
        match (&answer.publication, validation) {
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
                    expires_at: self.now() + self.config.http01_ttl,
                };
                self.services
                    .store
                    .put_http01(&challenge)
                    .await
                    .map_err(|error| {
                        let doing = format!("Publishing the HTTP-01 answer for {}", answer.name);
                        Failure::from_core(STEP, &doing, &error)
                    })?;
            }
            (Publication::Dns01 { record, value }, Validation::Dns01 { zone, provider }) => {
                provider
                    .set_txt(zone, record, value)
                    .await
                    .map_err(|error| {
                        Failure::from_core(STEP, &format!("Writing TXT record {record}"), &error)
                    })?;
            }
            (Publication::Dns01 { .. }, Validation::Http01) => {
                return Err(Failure::new(STEP, "A DNS-01 answer without a zone").into());
            }
        }
        Ok(())
    }

    /// Withdraws a round's answers; failures are logged and noted, never fatal.
    async fn withdraw(
        &self,
        certificate: &Certificate,
        validation: &Validation,
        round: &[Answer],
        withdrawn: &mut BTreeSet<String>,
    ) {
        // Slots are unique within a round; a later round may reuse an earlier round's slot
        // (the TXT record of `example.com` after `*.example.com`) and must withdraw it again.
        for answer in round {
            self.withdraw_slot(certificate, validation, &answer.publication)
                .await;
            withdrawn.insert(answer.publication.slot().to_owned());
        }
    }

    async fn withdraw_slot(
        &self,
        certificate: &Certificate,
        validation: &Validation,
        publication: &Publication,
    ) {
        let result = match (publication, validation) {
            (Publication::Http01 { token, .. }, _) => {
                self.services.store.delete_http01(token).await
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
            self.event(
                &certificate.id,
                STEP,
                EventLevel::Warning,
                format!("Could not remove {what}"),
                None,
            )
            .await;
        }
    }

    /// Withdraws answers this run did not withdraw itself: those an interrupted run left
    /// behind, and any for authorizations the CA reused. Cheap on a normal run: the
    /// authorizations are already read, and every DNS-01 record is already withdrawn.
    pub(crate) async fn sweep(
        &self,
        order: &mut Order,
        certificate: &Certificate,
        validation: &Validation,
        withdrawn: &BTreeSet<String>,
    ) {
        let leftovers: Vec<Publication> = match validation {
            Validation::Dns01 { .. } => certificate
                .names()
                .map(|name| dns01_record(name.as_str()))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|record| !withdrawn.contains(record))
                .map(|record| Publication::Dns01 {
                    record,
                    value: String::new(),
                })
                .collect(),
            Validation::Http01 => {
                let mut tokens = Vec::new();
                let mut authorizations = order.authorizations();
                while let Some(handle) = authorizations.next().await {
                    let Ok(handle) = handle else {
                        // Unreadable now; its answer expires by itself.
                        continue;
                    };
                    tokens.extend(
                        handle
                            .challenges
                            .iter()
                            .filter(|challenge| challenge.r#type == ChallengeType::Http01)
                            .map(|challenge| challenge.token.clone())
                            .filter(|token| !withdrawn.contains(token)),
                    );
                }
                tokens
                    .into_iter()
                    .map(|token| Publication::Http01 {
                        token,
                        key_authorization: String::new(),
                    })
                    .collect()
            }
        };
        for publication in &leftovers {
            self.withdraw_slot(certificate, validation, publication)
                .await;
        }
    }
}

/// Reads the order's authorizations and the answer each pending one needs.
async fn collect(
    order: &mut Order,
    kind: &ChallengeType,
    validation: &Validation,
) -> Result<Vec<Answer>, Stop> {
    let mut answers = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(handle) = authorizations.next().await {
        let mut handle = handle
            .map_err(|error| Failure::from_acme(STEP, "Reading the authorizations", error))?;
        let name = handle.identifier().to_string();
        match handle.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(Failure::new(
                    STEP,
                    format!(
                        "The authorization for {name} is {other:?} at the certificate authority; \
                         a new order will be placed"
                    ),
                )
                .with_dead_order()
                .into());
            }
        }
        let authorization_url = handle.url().to_owned();
        let Some(challenge) = handle.challenge(kind.clone()) else {
            return Err(Failure::new(
                STEP,
                format!(
                    "The certificate authority offered no {} challenge for {name}",
                    challenge_name(kind)
                ),
            )
            .with_dead_order()
            .into());
        };
        let key_authorization = challenge.key_authorization();
        let publication = match validation {
            Validation::Http01 => Publication::Http01 {
                token: challenge.token.clone(),
                key_authorization: key_authorization.as_str().to_owned(),
            },
            Validation::Dns01 { .. } => Publication::Dns01 {
                record: dns01_record(&name),
                value: key_authorization.dns_value(),
            },
        };
        answers.push(Answer {
            authorization_url,
            name,
            status: challenge.status,
            publication,
        });
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(name: &str) -> Answer {
        Answer {
            authorization_url: format!("https://ca.example/authz/{name}"),
            name: name.to_owned(),
            status: ChallengeStatus::Pending,
            publication: Publication::Dns01 {
                record: dns01_record(name),
                value: "v".to_owned(),
            },
        }
    }

    #[test]
    fn names_sharing_a_txt_record_validate_in_separate_rounds() {
        // GIVEN a wildcard, its base name and an unrelated name
        let rounds = into_rounds(vec![
            dns("*.example.com"),
            dns("example.com"),
            dns("www.example.com"),
        ]);
        // THEN the two sharing _acme-challenge.example.com are split; the other joins round 1
        let names: Vec<Vec<&str>> = rounds
            .iter()
            .map(|round| round.iter().map(|answer| answer.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["*.example.com", "www.example.com"],
                vec!["example.com"]
            ]
        );
    }

    #[test]
    fn wildcards_validate_at_their_base_name() {
        assert_eq!(dns01_record("*.example.com"), "_acme-challenge.example.com");
        assert_eq!(
            dns01_record("a.example.com"),
            "_acme-challenge.a.example.com"
        );
    }
}
