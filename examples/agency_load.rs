//! Agency mode under load (issue 16): many pairs in one process against the in-process
//! emulators, with every guest counted where it landed.
//!
//! ```text
//! cargo run --release --example agency_load                          # 50 pairs x 4 x 200, sync
//! cargo run --release --example agency_load -- --pairs 1,10,25,50   # RSS growth per pair
//! cargo run --release --example agency_load -- --mode run --max-concurrent 1,2,4,8
//! cargo run --release --example agency_load -- --help
//! ```
//!
//! Each row starts both emulators in this process: `pairs * locations-per-pair` HotspotSystem
//! locations of `guests-per-location` guests each (spread evenly), and `pairs` GHL sub-accounts,
//! each with its own Private Integration Token, burst limit (`--ghl-limit` per 10 s, GHL's 100 by
//! default) and daily quota. The config has one `[[pairs]]` per sub-account: pair `i` reads
//! locations `k*i .. k*i+k-1` into sub-account `i`. The sync runs in a child process (this same
//! executable, started with `--child CONFIG --command sync|run`) that calls the library's command
//! dispatch exactly as `hotspot-ghl-sync --config CONFIG sync` (or `run`) does, so the peak
//! resident memory reported (the child's `VmHWM`) is the sync's own, without the emulators'.
//!
//! `--mode sync` runs every pair once, one after another. `--mode run` starts the daemon with
//! `[run] max_concurrent_pairs` set to each `--max-concurrent` value, with the last `--revoked`
//! configured pairs' sub-accounts revoking their tokens first; it waits until every pair has
//! finished one contacts pass (read from the pairs' state files), then adds `--added` pairs to
//! the file and sends SIGHUP, waits until they have finished a pass too in the same process, and
//! stops the daemon with SIGTERM.
//!
//! Reported per row: every guest exactly once in its own sub-account and nowhere else (contacts
//! per sub-account, guests missing, HotspotSystem ids or emails on two contacts, guests of
//! another pair; revoked pairs apart: each must have failed with nothing written), HotspotSystem reads per location per pass, the busiest 10-second window of
//! each GHL location against its limit, GHL writes per second over all locations together,
//! wall time, CPU and peak RSS of the process.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use hotspot_ghl_sync::cli::Cli;
use hotspot_ghl_sync::commands;
use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::sandbox::ghl::{GhlOptions, GhlRequest};
use hotspot_ghl_sync::sandbox::hotspot::HotspotOptions;
use hotspot_ghl_sync::sandbox::seed::{SeedSpec, Spread};
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::{RunRecord, RunStatus, Store};
use serde_json::{Value, json};

/// Starts the measurement line a child prints after the command's own output.
const MARK: &str = "HGS-AGENCY ";
const KEY_ENV: &str = "HGS_LOAD_HOTSPOT_KEY";
/// GHL counts its burst limit over 10 seconds.
const GHL_WINDOW: Duration = Duration::from_secs(10);
/// The GHL custom field that carries the HotspotSystem id.
const ANCHOR: &str = "contact.hotspot_customer_id";

#[derive(Parser, Debug)]
#[command(about = "Agency mode: many pairs in one process against the in-process emulators")]
struct Args {
    /// Pairs (GHL sub-accounts); a comma-separated list runs one row per value.
    #[arg(long, value_delimiter = ',', default_values_t = [50usize])]
    pairs: Vec<usize>,
    /// HotspotSystem locations each pair reads.
    #[arg(long, default_value_t = 4)]
    locations_per_pair: usize,
    /// Guests (customers) at each HotspotSystem location.
    #[arg(long, default_value_t = 200)]
    guests_per_location: usize,
    /// `sync` (every pair once, in turn) or `run` (the daemon, stopped after one pass each).
    #[arg(long, value_enum, default_value_t = Mode::Sync)]
    mode: Mode,
    /// `[run] max_concurrent_pairs`, `--mode run` only; a list runs one row per value.
    #[arg(long, value_delimiter = ',', default_values_t = [4usize])]
    max_concurrent: Vec<usize>,
    /// `--mode run` only: configured pairs (the last ones) whose sub-account revokes its token
    /// before the daemon starts; each must fail alone while the others complete.
    #[arg(long, default_value_t = 1)]
    revoked: usize,
    /// `--mode run` only: pairs added to the file and loaded with SIGHUP once every configured
    /// pair has finished a pass; each must then finish a pass of its own in the same process.
    #[arg(long, default_value_t = 1)]
    added: usize,
    /// Requests each GHL location accepts per 10 s (the emulator's limit and the client's).
    #[arg(long, default_value_t = 100)]
    ghl_limit: u32,
    /// Latency the GHL emulator adds to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// `ghl.max_concurrency` of each pair.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Give up on a row after this many seconds.
    #[arg(long, default_value_t = 7200)]
    timeout_secs: u64,
    /// Write the rows as JSON to this file as well.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run one command with this config and print its measurements (a child).
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
    /// Internal: the child's command.
    #[arg(long, hide = true, default_value = "sync")]
    command: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Sync,
    Run,
}

impl Mode {
    fn command(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Run => "run",
        }
    }
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
        return rt.block_on(child(cfg, &args.command));
    }
    rt.block_on(parent(args))
}

// ---------------------------------------------------------------------------------------------
// Child: one command, measured from the inside.
// ---------------------------------------------------------------------------------------------

async fn child(config: &Path, command: &str) -> anyhow::Result<()> {
    let cli = Cli::parse_from([
        "hotspot-ghl-sync".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        command.as_ref(),
    ]);
    let started = Instant::now();
    let code = commands::dispatch(cli).await;
    let line = json!({
        "exit_code": code,
        "wall_s": started.elapsed().as_secs_f64(),
        "vmhwm_kb": proc_status_kb("VmHWM"),
        "cpu_s": process_cpu_s(),
        "threads": proc_status_kb("Threads"),
    });
    println!("{MARK}{line}");
    Ok(())
}

/// A line of `/proc/self/status` as a number (`VmHWM` is the peak resident set, in kB).
fn proc_status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User plus system CPU time of this process (`/proc/self/stat` fields 14 and 15, 1/100 s).
fn process_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

// ---------------------------------------------------------------------------------------------
// Parent: the agency, the child, the census.
// ---------------------------------------------------------------------------------------------

struct Agency {
    sandbox: Sandbox,
    dir: PathBuf,
    config: PathBuf,
    pairs: Vec<PairSpec>,
    /// Requests each GHL location accepts per 10 s.
    limit: usize,
}

struct PairSpec {
    name: String,
    hotspot_locations: Vec<String>,
    ghl_location: String,
    token_env: String,
    token: String,
    state: PathBuf,
}

struct RowSpec {
    /// Pairs in the file the command starts with.
    pairs: usize,
    mode: Mode,
    max_concurrent: Option<usize>,
    /// The last this many of `pairs` have their tokens revoked before the start.
    revoked: usize,
    /// Pairs added by SIGHUP after the first pass of every configured one.
    added: usize,
}

impl RowSpec {
    fn is_revoked(&self, pair: usize) -> bool {
        (self.pairs - self.revoked..self.pairs).contains(&pair)
    }
}

impl Agency {
    async fn start(args: &Args, row: &RowSpec) -> anyhow::Result<Agency> {
        let ghl = GhlOptions {
            rate_limit: args.ghl_limit,
            rate_window: GHL_WINDOW,
            latency: Duration::from_millis(args.latency_ms),
            ..GhlOptions::default().with_locations(row.pairs + row.added)
        };
        let locations = (row.pairs + row.added) * args.locations_per_pair;
        let sandbox = Sandbox::start(SandboxOptions {
            seed: SeedSpec {
                seed: 16,
                locations,
                customers: locations * args.guests_per_location,
                subscribers: 0,
                subscribers_also_customers: 0,
                transactions: 0,
            },
            spread: Spread::Even,
            ghl,
            hotspot: HotspotOptions {
                max_limit: 1000,
                ..HotspotOptions::default()
            },
            ..Default::default()
        })
        .await
        .context("cannot start the emulators")?;
        let dir = std::env::temp_dir().join(format!(
            "hgs-agency-{}-{}-{}",
            row.pairs,
            row.max_concurrent.unwrap_or(0),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state"))?;
        let hs: Vec<String> = sandbox
            .hotspot
            .with_data(|d| d.locations.iter().map(|l| l.id.clone()).collect());
        let k = args.locations_per_pair;
        let mut pairs = Vec::new();
        for (i, ghl_location) in sandbox.ghl.location_ids().into_iter().enumerate() {
            let name = format!("p{i:03}");
            pairs.push(PairSpec {
                hotspot_locations: hs[i * k..(i + 1) * k].to_vec(),
                token: sandbox
                    .ghl
                    .token_for(&ghl_location)
                    .context("a sub-account without a PIT")?,
                token_env: format!("HGS_LOAD_GHL_TOKEN_P{i:03}"),
                state: dir.join(format!("state/{name}.db")),
                ghl_location,
                name,
            });
        }
        let config = dir.join("agency.toml");
        let agency = Agency {
            sandbox,
            dir,
            config,
            pairs,
            limit: args.ghl_limit as usize,
        };
        std::fs::write(&agency.config, agency.config_text(args, row, row.pairs))?;
        for i in (0..row.pairs).filter(|&i| row.is_revoked(i)) {
            let location = &agency.pairs[i].ghl_location;
            agency.sandbox.ghl.location(location).revoke_tokens();
        }
        Ok(agency)
    }

    /// The configuration with the first `pairs` pairs.
    fn config_text(&self, args: &Args, row: &RowSpec, pairs: usize) -> String {
        let mut text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "{KEY_ENV}"
page_size = 1000
# HotspotSystem documents no limit; reads are counted, not throttled.
rate_limit = 100000
rate_window_secs = 1

[ghl]
base_url = "{ghl}"
auth = "private_token"
hotspot_id_field = "{ANCHOR}"
rate_limit = {limit}
rate_window_secs = {window}
max_concurrency = {conc}

[sync]
pass_budget_secs = 7200

[http]
timeout_secs = 30
max_attempts = 5
max_elapsed_secs = 120

[report]
dir = "{reports}"
"#,
            state = self.dir.join("state/sync.db").display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
            limit = args.ghl_limit,
            window = GHL_WINDOW.as_secs(),
            conc = args.concurrency,
            reports = self.dir.join("reports").display(),
        );
        if let Some(c) = row.max_concurrent {
            // One contacts job a second: a pair's next pass starts as soon as its last ended
            // (the overlap guard skips the ticks in between); the run is stopped after one.
            text.push_str(&format!(
                r#"
[schedule]
contacts = "*/1 * * * * *"
notes = "off"
tasks = "off"
businesses = "off"
appointments = "off"
full = "off"

[run]
max_concurrent_pairs = {c}
"#
            ));
        }
        for p in &self.pairs[..pairs] {
            let locations: Vec<String> = p
                .hotspot_locations
                .iter()
                .map(|l| format!("\"{l}\""))
                .collect();
            text.push_str(&format!(
                "\n[[pairs]]\nname = \"{}\"\nhotspot_locations = [{}]\nstate = \"{}\"\n[pairs.ghl]\nlocation_id = \"{}\"\ntoken_env = \"{}\"\n",
                p.name,
                locations.join(", "),
                p.state.display(),
                p.ghl_location,
                p.token_env,
            ));
        }
        text
    }

    fn child_command(&self, mode: Mode) -> anyhow::Result<tokio::process::Command> {
        let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
        cmd.arg("--child")
            .arg(&self.config)
            .arg("--command")
            .arg(mode.command())
            .env(KEY_ENV, self.sandbox.hotspot_api_key())
            .env_remove("HGS_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for p in &self.pairs {
            cmd.env(&p.token_env, &p.token);
        }
        Ok(cmd)
    }

    /// Finished contacts passes in each pair's state file (none while it does not exist).
    fn contact_passes(&self) -> Vec<usize> {
        (0..self.pairs.len())
            .map(|i| self.finished_contact_runs(i).len())
            .collect()
    }

    /// Pair `i`'s finished contacts runs, newest first.
    fn finished_contact_runs(&self, i: usize) -> Vec<RunRecord> {
        let state = &self.pairs[i].state;
        if !state.exists() {
            return Vec::new();
        }
        Store::open(state)
            .and_then(|s| s.runs(10_000))
            .map(|runs| {
                runs.into_iter()
                    .filter(|r| r.kinds.contains(&Kind::Contact))
                    .filter(|r| r.status != RunStatus::Running)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Polls the pairs' state files until pairs `range` have each finished a contacts pass.
    async fn wait_for_passes(
        &self,
        child: &mut tokio::process::Child,
        range: std::ops::Range<usize>,
        started: Instant,
        limit: Duration,
    ) -> anyhow::Result<Vec<usize>> {
        loop {
            let passes = self.contact_passes();
            if passes[range.clone()].iter().all(|&n| n >= 1) {
                return Ok(passes);
            }
            if started.elapsed() > limit {
                bail!("pairs {range:?} did not each finish a pass within {limit:?}: {passes:?}");
            }
            if let Some(status) = child.try_wait()? {
                bail!("the daemon exited early ({status})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the child and measures the row.
    async fn measure(&self, args: &Args, row: &RowSpec) -> anyhow::Result<Row> {
        self.sandbox.ghl.clear_requests();
        self.sandbox.hotspot.clear_requests();
        let started = Instant::now();
        let limit = Duration::from_secs(args.timeout_secs);
        let mut child = self.child_command(row.mode)?.spawn()?;
        let mut stdout = child.stdout.take().context("child stdout")?;
        let reading = tokio::spawn(async move {
            let mut s = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut s)
                .await
                .map(|_| s)
        });
        let mut passes_at_stop = Vec::new();
        let mut added_after = None;
        if row.mode == Mode::Run {
            // Every configured pair one finished contacts pass (the revoked ones a failed one).
            let pid = child.id().context("child pid")?;
            passes_at_stop = self
                .wait_for_passes(&mut child, 0..row.pairs, started, limit)
                .await?;
            if row.added > 0 {
                // More pairs in the file, SIGHUP, and the same process syncs them.
                let all = self.pairs.len();
                std::fs::write(&self.config, self.config_text(args, row, all))?;
                let reloaded = Instant::now();
                signal(pid, "HUP").await?;
                passes_at_stop = self
                    .wait_for_passes(&mut child, row.pairs..all, started, limit)
                    .await?;
                added_after = Some(reloaded.elapsed());
            }
            signal(pid, "TERM").await?;
        }
        let status = tokio::time::timeout(limit, child.wait())
            .await
            .context("the child did not finish in time")??;
        let wall = started.elapsed();
        let out = reading.await??;
        let line = out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(MARK))
            .with_context(|| format!("the child ({status}) printed no measurements"))?;
        let m: Value = serde_json::from_str(line)?;
        if row.mode == Mode::Sync {
            passes_at_stop = self.contact_passes();
        }
        Ok(self.row(row, m, wall, passes_at_stop, added_after))
    }

    fn row(
        &self,
        spec: &RowSpec,
        m: Value,
        wall: Duration,
        passes: Vec<usize>,
        added_after: Option<Duration>,
    ) -> Row {
        let log = self.sandbox.ghl.requests();
        let synced: Vec<usize> = (0..self.pairs.len())
            .filter(|&i| !spec.is_revoked(i))
            .collect();
        let census: Vec<Census> = synced.iter().map(|&i| self.census(i)).collect();
        let revoked = self.revoked_outcome(spec);

        // HotspotSystem reads of each location, per pass of the pair that owns it.
        let reads = self.sandbox.hotspot.reads_per_location();
        let mut read_per_pass: Vec<f64> = Vec::new();
        let mut unread = 0;
        for &i in &synced {
            let (p, n) = (&self.pairs[i], &passes[i]);
            for l in &p.hotspot_locations {
                match reads.get(l) {
                    Some(&r) => read_per_pass.push(r as f64 / (*n).max(1) as f64),
                    None => unread += 1,
                }
            }
        }
        let hs = self.sandbox.hotspot.requests();
        let distinct: BTreeSet<(&str, &str)> = hs
            .iter()
            .map(|r| (r.path.as_str(), r.query.as_str()))
            .collect();

        // Each GHL location's busiest 10 s against its limit.
        let busiest: Vec<usize> = self
            .pairs
            .iter()
            .map(|p| {
                self.sandbox
                    .ghl
                    .busiest_window(Some(&p.ghl_location), GHL_WINDOW)
            })
            .collect();
        let writes: Vec<Instant> = log
            .iter()
            .filter(|r| r.status < 400 && is_write(r))
            .map(|r| r.at)
            .collect();
        let (writes_per_s_peak, writes_per_s_mean) = write_rates(writes);

        let (mn, mx) = min_max(&read_per_pass);
        Row {
            mode: spec.mode,
            pairs: self.pairs.len(),
            max_concurrent: spec.max_concurrent,
            hotspot_locations: self.pairs.iter().map(|p| p.hotspot_locations.len()).sum(),
            guests: self.sandbox.hotspot.with_data(|d| d.customers.len()),
            exit_code: m["exit_code"].as_i64(),
            wall_s: wall.as_secs_f64(),
            child_wall_s: m["wall_s"].as_f64(),
            cpu_s: m["cpu_s"].as_f64(),
            vmhwm_kb: m["vmhwm_kb"].as_u64(),
            threads_at_end: m["threads"].as_u64(),
            contact_passes: passes.iter().sum(),
            contacts: census.iter().map(|c| c.contacts).sum(),
            eligible: census.iter().map(|c| c.eligible).sum(),
            synced_pairs: census.len(),
            sub_accounts_exact: census.iter().filter(|c| c.exact()).count(),
            contacts_per_sub_account: min_max_usize(census.iter().map(|c| c.contacts)),
            missing: census.iter().map(|c| c.missing).sum(),
            duplicate_ids: census.iter().map(|c| c.duplicate_ids).sum(),
            duplicate_emails: census.iter().map(|c| c.duplicate_emails).sum(),
            foreign: census.iter().map(|c| c.foreign).sum(),
            hotspot_requests: hs.len(),
            hotspot_repeated: hs.len() - distinct.len(),
            hotspot_reads_per_location_per_pass: (mn, mx),
            hotspot_locations_unread: unread,
            ghl_requests: log.len(),
            ghl_429: log.iter().filter(|r| r.status == 429).count(),
            ghl_writes: log.iter().filter(|r| r.status < 400 && is_write(r)).count(),
            busiest_10s_per_location: min_max_usize(busiest.iter().copied()),
            locations_over_limit: busiest
                .iter()
                .filter(|&&b| b > self.sandbox_limit())
                .count(),
            ghl_limit_per_10s: self.sandbox_limit(),
            busiest_10s_all_locations: self.sandbox.ghl.busiest_window(None, GHL_WINDOW),
            writes_per_s_peak_10s: writes_per_s_peak,
            writes_per_s_mean,
            revoked,
            added: spec.added,
            added_first_pass_s: added_after.map(|d| d.as_secs_f64()),
        }
    }

    /// How the revoked pairs ended: each with finished runs that all failed, nothing in its
    /// sub-account, and the reason its last run gave.
    fn revoked_outcome(&self, spec: &RowSpec) -> Revoked {
        let mut out = Revoked::default();
        for i in (0..spec.pairs).filter(|&i| spec.is_revoked(i)) {
            let runs = self.finished_contact_runs(i);
            out.pairs += 1;
            if !runs.is_empty() && runs.iter().all(|r| r.status == RunStatus::Failed) {
                out.failed_alone += 1;
            }
            out.contacts += self
                .sandbox
                .ghl
                .location(&self.pairs[i].ghl_location)
                .with_state(|s| s.contacts.len());
            if out.reason.is_none() {
                out.reason = runs.first().and_then(|r| {
                    r.summary["notes"]
                        .as_array()?
                        .iter()
                        .filter_map(Value::as_str)
                        .find(|n| n.contains("failed"))
                        .map(str::to_string)
                });
            }
        }
        out
    }

    fn sandbox_limit(&self) -> usize {
        self.limit
    }

    /// Where pair `i`'s sub-account stands against its own guests.
    fn census(&self, i: usize) -> Census {
        let pair = &self.pairs[i];
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let own: BTreeSet<String> = self.sandbox.hotspot.with_data(|d| {
            d.customers
                .iter()
                .filter(|c| pair.hotspot_locations.contains(&c.location_id))
                .filter(|c| has(&c.email) || has(&c.phone))
                .map(|c| c.id.clone())
                .collect()
        });
        let (anchors, emails) = self
            .sandbox
            .ghl
            .location(&pair.ghl_location)
            .with_state(|s| {
                let field = s.custom_field(ANCHOR).map(|f| f.id.clone());
                let mut anchors = Vec::with_capacity(s.contacts.len());
                let mut emails = Vec::with_capacity(s.contacts.len());
                for c in s.contacts.values() {
                    let anchor = field.as_ref().and_then(|f| {
                        c.custom_fields
                            .iter()
                            .find(|(id, _)| id == f)
                            .and_then(|(_, v)| v.as_str().map(str::to_string))
                    });
                    anchors.push(anchor.unwrap_or_default());
                    if let Some(e) = &c.email {
                        emails.push(e.trim().to_lowercase());
                    }
                }
                (anchors, emails)
            });
        let held: BTreeSet<&String> = anchors.iter().collect();
        Census {
            eligible: own.len(),
            contacts: anchors.len(),
            missing: own.iter().filter(|a| !held.contains(a)).count(),
            duplicate_ids: anchors.len() - held.len(),
            duplicate_emails: emails.len() - emails.iter().collect::<BTreeSet<_>>().len(),
            foreign: held.iter().filter(|a| !own.contains(**a)).count(),
        }
    }
}

impl Drop for Agency {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `signal` (`HUP`, `TERM`) to the child.
async fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let sent = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .await?;
    if !sent.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}

/// The revoked pairs of a row.
#[derive(Debug, Default, serde::Serialize)]
struct Revoked {
    pairs: usize,
    /// Revoked pairs with at least one finished run, every one of them failed.
    failed_alone: usize,
    /// Contacts in the revoked pairs' sub-accounts (nothing may have been written).
    contacts: usize,
    /// What the first revoked pair's last run said.
    reason: Option<String>,
}

/// One sub-account against its pair's guests.
struct Census {
    eligible: usize,
    contacts: usize,
    missing: usize,
    /// Contacts beyond the first carrying the same HotspotSystem id.
    duplicate_ids: usize,
    /// Contacts beyond the first carrying the same email.
    duplicate_emails: usize,
    /// Contacts of guests that are not this pair's.
    foreign: usize,
}

impl Census {
    fn exact(&self) -> bool {
        self.missing + self.duplicate_ids + self.duplicate_emails + self.foreign == 0
    }
}

/// A request that changes GHL (search is a POST that reads).
fn is_write(r: &GhlRequest) -> bool {
    r.method != "GET" && !r.path.ends_with("/search") && !r.path.contains("/oauth/")
}

/// Accepted GHL writes per second over every location: in the busiest 10 s, and on average
/// from the first write to the last.
fn write_rates(mut at: Vec<Instant>) -> (f64, f64) {
    at.sort();
    let (Some(first), Some(last)) = (at.first(), at.last()) else {
        return (0.0, 0.0);
    };
    let span = last.duration_since(*first).as_secs_f64();
    let mean = if span > 0.0 {
        at.len() as f64 / span
    } else {
        0.0
    };
    let mut best = 0;
    let mut start = 0;
    for end in 0..at.len() {
        while at[end].duration_since(at[start]) >= GHL_WINDOW {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    (best as f64 / GHL_WINDOW.as_secs_f64(), mean)
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::NAN, f64::NAN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

fn min_max_usize(v: impl Iterator<Item = usize>) -> (usize, usize) {
    v.fold((usize::MAX, 0), |(lo, hi), x| (lo.min(x), hi.max(x)))
}

/// What one row measured.
#[derive(Debug, serde::Serialize)]
struct Row {
    mode: Mode,
    pairs: usize,
    max_concurrent: Option<usize>,
    hotspot_locations: usize,
    guests: usize,
    exit_code: Option<i64>,
    /// Child start to exit, measured here (in `run` mode: until every pair had one pass, and
    /// the stop).
    wall_s: f64,
    /// The command's own time, measured in the child.
    child_wall_s: Option<f64>,
    cpu_s: Option<f64>,
    vmhwm_kb: Option<u64>,
    threads_at_end: Option<u64>,
    /// Finished contacts passes over every pair when the child stopped.
    contact_passes: usize,
    /// Pairs expected to sync (all but the revoked ones); the census columns cover these.
    synced_pairs: usize,
    contacts: usize,
    eligible: usize,
    sub_accounts_exact: usize,
    contacts_per_sub_account: (usize, usize),
    missing: usize,
    duplicate_ids: usize,
    duplicate_emails: usize,
    foreign: usize,
    hotspot_requests: usize,
    /// HotspotSystem requests that repeat an earlier one (same path and query).
    hotspot_repeated: usize,
    /// (fewest, most) over the locations, each divided by its pair's finished passes.
    hotspot_reads_per_location_per_pass: (f64, f64),
    hotspot_locations_unread: usize,
    ghl_requests: usize,
    ghl_429: usize,
    ghl_writes: usize,
    /// (quietest, busiest) location's busiest 10 s.
    busiest_10s_per_location: (usize, usize),
    locations_over_limit: usize,
    ghl_limit_per_10s: usize,
    busiest_10s_all_locations: usize,
    writes_per_s_peak_10s: f64,
    writes_per_s_mean: f64,
    revoked: Revoked,
    /// Pairs added by SIGHUP.
    added: usize,
    /// SIGHUP to every added pair's first finished pass.
    added_first_pass_s: Option<f64>,
}

async fn parent(args: Args) -> anyhow::Result<()> {
    print_machine();
    let mut specs = Vec::new();
    for &pairs in &args.pairs {
        match args.mode {
            Mode::Sync => specs.push(RowSpec {
                pairs,
                mode: Mode::Sync,
                max_concurrent: None,
                revoked: 0,
                added: 0,
            }),
            Mode::Run => {
                for &c in &args.max_concurrent {
                    specs.push(RowSpec {
                        pairs,
                        mode: Mode::Run,
                        max_concurrent: Some(c),
                        revoked: args.revoked.min(pairs),
                        added: args.added,
                    });
                }
            }
        }
    }
    let mut rows = Vec::new();
    for spec in &specs {
        eprintln!(
            "{} pairs x {} locations x {} guests, {}{} ...",
            spec.pairs,
            args.locations_per_pair,
            args.guests_per_location,
            spec.mode.command(),
            spec.max_concurrent
                .map(|c| format!(", max_concurrent_pairs {c}"))
                .unwrap_or_default()
        );
        let agency = Agency::start(&args, spec).await?;
        let row = agency.measure(&args, spec).await?;
        eprintln!("row done: {}", serde_json::to_string(&row)?);
        rows.push(row);
    }
    print_table(&rows);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
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
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "Machine: {cpu}, {cores} cores; load average at start {}; {profile} build",
        load.trim()
    );
    println!();
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

fn print_table(rows: &[Row]) {
    println!(
        "| mode | pairs | concurrent | guests | exit | wall s | CPU s | peak RSS MB | contacts / eligible | exact sub-accounts | missing / dup ids / dup emails / foreign | HS reads per location per pass (min-max) | HS repeated | busiest 10 s per location (max) / limit | 429s | GHL writes/s all locations (peak 10 s, mean) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|---:|---|");
    for r in rows {
        println!(
            "| {:?} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {} / {} | {}/{} | {}/{}/{}/{} | {:.1}-{:.1} | {} | {} / {} | {} | {:.1}, {:.1} |",
            r.mode,
            r.pairs,
            r.max_concurrent.map_or("-".into(), |c| c.to_string()),
            r.guests,
            r.exit_code.map_or("?".into(), |c| c.to_string()),
            r.wall_s,
            r.cpu_s.unwrap_or(f64::NAN),
            mb(r.vmhwm_kb),
            r.contacts,
            r.eligible,
            r.sub_accounts_exact,
            r.synced_pairs,
            r.missing,
            r.duplicate_ids,
            r.duplicate_emails,
            r.foreign,
            r.hotspot_reads_per_location_per_pass.0,
            r.hotspot_reads_per_location_per_pass.1,
            r.hotspot_repeated,
            r.busiest_10s_per_location.1,
            r.ghl_limit_per_10s,
            r.ghl_429,
            r.writes_per_s_peak_10s,
            r.writes_per_s_mean,
        );
    }
    println!();
    // Growth of the peak per pair (sync) or per concurrent pair (run), between the smallest
    // and the largest row of the same mode.
    for mode in [Mode::Sync, Mode::Run] {
        let of: Vec<&Row> = rows.iter().filter(|r| r.mode == mode).collect();
        let (Some(a), Some(b)) = (of.first(), of.last()) else {
            continue;
        };
        let (x, y) = match mode {
            Mode::Sync => (a.pairs, b.pairs),
            Mode::Run => (a.max_concurrent.unwrap_or(0), b.max_concurrent.unwrap_or(0)),
        };
        if let (Some(ka), Some(kb), true) = (a.vmhwm_kb, b.vmhwm_kb, y > x) {
            println!(
                "{mode:?}: peak RSS {} MB at {x}, {} MB at {y}: {:.2} MB per {}",
                mb(Some(ka)),
                mb(Some(kb)),
                (kb as f64 - ka as f64) / 1024.0 / (y - x) as f64,
                match mode {
                    Mode::Sync => "pair",
                    Mode::Run => "concurrent pair",
                }
            );
        }
    }
    for r in rows {
        println!(
            "{:?} {} pairs{}: child {:.1} s, {} contact passes, {} GHL requests ({} writes), busiest 10 s over all locations {}, {} HotspotSystem requests, {} locations unread, threads at end {}",
            r.mode,
            r.pairs,
            r.max_concurrent
                .map(|c| format!(" (max_concurrent_pairs {c})"))
                .unwrap_or_default(),
            r.child_wall_s.unwrap_or(f64::NAN),
            r.contact_passes,
            r.ghl_requests,
            r.ghl_writes,
            r.busiest_10s_all_locations,
            r.hotspot_requests,
            r.hotspot_locations_unread,
            r.threads_at_end.map_or("?".into(), |t| t.to_string()),
        );
        if r.revoked.pairs > 0 {
            println!(
                "  revoked: {} pair(s), {} failed alone (finished runs, all failed), {} contacts written to them; reason: {}",
                r.revoked.pairs,
                r.revoked.failed_alone,
                r.revoked.contacts,
                r.revoked.reason.as_deref().unwrap_or("none recorded"),
            );
        }
        if r.added > 0 {
            println!(
                "  added by SIGHUP: {} pair(s), every one's first pass finished {:.1} s after the signal, same process",
                r.added,
                r.added_first_pass_s.unwrap_or(f64::NAN),
            );
        }
    }
}
