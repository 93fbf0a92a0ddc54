//! `[webhooks]`: the public receiver of HotspotSystem webhooks that `run` serves beside its
//! passes (README, "Near real time: HotspotSystem webhooks").
//!
//! The keys are secrets: each webhook of the Control Center has its own, so several are
//! configured, from variables (read once, at load) and/or from a file of one key per line (read
//! again at each request, so a key added for a new location's webhook needs no restart). The
//! file must be private to its owner, like every other secret file.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ghl_keys::{self, GhlKeys};
use super::{ConfigError, ConfigErrorKind as K, Ctx};
use crate::secret::{Secret, SecretError};

/// `max_body_bytes` when unset: far above any one record (a few hundred bytes), far below what
/// would let a client hold much memory.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// The largest `max_body_bytes` accepted.
const MAX_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhooks {
    listen: Option<String>,
    #[serde(default)]
    hotspot_keys_env: Vec<String>,
    hotspot_keys_file: Option<PathBuf>,
    max_body_bytes: Option<u64>,
    ghl_public_key_file: Option<PathBuf>,
    ghl_ed25519_public_key_file: Option<PathBuf>,
    ghl_accept_legacy_rsa: Option<bool>,
}

/// The validated `[webhooks]` section.
#[derive(Debug, Clone, Default)]
pub struct WebhooksConfig {
    /// Where `run` listens for webhooks; `None`: it does not.
    pub listen: Option<SocketAddr>,
    /// The signing keys of the HotspotSystem webhooks.
    pub hotspot_keys: HotspotKeys,
    /// Larger bodies get 413 before they are read.
    pub max_body_bytes: u64,
    /// The keys GHL's webhooks (`POST /hooks/ghl`) are verified with.
    pub ghl_keys: GhlKeys,
}

impl WebhooksConfig {
    /// Whether `run` serves the receiver (and so wakes passes on events).
    pub fn enabled(&self) -> bool {
        self.listen.is_some()
    }
}

/// The HotspotSystem webhook keys: those of the variables, and those of the file.
#[derive(Clone, Default)]
pub struct HotspotKeys {
    from_env: Vec<SecretString>,
    file: Option<Secret>,
}

/// Never the keys: how many, and the file's path.
impl std::fmt::Debug for HotspotKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotspotKeys")
            .field("from_env", &self.from_env.len())
            .field("file", &self.file)
            .finish()
    }
}

impl HotspotKeys {
    /// Keys given directly (tests, the sandbox).
    pub fn from_values(keys: impl IntoIterator<Item = String>) -> HotspotKeys {
        HotspotKeys {
            from_env: keys.into_iter().map(SecretString::from).collect(),
            file: None,
        }
    }

    /// Every key to try now: the file is read again (a rotated or added key counts at once).
    pub fn current(&self) -> Result<Vec<SecretString>, SecretError> {
        let mut keys = self.from_env.clone();
        if let Some(file) = &self.file {
            let text = file.current()?;
            keys.extend(split_keys(text.expose_secret()));
        }
        Ok(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.from_env.is_empty() && self.file.is_none()
    }
}

/// One key per line; blank lines and `#` comments are skipped, surrounding spaces trimmed.
fn split_keys(text: &str) -> Vec<SecretString> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| SecretString::from(l.to_string()))
        .collect()
}

impl Ctx<'_> {
    pub(super) fn webhooks(
        &self,
        w: RawWebhooks,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WebhooksConfig, ConfigError> {
        let listen = match w.listen.as_deref().map(str::trim) {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                self.at(
                    "webhooks.listen",
                    K::Invalid,
                    format!("{text:?} is not an ADDRESS:PORT (e.g. \"0.0.0.0:8787\" or \"127.0.0.1:8787\")"),
                )
            })?),
        };
        let mut from_env = Vec::new();
        for (i, var) in w.hotspot_keys_env.iter().enumerate() {
            let key = format!("webhooks.hotspot_keys_env[{i}]");
            let value = self.env_value(&key, var, env)?;
            if !value.is_empty() {
                from_env.push(SecretString::from(value.trim().to_string()));
            }
        }
        let file = match &w.hotspot_keys_file {
            None => None,
            Some(path) => {
                let key = "webhooks.hotspot_keys_file";
                match Secret::from_file(key, path, self.insecure_files) {
                    Ok(secret) => {
                        if split_keys(secret.expose_secret()).is_empty() {
                            return Err(self.at(
                                key,
                                K::Secret,
                                format!(
                                    "{} holds no key (one key per line; `#` starts a comment)",
                                    path.display()
                                ),
                            ));
                        }
                        Some(secret)
                    }
                    // Read-only commands never receive webhooks.
                    Err(_) if self.secrets_optional => None,
                    Err(e) => return Err(self.at(key, K::Secret, e.to_string())),
                }
            }
        };
        let hotspot_keys = HotspotKeys { from_env, file };
        if listen.is_some() && w.hotspot_keys_env.is_empty() && w.hotspot_keys_file.is_none() {
            return Err(self.at(
                "webhooks.hotspot_keys_env",
                K::MissingKey,
                "a webhook listener needs the keys its webhooks are signed with: set hotspot_keys_env (variable names) and/or hotspot_keys_file (one key per line); an unsigned body is never accepted",
            ));
        }
        let max_body_bytes = w.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1..=MAX_MAX_BODY_BYTES).contains(&max_body_bytes) {
            return Err(self.at(
                "webhooks.max_body_bytes",
                K::Range,
                format!("{max_body_bytes} is outside 1..={MAX_MAX_BODY_BYTES}"),
            ));
        }
        let ghl_keys = self.ghl_keys(&w)?;
        Ok(WebhooksConfig {
            listen,
            hotspot_keys,
            max_body_bytes,
            ghl_keys,
        })
    }

    /// GHL's verification keys: the published RSA key unless a file replaces it; the Ed25519
    /// key only from a file. A file that is missing or holds no such key is an error naming
    /// the key and the file (public keys: the file need not be private).
    fn ghl_keys(&self, w: &RawWebhooks) -> Result<GhlKeys, ConfigError> {
        let read = |key: &str, path: &PathBuf| -> Result<Option<Vec<u8>>, ConfigError> {
            match std::fs::read(path) {
                Ok(bytes) => Ok(Some(bytes)),
                // Read-only commands never receive webhooks.
                Err(_) if self.secrets_optional => Ok(None),
                Err(e) => Err(self.at(
                    key,
                    K::Invalid,
                    format!("cannot read {}: {e}", path.display()),
                )),
            }
        };
        let mut keys = GhlKeys::default();
        if let Some(path) = &w.ghl_public_key_file {
            let key = "webhooks.ghl_public_key_file";
            if let Some(bytes) = read(key, path)? {
                keys.rsa = ghl_keys::parse_rsa(&bytes).map_err(|e| {
                    self.at(
                        key,
                        K::Invalid,
                        format!("{} is not an RSA public key: {e}", path.display()),
                    )
                })?;
            }
        }
        if let Some(path) = &w.ghl_ed25519_public_key_file {
            let key = "webhooks.ghl_ed25519_public_key_file";
            if let Some(bytes) = read(key, path)? {
                keys.ed25519 = Some(ghl_keys::parse_ed25519(&bytes).map_err(|e| {
                    self.at(
                        key,
                        K::Invalid,
                        format!("{} is not an Ed25519 public key: {e}", path.display()),
                    )
                })?);
            }
        }
        keys.accept_legacy_rsa = w.ghl_accept_legacy_rsa.unwrap_or(true);
        if !keys.accept_legacy_rsa && w.ghl_ed25519_public_key_file.is_none() {
            return Err(self.at(
                "webhooks.ghl_accept_legacy_rsa",
                K::Invalid,
                "with the legacy RSA header refused, GHL's webhooks can only be verified with an Ed25519 key: set ghl_ed25519_public_key_file",
            ));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = r#"
[hotspot]
base_url = "http://127.0.0.1:1"
api_key_env = "HS"

[ghl]
base_url = "http://127.0.0.1:2"
location_id = "loc"
auth = "private_token"
token_env = "GHL"
"#;

    fn load(extra: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let text = format!("{BASE}\n{extra}");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("HS".into(), "k".into()), ("GHL".into(), "t".into())])
            .collect();
        Config::from_str_with_env(&text, "test.toml", &|name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn without_the_section_nothing_listens() {
        let cfg = load("", &[]).unwrap();
        assert!(!cfg.webhooks.enabled());
        assert_eq!(cfg.webhooks.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn keys_come_from_every_variable_and_are_never_printed() {
        let cfg = load(
            "[webhooks]\nlisten = \"127.0.0.1:8787\"\nhotspot_keys_env = [\"K1\", \"K2\"]\n",
            &[("K1", "first-key"), ("K2", "second-key\n")],
        )
        .unwrap();
        let keys = cfg.webhooks.hotspot_keys.current().unwrap();
        let keys: Vec<&str> = keys.iter().map(|k| k.expose_secret()).collect();
        assert_eq!(keys, ["first-key", "second-key"]);
        let shown = format!("{:?}", cfg.webhooks);
        assert!(
            !shown.contains("first-key") && !shown.contains("second-key"),
            "{shown}"
        );
    }

    #[test]
    fn a_listener_without_keys_is_refused_naming_the_key() {
        let e = load("[webhooks]\nlisten = \"127.0.0.1:8787\"\n", &[]).unwrap_err();
        assert_eq!(e.key(), Some("webhooks.hotspot_keys_env"), "{e}");
        assert_eq!(e.kind(), Some(K::MissingKey));
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = load("[webhooks]\nlisten = \"everywhere\"\n", &[]).unwrap_err();
        assert_eq!(e.key(), Some("webhooks.listen"), "{e}");
        let e = load(
            "[webhooks]\nlisten = \"127.0.0.1:1\"\nhotspot_keys_env = [\"NOPE\"]\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key(), Some("webhooks.hotspot_keys_env[0]"), "{e}");
        let e = load(
            "[webhooks]\nhotspot_keys_env = [\"K1\"]\nmax_body_bytes = 0\n",
            &[("K1", "x")],
        )
        .unwrap_err();
        assert_eq!(e.key(), Some("webhooks.max_body_bytes"), "{e}");
        let e = load("[webhooks]\nlisen = \"127.0.0.1:1\"\n", &[]).unwrap_err();
        assert_eq!(e.kind(), Some(K::UnknownKey), "{e}");
    }

    #[test]
    fn ghl_keys_default_to_the_published_one_and_bad_files_name_their_key() {
        let cfg = load("", &[]).unwrap();
        assert_eq!(cfg.webhooks.ghl_keys, GhlKeys::default());
        assert!(cfg.webhooks.ghl_keys.accept_legacy_rsa);
        assert!(cfg.webhooks.ghl_keys.ed25519.is_none());
        let dir = std::env::temp_dir().join(format!("hgs-ghl-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ed = dir.join("ed.pub");
        std::fs::write(&ed, [9u8; 32]).unwrap();
        let rsa = dir.join("rsa.pem");
        std::fs::write(&rsa, ghl_keys::PUBLISHED_RSA_KEY_PEM).unwrap();
        let cfg = load(
            &format!(
                "[webhooks]\nghl_public_key_file = \"{}\"\nghl_ed25519_public_key_file = \"{}\"\nghl_accept_legacy_rsa = false\n",
                rsa.display(),
                ed.display()
            ),
            &[],
        )
        .unwrap();
        assert_eq!(cfg.webhooks.ghl_keys.ed25519, Some([9u8; 32]));
        assert!(!cfg.webhooks.ghl_keys.accept_legacy_rsa);
        // An Ed25519 key where the RSA one goes; a missing file; legacy refused without Ed25519.
        let e = load(
            &format!("[webhooks]\nghl_public_key_file = \"{}\"\n", ed.display()),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key(), Some("webhooks.ghl_public_key_file"), "{e}");
        assert!(e.to_string().contains("ed.pub"), "{e}");
        let e = load(
            "[webhooks]\nghl_ed25519_public_key_file = \"/nonexistent/ed.pub\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key(), Some("webhooks.ghl_ed25519_public_key_file"), "{e}");
        let e = load("[webhooks]\nghl_accept_legacy_rsa = false\n", &[]).unwrap_err();
        assert_eq!(e.key(), Some("webhooks.ghl_accept_legacy_rsa"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_key_file_must_be_private_and_is_read_again() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("hgs-wh-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, "# one per webhook\nkey-a\n\nkey-b\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let section = format!(
            "[webhooks]\nlisten = \"127.0.0.1:1\"\nhotspot_keys_file = \"{}\"\n",
            path.display()
        );
        let e = load(&section, &[]).unwrap_err();
        assert_eq!(e.key(), Some("webhooks.hotspot_keys_file"), "{e}");
        assert!(!e.to_string().contains("key-a"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = load(&section, &[]).unwrap();
        let names = |cfg: &Config| -> Vec<String> {
            cfg.webhooks
                .hotspot_keys
                .current()
                .unwrap()
                .iter()
                .map(|k| k.expose_secret().to_string())
                .collect()
        };
        assert_eq!(names(&cfg), ["key-a", "key-b"]);
        std::fs::write(&path, "key-a\nkey-b\nkey-c\n").unwrap();
        assert_eq!(names(&cfg), ["key-a", "key-b", "key-c"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
