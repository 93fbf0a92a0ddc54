//! State store: the only module that speaks SQL (DESIGN.md §3, §5).
//!
//! One SQLite file (WAL, mode 0600) holds links with base hashes, cursors, the create journal,
//! runs with their items and API-call audit, OAuth tokens and read-only appointment data.
//! Opening is careful: a file that is not ours (garbage, another application's database, or a
//! newer schema) is refused *before* anything is written to it, so a wrong `--config` never
//! damages someone else's data.
//!
//! Queries are inherent methods of [`Store`], split by concern into submodules. Atomic groups of
//! changes go through [`Store::transaction`], which nests (savepoints).

mod alerts;
mod appointments;
mod cursors;
pub mod dashboard;
mod ghl_contacts;
mod history;
mod journal;
mod links;
mod lock;
mod open;
mod rate_window;
mod runs;
pub mod schema;
mod tokens;
mod webhook_events;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use open::Contents;

pub use alerts::AlertState;
pub use appointments::Appointment;
pub use cursors::{FastListing, FastLocations};
pub use ghl_contacts::{ContactCursor, ContactIdentity, ContactListing, DateFilter, IdentityKey};
pub use history::{CallFilter, CallPage, GuestEvent, GuestHistory, GuestKey, call_json};
pub use journal::{Intent, IntentState, NewIntent};
pub use links::{ExtraValues, Link, LinkHead, LinkStatus, MatchMethod};
pub use lock::{RefreshLock, StateLock, lock_path, try_lock_refresh};
pub use runs::{ApiCall, ApiCallStats, ItemOutcome, MethodCount, RunItem, RunRecord, RunStatus};
pub use tokens::StoredToken;
pub use webhook_events::{NewWebhookEvent, WebhookEvent, WebhookQueue};

use crate::model::{Digest, Kind};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state file {} is not a hotspot-ghl-sync database (not SQLite, or corrupt); it was left untouched", path.display())]
    NotADatabase { path: PathBuf },
    #[error("state file {} is a SQLite database of another application; refusing to use it (it was left untouched)", path.display())]
    Foreign { path: PathBuf },
    #[error("state file {} was written by a newer version of hotspot-ghl-sync (schema {found}, this binary knows up to {supported}); upgrade the binary", path.display())]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("state file {} does not exist (check [state] path; `sync` creates it)", path.display())]
    Missing { path: PathBuf },
    #[error("state file {} cannot be read: permission denied (this user needs read access to the file and search access to its folder)", path.display())]
    PermissionDenied { path: PathBuf },
    #[error("state file {} cannot be read: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {} has schema {found}, older than this binary's {supported}; read-only commands do not upgrade it: run `sync` once", path.display())]
    Outdated {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("state file {} cannot be created or written: {source}", path.display())]
    Unwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {} is in use by another hotspot-ghl-sync process{}; wait for it to finish or stop it", path.display(), holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, holder: Option<u32> },
    #[error("state directory {} cannot be created: {reason}", dir.display())]
    StateDir { dir: PathBuf, reason: String },
    #[error("cannot lock state file {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal intent {0} is not pending")]
    IntentNotPending(i64),
    #[error("unexpected value {value:?} in state column {column}")]
    BadValue { column: &'static str, value: String },
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open state database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Nesting depth of [`Store::transaction`], to name savepoints.
    depth: Cell<u32>,
    /// The state lock, when this store was handed it ([`Store::keep_lock`]). Declared after
    /// `conn` so that it is released only once the connection is closed: the lock holds a
    /// descriptor of the database file, and closing it while SQLite still holds its own locks
    /// on that file would drop them (POSIX locks belong to the process, not the descriptor).
    lock: Option<StateLock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if missing) and migrates the state file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let unwritable = |source| StoreError::Unwritable {
            path: path.clone(),
            source,
        };
        match open::inspect(&path) {
            // Refused files are left exactly as they were: the inspection writes nothing.
            Ok((probe, _)) => {
                drop(probe);
                // Fail before SQLite does, with a message naming the path.
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(unwritable)?;
            }
            Err(StoreError::Missing { .. }) => create_private_file(&path).map_err(unwritable)?,
            Err(StoreError::PermissionDenied { .. }) => {
                return Err(unwritable(std::io::ErrorKind::PermissionDenied.into()));
            }
            Err(StoreError::Unreadable { source, .. }) => return Err(unwritable(source)),
            Err(e) => return Err(e),
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::BadValue {
                column: "journal_mode",
                value: mode,
            });
        }
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
        let store = Store {
            conn,
            path,
            depth: Cell::new(0),
            lock: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens the existing state file at `path` for reading only: nothing is created, migrated
    /// or written, on the file or beside it (see [`open`] for how a WAL file is read), so it
    /// works on a read-only file, folder or mount. An empty file reads as an empty state.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let (conn, contents) = open::inspect(&path)?;
        let conn = match (conn, contents) {
            (Some(conn), Contents::Ours { version }) => {
                if version < schema::latest_version() {
                    return Err(StoreError::Outdated {
                        path,
                        found: version,
                        supported: schema::latest_version(),
                    });
                }
                conn
            }
            // Nothing on disk to read: the same answers as a fresh state, from memory.
            (_, Contents::Empty) => {
                let mut store = Store::open_in_memory()?;
                store.path = path;
                return Ok(store);
            }
            (None, Contents::Ours { .. }) => {
                unreachable!("a database is inspected through a connection")
            }
        };
        Ok(Store {
            conn,
            path,
            depth: Cell::new(0),
            lock: None,
        })
    }

    /// A private in-memory store with the full schema, for tests of the modules that use it.
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        let store = Store {
            conn,
            path: PathBuf::from(":memory:"),
            depth: Cell::new(0),
            lock: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Takes the process lock of the state file at `db_path` (a sibling `<db>.lock` file).
    /// Hold the returned guard for the whole run; dropping it releases the lock.
    pub fn lock(db_path: impl AsRef<Path>) -> Result<StateLock> {
        lock::acquire(db_path.as_ref())
    }

    /// Keeps `lock` for as long as this store is open, and releases it after the connection.
    pub fn keep_lock(&mut self, lock: StateLock) {
        self.lock = Some(lock);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn migrate(&self) -> Result<()> {
        let latest = schema::latest_version();
        let too_new = |found| StoreError::TooNew {
            path: self.path.clone(),
            found,
            supported: latest,
        };
        match self.schema_version()? {
            v if v > latest => return Err(too_new(v)),
            v if v == latest => return Ok(()),
            _ => {}
        }
        // Under the write lock, and the version read again under it: two processes opening an
        // old file at once must not both apply a step (an `ALTER TABLE` is not idempotent).
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let steps = (|| -> Result<()> {
            let mut version = self.schema_version()?;
            if version > latest {
                return Err(too_new(version));
            }
            while version < latest {
                self.conn
                    .execute_batch(schema::MIGRATIONS[version as usize])?;
                self.conn
                    .execute_batch(&format!("PRAGMA user_version = {}", version + 1))?;
                if version == 0 {
                    self.conn.execute_batch(&format!(
                        "PRAGMA application_id = {}",
                        schema::APPLICATION_ID
                    ))?;
                }
                version += 1;
            }
            Ok(())
        })();
        match steps {
            Ok(()) => Ok(self.conn.execute_batch("COMMIT")?),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Runs `f` atomically: everything it does through the store commits together or not at all.
    /// Nested calls become savepoints, so helpers that use a transaction compose.
    pub fn transaction<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        let depth = self.depth.get();
        let name = format!("hgs_sp_{depth}");
        self.conn.execute_batch(&format!("SAVEPOINT {name}"))?;
        self.depth.set(depth + 1);
        let mut guard = SavepointGuard {
            store: self,
            name,
            finished: false,
        };
        let value = f(self)?;
        guard.release()?;
        Ok(value)
    }

    /// Cursor of `kind` within `scope` (e.g. a location id, or `""` for global).
    pub fn cursor(&self, kind: Kind, scope: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM cursors WHERE kind = ?1 AND scope = ?2",
                (kind.as_str(), scope),
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_cursor(&self, kind: Kind, scope: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO cursors (kind, scope, value, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (kind, scope) DO UPDATE SET value = excluded.value,
                                                     updated_at = excluded.updated_at",
            (kind.as_str(), scope, value, ts(Utc::now())),
        )?;
        Ok(())
    }

    /// Forgets all cursors of `kind` (used by `sync --full`).
    pub fn clear_cursors(&self, kind: Kind) -> Result<()> {
        self.conn
            .execute("DELETE FROM cursors WHERE kind = ?1", [kind.as_str()])?;
        Ok(())
    }
}

/// Rolls back the savepoint unless released, so an error or a panic inside
/// [`Store::transaction`] leaves no partial change.
struct SavepointGuard<'a> {
    store: &'a Store,
    name: String,
    finished: bool,
}

impl SavepointGuard<'_> {
    fn release(&mut self) -> Result<()> {
        self.store
            .conn
            .execute_batch(&format!("RELEASE {}", self.name))?;
        self.finished = true;
        self.store.depth.set(self.store.depth.get() - 1);
        Ok(())
    }
}

impl Drop for SavepointGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self
                .store
                .conn
                .execute_batch(&format!("ROLLBACK TO {0}; RELEASE {0}", self.name));
            self.store.depth.set(self.store.depth.get() - 1);
        }
    }
}

/// Creates the directory the state lives in, with an error that says what is in the way: the
/// OS's own answer ("File exists", "Not a directory") names neither the path nor the cause.
pub(crate) fn create_state_dir(dir: &Path) -> Result<()> {
    let Err(e) = std::fs::create_dir_all(dir) else {
        return Ok(());
    };
    let blocker = dir
        .ancestors()
        .find(|a| a.exists() && !a.as_os_str().is_empty());
    let reason = match blocker {
        Some(b) if !b.is_dir() => format!("{} is a file, not a directory", b.display()),
        _ if e.kind() == std::io::ErrorKind::PermissionDenied => {
            "permission denied (choose a writable [state] path)".to_string()
        }
        _ => e.to_string(),
    };
    Err(StoreError::StateDir {
        dir: dir.to_path_buf(),
        reason,
    })
}

/// Creates the parent directory and an empty file with mode 0600, before SQLite writes anything,
/// so that tokens are never readable by others even for an instant.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let file = opts.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    {
        opts.open(path)?;
    }
    Ok(())
}

// ---- column helpers shared by the submodules ----

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn parse_ts(column: &'static str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::BadValue {
            column,
            value: s.to_string(),
        })
}

pub(crate) fn parse_opt_ts(
    column: &'static str,
    s: Option<String>,
) -> Result<Option<DateTime<Utc>>> {
    s.map(|s| parse_ts(column, &s)).transpose()
}

pub(crate) fn parse_kind(s: &str) -> Result<Kind> {
    Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| StoreError::BadValue {
            column: "kind",
            value: s.to_string(),
        })
}

pub(crate) fn parse_digest(column: &'static str, s: Option<String>) -> Result<Option<Digest>> {
    match s {
        None => Ok(None),
        Some(s) => Digest::from_hex(&s)
            .map(Some)
            .ok_or(StoreError::BadValue { column, value: s }),
    }
}
