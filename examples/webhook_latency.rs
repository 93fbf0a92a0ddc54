//! Webhook-to-GHL latency through the real binary (issue 17).
//!
//! ```text
//! nice -n 5 cargo build --release --example webhook_latency --bin hotspot-ghl-sync
//! cargo run --release --example webhook_latency                          # 200 guests over 60 s
//! cargo run --release --example webhook_latency -- --batch-secs 60      # HotspotSystem's minute
//! cargo run --release --example webhook_latency -- --ghl-limit 100      # GHL's real burst limit
//! cargo run --release --example webhook_latency -- --help
//! ```
//!
//! Both emulators run in this process. The HotspotSystem account holds `--existing` guests (with
//! about as many transactions), synced into GHL by one `sync` of the release binary before the
//! clock starts. Then the binary's `run` starts with `[webhooks] listen` and a contacts tick
//! months away (notes, tasks and full passes off), so only a webhook can bring a guest in.
//! `--guests` new guests register evenly over `--over-secs`, each with a MAC transaction (its
//! note) and an onboarding task rule that applies to every new contact. The HotspotSystem
//! emulator sends the webhooks (`customer.create` and `transaction.mac.create`, each with its
//! own key): every `--batch-secs`, or each record as it is added when 0.
//!
//! Per guest:
//! - arrival of an event: the instant the daemon's receiver answered 200 to the POST carrying it,
//!   taken on the sender's side;
//! - contact and task latency: their creation in the GHL emulator minus the arrival of the
//!   guest's `customer.create`; note latency: the note's creation minus the arrival of its
//!   `transaction.mac.create`; all three: the last of the three creations minus the later of the
//!   two arrivals (the daemon cannot know everything before both arrived).
//!
//! A latency is negative when a pass woken by another event found the guest in HotspotSystem's
//! API before the guest's own webhook arrived (with batching, a batch's first POST wakes a pass
//! that reads what the rest of the batch carries); those are counted.
//!
//! Creation instants are the GHL emulator's (`date_added`, wall clock); arrivals are the sender's
//! monotonic instants, put on the wall clock through one pair of readings taken at the start. The
//! two clocks' drift over the run is measured and reported.
//!
//! Also reported: guests reaching GHL, duplicates over the whole sub-account (contacts per email,
//! notes per transaction reference, tasks per contact; each must be 0), GHL and HotspotSystem
//! requests during the measurement, the passes the binary recorded, and the daemon's peak RSS
//! (`VmHWM`). The JSON and the text go to `--results-dir` (`benches/results/` by default). Exits
//! non-zero if a guest is missing or anything is duplicated.
//!
//! The figures depend on how the binary's webhook pass works; this program looks only at the
//! binary's HTTP traffic, its state file's run history and the emulators.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Datelike, Utc};
use clap::Parser;
use hotspot_ghl_sync::sandbox::ghl::GhlOptions;
use hotspot_ghl_sync::sandbox::hotspot::NewRecord;
use hotspot_ghl_sync::sandbox::hotspot_webhooks::{
    Delivery, WebhookEvent, WebhookOptions, WebhookSpec,
};
use hotspot_ghl_sync::sandbox::seed::{Customer, MacTransaction, SeedSpec};
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::{RunRecord, RunStatus, Store};
use serde::Serialize;

const HS_KEY_ENV: &str = "HGS_LAT_HOTSPOT_KEY";
const GHL_TOKEN_ENV: &str = "HGS_LAT_GHL_TOKEN";
const HOOK_KEY_ENVS: [&str; 2] = [
    "HGS_LAT_HOOK_KEY_CUSTOMERS",
    "HGS_LAT_HOOK_KEY_TRANSACTIONS",
];
/// The webhook keys of the Control Center: one per webhook.
const HOOK_KEYS: [&str; 2] = ["lat-hook-customers", "lat-hook-transactions"];
/// The one HotspotSystem location (the seed's first).
const LOCATION: &str = "1";
/// GHL counts its burst limit over 10 seconds.
const GHL_WINDOW: Duration = Duration::from_secs(10);
/// "Raised": far above what this machine drives through one pair.
const RAISED_LIMIT: u32 = 1_000_000;
/// How often the census of GHL is taken while waiting for the guests.
const POLL: Duration = Duration::from_millis(200);
/// The issue's bar for the 95th percentile, all three records.
const P95_BAR_MS: f64 = 3_000.0;

#[derive(Parser, Debug)]
#[command(about = "Webhook-to-GHL latency of the release binary against the in-process emulators")]
struct Args {
    /// New guests registering during the measurement.
    #[arg(long, default_value_t = 200)]
    guests: usize,
    /// Seconds over which they register, evenly.
    #[arg(long, default_value_t = 60.0)]
    over_secs: f64,
    /// The emulator's webhook batch interval in seconds (0: each record as it is added;
    /// HotspotSystem documents "about once a minute": 60).
    #[arg(long, default_value_t = 0.0)]
    batch_secs: f64,
    /// Guests already in the account, synced into GHL before the clock starts.
    #[arg(long, default_value_t = 2000)]
    existing: usize,
    /// GHL requests per 10 s (the emulator's and the client's) during the measurement, e.g.
    /// 100 for GHL's own; raised far above what one pair drives when absent. The initial sync
    /// always runs raised.
    #[arg(long)]
    ghl_limit: Option<u32>,
    /// Latency the GHL emulator adds to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    ghl_latency_ms: u64,
    /// Seconds to wait for the last guest after its registration and one batch interval.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
    /// The binary (default: `hotspot-ghl-sync` beside this example's directory, i.e. the
    /// release build's when run with `--release`).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Where the JSON and the text go.
    #[arg(long, default_value = "benches/results")]
    results_dir: PathBuf,
    /// File name stem (default `i17-webhook-latency-batch<S>-<limit>`).
    #[arg(long)]
    tag: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(measure(&args))?;
    let text = outcome.text();
    print!("{text}");
    let tag = args.tag.clone().unwrap_or_else(|| {
        format!(
            "i17-webhook-latency-batch{}-{}",
            args.batch_secs,
            args.ghl_limit
                .map_or("raised".to_string(), |n| format!("limit{n}"))
        )
    });
    std::fs::create_dir_all(&args.results_dir)?;
    let stem = args.results_dir.join(tag);
    std::fs::write(
        stem.with_extension("json"),
        serde_json::to_string_pretty(&outcome)?,
    )?;
    std::fs::write(stem.with_extension("txt"), &text)?;
    eprintln!("written: {}.{{json,txt}}", stem.display());
    let failures = outcome.failures();
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The setting: emulators, config, binary.
// ---------------------------------------------------------------------------------------------

/// Monotonic instants put on the wall clock through one pair of readings.
struct Clock {
    mono: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            mono: Instant::now(),
            wall: Utc::now(),
        }
    }

    fn wall_of(&self, at: Instant) -> DateTime<Utc> {
        let span = |d: Duration| chrono::Duration::from_std(d).unwrap_or_default();
        if at >= self.mono {
            self.wall + span(at - self.mono)
        } else {
            self.wall - span(self.mono - at)
        }
    }

    /// How far the wall clock moved from the monotonic one since the start, in ms.
    fn drift_ms(&self) -> f64 {
        let now = Clock::now();
        ms(now.wall - self.wall_of(now.mono))
    }
}

fn ms(d: chrono::Duration) -> f64 {
    d.num_microseconds()
        .map_or(f64::NAN, |us| us as f64 / 1000.0)
}

/// The binary to measure.
fn binary(args: &Args) -> anyhow::Result<PathBuf> {
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => {
            let exe = std::env::current_exe()?;
            // target/<profile>/examples/webhook_latency -> target/<profile>/hotspot-ghl-sync
            exe.parent()
                .and_then(Path::parent)
                .context("no directory above this example")?
                .join("hotspot-ghl-sync")
        }
    };
    if !bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release --bin hotspot-ghl-sync`, or pass --bin",
            bin.display()
        );
    }
    // `cargo run --example` rebuilds this example, not the binary: a binary older than the
    // example may predate a change to the library it measures.
    let built = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(b), Some(e)) = (built(&bin), built(&std::env::current_exe()?))
        && b < e
    {
        eprintln!(
            "warning: {} is older than this example; rebuild it with `cargo build --release --bin hotspot-ghl-sync` if the library changed",
            bin.display()
        );
    }
    Ok(bin)
}

struct Setting {
    sandbox: Sandbox,
    dir: PathBuf,
    config: PathBuf,
    bin: PathBuf,
    webhook_port: u16,
}

impl Drop for Setting {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Setting {
    async fn start(args: &Args) -> anyhow::Result<Setting> {
        let sandbox = Sandbox::start(SandboxOptions {
            seed: SeedSpec {
                seed: 17,
                locations: 1,
                customers: args.existing,
                subscribers: 0,
                subscribers_also_customers: 0,
                transactions: args.existing,
            },
            ghl: GhlOptions {
                rate_limit: RAISED_LIMIT,
                rate_window: GHL_WINDOW,
                daily_quota: 100_000_000,
                latency: Duration::from_millis(args.ghl_latency_ms),
                // GHL refusing a second contact with the same email would hide a duplicate
                // the binary tried to create; here every one it makes is counted.
                allow_duplicates: true,
                ..GhlOptions::default()
            },
            ..SandboxOptions::default()
        })
        .await
        .context("cannot start the emulators")?;
        let dir = std::env::temp_dir().join(format!("hgs-webhook-latency-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let webhook_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Ok(Setting {
            config: dir.join("config.toml"),
            dir,
            sandbox,
            bin: binary(args)?,
            webhook_port,
        })
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.db")
    }

    fn hook_url(&self, event: WebhookEvent) -> String {
        format!(
            "http://127.0.0.1:{}/hooks/hotspotsystem?event={}&location={LOCATION}",
            self.webhook_port,
            event.as_str()
        )
    }

    /// The config, with GHL's limit at `ghl_limit` requests per 10 s.
    fn write_config(&self, ghl_limit: u32) -> anyhow::Result<()> {
        // A contacts tick half a year away: no regular pass during the measurement.
        let tick = Utc::now() + chrono::Duration::days(182);
        let text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "{HS_KEY_ENV}"
rate_limit = 100000

[ghl]
base_url = "{ghl}"
location_id = "{loc}"
auth = "private_token"
token_env = "{GHL_TOKEN_ENV}"
hotspot_id_field = "contact.hotspot_customer_id"
rate_limit = {ghl_limit}
rate_window_secs = {window}
daily_reserve = 1000

[sync]
pass_budget_secs = 3600

[schedule]
contacts = "0 0 {day} {month} *"
notes = "off"
tasks = "off"
full = "off"

[notes]
enabled = true

[tasks]
enabled = true

[[tasks.onboarding]]
id = "welcome"
title = "Welcome new WiFi guest {{name}}"
body = "Registered at {{location}} on {{date}}."
due_in_days = 1

[report]
dir = "{reports}"

[webhooks]
listen = "127.0.0.1:{port}"
hotspot_keys_env = ["{k0}", "{k1}"]
"#,
            state = self.state_path().display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
            loc = self.sandbox.ghl.location_id(),
            window = GHL_WINDOW.as_secs(),
            day = tick.day(),
            month = tick.month(),
            reports = self.dir.join("reports").display(),
            port = self.webhook_port,
            k0 = HOOK_KEY_ENVS[0],
            k1 = HOOK_KEY_ENVS[1],
        );
        std::fs::write(&self.config, text)?;
        Ok(())
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("HGS_CONFIG")
            .env_remove("RUST_LOG")
            .env(HS_KEY_ENV, self.sandbox.hotspot_api_key())
            .env(GHL_TOKEN_ENV, self.sandbox.ghl_token())
            .env(HOOK_KEY_ENVS[0], HOOK_KEYS[0])
            .env(HOOK_KEY_ENVS[1], HOOK_KEYS[1])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// The emulator's two webhooks at [`LOCATION`], sending every `batch` (0: as records come).
    fn configure_webhooks(&self, batch: Duration) {
        let spec = |event: WebhookEvent, key: &str| WebhookSpec {
            location_id: LOCATION.to_string(),
            event,
            url: self.hook_url(event),
            key: key.to_string(),
        };
        self.sandbox.hotspot.set_webhooks(
            vec![
                spec(WebhookEvent::CustomerCreate, HOOK_KEYS[0]),
                spec(WebhookEvent::MacTransactionCreate, HOOK_KEYS[1]),
            ],
            WebhookOptions {
                batch_interval: batch,
                ..WebhookOptions::default()
            },
        );
    }

    fn runs(&self) -> Vec<RunRecord> {
        Store::open(self.state_path())
            .and_then(|s| s.runs(100_000))
            .unwrap_or_default()
    }

    /// Every delivery taken and every queued event processed, and no pass running.
    fn settled(&self) -> bool {
        if self.sandbox.hotspot.webhooks_queued() > 0 {
            return false;
        }
        let Ok(store) = Store::open(self.state_path()) else {
            return false;
        };
        let events_done = store
            .webhook_events(100_000)
            .is_ok_and(|q| q.iter().all(|e| e.processed_at.is_some()));
        let idle = store
            .runs(5)
            .is_ok_and(|r| r.iter().all(|r| r.status != RunStatus::Running));
        events_done && idle
    }
}

/// The daemon: `run` of the binary, its stderr in a file.
struct Daemon {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Daemon {
    async fn start(s: &Setting) -> anyhow::Result<Daemon> {
        let log = s.dir.join("daemon.log");
        let child = s
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start the daemon")?;
        let mut d = Daemon { child, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if d.log_text().contains("webhook receiver listening") {
                return Ok(d);
            }
            if let Some(status) = d.child.try_wait()? {
                bail!("the daemon exited ({status}):\n{}", d.log_text());
            }
            if Instant::now() > deadline {
                bail!("the receiver did not listen within 30 s:\n{}", d.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Peak resident set of the running daemon, in kB.
    fn vmhwm_kb(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// SIGTERM, then the exit code (`None`: killed after 30 s, or no code).
    async fn stop(mut self) -> Option<i32> {
        let pid = i32::try_from(self.child.id()?).ok()?;
        // SAFETY: `kill` on a pid this process spawned and has not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The guests.
// ---------------------------------------------------------------------------------------------

struct NewGuest {
    customer: Customer,
    transaction: MacTransaction,
}

/// `n` guests with ids, user names, emails and transaction ids no seeded record has.
fn new_guests(s: &Setting, n: usize) -> Vec<NewGuest> {
    let (max_customer, max_transaction) = s.sandbox.hotspot.with_data(|d| {
        (
            d.customers
                .iter()
                .filter_map(|c| c.id.parse::<u64>().ok())
                .max()
                .unwrap_or(0),
            d.max_transaction_id().unwrap_or(0),
        )
    });
    (0..n)
        .map(|i| {
            let customer = Customer {
                id: (max_customer + 1_000 + i as u64).to_string(),
                user_name: format!(
                    "AA-BB-CC-{:02X}-{:02X}-{:02X}",
                    (i >> 16) & 0xff,
                    (i >> 8) & 0xff,
                    i & 0xff
                ),
                name: Some(format!("Latency Guest{i}")),
                email: Some(format!("latency-guest-{i}@example.com")),
                registered_at: Utc::now(),
                location_id: LOCATION.to_string(),
                ..Customer::default()
            };
            let transaction = MacTransaction {
                id: max_transaction + 1_000 + i as i64,
                operator: "demo-operator".to_string(),
                location_id: LOCATION.parse().unwrap_or(1),
                user_name: customer.user_name.clone(),
                action_date_gmt: Utc::now(),
                package_id: "1".to_string(),
                email: customer.email.clone(),
                ..MacTransaction::default()
            };
            NewGuest {
                customer,
                transaction,
            }
        })
        .collect()
}

/// One guest's census in GHL.
#[derive(Debug, Clone, Default, Serialize)]
struct Reached {
    contacts: usize,
    notes: usize,
    tasks: usize,
    contact_at: Option<DateTime<Utc>>,
    note_at: Option<DateTime<Utc>>,
    task_at: Option<DateTime<Utc>>,
}

impl Reached {
    fn complete(&self) -> bool {
        self.contact_at.is_some() && self.note_at.is_some() && self.task_at.is_some()
    }
}

/// What GHL holds: each new guest's records, and the duplicates over the whole sub-account.
struct Census {
    guests: Vec<Reached>,
    contacts_total: usize,
    notes_total: usize,
    tasks_total: usize,
    duplicate_contacts: usize,
    duplicate_notes: usize,
    duplicate_tasks: usize,
}

/// The note's `Ref:` line, which names its transaction.
fn note_ref(body: &str) -> Option<&str> {
    body.lines()
        .find_map(|l| l.trim().strip_prefix("Ref:"))
        .map(str::trim)
}

fn extra(counts: impl IntoIterator<Item = usize>) -> usize {
    counts.into_iter().map(|n| n.saturating_sub(1)).sum()
}

fn census(s: &Setting, guests: &[NewGuest]) -> Census {
    s.sandbox.ghl.with_state(|st| {
        let mut by_email: HashMap<String, Vec<(&str, DateTime<Utc>)>> = HashMap::new();
        for c in st.contacts.values() {
            if let Some(e) = &c.email {
                by_email
                    .entry(e.to_lowercase())
                    .or_default()
                    .push((c.id.as_str(), c.date_added));
            }
        }
        let mut notes_by_ref: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
        for n in st.notes.values() {
            if let Some(r) = note_ref(&n.body) {
                notes_by_ref.entry(r).or_default().push(n.date_added);
            }
        }
        // The transaction id ends the reference (`hgs:<type>:<id>`); ids are one sequence.
        let mut notes_by_transaction: HashMap<i64, Vec<DateTime<Utc>>> = HashMap::new();
        for (r, at) in &notes_by_ref {
            if let Some(id) = r.rsplit(':').next().and_then(|id| id.parse().ok()) {
                notes_by_transaction
                    .entry(id)
                    .or_default()
                    .extend(at.iter().copied());
            }
        }
        let mut tasks_by_contact: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
        for t in st.tasks.values() {
            tasks_by_contact
                .entry(t.contact_id.as_str())
                .or_default()
                .push(t.date_added);
        }
        let reached = guests
            .iter()
            .map(|g| {
                let email = g.customer.email.clone().unwrap_or_default();
                let contacts = by_email.get(&email).map(Vec::as_slice).unwrap_or_default();
                let first = contacts.iter().min_by_key(|c| c.1);
                let notes = notes_by_transaction
                    .get(&g.transaction.id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let tasks: Vec<DateTime<Utc>> = contacts
                    .iter()
                    .flat_map(|(id, _)| tasks_by_contact.get(id).into_iter().flatten().copied())
                    .collect();
                Reached {
                    contacts: contacts.len(),
                    notes: notes.len(),
                    tasks: tasks.len(),
                    contact_at: first.map(|c| c.1),
                    note_at: notes.iter().min().copied(),
                    task_at: tasks.iter().min().copied(),
                }
            })
            .collect();
        Census {
            guests: reached,
            contacts_total: st.contacts.len(),
            notes_total: st.notes.len(),
            tasks_total: st.tasks.len(),
            duplicate_contacts: extra(by_email.values().map(Vec::len)),
            duplicate_notes: extra(notes_by_ref.values().map(Vec::len)),
            // One onboarding rule: one task per contact.
            duplicate_tasks: extra(tasks_by_contact.values().map(Vec::len)),
        }
    })
}

/// The instant the receiver answered 200 to the first POST carrying `record`.
fn arrival(deliveries: &[Delivery], event: WebhookEvent, record: &str) -> Option<Instant> {
    deliveries
        .iter()
        .filter(|d| d.event == event && d.status == Some(200))
        .filter(|d| d.record_ids.iter().any(|r| r == record))
        .map(|d| d.answered_at)
        .min()
}

// ---------------------------------------------------------------------------------------------
// The measurement.
// ---------------------------------------------------------------------------------------------

async fn measure(args: &Args) -> anyhow::Result<Outcome> {
    let machine = machine();
    eprintln!("{machine}");
    let s = Setting::start(args).await?;
    eprintln!("binary: {}", s.bin.display());

    // The account as it stands: its guests synced by one `sync` at the raised limit.
    s.write_config(RAISED_LIMIT)?;
    let started = Instant::now();
    let out = s
        .command(&["sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await?;
    let initial_sync_s = started.elapsed().as_secs_f64();
    let initial_exit = out.status.code();
    let before = census(&s, &[]);
    eprintln!(
        "initial sync of {} guests: exit {:?} in {initial_sync_s:.1} s; GHL holds {} contacts, {} notes, {} tasks",
        args.existing, initial_exit, before.contacts_total, before.notes_total, before.tasks_total
    );
    if initial_exit != Some(0) && before.contacts_total == 0 {
        bail!(
            "the initial sync wrote nothing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs_before = s.runs().len();

    // The daemon, at the measured limit.
    let limit = args.ghl_limit.unwrap_or(RAISED_LIMIT);
    s.write_config(limit)?;
    s.sandbox.ghl.set_rate_limit(limit, GHL_WINDOW);
    let batch = Duration::from_secs_f64(args.batch_secs.max(0.0));
    s.configure_webhooks(batch);
    let daemon = Daemon::start(&s).await?;
    let guests = new_guests(&s, args.guests);

    // The clock starts.
    s.sandbox.ghl.clear_requests();
    s.sandbox.hotspot.clear_requests();
    let clock = Clock::now();
    let step = Duration::from_secs_f64(args.over_secs.max(0.0) / args.guests.max(1) as f64);
    let mut registered = Vec::with_capacity(guests.len());
    for (i, g) in guests.iter().enumerate() {
        tokio::time::sleep_until((clock.mono + step * i as u32).into()).await;
        registered.push(Instant::now());
        s.sandbox
            .hotspot
            .add_record(NewRecord::Customer(g.customer.clone()));
        s.sandbox
            .hotspot
            .add_record(NewRecord::Mac(g.transaction.clone()));
    }
    let last = Instant::now();
    eprintln!(
        "{} guests registered in {:.1} s; waiting for them in GHL",
        guests.len(),
        last.duration_since(clock.mono).as_secs_f64()
    );

    // Every guest complete (or the deadline), then everything the daemon was told processed,
    // so that a late duplicate is counted too.
    let deadline = last + batch + Duration::from_secs(args.wait_secs);
    let mut all_reached_after = None;
    while Instant::now() < deadline {
        if census(&s, &guests).guests.iter().all(Reached::complete) {
            all_reached_after = Some(clock.mono.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let settle_deadline = Instant::now().max(deadline) + Duration::from_secs(30);
    while !s.settled() && Instant::now() < settle_deadline {
        tokio::time::sleep(POLL).await;
    }
    // A pass that marked the last events may still be writing: a second more past idle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = s.settled();
    let window_s = clock.mono.elapsed().as_secs_f64();

    let ghl_log = s.sandbox.ghl.requests();
    let hs_requests = s.sandbox.hotspot.requests().len();
    let vmhwm_kb = daemon.vmhwm_kb();
    let runs: Vec<RunRecord> = {
        let mut all = s.runs();
        all.reverse();
        all.into_iter().skip(runs_before).collect()
    };
    let after = census(&s, &guests);
    let deliveries = s.sandbox.hotspot.webhook_deliveries();
    let drift_ms = clock.drift_ms();
    let daemon_exit = daemon.stop().await;

    let per_guest: Vec<GuestLatency> = guests
        .iter()
        .zip(&after.guests)
        .zip(&registered)
        .map(|((g, r), reg)| {
            let c_arr = arrival(&deliveries, WebhookEvent::CustomerCreate, &g.customer.id)
                .map(|a| clock.wall_of(a));
            let t_arr = arrival(
                &deliveries,
                WebhookEvent::MacTransactionCreate,
                &g.transaction.id.to_string(),
            )
            .map(|a| clock.wall_of(a));
            let lat =
                |at: Option<DateTime<Utc>>, from: Option<DateTime<Utc>>| Some(ms(at? - from?));
            let all_at = match (r.contact_at, r.note_at, r.task_at) {
                (Some(a), Some(b), Some(c)) => Some(a.max(b).max(c)),
                _ => None,
            };
            let both = c_arr.zip(t_arr).map(|(a, b)| a.max(b));
            GuestLatency {
                customer_id: g.customer.id.clone(),
                transaction_id: g.transaction.id,
                registered_ms: ms(clock.wall_of(*reg) - clock.wall),
                customer_arrival_ms: c_arr.map(|a| ms(a - clock.wall)),
                transaction_arrival_ms: t_arr.map(|a| ms(a - clock.wall)),
                contact_ms: lat(r.contact_at, c_arr),
                note_ms: lat(r.note_at, t_arr),
                task_ms: lat(r.task_at, c_arr),
                all_ms: lat(all_at, both),
                all_from_registration_ms: lat(all_at, Some(clock.wall_of(*reg))),
                reached: r.clone(),
            }
        })
        .collect();

    let stats = |f: fn(&GuestLatency) -> Option<f64>| Stats::of(per_guest.iter().filter_map(f));
    let mut ghl_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for r in &ghl_log {
        *ghl_by_kind
            .entry(format!("{} {}", r.method, shape(&r.path)))
            .or_default() += 1;
    }
    let mut passes_by_status: BTreeMap<String, usize> = BTreeMap::new();
    for r in &runs {
        *passes_by_status
            .entry(format!("{:?}", r.status))
            .or_default() += 1;
    }
    let pass_ms: Vec<f64> = runs
        .iter()
        .filter_map(|r| Some(ms(r.finished_at? - r.started_at)))
        .collect();
    let posts = deliveries.len();
    Ok(Outcome {
        machine,
        args: ArgsOut {
            guests: args.guests,
            over_secs: args.over_secs,
            batch_secs: args.batch_secs,
            existing: args.existing,
            ghl_limit_per_10s: args.ghl_limit,
            ghl_latency_ms: args.ghl_latency_ms,
        },
        initial_sync: InitialSync {
            exit_code: initial_exit,
            wall_s: initial_sync_s,
            contacts: before.contacts_total,
            notes: before.notes_total,
            tasks: before.tasks_total,
        },
        contact: stats(|g| g.contact_ms),
        note: stats(|g| g.note_ms),
        task: stats(|g| g.task_ms),
        all: stats(|g| g.all_ms),
        all_from_registration: stats(|g| g.all_from_registration_ms),
        guests_reached: after.guests.iter().filter(|r| r.complete()).count(),
        guests_missing_contact: after.guests.iter().filter(|r| r.contacts == 0).count(),
        guests_missing_note: after.guests.iter().filter(|r| r.notes == 0).count(),
        guests_missing_task: after.guests.iter().filter(|r| r.tasks == 0).count(),
        all_reached_after_s: all_reached_after,
        reached_before_own_webhook: per_guest
            .iter()
            .filter(|g| g.all_ms.is_some_and(|l| l < 0.0))
            .count(),
        duplicate_contacts: after.duplicate_contacts,
        duplicate_notes: after.duplicate_notes,
        duplicate_tasks: after.duplicate_tasks,
        ghl_requests: ghl_log.len(),
        ghl_429: ghl_log.iter().filter(|r| r.status == 429).count(),
        ghl_requests_by_kind: ghl_by_kind,
        hotspot_requests: hs_requests,
        webhook_posts: posts,
        webhook_posts_not_200: deliveries.iter().filter(|d| d.status != Some(200)).count(),
        passes: runs.len(),
        passes_by_status,
        pass_ms: Stats::of(pass_ms.into_iter()),
        daemon_vmhwm_kb: vmhwm_kb,
        daemon_exit,
        settled,
        measurement_window_s: window_s,
        clock_drift_ms: drift_ms,
        ghl_totals_after: (after.contacts_total, after.notes_total, after.tasks_total),
        per_guest,
    })
}

/// A path with its ids replaced, to count requests by endpoint.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.len() >= 16 && seg.chars().all(|c| c.is_ascii_alphanumeric()) {
                ":id"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "Machine: {cpu}, {cores} cores; load average at start {}",
        load.trim()
    )
}

// ---------------------------------------------------------------------------------------------
// Results.
// ---------------------------------------------------------------------------------------------

/// Latencies in ms (nearest-rank percentiles).
#[derive(Debug, Clone, Serialize)]
struct Stats {
    n: usize,
    min: f64,
    p50: f64,
    p95: f64,
    max: f64,
}

impl Stats {
    fn of(values: impl Iterator<Item = f64>) -> Option<Stats> {
        let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Stats {
            n: v.len(),
            min: v[0],
            p50: rank(0.50),
            p95: rank(0.95),
            max: v[v.len() - 1],
        })
    }
}

#[derive(Debug, Serialize)]
struct GuestLatency {
    customer_id: String,
    transaction_id: i64,
    /// Since the clock started, ms.
    registered_ms: f64,
    customer_arrival_ms: Option<f64>,
    transaction_arrival_ms: Option<f64>,
    contact_ms: Option<f64>,
    note_ms: Option<f64>,
    task_ms: Option<f64>,
    all_ms: Option<f64>,
    /// The last of the three since the guest registered: the sender's batching included.
    all_from_registration_ms: Option<f64>,
    reached: Reached,
}

#[derive(Debug, Serialize)]
struct ArgsOut {
    guests: usize,
    over_secs: f64,
    batch_secs: f64,
    existing: usize,
    ghl_limit_per_10s: Option<u32>,
    ghl_latency_ms: u64,
}

#[derive(Debug, Serialize)]
struct InitialSync {
    exit_code: Option<i32>,
    wall_s: f64,
    contacts: usize,
    notes: usize,
    tasks: usize,
}

#[derive(Debug, Serialize)]
struct Outcome {
    machine: String,
    args: ArgsOut,
    initial_sync: InitialSync,
    contact: Option<Stats>,
    note: Option<Stats>,
    task: Option<Stats>,
    all: Option<Stats>,
    all_from_registration: Option<Stats>,
    guests_reached: usize,
    guests_missing_contact: usize,
    guests_missing_note: usize,
    guests_missing_task: usize,
    /// Seconds from the first registration until every guest was complete in GHL.
    all_reached_after_s: Option<f64>,
    reached_before_own_webhook: usize,
    duplicate_contacts: usize,
    duplicate_notes: usize,
    duplicate_tasks: usize,
    ghl_requests: usize,
    ghl_429: usize,
    ghl_requests_by_kind: BTreeMap<String, usize>,
    hotspot_requests: usize,
    webhook_posts: usize,
    webhook_posts_not_200: usize,
    passes: usize,
    passes_by_status: BTreeMap<String, usize>,
    /// Pass durations (ms).
    pass_ms: Option<Stats>,
    daemon_vmhwm_kb: Option<u64>,
    daemon_exit: Option<i32>,
    /// Every delivery taken, every event processed, no pass running at the end.
    settled: bool,
    measurement_window_s: f64,
    clock_drift_ms: f64,
    /// Contacts, notes and tasks in the sub-account at the end.
    ghl_totals_after: (usize, usize, usize),
    per_guest: Vec<GuestLatency>,
}

impl Outcome {
    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let missing = self.args.guests - self.guests_reached;
        if missing > 0 {
            out.push(format!(
                "{missing} guest(s) missing in GHL (contact {}, note {}, task {})",
                self.guests_missing_contact, self.guests_missing_note, self.guests_missing_task
            ));
        }
        let dup = self.duplicate_contacts + self.duplicate_notes + self.duplicate_tasks;
        if dup > 0 {
            out.push(format!(
                "duplicates: {} contact(s), {} note(s), {} task(s)",
                self.duplicate_contacts, self.duplicate_notes, self.duplicate_tasks
            ));
        }
        out
    }

    fn text(&self) -> String {
        use std::fmt::Write;
        let a = &self.args;
        let mut t = String::new();
        let _ = writeln!(t, "{}", self.machine);
        let _ = writeln!(
            t,
            "{} new guests over {} s, webhook batch {} s, {} existing guests, GHL limit {} per 10 s, GHL latency {} ms",
            a.guests,
            a.over_secs,
            a.batch_secs,
            a.existing,
            a.ghl_limit_per_10s
                .map_or("raised".to_string(), |n| n.to_string()),
            a.ghl_latency_ms
        );
        let i = &self.initial_sync;
        let _ = writeln!(
            t,
            "initial sync: exit {:?}, {:.1} s, GHL then held {} contacts, {} notes, {} tasks",
            i.exit_code, i.wall_s, i.contacts, i.notes, i.tasks
        );
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "| latency from the webhook's 200 (last row: from the registration) | n | min ms | p50 ms | p95 ms | max ms |"
        );
        let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
        for (name, s) in [
            ("contact", &self.contact),
            ("note", &self.note),
            ("onboarding task", &self.task),
            ("all three", &self.all),
            (
                "all three, from the registration (batching included)",
                &self.all_from_registration,
            ),
        ] {
            match s {
                Some(s) => {
                    let _ = writeln!(
                        t,
                        "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                        s.n, s.min, s.p50, s.p95, s.max
                    );
                }
                None => {
                    let _ = writeln!(t, "| {name} | 0 | – | – | – | – |");
                }
            }
        }
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "guests complete in GHL: {}/{} (missing contact {}, note {}, task {}); all complete {} after the first registration; {} complete before their own webhook's 200",
            self.guests_reached,
            a.guests,
            self.guests_missing_contact,
            self.guests_missing_note,
            self.guests_missing_task,
            self.all_reached_after_s
                .map_or("never".to_string(), |s| format!("{s:.1} s")),
            self.reached_before_own_webhook
        );
        let _ = writeln!(
            t,
            "p95 all three {} the issue's 3 s",
            match &self.all {
                Some(s) if s.p95 <= P95_BAR_MS => "within",
                _ => "NOT within",
            }
        );
        let _ = writeln!(
            t,
            "duplicates over the sub-account: contacts per email {}, notes per transaction {}, tasks per contact {}",
            self.duplicate_contacts, self.duplicate_notes, self.duplicate_tasks
        );
        let _ = writeln!(
            t,
            "during the measurement ({:.1} s): GHL {} requests ({} × 429), HotspotSystem {} requests, {} webhook POSTs ({} not answered 200)",
            self.measurement_window_s,
            self.ghl_requests,
            self.ghl_429,
            self.hotspot_requests,
            self.webhook_posts,
            self.webhook_posts_not_200
        );
        for (k, n) in &self.ghl_requests_by_kind {
            let _ = writeln!(t, "    {n:>6}  GHL {k}");
        }
        let _ = writeln!(
            t,
            "passes run: {} {:?}; pass duration ms {}",
            self.passes,
            self.passes_by_status,
            self.pass_ms.as_ref().map_or("–".to_string(), |s| format!(
                "min {:.0} / p50 {:.0} / p95 {:.0} / max {:.0}",
                s.min, s.p50, s.p95, s.max
            ))
        );
        let _ = writeln!(
            t,
            "daemon peak RSS (VmHWM): {} MB; exit on SIGTERM {:?}; settled at the end: {}; clock drift over the run {:.1} ms",
            self.daemon_vmhwm_kb
                .map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0)),
            self.daemon_exit,
            self.settled,
            self.clock_drift_ms
        );
        let (c, n, k) = self.ghl_totals_after;
        let _ = writeln!(t, "GHL at the end: {c} contacts, {n} notes, {k} tasks");
        t
    }
}
