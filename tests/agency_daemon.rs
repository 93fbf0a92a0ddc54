//! `run` with `[[pairs]]`: one daemon process, several GHL sub-accounts, each pair with its own
//! HotspotSystem locations, state file, lock, clients and schedule. Through the real binary
//! against the emulators started in this process: each pair's guests land in its own
//! sub-account only; a pair with a revoked token fails alone; a pair whose state is locked at
//! start syncs at a later tick; SIGHUP adds, removes and (with a broken file) keeps pairs
//! without a restart; `[run] max_concurrent_pairs` bounds the passes running at once, read back
//! from the run records of every pair's state file; pairs that tick together read a
//! HotspotSystem location they share once.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hotspot_ghl_sync::sandbox::ghl::GhlOptions;
use hotspot_ghl_sync::sandbox::seed::{SeedSpec, Spread};
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::{RunRecord, RunStatus, Store};
use support::daemon::Daemon;
use support::{ANCHOR, BIN, Out, TempDir};

const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];
/// HotspotSystem locations per pair.
const PER_PAIR: usize = 2;
const WAIT: Duration = Duration::from_secs(30);

struct Agency {
    sandbox: Sandbox,
    dir: TempDir,
    config: PathBuf,
    /// HotspotSystem location ids; pair `i` reads `PER_PAIR` of them from `i * PER_PAIR`.
    hotspot_locations: Vec<String>,
    /// GHL location ids, one per pair, in the order of [`NAMES`].
    ghl: Vec<String>,
    /// Each GHL location's Private Integration Token.
    tokens: Vec<String>,
}

impl Agency {
    async fn start(name: &str, ghl_latency: Duration) -> Agency {
        let mut ghl = GhlOptions::default().with_locations(NAMES.len());
        ghl.rate_limit = 100_000;
        ghl.latency = ghl_latency;
        let sandbox = Sandbox::start(SandboxOptions {
            seed: SeedSpec {
                seed: 16,
                locations: NAMES.len() * PER_PAIR,
                customers: 36,
                subscribers: 0,
                subscribers_also_customers: 0,
                transactions: 0,
            },
            spread: Spread::Even,
            ghl,
            ..SandboxOptions::default()
        })
        .await
        .expect("sandbox starts");
        let hotspot_locations = sandbox
            .hotspot
            .with_data(|d| d.locations.iter().map(|l| l.id.clone()).collect());
        let ghl = sandbox.ghl.location_ids();
        let tokens = ghl
            .iter()
            .map(|l| sandbox.ghl.token_for(l).expect("a PIT per location"))
            .collect();
        let dir = TempDir::new(name);
        std::fs::create_dir_all(dir.path("state")).unwrap();
        let config = dir.path("config.toml");
        Agency {
            sandbox,
            dir,
            config,
            hotspot_locations,
            ghl,
            tokens,
        }
    }

    /// A `[[pairs]]` file with the pairs `pairs` (indexes into [`NAMES`]), `run` as the body
    /// of `[run]`, and `extra` appended to the top level.
    fn write_config(&self, pairs: &[usize], run: &str, extra: &str) {
        self.write_config_with(pairs, run, extra, &[]);
    }

    /// As [`Agency::write_config`], with `own` appended to the pairs it names.
    fn write_config_with(&self, pairs: &[usize], run: &str, extra: &str, own: &[(usize, &str)]) {
        let mut text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_T_HS_KEY"
rate_limit = 10000

[ghl]
base_url = "{ghl}"
hotspot_id_field = "{ANCHOR}"
rate_limit = 50000
max_concurrency = 4

[http]
timeout_secs = 5
max_attempts = 2
max_elapsed_secs = 5

[schedule]
contacts = "*/1 * * * * *"
notes = "off"
tasks = "off"
businesses = "off"
appointments = "off"
full = "off"
{extra}
[run]
{run}
"#,
            state = self.dir.path("state/sync.db").display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
        );
        for &i in pairs {
            let locations: Vec<String> = self
                .locations_of(i)
                .iter()
                .map(|l| format!("\"{l}\""))
                .collect();
            text.push_str(&format!(
                r#"
[[pairs]]
name = "{name}"
hotspot_locations = [{locations}]
state = "{state}"
[pairs.ghl]
location_id = "{location}"
token_env = "HGS_T_GHL_TOKEN_{i}"
"#,
                name = NAMES[i],
                locations = locations.join(", "),
                state = self.state_path(i).display(),
                location = self.ghl[i],
            ));
            for (_, text_of_pair) in own.iter().filter(|(p, _)| *p == i) {
                text.push_str(text_of_pair);
            }
        }
        std::fs::write(&self.config, text).unwrap();
    }

    /// The same settings in the single-pair form: pair 0's locations, sub-account and token at
    /// the top level, its state in `[state] path`.
    fn write_single(&self, schedule_contacts: &str) {
        self.write_config(&[0], "", "");
        let text = std::fs::read_to_string(&self.config).unwrap();
        let top = &text[..text.find("[run]").unwrap()];
        let locations: Vec<String> = self
            .locations_of(0)
            .iter()
            .map(|l| format!("\"{l}\""))
            .collect();
        let single = top
            .replace(
                &format!("path = \"{}\"", self.dir.path("state/sync.db").display()),
                &format!("path = \"{}\"", self.state_path(0).display()),
            )
            .replace(
                "rate_limit = 10000\n",
                &format!(
                    "rate_limit = 10000\nlocations = [{}]\n",
                    locations.join(", ")
                ),
            )
            .replace(
                "[ghl]\n",
                &format!(
                    "[ghl]\nlocation_id = \"{}\"\ntoken_env = \"HGS_T_GHL_TOKEN_0\"\n",
                    self.ghl[0]
                ),
            )
            .replace(
                "contacts = \"*/1 * * * * *\"",
                &format!("contacts = \"{schedule_contacts}\""),
            );
        std::fs::write(&self.config, single).unwrap();
    }

    fn locations_of(&self, pair: usize) -> &[String] {
        &self.hotspot_locations[pair * PER_PAIR..(pair + 1) * PER_PAIR]
    }

    fn state_path(&self, pair: usize) -> PathBuf {
        self.dir.path(&format!("state/{}.db", NAMES[pair]))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("HGS_CONFIG")
            .env_remove("RUST_LOG")
            .env("HGS_T_HS_KEY", self.sandbox.hotspot_api_key());
        for (i, token) in self.tokens.iter().enumerate() {
            cmd.env(format!("HGS_T_GHL_TOKEN_{i}"), token);
        }
        cmd
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::process::Command::from(self.command(args))
            .output()
            .await
            .expect("run the binary");
        Out::from_output(out)
    }

    fn spawn_daemon(&self) -> Daemon {
        self.spawn_daemon_with(&["run"])
    }

    fn spawn_daemon_with(&self, args: &[&str]) -> Daemon {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Daemon::spawn(
            self.command(args),
            self.dir.path(&format!("daemon-{n}.log")),
        )
    }

    /// The runs in pair `pair`'s state file, oldest first; none while it does not exist.
    fn runs(&self, pair: usize) -> Vec<RunRecord> {
        if !self.state_path(pair).exists() {
            return Vec::new();
        }
        let Ok(store) = Store::open(self.state_path(pair)) else {
            return Vec::new();
        };
        let mut runs = store.runs(10_000).unwrap_or_default();
        runs.reverse();
        runs
    }

    /// Waits until pair `pair` has a run for which `ok` holds; returns it.
    async fn wait_run(
        &self,
        d: &Daemon,
        pair: usize,
        what: &str,
        ok: impl Fn(&RunRecord) -> bool,
    ) -> RunRecord {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(r) = self.runs(pair).into_iter().find(|r| ok(r)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {what}: {:#?}\nlog:\n{}",
                NAMES[pair],
                self.runs(pair),
                d.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// HotspotSystem ids of the customers at pair `pair`'s locations.
    fn customers_of(&self, pair: usize) -> BTreeSet<String> {
        let locations = self.locations_of(pair).to_vec();
        self.sandbox.hotspot.with_data(|d| {
            d.customers
                .iter()
                .filter(|c| locations.contains(&c.location_id))
                .map(|c| c.id.clone())
                .collect()
        })
    }

    /// The anchors (HotspotSystem ids) on pair `pair`'s sub-account's contacts, one entry per
    /// contact.
    fn anchors_in(&self, pair: usize) -> Vec<String> {
        self.sandbox.ghl.location(&self.ghl[pair]).with_state(|s| {
            let Some(field) = s.custom_field(ANCHOR).map(|f| f.id.clone()) else {
                return Vec::new();
            };
            s.contacts
                .values()
                .filter_map(|c| {
                    let (_, v) = c.custom_fields.iter().find(|(id, _)| *id == field)?;
                    v.as_str().map(str::to_string)
                })
                .collect()
        })
    }

    /// Pair `pair`'s sub-account holds its own guests, each once, as many as its first
    /// successful run created, and no other pair's.
    fn assert_synced_alone(&self, pair: usize, run: &RunRecord) {
        let anchors = self.anchors_in(pair);
        let distinct: BTreeSet<String> = anchors.iter().cloned().collect();
        assert!(!anchors.is_empty(), "{}: nothing synced", NAMES[pair]);
        assert_eq!(
            distinct.len(),
            anchors.len(),
            "{}: a guest twice",
            NAMES[pair]
        );
        let own = self.customers_of(pair);
        assert!(
            distinct.is_subset(&own),
            "{}: guests of another pair: {:?}",
            NAMES[pair],
            distinct.difference(&own).collect::<Vec<_>>()
        );
        let created = run.summary["kinds"]["contact"]["created"].as_u64();
        assert_eq!(
            created,
            Some(anchors.len() as u64),
            "{}: {:#?}",
            NAMES[pair],
            run.summary
        );
    }
}

fn succeeded(r: &RunRecord) -> bool {
    r.status == RunStatus::Succeeded
}

async fn stop(d: &mut Daemon) {
    let code = d.stop().await;
    assert_eq!(code, Some(0), "exit after SIGTERM; log:\n{}", d.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pair_lands_in_its_own_sub_account_and_a_revoked_pair_fails_alone() {
    let agency = Agency::start("agency-revoked", Duration::ZERO).await;
    // gamma's sub-account revoked its integration: every request of gamma is answered 401.
    agency.sandbox.ghl.location(&agency.ghl[2]).revoke_tokens();
    agency.write_config(&[0, 1, 2], "max_concurrent_pairs = 3", "");
    let mut d = agency.spawn_daemon();

    let alpha = agency.wait_run(&d, 0, "a succeeded run", succeeded).await;
    let beta = agency.wait_run(&d, 1, "a succeeded run", succeeded).await;
    let failed = agency
        .wait_run(&d, 2, "a failed run, recorded", |r| {
            r.status == RunStatus::Failed && r.finished_at.is_some()
        })
        .await;
    let line = d.wait_for_line(&["pair=gamma", "run failed"], WAIT).await;
    assert!(
        line.contains("401") || line.to_lowercase().contains("auth"),
        "{line}"
    );
    // The others go on after gamma's failure: later passes of theirs run too.
    let after = failed.finished_at.unwrap();
    for pair in [0, 1] {
        agency
            .wait_run(&d, pair, "a run after gamma's failure", |r| {
                r.started_at > after && succeeded(r)
            })
            .await;
    }
    stop(&mut d).await;

    agency.assert_synced_alone(0, &alpha);
    agency.assert_synced_alone(1, &beta);
    assert!(agency.anchors_in(2).is_empty(), "gamma wrote nothing");
    let log = d.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("run failed") && !l.contains("pair=gamma")),
        "only gamma failed; log:\n{log}"
    );
    // The secrets stay out of the log.
    for token in &agency.tokens {
        assert!(!log.contains(token.as_str()), "a token in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_pairs_and_a_broken_file_keeps_the_running_ones() {
    let agency = Agency::start("agency-sighup", Duration::ZERO).await;
    agency.write_config(&[0, 1], "", "");
    let mut d = agency.spawn_daemon();
    agency.wait_run(&d, 0, "a succeeded run", succeeded).await;
    agency.wait_run(&d, 1, "a succeeded run", succeeded).await;
    assert!(agency.runs(2).is_empty());

    // A third pair, added to the file: it starts without a restart.
    agency.write_config(&[0, 1, 2], "", "");
    d.signal("HUP");
    let line = d
        .wait_for_line(&["configuration reloaded", "gamma"], WAIT)
        .await;
    assert!(line.contains("added"), "{line}");
    let gamma = agency.wait_run(&d, 2, "a succeeded run", succeeded).await;
    agency.assert_synced_alone(2, &gamma);
    assert!(d.child.try_wait().unwrap().is_none(), "the same process");

    // A broken file: logged with the key and line, and every pair keeps running.
    agency.write_config(&[0, 1, 2], "", "[sync]\npass_budget_secs = \"soon\"\n");
    let broken_at = Utc::now();
    d.signal("HUP");
    let line = d.wait_for_line(&["configuration not reloaded"], WAIT).await;
    assert!(line.contains("sync.pass_budget_secs"), "{line}");
    let line_no = agency.config.to_str().map(|p| format!("{p}:")).unwrap();
    assert!(line.contains(&line_no), "names the file and line: {line}");
    for pair in 0..3 {
        agency
            .wait_run(&d, pair, "a run after the broken reload", |r| {
                r.started_at > broken_at && succeeded(r)
            })
            .await;
    }

    // In one reload: beta removed (it stops after its current pass and lets go of its state),
    // alpha changed to a schedule that does not fire within the test (it restarts with it).
    let yearly = (0, "[pairs.schedule]\ncontacts = \"0 0 1 1 *\"\n");
    agency.write_config_with(&[0, 2], "", "", &[yearly]);
    d.signal("HUP");
    let line = d
        .wait_for_line(&["configuration reloaded", "removed=[\"beta\"]"], WAIT)
        .await;
    assert!(line.contains("beta") && line.contains("alpha"), "{line}");
    d.wait_for_line(&["pair=beta", "pair stopped"], WAIT).await;
    let deadline = Instant::now() + WAIT;
    let lock = loop {
        match Store::lock(agency.state_path(1)) {
            Ok(lock) => break lock,
            Err(e) => {
                assert!(Instant::now() < deadline, "beta's state still locked: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    drop(lock);
    let removed_at = Utc::now();
    let deadline = Instant::now() + WAIT;
    while d.count_lines(&["pair=alpha", "pair started"]) == 0 {
        assert!(
            Instant::now() < deadline,
            "alpha never restarted:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restarted_at = Utc::now();
    agency
        .wait_run(&d, 2, "a run of gamma after the reload", |r| {
            r.started_at > restarted_at && succeeded(r)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        agency.runs(1).iter().all(|r| r.started_at < removed_at),
        "no beta run after its removal"
    );
    assert!(
        agency.runs(0).iter().all(|r| r.started_at < restarted_at),
        "alpha runs on its new, yearly, schedule: {:#?}",
        agency.runs(0)
    );
    stop(&mut d).await;
}

/// How many of `runs` were going at once, at most.
fn most_at_once(runs: &[(DateTime<Utc>, DateTime<Utc>)]) -> usize {
    let mut edges: Vec<(DateTime<Utc>, i32)> = Vec::new();
    for (start, end) in runs {
        edges.push((*start, 1));
        edges.push((*end, -1));
    }
    // An end sorts before a start at the same instant: back to back is not at once.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_passes_than_max_concurrent_pairs_run_at_once() {
    // Each GHL answer takes 100 ms: a first pass of a pair takes a second or more, so the
    // three pairs ticking every second want to run side by side.
    let agency = Agency::start("agency-limit", Duration::from_millis(100)).await;
    agency.write_config(&[0, 1, 2], "max_concurrent_pairs = 2", "");
    let mut d = agency.spawn_daemon();
    for pair in 0..3 {
        agency
            .wait_run(&d, pair, "a succeeded run", succeeded)
            .await;
    }
    stop(&mut d).await;

    let mut all = Vec::new();
    for (pair, name) in NAMES.iter().enumerate() {
        for r in agency.runs(pair) {
            let end = r
                .finished_at
                .unwrap_or_else(|| panic!("{name}: run {} unfinished", r.id));
            all.push((r.started_at, end));
        }
    }
    let most = most_at_once(&all);
    assert_eq!(
        most, 2,
        "at most two at once, and two did run together: {all:#?}"
    );
    assert!(
        d.count_lines(&["previous run still in progress; tick skipped"]) > 0,
        "each pair skips its own ticks while its pass runs; log:\n{}",
        d.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_that_tick_together_read_a_location_they_share_once() {
    let agency = Agency::start("agency-shared-reads", Duration::ZERO).await;
    // beta reads alpha's first location too. One pass at a time: beta's pass of a tick starts
    // only after alpha's has read everything, so only what the round kept can spare its reads.
    agency.write_config(&[0, 1], "max_concurrent_pairs = 1", "");
    let shared = agency.locations_of(0)[0].clone();
    let alpha_only = agency.locations_of(0)[1].clone();
    let beta_only = agency.locations_of(1).to_vec();
    let own = format!(
        "hotspot_locations = [\"{}\", \"{}\"]",
        beta_only[0], beta_only[1]
    );
    let text = std::fs::read_to_string(&agency.config).unwrap();
    assert!(text.contains(&own), "{text}");
    let with_shared = format!(
        "hotspot_locations = [\"{shared}\", \"{}\", \"{}\"]",
        beta_only[0], beta_only[1]
    );
    std::fs::write(&agency.config, text.replace(&own, &with_shared)).unwrap();

    let mut d = agency.spawn_daemon();
    for pair in 0..2 {
        agency
            .wait_run(&d, pair, "a fourth succeeded run", |r| {
                succeeded(r) && agency.runs(pair).iter().filter(|r| succeeded(r)).count() >= 4
            })
            .await;
    }
    stop(&mut d).await;

    let requests = agency.sandbox.hotspot.requests();
    let reads_of = |location: &str| {
        let path = format!("/locations/{location}/customers");
        requests.iter().filter(|r| r.path.ends_with(&path)).count()
    };
    // A location one pair reads is read on each of its passes. A pass reads its locations in
    // the account's order, where the shared one comes first: a pass cut short by the stop may
    // have read it and not its own, never the reverse. So, read alone by each
    // pair the shared location would be read at least as often as both pairs' own together.
    // Every tick both pairs start in (their first at least, usually all) spares one read.
    let (alone_alpha, alone_beta, together) = (
        reads_of(&alpha_only),
        reads_of(&beta_only[0]),
        reads_of(&shared),
    );
    println!(
        "customers reads: shared location {together}, alpha's own {alone_alpha}, beta's own {alone_beta}; runs: alpha {}, beta {}",
        agency.runs(0).len(),
        agency.runs(1).len()
    );
    assert!(
        alone_alpha >= 4 && alone_beta >= 4,
        "{alone_alpha} {alone_beta}"
    );
    assert!(
        together < alone_alpha + alone_beta,
        "pairs ticking together share their reads: the shared location read {together} times, \
         against {alone_alpha} + {alone_beta} for the locations read by one pair"
    );
    // Each sub-account holds each of its guests once, the shared location's included.
    for (pair, name) in NAMES.iter().enumerate().take(2) {
        let anchors = agency.anchors_in(pair);
        let distinct: BTreeSet<&String> = anchors.iter().collect();
        assert_eq!(distinct.len(), anchors.len(), "{name}: a guest twice");
    }
    let in_beta: BTreeSet<String> = agency.anchors_in(1).into_iter().collect();
    let shared_guests: BTreeSet<String> = agency.sandbox.hotspot.with_data(|data| {
        data.customers
            .iter()
            .filter(|c| c.location_id == shared)
            .map(|c| c.id.clone())
            .collect()
    });
    assert!(
        shared_guests.iter().any(|g| in_beta.contains(g)),
        "beta synced the shared location's guests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_whose_state_is_locked_at_start_syncs_at_a_later_tick() {
    let agency = Agency::start("agency-locked", Duration::ZERO).await;
    agency.write_config(&[0, 1], "", "");
    // Another process holds beta's state when the daemon starts.
    let held = Store::lock(agency.state_path(1)).expect("lock beta's state");
    let mut d = agency.spawn_daemon();
    let line = d
        .wait_for_line(&["beta", "state cannot be opened"], WAIT)
        .await;
    assert!(
        line.contains(&agency.state_path(1).display().to_string()),
        "{line}"
    );
    let alpha = agency.wait_run(&d, 0, "a succeeded run", succeeded).await;
    agency.assert_synced_alone(0, &alpha);
    assert!(agency.anchors_in(1).is_empty(), "beta waits for its state");

    // Released: beta's next tick opens it, in the same process.
    drop(held);
    let beta = agency.wait_run(&d, 1, "a succeeded run", succeeded).await;
    agency.assert_synced_alone(1, &beta);

    // A second daemon on the same file finds every pair's state taken: refused at once.
    let started = Instant::now();
    let second = agency.run(&["run"]).await;
    assert_eq!(second.code, 3, "{}", second.show());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        second.stderr.contains(&format!("pid {}", d.pid())),
        "{}",
        second.show()
    );
    stop(&mut d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_stops_only_its_pair() {
    let agency = Agency::start("agency-corrupt", Duration::ZERO).await;
    agency.write_config(&[0, 1], "", "");
    std::fs::write(
        agency.state_path(0),
        "not a database: a text file saved here by mistake\n".repeat(200),
    )
    .unwrap();
    let mut d = agency.spawn_daemon();
    d.wait_for_line(&["alpha", "state cannot be opened"], WAIT)
        .await;
    let beta = agency.wait_run(&d, 1, "a succeeded run", succeeded).await;
    agency.assert_synced_alone(1, &beta);
    // alpha is tried again at its ticks, and each time fails under its own name.
    d.wait_for_line(&["pair=alpha", "run failed", "cannot be opened"], WAIT)
        .await;
    assert!(agency.anchors_in(0).is_empty(), "alpha wrote nothing");
    let log = d.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("run failed") && !l.contains("pair=alpha")),
        "only alpha failed; log:\n{log}"
    );
    stop(&mut d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_single_pair_file_too() {
    let agency = Agency::start("agency-single", Duration::ZERO).await;
    agency.write_single("*/1 * * * * *");
    let mut d = agency.spawn_daemon();
    let first = agency.wait_run(&d, 0, "a succeeded run", succeeded).await;
    agency.assert_synced_alone(0, &first);

    // The same file again: nothing restarts, the passes go on.
    d.signal("HUP");
    d.wait_for_line(&["configuration reloaded; no pair changed"], WAIT)
        .await;
    let reloaded_at = Utc::now();
    agency
        .wait_run(&d, 0, "a run after the reload", |r| {
            r.started_at > reloaded_at && succeeded(r)
        })
        .await;

    // A schedule that does not fire within the test: the pair restarts with it.
    agency.write_single("0 0 1 1 *");
    d.signal("HUP");
    d.wait_for_line(&["pair started"], WAIT).await;
    let restarted_at = Utc::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        agency.runs(0).iter().all(|r| r.started_at < restarted_at),
        "the new schedule applies: {:#?}",
        agency.runs(0)
    );
    stop(&mut d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_pair_runs_that_pair_alone() {
    let agency = Agency::start("agency-one", Duration::ZERO).await;
    agency.write_config(&[0, 1], "", "");
    let unknown = agency.run(&["--pair", "nope", "run"]).await;
    assert_eq!(unknown.code, 2, "{}", unknown.show());
    assert!(unknown.stderr.contains("alpha, beta"), "{}", unknown.show());

    let mut d = agency.spawn_daemon_with(&["--pair", "beta", "run"]);
    let beta = agency.wait_run(&d, 1, "a succeeded run", succeeded).await;
    agency.assert_synced_alone(1, &beta);
    // alpha is another process's to run: its state is free and untouched.
    assert!(!agency.state_path(0).exists(), "alpha's state was opened");
    assert!(agency.anchors_in(0).is_empty());
    stop(&mut d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn most_at_once_counts_overlaps_not_neighbours() {
    let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
    assert_eq!(most_at_once(&[(t(0), t(2)), (t(2), t(4))]), 1);
    assert_eq!(most_at_once(&[(t(0), t(3)), (t(1), t(4)), (t(2), t(5))]), 3);
    assert_eq!(most_at_once(&[(t(0), t(3)), (t(1), t(2)), (t(4), t(5))]), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_listen_serves_the_dashboard_of_every_pair_follows_reloads_and_stops_with_the_daemon()
 {
    let agency = Agency::start("agency-listen", Duration::ZERO).await;
    agency.write_config(&[0, 1], "", "");
    let mut d = agency.spawn_daemon_with(&["run", "--listen", "127.0.0.1:0"]);
    let line = d
        .wait_for_line(&["Dashboard on http://"], Duration::from_secs(30))
        .await;
    let port: u16 = line
        .split("Dashboard on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    agency.wait_run(&d, 0, "a succeeded run", succeeded).await;
    agency.wait_run(&d, 1, "a succeeded run", succeeded).await;
    let (status, body) = support::dashboard::get_as(port, "127.0.0.1", "/api/pairs", "")
        .await
        .expect("the daemon's dashboard answers");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(body.split("\r\n\r\n").last().unwrap())
        .unwrap_or_else(|_| panic!("{body}"));
    let names: Vec<&str> = json
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"], "{body}");
    for pair in json.as_array().unwrap() {
        assert!(pair["last_run"].is_object(), "each pair has run: {body}");
    }

    // SIGHUP adds gamma and removes beta: the same listener's pages follow.
    agency.write_config(&[0, 2], "", "");
    d.signal("HUP");
    d.wait_for_line(&["configuration reloaded", "gamma"], WAIT)
        .await;
    agency.wait_run(&d, 2, "a succeeded run", succeeded).await;
    let pair_names = |body: &str| -> Vec<String> {
        let json: serde_json::Value = serde_json::from_str(body.split("\r\n\r\n").last().unwrap())
            .unwrap_or_else(|_| panic!("{body}"));
        json.as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = support::dashboard::get_as(port, "127.0.0.1", "/api/pairs", "")
        .await
        .expect("the dashboard answers after the reload");
    assert_eq!(status, 200, "{body}");
    assert_eq!(pair_names(&body), ["alpha", "gamma"], "{body}");
    let (status, body) = support::dashboard::get_as(port, "127.0.0.1", "/pairs/gamma/api/runs", "")
        .await
        .expect("gamma's pages");
    assert_eq!(status, 200, "{body}");
    let (status, _) = support::dashboard::get_as(port, "127.0.0.1", "/pairs/beta/", "")
        .await
        .expect("an answer for the removed pair");
    assert_eq!(status, 404, "a removed pair's pages are gone");

    stop(&mut d).await;
    // The dashboard ends with the daemon.
    assert!(
        support::dashboard::get_as(port, "127.0.0.1", "/healthz", "")
            .await
            .is_none(),
        "the dashboard outlived the daemon"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_a_remote_listen_without_allow_remote() {
    let agency = Agency::start("agency-listen-remote", Duration::ZERO).await;
    agency.write_config(&[0, 1], "", "");
    let out = agency.run(&["run", "--listen", "0.0.0.0:0"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(out.stderr.contains("--allow-remote"), "{}", out.show());
}
