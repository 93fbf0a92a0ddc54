//! The words of an alert: one plain-text summary (the webhook's `text`, the command's
//! `HGS_ALERT_TEXT`) and the same as JSON for a script. Pure.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::condition::{Alert, Condition};
use crate::store::RunStatus;

/// The run an alert comes from.
#[derive(Debug, Clone)]
pub struct RunRef<'a> {
    pub location_id: &'a str,
    pub run_id: i64,
    pub status: RunStatus,
    pub scope: &'a str,
}

/// One alert, ready for every target.
#[derive(Debug, Clone)]
pub struct Message {
    pub text: String,
    /// What the command gets on stdin.
    pub json: Value,
    /// What the command gets in its environment (besides `PATH`, `HOME`, `LANG`, `TZ`).
    pub env: Vec<(&'static str, String)>,
}

pub fn compose(run: &RunRef<'_>, alerts: &[(Condition, Alert)], now: DateTime<Utc>) -> Message {
    let mut text = format!(
        "hotspot-ghl-sync, GHL location {}: run #{} ({}) {}",
        run.location_id,
        run.run_id,
        scope_words(run.scope),
        run.status.as_str()
    );
    let mut list = Vec::new();
    let mut names = Vec::new();
    for (condition, alert) in alerts {
        let line = sentence(condition, alert, run.run_id);
        text.push_str("\n- ");
        text.push_str(&line);
        let (state, since, repeat) = match alert {
            Alert::Firing { since, repeat, .. } => ("firing", since, *repeat),
            Alert::Resolved { since } => ("resolved", since, false),
        };
        names.push(format!("{}:{state}", condition.name()));
        list.push(json!({
            "condition": condition.name(),
            "scope": match condition {
                Condition::RunFailed { scope } => Value::from(scope.as_str()),
                _ => Value::Null,
            },
            "state": state,
            "since": stamp(*since),
            "repeat": repeat,
            "message": line,
        }));
    }
    let json = json!({
        "source": "hotspot-ghl-sync",
        "location_id": run.location_id,
        "run": { "id": run.run_id, "status": run.status.as_str(), "scope": run.scope },
        "sent_at": stamp(now),
        "alerts": list,
        "text": text,
    });
    let env = vec![
        ("HGS_ALERT_TEXT", text.clone()),
        ("HGS_ALERT_CONDITIONS", names.join(" ")),
        ("HGS_ALERT_RUN_ID", run.run_id.to_string()),
        ("HGS_ALERT_RUN_STATUS", run.status.as_str().to_string()),
        ("HGS_ALERT_SCOPE", run.scope.to_string()),
        ("HGS_ALERT_LOCATION_ID", run.location_id.to_string()),
    ];
    Message { text, json, env }
}

/// A pass's scope in words: `all` and `full` are not kinds.
fn scope_words(scope: &str) -> &str {
    match scope {
        "all" => "all kinds",
        "full" => "full pass",
        kinds => kinds,
    }
}

fn sentence(condition: &Condition, alert: &Alert, run_id: i64) -> String {
    let since = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    match (condition, alert) {
        (
            Condition::RunFailed { scope },
            Alert::Firing {
                since: s,
                why,
                repeat,
            },
        ) => format!(
            "{} ({}): {why}; failing since {}. `hotspot-ghl-sync report {run_id}` has the details.",
            if *repeat {
                "Runs still fail"
            } else {
                "Run failed"
            },
            scope_words(scope),
            since(s)
        ),
        (Condition::RunFailed { scope }, Alert::Resolved { since: s }) => format!(
            "Resolved: runs ({}) succeed again (failing since {}).",
            scope_words(scope),
            since(s)
        ),
        (
            Condition::AuthLost,
            Alert::Firing {
                since: s,
                why,
                repeat,
            },
        ) => format!(
            "{}: {why}; since {}. Nothing is synced until it is fixed; `hotspot-ghl-sync check` says what is refused.",
            if *repeat {
                "Authentication still refused"
            } else {
                "Authentication lost"
            },
            since(s)
        ),
        (Condition::AuthLost, Alert::Resolved { since: s }) => format!(
            "Resolved: authentication accepted again (refused since {}).",
            since(s)
        ),
        (Condition::QuotaReserve, Alert::Firing { since: s, why, .. }) => format!(
            "Daily quota reserve reached: {why}; since {}. Writing waits for GHL's daily quota (ghl.daily_reserve).",
            since(s)
        ),
        (Condition::QuotaReserve, Alert::Resolved { since: s }) => format!(
            "Resolved: writing goes on, above the daily quota reserve again (reached since {}).",
            since(s)
        ),
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_json_and_env_say_the_same() {
        let t = DateTime::parse_from_rfc3339("2026-12-02T05:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let run = RunRef {
            location_id: "loc1",
            run_id: 12,
            status: RunStatus::Partial,
            scope: "contact",
        };
        let alerts = vec![
            (
                Condition::RunFailed {
                    scope: "contact".into(),
                },
                Alert::Firing {
                    since: t,
                    why: "3 eligible records left unsynced".into(),
                    repeat: false,
                },
            ),
            (Condition::AuthLost, Alert::Resolved { since: t }),
        ];
        let m = compose(&run, &alerts, t);
        assert_eq!(
            m.text,
            "hotspot-ghl-sync, GHL location loc1: run #12 (contact) partial\n\
             - Run failed (contact): 3 eligible records left unsynced; failing since 2026-12-02 05:00 UTC. `hotspot-ghl-sync report 12` has the details.\n\
             - Resolved: authentication accepted again (refused since 2026-12-02 05:00 UTC)."
        );
        assert_eq!(m.json["text"], m.text.as_str());
        assert_eq!(m.json["alerts"][0]["condition"], "run_failed");
        assert_eq!(m.json["alerts"][0]["scope"], "contact");
        assert_eq!(m.json["alerts"][1]["state"], "resolved");
        assert_eq!(m.json["alerts"][1]["scope"], Value::Null);
        let env: std::collections::BTreeMap<_, _> = m.env.into_iter().collect();
        assert_eq!(
            env["HGS_ALERT_CONDITIONS"],
            "run_failed:firing auth_lost:resolved"
        );
        assert_eq!(env["HGS_ALERT_RUN_ID"], "12");
    }
}
