//! The one place every pass of every pair goes through before it starts: the bound on how many
//! pairs' passes run at once (`[run] max_concurrent_pairs`). Passes of pairs whose ticks fall
//! together wait here together, each already in its tick's round of shared reads
//! ([`super::rounds`]), so that a pass that waits finds what the first ones read.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::schedule::JobContext;

/// Admits at most `limit` passes at a time, across pairs.
pub(super) struct PassGate {
    permits: Arc<Semaphore>,
    /// What `permits` adds up to once every shrink has taken its share back.
    limit: Mutex<usize>,
}

/// Held for a pass's whole length; the next waiting pass starts when it is dropped.
pub(super) type PassPermit = OwnedSemaphorePermit;

impl PassGate {
    pub fn new(limit: usize) -> PassGate {
        let limit = limit.max(1);
        PassGate {
            permits: Arc::new(Semaphore::new(limit)),
            limit: Mutex::new(limit),
        }
    }

    /// Waits for a free place; `None` when the daemon (or the pair) stops first, so that a pass
    /// waiting its turn never holds up the shutdown.
    pub async fn enter(&self, ctx: &JobContext) -> Option<PassPermit> {
        tokio::select! {
            permit = Arc::clone(&self.permits).acquire_owned() => permit.ok(),
            _ = ctx.shutdown_requested() => None,
        }
    }

    /// A reloaded configuration's limit. A larger one admits waiting passes at once; a smaller
    /// one takes places back as running passes end (never by stopping one).
    pub fn resize(&self, limit: usize) {
        let limit = limit.max(1);
        let mut current = self.limit.lock().unwrap_or_else(|p| p.into_inner());
        if limit > *current {
            self.permits.add_permits(limit - *current);
        } else if limit < *current {
            let surplus = u32::try_from(*current - limit).unwrap_or(u32::MAX);
            let permits = Arc::clone(&self.permits);
            tokio::spawn(async move {
                if let Ok(taken) = permits.acquire_many_owned(surplus).await {
                    taken.forget();
                }
            });
        }
        *current = limit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{JobOutcome, ScheduledJob, Scheduler, SchedulerOptions, job_fn};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Runs `jobs` jobs at once through `gate` (each 1 s long) and returns the most that were
    /// inside at the same time.
    async fn most_inside(gate: Arc<PassGate>, jobs: usize, resize_to: Option<usize>) -> usize {
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut all = Vec::new();
        for i in 0..jobs {
            let (gate, inside, most) = (Arc::clone(&gate), Arc::clone(&inside), Arc::clone(&most));
            all.push(ScheduledJob::new(
                format!("job{i}"),
                "*/1 * * * * *",
                job_fn(move |ctx| {
                    let (gate, inside, most) =
                        (Arc::clone(&gate), Arc::clone(&inside), Arc::clone(&most));
                    async move {
                        let _permit = gate.enter(&ctx).await;
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                        Ok(JobOutcome::done("ok"))
                    }
                }),
            ));
        }
        let sched = Scheduler::new(
            all,
            SchedulerOptions {
                exclusive: false,
                ..SchedulerOptions::default()
            },
        )
        .unwrap();
        if let Some(limit) = resize_to {
            gate.resize(limit);
        }
        for i in 0..jobs {
            sched.trigger(&format!("job{i}"));
        }
        tokio::time::sleep(Duration::from_secs(jobs as u64 + 2)).await;
        assert!(sched.stats().iter().all(|s| s.succeeded == 1));
        most.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_passes_than_the_limit_run_at_once() {
        assert_eq!(most_inside(Arc::new(PassGate::new(2)), 5, None).await, 2);
        assert_eq!(most_inside(Arc::new(PassGate::new(4)), 3, None).await, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reloaded_limit_applies_to_the_next_passes() {
        assert_eq!(most_inside(Arc::new(PassGate::new(1)), 4, Some(3)).await, 3);
        let gate = Arc::new(PassGate::new(4));
        gate.resize(1);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(most_inside(gate, 4, None).await, 1);
    }
}
