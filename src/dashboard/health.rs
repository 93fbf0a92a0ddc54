//! `/healthz`: is every scheduled sync still running? A sync that fails silently under cron is
//! the worst outcome, so health is the age of the last *completed* run of each scheduled job,
//! not whether the process is up.
//!
//! What is expected follows `[schedule] mode`: the daemon's jobs each, or in timer mode (an
//! outside timer or cron runs `sync` and a daily `sync --full`) the frequent pass and the full,
//! as the jobs of [`ScheduleConfig::jobs`]. Each job has its own allowance, twice its own
//! interval: a stopped five-minute job is flagged after ten minutes, not when the daily full is
//! also overdue.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, CronSchedule, ScheduleConfig, ScheduleJob};
use crate::model::Kind;
use crate::store::{Store, StoreError};

/// Used when no job is scheduled (runs come from an outside cron): a daily sync plus two hours.
pub const FALLBACK_MAX_AGE: Duration = Duration::from_secs(26 * 3600);

/// What `/healthz` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPolicy {
    /// The longest of the allowances (the figure `/metrics` and the overview show).
    pub max_age: Duration,
    /// Scheduled jobs, each with the oldest acceptable age of its last successful run; when
    /// empty, the newest successful run of any kind is checked against `max_age`.
    pub jobs: Vec<(ScheduleJob, Duration)>,
}

impl HealthPolicy {
    /// The policy for `cfg`'s schedule. `max_age` `Some` (`serve --health-max-age-secs`) is
    /// every job's allowance; `None` gives each job twice its own interval.
    pub fn from_config(cfg: &Config, max_age: Option<Duration>) -> Self {
        let jobs: Vec<(ScheduleJob, Duration)> = cfg
            .schedule
            .jobs()
            .into_iter()
            .map(|(job, cron)| {
                let own = cron_interval(cron).map_or(FALLBACK_MAX_AGE, |d| d * 2);
                (job, max_age.unwrap_or(own))
            })
            .collect();
        HealthPolicy {
            max_age: max_age.unwrap_or_else(|| default_max_age(&cfg.schedule)),
            jobs,
        }
    }
}

/// Twice the longest interval between two firings of any scheduled job (one missed run is
/// tolerated, two are not), or [`FALLBACK_MAX_AGE`] when nothing is scheduled.
pub fn default_max_age(schedule: &ScheduleConfig) -> Duration {
    schedule
        .jobs()
        .into_iter()
        .filter_map(|(_, c)| cron_interval(c))
        .max()
        .map(|d| d * 2)
        .unwrap_or(FALLBACK_MAX_AGE)
}

/// The longest gap between consecutive firings of `cron` over its next 256 firings (irregular
/// expressions such as "weekdays at 9" have a longer weekend gap, which is the one that counts).
pub fn cron_interval(cron: &CronSchedule) -> Option<Duration> {
    let parsed = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(&cron.expr)
        .ok()?;
    let times: Vec<DateTime<Utc>> = parsed.iter_after(Utc::now()).take(256).collect();
    times
        .windows(2)
        .filter_map(|w| (w[1] - w[0]).to_std().ok())
        .max()
}

/// One checked job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// The job (`contacts`, `full`, `pass`, ...) or `any` when nothing is scheduled.
    pub job: String,
    /// The oldest acceptable age of its last successful run.
    pub max_age_seconds: u64,
    pub last_success_run: Option<i64>,
    pub last_success_at: Option<String>,
    pub age_seconds: Option<i64>,
    pub ok: bool,
    /// Why the check failed.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    pub healthy: bool,
    pub max_age_seconds: u64,
    pub checks: Vec<HealthCheck>,
}

impl HealthReport {
    /// One line per failed check, for the 503 body.
    pub fn reasons(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter_map(|c| c.reason.as_ref().map(|r| format!("{}: {r}", c.job)))
            .collect()
    }
}

fn job_scope(job: ScheduleJob) -> (Option<Kind>, bool) {
    match job {
        ScheduleJob::Contacts => (Some(Kind::Contact), false),
        ScheduleJob::Notes => (Some(Kind::Note), false),
        ScheduleJob::Tasks => (Some(Kind::Task), false),
        ScheduleJob::Businesses => (Some(Kind::Business), false),
        ScheduleJob::Appointments => (Some(Kind::Appointment), false),
        ScheduleJob::Full => (None, true),
        // A plain `sync` covers every kind: any completed run is one.
        ScheduleJob::Pass => (None, false),
    }
}

/// Evaluates `policy` against the store at `now`. A run counts when it completed (`succeeded`
/// or `partial`), was not a dry run, and covered the job's kind (for `full`: a `--full` run);
/// its age is measured from its end.
pub fn evaluate(
    store: &Store,
    policy: &HealthPolicy,
    now: DateTime<Utc>,
) -> Result<HealthReport, StoreError> {
    let scopes: Vec<(String, Option<Kind>, bool, Duration)> = if policy.jobs.is_empty() {
        vec![("any".to_string(), None, false, policy.max_age)]
    } else {
        policy
            .jobs
            .iter()
            .map(|(j, allowed)| {
                let (k, full) = job_scope(*j);
                (j.as_str().to_string(), k, full, *allowed)
            })
            .collect()
    };
    let mut checks = Vec::new();
    for (job, kind, full, allowed) in scopes {
        let max_age = chrono::Duration::from_std(allowed).unwrap_or(chrono::Duration::MAX);
        let run = store.last_successful_run(kind, full)?;
        let check = match run {
            None => HealthCheck {
                job,
                max_age_seconds: allowed.as_secs(),
                last_success_run: None,
                last_success_at: None,
                age_seconds: None,
                ok: false,
                reason: Some("no successful run recorded".into()),
            },
            Some(run) => {
                let at = run.finished_at.unwrap_or(run.started_at);
                let age = now - at;
                let ok = age <= max_age;
                HealthCheck {
                    job,
                    max_age_seconds: allowed.as_secs(),
                    last_success_run: Some(run.id),
                    last_success_at: Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    age_seconds: Some(age.num_seconds()),
                    ok,
                    reason: (!ok).then(|| {
                        format!(
                            "last successful run #{} ended {} ago, more than the allowed {}",
                            run.id,
                            human(age.num_seconds()),
                            human(allowed.as_secs() as i64)
                        )
                    }),
                }
            }
        };
        checks.push(check);
    }
    Ok(HealthReport {
        healthy: checks.iter().all(|c| c.ok),
        max_age_seconds: policy.max_age.as_secs(),
        checks,
    })
}

/// `90061` → `1d 1h 1m`.
pub fn human(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, m) => format!("{d}d {h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(expr: &str) -> ScheduleConfig {
        ScheduleConfig {
            contacts: Some(CronSchedule::parse(expr).unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn default_age_is_twice_the_longest_interval() {
        assert_eq!(
            default_max_age(&sched("*/15 * * * *")),
            Duration::from_secs(30 * 60)
        );
        let mut s = sched("*/15 * * * *");
        s.full = Some(CronSchedule::parse("0 3 * * *").unwrap());
        assert_eq!(default_max_age(&s), Duration::from_secs(48 * 3600));
        assert_eq!(
            default_max_age(&ScheduleConfig::default()),
            FALLBACK_MAX_AGE
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(42), "42s");
        assert_eq!(human(90_061), "1d 1h 1m");
        assert_eq!(human(3_660), "1h 1m");
    }
}
