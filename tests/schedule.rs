//! The scheduler driven by the real cron engine on 1-second schedules (the engine reads the
//! wall clock, so these use real time; each test lasts a few seconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hotspot_ghl_sync::schedule::{
    JobOutcome, RunResult, ScheduleError, ScheduledJob, Scheduler, SchedulerOptions, StopSignal,
    job_fn, wait_for_signal,
};

const EVERY_SECOND: &str = "*/1 * * * * *";

/// Counts how many bodies are inside their critical part at once, and the most ever seen.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Concurrency {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

fn tracked_job(name: &str, work: Duration, tracker: Arc<Concurrency>) -> ScheduledJob {
    ScheduledJob::new(
        name,
        EVERY_SECOND,
        job_fn(move |_ctx| {
            let tracker = Arc::clone(&tracker);
            async move {
                tracker.enter();
                tokio::time::sleep(work).await;
                tracker.leave();
                Ok(JobOutcome::done("ok"))
            }
        }),
    )
}

async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_slower_than_its_interval_never_overlaps_itself() {
    let tracker = Arc::new(Concurrency::default());
    let mut sched = Scheduler::new(
        vec![tracked_job(
            "contacts",
            Duration::from_millis(2300),
            Arc::clone(&tracker),
        )],
        SchedulerOptions::default(),
    )
    .unwrap();
    sched.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(5600)).await;
    let still = sched.shutdown(Duration::from_secs(3)).await;

    assert!(still.is_empty(), "in-flight run finished within the grace");
    assert_eq!(tracker.max(), 1, "two runs of one job were active at once");
    let s = sched.job_stats("contacts").unwrap();
    assert!(s.runs_started >= 2, "{s:?}");
    assert!(s.skipped_overlap >= 2, "{s:?}");
    assert_eq!(s.succeeded, s.runs_started, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_sharing_the_lock_take_turns_and_both_run() {
    let tracker = Arc::new(Concurrency::default());
    let mut sched = Scheduler::new(
        vec![
            tracked_job("contacts", Duration::from_millis(400), Arc::clone(&tracker)),
            tracked_job("notes", Duration::from_millis(400), Arc::clone(&tracker)),
        ],
        SchedulerOptions::default(),
    )
    .unwrap();
    sched.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3600)).await;
    sched.shutdown(Duration::from_secs(2)).await;

    assert_eq!(tracker.max(), 1, "two jobs held the shared state at once");
    for s in sched.stats() {
        assert!(s.runs_started >= 2, "{s:?}");
        assert_eq!(s.skipped_lock_timeout, 0, "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_errors_are_recorded_and_scheduling_goes_on() {
    let healthy_runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&healthy_runs);
    let jobs = vec![
        ScheduledJob::new(
            "panicky",
            EVERY_SECOND,
            job_fn(|_ctx| async { panic!("mapping blew up") }),
        ),
        ScheduledJob::new(
            "failing",
            EVERY_SECOND,
            job_fn(|_ctx| async { Err("GHL said 401 twice".to_owned()) }),
        ),
        ScheduledJob::new(
            "healthy",
            EVERY_SECOND,
            job_fn(move |_ctx| {
                let counted = Arc::clone(&counted);
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Ok(JobOutcome::done("fine"))
                }
            }),
        ),
    ];
    let mut sched = Scheduler::new(jobs, SchedulerOptions::default()).unwrap();
    sched.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3300)).await;
    sched.shutdown(Duration::from_secs(1)).await;

    let panicky = sched.job_stats("panicky").unwrap();
    assert!(panicky.panicked >= 2, "{panicky:?}");
    assert_eq!(
        panicky.last_result,
        Some(RunResult::Panicked("mapping blew up".to_owned()))
    );
    let failing = sched.job_stats("failing").unwrap();
    assert!(failing.failed >= 2, "{failing:?}");
    assert_eq!(
        failing.last_result,
        Some(RunResult::Failed("GHL said 401 twice".to_owned()))
    );
    let healthy = sched.job_stats("healthy").unwrap();
    assert!(healthy.succeeded >= 2, "{healthy:?}");
    assert_eq!(
        healthy.succeeded as usize,
        healthy_runs.load(Ordering::SeqCst)
    );
    assert_eq!((healthy.failed, healthy.panicked), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_in_flight_run_then_starts_nothing() {
    let write_landed = Arc::new(AtomicBool::new(false));
    let landed = Arc::clone(&write_landed);
    let job = ScheduledJob::new(
        "tasks",
        EVERY_SECOND,
        job_fn(move |ctx| {
            let landed = Arc::clone(&landed);
            async move {
                // An in-flight write that must not be cut short by the signal.
                tokio::time::sleep(Duration::from_millis(1200)).await;
                landed.store(true, Ordering::SeqCst);
                if ctx.is_shutting_down() {
                    return Ok(JobOutcome::stopped_early("1 write, then stopped"));
                }
                Ok(JobOutcome::done("1 write"))
            }
        }),
    );
    let mut sched = Scheduler::new(vec![job], SchedulerOptions::default()).unwrap();
    sched.start().await.unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || sched
            .job_stats("tasks")
            .unwrap()
            .running)
        .await
    );

    let asked = Instant::now();
    let still = sched.shutdown(Duration::from_secs(4)).await;
    assert!(still.is_empty(), "{still:?}");
    assert!(asked.elapsed() < Duration::from_secs(4));
    assert!(write_landed.load(Ordering::SeqCst));
    let s = sched.job_stats("tasks").unwrap();
    assert_eq!(
        s.last_result,
        Some(RunResult::Succeeded(JobOutcome::stopped_early(
            "1 write, then stopped"
        )))
    );

    let started = s.runs_started;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sched.job_stats("tasks").unwrap().runs_started, started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_names_a_job_that_outlives_the_grace() {
    let job = ScheduledJob::new(
        "full",
        EVERY_SECOND,
        job_fn(|_ctx| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(JobOutcome::done("never"))
        }),
    );
    let mut sched = Scheduler::new(vec![job], SchedulerOptions::default()).unwrap();
    sched.start().await.unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || sched
            .job_stats("full")
            .unwrap()
            .running)
        .await
    );
    let asked = Instant::now();
    let still = sched.shutdown(Duration::from_millis(300)).await;
    assert_eq!(still, vec!["full".to_owned()]);
    assert!(asked.elapsed() < Duration::from_secs(2));
}

#[test]
fn an_invalid_cron_expression_names_its_job() {
    let body = job_fn(|_| async { Ok(JobOutcome::default()) });
    let err = Scheduler::new(
        vec![
            ScheduledJob::new("contacts", EVERY_SECOND, Arc::clone(&body)),
            ScheduledJob::new("notes", "every tuesday", body),
        ],
        SchedulerOptions::default(),
    )
    .err()
    .expect("invalid cron accepted");
    assert!(
        matches!(&err, ScheduleError::InvalidCron { job, cron } if job == "notes" && cron == "every tuesday")
    );
    assert!(err.to_string().contains("`notes`"), "{err}");
}

#[tokio::test]
async fn start_twice_is_an_error() {
    let body = job_fn(|_| async { Ok(JobOutcome::default()) });
    let mut sched = Scheduler::new(
        vec![ScheduledJob::new("contacts", "0 0 3 * * *", body)],
        SchedulerOptions::default(),
    )
    .unwrap();
    sched.start().await.unwrap();
    assert!(matches!(
        sched.start().await,
        Err(ScheduleError::AlreadyStarted)
    ));
    assert!(sched.shutdown(Duration::from_millis(100)).await.is_empty());
    assert!(matches!(sched.start().await, Err(ScheduleError::ShutDown)));
}

#[tokio::test]
async fn sigterm_resolves_wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed first so that a SIGTERM arriving before `wait_for_signal` listens cannot kill
    // the test process: tokio's handler replaces the default action for good.
    let _guard = signal(SignalKind::terminate()).unwrap();
    let waiter = tokio::spawn(wait_for_signal());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let got = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("no signal seen")
        .unwrap()
        .unwrap();
    assert_eq!(got, StopSignal::Terminate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_that_passed_between_new_and_start_does_not_fire() {
    use chrono::Timelike;
    let next_second = (chrono::Utc::now().second() + 1) % 60;
    let job = ScheduledJob::new(
        "contacts",
        format!("{next_second} * * * * *"),
        job_fn(|_| async { Ok(JobOutcome::default()) }),
    );
    let mut sched = Scheduler::new(vec![job], SchedulerOptions::default()).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sched.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    sched.shutdown(Duration::from_millis(100)).await;
    assert_eq!(sched.job_stats("contacts").unwrap().runs_started, 0);
}
