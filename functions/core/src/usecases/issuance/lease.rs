//! [`LeaseKeeper`]: the issuance lease of one run, kept alive while the run works.
//!
//! A run takes the lease on its name set; from then on a background task renews it every
//! third of its time to live, so the lease outlives every step however long the CA takes to
//! answer (a lease no longer than one request's timeout used to lapse in the middle of a step
//! and let a second worker start another order for the same names). The run checks that it
//! still holds the lease before each durable write, and is stopped outright — as a crash would
//! stop it, leaving everything resumable — when another owner takes the lease over, or when it
//! lapses because renewals kept failing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::model::{IssueStop, Lease};
use crate::ports::{Clock, Store};

/// Renews a held lease in the background until dropped or released.
pub(crate) struct LeaseKeeper {
    /// The lease as last renewed; `None` once another owner took it over.
    held: watch::Receiver<Option<Lease>>,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    renewer: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Starts renewing `lease` for `ttl` every third of `ttl`.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        lease: Lease,
        ttl: time::Duration,
    ) -> LeaseKeeper {
        let (sender, held) = watch::channel(Some(lease.clone()));
        let period = Duration::try_from(ttl / 3).unwrap_or(Duration::from_secs(1));
        let renewer = tokio::spawn({
            let (store, clock) = (Arc::clone(&store), Arc::clone(&clock));
            async move {
                let mut lease = lease;
                loop {
                    tokio::time::sleep(period).await;
                    match store.renew_lease(&lease, ttl, clock.now()).await {
                        Ok(renewed) => {
                            lease = renewed;
                            sender.send_replace(Some(lease.clone()));
                        }
                        Err(Error::LeaseHeld { .. }) => {
                            tracing::warn!(lease = %lease.name, "the issuance lease was taken over");
                            sender.send_replace(None);
                            return;
                        }
                        // Still ours until it expires; the next renewal may get through.
                        Err(error) => {
                            tracing::warn!(%error, lease = %lease.name, "could not renew the issuance lease");
                        }
                    }
                }
            }
        });
        LeaseKeeper {
            held,
            clock,
            store,
            renewer,
        }
    }

    /// `Ok` while the lease is held and unexpired by this process's clock; otherwise the run
    /// must stop without writing.
    pub(crate) fn check(&self) -> Result<(), IssueStop> {
        match &*self.held.borrow() {
            Some(lease) if lease.expires_at > self.clock.now() => Ok(()),
            _ => Err(IssueStop::LeaseLost),
        }
    }

    /// Resolves once the lease is lost: taken over, or lapsed.
    pub(crate) async fn lost(&self) {
        let mut held = self.held.clone();
        loop {
            let expires_at = match &*held.borrow_and_update() {
                Some(lease) => lease.expires_at,
                None => return,
            };
            let Ok(left) = Duration::try_from(expires_at - self.clock.now()) else {
                return;
            };
            if left.is_zero() {
                return;
            }
            tokio::select! {
                changed = held.changed() => {
                    if changed.is_err() {
                        // The renewer stopped: only `release` does that, after the run.
                        return;
                    }
                }
                () = tokio::time::sleep(left) => {}
            }
        }
    }

    /// Stops renewing and releases the lease, when still held.
    pub(crate) async fn release(self) {
        self.renewer.abort();
        let held = self.held.borrow().clone();
        if let Some(lease) = held {
            if let Err(error) = self.store.release_lease(&lease).await {
                tracing::warn!(%error, "could not release the issuance lease; it will expire");
            }
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
