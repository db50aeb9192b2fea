//! The renewer worker: runs the core's renewal use case
//! ([`run_renewals`]) on a schedule — an EventBridge Scheduler event on AWS
//! ([`handle_schedule`]), a timer in the local runner ([`RenewerTimer`]).
//!
//! The schedule event carries nothing the run needs: a run always looks at everything due at
//! its start. Two runs at once (a duplicated event, a slow run overlapping the next) renew each
//! certificate once, through the issuer's leases.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgecert_core::ports::Issuance;
use edgecert_core::usecases::Services;
use edgecert_core::usecases::key_storage::{KeySweepReport, KeySweepSettings, sweep_key_storage};
use edgecert_core::usecases::renewals::{
    EXPIRY_WARNING, RenewalReport, RenewalSettings, count_expiring_unrenewed,
    replace_certificates_from_other_ca, run_renewals,
};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::timer::Ticks;

/// How long before its Lambda deadline the renewer starts no more certificates. An issuance
/// takes seconds normally and minutes at worst (DNS propagation, the CA's polling), so what was
/// started finishes before Lambda ends the run; template.yaml's 900-second timeout leaves ten
/// minutes of taking work.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(300);

/// Namespace of the metrics the renewer publishes (CloudWatch embedded metric format).
pub const METRICS_NAMESPACE: &str = "EdgeCert";
/// The metric counting auto-renewed certificates that expire within 7 days unrenewed
/// ([`count_expiring_unrenewed`] with [`EXPIRY_WARNING`]); template.yaml alarms on it.
pub const EXPIRING_METRIC: &str = "CertificatesExpiringWithin7Days";
/// The metric's one dimension: the deployment's table, which names the stack's data.
pub const TABLE_DIMENSION: &str = "Table";

/// The schedule's event: the input template.yaml gives the schedule, with EventBridge
/// Scheduler's context attributes filled in. Only logged; any other payload is accepted too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ScheduleEvent {
    /// The schedule's name.
    pub schedule: Option<String>,
    /// When the invocation was scheduled for (`<aws.scheduler.scheduled-time>`).
    pub scheduled_time: Option<String>,
    /// The invocation's id, the same for retries of one invocation
    /// (`<aws.scheduler.execution-id>`).
    pub execution_id: Option<String>,
    /// Set by an operator invoking the renewer by hand (`{"rotate_data_key": true}`): a new
    /// data key seals new material from now on, and this run's key storage sweep starts
    /// re-sealing what older keys sealed.
    pub rotate_data_key: bool,
}

/// Runs the renewer once for `event` and logs what it did. Fails only when the due index
/// cannot be read (the scheduler then retries the invocation).
pub async fn handle_schedule(
    services: &Services,
    issuance: &dyn Issuance,
    settings: &RenewalSettings,
    event: &ScheduleEvent,
) -> edgecert_core::Result<RenewalReport> {
    tracing::info!(
        schedule = event.schedule.as_deref().unwrap_or(""),
        scheduled_time = event.scheduled_time.as_deref().unwrap_or(""),
        execution_id = event.execution_id.as_deref().unwrap_or(""),
        "renewal run starting"
    );
    let report = run_renewals(services, issuance, settings).await?;
    log_report(&report);
    Ok(report)
}

/// After a run's renewals: rotates the data key when `event` asks for it, then moves up to
/// `settings.per_run` certificates' keys to the current key storage (see
/// [`sweep_key_storage`]). Never fails the run: what it could not do waits for the next one.
pub async fn handle_key_storage(
    services: &Services,
    settings: &KeySweepSettings,
    event: &ScheduleEvent,
) -> KeySweepReport {
    if event.rotate_data_key {
        match services.vault.rotate_data_key().await {
            Ok(true) => {
                tracing::info!("data key rotated; the sweep re-seals what older keys sealed")
            }
            Ok(false) => tracing::warn!("rotation asked, but this key storage has no data key"),
            Err(error) => tracing::error!(%error, "data key rotation failed"),
        }
    }
    match sweep_key_storage(
        services.store.as_ref(),
        services.vault.as_ref(),
        services.clock.as_ref(),
        settings,
    )
    .await
    {
        Ok(report) => {
            if report.examined > 0 || !report.finished {
                tracing::info!(
                    generation = report.generation.as_deref().unwrap_or(""),
                    examined = report.examined,
                    moved = report.moved,
                    busy = report.busy,
                    errors = report.error_count,
                    finished = report.finished,
                    "key storage sweep"
                );
            }
            for (certificate, error) in &report.errors {
                tracing::warn!(%certificate, %error, "certificate key left for the next sweep");
            }
            report
        }
        Err(error) => {
            tracing::warn!(%error, "key storage sweep could not run; the next run goes on");
            KeySweepReport::default()
        }
    }
}

/// Once per process, before its first run: every certificate issued by a CA other than the
/// configured one is made due now, so the first run replaces it (the configured CA changed,
/// or a local stack restarted with a new Pebble). A failure is logged; the process goes on.
pub async fn replace_from_other_ca(services: &Services, issuance: &dyn Issuance) {
    let Some(configured) = issuance.ca_directory_url() else {
        return;
    };
    match replace_certificates_from_other_ca(services, configured).await {
        Ok(0) => {}
        Ok(marked) => tracing::info!(
            marked,
            configured,
            "certificates from another certificate authority are due now"
        ),
        Err(error) => tracing::warn!(
            %error,
            "could not look for certificates from another certificate authority"
        ),
    }
}

/// `settings` for a run that Lambda ends at `deadline`: certificates are taken until
/// [`DEADLINE_MARGIN`] before it (none at all when less than that is left).
pub fn settings_for_deadline(settings: &RenewalSettings, deadline: SystemTime) -> RenewalSettings {
    let stop = deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(UNIX_EPOCH);
    RenewalSettings {
        take_work_until: Some(OffsetDateTime::from(stop)),
        ..settings.clone()
    }
}

/// The log line that publishes `count` as [`EXPIRING_METRIC`] for `table` in CloudWatch's
/// embedded metric format: Lambda's log stream turns it into a metric, no API call needed.
pub fn expiry_metric_line(table: &str, count: usize, at: SystemTime) -> String {
    let timestamp_ms = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [[TABLE_DIMENSION]],
                "Metrics": [{ "Name": EXPIRING_METRIC, "Unit": "Count" }],
            }],
        },
        TABLE_DIMENSION: table,
        EXPIRING_METRIC: count,
    })
    .to_string()
}

/// Counts the certificates expiring unrenewed within 7 days and prints the metric line (stdout:
/// Lambda's log). A failed count is logged and publishes nothing; the alarm treats a missing
/// value as fine, and the renewer's error alarm covers a store that cannot be read.
pub async fn publish_expiry_metric(services: &Services, table: &str) {
    match count_expiring_unrenewed(services, EXPIRY_WARNING).await {
        Ok(count) => {
            if count > 0 {
                tracing::warn!(count, "certificates expire within 7 days unrenewed");
            }
            println!("{}", expiry_metric_line(table, count, SystemTime::now()));
        }
        Err(error) => tracing::warn!(%error, "could not count the certificates about to expire"),
    }
}

fn log_report(report: &RenewalReport) {
    tracing::info!(
        examined = report.examined,
        items_read = report.items_read,
        issued = report.issued,
        failed = report.failed,
        expired = report.expired,
        waiting_dns = report.waiting_dns,
        rescheduled = report.rescheduled,
        deferred = report.deferred,
        unstarted = report.unstarted,
        in_progress = report.in_progress,
        skipped = report.skipped,
        errors = report.error_count,
        "renewal run finished"
    );
    if report.deferred > 0 {
        tracing::warn!(
            deferred = report.deferred,
            "order budget spent; the rest waits for the next run"
        );
    }
    if report.unstarted > 0 {
        tracing::warn!(
            unstarted = report.unstarted,
            "the run's time is up; the rest waits for the next run"
        );
    }
    for (certificate, error) in &report.errors {
        tracing::warn!(%certificate, %error, "certificate left for the next run");
    }
}

/// The local runner's renewal timer: a run at start, then one every `interval`, never two at
/// once in this process; each run ends with the key storage sweep.
pub struct RenewerTimer {
    services: Services,
    issuance: Arc<dyn Issuance>,
    settings: RenewalSettings,
    key_sweep: KeySweepSettings,
    interval: Duration,
}

impl RenewerTimer {
    /// A timer running the renewer over `services` with `settings` every `interval`.
    pub fn new(
        services: Services,
        issuance: Arc<dyn Issuance>,
        settings: RenewalSettings,
        interval: Duration,
    ) -> RenewerTimer {
        RenewerTimer {
            services,
            issuance,
            settings,
            key_sweep: KeySweepSettings::default(),
            interval,
        }
    }

    /// The key storage sweep's settings (default: [`KeySweepSettings::default`]).
    pub fn with_key_sweep(mut self, settings: KeySweepSettings) -> RenewerTimer {
        self.key_sweep = settings;
        self
    }

    /// Runs until `shutdown` turns true (a run in progress is dropped; whatever it had not
    /// finished is still due for the next start).
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        replace_from_other_ca(&self.services, self.issuance.as_ref()).await;
        let mut ticks = Ticks::new(self.interval, shutdown);
        while ticks.next().await {
            let run = run_renewals(&self.services, self.issuance.as_ref(), &self.settings);
            let scheduled = ScheduleEvent::default();
            let sweep = handle_key_storage(&self.services, &self.key_sweep, &scheduled);
            match ticks.unless_shutdown(run).await {
                Some(Ok(report)) if report.examined > 0 => log_report(&report),
                Some(Ok(_)) => {}
                Some(Err(error)) => tracing::warn!(%error, "renewal run failed"),
                None => return,
            }
            if ticks.unless_shutdown(sweep).await.is_none() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_metric_is_one_emf_line_with_its_dimension() {
        let at = UNIX_EPOCH + Duration::from_millis(1_780_000_000_123);
        let line = expiry_metric_line("edgecert-prod-Table-1ABC", 3, at);
        assert!(!line.contains('\n'), "one log line: {line}");
        let metric: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            metric,
            json!({
                "_aws": {
                    "Timestamp": 1_780_000_000_123_u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "EdgeCert",
                        "Dimensions": [["Table"]],
                        "Metrics": [{ "Name": "CertificatesExpiringWithin7Days", "Unit": "Count" }],
                    }],
                },
                "Table": "edgecert-prod-Table-1ABC",
                "CertificatesExpiringWithin7Days": 3,
            })
        );
    }

    #[test]
    fn work_is_taken_until_the_margin_before_the_deadline() {
        let settings = RenewalSettings::new();
        let deadline = UNIX_EPOCH + Duration::from_secs(1_780_000_900);
        let bounded = settings_for_deadline(&settings, deadline);
        assert_eq!(
            bounded.take_work_until,
            Some(OffsetDateTime::from(
                UNIX_EPOCH + Duration::from_secs(1_780_000_600)
            ))
        );
        assert_eq!(
            RenewalSettings {
                take_work_until: None,
                ..bounded
            },
            settings
        );
    }
}
