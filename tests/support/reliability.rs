//! Helpers of the reliability suites (faults, kill, bad input, secrets): emulators in this
//! process, the REAL binary as a child with a config in a temporary directory, and the one
//! invariant every scenario ends with — GHL holds exactly one contact per eligible person.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;

use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::{LinkStatus, Store};

use super::census;
pub use super::{ANCHOR, BIN, CLIENT_ID, CLIENT_SECRET, Out, temp_dir};

/// `[tasks]` body with one onboarding task per new contact.
pub const ONBOARDING: &str = "[[tasks.onboarding]]\nid = \"welcome\"\ntitle = \"Welcome {name}\"\nbody = \"First visit\"\ndue_in_days = 1\n";

/// What the config file says besides the emulator addresses.
#[derive(Clone)]
pub struct Setup {
    pub oauth: bool,
    /// `[http]` section body.
    pub http: String,
    /// Extra lines of `[ghl]`.
    pub ghl_extra: String,
    /// `[contacts]` section body.
    pub contacts: String,
    /// `[tasks]` section body (tasks are off unless a test turns them on).
    pub tasks: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            oauth: false,
            http: "timeout_secs = 5\nmax_attempts = 4\nmax_elapsed_secs = 30\n".into(),
            ghl_extra: String::new(),
            contacts: String::new(),
            tasks: "enabled = false\n".into(),
        }
    }
}

pub struct Env {
    pub sandbox: Sandbox,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub setup: Setup,
}

impl Drop for Env {
    fn drop(&mut self) {
        // HGS_KEEP_TEST_DIR=1 keeps the state and the runs' output for a post-mortem.
        if std::env::var_os("HGS_KEEP_TEST_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Sandbox options with `customers` customers over 2 locations, a fifth as many subscribers of
/// whom half are also customers; GHL rate limits raised (limits are a scenario of their own).
pub fn opts(seed: u64, customers: usize) -> SandboxOptions {
    let mut o = SandboxOptions {
        seed: SeedSpec {
            seed,
            locations: 2,
            customers,
            subscribers: customers / 5,
            subscribers_also_customers: customers / 10,
            transactions: 0,
        },
        ..SandboxOptions::default()
    };
    o.ghl.rate_limit = 100_000;
    o
}

impl Env {
    pub async fn start(name: &str, opts: SandboxOptions, setup: Setup) -> Env {
        let sandbox = Sandbox::start(opts).await.expect("sandbox starts");
        let dir = temp_dir(name);
        let env = Env {
            config: dir.join("config.toml"),
            sandbox,
            dir,
            setup,
        };
        env.write_config();
        env
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join("sync.db")
    }

    pub fn config_text(&self) -> String {
        let s = &self.setup;
        let auth = if s.oauth {
            "auth = \"oauth\"\nclient_id_env = \"HGS_R_CLIENT_ID\"\nclient_secret_env = \"HGS_R_CLIENT_SECRET\"\nredirect_uri = \"http://127.0.0.1:8910/oauth/callback\"\n"
        } else {
            "auth = \"private_token\"\ntoken_env = \"HGS_R_GHL_TOKEN\"\n"
        };
        format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_R_HS_KEY"
page_size = 100
rate_limit = 10000

[ghl]
base_url = "{ghl}"
location_id = "{loc}"
{auth}hotspot_id_field = "{ANCHOR}"
rate_limit = 50000
max_concurrency = 8
{extra}
[http]
{http}
[tasks]
{tasks}
[contacts]
{contacts}
"#,
            state = self.state_path().display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
            loc = self.sandbox.ghl.location_id(),
            extra = s.ghl_extra,
            http = s.http,
            contacts = s.contacts,
            tasks = s.tasks,
        )
    }

    pub fn write_config(&self) {
        std::fs::write(&self.config, self.config_text()).unwrap();
    }

    /// The child command with the secrets in its environment and no inherited log filter.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("HGS_CONFIG")
            .env_remove("RUST_LOG")
            .env("HGS_R_HS_KEY", self.sandbox.hotspot_api_key())
            .env("HGS_R_GHL_TOKEN", self.sandbox.ghl_token())
            .env("HGS_R_CLIENT_ID", CLIENT_ID)
            .env("HGS_R_CLIENT_SECRET", CLIENT_SECRET)
            .stdin(Stdio::null());
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Out {
        let out = self.command(args).output().await.expect("binary runs");
        let out = Out::from_output(out);
        if std::env::var_os("HGS_KEEP_TEST_DIR").is_some() {
            use std::io::Write;
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("runs.log"))
                .unwrap();
            writeln!(log, "=== {args:?}\n{}", out.show()).unwrap();
        }
        out
    }

    /// GHL requests that change something (searches are POSTs that only read).
    pub fn ghl_writes(&self) -> usize {
        self.sandbox
            .ghl
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
            .count()
    }

    /// `sync` that must exit 0.
    pub async fn sync_ok(&self) -> Out {
        let out = self.run(&["sync"]).await;
        assert_eq!(out.code, 0, "sync must succeed:\n{}", out.show());
        out
    }

    pub async fn report_json(&self) -> serde_json::Value {
        let out = self.run(&["report", "latest", "--format", "json"]).await;
        assert_eq!(out.code, 0, "report failed: {}", out.show());
        serde_json::from_str(&out.stdout).expect("report is JSON")
    }

    /// `auth ghl exchange` with a fresh code for every product scope.
    pub async fn oauth_connect(&self) {
        let scopes = hotspot_ghl_sync::sandbox::ghl::PRODUCT_SCOPES;
        let code = self.sandbox.ghl.issue_auth_code(scopes);
        let out = self
            .run(&["auth", "ghl", "exchange", "--code", &code])
            .await;
        assert_eq!(out.code, 0, "exchange: {}", out.show());
    }

    /// Moves the creates journaled so far `minutes` into the past, as if the next run came
    /// that much later (a scheduled run comes minutes after the last, a test's at once).
    pub fn age_journal(&self, minutes: i64) {
        let db = rusqlite::Connection::open(self.state_path()).expect("state opens");
        let old = (chrono::Utc::now() - chrono::Duration::minutes(minutes))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        db.execute(
            "UPDATE journal SET created_at = ?1 WHERE state = 'pending'",
            [&old],
        )
        .expect("journal back-dated");
    }

    /// People HotspotSystem lists who can be synced (see `census::eligible_people`).
    pub fn eligible_people(&self) -> usize {
        census::eligible_people(&self.sandbox.hotspot)
    }

    /// (GHL contacts, those carrying a HotspotSystem id, distinct ids, distinct emails, emails).
    pub fn ghl_census(&self) -> Census {
        self.sandbox.ghl.with_state(|s| {
            let field = s.custom_field(ANCHOR).map(|f| f.id.clone());
            let anchors: Vec<String> = s
                .contacts
                .values()
                .filter_map(|c| {
                    c.custom_fields
                        .iter()
                        .find(|(id, _)| Some(id) == field.as_ref())
                })
                .filter_map(|(_, v)| v.as_str().map(str::to_string))
                .collect();
            let emails: Vec<String> = s
                .contacts
                .values()
                .filter_map(|c| c.email.as_deref().map(str::to_lowercase))
                .collect();
            Census {
                contacts: s.contacts.len(),
                anchored: anchors.len(),
                distinct_anchors: anchors.iter().collect::<BTreeSet<_>>().len(),
                emails: emails.len(),
                distinct_emails: emails.iter().collect::<BTreeSet<_>>().len(),
            }
        })
    }

    /// The `Ref:` line of every note the sync should create: one per transaction whose guest
    /// can be a contact (has an email or a phone).
    pub fn expected_note_refs(&self) -> BTreeSet<String> {
        self.sandbox.hotspot.with_data(|d| {
            let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
            let mut refs = BTreeSet::new();
            let mut add = |kind: &str,
                           id: &dyn std::fmt::Display,
                           email: &Option<String>,
                           phone: &Option<String>| {
                if has(email) || has(phone) {
                    refs.insert(format!("Ref: hgs:{kind}:{id}"));
                }
            };
            for t in &d.mac_transactions {
                add("mac", &t.id, &t.email, &t.phone);
            }
            for t in &d.voucher_transactions {
                add("voucher", &t.id, &t.email, &t.phone);
            }
            for t in &d.paid_transactions {
                add("paid", &t.id, &t.email, &t.phone);
            }
            for t in &d.social_transactions {
                add("social", &t.id, &t.email, &t.phone);
            }
            refs
        })
    }

    /// GHL holds each expected note once and one onboarding task per contact (by their `Ref:`
    /// lines): no duplicate, nothing missing. Returns (notes, tasks).
    pub fn assert_notes_and_tasks_exact(
        &self,
        context: &str,
        expected_notes: &BTreeSet<String>,
        contacts: usize,
    ) -> (usize, usize) {
        let (note_refs, task_refs) = self.sandbox.ghl.with_state(|s| {
            let refs = |bodies: Vec<&str>| -> Vec<String> {
                bodies
                    .into_iter()
                    .flat_map(|b| {
                        b.lines()
                            .filter(|l| l.starts_with("Ref: hgs"))
                            .map(str::to_string)
                    })
                    .collect()
            };
            (
                refs(s.notes.values().map(|n| n.body.as_str()).collect()),
                refs(s.tasks.values().filter_map(|t| t.body.as_deref()).collect()),
            )
        });
        let distinct_notes: BTreeSet<&String> = note_refs.iter().collect();
        assert_eq!(
            distinct_notes.len(),
            note_refs.len(),
            "{context}: a transaction became two notes"
        );
        let missing: Vec<&String> = expected_notes
            .iter()
            .filter(|r| !distinct_notes.contains(r))
            .collect();
        assert!(
            missing.is_empty() && distinct_notes.len() == expected_notes.len(),
            "{context}: every transaction of a contact is one note; {} missing {missing:?}, {} notes for {} expected",
            missing.len(),
            distinct_notes.len(),
            expected_notes.len()
        );
        let distinct_tasks: BTreeSet<&String> = task_refs.iter().collect();
        assert_eq!(
            distinct_tasks.len(),
            task_refs.len(),
            "{context}: an onboarding task was created twice"
        );
        assert_eq!(
            task_refs.len(),
            contacts,
            "{context}: one onboarding task per contact"
        );
        (note_refs.len(), task_refs.len())
    }

    /// GHL holds no duplicate: no HotspotSystem id or email on two contacts, and no contact
    /// beyond one per eligible person. Something may still be missing.
    pub fn assert_no_duplicate(&self, context: &str) -> Census {
        let want = self.eligible_people();
        let c = self.ghl_census();
        assert_eq!(
            c.distinct_anchors, c.anchored,
            "{context}: a HotspotSystem id on two contacts: {c:?}"
        );
        assert_eq!(
            c.distinct_emails, c.emails,
            "{context}: an email on two contacts: {c:?}"
        );
        assert!(
            c.contacts <= want,
            "{context}: {want} eligible people, GHL holds {c:?}"
        );
        c
    }

    /// GHL holds exactly one contact per eligible person: no duplicate, nothing missing.
    pub fn assert_exact(&self, context: &str) -> Census {
        let want = self.eligible_people();
        let c = self.assert_no_duplicate(context);
        assert_eq!(
            c.anchored, c.contacts,
            "{context}: a contact without its HotspotSystem id: {c:?}"
        );
        assert_eq!(
            c.contacts, want,
            "{context}: {want} eligible people, GHL holds {c:?}"
        );
        let (targets, pending) = self.state_links();
        let ghl_ids: BTreeSet<String> = self
            .sandbox
            .ghl
            .with_state(|s| s.contacts.keys().cloned().collect());
        let unlinked: Vec<&String> = ghl_ids.difference(&targets).collect();
        let dangling: Vec<&String> = targets.difference(&ghl_ids).collect();
        assert!(
            unlinked.is_empty() && dangling.is_empty(),
            "{context}: the state must link every GHL contact and only those: {} unlinked {unlinked:?}, {} dangling {dangling:?}\n{}",
            unlinked.len(),
            dangling.len(),
            self.explain_links(unlinked.iter().chain(&dangling).map(|s| s.as_str()))
        );
        assert_eq!(pending, 0, "{context}: a journaled create is still pending");
        c
    }

    /// Every state link and GHL contact touching these GHL ids, for a failing assertion.
    pub fn explain_links<'a>(&self, ids: impl Iterator<Item = &'a str>) -> String {
        let store = Store::open(self.state_path()).expect("state opens");
        let links = store.links(Kind::Contact).expect("links");
        let mut out = String::new();
        for id in ids {
            out.push_str(&format!("GHL {id}: "));
            let contact = self.sandbox.ghl.with_state(|s| {
                s.contacts
                    .get(id)
                    .map(|c| format!("{:?} {:?}", c.email, c.custom_fields))
            });
            out.push_str(&format!("contact {contact:?}\n"));
            let text = contact.clone().unwrap_or_default();
            for i in store.pending_intents().expect("journal") {
                if text.contains(&format!("\"{}\"", i.source_id)) || i.marker.contains(id) {
                    out.push_str(&format!("  pending intent {i:?}\n"));
                }
            }
            for l in links.iter().filter(|l| {
                l.target_id == id
                    || l.source_id
                        .split(':')
                        .any(|p| text.contains(&format!("\"{p}\"")))
            }) {
                out.push_str(&format!(
                    "  link source {} -> {} status {:?} method {:?} extra {}\n",
                    l.source_id, l.target_id, l.status, l.match_method, l.extra
                ));
            }
        }
        out
    }

    /// (GHL ids of the active contact links, pending journal intents) in the state database.
    pub fn state_links(&self) -> (BTreeSet<String>, usize) {
        let store = Store::open(self.state_path()).expect("state opens");
        let targets = store
            .links(Kind::Contact)
            .expect("links")
            .into_iter()
            .filter(|l| l.status == LinkStatus::Active)
            .map(|l| l.target_id)
            .collect();
        (targets, store.pending_intents().expect("journal").len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    pub contacts: usize,
    pub anchored: usize,
    pub distinct_anchors: usize,
    pub emails: usize,
    pub distinct_emails: usize,
}
