//! `run`: the daemon (DESIGN.md §8). Every pair of the installation runs as in a daemon of its
//! own ([`pair`]): one scheduler job per entry of its `[schedule]`; each run of a job is one
//! reconcile pass of that pair over that job's kinds.
//!
//! - **One process per state file.** A pair's state lock is taken before anything else and held
//!   for as long as the pair runs here, so a second `run` or `sync` on that state is refused at
//!   once (exit 3, [`super::EXIT_LOCKED`]) instead of waiting or interleaving writes. In the
//!   single-pair form a state that cannot be opened stops the start, as it always did; with
//!   `[[pairs]]` it stops only its pair, whose next tick tries again (unless every pair's state
//!   is locked: another daemon runs this installation, exit 3).
//! - **Passes never overlap.** A pair's scheduler skips a tick whose previous run of the pair is
//!   still going and, with its `exclusive` lock, runs the pair's passes of different jobs one at
//!   a time: they share the pair's state, clients and GHL rate limit. Across pairs, at most
//!   `[run] max_concurrent_pairs` passes run at once ([`gate`]).
//! - **HotspotSystem is read once per tick.** The passes of all pairs that one scheduler second
//!   starts share their HotspotSystem reads ([`rounds`]): a location several pairs read is
//!   listed once for them.
//! - **Failures are contained.** A pass that fails or panics is recorded (its run row, and the
//!   scheduler's stats and log, under the pair's name) and the next tick runs as usual; no pair
//!   waits for another.
//! - **SIGHUP reloads the file.** An added pair starts; a removed one stops after its current
//!   pass; a changed one restarts with its new settings after its current pass; a file that no
//!   longer loads is logged and the running configuration stays ([`reload`]).
//! - **SIGTERM / SIGINT.** No new pass starts; the running passes get the stop flag, so they
//!   finish the writes in flight, commit their state, defer the rest and record their runs. A
//!   pass still reading a slow API after [`STOP_GRACE`] is dropped by `run_pass` (equivalent to
//!   a crash, which the create journal makes safe) and its run is recorded as aborted, so the
//!   process exits 0 within [`SHUTDOWN_GRACE`] plus a moment.
//! - **Webhooks.** With `[webhooks] listen`, the daemon also serves the webhook receiver; an
//!   event queued for a pair wakes that pair's pass at once ([`wake`]).
//! - **Bounded passes.** A pass that runs out of `[sync] pass_budget_secs` stops the same way,
//!   and the scheduler counts it as failed; the next tick runs as usual.

mod gate;
mod ghl_inbox;
mod pair;
mod reload;
mod rounds;
mod wake;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::join_all;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{Cli, RunArgs};
use crate::config::ScheduleJob;
use crate::config::UnknownPair;
use crate::config::{Form, Installation};
use crate::dashboard;
use crate::model::Kind;
use crate::reconcile::pass::{PassOptions, STOP_GRACE};
use crate::schedule::{ScheduleError, Scheduler};
use crate::secret::InsecureFiles;
use crate::store::StoreError;

use self::gate::PassGate;
use self::pair::{Control, Launch, PairDaemon, pair_life};
use self::reload::{Changes, check_daemon_mode};
use self::rounds::Rounds;
use self::wake::PairInboxes;
use super::sync::IMPLEMENTED;
use super::{EXIT_CONFIG, EXIT_OK};

/// How long shutdown waits for the running passes. Kept under 10 s so that the default stop
/// timeouts of service managers (systemd: 90 s, Docker: 10 s) never escalate to SIGKILL, and
/// over [`STOP_GRACE`], so that a pass dropped by it still records its run first.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
const _: () = assert!(STOP_GRACE.as_secs() < SHUTDOWN_GRACE.as_secs());

/// Where the running configuration came from, to read it again on SIGHUP the same way, and
/// the pair `--pair` named, if any: then the daemon runs that pair alone.
pub struct ConfigSource {
    path: PathBuf,
    insecure_files: InsecureFiles,
    pair: Option<String>,
}

impl ConfigSource {
    pub fn of(cli: &Cli) -> ConfigSource {
        ConfigSource {
            path: cli.config.clone(),
            insecure_files: if cli.allow_insecure_secret_files {
                InsecureFiles::Warn
            } else {
                InsecureFiles::Refuse
            },
            pair: cli.pair.clone(),
        }
    }

    fn load(&self) -> anyhow::Result<Installation> {
        let inst = Installation::load_with(&self.path, false, self.insecure_files)?;
        Ok(self.selected(&inst)?)
    }

    /// The installation with the pairs `--pair` selects: all of them without it.
    fn selected(&self, inst: &Installation) -> Result<Installation, UnknownPair> {
        let pairs = inst
            .select(self.pair.as_deref())?
            .into_iter()
            .cloned()
            .collect();
        Ok(Installation {
            pairs,
            ..inst.clone()
        })
    }
}

/// The kinds a schedule entry covers and whether it is a full rescan; `None` when this build
/// reconciles none of them yet.
pub fn job_pass_options(job: ScheduleJob) -> Option<PassOptions> {
    let (kinds, full): (BTreeSet<Kind>, bool) = match job {
        ScheduleJob::Full => (IMPLEMENTED.iter().copied().collect(), true),
        ScheduleJob::Pass => (IMPLEMENTED.iter().copied().collect(), false),
        ScheduleJob::Contacts => (only_if_implemented(Kind::Contact), false),
        ScheduleJob::Notes => (only_if_implemented(Kind::Note), false),
        ScheduleJob::Tasks => (only_if_implemented(Kind::Task), false),
        ScheduleJob::Businesses => (only_if_implemented(Kind::Business), false),
        ScheduleJob::Appointments => (only_if_implemented(Kind::Appointment), false),
    };
    (!kinds.is_empty()).then_some(PassOptions {
        kinds,
        dry_run: false,
        full,
        limit: None,
        // The daemon runs unattended: its output is a log, never a terminal to draw on.
        progress: None,
        scope: Default::default(),
    })
}

fn only_if_implemented(kind: Kind) -> BTreeSet<Kind> {
    IMPLEMENTED.iter().copied().filter(|k| *k == kind).collect()
}

pub async fn run(inst: &Installation, source: ConfigSource, args: &RunArgs) -> anyhow::Result<u8> {
    let inst = &source.selected(inst)?;
    if let Err(e) = check_daemon_mode(inst) {
        eprintln!("error: {e}");
        return Ok(EXIT_CONFIG);
    }
    if let Some(listen) = args.listen {
        dashboard::check_listen(listen, args.allow_remote)?;
    }
    let across = Arc::new(AcrossPairs {
        gate: PassGate::new(inst.max_concurrent_pairs),
        rounds: Rounds::default(),
    });
    // Every pair's schedule first: a bad one is a configuration error before any state is
    // touched.
    let mut ready = Vec::new();
    for pair in &inst.pairs {
        let daemon = Arc::new(PairDaemon::new(
            pair.clone(),
            inst.form,
            Arc::clone(&across),
        ));
        match daemon.scheduler() {
            Ok(scheduler) => ready.push((daemon, scheduler)),
            // The configuration validates cron expressions with the same parser; this is the
            // safety net, reported as the configuration error it is.
            Err(ScheduleError::InvalidCron { job, cron }) => {
                let of_pair = match inst.form {
                    Form::Single => String::new(),
                    Form::Pairs => format!(" pair {:?}:", daemon.name()),
                };
                eprintln!(
                    "error: {}:{of_pair} key `schedule.{job}`: invalid cron expression `{cron}`",
                    inst.source_path.display()
                );
                return Ok(EXIT_CONFIG);
            }
            Err(e) => return Err(e).context("cannot set up the schedule"),
        }
    }
    open_states(inst.form, &ready)?;

    // Handlers are installed before the first job can start, so a signal is never missed
    // (or, worse, handled by the default action that kills mid-write).
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    // What the dashboard shows follows the reloads.
    let (published, installations) = watch::channel(inst.clone());
    let inboxes = Arc::new(PairInboxes::default());
    let mut pairs = Pairs {
        across,
        inboxes: Arc::clone(&inboxes),
        current: inst.clone(),
        published,
        running: BTreeMap::new(),
        retiring: Vec::new(),
    };
    for (daemon, mut scheduler) in ready {
        scheduler
            .start()
            .await
            .context("cannot start the scheduler")?;
        pairs.spawn(daemon, scheduler, Launch::Started);
    }
    match inst.form {
        Form::Single => tracing::info!(
            state = %inst.pairs[0].config.state.path.display(),
            pid = std::process::id(),
            "daemon running; SIGTERM or SIGINT stops it, SIGHUP reloads the configuration"
        ),
        Form::Pairs => tracing::info!(
            pairs = inst.pairs.len(),
            max_concurrent_pairs = inst.max_concurrent_pairs,
            pid = std::process::id(),
            "daemon running; SIGTERM or SIGINT stops it, SIGHUP reloads the configuration"
        ),
    }

    // The dashboard in the daemon's own process (one process to supervise, its /healthz the
    // daemon's): it reads each pair's state as `serve` would, beside the passes that write it.
    let (dashboard_stop, dashboard_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut dashboard = args.listen.map(|listen| {
        let (allow_remote, max_age) = (
            args.allow_remote,
            args.health_max_age_secs.map(Duration::from_secs),
        );
        tokio::spawn(async move {
            let shutdown = async {
                let _ = dashboard_stopped.await;
            };
            dashboard::serve_following(installations, listen, allow_remote, max_age, shutdown).await
        })
    });

    // The webhook receiver, beside the passes it wakes: `[webhooks]` is the installation's,
    // as the first pair has it (every pair inherits the top level's).
    let (hooks_stop, hooks_stopped) = tokio::sync::oneshot::channel::<()>();
    let hooks_cfg = inst.pairs[0].config.webhooks.clone();
    let mut hooks = hooks_cfg.listen.map(|listen| {
        let inbox = crate::webhooks::Inboxes {
            hotspot: inboxes.clone(),
            ghl: inboxes.clone(),
        };
        tokio::spawn(async move {
            let shutdown = async {
                let _ = hooks_stopped.await;
            };
            crate::webhooks::serve(listen, &hooks_cfg, inbox, shutdown).await
        })
    });

    let ended = loop {
        tokio::select! {
            _ = term.recv() => break Ok("SIGTERM"),
            _ = int.recv() => break Ok("SIGINT"),
            _ = hup.recv() => pairs.reload(&source),
            served = async {
                match dashboard.as_mut() {
                    Some(served) => served.await,
                    None => std::future::pending().await,
                }
            } => break Err(match served {
                Ok(Ok(())) => anyhow::anyhow!("the dashboard stopped"),
                Ok(Err(e)) => e,
                Err(e) => anyhow::anyhow!("the dashboard failed: {e}"),
            }),
            received = async {
                match hooks.as_mut() {
                    Some(received) => received.await,
                    None => std::future::pending().await,
                }
            } => break Err(match received {
                Ok(Ok(())) => anyhow::anyhow!("the webhook receiver stopped"),
                Ok(Err(e)) => e.into(),
                Err(e) => anyhow::anyhow!("the webhook receiver failed: {e}"),
            }),
        }
    };
    match &ended {
        Ok(signal) => tracing::warn!(
            signal,
            "stop requested: no new run; the running one finishes its in-flight writes"
        ),
        // A daemon whose health endpoint is gone would look dead to its supervisor while it
        // writes on: it stops as on SIGTERM, and says why.
        Err(e) => tracing::error!(
            error = format!("{e:#}"),
            "a listener of the daemon stopped; the daemon stops too"
        ),
    }
    let _ = dashboard_stop.send(());
    let _ = hooks_stop.send(());
    pairs.terminate().await;
    tracing::info!("daemon stopped");
    ended.map(|_| EXIT_OK)
}

/// Opens every pair's state. In the single-pair form a failure is the process's, as it always
/// was; with `[[pairs]]` it is its pair's (logged; its next tick tries again), unless every
/// pair's state is locked: then another daemon runs this very installation.
fn open_states(form: Form, ready: &[(Arc<PairDaemon>, Scheduler)]) -> anyhow::Result<()> {
    let mut locked = None;
    let mut all_locked = true;
    for (daemon, _) in ready {
        let Err(e) = daemon.open() else {
            all_locked = false;
            continue;
        };
        if form == Form::Single {
            return Err(e);
        }
        tracing::error!(
            pair = %daemon.name(),
            error = format!("{e:#}"),
            "state cannot be opened; the pair's next tick tries again"
        );
        let is_locked = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<StoreError>(),
                Some(StoreError::Locked { .. })
            )
        });
        all_locked &= is_locked;
        if is_locked && locked.is_none() {
            locked = Some(e);
        }
    }
    match locked {
        Some(e) if all_locked => Err(e),
        _ => Ok(()),
    }
}

/// What the pairs of one daemon share: the bound on the passes running at once, and the rounds
/// of HotspotSystem reads of the passes that start on the same tick.
struct AcrossPairs {
    gate: PassGate,
    rounds: Rounds,
}

/// The pairs the daemon runs, and those on their way out.
struct Pairs {
    across: Arc<AcrossPairs>,
    /// The pairs as the webhook receiver reaches them.
    inboxes: Arc<PairInboxes>,
    /// The configuration the running pairs come from.
    current: Installation,
    /// `current`, for the dashboard to follow.
    published: watch::Sender<Installation>,
    running: BTreeMap<String, Running>,
    /// Removed or replaced by a reload, finishing their current pass.
    retiring: Vec<Retiring>,
}

struct Running {
    control: watch::Sender<Control>,
    task: JoinHandle<()>,
}

struct Retiring {
    name: String,
    control: watch::Sender<Control>,
    /// `None` once a successor of the same name waits on it instead.
    task: Option<JoinHandle<()>>,
}

impl Pairs {
    fn spawn(&mut self, daemon: Arc<PairDaemon>, scheduler: Scheduler, launch: Launch) {
        let (control, rx) = watch::channel(Control::Run);
        let name = daemon.name().to_string();
        self.inboxes.set(Arc::clone(&daemon));
        let task = tokio::spawn(pair_life(daemon, scheduler, launch, rx));
        self.running.insert(name, Running { control, task });
    }

    /// SIGHUP: reads the file again and applies what changed. Decided whole before any pair is
    /// touched: a file that does not load, or a pair whose schedule cannot be set up, leaves
    /// every pair as it runs.
    fn reload(&mut self, source: &ConfigSource) {
        tracing::info!(config = %source.path.display(), "SIGHUP: reloading the configuration");
        let new = match source.load() {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "configuration not reloaded; the running configuration stays"
                );
                return;
            }
        };
        if let Err(e) = check_daemon_mode(&new) {
            tracing::error!(error = %e, "configuration not reloaded; the running configuration stays");
            return;
        }
        let changes = Changes::between(&self.current, &new);
        let mut starting = Vec::new();
        for pair in new
            .pairs
            .iter()
            .filter(|p| changes.added.contains(&p.name) || changes.changed.contains(&p.name))
        {
            let daemon = Arc::new(PairDaemon::new(
                pair.clone(),
                new.form,
                Arc::clone(&self.across),
            ));
            match daemon.scheduler() {
                Ok(scheduler) => starting.push((daemon, scheduler)),
                Err(e) => {
                    tracing::error!(pair = %pair.name, error = %e, "configuration not reloaded; the running configuration stays");
                    return;
                }
            }
        }

        self.retiring.retain(|r| !r.control.is_closed());
        for name in &changes.removed {
            self.inboxes.remove(name);
        }
        if format!("{:?}", self.current.pairs[0].config.webhooks)
            != format!("{:?}", new.pairs[0].config.webhooks)
        {
            tracing::warn!(
                "[webhooks] changed; the receiver keeps its settings until the next start"
            );
        }
        for name in changes.removed.iter().chain(&changes.changed) {
            if let Some(old) = self.running.remove(name) {
                old.control.send_replace(Control::Retire);
                self.retiring.push(Retiring {
                    name: name.clone(),
                    control: old.control,
                    task: Some(old.task),
                });
            }
        }
        for (daemon, scheduler) in starting {
            // The task of the pair's previous settings (changed now, or removed by an earlier
            // reload and still finishing) lets go of the state first.
            let predecessor = self
                .retiring
                .iter_mut()
                .rev()
                .find(|r| r.name == daemon.name() && r.task.is_some())
                .and_then(|r| r.task.take());
            self.spawn(daemon, scheduler, Launch::After(predecessor));
        }
        self.across.gate.resize(new.max_concurrent_pairs);
        if changes.is_empty() {
            tracing::info!(
                pairs = changes.unchanged.len(),
                "configuration reloaded; no pair changed"
            );
        } else {
            tracing::info!(
            added = ?changes.added,
            removed = ?changes.removed,
            changed = ?changes.changed,
            unchanged = changes.unchanged.len(),
            "configuration reloaded"
            );
        }
        self.published.send_replace(new.clone());
        self.current = new;
    }

    /// SIGTERM / SIGINT: every pair, running or retiring, stops within [`SHUTDOWN_GRACE`].
    async fn terminate(self) {
        let mut tasks = Vec::new();
        // Kept until the end: a retiring pair watches its channel for the stop signal.
        let mut controls = Vec::new();
        for (_, running) in self.running {
            running.control.send_replace(Control::Terminate);
            tasks.push(running.task);
            controls.push(running.control);
        }
        for retiring in self.retiring {
            retiring.control.send_replace(Control::Terminate);
            tasks.extend(retiring.task);
            controls.push(retiring.control);
        }
        // Each pair waits SHUTDOWN_GRACE at most; the moment more covers their logging.
        let all = join_all(tasks);
        if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), all)
            .await
            .is_err()
        {
            tracing::warn!("pairs still stopping after the grace period; exiting");
        }
        drop(controls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_schedule_entry_covers_its_kind_and_full_covers_all_implemented() {
        let contacts = job_pass_options(ScheduleJob::Contacts).expect("contacts implemented");
        assert_eq!(contacts.kinds, BTreeSet::from([Kind::Contact]));
        assert!(!contacts.full && !contacts.dry_run);

        let full = job_pass_options(ScheduleJob::Full).expect("full");
        assert_eq!(full.kinds, IMPLEMENTED.iter().copied().collect());
        assert!(full.full);

        for (job, kind) in [
            (ScheduleJob::Notes, Kind::Note),
            (ScheduleJob::Tasks, Kind::Task),
            (ScheduleJob::Businesses, Kind::Business),
            (ScheduleJob::Appointments, Kind::Appointment),
        ] {
            match job_pass_options(job) {
                Some(o) => assert_eq!(o.kinds, BTreeSet::from([kind])),
                None => assert!(!IMPLEMENTED.contains(&kind)),
            }
        }
    }
}
