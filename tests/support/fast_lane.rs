//! The fast lane's end-to-end world: both emulators in this process, the real binary with a
//! config whose `[schedule]` and HotspotSystem page size the test picks, guests registering
//! while it runs, and what GHL holds for each of them.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hotspot_ghl_sync::sandbox::ghl::GhlOptions;
use hotspot_ghl_sync::sandbox::hotspot::{HotspotOptions, HotspotRequest};
use hotspot_ghl_sync::sandbox::seed::{MacTransaction, SeedSpec};
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};

use super::daemon::Daemon;
use super::{ANCHOR, BIN, Out};

pub struct FastEnv {
    pub sandbox: Sandbox,
    pub dir: PathBuf,
    pub config: PathBuf,
    /// Seeds the guests added by [`FastEnv::register`], one apart from the next.
    next_seed: std::cell::Cell<u64>,
}

impl Drop for FastEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A guest as registered: the customer id and the id of the MAC transaction of the visit.
#[derive(Debug, Clone)]
pub struct Guest {
    pub customer_id: String,
    pub transaction_id: i64,
}

/// What GHL holds for one guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InGhl {
    pub contacts: usize,
    /// Notes on its contacts that carry its transaction's reference.
    pub notes: usize,
    /// Onboarding tasks on its contacts.
    pub tasks: usize,
}

impl InGhl {
    /// Exactly one contact, one note and one onboarding task.
    pub fn complete(&self) -> bool {
        *self
            == InGhl {
                contacts: 1,
                notes: 1,
                tasks: 1,
            }
    }
}

impl FastEnv {
    /// Emulators with `locations` locations and `customers` seeded guests (rate limits raised:
    /// they are not the point), `hotspot` the HotspotSystem knobs, and a config whose
    /// `[schedule]` is `schedule` (every other job `off`) and whose HotspotSystem pages hold
    /// `page_size` records.
    pub async fn start(
        name: &str,
        locations: usize,
        customers: usize,
        hotspot: HotspotOptions,
        ghl_latency: Duration,
        page_size: u32,
        schedule: &[(&str, &str)],
    ) -> FastEnv {
        let sandbox = Sandbox::start(SandboxOptions {
            seed: SeedSpec {
                seed: 17,
                locations,
                customers,
                subscribers: 0,
                subscribers_also_customers: 0,
                transactions: customers,
            },
            hotspot,
            ghl: GhlOptions {
                latency: ghl_latency,
                rate_limit: 100_000,
                ..GhlOptions::default()
            },
            ..SandboxOptions::default()
        })
        .await
        .expect("sandbox starts");
        let dir = super::temp_dir(name);
        let config = dir.join("config.toml");
        let env = FastEnv {
            sandbox,
            dir,
            config,
            next_seed: std::cell::Cell::new(1_000),
        };
        env.write_config(page_size, schedule);
        env
    }

    fn write_config(&self, page_size: u32, schedule: &[(&str, &str)]) {
        let sched = super::schedule_lines(
            &[
                "contacts",
                "notes",
                "tasks",
                "businesses",
                "appointments",
                "full",
                "new",
            ],
            schedule,
        );
        let text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_T_HOTSPOT_KEY"
page_size = {page_size}
rate_limit = 10000

[ghl]
base_url = "{ghl}"
location_id = "{loc}"
auth = "private_token"
token_env = "HGS_T_GHL_TOKEN"
hotspot_id_field = "{ANCHOR}"
rate_limit = 50000
max_concurrency = 4

[http]
timeout_secs = 5
max_attempts = 3
max_elapsed_secs = 10

[schedule]
{sched}"#,
            state = self.state_path().display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
            loc = self.sandbox.ghl.location_id(),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// The same configuration with its secrets in files (mode 0600) instead of the
    /// environment, for a test that loads it in this process; returns its path.
    pub fn config_with_secret_files(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let write_secret = |name: &str, value: &str| {
            let path = self.dir.join(name);
            std::fs::write(&path, value).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            path
        };
        let hs = write_secret("hotspot.key", self.sandbox.hotspot_api_key());
        let ghl = write_secret("ghl.token", self.sandbox.ghl_token());
        let text = std::fs::read_to_string(&self.config)
            .unwrap()
            .replace(
                "api_key_env = \"HGS_T_HOTSPOT_KEY\"",
                &format!("api_key_file = \"{}\"", hs.display()),
            )
            .replace(
                "token_env = \"HGS_T_GHL_TOKEN\"",
                &format!("token_file = \"{}\"", ghl.display()),
            );
        let path = self.dir.join("config-files.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join("sync.db")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("HGS_CONFIG")
            .env_remove("RUST_LOG")
            .env("HGS_T_HOTSPOT_KEY", self.sandbox.hotspot_api_key())
            .env("HGS_T_GHL_TOKEN", self.sandbox.ghl_token());
        cmd
    }

    /// Runs the binary with `args`; panics unless it exits 0.
    pub async fn ok(&self, args: &[&str]) -> Out {
        let out = Out::from_output(
            tokio::process::Command::from(self.command(args))
                .output()
                .await
                .expect("run the binary"),
        );
        assert_eq!(out.code, 0, "{args:?} failed:\n{}", out.show());
        out
    }

    pub fn spawn_daemon(&self) -> Daemon {
        let log = self.dir.join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        Daemon::spawn(self.command(&["run"]), log)
    }

    /// `n` guests register now: a customer each, at a location of the account, with the MAC
    /// transaction of their visit.
    pub fn register(&self, n: usize) -> Vec<Guest> {
        let seed = self.next_seed.get();
        self.next_seed.set(seed + 1);
        self.sandbox.hotspot.with_data(|d| {
            let ids = d.add_customers(seed, n);
            let mut out = Vec::new();
            for id in ids {
                let c = d.customer_mut(&id).expect("just added").clone();
                let txn = d.max_transaction_id().unwrap_or(1_000) + 1;
                d.mac_transactions.push(MacTransaction {
                    id: txn,
                    operator: d.owner.operator.clone(),
                    location_id: c.location_id.parse().expect("numeric location"),
                    user_name: c.user_name.clone(),
                    action_date_gmt: c.registered_at,
                    package_id: "1".into(),
                    customer: c.name.clone(),
                    email: c.email.clone(),
                    phone: c.phone.clone(),
                    ..MacTransaction::default()
                });
                out.push(Guest {
                    customer_id: id,
                    transaction_id: txn,
                });
            }
            out
        })
    }

    /// The GHL contacts carrying `customer_id` in the id field.
    pub fn contacts_of(&self, customer_id: &str) -> Vec<String> {
        self.sandbox.ghl.with_state(|s| {
            let field = s.custom_field(ANCHOR).expect("id field").id.clone();
            s.contacts
                .values()
                .filter(|c| {
                    c.custom_fields
                        .iter()
                        .any(|(id, v)| *id == field && v.as_str() == Some(customer_id))
                })
                .map(|c| c.id.clone())
                .collect()
        })
    }

    /// What GHL holds for `g`.
    pub fn in_ghl(&self, g: &Guest) -> InGhl {
        let contacts = self.contacts_of(&g.customer_id);
        let reference = format!("hgs:mac:{}", g.transaction_id);
        self.sandbox.ghl.with_state(|s| InGhl {
            contacts: contacts.len(),
            notes: s
                .notes
                .values()
                .filter(|n| contacts.contains(&n.contact_id) && n.body.contains(&reference))
                .count(),
            tasks: s
                .tasks
                .values()
                .filter(|t| contacts.contains(&t.contact_id))
                .count(),
        })
    }

    /// Waits until every guest in `guests` is complete in GHL; returns how long that took.
    pub async fn wait_in_ghl(&self, guests: &[Guest], limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if guests.iter().all(|g| self.in_ghl(g).complete()) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "not in GHL within {limit:?}: {:?}",
                guests
                    .iter()
                    .map(|g| (g.customer_id.clone(), self.in_ghl(g)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn clear_requests(&self) {
        self.sandbox.hotspot.clear_requests();
        self.sandbox.ghl.clear_requests();
    }

    pub fn hotspot_requests(&self) -> Vec<HotspotRequest> {
        self.sandbox.hotspot.requests()
    }

    pub fn ghl_request_count(&self) -> usize {
        self.sandbox.ghl.requests().len()
    }

    /// GHL requests that change something (search is a POST that reads), with their paths.
    pub fn ghl_writes(&self) -> Vec<String> {
        self.sandbox
            .ghl
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub fn location_ids(&self) -> Vec<String> {
        self.sandbox
            .hotspot
            .with_data(|d| d.locations.iter().map(|l| l.id.clone()).collect())
    }
}
