//! One pair inside the daemon, from its start to its stop: its state (locked for as long as
//! the pair runs in this process), its clients (its own GHL limiter and daily quota), its own
//! scheduler of its own `[schedule]` (so a tick whose previous pass of this pair still runs is
//! skipped, and its jobs take turns on its state), and its stop flag.
//!
//! Nothing here reaches another pair: a pair whose state cannot be opened, whose token is
//! revoked or whose API is down fails its own runs, logged under its name, and the others go on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::AcrossPairs;
use super::wake::{self, WAKE_CRON, WAKE_JOB, Wake};
use super::{SHUTDOWN_GRACE, job_pass_options};
use crate::commands::sync::open_locked_state;
use crate::config::Config;
use crate::config::{Form, Pair};
use crate::connect;
use crate::ghl::GhlClient;
use crate::hotspot::{HotspotClient, Wants};
use crate::reconcile::new_records::{Tick, run_new};
use crate::reconcile::pass::{Interruption, PassOptions, PassResult, STOP_GRACE, run_pass};
use crate::report::RunSummary;
use crate::schedule::{
    JobContext, JobOutcome, ScheduleError, ScheduledJob, Scheduler, SchedulerOptions, job_fn,
};
use crate::store::{RunStatus, Store};

/// What the supervisor asks of a running pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    Run,
    /// Removed or changed by a reload: no new pass; the running one finishes as it would.
    Retire,
    /// SIGTERM / SIGINT: no new pass; the running one stops at its next safe point.
    Terminate,
}

/// What a pass of the pair runs on, open once and kept: the state (with its lock) and the
/// clients, whose limiters and token source live as long as the pair does.
struct PairRuntime {
    store: Mutex<Store>,
    hs: HotspotClient,
    ghl: GhlClient,
}

impl PairRuntime {
    /// The state lock first, before any network or state work, so that a second process on
    /// this state is refused at once.
    fn open(cfg: &Config) -> anyhow::Result<PairRuntime> {
        let lock = Store::lock(&cfg.state.path)?;
        let mut store = open_locked_state(cfg)?;
        // Released with the store, whichever task drops it last.
        store.keep_lock(lock);
        Ok(PairRuntime {
            store: Mutex::new(store),
            hs: connect::hotspot_client(cfg)?,
            ghl: connect::ghl_client(cfg)?,
        })
    }
}

/// One pair as the daemon runs it.
pub(super) struct PairDaemon {
    name: String,
    cfg: Config,
    /// `pair=NAME` on everything the pair's scheduler logs. None in the single-pair form,
    /// whose log reads as it always has.
    span: tracing::Span,
    /// Whether the pass span names the pair (every form but the single-pair one).
    named: bool,
    /// Opened at start, or at the first tick that manages to when the start could not.
    runtime: Mutex<Option<Arc<PairRuntime>>>,
    /// The stop flag of [`run_pass`]: set once, on the stop signal.
    stop: AtomicBool,
    across: Arc<AcrossPairs>,
    /// Set when `[webhooks] listen` is: events wake the pair's pass ([`wake`]).
    wake: Option<Arc<Wake>>,
}

impl PairDaemon {
    pub fn new(pair: Pair, form: Form, across: Arc<AcrossPairs>) -> PairDaemon {
        let named = form != Form::Single;
        let span = if named {
            tracing::info_span!("pair", pair = %pair.name)
        } else {
            tracing::Span::none()
        };
        let wake = pair
            .config
            .webhooks
            .enabled()
            .then(|| Arc::new(Wake::default()));
        PairDaemon {
            name: pair.name,
            wake,
            cfg: pair.config,
            span,
            named,
            runtime: Mutex::new(None),
            stop: AtomicBool::new(false),
            across,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its `hotspot.locations` (empty: every location of the account).
    pub fn locations(&self) -> &[String] {
        &self.cfg.hotspot.locations
    }

    /// Its configuration (the GHL receiver reads its GHL location and deletion policy).
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn wake(&self) -> Option<&Arc<Wake>> {
        self.wake.as_ref()
    }

    /// `f` on the pair's state if it is open in this process now; never opens it (the webhook
    /// receiver must not take a state a reloading predecessor still holds).
    pub fn with_open_store<R>(&self, f: impl FnOnce(&Store) -> R) -> Option<R> {
        let rt = self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let store = rt.store.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&store))
    }

    /// The pair's state and clients, opening them if they are not yet.
    pub fn open(&self) -> anyhow::Result<()> {
        self.runtime().map(|_| ())
    }

    fn runtime(&self) -> anyhow::Result<Arc<PairRuntime>> {
        let mut slot = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rt) = slot.as_ref() {
            return Ok(Arc::clone(rt));
        }
        let rt = Arc::new(PairRuntime::open(&self.cfg)?);
        *slot = Some(Arc::clone(&rt));
        Ok(rt)
    }

    /// The pair's scheduler: one job per `[schedule]` entry this build reconciles.
    pub fn scheduler(self: &Arc<Self>) -> Result<Scheduler, ScheduleError> {
        let _in_span = self.span.enter();
        let mut jobs = Vec::new();
        for (job, cron) in self.cfg.schedule.jobs() {
            let Some(opts) = job_pass_options(job) else {
                tracing::info!(
                    job = job.as_str(),
                    "not reconciled by this build yet; schedule entry ignored"
                );
                continue;
            };
            let d = Arc::clone(self);
            jobs.push(ScheduledJob::new(
                job.as_str(),
                cron.expr.as_str(),
                job_fn(move |ctx| pass_job(Arc::clone(&d), Work::Pass(opts.clone()), ctx)),
            ));
        }
        // The fast lane takes turns on the state with the other jobs, like any of them.
        if let Some(cron) = &self.cfg.schedule.new {
            let d = Arc::clone(self);
            jobs.push(ScheduledJob::new(
                "new",
                cron.expr.as_str(),
                job_fn(move |ctx| pass_job(Arc::clone(&d), Work::New, ctx)),
            ));
        }
        if let Some(wake) = &self.wake {
            let (d, wake) = (Arc::clone(self), Arc::clone(wake));
            jobs.push(ScheduledJob::new(
                WAKE_JOB,
                WAKE_CRON,
                job_fn(move |ctx| {
                    let ended = wake.run_guard();
                    // A GHL event's whole pass is an ordinary incremental pass, which covers
                    // the pending HotspotSystem events too; else the events' targeted pass.
                    let work = if wake.take_whole() {
                        Work::Pass(wake::whole_pass_options())
                    } else {
                        Work::Events(Arc::clone(&wake))
                    };
                    let run = pass_job(Arc::clone(&d), work, ctx);
                    async move {
                        // Counted as ended once the run is, however it ends.
                        let _ended = ended;
                        run.await
                    }
                }),
            ));
        }
        if jobs.is_empty() {
            tracing::warn!(
                "no schedule entry names a kind this build reconciles; idle until stopped"
            );
        }
        // Exclusive: the pair's jobs share its state, its clients and its GHL limits.
        Scheduler::new(jobs, SchedulerOptions::default())?.in_span(self.span.clone())
    }

    /// How long a retiring pair's running pass may take to end by itself: its budget, then
    /// the moment it takes to record its run.
    fn retire_grace(&self) -> Duration {
        Duration::from_secs(self.cfg.sync.pass_budget_secs) + SHUTDOWN_GRACE
    }

    /// Lets go of the pair's state (and its lock) and clients, or has the pass still holding
    /// them do so when it ends. Explicit, because the cron engine may outlive its jobs' owners
    /// and with them this daemon.
    fn close(&self) {
        self.runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// How a pair task begins.
pub(super) enum Launch {
    /// Its scheduler was started by the caller (the daemon's start, where a failure to start
    /// is the process's).
    Started,
    /// Started here, once the task running the pair's previous settings (if any) has ended
    /// and let go of the state.
    After(Option<JoinHandle<()>>),
}

/// A pair from its start to its stop, as one task: waits for what `control` asks, then stops
/// its scheduler the way that asks for.
pub(super) async fn pair_life(
    daemon: Arc<PairDaemon>,
    mut scheduler: Scheduler,
    launch: Launch,
    mut control: watch::Receiver<Control>,
) {
    if let Launch::After(predecessor) = launch {
        if let Some(previous) = predecessor {
            let _ = previous.await;
        }
        if *control.borrow() != Control::Run {
            return;
        }
        if let Err(e) = daemon.open() {
            daemon.span.in_scope(|| {
                tracing::error!(
                    error = format!("{e:#}"),
                    "state cannot be opened; the pair's next tick tries again"
                )
            });
        }
        if let Err(e) = scheduler.start().await {
            daemon.span.in_scope(|| {
                tracing::error!(error = %e, "the pair's scheduler cannot start; the pair does not run")
            });
            return;
        }
        daemon.span.in_scope(|| tracing::info!("pair started"));
    }

    let asked = tokio::select! {
        asked = control.wait_for(|c| *c != Control::Run) => match asked {
            Ok(c) => *c,
            Err(_) => Control::Terminate,
        },
        // Never ends by itself: webhook events run the pair's wake job until the pair stops.
        () = wake::serve_wakes(&daemon, &scheduler) => Control::Terminate,
    };
    let still_running = match asked {
        Control::Retire => {
            // A stop signal during the wait still stops the pass at its next safe point.
            let d = Arc::clone(&daemon);
            let mut told = control.clone();
            let on_terminate = tokio::spawn(async move {
                if told.wait_for(|c| *c == Control::Terminate).await.is_ok() {
                    d.request_stop();
                }
            });
            let still = scheduler.shutdown(daemon.retire_grace()).await;
            on_terminate.abort();
            still
        }
        Control::Terminate | Control::Run => {
            daemon.request_stop();
            scheduler.shutdown(SHUTDOWN_GRACE).await
        }
    };
    daemon.span.in_scope(|| {
        if !still_running.is_empty() {
            tracing::warn!(jobs = ?still_running, "exiting with runs still going; the next start marks them aborted");
        }
        for s in scheduler.stats() {
            tracing::info!(
                job = %s.name,
                runs = s.runs_started,
                succeeded = s.succeeded,
                failed = s.failed,
                panicked = s.panicked,
                skipped_overlap = s.skipped_overlap,
                skipped_lock_timeout = s.skipped_lock_timeout,
                "job totals"
            );
        }
    });
    daemon.close();
    if asked == Control::Retire {
        daemon.span.in_scope(|| tracing::info!("pair stopped"));
    }
}

/// What a job runs: a pass over its kinds, or a tick of the fast lane.
enum Work {
    Pass(PassOptions),
    New,
    /// A targeted pass over the records of the pending webhook events.
    Events(Arc<Wake>),
}

/// One run of a job: one pass (which stops itself on the stop flag or its time budget), or
/// one tick of the fast lane (a pass over what is new, when anything is).
///
/// The pass runs on a blocking-pool thread that drives it with the runtime's handle: the
/// compiler cannot prove [`run_pass`]'s future `Send` (a higher-ranked lifetime in the
/// applier's stream, rust-lang/rust#102211), and the scheduler spawns job futures. Driving it
/// with [`Handle::block_on`] keeps it on the same runtime (timers, connection pools) without
/// that requirement. A panic in the pass is re-raised here so the scheduler records it.
async fn pass_job(d: Arc<PairDaemon>, work: Work, ctx: JobContext) -> Result<JobOutcome, String> {
    if ctx.is_shutting_down() {
        return Ok(JobOutcome::stopped_early("not started: shutting down"));
    }
    // A state that could not be opened at start (locked by another process, corrupt, its
    // directory missing) is tried again at each tick; until then only this pair waits.
    let rt = d.runtime().map_err(|e| {
        format!(
            "state {} cannot be opened: {e:#}",
            d.cfg.state.path.display()
        )
    })?;
    // Pairs whose ticks fell on the same second reach this point together: the pass joins its
    // tick's round of shared HotspotSystem reads before it waits its turn, so that what the
    // first passes of the tick read is kept for it.
    // The client is bound to the round here too: what the round keeps, it keeps for the
    // readers of the account their clients read.
    let tick = d.across.rounds.join(
        ctx.ticked_at(),
        Wants::from_config(&d.cfg.hotspot.locations),
    );
    let hs = rt.hs.clone().with_shared_reads(tick.reads.clone());
    let Some(permit) = d.across.gate.enter(&ctx).await else {
        return Ok(JobOutcome::stopped_early("not started: shutting down"));
    };
    let span = if d.named {
        tracing::info_span!(parent: None, "pass", pair = %d.name, job = ctx.job_name())
    } else {
        tracing::Span::none()
    };
    let handle = Handle::current();
    let joined = tokio::task::spawn_blocking(move || {
        // Both end with the pass: its place among the running passes, and its share of the
        // tick's round (the round ends with the tick's last pass).
        let _permit = permit;
        let _tick = tick;
        handle.block_on(
            async {
                match work {
                    Work::Pass(opts) => {
                        // Only a pair that receives webhooks has a queue to look at.
                        let covered = d
                            .wake
                            .as_ref()
                            .and_then(|_| wake::events_before_pass(&rt.store, &opts));
                        let result =
                            run_pass(&d.cfg, &rt.store, &hs, &rt.ghl, &opts, &d.stop).await;
                        wake::settle_events(&rt.store, covered, &result, d.cfg.report.keep_days);
                        describe(&rt, ctx.job_name(), result)
                    }
                    Work::New => match run_new(&d.cfg, &rt.store, &hs, &rt.ghl, &d.stop).await {
                        Ok(Tick::Idle {
                            locations,
                            initialised,
                        }) => Ok(JobOutcome::done(format!(
                            "new: idle at {locations} location(s){}",
                            if initialised > 0 {
                                format!("; {initialised} cursor(s) set from the newest records")
                            } else {
                                String::new()
                            }
                        ))),
                        Ok(Tick::Ran { pass }) => describe(&rt, ctx.job_name(), Ok(pass)),
                        Err(e) => Err(format!("{e:#}")),
                    },
                    Work::Events(wake) => {
                        match wake::run_events(&d.cfg, &rt.store, &hs, &rt.ghl, &wake, &d.stop)
                            .await
                        {
                            Ok(run) => match run.targeted.pass {
                                Some(pass) => describe(&rt, ctx.job_name(), Ok(pass)),
                                None => Ok(JobOutcome::done(format!(
                                    "webhooks: {} event(s) pending, {} processed; no record to write yet{}",
                                    run.pending,
                                    run.processed,
                                    if run.unnumbered > 0 {
                                        format!("; {} without a numeric id are left to the regular passes", run.unnumbered)
                                    } else {
                                        String::new()
                                    }
                                ))),
                            },
                            Err(e) => Err(format!("{e:#}")),
                        }
                    }
                }
            }
            .instrument(span),
        )
    })
    .await;
    match joined {
        Ok(outcome) => outcome,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(format!("pass task did not finish: {e}")),
    }
}

/// The scheduler's view of a finished pass: a one-line summary, stopped early when the run
/// was aborted, an error when it failed, some records failed or it ran out of time.
fn describe(
    rt: &PairRuntime,
    job: &str,
    result: anyhow::Result<PassResult>,
) -> Result<JobOutcome, String> {
    let r = result.map_err(|e| format!("{e:#}"))?;
    let summary = {
        let store = rt.store.lock().unwrap_or_else(|p| p.into_inner());
        store
            .run(r.run_id)
            .ok()
            .flatten()
            .and_then(|run| serde_json::from_value::<RunSummary>(run.summary).ok())
            .unwrap_or_default()
    };
    let counts: Vec<String> = summary
        .kinds
        .iter()
        .map(|(kind, c)| {
            format!(
                "{kind}: {} created, {} adopted, {} updated, {} deleted, {} failed, {} deferred",
                c.created, c.adopted, c.updated, c.deleted, c.failed, c.deferred
            )
        })
        .collect();
    let line = format!(
        "{job} run {} {}; {}",
        r.run_id,
        r.status.as_str(),
        counts.join("; ")
    );
    if r.interrupted == Some(Interruption::BudgetSpent) {
        return Err(format!(
            "{line}; stopped: time budget (sync.pass_budget_secs) spent"
        ));
    }
    match r.status {
        RunStatus::Partial | RunStatus::Failed => Err(line),
        RunStatus::Aborted => Ok(JobOutcome::stopped_early(line)),
        RunStatus::Succeeded | RunStatus::Running => Ok(JobOutcome::done(line)),
    }
}

const _: () = assert!(STOP_GRACE.as_secs() < SHUTDOWN_GRACE.as_secs());
