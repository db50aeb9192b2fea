//! The renewer worker: runs the core's renewal use case
//! ([`run_renewals`]) on a schedule — an EventBridge Scheduler event on AWS
//! ([`handle_schedule`]), a timer in the local runner ([`RenewerTimer`]).
//!
//! The schedule event carries nothing the run needs: a run always looks at everything due at
//! its start. Two runs at once (a duplicated event, a slow run overlapping the next) renew each
//! certificate once, through the issuer's leases.

use std::sync::Arc;
use std::time::Duration;

use edgecert_core::ports::Issuance;
use edgecert_core::usecases::Services;
use edgecert_core::usecases::key_storage::{KeySweepReport, KeySweepSettings, sweep_key_storage};
use edgecert_core::usecases::renewals::{RenewalReport, RenewalSettings, run_renewals};
use serde::Deserialize;
use tokio::sync::watch;

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
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.changed() => return,
            }
            let run = run_renewals(&self.services, self.issuance.as_ref(), &self.settings);
            let scheduled = ScheduleEvent::default();
            let sweep = handle_key_storage(&self.services, &self.key_sweep, &scheduled);
            tokio::select! {
                outcome = run => match outcome {
                    Ok(report) if report.examined > 0 => log_report(&report),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "renewal run failed"),
                },
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = sweep => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
