//! `run`, the daemon, as the real binary against the emulators started in this process: no
//! self-overlap and one pass at a time (read back from the run records in the state database),
//! SIGTERM mid-sync (exit 0 quickly, then a `sync` finishes the job with no duplicate and
//! nothing missing), and one process per state file (exit 3 naming the state file).

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hotspot_ghl_sync::sandbox::faults::FaultKnobs;
use hotspot_ghl_sync::sandbox::ghl::GhlOptions;
use hotspot_ghl_sync::sandbox::hotspot::HotspotOptions;
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::{RunRecord, RunStatus, Store};
use support::daemon::Daemon;
use support::{ANCHOR as ID_FIELD, BIN, Out, TempDir};

struct Env {
    sandbox: Sandbox,
    dir: TempDir,
    config: PathBuf,
}

async fn sandbox(customers: usize, ghl_latency: Duration, hotspot_latency: Duration) -> Sandbox {
    Sandbox::start(SandboxOptions {
        seed: SeedSpec {
            seed: 11,
            locations: 1,
            customers,
            subscribers: 2,
            subscribers_also_customers: 1,
            transactions: 2,
        },
        hotspot: HotspotOptions {
            latency: hotspot_latency,
            ..HotspotOptions::default()
        },
        ghl: GhlOptions {
            latency: ghl_latency,
            rate_limit: 2_000,
            ..GhlOptions::default()
        },
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox")
}

impl Env {
    /// `schedule` is the body of the `[schedule]` table; entries it leaves out are `off`.
    fn new(name: &str, sandbox: Sandbox, schedule: &[(&str, &str)]) -> Env {
        let dir = TempDir::new(name);
        let config = dir.0.join("config.toml");
        let env = Env {
            sandbox,
            dir,
            config,
        };
        env.write_config(schedule);
        env
    }

    fn write_config(&self, schedule: &[(&str, &str)]) {
        let sched = support::schedule_lines(
            &[
                "contacts",
                "notes",
                "tasks",
                "businesses",
                "appointments",
                "full",
            ],
            schedule,
        );
        let text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_T_HOTSPOT_KEY"

[ghl]
base_url = "{ghl}"
location_id = "{loc}"
auth = "private_token"
token_env = "HGS_T_GHL_TOKEN"
hotspot_id_field = "{ID_FIELD}"
max_concurrency = 2

[http]
timeout_secs = 5
max_attempts = 2
max_elapsed_secs = 5

[schedule]
{sched}"#,
            state = self.state_path().display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
            loc = self.sandbox.ghl.location_id(),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn state_path(&self) -> PathBuf {
        self.dir.0.join("state.db")
    }

    fn command(&self, args: &[&str]) -> Command {
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

    async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::process::Command::from(self.command(args))
            .output()
            .await
            .expect("run the binary");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn spawn_daemon(&self) -> Daemon {
        let log = self.dir.0.join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = self
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("spawn the daemon");
        Daemon { child, log }
    }

    /// Waits until the daemon holds the state lock (its pid is in the lock file).
    async fn wait_for_lock(&self, d: &Daemon) {
        let lock = hotspot_ghl_sync::store::lock_path(&self.state_path());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::fs::read_to_string(&lock).is_ok_and(|t| t.trim() == d.pid().to_string())
                && d.log().contains("daemon running")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the daemon never took the lock; log:\n{}", d.log());
    }

    fn runs(&self) -> Vec<RunRecord> {
        let store = Store::open(self.state_path()).expect("open state");
        let mut runs = store.runs(10_000).expect("runs");
        runs.reverse();
        runs
    }

    fn ghl_contacts(&self) -> usize {
        self.sandbox.ghl.with_state(|s| s.contacts.len())
    }
}

/// HotspotSystem ids on the GHL contacts (from the id custom field), with how many contacts
/// carry each, and the number of contacts without one.
fn ids_in_ghl(sandbox: &Sandbox) -> (BTreeMap<String, usize>, usize) {
    sandbox.ghl.with_state(|s| {
        let field = s.custom_field(ID_FIELD).expect("id field").id.clone();
        let mut ids = BTreeMap::new();
        let mut without = 0;
        for c in s.contacts.values() {
            match c
                .custom_fields
                .iter()
                .find(|(id, _)| *id == field)
                .and_then(|(_, v)| v.as_str())
            {
                Some(v) => *ids.entry(v.to_string()).or_insert(0) += 1,
                None => without += 1,
            }
        }
        (ids, without)
    })
}

fn overlap(a: &RunRecord, b: &RunRecord) -> bool {
    let (a_end, b_end) = (a.finished_at.unwrap(), b.finished_at.unwrap());
    a.started_at < b_end && b.started_at < a_end
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_runs_never_overlap_and_every_job_keeps_running() {
    // Every answer is slow, so one pass takes well over a second: longer than both intervals.
    let sb = sandbox(8, Duration::from_millis(250), Duration::from_millis(250)).await;
    let env = Env::new(
        "overlap",
        sb,
        &[("contacts", "*/1 * * * * *"), ("full", "*/2 * * * * *")],
    );
    let mut d = env.spawn_daemon();
    env.wait_for_lock(&d).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    d.terminate();
    let status = d.wait_exit(Duration::from_secs(10)).await;
    let log = d.log();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "daemon did not exit 0 after SIGTERM; log:\n{log}"
    );

    let runs = env.runs();
    assert!(
        runs.iter()
            .all(|r| r.finished_at.is_some() && r.status != RunStatus::Running),
        "every run is recorded as finished: {runs:#?}"
    );
    let mut durations = Vec::new();
    for r in &runs {
        durations.push((r.finished_at.unwrap() - r.started_at).num_milliseconds());
    }
    assert!(
        durations.iter().filter(|ms| **ms > 1_000).count() >= 2,
        "the emulators are slow enough that runs outlast the 1 s interval: {durations:?}"
    );
    assert!(
        log.contains("tick skipped"),
        "ticks that found the previous run going were skipped; log:\n{log}"
    );
    // When each job runs next is said at start and after its runs, in plain text: the log
    // goes to a file, so it carries no colour codes.
    let next: Vec<&str> = log.lines().filter(|l| l.contains("next run at")).collect();
    for job in ["contacts", "full"] {
        assert!(
            next.iter().any(|l| l.contains(&format!("job={job}"))),
            "next run of {job} logged; log:\n{log}"
        );
    }
    assert!(
        next.len() > 2,
        "next run logged after runs too; log:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI escape in a redirected log:\n{log}"
    );
    // The cron engine's own INFO lines stay below the default level.
    assert!(
        !log.contains("Job creator created") && !log.contains("tokio_cron_scheduler"),
        "{log}"
    );

    // Per kind (and, the runs sharing one state, across kinds too): no two runs overlap.
    let mut by_kind: BTreeMap<String, Vec<&RunRecord>> = BTreeMap::new();
    for r in &runs {
        for k in &r.kinds {
            by_kind.entry(k.as_str().to_string()).or_default().push(r);
        }
    }
    assert!(by_kind.contains_key("contact"), "{runs:#?}");
    for (kind, rs) in &by_kind {
        for (i, a) in rs.iter().enumerate() {
            for b in &rs[i + 1..] {
                assert!(
                    !overlap(a, b),
                    "{kind}: runs {} and {} overlap: {a:#?} {b:#?}",
                    a.id,
                    b.id
                );
            }
        }
    }
    for (i, a) in runs.iter().enumerate() {
        for b in &runs[i + 1..] {
            assert!(!overlap(a, b), "runs {} and {} overlap", a.id, b.id);
        }
    }

    // Both jobs ran, more than once: a busy `contacts` job did not starve `full`.
    let full = runs.iter().filter(|r| r.full).count();
    let contacts = runs.iter().filter(|r| !r.full).count();
    assert!(
        full >= 1 && contacts >= 1 && full + contacts >= 3,
        "full runs {full}, contacts runs {contacts}; log:\n{log}"
    );
    assert!(
        runs.iter()
            .filter(|r| r.status != RunStatus::Aborted)
            .all(|r| r.status == RunStatus::Succeeded),
        "{runs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_sync_exits_zero_and_the_next_sync_finishes_without_duplicates() {
    const CUSTOMERS: usize = 40;
    // Reference: the same guests synced in one uninterrupted pass.
    let reference = Env::new(
        "reference",
        sandbox(CUSTOMERS, Duration::ZERO, Duration::ZERO).await,
        &[],
    );
    let o = reference.run(&["sync"]).await;
    assert_eq!(o.code, 0, "{}", o.show());
    let (want_ids, want_without) = ids_in_ghl(&reference.sandbox);
    assert!(want_ids.len() > 10, "{want_ids:?}");
    assert!(want_ids.values().all(|n| *n == 1));

    let env = Env::new(
        "sigterm",
        sandbox(CUSTOMERS, Duration::from_millis(120), Duration::ZERO).await,
        &[("contacts", "*/1 * * * * *")],
    );
    let mut d = env.spawn_daemon();
    // Wait until the first pass is writing.
    let deadline = Instant::now() + Duration::from_secs(15);
    while env.ghl_contacts() < 3 {
        assert!(
            Instant::now() < deadline,
            "no contact written; log:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.terminate();
    let signalled = Instant::now();
    let status = d.wait_exit(Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    let log = d.log();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit after SIGTERM (waited {took:?}); log:\n{log}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let written = env.ghl_contacts();
    assert!(
        written < want_ids.len() + want_without,
        "the pass was stopped part-way ({written} contacts written); log:\n{log}"
    );

    // The interrupted run is recorded, as stopped early.
    let runs = env.runs();
    let last = runs.last().expect("a run");
    assert_eq!(last.status, RunStatus::Aborted, "{runs:#?}");
    assert!(last.finished_at.is_some());
    let notes = last.summary["notes"].to_string();
    assert!(notes.contains("Stopped"), "{notes}");

    env.sandbox.ghl.set_faults(FaultKnobs::default());
    let o = env.run(&["sync"]).await;
    assert_eq!(o.code, 0, "{}", o.show());
    let (ids, without) = ids_in_ghl(&env.sandbox);
    let dup: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "duplicates: {dup:?}");
    assert_eq!(ids, want_ids, "each eligible customer exactly once");
    assert_eq!(without, want_without);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_daemons_state_exits_3_naming_the_state_file() {
    let env = Env::new(
        "locked",
        sandbox(3, Duration::ZERO, Duration::ZERO).await,
        // Far in the future: the daemon sits idle, holding the state.
        &[("contacts", "0 0 1 1 *")],
    );
    let mut d = env.spawn_daemon();
    env.wait_for_lock(&d).await;
    let state = env.state_path().display().to_string();
    for args in [&["sync"][..], &["run"][..]] {
        let started = Instant::now();
        let o = env.run(args).await;
        assert_eq!(o.code, 3, "{args:?}: {}", o.show());
        assert!(o.stderr.contains(&state), "{args:?}: {}", o.show());
        assert!(
            o.stderr.contains(&format!("pid {}", d.pid())),
            "{}",
            o.show()
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused at once"
        );
    }
    assert_eq!(env.ghl_contacts(), 0, "the refused sync wrote nothing");

    // SIGINT (Ctrl-C) stops it like SIGTERM.
    d.signal("INT");
    let status = d.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", d.log());
    // The lock went with the daemon: a sync now runs.
    let o = env.run(&["sync"]).await;
    assert_eq!(o.code, 0, "{}", o.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_cron_expression_is_a_configuration_error_naming_the_key() {
    let env = Env::new(
        "bad-cron",
        sandbox(1, Duration::ZERO, Duration::ZERO).await,
        &[("contacts", "*/5 * * * *"), ("full", "61 * * * *")],
    );
    let o = env.run(&["run"]).await;
    assert_eq!(o.code, 2, "{}", o.show());
    assert!(o.stderr.contains("schedule.full"), "{}", o.show());
    assert!(!env.state_path().exists(), "nothing started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_stuck_on_a_slow_api_is_interrupted_and_recorded_within_the_grace() {
    // Each HotspotSystem answer takes 30 s (and the client waits that long): the pass is still
    // listing when the stop signal comes, and would be for a long time.
    let env = Env::new(
        "stuck",
        sandbox(3, Duration::ZERO, Duration::from_secs(30)).await,
        &[("contacts", "*/1 * * * * *")],
    );
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("timeout_secs = 5\n", "timeout_secs = 60\n")
        .replace("max_elapsed_secs = 5\n", "max_elapsed_secs = 120\n");
    std::fs::write(&env.config, text).unwrap();
    let mut d = env.spawn_daemon();
    env.wait_for_lock(&d).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log().contains("run started") {
        assert!(Instant::now() < deadline, "no run started: {}", d.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.terminate();
    let signalled = Instant::now();
    let status = d.wait_exit(Duration::from_secs(10)).await;
    let log = d.log();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "after {:?}; log:\n{log}",
        signalled.elapsed()
    );
    let runs = env.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].status, RunStatus::Aborted);
    assert!(runs[0].finished_at.is_some());
    let notes = runs[0].summary["notes"].to_string();
    assert!(notes.contains("still running"), "{notes}");
    assert_eq!(env.ghl_contacts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pass_is_recorded_and_the_daemon_keeps_going() {
    let env = Env::new(
        "fails",
        sandbox(4, Duration::ZERO, Duration::ZERO).await,
        &[("contacts", "*/1 * * * * *")],
    );
    // HotspotSystem answers 500 to everything: the listing, hence the pass, fails.
    env.sandbox.hotspot.set_faults(FaultKnobs {
        p500: 1.0,
        ..FaultKnobs::default()
    });
    let mut d = env.spawn_daemon();
    let wait_log = |needle: &'static str, d: &Daemon| {
        let deadline = Instant::now() + Duration::from_secs(15);
        let log = d.log.clone();
        async move {
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains(needle) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "never logged {needle:?}:\n{text}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_log("run failed", &d).await;
    env.sandbox.hotspot.set_faults(FaultKnobs::default());
    wait_log("run finished", &d).await;
    d.terminate();
    let status = d.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", d.log());

    let runs = env.runs();
    let first_ok = runs
        .iter()
        .position(|r| r.status == RunStatus::Succeeded)
        .expect("a run succeeded once the API was back");
    assert!(
        runs[..first_ok]
            .iter()
            .any(|r| r.status == RunStatus::Failed),
        "{runs:#?}"
    );
    assert!(env.ghl_contacts() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_out_of_its_time_budget_is_recorded_aborted_and_the_next_pass_runs_in_full() {
    // 300 ms per GHL answer, 2 writes in flight, 40 guests: a first pass needs ~6 s of creates.
    let env = Env::new(
        "budget",
        sandbox(40, Duration::from_millis(300), Duration::ZERO).await,
        &[("contacts", "*/1 * * * * *")],
    );
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str("\n[sync]\npass_budget_secs = 2\n");
    std::fs::write(&env.config, text).unwrap();
    let mut d = env.spawn_daemon();
    let wait_for = |what: &'static str, ok: &dyn Fn(&[RunRecord]) -> bool, d: &Daemon| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let runs = if env.state_path().exists() {
                env.runs()
            } else {
                Vec::new()
            };
            if ok(&runs) {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {runs:#?}\nlog:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let runs = wait_for(
        "a run stopped by its budget",
        &|runs| runs.iter().any(|r| r.status == RunStatus::Aborted),
        &d,
    );
    let stopped = runs
        .iter()
        .find(|r| r.status == RunStatus::Aborted)
        .unwrap();
    let notes = stopped.summary["notes"].to_string();
    assert!(notes.contains("time budget"), "{notes}");
    let started_with = env.ghl_contacts();

    // The API is quick again: the next pass is not held back by the last one's stop.
    env.sandbox.ghl.set_faults(FaultKnobs::default());
    wait_for(
        "a later run that succeeded",
        &|runs| {
            runs.iter()
                .any(|r| r.id > stopped.id && r.status == RunStatus::Succeeded)
        },
        &d,
    );
    assert!(env.ghl_contacts() > started_with);
    d.terminate();
    let status = d.wait_exit(Duration::from_secs(10)).await;
    let log = d.log();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    // The scheduler counts the stopped pass as failed, saying why.
    assert!(
        log.contains("stopped: time budget (sync.pass_budget_secs) spent"),
        "{log}"
    );
    let (ids, _) = ids_in_ghl(&env.sandbox);
    assert!(ids.values().all(|n| *n == 1), "no duplicate: {ids:?}");
}

/// Which reading of GHL's undocumented `X-RateLimit-Daily-Reset` the emulator plays.
#[derive(Debug, Clone, Copy)]
enum ResetHeader {
    /// Sent, as milliseconds until the emulator's (short) day ends and the quota comes back.
    UntilDayEnds,
    /// Not sent: the client must check the figure again on its own.
    Absent,
}

/// Waits (12 s at most) until a run recorded in the state database is `done`.
async fn wait_run(env: &Env, d: &Daemon, what: &str, done: impl Fn(&RunRecord) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(12);
    while !env.runs().iter().any(&done) {
        assert!(
            Instant::now() < deadline,
            "{what}: {:#?}\nlog:\n{}",
            env.runs(),
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A long-running daemon reaches the daily-quota reserve part-way through its first pass. Once
/// GHL's day turns, its later passes finish the deferred writes without a restart: the figure
/// at the reserve expires (at the reset the header names, or after the configured recheck when
/// there is none) and one request learns the new one.
async fn daemon_resumes_after_the_daily_quota_comes_back(reading: ResetHeader) {
    const CUSTOMERS: usize = 24;
    let day = Duration::from_secs(4);
    let sb = Sandbox::start(SandboxOptions {
        seed: SeedSpec {
            seed: 13,
            locations: 1,
            customers: CUSTOMERS,
            subscribers: 2,
            subscribers_also_customers: 1,
            transactions: 2,
        },
        ghl: GhlOptions {
            rate_limit: 2_000,
            daily_quota: 100_000,
            daily_period: matches!(reading, ResetHeader::UntilDayEnds).then_some(day),
            daily_reset_header: matches!(reading, ResetHeader::UntilDayEnds),
            ..GhlOptions::default()
        },
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox");
    // Fewer requests left today than the first pass needs.
    sb.ghl.set_daily_remaining(18);
    let env = Env::new("quota", sb, &[("contacts", "*/1 * * * * *")]);
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    // With the header, only its reset time may lift the reserve within this test: the recheck
    // stays at an hour. Without it, a 1 s recheck stands in for the hour.
    let recheck = match reading {
        ResetHeader::UntilDayEnds => 3600,
        ResetHeader::Absent => 1,
    };
    text = text.replace(
        "max_concurrency = 2\n",
        &format!("max_concurrency = 2\ndaily_reserve = 5\ndaily_quota_recheck_secs = {recheck}\n"),
    );
    std::fs::write(&env.config, text).unwrap();

    let mut d = env.spawn_daemon();
    wait_run(&env, &d, "no pass stopped at the reserve", |r| {
        r.status == RunStatus::Aborted
    })
    .await;
    let at_reserve = env.ghl_contacts();
    if let ResetHeader::Absent = reading {
        // The figure is rechecked every second but stays at the reserve until the day turns.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        env.sandbox.ghl.reset_daily_quota();
    }
    // A pass that starts after the one that stopped completes every deferred write.
    let stopped = chrono::Utc::now();
    wait_run(
        &env,
        &d,
        "no pass completed after the quota came back",
        |r| r.started_at > stopped && r.status == RunStatus::Succeeded,
    )
    .await;
    d.terminate();
    let status = d.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", d.log());

    let log = d.log();
    assert!(log.contains("daily quota reserve reached"), "{log}");
    assert!(log.contains("daily quota reserve lifted"), "{log}");
    let written = env.ghl_contacts();
    assert!(written > at_reserve, "{written} > {at_reserve}");
    let (ids, _) = ids_in_ghl(&env.sandbox);
    assert!(ids.values().all(|n| *n == 1), "duplicates: {ids:?}");
    // Nothing was left for a fresh process.
    let o = env.run(&["sync"]).await;
    assert_eq!(o.code, 0, "{}", o.show());
    assert_eq!(env.ghl_contacts(), written, "{}", o.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_resumes_at_the_daily_reset_the_server_names() {
    daemon_resumes_after_the_daily_quota_comes_back(ResetHeader::UntilDayEnds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_rechecks_the_daily_quota_when_no_reset_is_named() {
    daemon_resumes_after_the_daily_quota_comes_back(ResetHeader::Absent).await;
}
