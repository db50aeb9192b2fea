//! Solving an order's challenges: the answers go out through the run's
//! [`ValidationRun`] (HTTP-01 answers in the store, DNS-01 TXT records through the zone's
//! provider), and this module speaks to the CA.
//!
//! Answers are published in rounds. A DNS provider's `set_txt` replaces the record, so two
//! authorizations sharing a record name (`example.com` and `*.example.com` both validate at
//! `_acme-challenge.example.com`) go in different rounds, one after the other; everything else
//! goes in the first round together. In each round the answers are published, the CA is told
//! to validate, and every authorization of the round is polled until it is final: the CA
//! checks an answer several times (multi-perspective), so nothing is withdrawn before that.
//! Then the round's answers are withdrawn, on success and on failure alike, and finally any
//! answer an interrupted run left behind.

use std::collections::BTreeSet;
use std::time::Duration;

use edgecert_core::Hostname;
use edgecert_core::model::{EventLevel, IssueFailure, IssueStop};
use edgecert_core::ports::{ChallengeKind, Publication, ValidationRun};
use instant_acme::{
    AuthorizationState, AuthorizationStatus, ChallengeStatus, ChallengeType, Order, OrderStatus,
    RetryPolicy,
};

use crate::errors::{from_acme, from_problem};

/// Longest pause between two polls of a round's authorizations.
const MAX_POLL_DELAY: Duration = Duration::from_secs(5);

const STEP: &str = "challenge";

/// How the CA is polled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Polling {
    /// First pause; doubles, up to [`MAX_POLL_DELAY`].
    pub(crate) initial_delay: Duration,
    /// Longest wait for a round, or for the order to become ready.
    pub(crate) timeout: Duration,
}

impl Polling {
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new()
            .initial_delay(self.initial_delay)
            .backoff(2.0)
            .timeout(self.timeout)
    }
}

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

fn challenge_type(kind: ChallengeKind) -> ChallengeType {
    match kind {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::Dns01 => ChallengeType::Dns01,
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
) -> Option<IssueFailure> {
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
        Some(problem) => from_problem(STEP, &doing, problem, None),
        None => IssueFailure::new(
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

/// Validates every pending authorization of `order` by `kind` and waits until the order is
/// ready; then withdraws whatever an interrupted run left for `names`.
pub(crate) async fn validate(
    order: &mut Order,
    kind: ChallengeKind,
    names: &[Hostname],
    run: &dyn ValidationRun,
    polling: Polling,
) -> Result<(), IssueStop> {
    let mut withdrawn = BTreeSet::new();
    let validated = if order.state().status == OrderStatus::Pending {
        validate_pending(order, kind, run, polling, &mut withdrawn).await
    } else {
        Ok(())
    };
    // Answers left by an interrupted run (or for reused authorizations) go too.
    sweep(order, kind, names, run, &withdrawn).await;
    validated
}

async fn validate_pending(
    order: &mut Order,
    kind: ChallengeKind,
    run: &dyn ValidationRun,
    polling: Polling,
    withdrawn: &mut BTreeSet<String>,
) -> Result<(), IssueStop> {
    let challenge = challenge_type(kind);
    let answers = collect(order, &challenge, kind).await?;
    if !answers.is_empty() {
        let names: Vec<&str> = answers.iter().map(|answer| answer.name.as_str()).collect();
        run.note(
            EventLevel::Info,
            format!("Validating {} by {}", names.join(", "), kind.as_str()),
            None,
        )
        .await;
    }
    for (index, round) in into_rounds(answers).iter().enumerate() {
        run.check_lease()?;
        let outcome = run_round(order, &challenge, round, run, polling, index == 0).await;
        // Slots are unique within a round; a later round may reuse an earlier round's slot
        // (the TXT record of `example.com` after `*.example.com`) and must withdraw it again.
        for answer in round {
            run.withdraw(&answer.publication).await;
            withdrawn.insert(answer.publication.slot().to_owned());
        }
        outcome?;
    }
    // Every authorization was just seen valid, so the order is most likely ready already:
    // look once before polling with its initial delay.
    let waiting =
        |error| from_acme(STEP, "Waiting for the order to become ready", error).with_dead_order();
    let status = match order.refresh().await.map_err(waiting)?.status {
        status @ (OrderStatus::Ready | OrderStatus::Invalid) => status,
        _ => order
            .poll_ready(&polling.retry_policy())
            .await
            .map_err(waiting)?,
    };
    if status != OrderStatus::Ready {
        return Err(IssueFailure::new(
            STEP,
            "The certificate authority marked the order invalid after validation; \
             a new order will be placed",
        )
        .with_dead_order()
        .into());
    }
    run.note(EventLevel::Info, "Every name is validated".to_owned(), None)
        .await;
    Ok(())
}

/// Publishes a round, asks the CA to validate it and waits until each authorization of the
/// round is final.
async fn run_round(
    order: &mut Order,
    kind: &ChallengeType,
    round: &[Answer],
    run: &dyn ValidationRun,
    polling: Polling,
    first: bool,
) -> Result<(), IssueStop> {
    for answer in round {
        run.publish(&answer.name, &answer.publication).await?;
    }
    let mut rejected = None;
    let mut authorizations = order.authorizations();
    while let Some(handle) = authorizations.next().await {
        let mut handle =
            handle.map_err(|error| from_acme(STEP, "Reading the authorizations", error))?;
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
        // The CA may finish validating before it answers the request that started it; the
        // challenge it returns then carries the validation's problem, which instant-acme
        // reports as an error. The authorizations tell the two apart once the CA has
        // finished with them, which under load can take a moment after that answer.
        let doing = format!("Asking the certificate authority to validate {name}");
        let refused = from_acme(STEP, &doing, error);
        return Err(settled_failure(order, kind, round, polling)
            .await?
            .unwrap_or(refused)
            .into());
    }
    if first {
        run.challenge_ready();
    }
    await_round(order, kind, round, polling).await
}

/// Polls the round's authorizations until none is pending.
async fn await_round(
    order: &mut Order,
    kind: &ChallengeType,
    round: &[Answer],
    polling: Polling,
) -> Result<(), IssueStop> {
    let started = tokio::time::Instant::now();
    let mut delay = polling.initial_delay;
    loop {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL_DELAY);
        let open = pending_names(order, kind, round).await?;
        if open.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= polling.timeout {
            return Err(IssueFailure::new(
                STEP,
                format!(
                    "The certificate authority had not validated {} after {} seconds; \
                     it will be asked again",
                    open.join(", "),
                    polling.timeout.as_secs()
                ),
            )
            .into());
        }
    }
}

/// Polls the round's authorizations until the CA has finished with them, and returns the
/// validation failure one of them carries, if any. `None` when none failed, or none finished
/// within the polling timeout.
async fn settled_failure(
    order: &mut Order,
    kind: &ChallengeType,
    round: &[Answer],
    polling: Polling,
) -> Result<Option<IssueFailure>, IssueStop> {
    let started = tokio::time::Instant::now();
    let mut delay = polling.initial_delay;
    loop {
        match pending_names(order, kind, round).await {
            Err(IssueStop::Failed(failure)) => return Ok(Some(failure)),
            Err(stop) => return Err(stop),
            Ok(open) if open.is_empty() || started.elapsed() >= polling.timeout => {
                return Ok(None);
            }
            Ok(_) => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL_DELAY);
    }
}

/// Reads the round's authorizations once: the names still pending, or the failure of the
/// first one the CA declared invalid.
async fn pending_names(
    order: &mut Order,
    kind: &ChallengeType,
    round: &[Answer],
) -> Result<Vec<String>, IssueStop> {
    let mut open = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(handle) = authorizations.next().await {
        let mut handle =
            handle.map_err(|error| from_acme(STEP, "Reading the authorizations", error))?;
        let Some(answer) = answer_for(round, handle.url()) else {
            continue;
        };
        let state = handle.refresh().await.map_err(|error| {
            let doing = format!("Checking the validation of {}", answer.name);
            from_acme(STEP, &doing, error)
        })?;
        if state.status == AuthorizationStatus::Pending {
            open.push(answer.name.clone());
        } else if let Some(failure) = validation_failure(answer, state, kind) {
            return Err(failure.into());
        }
    }
    Ok(open)
}

/// Withdraws answers this run did not withdraw itself: those an interrupted run left behind,
/// and any for authorizations the CA reused. Cheap on a normal run: the authorizations are
/// already read, and every DNS-01 record is already withdrawn.
async fn sweep(
    order: &mut Order,
    kind: ChallengeKind,
    names: &[Hostname],
    run: &dyn ValidationRun,
    withdrawn: &BTreeSet<String>,
) {
    let leftovers: Vec<Publication> = match kind {
        ChallengeKind::Dns01 => names
            .iter()
            .map(|name| dns01_record(name.as_str()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|record| !withdrawn.contains(record))
            .map(|record| Publication::Dns01 {
                record,
                value: String::new(),
            })
            .collect(),
        ChallengeKind::Http01 => {
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
        run.withdraw(publication).await;
    }
}

/// Reads the order's authorizations and the answer each pending one needs.
async fn collect(
    order: &mut Order,
    challenge: &ChallengeType,
    kind: ChallengeKind,
) -> Result<Vec<Answer>, IssueStop> {
    let mut answers = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(handle) = authorizations.next().await {
        let mut handle =
            handle.map_err(|error| from_acme(STEP, "Reading the authorizations", error))?;
        let name = handle.identifier().to_string();
        match handle.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(IssueFailure::new(
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
        let Some(offered) = handle.challenge(challenge.clone()) else {
            return Err(IssueFailure::new(
                STEP,
                format!(
                    "The certificate authority offered no {} challenge for {name}",
                    kind.as_str()
                ),
            )
            .with_dead_order()
            .into());
        };
        let key_authorization = offered.key_authorization();
        let publication = match kind {
            ChallengeKind::Http01 => Publication::Http01 {
                token: offered.token.clone(),
                key_authorization: key_authorization.as_str().to_owned(),
            },
            ChallengeKind::Dns01 => Publication::Dns01 {
                record: dns01_record(&name),
                value: key_authorization.dns_value(),
            },
        };
        answers.push(Answer {
            authorization_url,
            name,
            status: offered.status,
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
