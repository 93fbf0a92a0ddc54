//! `status`: what the state knows, without calling either API — links per kind and status, the
//! last run of each kind, parked records, pending creates, the completion rate of onboarding
//! tasks and the appointments on record.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::{OutputFormat, StatusArgs};
use crate::config::{Config, Pair};
use crate::dashboard::health::{self, HealthPolicy};
use crate::model::Kind;
use crate::reconcile::appointments::split_upcoming;
use crate::reconcile::tasks::{completion_line, onboarding_completion, task_views};
use crate::report::RunSummary;
use crate::store::{LinkStatus, Store, WebhookQueue};

use super::EXIT_OK;

/// How many runs back `status` looks for failures, and how many of them it lists.
const FAILURE_RUNS: usize = 5;
const LISTED_ROWS: usize = 20;

pub fn run(cfg: &Config, args: &StatusArgs) -> anyhow::Result<u8> {
    if !cfg.state.path.exists() {
        match args.format {
            OutputFormat::Text => println!(
                "No state yet at {}: run `sync` first.",
                cfg.state.path.display()
            ),
            OutputFormat::Json => println!(
                "{}",
                serde_json::json!({ "state": "none", "path": cfg.state.path })
            ),
        }
        return Ok(EXIT_OK);
    }
    let store = Store::open_read_only(&cfg.state.path)?;
    let view = gather(&store, cfg, Utc::now())?;
    match args.format {
        OutputFormat::Text => print!("{}", view.to_text()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&view)?),
    }
    Ok(EXIT_OK)
}

/// `status` of a file with `[[pairs]]` and no `--pair`: one line per pair (one element per
/// pair in JSON). A pair whose state cannot be read is a row saying why, not an error: the
/// overview is for finding the pair that needs attention.
pub fn overview(pairs: &[&Pair], args: &StatusArgs) -> anyhow::Result<u8> {
    let now = Utc::now();
    let rows: Vec<PairRow> = pairs.iter().map(|p| pair_row(p, now)).collect();
    match args.format {
        OutputFormat::Text => print!("{}", overview_text(&rows)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    Ok(EXIT_OK)
}

/// One pair in the overview.
#[derive(Debug, Serialize)]
pub struct PairRow {
    pub pair: String,
    pub ghl_location: String,
    pub hotspot_locations: Vec<String>,
    pub state_path: std::path::PathBuf,
    /// `"present"`, `"none"` (no state file yet) or `"unreadable"` (see `error`).
    pub state: &'static str,
    pub last_run: Option<LastRun>,
    /// Failed items of the newest runs.
    pub failures: Option<u64>,
    /// Whether every scheduled job's last successful run is recent enough (as `/healthz`).
    pub healthy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn pair_row(pair: &Pair, now: DateTime<Utc>) -> PairRow {
    let cfg = &pair.config;
    let mut row = PairRow {
        pair: pair.name.clone(),
        ghl_location: cfg.ghl.location_id.clone(),
        hotspot_locations: cfg.hotspot.locations.clone(),
        state_path: cfg.state.path.clone(),
        state: "none",
        last_run: None,
        failures: None,
        healthy: None,
        error: None,
    };
    if !cfg.state.path.exists() {
        return row;
    }
    let read = || -> anyhow::Result<(Option<LastRun>, u64, bool)> {
        let store = Store::open_read_only(&cfg.state.path)?;
        let last = store.latest_run()?.map(|r| LastRun {
            id: r.id,
            started_at: r.started_at,
            status: r.status.as_str(),
        });
        let failures = store.count_recent_failures(FAILURE_RUNS)?;
        let policy = HealthPolicy::from_config(cfg, None);
        let healthy = health::evaluate(&store, &policy, now)?.healthy;
        Ok((last, failures, healthy))
    };
    match read() {
        Ok((last, failures, healthy)) => {
            row.state = "present";
            row.last_run = last;
            row.failures = Some(failures);
            row.healthy = Some(healthy);
        }
        Err(e) => {
            row.state = "unreadable";
            row.error = Some(format!("{e:#}"));
        }
    }
    row
}

fn overview_text(rows: &[PairRow]) -> String {
    let mut out = String::from(
        "  pair                 ghl location             hotspot locations  last run                           failures  health\n",
    );
    for r in rows {
        let last = match (&r.last_run, r.state) {
            (Some(l), _) => format!(
                "#{} {} {}",
                l.id,
                l.started_at.format("%Y-%m-%d %H:%M:%S"),
                l.status
            ),
            (None, "none") => "never (no state yet)".to_string(),
            (None, "unreadable") => "state unreadable".to_string(),
            (None, _) => "never".to_string(),
        };
        let health = match r.healthy {
            Some(true) => "ok",
            Some(false) => "UNHEALTHY",
            None => "-",
        };
        out.push_str(&format!(
            "  {:<20} {:<24} {:<18} {:<34} {:>8}  {health}\n",
            r.pair,
            r.ghl_location,
            r.hotspot_locations.join(","),
            last,
            r.failures.map_or("-".to_string(), |n| n.to_string()),
        ));
        if let Some(e) = &r.error {
            out.push_str(&format!("    {}: {e}\n", r.pair));
        }
    }
    out
}

/// What `status` knows, in the shape `status --format json` prints.
#[derive(Debug, Serialize)]
pub struct StatusView {
    /// Always `"present"`: a missing state file prints `{"state": "none", ...}` instead.
    pub state: &'static str,
    pub kinds: Vec<KindStatus>,
    pub pending_creates: usize,
    pub onboarding_tasks: Option<Completion>,
    pub appointments: Option<AppointmentCounts>,
    pub ghl_daily_remaining: Option<QuotaSeen>,
    pub parked: Listed<ItemRow>,
    /// Failed items of the newest runs: `total` counts them all, `rows` lists the first ones.
    pub failures: Listed<ItemRow>,
    /// The webhook queue, per sender (empty when no webhook was ever received).
    pub webhooks: Vec<WebhookQueue>,
}

#[derive(Debug, Serialize)]
pub struct KindStatus {
    pub kind: Kind,
    pub linked: u64,
    pub tombstoned: u64,
    pub parked: u64,
    pub last_run: Option<LastRun>,
}

#[derive(Debug, Serialize)]
pub struct LastRun {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub status: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Completion {
    pub completed: u64,
    pub total: u64,
}

#[derive(Debug, Serialize)]
pub struct AppointmentCounts {
    pub upcoming: u64,
    pub past: u64,
}

#[derive(Debug, Serialize)]
pub struct QuotaSeen {
    pub run: i64,
    pub remaining: u64,
}

/// A count and the first rows it counts (`rows.len() <= total`).
#[derive(Debug, Serialize)]
pub struct Listed<T> {
    pub total: u64,
    /// The newest runs looked at (failures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<usize>,
    pub rows: Vec<T>,
}

#[derive(Debug, Serialize)]
pub struct ItemRow {
    pub run: i64,
    pub kind: Kind,
    pub source_id: String,
    pub reason: Option<String>,
}

fn item_row(row: &crate::store::dashboard::RunItemRow) -> ItemRow {
    ItemRow {
        run: row.run_id,
        kind: row.item.kind,
        source_id: row.item.source_id.clone(),
        reason: row.item.reason.clone(),
    }
}

/// Reads everything `status` shows (separate from `run` so it can be tested on an in-memory store).
pub fn gather(store: &Store, cfg: &Config, now: DateTime<Utc>) -> anyhow::Result<StatusView> {
    let mut counts: BTreeMap<Kind, [u64; 3]> = BTreeMap::new();
    for (kind, status, n) in store.link_counts()? {
        let slot = match status {
            LinkStatus::Active => 0,
            LinkStatus::Tombstoned => 1,
            LinkStatus::Parked => 2,
        };
        counts.entry(kind).or_default()[slot] += n;
    }
    let mut kinds = Vec::new();
    for kind in Kind::ALL {
        let [linked, tombstoned, parked] = counts.get(&kind).copied().unwrap_or_default();
        let last_run = store.latest_run_for(kind)?.map(|r| LastRun {
            id: r.id,
            started_at: r.started_at,
            status: r.status.as_str(),
        });
        kinds.push(KindStatus {
            kind,
            linked,
            tombstoned,
            parked,
            last_run,
        });
    }
    let rules: HashSet<&str> = cfg.tasks.onboarding.iter().map(|r| r.id.as_str()).collect();
    let (completed, total) = onboarding_completion(&task_views(store)?, &rules);
    let appointments = store.appointments()?;
    let appointments = (!appointments.is_empty()).then(|| {
        let (upcoming, past) = split_upcoming(&appointments, now);
        AppointmentCounts { upcoming, past }
    });
    let ghl_daily_remaining = match store.latest_run()? {
        Some(run) => serde_json::from_value::<RunSummary>(run.summary)
            .unwrap_or_default()
            .ghl_daily_remaining
            .map(|remaining| QuotaSeen {
                run: run.id,
                remaining,
            }),
        None => None,
    };
    let parked = store.parked_conflicts()?;
    let failures = store.recent_failures(FAILURE_RUNS, LISTED_ROWS)?;
    Ok(StatusView {
        state: "present",
        kinds,
        pending_creates: store.pending_intents()?.len(),
        onboarding_tasks: (total > 0).then_some(Completion { completed, total }),
        appointments,
        ghl_daily_remaining,
        parked: Listed {
            total: parked.len() as u64,
            runs: None,
            rows: parked.iter().take(LISTED_ROWS).map(item_row).collect(),
        },
        webhooks: store.webhook_queues(now)?,
        failures: Listed {
            total: store.count_recent_failures(FAILURE_RUNS)?,
            runs: Some(FAILURE_RUNS),
            rows: failures.iter().map(item_row).collect(),
        },
    })
}

/// One sender's webhook queue, as `status` prints it.
fn webhook_line(q: &WebhookQueue) -> String {
    let at = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let pending = match q.pending {
        0 => "none pending".to_string(),
        n => format!(
            "{n} pending, the oldest received {}",
            at(q.oldest_pending_at)
        ),
    };
    format!(
        "Webhook events from {}: {pending}; {} received in the last 24 h, the last at {}.\n",
        q.source,
        q.received_last_day,
        at(q.last_received_at)
    )
}

impl StatusView {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str("  kind          linked  tombstoned  parked  last run\n");
        for k in &self.kinds {
            let last = match &k.last_run {
                Some(r) => format!(
                    "#{} {} {}",
                    r.id,
                    r.started_at.format("%Y-%m-%d %H:%M:%S"),
                    r.status
                ),
                None => "never".to_string(),
            };
            out.push_str(&format!(
                "  {:<12} {:>7} {:>11} {:>7}  {last}\n",
                k.kind.as_str(),
                k.linked,
                k.tombstoned,
                k.parked
            ));
        }
        if self.pending_creates > 0 {
            out.push_str(&format!(
                "\n{} create(s) of an interrupted run are pending; the next run looks them up in GHL before retrying.\n",
                self.pending_creates
            ));
        }
        if let Some(c) = &self.onboarding_tasks {
            out.push('\n');
            out.push_str(&completion_line(c.completed, c.total));
            out.push('\n');
        }
        if let Some(a) = &self.appointments {
            out.push_str(&format!(
                "\nAppointments on record: {} upcoming, {} past.\n",
                a.upcoming, a.past
            ));
        }
        if let Some(q) = &self.ghl_daily_remaining {
            out.push_str(&format!(
                "\nGHL daily quota left after run #{}: {}\n",
                q.run, q.remaining
            ));
        }
        for q in &self.webhooks {
            out.push_str(&webhook_line(q));
        }
        out.push_str(&format!("\nParked conflicts: {}\n", self.parked.total));
        for row in &self.parked.rows {
            out.push_str(&format!(
                "  - {} {}: {}\n",
                row.kind.as_str(),
                row.source_id,
                row.reason.as_deref().unwrap_or("-")
            ));
        }
        out.push_str(&format!(
            "Failures in the last {} runs: {}\n",
            FAILURE_RUNS, self.failures.total
        ));
        for row in &self.failures.rows {
            out.push_str(&format!(
                "  - run #{} {} {}: {}\n",
                row.run,
                row.kind.as_str(),
                row.source_id,
                row.reason.as_deref().unwrap_or("-")
            ));
        }
        let unlisted = self.failures.total - self.failures.rows.len() as u64;
        if unlisted > 0 {
            out.push_str(&format!(
                "  ... and {unlisted} more (`report RUN` lists every one)\n"
            ));
        }
        out
    }
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
        let text = gather(&store, &cfg, Utc::now()).unwrap().to_text();
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
