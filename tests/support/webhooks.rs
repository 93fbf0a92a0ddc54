//! A daemon with `[webhooks]` on, beside both emulators: the HotspotSystem emulator sends its
//! webhooks to the daemon's receiver, the daemon writes to the GHL emulator.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use hotspot_ghl_sync::sandbox::hotspot_webhooks::{
    Batching, BodyKeys, SignatureEncoding, SignatureHeader, WebhookEvent, WebhookOptions,
    WebhookSpec,
};
use hotspot_ghl_sync::sandbox::seed::{Customer, MacTransaction, SeedSpec};
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::{RunRecord, Store, WebhookEvent as QueuedEvent};

use super::daemon::Daemon;
use super::{ANCHOR, BIN, TempDir};

/// The webhook keys the daemon knows (one per webhook, as the Control Center gives them).
pub const KEYS: [&str; 2] = ["whk-location-1-customers", "whk-location-1-transactions"];
/// The location every test guest registers at (the seed's first).
pub const LOCATION: &str = "1";

pub struct HookEnv {
    pub sandbox: Sandbox,
    pub dir: TempDir,
    pub config: PathBuf,
    pub port: u16,
}

/// A port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl HookEnv {
    /// Emulators with `customers` seeded guests at one location, and a config whose contacts
    /// tick is once a year: only a webhook can explain a pass.
    pub async fn start(name: &str, customers: usize) -> HookEnv {
        let sandbox = Sandbox::start(SandboxOptions {
            seed: SeedSpec {
                seed: 17,
                locations: 1,
                customers,
                subscribers: 0,
                subscribers_also_customers: 0,
                transactions: 0,
            },
            ghl: hotspot_ghl_sync::sandbox::ghl::GhlOptions {
                rate_limit: 100_000,
                ..Default::default()
            },
            ..SandboxOptions::default()
        })
        .await
        .expect("sandbox");
        let dir = TempDir::new(name);
        let config = dir.0.join("config.toml");
        let env = HookEnv {
            sandbox,
            dir,
            config,
            port: free_port(),
        };
        env.write_config();
        env
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.0.join("state.db")
    }

    pub fn write_config(&self) {
        let text = daemon_config(
            &self.state_path(),
            &self.sandbox.hotspot.base_url(),
            &self.sandbox.ghl.base_url(),
            &self.sandbox.ghl.location_id(),
            self.port,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("HGS_CONFIG")
            .env_remove("RUST_LOG")
            .env("HGS_W_HS_KEY", self.sandbox.hotspot_api_key())
            .env("HGS_W_GHL_TOKEN", self.sandbox.ghl_token())
            .env("HGS_W_KEY_A", KEYS[0])
            .env("HGS_W_KEY_B", KEYS[1]);
        cmd
    }

    /// `run`, once its receiver listens.
    pub async fn spawn_daemon(&self) -> Daemon {
        let log = self.dir.0.join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut d = Daemon::spawn(self.command(&["run"]), log);
        d.wait_for_line(&["webhook receiver listening"], Duration::from_secs(20))
            .await;
        d
    }

    /// The receiver's URL with `query` (e.g. `?event=customer.create`).
    pub fn url(&self, query: &str) -> String {
        format!("http://127.0.0.1:{}/hooks/hotspotsystem{query}", self.port)
    }

    /// The emulator's webhooks for location [`LOCATION`]: customers signed with the first key,
    /// MAC transactions with the second; `event_in_url` puts `?event=` (and `&location=`) in
    /// the callback URLs, else the receiver infers them.
    pub fn configure_sender(
        &self,
        header: SignatureHeader,
        encoding: SignatureEncoding,
        keys: BodyKeys,
        batching: Batching,
        event_in_url: bool,
    ) {
        let url = |event: WebhookEvent| {
            if event_in_url {
                self.url(&format!("?event={}&location={LOCATION}", event.as_str()))
            } else {
                self.url("")
            }
        };
        self.sandbox.hotspot.set_webhooks(
            vec![
                WebhookSpec {
                    location_id: LOCATION.to_string(),
                    event: WebhookEvent::CustomerCreate,
                    url: url(WebhookEvent::CustomerCreate),
                    key: KEYS[0].to_string(),
                },
                WebhookSpec {
                    location_id: LOCATION.to_string(),
                    event: WebhookEvent::MacTransactionCreate,
                    url: url(WebhookEvent::MacTransactionCreate),
                    key: KEYS[1].to_string(),
                },
            ],
            WebhookOptions {
                batch_interval: Duration::from_millis(200),
                header,
                encoding,
                keys,
                batching,
                ..WebhookOptions::default()
            },
        );
    }

    /// How many GHL contacts carry `email` (any case).
    pub fn contacts_with(&self, email: &str) -> usize {
        self.sandbox.ghl.with_state(|s| {
            s.contacts
                .values()
                .filter(|c| {
                    c.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
                })
                .count()
        })
    }

    /// The GHL id of the contact with `email`, if any.
    pub fn contact_id(&self, email: &str) -> Option<String> {
        self.sandbox.ghl.with_state(|s| {
            s.contacts
                .values()
                .find(|c| {
                    c.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
                })
                .map(|c| c.id.clone())
        })
    }

    /// Notes and tasks on the contact `id`.
    pub fn notes_and_tasks(&self, id: &str) -> (usize, usize) {
        self.sandbox.ghl.with_state(|s| {
            (
                s.notes.values().filter(|n| n.contact_id == id).count(),
                s.tasks.values().filter(|t| t.contact_id == id).count(),
            )
        })
    }

    /// Waits until `ok` holds (polled every 20 ms); `None` after `limit`.
    pub async fn wait_until(
        &self,
        limit: Duration,
        ok: impl Fn(&HookEnv) -> bool,
    ) -> Option<Instant> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ok(self) {
                return Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// The webhook queue of the state, newest first.
    pub fn queue(&self) -> Vec<QueuedEvent> {
        Store::open(self.state_path())
            .expect("open state")
            .webhook_events(10_000)
            .expect("queue")
    }

    /// Every run recorded, oldest first.
    pub fn runs(&self) -> Vec<RunRecord> {
        let store = Store::open(self.state_path()).expect("open state");
        let mut runs = store.runs(10_000).expect("runs");
        runs.reverse();
        runs
    }

    /// POSTs `body` to the receiver with `query`, signed with `key` in `header` (no signature
    /// when `None`); returns the status.
    pub async fn post(&self, query: &str, body: &[u8], signed: Option<(&str, &str)>) -> u16 {
        post(&self.url(query), body, signed).await
    }
}

/// POSTs `body` to `url`, signed with `key` in `header` (no signature when `None`); returns the
/// status.
pub async fn post(url: &str, body: &[u8], signed: Option<(&str, &str)>) -> u16 {
    let mut req = super::http_client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some((header, key)) = signed {
        req = req.header(
            header,
            hotspot_ghl_sync::sandbox::hotspot_webhooks::sign(body, key),
        );
    }
    req.send()
        .await
        .expect("the receiver answers")
        .status()
        .as_u16()
}

/// A one-pair config for `run` with `[webhooks]` on `127.0.0.1:port`, keys from `HGS_W_KEY_A`
/// and `HGS_W_KEY_B`, and a contacts tick once a year: only a webhook can explain a pass.
pub fn daemon_config(state: &std::path::Path, hs: &str, ghl: &str, loc: &str, port: u16) -> String {
    format!(
        r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_W_HS_KEY"
rate_limit = 10000

[ghl]
base_url = "{ghl}"
location_id = "{loc}"
auth = "private_token"
token_env = "HGS_W_GHL_TOKEN"
hotspot_id_field = "{ANCHOR}"
rate_limit = 50000
max_concurrency = 4

[http]
timeout_secs = 5
max_attempts = 2
max_elapsed_secs = 10

[schedule]
contacts = "0 0 1 1 *"
notes = "off"
tasks = "off"
full = "off"

[[tasks.onboarding]]
id = "welcome"
title = "Welcome {{name}}"
due_in_days = 1

[webhooks]
listen = "127.0.0.1:{port}"
hotspot_keys_env = ["HGS_W_KEY_A", "HGS_W_KEY_B"]
max_body_bytes = 65536
"#,
        state = state.display(),
    )
}

/// A new guest at [`LOCATION`], unique by `n`.
pub fn guest(n: u32) -> Customer {
    Customer {
        id: format!("9{n:06}"),
        user_name: format!(
            "AA-BB-CC-{:02X}-{:02X}-{:02X}",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        ),
        name: Some(format!("Webhook Guest{n}")),
        email: Some(format!("hook-guest-{n}@example.com")),
        registered_at: Utc::now(),
        location_id: LOCATION.to_string(),
        ..Customer::default()
    }
}

/// A MAC transaction of `guest`, which becomes a note on its contact.
pub fn mac_transaction(guest: &Customer, id: i64) -> MacTransaction {
    MacTransaction {
        id,
        operator: "demo-operator".to_string(),
        location_id: LOCATION.parse().unwrap(),
        user_name: guest.user_name.clone(),
        action_date_gmt: Utc::now(),
        package_id: "1".to_string(),
        email: guest.email.clone(),
        ..MacTransaction::default()
    }
}
