//! Opening the SQLite file: owner-only permissions, connection settings and schema migrations.
//!
//! One connection, on a thread of its own, serves the whole process. SQLite serialises writers anyway,
//! and a single connection makes `BEGIN IMMEDIATE` transactions the only concurrency story to
//! reason about; other processes on the same file wait on `busy_timeout`.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{EmbeddedError, Result};
use crate::store::SqliteStore;
use crate::vault::SqliteVault;

/// Owner read/write only: the file holds private keys and ACME account credentials.
const FILE_MODE: u32 = 0o600;
const DIRECTORY_MODE: u32 = 0o700;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema steps, applied in order; step `n` moves `PRAGMA user_version` from `n` to `n + 1`.
/// Released steps never change: a new schema is a new step at the end.
const MIGRATIONS: &[&str] = &[
    // 1: the store.
    "
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY NOT NULL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL
    ) STRICT;
    CREATE TABLE api_keys (
        hash TEXT PRIMARY KEY NOT NULL,
        account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE
    ) STRICT;
    CREATE INDEX api_keys_by_account ON api_keys (account_id);
    -- Limit counters live apart from accounts so that they are plain counters, written in the
    -- same transaction as the item they count.
    CREATE TABLE account_usage (
        account_id TEXT PRIMARY KEY NOT NULL,
        domains INTEGER NOT NULL DEFAULT 0,
        certificates INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE domains (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL,
        hostname TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL
    ) STRICT;
    CREATE INDEX domains_by_account ON domains (account_id, created_at, seq);
    CREATE TABLE zones (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL
    ) STRICT;
    CREATE INDEX zones_by_account ON zones (account_id, created_at, seq);
    CREATE TABLE certificates (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL,
        -- The primary name of a downloadable certificate; NULL for managed ones, which the
        -- per-account uniqueness and the plan limit do not cover.
        downloadable_name TEXT,
        created_at INTEGER NOT NULL,
        due_at INTEGER,
        version INTEGER NOT NULL,
        data TEXT NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX certificates_downloadable_name
        ON certificates (account_id, downloadable_name) WHERE downloadable_name IS NOT NULL;
    CREATE INDEX certificates_by_account ON certificates (account_id, created_at, seq);
    CREATE INDEX certificates_due ON certificates (due_at, id) WHERE due_at IS NOT NULL;
    CREATE TABLE certificate_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        certificate_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        data TEXT NOT NULL
    ) STRICT;
    CREATE INDEX certificate_events_by_certificate ON certificate_events (certificate_id, at, seq);
    CREATE TABLE http01_challenges (
        token TEXT PRIMARY KEY NOT NULL,
        expires_at INTEGER NOT NULL,
        data TEXT NOT NULL
    ) STRICT;
    CREATE TABLE leases (
        name TEXT PRIMARY KEY NOT NULL,
        owner TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL
    ) STRICT;
    ",
    // 2: the vault.
    "
    CREATE TABLE certificate_material (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        certificate_id TEXT NOT NULL,
        version_id TEXT NOT NULL UNIQUE,
        chain_pem TEXT,
        private_key_pem TEXT NOT NULL
    ) STRICT;
    CREATE INDEX certificate_material_by_certificate ON certificate_material (certificate_id);
    CREATE TABLE acme_accounts (
        directory_url TEXT PRIMARY KEY NOT NULL,
        credentials TEXT NOT NULL
    ) STRICT;
    ",
    // 3: change feeds for the edge: domains and certificates by `updated_at` (Unix
    // nanoseconds, like every other time column). Rows written before this step get theirs
    // from the stored model (millisecond precision is enough to order a feed).
    "
    ALTER TABLE domains ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
    UPDATE domains SET updated_at =
        CAST(unixepoch(json_extract(data, '$.updated_at'), 'subsec') * 1000000000 AS INTEGER);
    CREATE INDEX domains_by_update ON domains (updated_at, id);
    ALTER TABLE certificates ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
    UPDATE certificates SET updated_at =
        CAST(unixepoch(json_extract(data, '$.updated_at'), 'subsec') * 1000000000 AS INTEGER);
    CREATE INDEX certificates_by_update ON certificates (updated_at, id);
    ",
    // 4: token buckets (the CA-wide order budget): the level in thousandths of a token, the
    // time in Unix nanoseconds.
    "
    CREATE TABLE token_buckets (
        name TEXT PRIMARY KEY NOT NULL,
        level_milli INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    ",
    // 5: tombstones of deleted domains, read with the domain change feed so that every edge
    // stops serving a deleted (or re-claimed) hostname; `deleted_at` in Unix nanoseconds.
    "
    CREATE TABLE domain_tombstones (
        id TEXT PRIMARY KEY NOT NULL,
        deleted_at INTEGER NOT NULL,
        data TEXT NOT NULL
    ) STRICT;
    CREATE INDEX domain_tombstones_by_time ON domain_tombstones (deleted_at, id);
    ",
    // 6: a zone name belongs to one zone at a time: the zone holding the claim has its name
    // here. Zones stored before this step keep NULL: they were never proven by their account
    // (and the same name may be in several accounts), so none of them is given the claim;
    // their accounts import them again.
    "
    ALTER TABLE zones ADD COLUMN name TEXT;
    CREATE UNIQUE INDEX zones_by_name ON zones (name) WHERE name IS NOT NULL;
    ",
];

/// Work for the database's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The connection shared by the store and the vault of one [`Database`]: one thread owns it
/// and runs the work sent to it in turn, until the last handle is dropped.
///
/// A thread of its own rather than Tokio's blocking pool: work on one connection runs one
/// piece at a time anyway, and the pool would start a thread for each concurrent caller (the
/// terminator's first load reads 32 keys at once), each blocked on the connection and each
/// leaving its own allocator arena behind (BENCHMARKS.md, scenario 3).
#[derive(Debug, Clone)]
pub(crate) struct SharedConnection(mpsc::Sender<Job>);

impl SharedConnection {
    fn start(mut connection: Connection, path: &Path) -> Result<SharedConnection> {
        let (sender, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("edgecert-sqlite".to_owned())
            .spawn(move || {
                for job in jobs {
                    job(&mut connection);
                }
            })
            .map_err(|source| EmbeddedError::File {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(SharedConnection(sender))
    }

    /// Runs blocking SQLite work on the database's thread, off the async runtime.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(work, move |result| {
            // The caller may have stopped waiting (a cancelled request): nothing to do.
            let _ = reply.send(result);
        })?;
        answer.await.map_err(|_| EmbeddedError::Task(THREAD_GONE))?
    }

    /// Runs SQLite work on the database's thread and blocks the caller until it is done: for
    /// code outside any async runtime.
    #[cfg(test)]
    pub(crate) fn run_blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(work, move |result| {
            let _ = reply.send(result);
        })?;
        answer
            .recv()
            .map_err(|_| EmbeddedError::Task(THREAD_GONE))?
    }

    fn send<T, F>(&self, work: F, reply: impl FnOnce(Result<T>) + Send + 'static) -> Result<()>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let job: Job = Box::new(move |connection| {
            // A panic inside `work` unwinds through its `Transaction`, whose drop rolls back,
            // so the connection is still consistent and goes on serving.
            let result = panic::catch_unwind(AssertUnwindSafe(|| work(connection)))
                .unwrap_or(Err(EmbeddedError::Task("the database work panicked")));
            reply(result);
        });
        self.0
            .send(job)
            .map_err(|_| EmbeddedError::Task(THREAD_GONE))
    }
}

const THREAD_GONE: &str = "the database thread stopped";

/// One SQLite file holding EdgeCert's store and vault.
#[derive(Debug, Clone)]
pub struct Database {
    connection: SharedConnection,
    path: PathBuf,
}

impl Database {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// The file is created owner-only (0600) before SQLite first touches it, and an existing
    /// file readable by others is restricted again. Missing parent directories are created
    /// 0700. This blocks: call it at start-up, or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        let path = path.as_ref().to_path_buf();
        prepare_file(&path)?;
        let mut connection = Connection::open(&path)?;
        configure(&connection)?;
        let schema_version = migrate(&mut connection)?;
        tracing::info!(path = %path.display(), schema_version, "database opened");
        Ok(Database {
            connection: SharedConnection::start(connection, &path)?,
            path,
        })
    }

    /// The store over this database.
    pub fn store(&self) -> SqliteStore {
        SqliteStore::new(self.connection.clone())
    }

    /// The vault over this database.
    pub fn vault(&self) -> SqliteVault {
        SqliteVault::new(self.connection.clone())
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates the file owner-only, so there is no moment when the keys it will hold are readable
/// by others. SQLite gives its `-wal` and `-shm` files the database file's permissions.
fn prepare_file(path: &Path) -> Result<()> {
    let file_error = |source| EmbeddedError::File {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        DirBuilder::new()
            .recursive(true)
            .mode(DIRECTORY_MODE)
            .create(parent)
            .map_err(file_error)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(file_error)?;
    let mode = file.metadata().map_err(file_error)?.permissions().mode() & 0o777;
    if mode & !FILE_MODE != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "database file was readable by others; restricting it to its owner"
        );
        file.set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(file_error)?;
    }
    Ok(())
}

fn configure(connection: &Connection) -> Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets terminators read challenge answers while the issuer writes.
    let journal_mode: String =
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            journal_mode,
            "SQLite refused WAL mode; continuing without it"
        );
    }
    connection.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

/// Applies the missing migration steps in one transaction and returns the schema version.
fn migrate(connection: &mut Connection) -> Result<usize> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = transaction.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let applied = usize::try_from(found)
        .ok()
        .filter(|applied| *applied <= MIGRATIONS.len())
        .ok_or(EmbeddedError::SchemaTooNew {
            found,
            supported: MIGRATIONS.len(),
        })?;
    if applied == MIGRATIONS.len() {
        return Ok(applied);
    }
    for step in &MIGRATIONS[applied..] {
        transaction.execute_batch(step)?;
    }
    let latest =
        i64::try_from(MIGRATIONS.len()).map_err(|_| EmbeddedError::OutOfRange("schema version"))?;
    transaction.pragma_update(None, "user_version", latest)?;
    transaction.commit()?;
    tracing::info!(
        from = applied,
        to = MIGRATIONS.len(),
        "database schema migrated"
    );
    Ok(MIGRATIONS.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use edgecert_core::model::Account;
    use edgecert_core::ports::AccountStore;
    use edgecert_core::{AccountId, PlanName};
    use time::macros::datetime;

    use super::*;

    fn user_version(database: &Database) -> i64 {
        database
            .connection
            .run_blocking(|connection| {
                Ok(connection.pragma_query_value(None, "user_version", |row| row.get(0))?)
            })
            .unwrap()
    }

    #[test]
    fn work_that_panics_fails_alone_and_the_database_goes_on_serving() {
        let directory = tempfile::tempdir().unwrap();
        let database = Database::open(directory.path().join("edgecert.db")).unwrap();

        let failed = database.connection.run_blocking(|connection| {
            let transaction = connection.transaction()?;
            transaction.execute_batch("PRAGMA user_version = 99")?;
            panic!("a bug in the middle of a transaction");
            #[allow(unreachable_code)]
            Ok(())
        });

        assert!(matches!(failed, Err(EmbeddedError::Task(_))), "{failed:?}");
        // The transaction was rolled back, and the next work runs.
        assert_eq!(user_version(&database), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_created_file_is_readable_by_its_owner_only() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nested/edgecert.db");

        Database::open(&path).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let directory_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(directory_mode & 0o077, 0);
    }

    #[test]
    fn an_existing_file_readable_by_others_is_restricted() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("edgecert.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();

        Database::open(&path).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn migrations_are_idempotent_on_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("edgecert.db");

        let first = Database::open(&path).unwrap();
        assert_eq!(user_version(&first), MIGRATIONS.len() as i64);
        drop(first);
        let second = Database::open(&path).unwrap();

        assert_eq!(user_version(&second), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_schema_newer_than_this_build_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("edgecert.db");
        {
            let database = Database::open(&path).unwrap();
            database
                .connection
                .run_blocking(|connection| {
                    Ok(connection.pragma_update(
                        None,
                        "user_version",
                        MIGRATIONS.len() as i64 + 1,
                    )?)
                })
                .unwrap();
        }

        let error = Database::open(&path).unwrap_err();

        assert!(
            matches!(error, EmbeddedError::SchemaTooNew { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn rows_written_before_the_change_feeds_are_found_by_them() {
        use edgecert_core::Hostname;
        use edgecert_core::model::{Domain, DomainChange, ProvisioningStep};
        use edgecert_core::ports::{DomainStore, PageRequest};
        use rusqlite::params;

        // GIVEN a database at schema 2 holding a domain
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("edgecert.db");
        let mut domain = Domain::whitelisted(
            AccountId::generate(),
            Hostname::parse_domain("shop.example.com").unwrap(),
            "https://origin.example.net/".to_owned(),
            false,
            datetime!(2026-06-01 11:00 UTC),
        );
        domain.provisioning_step = ProvisioningStep::Active;
        domain.updated_at = datetime!(2026-06-01 12:00:00.250 UTC);
        domain.version = 3;
        {
            let connection = Connection::open(&path).unwrap();
            for step in &MIGRATIONS[..2] {
                connection.execute_batch(step).unwrap();
            }
            connection.pragma_update(None, "user_version", 2).unwrap();
            connection
                .execute(
                    "INSERT INTO domains (id, account_id, hostname, created_at, version, data)
                     VALUES (?1, ?2, ?3, 0, 3, ?4)",
                    params![
                        domain.id.as_str(),
                        domain.account_id.as_str(),
                        domain.hostname.as_str(),
                        serde_json::to_string(&domain).unwrap()
                    ],
                )
                .unwrap();
        }

        // WHEN this build opens it
        let store = Database::open(&path).unwrap().store();

        // THEN the domain's feed position comes from its stored updated_at
        let around = |at| store.domains_changed_since(at, PageRequest::first(10));
        let found = around(datetime!(2026-06-01 12:00:00.200 UTC))
            .await
            .unwrap();
        assert_eq!(found.items, vec![DomainChange::Changed(domain.clone())]);
        let after = around(datetime!(2026-06-01 12:00:00.300 UTC))
            .await
            .unwrap();
        assert!(after.items.is_empty());
    }

    #[tokio::test]
    async fn zones_stored_before_name_claims_hold_no_claim() {
        use edgecert_core::model::Zone;
        use edgecert_core::ports::ZoneStore;
        use edgecert_core::{Error, Hostname, ZoneId};
        use rusqlite::params;

        // GIVEN a database at schema 4 where two accounts imported the same zone name (which
        // nothing prevented then)
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("edgecert.db");
        let legacy = |account: AccountId| Zone {
            id: ZoneId::generate(),
            account_id: account,
            name: Hostname::parse_domain("shared.example.com").unwrap(),
            provider: "challtestsrv".to_owned(),
            provider_zone_id: "Z1".to_owned(),
            role_arn: None,
            verified: true,
            created_at: datetime!(2026-06-01 11:00 UTC),
            version: 1,
        };
        let (first, second) = (legacy(AccountId::generate()), legacy(AccountId::generate()));
        {
            let connection = Connection::open(&path).unwrap();
            for step in &MIGRATIONS[..4] {
                connection.execute_batch(step).unwrap();
            }
            connection.pragma_update(None, "user_version", 4).unwrap();
            for zone in [&first, &second] {
                connection
                    .execute(
                        "INSERT INTO zones (id, account_id, created_at, version, data)
                         VALUES (?1, ?2, 0, 1, ?3)",
                        params![
                            zone.id.as_str(),
                            zone.account_id.as_str(),
                            serde_json::to_string(zone).unwrap()
                        ],
                    )
                    .unwrap();
            }
        }

        // WHEN this build opens it
        let store = Database::open(&path).unwrap().store();

        // THEN both zones are still there, neither holds the name, and deleting one frees
        // nothing; a new import claims the name once.
        assert_eq!(
            store.get_zone(&first.account_id, &first.id).await.unwrap(),
            Some(first.clone())
        );
        assert_eq!(store.zone_by_name(&first.name).await.unwrap(), None);
        store
            .delete_zone(&second.account_id, &second.id)
            .await
            .unwrap();
        let claimed = legacy(first.account_id.clone());
        store.create_zone(&claimed).await.unwrap();
        assert_eq!(
            store.zone_by_name(&first.name).await.unwrap(),
            Some(claimed)
        );
        let again = store
            .create_zone(&legacy(second.account_id.clone()))
            .await
            .unwrap_err();
        assert!(matches!(again, Error::ZoneExists), "{again:?}");
    }

    #[tokio::test]
    async fn data_persists_across_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("edgecert.db");
        let account = Account::new(
            "Status Pages".to_owned(),
            PlanName::Pro,
            false,
            datetime!(2026-06-01 12:00 UTC),
        );
        let key = edgecert_core::model::ApiKey::generate();
        Database::open(&path)
            .unwrap()
            .store()
            .create_account(&account, &key.hash)
            .await
            .unwrap();

        let reopened = Database::open(&path).unwrap().store();

        assert_eq!(
            reopened.get_account(&account.id).await.unwrap(),
            Some(account.clone())
        );
        assert_eq!(
            reopened.account_for_api_key(&key.hash).await.unwrap(),
            Some(account.id)
        );
    }
}
