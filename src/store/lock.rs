//! One process per state file (DESIGN.md §5): an advisory lock on a sibling `<db>.lock` file.
//! The OS drops the lock when the process dies, so a kill -9 never leaves a stale lock.
//!
//! One database has one lock whatever path reaches it: the lock file sits beside the canonical
//! path (symlinks and `..` resolved), and the database file itself is locked too, which keys the
//! lock on the file's identity (device and inode) for the paths canonicalisation cannot join:
//! hard links and bind mounts. These are `flock` locks, separate from the POSIX locks SQLite
//! takes on the same file.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Result, StoreError};

/// Held for the life of a run; dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    /// The database file, locked for its identity.
    database: File,
    path: PathBuf,
}

impl StateLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = self.database.unlock();
        let _ = self.file.unlock();
    }
}

/// `<db>.lock` beside the database's canonical path.
pub fn lock_path(db_path: &Path) -> PathBuf {
    beside(&canonical(db_path), ".lock")
}

/// The path with symlinks and `..` resolved, as far as it exists: the file's own when it does,
/// else its folder's joined with its name; unchanged when not even the folder exists.
fn canonical(db_path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(db_path) {
        return p;
    }
    let parent = match db_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(parent), db_path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => db_path.to_path_buf(),
    }
}

/// `<db><suffix>` in the database's folder.
fn beside(db_path: &Path, suffix: &str) -> PathBuf {
    let mut name = db_path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    db_path.with_file_name(name)
}

pub(super) fn acquire(db_path: &Path) -> Result<StateLock> {
    if let Some(parent) = db_path.parent()
        && !parent.as_os_str().is_empty()
    {
        super::create_state_dir(parent)?;
    }
    // The database must exist to have an identity (and for a dangling symlink to resolve):
    // created empty and private here, as the open that follows would create it.
    if std::fs::metadata(db_path).is_err() {
        super::create_private_file(db_path).map_err(|source| StoreError::Unwritable {
            path: db_path.to_path_buf(),
            source,
        })?;
    }
    let path = lock_path(db_path);
    let lock_err = |source| StoreError::Lock {
        path: path.clone(),
        source,
    };
    let (mut file, held) = open_and_try_lock(&path)?;
    if !held {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        return Err(StoreError::Locked {
            path: db_path.to_path_buf(),
            holder: text.trim().parse().ok(),
        });
    }
    let database = File::open(canonical(db_path)).map_err(lock_err)?;
    match database.try_lock() {
        Ok(()) => {}
        // Held through another path (a hard link, a bind mount): that path's lock file names
        // the holder, not ours.
        Err(TryLockError::WouldBlock) => {
            return Err(StoreError::Locked {
                path: db_path.to_path_buf(),
                holder: None,
            });
        }
        Err(TryLockError::Error(e)) => return Err(lock_err(e)),
    }
    // Record our pid for the message a second process prints.
    file.set_len(0).map_err(lock_err)?;
    file.seek(SeekFrom::Start(0)).map_err(lock_err)?;
    write!(file, "{}", std::process::id()).map_err(lock_err)?;
    file.flush().map_err(lock_err)?;
    Ok(StateLock {
        file,
        database,
        path,
    })
}

/// The right to refresh the OAuth pair stored in one state file, across processes (a daemon and
/// a `check` beside it). A file of its own, not the state lock: `check` and `auth ghl status`
/// run beside a daemon that holds the state lock for its whole life. Dropping it releases it;
/// so does the OS when the process dies.
#[derive(Debug)]
pub struct RefreshLock {
    file: File,
}

impl Drop for RefreshLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// `<db>.refresh.lock` beside the database.
fn refresh_lock_path(db_path: &Path) -> PathBuf {
    beside(db_path, ".refresh.lock")
}

/// The refresh lock of `db_path`, or `None` while another process (or another source in this
/// one) holds it.
pub fn try_lock_refresh(db_path: &Path) -> Result<Option<RefreshLock>> {
    let (file, held) = open_and_try_lock(&refresh_lock_path(&canonical(db_path)))?;
    Ok(held.then_some(RefreshLock { file }))
}

/// Opens (or creates) the lock file at `path` and tries to lock it without waiting: the file,
/// and whether this process now holds it.
fn open_and_try_lock(path: &Path) -> Result<(File, bool)> {
    let lock_err = |source| StoreError::Lock {
        path: path.to_path_buf(),
        source,
    };
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(lock_err)?;
    match file.try_lock() {
        Ok(()) => Ok((file, true)),
        Err(TryLockError::WouldBlock) => Ok((file, false)),
        Err(TryLockError::Error(e)) => Err(lock_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_lock_is_exclusive_until_dropped() {
        let dir = std::env::temp_dir().join(format!("hgs-refresh-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("state.db");
        let held = try_lock_refresh(&db).unwrap().expect("free at first");
        assert!(try_lock_refresh(&db).unwrap().is_none(), "held elsewhere");
        drop(held);
        assert!(try_lock_refresh(&db).unwrap().is_some(), "free again");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
