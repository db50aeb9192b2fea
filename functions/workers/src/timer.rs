//! The local runner's workers tick on a timer until the process shuts down.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

/// Ticks every `period`, the first at once; a tick missed while the work ran is taken late,
/// not in a burst.
pub struct Ticks {
    interval: Interval,
    shutdown: watch::Receiver<bool>,
}

impl Ticks {
    /// Ticks every `period` until `shutdown` changes.
    pub fn new(period: Duration, shutdown: watch::Receiver<bool>) -> Ticks {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ticks { interval, shutdown }
    }

    /// Waits for the next tick: `true` then, `false` once shutdown is asked for.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.interval.tick() => true,
            _ = self.shutdown.changed() => false,
        }
    }

    /// Runs `work` unless shutdown is asked for first: its output, or `None`.
    pub async fn unless_shutdown<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            output = work => Some(output),
            _ = self.shutdown.changed() => None,
        }
    }
}
