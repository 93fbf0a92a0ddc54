//! Looking at an existing state file without changing anything on disk: the check every open
//! does before it writes, and the whole of a read-only open (`report`, `status`, `serve`).
//!
//! A WAL database is read through its `-wal`/`-shm` companions. SQLite creates them when they
//! are missing, even on a read-only connection, and cannot remove them again (they would be
//! left behind, owned by whoever ran the command, and could lock the daemon out). So:
//! - companions present (a sync is running, or one was killed): a plain read-only open, which
//!   shares the writer's locks and sees its committed changes;
//! - companions absent (no process has the file open, all of it is in the main file), or a
//!   read-only folder or mount that refuses the shared index: the file is read as immutable,
//!   without locks. A pass that starts while such a read is in progress writes to its own
//!   new `-wal`, not to the main file (until its first checkpoint, a thousand pages later),
//!   so the short read of a command or a page still sees one consistent state.

use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::{StoreError, schema};

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What an existing file holds, as far as a reader can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Contents {
    /// No bytes, or an SQLite database with no table yet (created, then interrupted before the
    /// first migration): an empty state.
    Empty,
    /// Our database at this schema version (never newer than this binary knows).
    Ours { version: i64 },
}

/// How a connection reads the file (see the module notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Shared,
    Immutable,
}

/// Opens `path` read-only and checks that it is a database of ours: the connection (none for an
/// empty file) and what it holds. Creates and modifies nothing on disk.
pub(super) fn inspect(path: &Path) -> Result<(Option<Connection>, Contents), StoreError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(StoreError::Unreadable {
            path: path.to_path_buf(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    let mut header = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    if meta.len() == 0 {
        return Ok((None, Contents::Empty));
    }
    if file.read_exact(&mut header).is_err() || &header != SQLITE_MAGIC {
        return Err(not_db(path));
    }
    drop(file);
    let first = if companions_present(path) {
        Reading::Shared
    } else {
        Reading::Immutable
    };
    match probe(path, first) {
        // A read-only folder or mount can refuse the shared index a plain open needs; the
        // file itself is readable, so it is read as immutable rather than called corrupt.
        Err(StoreError::Unreadable { .. }) if first == Reading::Shared => {
            probe(path, Reading::Immutable)
        }
        verdict => verdict,
    }
}

fn probe(path: &Path, reading: Reading) -> Result<(Option<Connection>, Contents), StoreError> {
    let conn = connect(path, reading).map_err(|e| sqlite_error(path, e))?;
    let contents = check(path, &conn)?;
    Ok((Some(conn), contents))
}

fn connect(path: &Path, reading: Reading) -> rusqlite::Result<Connection> {
    let query = match reading {
        Reading::Shared => "mode=ro",
        Reading::Immutable => "mode=ro&immutable=1",
    };
    let conn = Connection::open_with_flags(
        format!("file:{}?{query}", uri_path(path)),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Nothing read through this connection may ever write, whatever a caller asks of it.
    conn.execute_batch("PRAGMA query_only = ON")?;
    Ok(conn)
}

fn check(path: &Path, conn: &Connection) -> Result<Contents, StoreError> {
    let q = |e| sqlite_error(path, e);
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(q)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(q)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(q)?;
    if app_id == 0 && tables == 0 && version == 0 {
        return Ok(Contents::Empty);
    }
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'hgs_meta'",
            [],
            |r| r.get(0),
        )
        .map_err(q)?;
    let foreign = || StoreError::Foreign {
        path: path.to_path_buf(),
    };
    if app_id != schema::APPLICATION_ID || !has_meta {
        return Err(foreign());
    }
    let marker: Option<String> = conn
        .query_row(
            "SELECT value FROM hgs_meta WHERE key = 'application'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(q)?;
    if marker.as_deref() != Some(schema::APPLICATION_NAME) {
        return Err(foreign());
    }
    if version > schema::latest_version() {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: schema::latest_version(),
        });
    }
    // A quick structural check catches truncated or damaged files before anyone relies on them.
    let ok: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(q)?;
    if ok != "ok" {
        return Err(not_db(path));
    }
    Ok(Contents::Ours { version })
}

/// Both companions exist: some process has the database open, or was killed with it open.
fn companions_present(path: &Path) -> bool {
    ["-wal", "-shm"]
        .iter()
        .all(|suffix| PathBuf::from(format!("{}{suffix}", path.display())).exists())
}

fn not_db(path: &Path) -> StoreError {
    StoreError::NotADatabase {
        path: path.to_path_buf(),
    }
}

/// An OS error on the file itself, as the open failure it stands for.
fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::Missing { path },
        std::io::ErrorKind::PermissionDenied => StoreError::PermissionDenied { path },
        _ => StoreError::Unreadable { path, source: e },
    }
}

/// Only SQLite's own verdicts on the bytes make a file "corrupt"; a refusal to open or read
/// (permissions, a read-only mount, I/O) is reported as such, never as damage.
fn sqlite_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => not_db(path),
        Some(ErrorCode::PermissionDenied) => StoreError::PermissionDenied {
            path: path.to_path_buf(),
        },
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked,
        ) => StoreError::Unreadable {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        },
        _ => StoreError::Sqlite(e),
    }
}

/// `path` for a `file:` URI: everything but unreserved characters and `/` percent-encoded, so a
/// `?`, `#` or `%` in a folder name is not read as URI syntax.
fn uri_path(path: &Path) -> String {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().replace('\\', "/").into_bytes();
    percent_encoding::percent_encode(&bytes, URI_PATH).to_string()
}

/// Every byte but RFC 3986's unreserved characters and `/`.
const URI_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_escape_uri_syntax() {
        assert_eq!(
            uri_path(Path::new("/a b/c?d#e%f.db")),
            "/a%20b/c%3Fd%23e%25f.db"
        );
        assert_eq!(uri_path(Path::new("rel/x.db")), "rel/x.db");
    }
}
