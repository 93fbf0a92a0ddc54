//! What a reloaded configuration changes for the daemon, decided without touching a pair: the
//! pairs to start, to stop after their current pass, and to restart with new settings. Also
//! what makes an installation one the daemon can run at all (no pair in timer mode), checked at
//! start and at every reload the same way.

use secrecy::ExposeSecret;

use crate::config::{Config, GhlAuth, ScheduleMode};
use crate::config::{Form, Installation, Pair};

/// How a reloaded installation differs from the running one, pair by pair (by name).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// In the new file only: start them.
    pub added: Vec<String>,
    /// In the old file only: stop them after their current pass.
    pub removed: Vec<String>,
    /// In both, with different settings: restart them with the new ones after the current pass.
    pub changed: Vec<String>,
    /// In both, with the same settings: left running, untouched.
    pub unchanged: Vec<String>,
}

impl Changes {
    pub fn between(old: &Installation, new: &Installation) -> Changes {
        let mut changes = Changes::default();
        for pair in &new.pairs {
            match old.pairs.iter().find(|p| p.name == pair.name) {
                None => changes.added.push(pair.name.clone()),
                Some(was) if settings_differ(&was.config, &pair.config) => {
                    changes.changed.push(pair.name.clone())
                }
                Some(_) => changes.unchanged.push(pair.name.clone()),
            }
        }
        changes.removed = old
            .pairs
            .iter()
            .filter(|p| !new.pairs.iter().any(|n| n.name == p.name))
            .map(|p| p.name.clone())
            .collect();
        changes
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Whether a pass would run differently under `new` than under `old`.
///
/// Every setting but the credentials shows in the configuration's `Debug` form, which is
/// deterministic (no hash map is filled at load). Credentials print redacted there, so their
/// values are compared apart, in memory: a pair moved to another token must restart with it. A
/// secret read from a file is read again at each use, so its file's new content needs no
/// restart; the file's path does, and shows in `Debug`.
/// The file's path is no setting (it names the file in messages), nor is `[webhooks]`.
fn settings_differ(old: &Config, new: &Config) -> bool {
    let mut old_here = old.clone();
    old_here.source_path.clone_from(&new.source_path);
    // The receiver is the process's, not the pair's: `[webhooks]` restarts no pass.
    old_here.webhooks.clone_from(&new.webhooks);
    format!("{old_here:?}") != format!("{new:?}")
        || old.hotspot.api_key.expose_secret() != new.hotspot.api_key.expose_secret()
        || ghl_secret(old) != ghl_secret(new)
}

fn ghl_secret(cfg: &Config) -> &str {
    match &cfg.ghl.auth {
        GhlAuth::PrivateToken { token } => token.expose_secret(),
        GhlAuth::OAuth { client_secret, .. } => client_secret.expose_secret(),
        GhlAuth::Agency(agency) => agency.client_secret.expose_secret(),
    }
}

/// An installation `run` refuses: a pair whose passes a timer or cron starts instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotForTheDaemon {
    #[error(
        "{path}: key `schedule.mode`: \"timer\" means a timer or cron starts `sync`; \
         `run` schedules nothing in that mode (set mode = \"daemon\" to use it)"
    )]
    TimerMode { path: String },
    #[error(
        "{path}: pair {pair:?}: key `schedule.mode`: \"timer\" means a timer or cron starts \
         `sync`; `run` schedules nothing in that mode (set mode = \"daemon\" for every pair the \
         daemon runs)"
    )]
    PairInTimerMode { path: String, pair: String },
}

/// Refuses an installation with a pair in timer mode: a daemon beside the timer would double
/// every pass, and alone it would run only the full.
pub fn check_daemon_mode(inst: &Installation) -> Result<(), NotForTheDaemon> {
    let path = inst.source_path.display().to_string();
    match inst
        .pairs
        .iter()
        .find(|p| p.config.schedule.mode == ScheduleMode::Timer)
    {
        None => Ok(()),
        Some(_) if inst.form == Form::Single => Err(NotForTheDaemon::TimerMode { path }),
        Some(Pair { name, .. }) => Err(NotForTheDaemon::PairInTimerMode {
            path,
            pair: name.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::InsecureFiles;

    const BASE: &str = r#"
[state]
path = "STATE"

[hotspot]
base_url = "http://127.0.0.1:1"
api_key_env = "HGS_RELOAD_UNIT_HS"

[ghl]
base_url = "http://127.0.0.1:2"
location_id = "LOCATION"
auth = "private_token"
token_env = "TOKEN_ENV"
hotspot_id_field = "contact.hotspot_customer_id"
"#;

    /// A pair loaded from a real file, so that its `Config` is built the way the daemon's is.
    fn pair(name: &str, location: &str, token_env: &str, extra: &str) -> Pair {
        let dir = std::env::temp_dir().join(format!("hgs-reload-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // One file per call: the tests of this module run side by side.
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.join(format!("{name}-{n}.toml"));
        let text = BASE
            .replace(
                "STATE",
                &dir.join(format!("{name}.db")).display().to_string(),
            )
            .replace("LOCATION", location)
            .replace("TOKEN_ENV", token_env)
            + extra;
        std::fs::write(&path, text).unwrap();
        let config = Config::load_with(&path, false, InsecureFiles::Refuse).unwrap();
        Pair {
            name: name.to_string(),
            config,
        }
    }

    fn installation(pairs: Vec<Pair>) -> Installation {
        Installation {
            source_path: "agency.toml".into(),
            pairs,
            form: Form::Pairs,
            max_concurrent_pairs: 4,
        }
    }

    fn set_env() {
        // SAFETY: every test of this module sets the same values; nothing reads them apart.
        unsafe {
            std::env::set_var("HGS_RELOAD_UNIT_HS", "hs-key");
            std::env::set_var("HGS_RELOAD_UNIT_GHL_A", "token-a");
            std::env::set_var("HGS_RELOAD_UNIT_GHL_B", "token-b");
        }
    }

    #[test]
    fn pairs_are_added_removed_changed_or_left_alone_by_name() {
        set_env();
        let a = "HGS_RELOAD_UNIT_GHL_A";
        let old = installation(vec![
            pair("zurich", "loc-z", a, ""),
            pair("geneva", "loc-g", a, ""),
            pair("basel", "loc-b", a, ""),
        ]);
        let new = installation(vec![
            pair("zurich", "loc-z", a, ""),
            pair("basel", "loc-b2", a, ""),
            pair("bern", "loc-x", a, ""),
        ]);
        assert_eq!(
            Changes::between(&old, &new),
            Changes {
                added: vec!["bern".into()],
                removed: vec!["geneva".into()],
                changed: vec!["basel".into()],
                unchanged: vec!["zurich".into()],
            }
        );
        assert!(Changes::between(&old, &old).is_empty());
    }

    #[test]
    fn another_token_or_another_section_is_a_change_the_same_file_is_not() {
        set_env();
        let same = pair("zurich", "loc-z", "HGS_RELOAD_UNIT_GHL_A", "");
        let again = pair("zurich", "loc-z", "HGS_RELOAD_UNIT_GHL_A", "");
        assert!(!settings_differ(&same.config, &again.config));
        let token = pair("zurich", "loc-z", "HGS_RELOAD_UNIT_GHL_B", "");
        assert!(settings_differ(&same.config, &token.config));
        let schedule = pair(
            "zurich",
            "loc-z",
            "HGS_RELOAD_UNIT_GHL_A",
            "\n[schedule]\ncontacts = \"*/7 * * * *\"\n",
        );
        assert!(settings_differ(&same.config, &schedule.config));
    }

    #[test]
    fn a_pair_in_timer_mode_is_refused_by_name() {
        set_env();
        let a = "HGS_RELOAD_UNIT_GHL_A";
        let timer = "\n[schedule]\nmode = \"timer\"\n";
        let inst = installation(vec![
            pair("zurich", "loc-z", a, ""),
            pair("geneva", "loc-g", a, timer),
        ]);
        assert_eq!(
            check_daemon_mode(&inst),
            Err(NotForTheDaemon::PairInTimerMode {
                path: "agency.toml".into(),
                pair: "geneva".into()
            })
        );
        let single = Installation::single(pair("default", "loc-z", a, timer).config);
        assert!(matches!(
            check_daemon_mode(&single),
            Err(NotForTheDaemon::TimerMode { .. })
        ));
        assert_eq!(
            check_daemon_mode(&installation(vec![pair("zurich", "loc-z", a, "")])),
            Ok(())
        );
    }
}
