//! End-to-end benchmark of `sync` against the in-process emulators (issue 7).
//!
//! ```text
//! cargo run --release --example bench_e2e                 # every row, the issue's sizes
//! cargo run --release --example bench_e2e -- --rows 1,2,3 # some rows
//! cargo run --release --example bench_e2e -- --help       # sizes, limits, latency
//! ```
//!
//! Rows:
//! 1. initial sync of `--customers` customers and `--transactions` transactions, the GHL emulator
//!    limited to `--rate-limit` requests per second with `--latency-ms` on every answer;
//! 2. the same state, nothing changed;
//! 3. 1% of the customers changed in HotspotSystem;
//! 4. `--big` customers with no rate limit and no latency: (a) the initial sync, (b) a second
//!    pass with nothing changed, (c) a third (records left settled by (b) are not mapped).
//!
//! The emulators run in this process; each sync runs in a child process (this same executable,
//! started with `--child CONFIG`) that calls the library's `sync_once` exactly as the
//! `hotspot-ghl-sync sync` command does. So the peak resident memory reported (the child's
//! `VmHWM`) is the sync's own, without the emulators' copy of the data. Requests are counted from
//! the emulators' logs (ground truth) and from the sync's audit in the state file; both 429
//! counts are shown.
//!
//! Every row also shows what a stateless "fetch everything and upsert it" poll would spend on
//! the same work: the same HotspotSystem reads plus one GHL upsert per record (customer and
//! transaction) per poll.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hotspot_ghl_sync::cli::Cli;
use hotspot_ghl_sync::commands;
use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::report::RunSummary;
use hotspot_ghl_sync::sandbox::ghl::{GhlEmulator, GhlOptions};
use hotspot_ghl_sync::sandbox::hotspot::{HotspotOptions, LinkHeader, Paging};
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::Store;
use serde_json::{Value, json};

/// Starts the measurement line a child prints after the sync's own report.
const MARK: &str = "HGS-BENCH ";
const KEY_ENV: &str = "HGS_BENCH_HOTSPOT_KEY";
const TOKEN_ENV: &str = "HGS_BENCH_GHL_TOKEN";
/// GHL's search endpoint returns at most this many contacts a page.
const GHL_PAGE: u64 = 500;

#[derive(Parser, Debug)]
#[command(about = "End-to-end benchmark of sync against the in-process emulators")]
struct Args {
    /// Rows to run, comma-separated (1, 2 and 3 share one state and run in order).
    #[arg(long, value_delimiter = ',', default_values_t = [1u8, 2, 3, 4])]
    rows: Vec<u8>,
    /// HotspotSystem customers of rows 1-3.
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// HotspotSystem transactions of rows 1-3.
    #[arg(long, default_value_t = 20_000)]
    transactions: usize,
    /// HotspotSystem customers of row 4.
    #[arg(long, default_value_t = 100_000)]
    big: usize,
    /// GHL requests per second the emulator allows in rows 1-3 (and the client is told).
    #[arg(long, default_value_t = 100)]
    rate_limit: u32,
    /// `ghl.rate_limit` the sync is configured with in rows 1-3 (requests per second); the
    /// default is the emulator's limit, as the issue asks.
    #[arg(long)]
    client_rate: Option<u32>,
    /// Latency the GHL emulator adds to every answer in rows 1-3, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// `ghl.max_concurrency` of the sync.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// `hotspot.page_size` of the sync (the API's largest is 1000).
    #[arg(long, default_value_t = 1000)]
    hotspot_page: u32,
    /// HotspotSystem answers without a `Link` header (the client pages by offset).
    #[arg(long)]
    hotspot_no_link: bool,
    /// HotspotSystem locations the customers are spread over.
    #[arg(long, default_value_t = 3)]
    locations: usize,
    /// Write the rows as JSON to this file as well.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run one sync with this config and print its measurements (a child process).
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(cfg) = &args.child {
        return rt.block_on(child(cfg));
    }
    rt.block_on(parent(args))
}

// ---------------------------------------------------------------------------------------------
// Child: one sync, measured from the inside.
// ---------------------------------------------------------------------------------------------

async fn child(config: &Path) -> anyhow::Result<()> {
    let cli = Cli::parse_from([
        "hotspot-ghl-sync".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "sync".as_ref(),
    ]);
    let started = Instant::now();
    let code = commands::dispatch(cli).await;
    let wall = started.elapsed();
    let line = json!({
        "exit_code": code,
        "wall_s": wall.as_secs_f64(),
        "vmhwm_kb": proc_status_kb("VmHWM"),
        "cpu_s": process_cpu_s(),
    });
    println!("{MARK}{line}");
    Ok(())
}

/// A `kB` line of `/proc/self/status` (`VmHWM` is the peak resident set size).
fn proc_status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User plus system CPU time of this process so far (`/proc/self/stat` fields 14 and 15, in
/// clock ticks of 1/100 s on Linux): the sync's local work, which waiting on the emulators does
/// not count and other processes on the machine do not inflate.
fn process_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

// ---------------------------------------------------------------------------------------------
// Parent: emulators, scenarios, the table.
// ---------------------------------------------------------------------------------------------

impl Scenario {
    /// Moves every GHL contact's `dateAdded` and `dateUpdated` an hour into the past, as if
    /// the next pass ran an hour after the last.
    fn an_hour_passes(&self) {
        self.sandbox.ghl.with_state(|s| {
            for c in s.contacts.values_mut() {
                c.date_updated -= chrono::Duration::hours(1);
                c.date_added -= chrono::Duration::hours(1);
            }
        });
    }
}

/// One sandbox and the state and config the sync uses against it.
struct Scenario {
    sandbox: Sandbox,
    dir: PathBuf,
    config: PathBuf,
    customers: usize,
    transactions: usize,
    hotspot_page: u32,
    /// The client's GHL limit, for the write-rate fraction.
    rate: Option<(u32, Duration)>,
}

struct ScenarioSpec {
    customers: usize,
    transactions: usize,
    locations: usize,
    /// `None`: unlimited (emulator and client).
    rate_per_sec: Option<u32>,
    /// The client's own limit when it differs from the emulator's.
    client_rate: Option<u32>,
    latency: Duration,
    concurrency: usize,
    hotspot_page: u32,
    hotspot_no_link: bool,
    tag: &'static str,
}

impl Scenario {
    async fn start(s: ScenarioSpec) -> anyhow::Result<Scenario> {
        // Unlimited means far above what two cores can drive, for both emulator and client.
        const UNLIMITED: u32 = 10_000_000;
        let rate = s.rate_per_sec.unwrap_or(UNLIMITED);
        let ghl = GhlOptions {
            rate_limit: rate,
            rate_window: Duration::from_secs(1),
            daily_quota: 100_000_000,
            latency: s.latency,
            // The emulator checks duplicates by scanning every contact on each create, which
            // makes it, not the sync, the bottleneck past a few thousand contacts (O(N²)).
            // No two seeded customers share an email or phone, so the check never fires here
            // and turning it off changes no result, only the emulator's cost.
            allow_duplicates: true,
            ..GhlOptions::default()
        };
        let hotspot = HotspotOptions {
            max_limit: 1000,
            paging: Paging {
                link: if s.hotspot_no_link {
                    LinkHeader::Absent
                } else {
                    LinkHeader::Standard
                },
                ..Paging::default()
            },
            ..HotspotOptions::default()
        };
        let sandbox = Sandbox::start(SandboxOptions {
            seed: SeedSpec {
                seed: 42,
                locations: s.locations,
                customers: s.customers,
                subscribers: 0,
                subscribers_also_customers: 0,
                transactions: s.transactions,
            },
            ghl,
            hotspot,
            ..Default::default()
        })
        .await
        .context("cannot start the emulators")?;
        let dir = std::env::temp_dir().join(format!("hgs-bench-{}-{}", s.tag, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("bench.toml");
        let toml = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "{KEY_ENV}"
locations = []
page_size = {page}
rate_limit = {hs_rate}
rate_window_secs = 1

[ghl]
base_url = "{ghl}"
location_id = "{loc}"
auth = "private_token"
token_env = "{TOKEN_ENV}"
hotspot_id_field = "contact.hotspot_customer_id"
rate_limit = {client_rate}
rate_window_secs = 1
daily_reserve = 1000
max_concurrency = {conc}

# A whole initial import at 300,000 contacts on a loaded machine can outlast the
# default budget (30 minutes); what is measured here is the import, not the budget.
[sync]
pass_budget_secs = 7200

[http]
timeout_secs = 30
max_attempts = 5
max_elapsed_secs = 120

[report]
dir = "{reports}"
"#,
            state = dir.join("sync.db").display(),
            hs = sandbox.hotspot.base_url(),
            page = s.hotspot_page,
            // HotspotSystem documents no limit; reads are not what this measures.
            client_rate = s.client_rate.unwrap_or(rate),
            hs_rate = if s.rate_per_sec.is_some() {
                100
            } else {
                UNLIMITED
            },
            ghl = sandbox.ghl.base_url(),
            loc = sandbox.ghl.location_id(),
            conc = s.concurrency,
            reports = dir.join("reports").display(),
        );
        std::fs::write(&config, toml)?;
        Ok(Scenario {
            sandbox,
            dir,
            config,
            customers: s.customers,
            transactions: s.transactions,
            hotspot_page: s.hotspot_page,
            rate: s.rate_per_sec.map(|r| (r, Duration::from_secs(1))),
        })
    }

    /// Runs one sync in a child process and gathers what it cost.
    async fn sync(&self, row: &str, what: &str, sample: bool) -> anyhow::Result<Row> {
        self.sandbox.ghl.clear_requests();
        self.sandbox.hotspot.clear_requests();
        let done = AtomicBool::new(false);
        let started = Instant::now();
        let run = async {
            let out = tokio::process::Command::new(std::env::current_exe()?)
                .arg("--child")
                .arg(&self.config)
                .env(KEY_ENV, self.sandbox.hotspot_api_key())
                .env(TOKEN_ENV, self.sandbox.ghl_token())
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .await;
            done.store(true, Ordering::SeqCst);
            out
        };
        let watch = async {
            if sample {
                sample_writes(&self.sandbox.ghl, &done).await
            } else {
                Vec::new()
            }
        };
        let (out, samples) = tokio::join!(run, watch);
        let out = out?;
        let process_wall = started.elapsed();
        if !out.status.success() {
            bail!("row {row}: the sync child failed ({})", out.status);
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(MARK))
            .context("the sync child printed no measurements")?;
        let m: Value = serde_json::from_str(line)?;

        let store = Store::open(self.dir.join("sync.db"))?;
        let run = store.latest_run()?.context("the sync recorded no run")?;
        let calls = store.api_calls(run.id)?;
        let summary: RunSummary = serde_json::from_value(run.summary.clone()).unwrap_or_default();
        drop(store);

        let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
        let mut audit_429 = 0;
        for c in &calls {
            let r = &c.record;
            *by_kind
                .entry(format!("{} {} {}", r.api, r.method, r.path))
                .or_default() += 1;
            audit_429 += u64::from(r.status == Some(429));
        }
        let ghl_log = self.sandbox.ghl.requests();
        let hs_requests = self.sandbox.hotspot.requests().len() as u64;
        let ghl_429 = ghl_log.iter().filter(|r| r.status == 429).count() as u64;
        let ghl_writes = ghl_log
            .iter()
            .filter(|r| is_write(&r.method, &r.path))
            .count() as u64;
        let ghl_requests = ghl_log.len() as u64;
        let (created, updated, failed, deferred) =
            summary.kinds.values().fold((0, 0, 0, 0), |a, k| {
                (
                    a.0 + k.created,
                    a.1 + k.updated,
                    a.2 + k.failed,
                    a.3 + k.deferred,
                )
            });
        let (notes_in_ghl, contacts_in_ghl) = self
            .sandbox
            .ghl
            .with_state(|s| (s.notes.len(), s.contacts.len()));
        // A plain `sync` records no kind list: what it reconciled shows in what it called.
        let notes = by_kind
            .keys()
            .any(|k| k.contains("/notes") || k.contains("/transactions"));
        let mut kinds = vec![Kind::Contact.as_str().to_string()];
        if notes {
            kinds.push(Kind::Note.as_str().to_string());
        }
        let records = self.customers as u64 + if notes { self.transactions as u64 } else { 0 };
        let write_rate = write_phase_rate(&samples);
        Ok(Row {
            row: row.to_string(),
            what: what.to_string(),
            status: format!("{:?} (exit {})", run.status, m["exit_code"]),
            kinds,
            wall_s: m["wall_s"].as_f64().unwrap_or(f64::NAN),
            process_wall_s: process_wall.as_secs_f64(),
            vmhwm_kb: m["vmhwm_kb"].as_u64(),
            cpu_s: m["cpu_s"].as_f64(),
            ghl_requests,
            ghl_writes,
            hs_requests,
            ghl_429,
            audit_429,
            audit_calls: calls.len() as u64,
            by_kind,
            created,
            updated,
            failed,
            deferred,
            contacts_in_ghl: contacts_in_ghl as u64,
            notes_in_ghl: notes_in_ghl as u64,
            stateless: hs_requests + records,
            write_rate,
            rate_limit: self.rate.map(|(n, w)| f64::from(n) / w.as_secs_f64()),
            read_bound: self.read_bound(),
            http_wait_s: calls.iter().map(|c| c.record.latency_ms).sum::<u64>() as f64 / 1000.0,
        })
    }

    /// The issue's ceiling on reads for a no-change run: one pass over each listing, plus a
    /// small constant (locations, custom fields, one extra page per location and listing).
    fn read_bound(&self) -> u64 {
        let n = self.customers as u64;
        n.div_ceil(u64::from(self.hotspot_page)) + n.div_ceil(GHL_PAGE)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A request that changes GHL (search is a POST that reads).
fn is_write(method: &str, path: &str) -> bool {
    method != "GET" && !path.ends_with("/search") && !path.contains("/oauth/")
}

/// `(seconds since start, accepted requests, accepted writes)` every 250 ms while the child
/// runs, from the emulator's log.
async fn sample_writes(ghl: &GhlEmulator, done: &AtomicBool) -> Vec<(f64, u64, u64)> {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut seen = 0usize;
    let (mut ok, mut writes) = (0u64, 0u64);
    loop {
        let stop = done.load(Ordering::SeqCst);
        let log = ghl.requests();
        for r in log.iter().skip(seen) {
            if r.status < 400 {
                ok += 1;
                writes += u64::from(is_write(&r.method, &r.path));
            }
        }
        seen = log.len();
        out.push((start.elapsed().as_secs_f64(), ok, writes));
        if stop {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Accepted requests and writes per second between the first and the last sample in which
/// writes were made: the pace the sync held while it was writing.
fn write_phase_rate(samples: &[(f64, u64, u64)]) -> Option<(f64, f64)> {
    let first = samples.iter().position(|s| s.2 > 0)?;
    // The sample before the first write bounds the start of the write phase from below.
    let start = first.saturating_sub(1);
    let last_w = samples.last()?.2;
    let end = samples.iter().position(|s| s.2 == last_w)?;
    let (t0, a0, w0) = samples[start];
    let (t1, a1, w1) = samples[end];
    let dt = t1 - t0;
    (dt > 0.0).then(|| ((a1 - a0) as f64 / dt, (w1 - w0) as f64 / dt))
}

/// What one sync cost.
#[derive(Debug, serde::Serialize)]
struct Row {
    row: String,
    what: String,
    status: String,
    /// Kinds the sync reconciled (notes count as records only when `note` is among them).
    kinds: Vec<String>,
    /// `sync_once` from opening the state to the end of the run record, measured in the child.
    wall_s: f64,
    /// Child process start to exit, measured here.
    process_wall_s: f64,
    vmhwm_kb: Option<u64>,
    /// The child's CPU time (user + system): the sync's local work.
    cpu_s: Option<f64>,
    ghl_requests: u64,
    ghl_writes: u64,
    hs_requests: u64,
    ghl_429: u64,
    audit_429: u64,
    audit_calls: u64,
    by_kind: BTreeMap<String, u64>,
    created: u64,
    updated: u64,
    failed: u64,
    deferred: u64,
    contacts_in_ghl: u64,
    notes_in_ghl: u64,
    /// HotspotSystem reads plus one GHL upsert per record.
    stateless: u64,
    /// `(accepted requests/s, accepted writes/s)` while writing.
    write_rate: Option<(f64, f64)>,
    rate_limit: Option<f64>,
    read_bound: u64,
    /// Sum of every call's latency: the time spent waiting on the APIs when calls are serial.
    http_wait_s: f64,
}

impl Row {
    fn requests(&self) -> u64 {
        self.ghl_requests + self.hs_requests
    }
}

async fn parent(args: Args) -> anyhow::Result<()> {
    print_machine();
    let mut rows: Vec<Row> = Vec::new();
    let want = |r: u8| args.rows.contains(&r);
    if want(1) || want(2) || want(3) {
        let sc = Scenario::start(ScenarioSpec {
            customers: args.customers,
            transactions: args.transactions,
            locations: args.locations,
            rate_per_sec: Some(args.rate_limit),
            client_rate: args.client_rate,
            latency: Duration::from_millis(args.latency_ms),
            concurrency: args.concurrency,
            hotspot_page: args.hotspot_page,
            hotspot_no_link: args.hotspot_no_link,
            tag: "rows123",
        })
        .await?;
        eprintln!(
            "row 1: initial sync of {} customers, {} transactions at {} req/s (client {}), {} ms latency …",
            args.customers,
            args.transactions,
            args.rate_limit,
            args.client_rate.unwrap_or(args.rate_limit),
            args.latency_ms
        );
        let first = sc.sync("1", "initial sync", true).await?;
        if want(1) {
            progress(&first);
            rows.push(first);
        }
        if want(2) {
            eprintln!("row 2: nothing changed …");
            let r = sc.sync("2", "nothing changed", false).await?;
            progress(&r);
            rows.push(r);
        }
        if want(3) {
            let changed = sc.sandbox.hotspot.with_data(|d| {
                let mut n = 0;
                for (i, c) in d.customers.iter_mut().enumerate() {
                    if i % 100 == 50 {
                        c.city = Some(format!("Moved {i}"));
                        n += 1;
                    }
                }
                n
            });
            eprintln!("row 3: {changed} customers changed …");
            let r = sc.sync("3", "1% of customers changed", true).await?;
            progress(&r);
            rows.push(r);
        }
    }
    if want(4) {
        let sc = Scenario::start(ScenarioSpec {
            customers: args.big,
            transactions: 0,
            locations: args.locations,
            rate_per_sec: None,
            client_rate: None,
            latency: Duration::ZERO,
            concurrency: args.concurrency,
            hotspot_page: args.hotspot_page,
            hotspot_no_link: args.hotspot_no_link,
            tag: "row4",
        })
        .await?;
        eprintln!("row 4: {} customers, no rate limit, no latency …", args.big);
        let r = sc.sync("4a", "initial sync, unthrottled", false).await?;
        progress(&r);
        rows.push(r);
        // The next passes run "an hour later": what the initial sync created is older than
        // the incremental GHL read's overlap, as it is for a daemon's passes in the steady
        // state (otherwise the first passes would read back every contact just created).
        sc.an_hour_passes();
        let r = sc.sync("4b", "nothing changed, unthrottled", false).await?;
        progress(&r);
        rows.push(r);
        sc.an_hour_passes();
        // The first no-change pass marks every record settled; from the second on, settled
        // records are not mapped.
        let r = sc
            .sync("4c", "nothing changed again, unthrottled", false)
            .await?;
        progress(&r);
        rows.push(r);
    }
    print_table(&rows);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}

/// Each row on stderr as soon as it is measured, so a long run that is cut short keeps them.
fn progress(r: &Row) {
    if let Ok(j) = serde_json::to_string(r) {
        eprintln!("row {} done: {j}", r.row);
    }
}

fn print_machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024 / 1024);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "Machine: {cpu}, {cores} cores, {mem} GiB; load average at start {}",
        load.trim()
    );
    println!();
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

fn print_table(rows: &[Row]) {
    println!(
        "| row | what | wall s | requests (GHL + HS) | GHL writes | 429s emulator/audit | failed | created/updated | write pace / limit | peak RSS MB | stateless poll requests | stateless ÷ ours |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let pace = match (r.write_rate, r.rate_limit) {
            (Some((all, w)), Some(lim)) => format!(
                "{:.1}/s writes, {:.1}/s all = {:.0}% of {lim:.0}/s",
                w,
                all,
                100.0 * all / lim
            ),
            (Some((all, w)), None) => format!("{w:.0}/s writes, {all:.0}/s all (no limit)"),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {:.1} | {} ({} + {}) | {} | {}/{} | {} | {}/{} | {} | {} | {} | {:.1} |",
            r.row,
            r.what,
            r.wall_s,
            r.requests(),
            r.ghl_requests,
            r.hs_requests,
            r.ghl_writes,
            r.ghl_429,
            r.audit_429,
            r.failed,
            r.created,
            r.updated,
            pace,
            mb(r.vmhwm_kb),
            r.stateless,
            r.stateless as f64 / r.requests().max(1) as f64,
        );
    }
    println!();
    for r in rows {
        println!(
            "Row {} ({}): status {}, kinds [{}], child process {:.1} s, CPU {:.2} s, GHL now holds {} contacts and {} notes; deferred {}; audit rows {}",
            r.row,
            r.what,
            r.status,
            r.kinds.join(", "),
            r.process_wall_s,
            r.cpu_s.unwrap_or(f64::NAN),
            r.contacts_in_ghl,
            r.notes_in_ghl,
            r.deferred,
            r.audit_calls
        );
        for (k, n) in &r.by_kind {
            println!("    {n:>7}  {k}");
        }
        if r.ghl_writes == 0 {
            let reads = r.requests();
            println!(
                "    no-change bound: {reads} reads vs ceil(N/page) + ceil(N/500) = {} (+{} constant); local work ≈ wall − Σ HTTP latency = {:.2} s",
                r.read_bound,
                reads as i64 - r.read_bound as i64,
                r.wall_s - r.http_wait_s
            );
        }
        if r.requests() > 0 {
            println!(
                "    429s: {:.2}% of requests",
                100.0 * r.ghl_429 as f64 / r.requests() as f64
            );
        }
    }
}
