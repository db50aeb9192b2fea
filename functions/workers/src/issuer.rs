//! The issuer worker: issues the certificates someone asked for.
//!
//! A certificate asks to be issued by entering `pending` (created through the API, or by a
//! domain reaching its `issuing` step) or `validating` (a manual renew). On AWS the table's
//! stream brings those items to [`handle_stream`]; locally [`IssuerLoop`] finds them in the due
//! index every second. Either way the certificate goes to [`Issuance::issue`], which is safe to
//! call again and again: its lease lets one caller work on a name set, and it re-reads the
//! certificate under the lease, so duplicated or out-of-order stream records (the issuer's own
//! progress writes among them) cost one read and one conditional write each.
//!
//! Retries of failed issuances and renewals are the renewer's: it reads the same due index on
//! its schedule and hands them to the same issuer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use edgecert_aws::stream::certificate_in_image;
use edgecert_core::ports::{Issuance, PageRequest};
use edgecert_core::usecases::Services;
use edgecert_core::usecases::managed::{Worked, issue_requested};
use edgecert_core::{AccountId, CertificateId};
use futures::StreamExt as _;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::timer::Ticks;

/// A certificate a stream record asks to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// Its account.
    pub account: AccountId,
    /// The certificate.
    pub certificate: CertificateId,
    /// The record's sequence number, reported back when the request could not be handled.
    pub sequence_number: Option<String>,
}

/// Whether a stream record asks for an issuance: an inserted or modified certificate item
/// whose new image [asks for
/// issuance](edgecert_core::model::CertificateStatus::asks_for_issuance). `Err` for a
/// certificate record that cannot be read (a bug or a manual edit; logged and skipped, as
/// retrying cannot fix it).
///
/// `now` is the worker's clock: a record whose certificate waits for a later attempt asks for
/// nothing yet.
pub fn issue_request(
    record: &EventRecord,
    now: OffsetDateTime,
) -> Result<Option<IssueRequest>, String> {
    if !matches!(record.event_name.as_str(), "INSERT" | "MODIFY") {
        return Ok(None);
    }
    // The image in the stream's own JSON form, decoded by the store's adapter.
    let image = serde_json::to_value(&record.change.new_image)
        .map_err(|error| format!("unreadable new image: {error}"))?;
    let certificate = match certificate_in_image(&image) {
        Ok(Some(certificate)) => certificate,
        Ok(None) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    // A pending certificate waiting for its domain's DNS, written back with its next check,
    // asks for nothing until then: skipping it here saves a read per backoff write.
    if !certificate.status.asks_for_issuance()
        || certificate.next_attempt_at.is_some_and(|at| at > now)
    {
        return Ok(None);
    }
    Ok(Some(IssueRequest {
        account: certificate.account_id,
        certificate: certificate.id,
        sequence_number: record.change.sequence_number.clone(),
    }))
}

/// Handles one batch of the table's stream: issues every certificate asked for, `concurrency`
/// at a time, each once however many records name it.
///
/// A certificate that could not be worked on (the store, vault or DNS failed) is reported as a
/// batch item failure with its first record's sequence number, so Lambda delivers the batch
/// again from there; an issuance that failed at the CA is no such failure (the certificate
/// records it and the renewer retries it after its backoff).
pub async fn handle_stream(
    services: &Services,
    issuance: &dyn Issuance,
    event: &Event,
    concurrency: usize,
) -> DynamoDbEventResponse {
    let mut seen = HashSet::new();
    let mut requests = Vec::new();
    let now = services.clock.now();
    for record in &event.records {
        match issue_request(record, now) {
            Ok(Some(request)) if seen.insert(request.certificate.clone()) => {
                requests.push(request);
            }
            Ok(_) => {}
            Err(reason) => tracing::warn!(
                event_id = %record.event_id,
                reason,
                "skipping an unreadable certificate record"
            ),
        }
    }
    let failures: Vec<String> = futures::stream::iter(requests)
        .map(|request| async move {
            let outcome =
                issue_requested(services, issuance, &request.account, &request.certificate).await;
            log_outcome(&request.certificate, &outcome);
            match outcome {
                Ok(_) => None,
                // Without a sequence number Lambda cannot resume from the record; failing
                // the whole batch makes it deliver everything again, which is safe.
                Err(_) => Some(request.sequence_number.unwrap_or_default()),
            }
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|sequence_number| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number);
            failure
        })
        .collect();
    response
}

fn log_outcome(certificate: &CertificateId, outcome: &edgecert_core::Result<Worked>) {
    match outcome {
        Ok(Worked::Issued(_)) => tracing::info!(%certificate, "certificate issued"),
        Ok(Worked::NotReady { reason, retry_at }) => tracing::info!(
            %certificate,
            reason,
            retry_at = %retry_at.map(edgecert_core::model::rfc3339).unwrap_or_default(),
            "not issued now; tried again on its schedule"
        ),
        Ok(Worked::InProgress) => {
            tracing::debug!(%certificate, "another worker holds the issuance lease");
        }
        Ok(Worked::Skipped) => tracing::debug!(%certificate, "nothing to issue"),
        Err(error) => tracing::warn!(%certificate, %error, "issuance could not run"),
    }
}

/// The local stand-in for the stream-triggered issuer: every `interval` it reads the due
/// index and starts issuing each `pending` or `validating` certificate that is not already
/// being issued by this loop, at most `concurrency` at a time.
pub struct IssuerLoop {
    services: Services,
    issuance: Arc<dyn Issuance>,
    interval: Duration,
    concurrency: usize,
}

impl IssuerLoop {
    /// A loop over `services`' store handing certificates to `issuance`, every second, 8 at a
    /// time.
    pub fn new(services: Services, issuance: Arc<dyn Issuance>) -> IssuerLoop {
        IssuerLoop {
            services,
            issuance,
            interval: Duration::from_secs(1),
            concurrency: 8,
        }
    }

    /// Looks for requested certificates every `interval`.
    pub fn with_interval(mut self, interval: Duration) -> IssuerLoop {
        self.interval = interval;
        self
    }

    /// Issues at most `concurrency` certificates at once.
    pub fn with_concurrency(mut self, concurrency: usize) -> IssuerLoop {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Runs until `shutdown` turns true; issuances still running then are dropped, which is
    /// safe: an interrupted issuance resumes its stored order on its next run.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let in_flight = Arc::new(Mutex::new(HashSet::new()));
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut ticks = Ticks::new(self.interval, shutdown);
        while ticks.next().await {
            // Reap finished tasks so the set does not grow.
            while tasks.try_join_next().is_some() {}
            if let Err(error) = self.start_requested(&in_flight, &permits, &mut tasks).await {
                tracing::warn!(%error, "could not read the due certificates");
            }
        }
    }

    /// Starts a task for each requested certificate not in flight.
    async fn start_requested(
        &self,
        in_flight: &Arc<Mutex<HashSet<CertificateId>>>,
        permits: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
    ) -> edgecert_core::Result<()> {
        let now = self.services.clock.now();
        let mut cursor = None;
        loop {
            let page = self
                .services
                .store
                .due_certificates(now, PageRequest { cursor, limit: 100 })
                .await?;
            for certificate in page.items {
                if !certificate.status.asks_for_issuance() {
                    continue;
                }
                if !lock(in_flight).insert(certificate.id.clone()) {
                    continue;
                }
                let (services, issuance, in_flight, permits) = (
                    self.services.clone(),
                    Arc::clone(&self.issuance),
                    Arc::clone(in_flight),
                    Arc::clone(permits),
                );
                tasks.spawn(async move {
                    // The semaphore is never closed; without a permit, issue anyway.
                    let _permit = permits.acquire_owned().await.ok();
                    let outcome = issue_requested(
                        &services,
                        issuance.as_ref(),
                        &certificate.account_id,
                        &certificate.id,
                    )
                    .await;
                    log_outcome(&certificate.id, &outcome);
                    lock(&in_flight).remove(&certificate.id);
                });
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }
}

fn lock(set: &Mutex<HashSet<CertificateId>>) -> std::sync::MutexGuard<'_, HashSet<CertificateId>> {
    set.lock().unwrap_or_else(PoisonError::into_inner)
}
