//! `status`: what the state knows, without calling either API — links per kind and status, the
//! last run of each kind, parked records, pending creates, the completion rate of onboarding
//! tasks and the appointments on record.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::model::Kind;
use crate::reconcile::appointments::split_upcoming;
use crate::reconcile::tasks::{completion_line, onboarding_completion, task_views};
use crate::report::RunSummary;
use crate::store::{LinkStatus, Store};

use super::EXIT_OK;

pub fn run(cfg: &Config) -> anyhow::Result<u8> {
    if !cfg.state.path.exists() {
        println!(
            "No state yet at {}: run `sync` first.",
            cfg.state.path.display()
        );
        return Ok(EXIT_OK);
    }
    let store = Store::open_read_only(&cfg.state.path)?;
    print!("{}", render(&store, cfg, Utc::now())?);
    Ok(EXIT_OK)
}

/// The status text (separate from `run` so it can be tested on an in-memory store).
pub fn render(store: &Store, cfg: &Config, now: DateTime<Utc>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut counts: BTreeMap<Kind, [u64; 3]> = BTreeMap::new();
    for (kind, status, n) in store.link_counts()? {
        let slot = match status {
            LinkStatus::Active => 0,
            LinkStatus::Tombstoned => 1,
            LinkStatus::Parked => 2,
        };
        counts.entry(kind).or_default()[slot] += n;
    }
    out.push_str("  kind          linked  tombstoned  parked  last run\n");
    for kind in Kind::ALL {
        let [active, tomb, parked] = counts.get(&kind).copied().unwrap_or_default();
        let last = match store.latest_run_for(kind)? {
            Some(r) => format!(
                "#{} {} {}",
                r.id,
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                r.status.as_str()
            ),
            None => "never".to_string(),
        };
        out.push_str(&format!(
            "  {:<12} {active:>7} {tomb:>11} {parked:>7}  {last}\n",
            kind.as_str()
        ));
    }
    let pending = store.pending_intents()?.len();
    if pending > 0 {
        out.push_str(&format!(
            "\n{pending} create(s) of an interrupted run are pending; the next run looks them up in GHL before retrying.\n"
        ));
    }
    let rules: HashSet<&str> = cfg.tasks.onboarding.iter().map(|r| r.id.as_str()).collect();
    let (done, total) = onboarding_completion(&task_views(store)?, &rules);
    if total > 0 {
        out.push('\n');
        out.push_str(&completion_line(done, total));
        out.push('\n');
    }
    let appointments = store.appointments()?;
    if !appointments.is_empty() {
        let (up, past) = split_upcoming(&appointments, now);
        out.push_str(&format!(
            "\nAppointments on record: {up} upcoming, {past} past.\n"
        ));
    }
    if let Some(run) = store.latest_run()? {
        let summary: RunSummary = serde_json::from_value(run.summary).unwrap_or_default();
        if let Some(left) = summary.ghl_daily_remaining {
            out.push_str(&format!(
                "\nGHL daily quota left after run #{}: {left}\n",
                run.id
            ));
        }
    }
    let parked = store.parked_conflicts()?;
    out.push_str(&format!("\nParked conflicts: {}\n", parked.len()));
    for row in parked.iter().take(20) {
        let i = &row.item;
        out.push_str(&format!(
            "  - {} {}: {}\n",
            i.kind.as_str(),
            i.source_id,
            i.reason.as_deref().unwrap_or("-")
        ));
    }
    let failures = store.recent_failures(5, 20)?;
    out.push_str(&format!(
        "Failures in the last 5 runs: {}\n",
        failures.len()
    ));
    for row in &failures {
        let i = &row.item;
        out.push_str(&format!(
            "  - run #{} {} {}: {}\n",
            row.run_id,
            i.kind.as_str(),
            i.source_id,
            i.reason.as_deref().unwrap_or("-")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Appointment, Link, MatchMethod};
    use serde_json::json;

    #[test]
    fn status_shows_links_completion_and_appointments() {
        let cfg = Config::from_str_with_env(
            "[state]\npath = \"x.db\"\n[hotspot]\nbase_url = \"http://127.0.0.1:1\"\napi_key_env = \"K\"\n\
             [ghl]\nbase_url = \"http://127.0.0.1:2\"\nlocation_id = \"L\"\nauth = \"private_token\"\ntoken_env = \"T\"\n\
             [[tasks.onboarding]]\nid = \"welcome\"\ntitle = \"Hi\"\n",
            "t.toml",
            &|_: &str| Some("secret".to_string()),
        )
        .unwrap();
        let store = Store::open_in_memory().unwrap();
        for (i, done) in [true, false, false, false].into_iter().enumerate() {
            let mut l = Link::new(
                Kind::Task,
                format!("welcome:{i}"),
                format!("t{i}"),
                MatchMethod::Created,
            );
            l.extra = json!({"rule": "welcome", "completed": done});
            store.upsert_link(&l).unwrap();
        }
        store
            .upsert_appointment(&Appointment {
                contact_target_id: "c".into(),
                event_id: "e".into(),
                start: Some("2099-01-01T00:00:00+00:00".into()),
                end: None,
                status: None,
                title: None,
            })
            .unwrap();
        let text = render(&store, &cfg, Utc::now()).unwrap();
        assert!(
            text.contains("Onboarding tasks: 1 of 4 completed (25%)."),
            "{text}"
        );
        assert!(text.contains("1 upcoming, 0 past"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("task") && l.contains("      4")),
            "{text}"
        );
    }
}
