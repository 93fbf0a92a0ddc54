//! What a finished pass says about each alert condition, and what to send about it: pure, no
//! clock, no I/O. The caller reads the stored states, calls [`observe`] and [`decide`], delivers
//! the alerts and stores the states the decisions say.
//!
//! Rules: a condition seen for the first time is alerted at once; while it keeps being seen it is
//! alerted again at most once per [`REPEAT_AFTER`] (so never more than one alert per condition an
//! hour, across processes: the times are in the state). The first pass that sees it gone after it
//! was alerted sends one "resolved". A spell that was never alerted (it started and ended within
//! the hour after an earlier alert) ends silently. A pass that cannot tell (it was stopped, or it
//! failed for another reason before it could see) changes nothing.

use chrono::{DateTime, Duration, Utc};

use crate::store::{AlertState, RunStatus};

/// The least time between two alerts that one condition holds.
pub const REPEAT_AFTER: Duration = Duration::hours(1);

/// A condition alerts are about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// Passes over one set of kinds fail (`scope`: `full`, or the kinds, e.g. `contact`): each
    /// daemon job, and the timer's frequent and daily passes, are judged apart, so one job's
    /// success does not call another's failure resolved.
    RunFailed { scope: String },
    /// An API refused the credentials (a key or token rejected, a refresh refused, a scope
    /// missing): nothing is synced until someone acts.
    AuthLost,
    /// GHL's daily quota fell to `ghl.daily_reserve`: writing stopped and waits for the quota.
    QuotaReserve,
}

impl Condition {
    /// The key the state stores it under.
    pub fn key(&self) -> String {
        match self {
            Condition::RunFailed { scope } => format!("run_failed:{scope}"),
            Condition::AuthLost => "auth_lost".into(),
            Condition::QuotaReserve => "quota_reserve".into(),
        }
    }

    /// The name scripts read (`condition` in the command's JSON, `HGS_ALERT_CONDITIONS`).
    pub fn name(&self) -> &'static str {
        match self {
            Condition::RunFailed { .. } => "run_failed",
            Condition::AuthLost => "auth_lost",
            Condition::QuotaReserve => "quota_reserve",
        }
    }
}

/// What one pass saw of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// It holds, and why (one line, no secret, personal data masked).
    Present(String),
    /// The pass got far enough to know it does not hold.
    Absent,
    /// The pass cannot tell.
    Unknown,
}

/// How a pass ended, as far as alerts care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassEnd {
    /// `full`, or the pass's kinds joined by `+`.
    pub scope: String,
    pub status: RunStatus,
    /// The error that ended the pass, classified.
    pub error: Option<PassError>,
    /// The pass stopped writing at the daily-quota reserve: what it said.
    pub quota_reserve: Option<String>,
    /// It was stopped (SIGTERM, SIGINT) before its end.
    pub stop_requested: bool,
    /// It ran out of `sync.pass_budget_secs`.
    pub budget_spent: bool,
    /// Eligible records it left unsynced.
    pub unsynced: usize,
}

/// The error a pass ended with, as the conditions tell them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassError {
    /// An API refused the credentials or a scope.
    Auth(String),
    /// Reading or writing stopped at the daily-quota reserve.
    QuotaReserve(String),
    Other(String),
}

/// What `end` says about each condition it can speak of.
pub fn observe(end: &PassEnd) -> Vec<(Condition, Seen)> {
    let stopped = end.stop_requested;
    let auth = match &end.error {
        Some(PassError::Auth(why)) => Seen::Present(why.clone()),
        Some(_) => Seen::Unknown,
        None if stopped => Seen::Unknown,
        // It read both APIs to its end (or to its time budget).
        None => Seen::Absent,
    };
    let quota = match (&end.error, &end.quota_reserve) {
        (Some(PassError::QuotaReserve(why)), _) | (_, Some(why)) => Seen::Present(why.clone()),
        (Some(_), None) => Seen::Unknown,
        (None, None) if stopped || end.budget_spent => Seen::Unknown,
        (None, None) => Seen::Absent,
    };
    let failed = match &end.error {
        // Said by its own condition: one cause, one alert.
        Some(PassError::Auth(_) | PassError::QuotaReserve(_)) => Seen::Unknown,
        Some(PassError::Other(why)) => Seen::Present(format!("the run failed: {why}")),
        None if end.budget_spent => Seen::Present(
            "the pass ran out of its time budget (sync.pass_budget_secs); the rest is left to the next run".into(),
        ),
        None if end.unsynced > 0 || matches!(end.status, RunStatus::Partial | RunStatus::Failed) => {
            Seen::Present(match end.unsynced {
                0 => "some records failed".to_string(),
                1 => "1 eligible record left unsynced".to_string(),
                n => format!("{n} eligible records left unsynced"),
            })
        }
        None if stopped => Seen::Unknown,
        None => Seen::Absent,
    };
    vec![
        (
            Condition::RunFailed {
                scope: end.scope.clone(),
            },
            failed,
        ),
        (Condition::AuthLost, auth),
        (Condition::QuotaReserve, quota),
    ]
}

/// What to send about one condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// It holds. `repeat`: an alert already went out in this spell.
    Firing {
        since: DateTime<Utc>,
        why: String,
        repeat: bool,
    },
    /// It held, was alerted, and no longer holds.
    Resolved { since: DateTime<Utc> },
}

/// The decision about one condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub alert: Option<Alert>,
    /// The state to store when no alert goes out (none was due, or its delivery failed: it is
    /// then due again at the next pass).
    pub kept: AlertState,
    /// The state to store once the alert was delivered.
    pub sent: AlertState,
}

pub fn decide(state: AlertState, seen: &Seen, now: DateTime<Utc>) -> Decision {
    let alerted_this_spell = matches!(
        (state.active_since, state.last_alerted_at),
        (Some(since), Some(alerted)) if alerted >= since
    );
    match seen {
        Seen::Unknown => unchanged(state),
        Seen::Present(why) => {
            let since = state.active_since.unwrap_or(now);
            let kept = AlertState {
                active_since: Some(since),
                ..state
            };
            let due = state
                .last_alerted_at
                .is_none_or(|t| now.signed_duration_since(t) >= REPEAT_AFTER);
            Decision {
                alert: due.then(|| Alert::Firing {
                    since,
                    why: why.clone(),
                    repeat: alerted_this_spell,
                }),
                kept,
                sent: AlertState {
                    active_since: Some(since),
                    last_alerted_at: Some(now),
                },
            }
        }
        Seen::Absent => match state.active_since {
            None => unchanged(state),
            Some(since) => {
                let cleared = AlertState {
                    active_since: None,
                    ..state
                };
                if alerted_this_spell {
                    Decision {
                        alert: Some(Alert::Resolved { since }),
                        kept: state,
                        sent: cleared,
                    }
                } else {
                    Decision {
                        alert: None,
                        kept: cleared,
                        sent: cleared,
                    }
                }
            }
        },
    }
}

fn unchanged(state: AlertState) -> Decision {
    Decision {
        alert: None,
        kept: state,
        sent: state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T05:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::minutes(min)
    }

    /// Runs `seen` at the given minutes, delivering every alert; returns what went out when.
    fn replay(steps: &[(i64, Seen)]) -> Vec<(i64, Alert)> {
        let mut state = AlertState::default();
        let mut out = Vec::new();
        for (min, seen) in steps {
            let d = decide(state, seen, at(*min));
            if let Some(a) = d.alert {
                out.push((*min, a));
                state = d.sent;
            } else {
                state = d.kept;
            }
        }
        out
    }

    fn failing() -> Seen {
        Seen::Present("3 eligible records left unsynced".into())
    }

    #[test]
    fn a_failure_alerts_once_an_hour_and_its_end_once() {
        let out = replay(&[
            (0, failing()),
            (5, failing()),
            (59, failing()),
            (60, failing()),
            (65, Seen::Unknown),
            (70, Seen::Absent),
            (75, Seen::Absent),
        ]);
        let firing = |since: i64, repeat| Alert::Firing {
            since: at(since),
            why: "3 eligible records left unsynced".into(),
            repeat,
        };
        assert_eq!(
            out,
            vec![
                (0, firing(0, false)),
                (60, firing(0, true)),
                (70, Alert::Resolved { since: at(0) }),
            ]
        );
    }

    #[test]
    fn a_spell_within_the_hour_after_an_alert_is_neither_alerted_nor_resolved() {
        let out = replay(&[
            (0, failing()),
            (5, Seen::Absent),
            (10, failing()),
            (15, Seen::Absent),
            (80, failing()),
        ]);
        let kinds: Vec<(i64, bool)> = out
            .iter()
            .map(|(m, a)| (*m, matches!(a, Alert::Firing { .. })))
            .collect();
        assert_eq!(kinds, vec![(0, true), (5, false), (80, true)]);
        assert!(
            matches!(out[2].1, Alert::Firing { since, repeat: false, .. } if since == at(80)),
            "a new spell starts at its own time: {out:?}"
        );
    }

    #[test]
    fn an_alert_not_delivered_is_due_again_at_the_next_pass() {
        let d = decide(AlertState::default(), &failing(), at(0));
        assert!(d.alert.is_some());
        let d = decide(d.kept, &failing(), at(5));
        assert!(
            matches!(d.alert, Some(Alert::Firing { since, repeat: false, .. }) if since == at(0))
        );
        let resolved = decide(d.sent, &Seen::Absent, at(10));
        assert!(matches!(resolved.alert, Some(Alert::Resolved { .. })));
        let again = decide(resolved.kept, &Seen::Absent, at(15));
        assert!(
            matches!(again.alert, Some(Alert::Resolved { .. })),
            "an undelivered recovery is sent by the next good pass"
        );
    }

    fn end() -> PassEnd {
        PassEnd {
            scope: "contact".into(),
            status: RunStatus::Succeeded,
            error: None,
            quota_reserve: None,
            stop_requested: false,
            budget_spent: false,
            unsynced: 0,
        }
    }

    fn seen_of(end: &PassEnd, c: &str) -> Seen {
        observe(end)
            .into_iter()
            .find(|(cond, _)| cond.name() == c)
            .map(|(_, s)| s)
            .unwrap()
    }

    #[test]
    fn one_cause_is_one_condition() {
        let ok = end();
        for c in ["run_failed", "auth_lost", "quota_reserve"] {
            assert_eq!(seen_of(&ok, c), Seen::Absent, "{c}");
        }
        let auth = PassEnd {
            status: RunStatus::Failed,
            error: Some(PassError::Auth("ghl: token refused".into())),
            ..end()
        };
        assert_eq!(
            seen_of(&auth, "auth_lost"),
            Seen::Present("ghl: token refused".into())
        );
        assert_eq!(seen_of(&auth, "run_failed"), Seen::Unknown);
        assert_eq!(seen_of(&auth, "quota_reserve"), Seen::Unknown);

        let down = PassEnd {
            status: RunStatus::Failed,
            error: Some(PassError::Other("hotspot unreachable".into())),
            ..end()
        };
        assert_eq!(
            seen_of(&down, "run_failed"),
            Seen::Present("the run failed: hotspot unreachable".into())
        );
        assert_eq!(seen_of(&down, "auth_lost"), Seen::Unknown);

        let quota = PassEnd {
            status: RunStatus::Aborted,
            quota_reserve: Some("ghl: daily quota reserve reached".into()),
            ..end()
        };
        assert!(matches!(seen_of(&quota, "quota_reserve"), Seen::Present(_)));
        assert_eq!(seen_of(&quota, "run_failed"), Seen::Absent);
        assert_eq!(seen_of(&quota, "auth_lost"), Seen::Absent);

        let partial = PassEnd {
            status: RunStatus::Partial,
            unsynced: 3,
            ..end()
        };
        assert_eq!(
            seen_of(&partial, "run_failed"),
            Seen::Present("3 eligible records left unsynced".into())
        );

        let stopped = PassEnd {
            status: RunStatus::Aborted,
            stop_requested: true,
            ..end()
        };
        for c in ["run_failed", "auth_lost", "quota_reserve"] {
            assert_eq!(seen_of(&stopped, c), Seen::Unknown, "{c}");
        }
    }
}
