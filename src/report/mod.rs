//! Reconciliation reports: what one run did, in text (for people) and JSON (for scripts).
//!
//! A `RunReport` is assembled from the state database (runs, run items, API calls) by the commands
//! layer; this module only renders it, so the same report can be printed after `sync`, by `report`,
//! and served by the dashboard.

pub mod dry_run;
pub mod html;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::decode::FieldTally;
use crate::store::{ItemOutcome, RunItem, Store, StoreError};

/// Counts of what happened to one kind of record in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    pub created: u64,
    /// Existing GHL records matched and linked instead of duplicated.
    pub adopted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    pub deleted: u64,
    pub conflicts: u64,
    pub drift: u64,
    /// Work left for the next run (quota reserve reached, dry run).
    pub deferred: u64,
}

impl KindCounts {
    pub fn writes(&self) -> u64 {
        self.created + self.updated + self.deleted
    }
}

/// API usage of one run for one API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiUsage {
    pub requests: u64,
    pub requests_by_method: BTreeMap<String, u64>,
    pub retries: u64,
    pub rate_limited: u64,
    pub failed: u64,
    /// Requests that changed something (see [`is_write`]).
    #[serde(default)]
    pub writes: u64,
    /// Daily quota left as last reported by the API (GHL only).
    pub daily_remaining: Option<u64>,
}

impl ApiUsage {
    /// Requests that change something remotely (searches are POSTs that only read).
    pub fn writes(&self) -> u64 {
        self.writes
    }
}

/// Whether an audited call changes something remotely.
pub fn is_write(method: &str, path: &str) -> bool {
    !matches!(method, "GET" | "HEAD") && !path.ends_with("/search")
}

/// One record the report names individually: a failure, conflict, drift, skip, deferral or guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportItem {
    pub kind: String,
    /// What happened: `failed`, `conflict`, `drift`, `skipped`, `deferred`, `deleted`, `guard`, ...
    pub outcome: String,
    pub source_id: Option<String>,
    pub target_id: Option<String>,
    pub reason: String,
    /// Field-level detail (for conflicts and drift: both values).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// Why an eligible record was left unsynced by a run. Any of these makes the run `partial`
/// (exit 1); what a run leaves alone on purpose is not here: guests with neither email nor
/// phone, contacts a CRM user deleted (`on_target_delete = "respect"`), conflicts parked for a
/// person (`conflict = "report"`, ambiguous identities), records gone from HotspotSystem, and
/// work deferred at the daily-quota reserve or on a stop request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsynced {
    /// A mass-deletion guard tripped: no new link or create this run.
    DeletionGuard,
    /// Its linked GHL contact was not in this run's listing (incomplete or guarded).
    ContactNotListed,
    /// A listing was incomplete, so nothing about the record was decided.
    ListingIncomplete,
    /// An earlier create may still be on its way to GHL's search index; checked next run.
    CreatePending,
    /// Its write failed (the report's failures say how).
    WriteFailed,
    /// Linked, and these wire fields, which its contact is mapped from, could not be read: held
    /// rather than let an empty value clear what GHL holds.
    UnreadableValue { fields: Vec<String> },
}

impl Unsynced {
    pub fn describe(&self) -> std::borrow::Cow<'static, str> {
        let text = match self {
            Unsynced::DeletionGuard => {
                "held: a mass-deletion guard tripped this run (no new link or create)"
            }
            Unsynced::ContactNotListed => {
                "its GHL contact was not in this run's listing (incomplete or guarded)"
            }
            Unsynced::ListingIncomplete => "a listing was incomplete: nothing decided",
            Unsynced::CreatePending => {
                "an earlier create may still be on its way to GHL's search index"
            }
            Unsynced::WriteFailed => "its write failed",
            Unsynced::UnreadableValue { fields } => {
                return format!(
                    "held, its GHL contact left as it is: {} could not be read this run",
                    fields.join(", ")
                )
                .into();
            }
        };
        text.into()
    }
}

/// One eligible record a run left unsynced, by its HotspotSystem id (a location id for a
/// business).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnsyncedRecord {
    pub kind: crate::model::Kind,
    pub source_id: String,
    pub why: Unsynced,
}

impl UnsyncedRecord {
    /// `contact 123: its write failed`, as the text and HTML reports list it.
    pub fn line(&self) -> String {
        format!(
            "{} {}: {}",
            self.kind.as_str(),
            self.source_id,
            self.why.describe()
        )
    }
}

/// Everything one run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `ok`, `partial` (some records failed), `failed`, `interrupted`, `running`.
    pub status: String,
    pub dry_run: bool,
    pub full: bool,
    pub kinds: BTreeMap<String, KindCounts>,
    pub api: BTreeMap<String, ApiUsage>,
    /// Run-level notes: deletion guards that fired, listings that were incomplete, quota stops.
    pub notes: Vec<String>,
    /// Values that could not be read and were taken as empty, per `list.field`
    /// (e.g. `customers.registered_at`).
    #[serde(default)]
    pub unreadable: BTreeMap<String, FieldTally>,
    pub items: Vec<ReportItem>,
    /// How many items the run lists in all; more than `items` when a page of them was asked for.
    #[serde(default)]
    pub items_total: u64,
    /// Eligible records this run left unsynced, and why (empty: nothing left but what the
    /// quota reserve or a stop request deferred).
    #[serde(default)]
    pub unsynced: Vec<UnsyncedRecord>,
    /// Listed guests the operator kept out of this run (`[filter]`, `sync --limit`): neither
    /// synced nor counted as unsynced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_out: Option<KeptOutSummary>,
}

/// The listed guests a run left out by the operator's choice (`[filter]`, `sync --limit`).
/// They are not failures: the run's status does not count them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptOutSummary {
    /// Guests (one per GHL contact they would be) kept out.
    pub guests: u64,
    /// Of them, those that passed the filter but fell beyond `--limit`.
    pub by_limit: u64,
    /// The first of them by HotspotSystem id (at most 20).
    pub sample: Vec<String>,
}

impl KeptOutSummary {
    /// The report's line: how many, why, and which (bounded).
    pub fn line(&self) -> String {
        let why = match (self.by_limit, self.guests - self.by_limit) {
            (0, _) => "by [filter]".to_string(),
            (_, 0) => "by --limit".to_string(),
            (l, f) => format!("{f} by [filter], {l} by --limit"),
        };
        let more = self.guests.saturating_sub(self.sample.len() as u64);
        format!(
            "Pilot: {} listed guest(s) kept out {why}: not synced, left as they are in GHL, and not counted as failures. {}{}.",
            self.guests,
            if self.sample.is_empty() {
                ""
            } else {
                "HotspotSystem ids: "
            },
            self.sample.join(", ")
                + &if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
        )
    }
}

impl RunReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// Writes to GHL in this run, counted from the API audit (what was really sent).
    pub fn ghl_writes(&self) -> u64 {
        self.api.get("ghl").map(ApiUsage::writes).unwrap_or(0)
    }

    /// A plain-text report for a terminal or an email from cron.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mode = match (self.dry_run, self.full) {
            (true, true) => " (dry run, full)",
            (true, false) => " (dry run)",
            (false, true) => " (full)",
            (false, false) => "",
        };
        let _ = writeln!(out, "Run {}{}: {}", self.run_id, mode, self.status);
        let _ = writeln!(
            out,
            "  started {}  finished {}",
            self.started_at,
            self.finished_at.as_deref().unwrap_or("-")
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<13}{:>8}{:>8}{:>8}{:>10}{:>8}{:>7}{:>8}{:>10}{:>6}{:>9}",
            "kind",
            "created",
            "adopted",
            "updated",
            "unchanged",
            "skipped",
            "failed",
            "deleted",
            "conflicts",
            "drift",
            "deferred"
        );
        for (kind, c) in &self.kinds {
            let _ = writeln!(
                out,
                "  {:<13}{:>8}{:>8}{:>8}{:>10}{:>8}{:>7}{:>8}{:>10}{:>6}{:>9}",
                kind,
                c.created,
                c.adopted,
                c.updated,
                c.unchanged,
                c.skipped,
                c.failed,
                c.deleted,
                c.conflicts,
                c.drift,
                c.deferred
            );
        }
        let _ = writeln!(out);
        for (api, u) in &self.api {
            let methods: Vec<String> = u
                .requests_by_method
                .iter()
                .map(|(m, n)| format!("{m} {n}"))
                .collect();
            let _ = write!(
                out,
                "  {api}: {} requests ({}), {} retries, {} rate-limited (429)",
                u.requests,
                if methods.is_empty() {
                    "none".to_string()
                } else {
                    methods.join(", ")
                },
                u.retries,
                u.rate_limited
            );
            if let Some(left) = u.daily_remaining {
                let _ = write!(out, ", daily quota left {left}");
            }
            let _ = writeln!(out);
        }
        let writes = self.ghl_writes();
        if writes == 0 && !self.dry_run {
            if self.in_step() {
                let _ = writeln!(
                    out,
                    "  No write was sent to GHL: both sides were already in step."
                );
            } else {
                let _ = writeln!(
                    out,
                    "  No write was sent to GHL, and the sides are not in step: the run {}{}.",
                    self.status,
                    self.left_undone()
                );
            }
        }
        if self.dry_run {
            let _ = writeln!(
                out,
                "  Dry run: the actions above were planned and not sent."
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nNotes:");
            for n in &self.notes {
                let _ = writeln!(out, "  - {n}");
            }
        }
        if !self.unreadable.is_empty() {
            let _ = writeln!(
                out,
                "\nValues that could not be read (each taken as empty):"
            );
            for line in unreadable_lines(&self.unreadable) {
                let _ = writeln!(out, "  - {line}");
            }
        }
        if !self.unsynced.is_empty() {
            let _ = writeln!(out, "\nLeft unsynced ({}):", self.unsynced.len());
            for line in self.unsynced.iter().take(50).map(UnsyncedRecord::line) {
                let _ = writeln!(out, "  - {line}");
            }
            if self.unsynced.len() > 50 {
                let _ = writeln!(
                    out,
                    "  ... and {} more (see `report --format json`)",
                    self.unsynced.len() - 50
                );
            }
        }
        for (title, outcome) in [
            ("Failures", "failed"),
            ("Conflicts", "conflict"),
            ("Drift (CRM-side edits kept)", "drift"),
            ("Deferred", "deferred"),
            ("Skipped", "skipped"),
        ] {
            let rows: Vec<&ReportItem> =
                self.items.iter().filter(|i| i.outcome == outcome).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{title} ({}):", rows.len());
            for item in rows.iter().take(50) {
                let _ = write!(
                    out,
                    "  - {} {}",
                    item.kind,
                    item.source_id
                        .as_deref()
                        .or(item.target_id.as_deref())
                        .unwrap_or("-")
                );
                let _ = write!(out, ": {}", item.reason);
                if !item.detail.is_null() {
                    let _ = write!(out, " {}", item.detail);
                }
                let _ = writeln!(out);
            }
            if rows.len() > 50 {
                let _ = writeln!(
                    out,
                    "  ... and {} more (see `report --format json`)",
                    rows.len() - 50
                );
            }
        }
        out
    }
}

/// One line per field: `customers.registered_at: 1 value could not be read (0000-00-00 00:00:00);
/// record 123`. Samples are dates, ids or a value's shape, never personal data.
pub fn unreadable_lines(unreadable: &BTreeMap<String, FieldTally>) -> Vec<String> {
    unreadable
        .iter()
        .map(|(field, t)| {
            let mut line = format!(
                "{field}: {} could not be read ({})",
                if t.count == 1 {
                    "1 value".to_string()
                } else {
                    format!("{} values", t.count)
                },
                crate::decode::clean(&t.sample, 60)
            );
            if !t.ids.is_empty() {
                let more = if t.count > t.ids.len() as u64 {
                    ", …"
                } else {
                    ""
                };
                let _ = write!(
                    line,
                    "; record{} {}{more}",
                    if t.count == 1 { "" } else { "s" },
                    t.ids
                        .iter()
                        .map(|i| crate::decode::clean(i, 40))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            line
        })
        .collect()
}

impl RunReport {
    /// Nothing failed, nothing was left for later, nothing waits for a person, and the run
    /// finished: only then does "no write" mean both sides agree.
    fn in_step(&self) -> bool {
        self.status == "succeeded"
            && self.unsynced.is_empty()
            && self
                .kinds
                .values()
                .all(|c| c.failed == 0 && c.deferred == 0 && c.conflicts == 0)
    }

    /// `, 2 failed, 3 deferred` over all kinds (empty when every count is zero).
    fn left_undone(&self) -> String {
        let sum = |f: fn(&KindCounts) -> u64| self.kinds.values().map(f).sum::<u64>();
        let mut out = String::new();
        for (n, what) in [
            (sum(|c| c.failed), "failed"),
            (sum(|c| c.deferred), "deferred"),
            (sum(|c| c.conflicts), "in conflict"),
            (self.unsynced.len() as u64, "left unsynced"),
        ] {
            if n > 0 {
                let _ = write!(out, ", {n} {what}");
            }
        }
        out
    }
}

/// What the reconciler stores in `runs.summary`: the counts and notes of the run. Items and API
/// usage live in their own tables and are joined in by [`load`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    #[serde(default)]
    pub kinds: BTreeMap<String, KindCounts>,
    #[serde(default)]
    pub notes: Vec<String>,
    /// Daily quota left at the end of the run, as GHL last reported it.
    #[serde(default)]
    pub ghl_daily_remaining: Option<u64>,
    /// Values that could not be read, per `list.field`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unreadable: BTreeMap<String, FieldTally>,
    #[serde(default)]
    pub unsynced: Vec<UnsyncedRecord>,
    /// A dry run's writes as planned, per kind and operation (`None` for a real run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<dry_run::DryRunPlan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_out: Option<KeptOutSummary>,
}

/// Which of a run's listed items a report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemWindow {
    pub offset: u64,
    /// `None`: all of them.
    pub limit: Option<u64>,
}

impl ItemWindow {
    /// Every item: the reports `sync` and `report` print or write.
    pub const ALL: ItemWindow = ItemWindow {
        offset: 0,
        limit: None,
    };
    /// No item, the counts only (metrics).
    pub const NONE: ItemWindow = ItemWindow {
        offset: 0,
        limit: Some(0),
    };
}

/// Builds the report of one run from the state database, with every listed item.
pub fn load(store: &Store, run_id: i64) -> Result<Option<RunReport>, StoreError> {
    load_window(store, run_id, ItemWindow::ALL)
}

/// Builds the report of one run with the listed items in `window` only (the dashboard's pages,
/// whose memory must not grow with the size of a run); `items_total` counts them all.
pub fn load_window(
    store: &Store,
    run_id: i64,
    window: ItemWindow,
) -> Result<Option<RunReport>, StoreError> {
    let Some(run) = store.run(run_id)? else {
        return Ok(None);
    };
    let mut summary: RunSummary = serde_json::from_value(run.summary.clone()).unwrap_or_default();
    if let Some(n) = stands_for(&run.summary) {
        summary.notes.insert(
            0,
            format!(
                "This run stands for {n} runs of this hour that changed nothing; the others were thinned after a day (report.keep_days keeps runs with writes or failures whole)."
            ),
        );
    }
    let mut api: BTreeMap<String, ApiUsage> = BTreeMap::new();
    store.each_api_call(run_id, |call| {
        let r = &call.record;
        let usage = api.entry(r.api.clone()).or_default();
        usage.requests += 1;
        *usage
            .requests_by_method
            .entry(r.method.clone())
            .or_default() += 1;
        if is_write(&r.method, &r.path) {
            usage.writes += 1;
        }
        if r.attempt > 1 {
            usage.retries += 1;
        }
        if r.status == Some(429) {
            usage.rate_limited += 1;
        }
        if r.error_class.is_some() {
            usage.failed += 1;
        }
        Ok(())
    })?;
    if let Some(ghl) = api.get_mut("ghl") {
        ghl.daily_remaining = summary.ghl_daily_remaining;
    }
    // Plain creates, links and updates are counted, not listed; everything else is news.
    let (items, items_total) = store.listed_run_items(run_id, window.offset, window.limit)?;
    let items = items
        .into_iter()
        .map(|i| ReportItem {
            kind: i.kind.as_str().to_string(),
            outcome: item_outcome_label(&i),
            source_id: Some(i.source_id).filter(|s| !s.is_empty()),
            target_id: i.target_id,
            reason: i.reason.unwrap_or_else(|| i.action.clone()),
            detail: i.detail,
        })
        .collect();
    Ok(Some(RunReport {
        run_id: run.id,
        started_at: run
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        finished_at: run
            .finished_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        status: run.status.as_str().to_string(),
        dry_run: run.dry_run,
        full: run.full,
        kinds: summary.kinds,
        api,
        notes: summary.notes,
        unreadable: summary.unreadable,
        items,
        items_total,
        unsynced: summary.unsynced,
        kept_out: summary.kept_out,
    }))
}

/// How many no-op runs of its hour a kept run stands for, once the others were thinned
/// (`Store::prune_history`); `None` for a run that stands for itself only.
pub fn stands_for(summary: &serde_json::Value) -> Option<u64> {
    summary["stands_for"].as_u64().filter(|n| *n > 1)
}

/// The report's word for a stored item: parked conflicts and drift are named by the planner's
/// action, everything else by its outcome.
fn item_outcome_label(item: &RunItem) -> String {
    match (item.outcome, item.action.as_str()) {
        (_, "conflict") => "conflict".into(),
        (_, "drift") => "drift".into(),
        (ItemOutcome::Applied, "delete") => "deleted".into(),
        (ItemOutcome::Parked, _) => "conflict".into(),
        (ItemOutcome::Planned, _) => "planned".into(),
        (o, _) => o.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_values_are_one_line_per_field_in_text_and_html() {
        let mut unreadable = BTreeMap::new();
        unreadable.insert(
            "customers.registered_at".to_string(),
            FieldTally {
                count: 1,
                sample: "0000-00-00 00:00:00".into(),
                ids: vec!["123".into()],
            },
        );
        unreadable.insert(
            "contacts.dateOfBirth".to_string(),
            FieldTally {
                count: 5,
                sample: "<b>\u{1b}[2J".into(),
                ids: vec!["a".into(), "b".into(), "c".into()],
            },
        );
        let r = RunReport {
            run_id: 1,
            started_at: "2026-12-01T00:00:00Z".into(),
            finished_at: None,
            status: "succeeded".into(),
            dry_run: false,
            full: false,
            kinds: BTreeMap::new(),
            api: BTreeMap::new(),
            notes: Vec::new(),
            unreadable,
            items: Vec::new(),
            items_total: 0,
            unsynced: Vec::new(),
            kept_out: None,
        };
        let text = r.to_text();
        assert!(text.contains(
            "  - customers.registered_at: 1 value could not be read (0000-00-00 00:00:00); record 123\n"
        ));
        assert!(text.contains(
            "  - contacts.dateOfBirth: 5 values could not be read (<b>[2J); records a, b, c, …\n"
        ));
        assert!(
            !text.contains('\u{1b}'),
            "no control character reaches the report"
        );
        let html = html::render_run(&r, &[]).unwrap();
        assert!(html.contains("Values that could not be read"));
        assert!(html.contains("&lt;b&gt;[2J"), "escaped");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["unreadable"]["customers.registered_at"]["count"], 1);
    }
}
