//! Read-modify-write under optimistic concurrency, written once.
//!
//! Every store update is version-checked ([`Store`](crate::ports::Store)): a writer that lost
//! the race gets [`Error::VersionConflict`] and must read the item again, apply its change to
//! what the other writer left, and try again. [`retry_on_conflict`] is that loop for any
//! attempt; [`change_certificate`] and [`change_domain`] are the loop for one item and a
//! change that may decide, on the fresh item, to leave it alone.

use std::future::Future;

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::model::{Certificate, Domain};
use crate::ports::{Clock, Store};
use crate::usecases::Services;

/// How many times a read-modify-write is tried when other writers keep getting there first.
/// Conflicts come from a handful of writers at most (an issuance run, the renewer, an API
/// call, an edge), so three attempts settle any real race; more would hide a livelock.
pub const WRITE_ATTEMPTS: usize = 3;

/// Runs `attempt` again while it fails with [`Error::VersionConflict`], at most
/// [`WRITE_ATTEMPTS`] times in all, and returns its first other outcome (or the last
/// conflict). Each attempt must read what it changes afresh.
pub async fn retry_on_conflict<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempts = 1;
    loop {
        match attempt().await {
            Err(Error::VersionConflict(_)) if attempts < WRITE_ATTEMPTS => attempts += 1,
            outcome => return outcome,
        }
    }
}

/// Applies `change` to `current` and stores it; after a conflict, reads the certificate again
/// and applies `change` to that. `change` returns `false` to leave the item alone (it sees the
/// stored item, so it can tell whether someone else already did the work).
///
/// `Ok(None)` when `change` left it alone or the certificate is gone; `updated_at` is set to
/// the services' clock.
pub async fn change_certificate(
    services: &Services,
    current: Certificate,
    change: impl FnMut(&mut Certificate) -> bool,
) -> Result<Option<Certificate>> {
    change_item(
        services.store.as_ref(),
        services.clock.as_ref(),
        current,
        change,
    )
    .await
}

/// [`change_certificate`] on a store and clock of their own (for work that holds no
/// [`Services`], such as the key storage sweep).
pub async fn change_certificate_in(
    store: &dyn Store,
    clock: &dyn Clock,
    current: Certificate,
    change: impl FnMut(&mut Certificate) -> bool,
) -> Result<Option<Certificate>> {
    change_item(store, clock, current, change).await
}

/// [`change_certificate`] for a domain.
pub async fn change_domain(
    services: &Services,
    current: Domain,
    change: impl FnMut(&mut Domain) -> bool,
) -> Result<Option<Domain>> {
    change_item(
        services.store.as_ref(),
        services.clock.as_ref(),
        current,
        change,
    )
    .await
}

/// An item the store keeps under a version check: what the read-modify-write loop needs of it.
trait Versioned: Sized {
    /// Marks it changed at `now` (never before its last change: a clock behind another
    /// writer's must not move it back in the change feeds).
    fn touch(&mut self, now: OffsetDateTime);
    /// Stores it, version-checked.
    fn store<'a>(&'a self, store: &'a dyn Store) -> impl Future<Output = Result<Self>> + Send + 'a;
    /// Reads it again; `None` when it is gone.
    fn read_again<'a>(
        &'a self,
        store: &'a dyn Store,
    ) -> impl Future<Output = Result<Option<Self>>> + Send + 'a;
}

/// Implements [`Versioned`] for a model item through its store's `$update` and `$get`.
macro_rules! versioned {
    ($item:ty, $update:ident, $get:ident) => {
        impl Versioned for $item {
            fn touch(&mut self, now: OffsetDateTime) {
                self.updated_at = now.max(self.updated_at);
            }

            fn store<'a>(
                &'a self,
                store: &'a dyn Store,
            ) -> impl Future<Output = Result<Self>> + Send + 'a {
                store.$update(self)
            }

            fn read_again<'a>(
                &'a self,
                store: &'a dyn Store,
            ) -> impl Future<Output = Result<Option<Self>>> + Send + 'a {
                store.$get(&self.account_id, &self.id)
            }
        }
    };
}

versioned!(Certificate, update_certificate, get_certificate);
versioned!(Domain, update_domain, get_domain);

/// The loop of [`change_certificate`] and [`change_domain`], written once.
async fn change_item<T: Versioned>(
    store: &dyn Store,
    clock: &dyn Clock,
    mut current: T,
    mut change: impl FnMut(&mut T) -> bool,
) -> Result<Option<T>> {
    let mut attempts = 1;
    loop {
        if !change(&mut current) {
            return Ok(None);
        }
        current.touch(clock.now());
        match current.store(store).await {
            Ok(stored) => return Ok(Some(stored)),
            Err(Error::NotFound(_)) => return Ok(None),
            Err(Error::VersionConflict(_)) if attempts < WRITE_ATTEMPTS => {
                attempts += 1;
                match current.read_again(store).await? {
                    Some(fresh) => current = fresh,
                    None => return Ok(None),
                }
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::error::ItemKind;

    #[tokio::test]
    async fn conflicts_are_retried_a_bounded_number_of_times() {
        let counter = AtomicUsize::new(0);
        let calls = &counter;
        let outcome: Result<()> = retry_on_conflict(|| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::VersionConflict(ItemKind::Domain))
        })
        .await;
        assert!(matches!(outcome, Err(Error::VersionConflict(_))));
        assert_eq!(calls.load(Ordering::SeqCst), WRITE_ATTEMPTS);
    }

    #[tokio::test]
    async fn the_first_outcome_other_than_a_conflict_is_returned() {
        let counter = AtomicUsize::new(0);
        let calls = &counter;
        let outcome = retry_on_conflict(|| async move {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(Error::VersionConflict(ItemKind::Certificate)),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(outcome.unwrap(), 1);
        let failing: Result<()> = retry_on_conflict(|| async move { Err(Error::NotIssued) }).await;
        assert!(matches!(failing, Err(Error::NotIssued)));
    }
}
