//! The key storage sweep: moves certificate material to where the vault puts new material now,
//! a bounded number of certificates per run, without re-issuing anything and without a gap in
//! serving.
//!
//! A vault that keeps material in more than one place (on AWS: Secrets Manager, or sealed in
//! the table under one data key or another) names where new material goes: its storage
//! generation ([`Vault::storage_generation`](crate::ports::Vault::storage_generation)). The
//! generation changes when the operator moves a deployment between key storage modes, or when
//! the data key is rotated. From then on every new version lands in the new place, and reads
//! find every version wherever it sits; this sweep moves the rest:
//!
//! 1. It reads every certificate once through the certificate change feed (the index of change
//!    times, never a scan), from where the previous run stopped ([`MaterialSweep`], kept by the
//!    vault).
//! 2. A certificate whose served or pending version is elsewhere is moved under its issuance
//!    lease (no issuance writes its material meanwhile; a certificate being issued is left for
//!    a later run): each such version is read and stored anew, the certificate is switched to
//!    the new versions (version-checked, with a new `updated_at`, so every edge follows the
//!    change feed to the new version), and only then are the old versions deleted
//!    ([`Vault::prune_material`](crate::ports::Vault::prune_material)). A valid certificate is
//!    never without readable material.
//! 3. A run stops after [`KeySweepSettings::per_run`] moves. The sweep is finished once it has
//!    read the feed to its end with nothing left behind, and [`SETTLE`] has passed since it
//!    began (processes that had not yet learnt the new generation may have written the old way
//!    until then: their writes change the certificate, so the sweep meets it again). Finished,
//!    a run costs one read of the saved progress.
//!
//! Vaults with one place (SQLite) have no generation: the sweep does nothing.

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use rand::RngCore as _;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};
use crate::ids::CertificateId;
use crate::model::Certificate;
use crate::ports::{Clock, MaterialSweep, MaterialVersion, PageRequest, Store, Vault};
use crate::usecases::versioned::change_certificate_in;

/// How long after a sweep began it may be declared finished: longer than any process takes to
/// learn a new generation (a data key ring is re-read every five minutes; a Lambda invocation
/// started under the old configuration lasts at most fifteen).
pub const SETTLE: Duration = Duration::minutes(20);

/// How long the sweep holds a certificate's issuance lease while it moves its material (a few
/// calls); an issuance waits for it, or finds the lease expired should the sweep crash.
const LEASE_TTL: Duration = Duration::minutes(5);

/// Certificates one run reads per move it may make: bounds a run's reads when little needs
/// moving (most certificates already moved, or without material).
const EXAMINED_PER_MOVE: u64 = 10;

/// Most per-certificate errors a report keeps for the logs.
const MAX_REPORTED_ERRORS: usize = 20;

/// How much one run of the sweep does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySweepSettings {
    /// Certificates whose material one run moves (a run stops at the end of the page where it
    /// reaches this number, or after reading ten times as many certificates); 0 turns the
    /// sweep off.
    pub per_run: u64,
    /// Certificates worked on at once.
    pub concurrency: usize,
    /// Certificates read per page of the change feed.
    pub page_size: u32,
    /// How long one run may go on: it reads no further page after this.
    pub max_run_time: Duration,
}

impl KeySweepSettings {
    /// Moves per run by default: Secrets Manager takes 50 writes a second per account and
    /// region (shared with every other writer), so 2,000 moves fit well inside one renewer run
    /// while renewals go on; a million certificates move in about three weeks of hourly runs,
    /// or within a day with `EDGECERT_KEY_SWEEP_PER_RUN` raised.
    pub const DEFAULT_PER_RUN: u64 = 2_000;
}

impl Default for KeySweepSettings {
    fn default() -> Self {
        KeySweepSettings {
            per_run: KeySweepSettings::DEFAULT_PER_RUN,
            concurrency: 8,
            page_size: 200,
            max_run_time: Duration::minutes(3),
        }
    }
}

/// What one run of the sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeySweepReport {
    /// Where new material goes (`None`: the vault has one place, nothing to sweep).
    pub generation: Option<String>,
    /// Certificates read from the change feed.
    pub examined: u64,
    /// Certificates whose material was moved.
    pub moved: u64,
    /// Certificates left for a later run: being issued, or changed meanwhile.
    pub busy: u64,
    /// Whether the sweep to `generation` is finished.
    pub finished: bool,
    /// Failures while moving one certificate (retried next run), as (certificate, error), at
    /// most 20.
    pub errors: Vec<(CertificateId, String)>,
    /// How many errors there were in all.
    pub error_count: u64,
}

/// What happened to one certificate.
enum MoveOutcome {
    /// Its material already sits in the generation, or it has none.
    AlreadyThere,
    /// Its material was moved.
    Moved,
    /// Left for a later run (its lease is held, or it kept changing).
    Busy,
    /// Deleted meanwhile.
    Gone,
}

/// Runs the sweep once: moves up to `settings.per_run` certificates' material to the vault's
/// storage generation and saves how far it got. Fails only when the vault's generation or
/// progress, or the change feed, cannot be read; a certificate that cannot be moved is counted
/// in [`KeySweepReport::errors`] and tried again by a later run.
pub async fn sweep_key_storage(
    store: &dyn Store,
    vault: &dyn Vault,
    clock: &dyn Clock,
    settings: &KeySweepSettings,
) -> Result<KeySweepReport> {
    let ports = Ports {
        store,
        vault,
        clock,
    };
    if settings.per_run == 0 {
        return Ok(KeySweepReport::default());
    }
    let Some(generation) = vault.storage_generation().await? else {
        return Ok(KeySweepReport {
            finished: true,
            ..KeySweepReport::default()
        });
    };
    let now = clock.now();
    let mut sweep = match vault.load_sweep().await? {
        Some(saved) if saved.generation == generation => saved,
        _ => MaterialSweep::start(generation.clone(), now),
    };
    let mut report = KeySweepReport {
        generation: Some(generation.clone()),
        ..KeySweepReport::default()
    };
    let Some(from) = sweep.resume_from else {
        report.finished = true;
        return Ok(report);
    };
    // Where the next run resumes: the newest change time examined so far.
    let mut since = from;
    let max_examined = settings.per_run.saturating_mul(EXAMINED_PER_MOVE);
    let owner = lease_owner();
    // The earliest change time of a certificate left behind: the next run resumes there.
    let mut left_behind: Option<OffsetDateTime> = None;
    let mut cursor = None;
    let mut reached_end = false;
    let deadline = now + settings.max_run_time;
    while report.moved < settings.per_run
        && report.examined < max_examined
        && clock.now() < deadline
    {
        let page = store
            .certificates_changed_since(
                from,
                PageRequest {
                    cursor: cursor.take(),
                    limit: settings.page_size.max(1),
                },
            )
            .await?;
        let mut working = FuturesUnordered::new();
        let mut page_items = page.items.into_iter();
        loop {
            while working.len() < settings.concurrency.max(1) {
                let Some(certificate) = page_items.next() else {
                    break;
                };
                report.examined += 1;
                let (ports, generation, owner) = (&ports, &generation, &owner);
                working.push(async move {
                    let outcome = move_material(ports, &certificate, generation, owner).await;
                    (certificate, outcome)
                });
            }
            let Some((certificate, outcome)) = working.next().await else {
                break;
            };
            match outcome {
                Ok(MoveOutcome::AlreadyThere | MoveOutcome::Gone) => {}
                Ok(MoveOutcome::Moved) => report.moved += 1,
                Ok(MoveOutcome::Busy) => {
                    report.busy += 1;
                    left_behind = earliest(left_behind, certificate.updated_at);
                }
                Err(error) => {
                    report.error_count += 1;
                    if report.errors.len() < MAX_REPORTED_ERRORS {
                        report
                            .errors
                            .push((certificate.id.clone(), error.to_string()));
                    }
                    left_behind = earliest(left_behind, certificate.updated_at);
                }
            }
            // The feed is in change order: whatever was examined is behind the next run's
            // start, unless it was left behind.
            since = since.max(certificate.updated_at);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => {
                reached_end = true;
                break;
            }
        }
    }
    let settled = clock.now() >= sweep.started_at + SETTLE;
    sweep.moved += report.moved;
    sweep.resume_from = match left_behind {
        Some(at) => Some(at.min(since)),
        None if reached_end && settled => None,
        None => Some(since),
    };
    report.finished = sweep.is_finished();
    vault.save_sweep(&sweep).await?;
    Ok(report)
}

fn earliest(current: Option<OffsetDateTime>, at: OffsetDateTime) -> Option<OffsetDateTime> {
    Some(current.map_or(at, |current| current.min(at)))
}

/// The ports the sweep works on.
#[derive(Clone, Copy)]
struct Ports<'a> {
    store: &'a dyn Store,
    vault: &'a dyn Vault,
    clock: &'a dyn Clock,
}

/// Moves one certificate's material to `generation` under its issuance lease.
async fn move_material(
    ports: &Ports<'_>,
    seen: &Certificate,
    generation: &str,
    owner: &str,
) -> Result<MoveOutcome> {
    let vault = ports.vault;
    let in_place = |certificate: &Certificate| {
        certificate
            .material_versions()
            .all(|version| vault.is_in_generation(&MaterialVersion(version.clone()), generation))
    };
    if in_place(seen) {
        return Ok(MoveOutcome::AlreadyThere);
    }
    let now = ports.clock.now();
    let lease = match ports
        .store
        .acquire_lease(&seen.issuance_lease_name(), owner, LEASE_TTL, now)
        .await
    {
        Ok(lease) => lease,
        Err(Error::LeaseHeld { .. }) => return Ok(MoveOutcome::Busy),
        Err(error) => return Err(error),
    };
    let outcome = move_leased(ports, seen, generation, &in_place).await;
    // A lease that could not be released expires on its own within LEASE_TTL.
    let _ = ports.store.release_lease(&lease).await;
    outcome
}

async fn move_leased(
    ports: &Ports<'_>,
    seen: &Certificate,
    generation: &str,
    in_place: &(dyn Fn(&Certificate) -> bool + Sync),
) -> Result<MoveOutcome> {
    let (store, vault) = (ports.store, ports.vault);
    let Some(certificate) = store.get_certificate(&seen.account_id, &seen.id).await? else {
        return Ok(MoveOutcome::Gone);
    };
    if in_place(&certificate) {
        return Ok(MoveOutcome::AlreadyThere);
    }
    // Old version -> new version (`None`: a pending key no longer stored, dropped).
    let mut renamed: Vec<(String, Option<String>)> = Vec::new();
    for version in certificate.material_versions() {
        let old = MaterialVersion(version.clone());
        if vault.is_in_generation(&old, generation) {
            continue;
        }
        let is_pending = certificate.pending_material_version.as_ref() == Some(version);
        match vault.get_material(&certificate.id, &old).await {
            Ok(material) => {
                let new = vault.put_material(&certificate.id, &material).await?;
                renamed.push((version.clone(), Some(new.0)));
            }
            // A pending key that is gone makes the issuer generate a new one; nothing to move.
            Err(Error::NotFound(_)) if is_pending => renamed.push((version.clone(), None)),
            Err(error) => return Err(error),
        }
    }
    let rename = |version: &Option<String>| match version {
        Some(version) => renamed
            .iter()
            .find(|(old, _)| old == version)
            .map_or_else(|| Some(version.clone()), |(_, new)| new.clone()),
        None => None,
    };
    let renamed_in = |certificate: &mut Certificate| {
        certificate.material_version = rename(&certificate.material_version);
        certificate.pending_material_version = rename(&certificate.pending_material_version);
        true
    };
    match change_certificate_in(store, ports.clock, certificate, renamed_in).await {
        Ok(Some(stored)) => {
            let keep: Vec<MaterialVersion> = stored
                .material_versions()
                .map(|version| MaterialVersion(version.clone()))
                .collect();
            let superseded: Vec<MaterialVersion> = renamed
                .iter()
                .map(|(old, _)| MaterialVersion(old.clone()))
                .collect();
            vault.prune_material(&stored.id, &keep, &superseded).await?;
            Ok(MoveOutcome::Moved)
        }
        Ok(None) => Ok(MoveOutcome::Gone),
        // Other writers kept changing it: the versions just written are dropped with the next
        // prune of this certificate.
        Err(Error::VersionConflict(_)) => Ok(MoveOutcome::Busy),
        Err(error) => Err(error),
    }
}

/// A random lease owner token for this run.
fn lease_owner() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("key-sweep-{}", hex::encode(bytes))
}
