//! Credentials as configured: a value from the environment, fixed for the life of the process,
//! or a file that is read again at each use, so that a rotated token or key is picked up by a
//! running daemon at once, without a restart. A secret file must be private to its owner (as
//! ssh demands of keys) unless the operator allows otherwise. No value is ever logged: errors
//! and warnings name the file, its config key and its mode.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretString};

/// What to do with a secret file that its group or others may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InsecureFiles {
    /// Refuse it, naming the file and its mode.
    #[default]
    Refuse,
    /// Use it with a warning (`--allow-insecure-secret-files`).
    Warn,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {} ({key}): {source}", path.display())]
    Unreadable {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {} ({key}) is empty", path.display())]
    Empty { key: String, path: PathBuf },
    #[error(
        "secret file {} ({key}) has mode {mode:04o}, readable by {who}; make it private (chmod 600 {}) or pass --allow-insecure-secret-files",
        path.display(),
        path.display()
    )]
    Insecure {
        key: String,
        path: PathBuf,
        mode: u32,
        who: &'static str,
    },
}

/// A configured credential: the value read when the configuration was loaded and, for a file,
/// where to read it again ([`Secret::current`]).
#[derive(Clone)]
pub struct Secret {
    loaded: SecretString,
    file: Option<Arc<SecretFile>>,
}

struct SecretFile {
    key: String,
    path: PathBuf,
    insecure: InsecureFiles,
    /// The last value read, kept for a file caught half-written during a rotation.
    last: Mutex<SecretString>,
    /// The warning about an allowed insecure mode is given once, not at every read.
    warned: AtomicBool,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "Secret(file {}, [REDACTED])", file.path.display()),
            None => f.write_str("Secret([REDACTED])"),
        }
    }
}

impl From<SecretString> for Secret {
    fn from(value: SecretString) -> Self {
        Secret {
            loaded: value,
            file: None,
        }
    }
}

/// The value read when the configuration was loaded. Clients use [`Secret::current`].
impl ExposeSecret<str> for Secret {
    fn expose_secret(&self) -> &str {
        self.loaded.expose_secret()
    }
}

impl Secret {
    /// Reads the secret file at `path` (config key `key`, e.g. `ghl.token_file`) now, and
    /// again at each [`Secret::current`].
    pub fn from_file(
        key: &str,
        path: &Path,
        insecure: InsecureFiles,
    ) -> Result<Secret, SecretError> {
        let file = SecretFile {
            key: key.to_string(),
            path: path.to_path_buf(),
            insecure,
            last: Mutex::new(SecretString::from(String::new())),
            warned: AtomicBool::new(false),
        };
        let loaded = file.read()?;
        *file.last.lock().unwrap_or_else(|p| p.into_inner()) = loaded.clone();
        Ok(Secret {
            loaded,
            file: Some(Arc::new(file)),
        })
    }

    /// Whether the value comes from a file (and so can change while the process runs).
    pub fn is_file(&self) -> bool {
        self.file.is_some()
    }

    /// The value to use now: a file is read again, so a rotated credential takes effect at the
    /// next request. A file caught empty or missing (a rotation half done) yields the last
    /// value read, with a warning; a file made readable by others is refused.
    pub fn current(&self) -> Result<SecretString, SecretError> {
        let Some(file) = &self.file else {
            return Ok(self.loaded.clone());
        };
        let mut last = file.last.lock().unwrap_or_else(|p| p.into_inner());
        match file.read() {
            Ok(value) => {
                if value.expose_secret() != last.expose_secret() {
                    tracing::info!(key = %file.key, path = %file.path.display(), "secret file changed; using the new value");
                    *last = value.clone();
                }
                Ok(value)
            }
            Err(e @ SecretError::Insecure { .. }) => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "secret file unusable for now; keeping the value read before");
                Ok(last.clone())
            }
        }
    }
}

impl SecretFile {
    fn read(&self) -> Result<SecretString, SecretError> {
        let unreadable = |source| SecretError::Unreadable {
            key: self.key.clone(),
            path: self.path.clone(),
            source,
        };
        let file = std::fs::File::open(&self.path).map_err(unreadable)?;
        self.check_mode(&file.metadata().map_err(unreadable)?)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut &file, &mut text).map_err(unreadable)?;
        let value = text.trim_end_matches(['\n', '\r']);
        if value.trim().is_empty() {
            return Err(SecretError::Empty {
                key: self.key.clone(),
                path: self.path.clone(),
            });
        }
        Ok(SecretString::from(value.to_string()))
    }

    #[cfg(unix)]
    fn check_mode(&self, meta: &std::fs::Metadata) -> Result<(), SecretError> {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
            (false, false) => return Ok(()),
            (true, false) => "its group",
            (false, true) => "others",
            (true, true) => "its group and others",
        };
        let err = SecretError::Insecure {
            key: self.key.clone(),
            path: self.path.clone(),
            mode,
            who,
        };
        match self.insecure {
            InsecureFiles::Refuse => Err(err),
            InsecureFiles::Warn => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!("{err} (allowed by --allow-insecure-secret-files)");
                }
                Ok(())
            }
        }
    }

    #[cfg(not(unix))]
    fn check_mode(&self, _meta: &std::fs::Metadata) -> Result<(), SecretError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let p = dir.join("secret");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_file_is_read_again_and_a_half_written_one_keeps_the_last_value() {
        let dir = std::env::temp_dir().join(format!("hgs-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = file(&dir, "one\n", 0o600);
        let s = Secret::from_file("ghl.token_file", &p, InsecureFiles::Refuse).unwrap();
        assert_eq!(s.current().unwrap().expose_secret(), "one");
        file(&dir, "two", 0o600);
        assert_eq!(s.current().unwrap().expose_secret(), "two");
        file(&dir, "", 0o600);
        assert_eq!(s.current().unwrap().expose_secret(), "two");
        assert_eq!(s.expose_secret(), "one", "the value at load");
        file(&dir, "three", 0o644);
        let e = s.current().unwrap_err().to_string();
        assert!(
            e.contains("0644") && e.contains("others") && !e.contains("three"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_readable_by_others_is_refused_unless_allowed() {
        let dir = std::env::temp_dir().join(format!("hgs-secret-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = file(&dir, "k", 0o640);
        let e = Secret::from_file("hotspot.api_key_file", &p, InsecureFiles::Refuse).unwrap_err();
        assert!(
            matches!(e, SecretError::Insecure { mode: 0o640, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("its group"), "{e}");
        let s = Secret::from_file("hotspot.api_key_file", &p, InsecureFiles::Warn).unwrap();
        assert_eq!(s.current().unwrap().expose_secret(), "k");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
