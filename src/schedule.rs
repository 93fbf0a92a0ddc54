//! The daemon's job scheduler (the `run` command, DESIGN.md §8).
//!
//! Each job has a 6-field UTC cron expression (`sec min hour day month weekday`; the config layer
//! turns 5-field expressions into 6 by prepending `0`). Ticks come from `tokio-cron-scheduler`,
//! which fires a job's callback on every tick even when the previous run is still going, so this
//! module adds the guarantees the daemon needs on top of it:
//!
//! - **No self-overlap.** Each job has a "busy" mutex taken with `try_lock` when a tick arrives
//!   and held until its run ends. A tick that finds it taken is skipped, logged and counted.
//! - **One writer to the shared state.** With [`SchedulerOptions::exclusive`], every run also
//!   takes one global async mutex. A tick that finds another job holding it *waits* (so a
//!   `notes` tick that lands during a `contacts` pass still runs, just later), but at most
//!   [`SchedulerOptions::max_lock_wait`]; after that the run is skipped and counted. Because
//!   the waiting run already holds its job's busy mutex, further ticks of the same job are
//!   skipped as overlaps: there is at most one waiting run per job, never an unbounded queue.
//! - **Failures are contained.** A job body runs in its own task; an `Err` or a panic is
//!   recorded in [`JobStats`] and the scheduler keeps ticking.
//! - **Graceful shutdown.** [`Scheduler::shutdown`] stops starting runs, tells running ones
//!   through [`JobContext`] (so they can stop taking new work but finish in-flight writes),
//!   waits up to a grace period and names the jobs still running.
//! - **Whose jobs.** A daemon of many pairs runs one scheduler per pair; [`Scheduler::in_span`]
//!   puts every line the scheduler logs, and every run, in that pair's span.
//!
//! Time: the cron library polls the wall clock (`chrono::Utc::now`) every 500 ms, so tokio's
//! paused time does not drive it. The guard logic ([`Scheduler::trigger`]) is independent of the
//! cron library and is what paused-time tests exercise.

use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures_util::future::{BoxFuture, join_all};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tracing::Instrument;

/// What the scheduler knows about a job: its unique name and when it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub name: String,
    /// 6-field cron expression (`sec min hour day month weekday`), evaluated in UTC.
    pub cron: String,
}

/// A job's result when it returns normally.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobOutcome {
    /// One line for logs and `status`, e.g. "contacts: 3 created, 1 updated".
    pub summary: String,
    /// True when the job saw the shutdown signal and stopped before doing all its work.
    pub stopped_early: bool,
}

impl JobOutcome {
    pub fn done(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            stopped_early: false,
        }
    }

    pub fn stopped_early(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            stopped_early: true,
        }
    }
}

/// The body of a job: called once per run, returns the run's future.
pub type JobFn =
    Arc<dyn Fn(JobContext) -> BoxFuture<'static, Result<JobOutcome, String>> + Send + Sync>;

/// Wraps an async closure as a [`JobFn`], so callers write `job_fn(|ctx| async move { .. })`.
pub fn job_fn<F, Fut>(f: F) -> JobFn
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<JobOutcome, String>> + Send + 'static,
{
    Arc::new(move |ctx| Box::pin(f(ctx)))
}

/// A job to schedule: when ([`JobSpec`]) and what ([`JobFn`]).
#[derive(Clone)]
pub struct ScheduledJob {
    pub spec: JobSpec,
    pub body: JobFn,
}

impl ScheduledJob {
    pub fn new(name: impl Into<String>, cron: impl Into<String>, body: JobFn) -> Self {
        Self {
            spec: JobSpec {
                name: name.into(),
                cron: cron.into(),
            },
            body,
        }
    }
}

impl std::fmt::Debug for ScheduledJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduledJob")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Handed to every run: who it is and whether the daemon is shutting down.
#[derive(Debug, Clone)]
pub struct JobContext {
    job: String,
    /// When the tick that started this run arrived, to the second.
    ticked_at: DateTime<Utc>,
    shutdown: watch::Receiver<bool>,
}

impl JobContext {
    pub fn job_name(&self) -> &str {
        &self.job
    }

    /// When the tick that started this run arrived, truncated to the second. Schedulers of
    /// several pairs tick on the same wall clock: runs of the same job with the same instant
    /// were started by the same cron second, and may share what they read.
    pub fn ticked_at(&self) -> DateTime<Utc> {
        self.ticked_at
    }

    /// True once shutdown has begun: a job should start no new work (no new page, no new
    /// record) but let a write already in flight finish and record it.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves when shutdown begins (or the scheduler is gone), for use in `select!`.
    pub async fn shutdown_requested(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|down| *down).await;
    }
}

/// How runs of different jobs relate to each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// All jobs take one global lock, so at most one job runs at a time. On by default: the
    /// jobs share the SQLite state and the GHL rate limit.
    pub exclusive: bool,
    /// How long a run waits for the global lock before it is skipped. Bounded so that a stuck
    /// job shows up as skipped runs of the others rather than silent waiting.
    pub max_lock_wait: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            exclusive: true,
            max_lock_wait: Duration::from_secs(30 * 60),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    Succeeded(JobOutcome),
    Failed(String),
    /// The panic message, when it was a string.
    Panicked(String),
}

/// Per-job counters and the last run, for logs and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobStats {
    pub name: String,
    pub runs_started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub panicked: u64,
    /// Ticks that found this job's previous run still going (or still waiting for the lock).
    pub skipped_overlap: u64,
    /// Runs that gave up waiting for the global lock after `max_lock_wait`.
    pub skipped_lock_timeout: u64,
    /// A run is between its start and its end right now.
    pub running: bool,
    pub last_start: Option<DateTime<Utc>>,
    pub last_end: Option<DateTime<Utc>>,
    pub last_result: Option<RunResult>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "job `{job}`: invalid cron expression `{cron}` (expected 6 fields: sec min hour day month weekday, UTC)"
    )]
    InvalidCron { job: String, cron: String },
    #[error("job `{0}` is defined twice")]
    DuplicateJob(String),
    #[error("the scheduler was already started")]
    AlreadyStarted,
    #[error("the scheduler was shut down")]
    ShutDown,
    #[error("cron engine: {0}")]
    Engine(#[from] JobSchedulerError),
}

/// Which signal asked the daemon to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Terminate,
    Interrupt,
}

/// Resolves on the first SIGTERM or SIGINT. Errs only if the handlers cannot be installed.
pub async fn wait_for_signal() -> std::io::Result<StopSignal> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => Ok(StopSignal::Terminate),
        _ = int.recv() => Ok(StopSignal::Interrupt),
    }
}

struct Slot {
    spec: JobSpec,
    body: JobFn,
    /// Held by a run from its accepted tick to its end: the no-overlap guard.
    busy: Arc<Mutex<()>>,
    stats: StdMutex<JobStats>,
}

impl Slot {
    fn update(&self, f: impl FnOnce(&mut JobStats)) {
        // A poisoned stats lock only means a panic while updating counters; keep counting.
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut stats);
    }
}

struct Shared {
    slots: Vec<Slot>,
    options: SchedulerOptions,
    global: Arc<Mutex<()>>,
    shutdown_tx: watch::Sender<bool>,
    /// Entered by everything the scheduler logs or spawns; `Span::none()` unless
    /// [`Scheduler::in_span`] set one.
    span: tracing::Span,
}

impl Shared {
    fn shutting_down(&self) -> bool {
        *self.shutdown_tx.borrow()
    }
}

/// Runs [`ScheduledJob`]s on their cron schedules with the guarantees described in the module
/// documentation. Lifecycle: [`new`](Self::new) → [`start`](Self::start) →
/// [`shutdown`](Self::shutdown).
pub struct Scheduler {
    shared: Arc<Shared>,
    engine: Option<JobScheduler>,
    started: bool,
}

impl Scheduler {
    /// Validates every job (names unique, cron parses) without starting anything.
    pub fn new(jobs: Vec<ScheduledJob>, options: SchedulerOptions) -> Result<Self, ScheduleError> {
        let mut slots: Vec<Slot> = Vec::with_capacity(jobs.len());
        for job in jobs {
            if slots.iter().any(|s| s.spec.name == job.spec.name) {
                return Err(ScheduleError::DuplicateJob(job.spec.name));
            }
            slots.push(Slot {
                stats: StdMutex::new(JobStats {
                    name: job.spec.name.clone(),
                    ..JobStats::default()
                }),
                spec: job.spec,
                body: job.body,
                busy: Arc::new(Mutex::new(())),
            });
        }
        let (shutdown_tx, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            slots,
            options,
            global: Arc::new(Mutex::new(())),
            shutdown_tx,
            span: tracing::Span::none(),
        });

        for index in 0..shared.slots.len() {
            cron_job(&shared, index)?;
        }
        Ok(Self {
            shared,
            engine: None,
            started: false,
        })
    }

    /// Logs and runs everything of this scheduler inside `span` (e.g. the pair whose jobs
    /// these are). Only before [`start`](Self::start): the jobs' ticks capture it then.
    pub fn in_span(mut self, span: tracing::Span) -> Result<Self, ScheduleError> {
        if self.started {
            return Err(ScheduleError::AlreadyStarted);
        }
        let shared = Arc::get_mut(&mut self.shared).ok_or(ScheduleError::AlreadyStarted)?;
        shared.span = span;
        Ok(self)
    }

    /// Starts ticking. Must be called inside a tokio runtime, once.
    pub async fn start(&mut self) -> Result<(), ScheduleError> {
        if self.shared.shutting_down() {
            return Err(ScheduleError::ShutDown);
        }
        if self.started {
            return Err(ScheduleError::AlreadyStarted);
        }
        self.started = true;
        let engine = JobScheduler::new().await?;
        // Built here rather than kept from `new`: the engine computes a job's first tick when
        // the job is built, and a tick that passed before `start` would fire at once.
        for index in 0..self.shared.slots.len() {
            engine.add(cron_job(&self.shared, index)?).await?;
        }
        engine.start().await?;
        self.engine = Some(engine);
        let _in_span = self.shared.span.enter();
        tracing::info!(jobs = self.shared.slots.len(), "scheduler started");
        let now = Utc::now();
        for slot in &self.shared.slots {
            log_next_run(&slot.spec, now);
        }
        Ok(())
    }

    /// Runs the named job now, as a tick would, with the same overlap and lock rules; returns
    /// false if there is no such job. Used by tests and usable for a "run now" trigger. Must be
    /// called inside a tokio runtime (the run is spawned).
    pub fn trigger(&self, name: &str) -> bool {
        match self.shared.slots.iter().position(|s| s.spec.name == name) {
            Some(index) => {
                trigger_slot(&self.shared, index);
                true
            }
            None => false,
        }
    }

    /// Stops starting runs, signals running ones, waits up to `grace` for them and returns the
    /// names of jobs still running then. Those runs are not aborted: the caller decides (the
    /// daemon exits, which is no worse than an abort and lets a write that is nearly done land).
    pub async fn shutdown(&mut self, grace: Duration) -> Vec<String> {
        let span = self.shared.span.clone();
        self.shutdown_in_span(grace).instrument(span).await
    }

    async fn shutdown_in_span(&mut self, grace: Duration) -> Vec<String> {
        self.shared.shutdown_tx.send_replace(true);
        if let Some(mut engine) = self.engine.take()
            && let Err(e) = engine.shutdown().await
        {
            tracing::warn!(error = %e, "cron engine did not shut down cleanly");
        }
        let all_idle = join_all(
            self.shared
                .slots
                .iter()
                .map(|slot| Arc::clone(&slot.busy).lock_owned()),
        );
        let finished = tokio::time::timeout(grace, all_idle).await.is_ok();
        let still_running: Vec<String> = self
            .stats()
            .into_iter()
            .filter(|s| s.running)
            .map(|s| s.name)
            .collect();
        if finished {
            tracing::info!("scheduler stopped; no job running");
        } else {
            tracing::warn!(
                ?still_running,
                ?grace,
                "grace period over; jobs still running"
            );
        }
        still_running
    }

    /// Per-job statistics, in the order the jobs were given.
    pub fn stats(&self) -> Vec<JobStats> {
        self.shared
            .slots
            .iter()
            .map(|slot| slot.stats.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    pub fn job_stats(&self, name: &str) -> Option<JobStats> {
        self.stats().into_iter().find(|s| s.name == name)
    }
}

/// The engine's job for slot `index`: every tick calls [`trigger_slot`]. Parsing the cron
/// expression happens here, so this is also the validation.
///
/// The job holds the scheduler's jobs weakly: the engine may keep its jobs after its shutdown,
/// and what the jobs own (a pair's state and its lock) must go when the [`Scheduler`] does.
fn cron_job(shared: &Arc<Shared>, index: usize) -> Result<Job, ScheduleError> {
    let slot = &shared.slots[index];
    let on_tick = Arc::downgrade(shared);
    Job::new_async_tz(slot.spec.cron.as_str(), Utc, move |_id, _engine| {
        let shared = on_tick.upgrade();
        Box::pin(async move {
            if let Some(shared) = shared {
                trigger_slot(&shared, index)
            }
        })
    })
    .map_err(|_| ScheduleError::InvalidCron {
        job: slot.spec.name.clone(),
        cron: slot.spec.cron.clone(),
    })
}

impl Drop for Scheduler {
    /// Dropping without [`Scheduler::shutdown`] still stops new runs and tells running ones to
    /// wind down; it cannot wait for them (no async drop).
    fn drop(&mut self) {
        self.shared.shutdown_tx.send_replace(true);
        if let Some(mut engine) = self.engine.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { engine.shutdown().await });
        }
    }
}

/// When `cron` fires next after `after`, read as the cron engine reads it (seconds field
/// optional, day-of-month and day-of-week both required to match); `None` if it never does.
pub fn next_run_after(cron: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .dom_and_dow(true)
        .build()
        .parse(cron)
        .ok()?
        .find_next_occurrence(&after, false)
        .ok()
}

/// Says when `job` runs next, so an operator reading the log knows when to expect it.
fn log_next_run(job: &JobSpec, now: DateTime<Utc>) {
    match next_run_after(&job.cron, now) {
        Some(at) => {
            tracing::info!(job = %job.name, next_run_at = %at.to_rfc3339(), "next run at {}", at.format("%Y-%m-%d %H:%M:%S UTC"))
        }
        None => {
            tracing::warn!(job = %job.name, cron = %job.cron, "no next run: the schedule never fires again")
        }
    }
}

/// Handles one tick: accept it (and spawn the run) or skip it. Never blocks.
fn trigger_slot(shared: &Arc<Shared>, index: usize) {
    let _in_span = shared.span.enter();
    let slot = &shared.slots[index];
    if shared.shutting_down() {
        return;
    }
    let busy = match Arc::clone(&slot.busy).try_lock_owned() {
        Ok(guard) => guard,
        Err(_) => {
            tracing::warn!(job = %slot.spec.name, "previous run still in progress; tick skipped");
            slot.update(|s| s.skipped_overlap += 1);
            return;
        }
    };
    // Checked again under the busy lock: `shutdown` sets the flag before it waits on these
    // locks, so a run accepted here is one that `shutdown` will wait for.
    if shared.shutting_down() {
        return;
    }
    let ticked_at = Utc::now().trunc_subsecs(0);
    tokio::spawn(
        run_slot(Arc::clone(shared), index, busy, ticked_at).instrument(shared.span.clone()),
    );
}

/// One run of a job: take the global lock if configured, run the body in its own task so a
/// panic is caught as a `JoinError`, record the result. `_busy` is released when this ends.
async fn run_slot(
    shared: Arc<Shared>,
    index: usize,
    _busy: OwnedMutexGuard<()>,
    ticked_at: DateTime<Utc>,
) {
    let slot = &shared.slots[index];
    let name = slot.spec.name.as_str();

    let _global = if shared.options.exclusive {
        let mut shutdown = shared.shutdown_tx.subscribe();
        let wait = tokio::time::timeout(
            shared.options.max_lock_wait,
            Arc::clone(&shared.global).lock_owned(),
        );
        tokio::select! {
            acquired = wait => match acquired {
                Ok(guard) => Some(guard),
                Err(_) => {
                    tracing::warn!(job = name, waited = ?shared.options.max_lock_wait,
                        "another job held the shared lock too long; run skipped");
                    slot.update(|s| s.skipped_lock_timeout += 1);
                    return;
                }
            },
            _ = shutdown.wait_for(|down| *down) => {
                tracing::info!(job = name, "shutdown while waiting for the shared lock; run not started");
                return;
            }
        }
    } else {
        None
    };
    if shared.shutting_down() {
        return;
    }

    let started = Utc::now();
    slot.update(|s| {
        s.runs_started += 1;
        s.running = true;
        s.last_start = Some(started);
    });
    tracing::info!(job = name, "run started");

    let ctx = JobContext {
        job: name.to_owned(),
        ticked_at,
        shutdown: shared.shutdown_tx.subscribe(),
    };
    let body = Arc::clone(&slot.body);
    // Calling `body` inside the task means a panic while building the future is caught too.
    let joined = tokio::spawn(async move { body(ctx).await }.in_current_span()).await;

    let result = match joined {
        Ok(Ok(outcome)) => RunResult::Succeeded(outcome),
        Ok(Err(message)) => RunResult::Failed(message),
        Err(e) if e.is_panic() => RunResult::Panicked(panic_message(e.into_panic())),
        Err(_) => RunResult::Failed("run task was cancelled".to_owned()),
    };
    let ended = Utc::now();
    let elapsed_ms = (ended - started).num_milliseconds();
    match &result {
        RunResult::Succeeded(o) => {
            tracing::info!(job = name, elapsed_ms, stopped_early = o.stopped_early, summary = %o.summary, "run finished")
        }
        RunResult::Failed(m) => tracing::error!(job = name, elapsed_ms, error = %m, "run failed"),
        RunResult::Panicked(m) => {
            tracing::error!(job = name, elapsed_ms, panic = %m, "run panicked")
        }
    }
    slot.update(|s| {
        match &result {
            RunResult::Succeeded(_) => s.succeeded += 1,
            RunResult::Failed(_) => s.failed += 1,
            RunResult::Panicked(_) => s.panicked += 1,
        }
        s.running = false;
        s.last_end = Some(ended);
        s.last_result = Some(result);
    });
    if !shared.shutting_down() {
        log_next_run(&slot.spec, Utc::now());
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    //! Guard logic under tokio paused time, driven by `trigger` instead of the wall-clock cron
    //! engine (which does not follow paused time).
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const EVERY_SECOND: &str = "*/1 * * * * *";

    fn sleeping_job(name: &str, secs: u64, active: Arc<AtomicUsize>) -> ScheduledJob {
        ScheduledJob::new(
            name,
            EVERY_SECOND,
            job_fn(move |_ctx| {
                let active = Arc::clone(&active);
                async move {
                    active.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    active.fetch_sub(1, Ordering::SeqCst);
                    Ok(JobOutcome::done("slept"))
                }
            }),
        )
    }

    fn options(exclusive: bool, max_lock_wait_secs: u64) -> SchedulerOptions {
        SchedulerOptions {
            exclusive,
            max_lock_wait: Duration::from_secs(max_lock_wait_secs),
        }
    }

    /// Lets spawned tasks run; with paused time, also advances the clock by `ms`.
    async fn pass(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_during_a_run_are_skipped_and_counted() {
        let active = Arc::new(AtomicUsize::new(0));
        let sched = Scheduler::new(
            vec![sleeping_job("contacts", 10, Arc::clone(&active))],
            SchedulerOptions::default(),
        )
        .unwrap();
        assert!(sched.trigger("contacts"));
        pass(1).await;
        assert!(sched.trigger("contacts"));
        assert!(sched.trigger("contacts"));
        pass(1).await;
        assert_eq!(active.load(Ordering::SeqCst), 1);
        let s = sched.job_stats("contacts").unwrap();
        assert_eq!((s.runs_started, s.skipped_overlap, s.running), (1, 2, true));

        pass(10_000).await;
        let s = sched.job_stats("contacts").unwrap();
        assert_eq!((s.succeeded, s.running), (1, false));
        assert!(sched.trigger("contacts"), "a finished job runs again");
        pass(1).await;
        assert_eq!(sched.job_stats("contacts").unwrap().runs_started, 2);
        assert!(!sched.trigger("nope"));
    }

    #[tokio::test(start_paused = true)]
    async fn exclusive_jobs_wait_for_each_other() {
        let active = Arc::new(AtomicUsize::new(0));
        let sched = Scheduler::new(
            vec![
                sleeping_job("contacts", 3, Arc::clone(&active)),
                sleeping_job("notes", 3, Arc::clone(&active)),
            ],
            options(true, 60),
        )
        .unwrap();
        sched.trigger("contacts");
        pass(1).await;
        sched.trigger("notes");
        pass(1000).await;
        assert_eq!(active.load(Ordering::SeqCst), 1);
        assert_eq!(sched.job_stats("notes").unwrap().runs_started, 0);
        pass(2500).await;
        assert_eq!(active.load(Ordering::SeqCst), 1);
        assert_eq!(sched.job_stats("notes").unwrap().runs_started, 1);
        pass(3000).await;
        let notes = sched.job_stats("notes").unwrap();
        assert_eq!((notes.succeeded, notes.skipped_lock_timeout), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn lock_wait_is_bounded_and_at_most_one_run_waits_per_job() {
        let active = Arc::new(AtomicUsize::new(0));
        let sched = Scheduler::new(
            vec![
                sleeping_job("full", 100, Arc::clone(&active)),
                sleeping_job("notes", 1, Arc::clone(&active)),
            ],
            options(true, 5),
        )
        .unwrap();
        sched.trigger("full");
        pass(1).await;
        for _ in 0..4 {
            sched.trigger("notes");
            pass(1000).await;
        }
        let notes = sched.job_stats("notes").unwrap();
        assert_eq!(notes.runs_started, 0);
        assert_eq!(
            notes.skipped_overlap, 3,
            "one waiting run, the other ticks skipped"
        );
        pass(2000).await;
        let notes = sched.job_stats("notes").unwrap();
        assert_eq!((notes.runs_started, notes.skipped_lock_timeout), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn non_exclusive_jobs_run_side_by_side() {
        let active = Arc::new(AtomicUsize::new(0));
        let sched = Scheduler::new(
            vec![
                sleeping_job("contacts", 3, Arc::clone(&active)),
                sleeping_job("notes", 3, Arc::clone(&active)),
            ],
            options(false, 0),
        )
        .unwrap();
        sched.trigger("contacts");
        sched.trigger("notes");
        pass(10).await;
        assert_eq!(active.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_reports_a_run_that_outlives_the_grace_and_drops_waiting_runs() {
        let active = Arc::new(AtomicUsize::new(0));
        let mut sched = Scheduler::new(
            vec![
                sleeping_job("full", 100, Arc::clone(&active)),
                sleeping_job("notes", 1, Arc::clone(&active)),
            ],
            options(true, 60),
        )
        .unwrap();
        sched.trigger("full");
        pass(1).await;
        sched.trigger("notes");
        pass(1).await;
        let still = sched.shutdown(Duration::from_secs(5)).await;
        assert_eq!(still, vec!["full".to_owned()]);
        assert_eq!(sched.job_stats("notes").unwrap().runs_started, 0);
        assert!(
            sched.trigger("notes"),
            "the job exists, but no run starts after shutdown"
        );
        pass(10).await;
        assert_eq!(sched.job_stats("notes").unwrap().runs_started, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_watching_the_context_stops_early_on_shutdown() {
        let job = ScheduledJob::new(
            "contacts",
            EVERY_SECOND,
            job_fn(|ctx| async move {
                let mut pages = 0;
                while !ctx.is_shutting_down() {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => pages += 1,
                        _ = ctx.shutdown_requested() => {}
                    }
                }
                Ok(JobOutcome::stopped_early(format!("{pages} pages")))
            }),
        );
        let mut sched = Scheduler::new(vec![job], SchedulerOptions::default()).unwrap();
        sched.trigger("contacts");
        pass(3500).await;
        assert!(sched.shutdown(Duration::from_secs(1)).await.is_empty());
        let s = sched.job_stats("contacts").unwrap();
        assert_eq!(
            s.last_result,
            Some(RunResult::Succeeded(JobOutcome::stopped_early("3 pages")))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn runs_and_their_tasks_are_inside_the_schedulers_span() {
        // A current-thread runtime: the subscriber set here sees every task.
        let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let job = ScheduledJob::new(
            "contacts",
            EVERY_SECOND,
            job_fn(move |ctx| {
                let record = Arc::clone(&record);
                async move {
                    let name = tracing::Span::current().metadata().map(|m| m.name());
                    record.lock().unwrap().push(name);
                    assert_eq!(ctx.ticked_at().timestamp_subsec_nanos(), 0);
                    Ok(JobOutcome::done("ok"))
                }
            }),
        );
        let sched = Scheduler::new(vec![job], SchedulerOptions::default())
            .unwrap()
            .in_span(tracing::info_span!("pair", pair = "cafe-zurich"))
            .unwrap();
        sched.trigger("contacts");
        pass(10).await;
        assert_eq!(*seen.lock().unwrap(), vec![Some("pair")]);
    }

    #[test]
    fn next_run_follows_the_cron_expression_with_or_without_seconds() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let now = at("2026-12-02T05:07:30Z");
        assert_eq!(
            next_run_after("0 */5 * * * *", now),
            Some(at("2026-12-02T05:10:00Z"))
        );
        assert_eq!(
            next_run_after("*/15 * * * *", now),
            Some(at("2026-12-02T05:15:00Z"))
        );
        assert_eq!(
            next_run_after("0 30 3 * * *", now),
            Some(at("2026-12-03T03:30:00Z"))
        );
        assert_eq!(next_run_after("not cron", now), None);
    }

    #[test]
    fn duplicate_names_and_bad_cron_are_rejected_with_the_job_name() {
        let body = job_fn(|_| async { Ok(JobOutcome::default()) });
        let dup = Scheduler::new(
            vec![
                ScheduledJob::new("tasks", EVERY_SECOND, Arc::clone(&body)),
                ScheduledJob::new("tasks", EVERY_SECOND, Arc::clone(&body)),
            ],
            SchedulerOptions::default(),
        );
        assert!(matches!(dup, Err(ScheduleError::DuplicateJob(n)) if n == "tasks"));
        let five_fields = Scheduler::new(
            vec![ScheduledJob::new("tasks", "*/5 * * * *", body)],
            SchedulerOptions::default(),
        );
        assert!(
            matches!(five_fields, Err(ScheduleError::InvalidCron { ref job, .. }) if job == "tasks")
        );
    }
}
