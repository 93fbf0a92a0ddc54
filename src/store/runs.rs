//! Runs, their per-record items and the audit of API calls: what reports and `status` read.

use chrono::{DateTime, Utc};
use rusqlite::Row;

use super::{Result, Store, StoreError, parse_kind, parse_opt_ts, parse_ts, ts};
use crate::http::{AuditRecord, ErrorClass};
use crate::model::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    /// Everything planned was applied.
    Succeeded,
    /// Some records failed; the others were applied (exit code 1).
    Partial,
    /// The run could not proceed (configuration, authentication, a side could not be listed).
    Failed,
    /// Stopped early: signal, daily quota reserve reached, or a crash found on the next start.
    Aborted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "partial" => RunStatus::Partial,
            "failed" => RunStatus::Failed,
            "aborted" => RunStatus::Aborted,
            _ => {
                return Err(StoreError::BadValue {
                    column: "runs.status",
                    value: s.to_string(),
                });
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    /// Kinds the run covered (`--only`); all kinds for a plain `sync`.
    pub kinds: Vec<Kind>,
    pub full: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub dry_run: bool,
    /// Counts and notes chosen by the reconciler (opaque here).
    pub summary: serde_json::Value,
}

/// What happened to one planned action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemOutcome {
    /// Written to GHL (or linked, or state recorded).
    Applied,
    /// Dry run: would have been applied.
    Planned,
    /// Deliberately not done (no email/phone, policy keeps the CRM value, guard held, ...).
    Skipped,
    Failed,
    /// Postponed: quota reserve reached or run stopped.
    Deferred,
    /// A conflict parked for the user (policy `report`).
    Parked,
}

impl ItemOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::Applied => "applied",
            ItemOutcome::Planned => "planned",
            ItemOutcome::Skipped => "skipped",
            ItemOutcome::Failed => "failed",
            ItemOutcome::Deferred => "deferred",
            ItemOutcome::Parked => "parked",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "applied" => ItemOutcome::Applied,
            "planned" => ItemOutcome::Planned,
            "skipped" => ItemOutcome::Skipped,
            "failed" => ItemOutcome::Failed,
            "deferred" => ItemOutcome::Deferred,
            "parked" => ItemOutcome::Parked,
            _ => {
                return Err(StoreError::BadValue {
                    column: "run_items.outcome",
                    value: s.to_string(),
                });
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunItem {
    pub kind: Kind,
    pub source_id: String,
    pub target_id: Option<String>,
    /// The planner's action name, e.g. `create`, `update`, `link`, `tag_add`, `delete`, `drift`.
    pub action: String,
    pub outcome: ItemOutcome,
    /// Human-readable reason (skips, failures, conflicts).
    pub reason: Option<String>,
    /// Structured detail (changed fields, losing values of a conflict, error body class, ...).
    pub detail: serde_json::Value,
}

/// One stored audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub run_id: Option<i64>,
    pub record: AuditRecord,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodCount {
    pub api: String,
    pub method: String,
    pub calls: u64,
}

/// Aggregate of a run's API calls, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiCallStats {
    pub total: u64,
    pub by_method: Vec<MethodCount>,
    /// Attempts after the first.
    pub retries: u64,
    /// Answers with status 429.
    pub rate_limited: u64,
    /// Attempts that ended with any error class.
    pub errors: u64,
    pub max_latency_ms: u64,
    pub avg_latency_ms: u64,
}

fn error_class_str(c: ErrorClass) -> &'static str {
    match c {
        ErrorClass::Transient => "transient",
        ErrorClass::RateLimited => "rate_limited",
        ErrorClass::Auth => "auth",
        ErrorClass::Permanent => "permanent",
    }
}

fn parse_error_class(s: &str) -> Result<ErrorClass> {
    Ok(match s {
        "transient" => ErrorClass::Transient,
        "rate_limited" => ErrorClass::RateLimited,
        "auth" => ErrorClass::Auth,
        "permanent" => ErrorClass::Permanent,
        _ => {
            return Err(StoreError::BadValue {
                column: "api_calls.error_class",
                value: s.to_string(),
            });
        }
    })
}

const RUN_COLUMNS: &str = "id, kinds, full, started_at, finished_at, status, dry_run, summary";

fn run_from_row(row: &Row<'_>) -> Result<RunRecord> {
    let kinds: String = row.get(1)?;
    let kinds: Vec<String> = serde_json::from_str(&kinds)?;
    let started: String = row.get(3)?;
    let status: String = row.get(5)?;
    let summary: String = row.get(7)?;
    Ok(RunRecord {
        id: row.get(0)?,
        kinds: kinds
            .iter()
            .map(|k| parse_kind(k))
            .collect::<Result<Vec<_>>>()?,
        full: row.get(2)?,
        started_at: parse_ts("runs.started_at", &started)?,
        finished_at: parse_opt_ts("runs.finished_at", row.get(4)?)?,
        status: RunStatus::parse(&status)?,
        dry_run: row.get(6)?,
        summary: serde_json::from_str(&summary)?,
    })
}

/// The columns [`item_from_row`] reads, in its order.
pub(super) const ITEM_COLUMNS: &str = "kind, source_id, target_id, action, outcome, reason, detail";

pub(super) fn item_from_row(row: &Row<'_>) -> Result<RunItem> {
    let kind: String = row.get(0)?;
    let outcome: String = row.get(4)?;
    let detail: String = row.get(6)?;
    Ok(RunItem {
        kind: parse_kind(&kind)?,
        source_id: row.get(1)?,
        target_id: row.get(2)?,
        action: row.get(3)?,
        outcome: ItemOutcome::parse(&outcome)?,
        reason: row.get(5)?,
        detail: serde_json::from_str(&detail)?,
    })
}

/// The columns [`call_from_row`] reads, in its order.
pub(super) const CALL_COLUMNS: &str =
    "run_id, api, method, path, status, attempt, latency_ms, error_class, at, message";

pub(super) fn call_from_row(row: &Row<'_>) -> Result<ApiCall> {
    let class: Option<String> = row.get(7)?;
    let at: String = row.get(8)?;
    let latency: i64 = row.get(6)?;
    Ok(ApiCall {
        run_id: row.get(0)?,
        record: AuditRecord {
            api: row.get(1)?,
            method: row.get(2)?,
            path: row.get(3)?,
            status: row.get(4)?,
            attempt: row.get(5)?,
            latency_ms: latency as u64,
            error_class: class.as_deref().map(parse_error_class).transpose()?,
            message: row.get(9)?,
        },
        at: parse_ts("api_calls.at", &at)?,
    })
}

impl Store {
    fn query_runs(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(run_from_row(row)?);
        }
        Ok(out)
    }

    /// Records the start of a run (status `running`); returns its id.
    pub fn start_run(&self, kinds: &[Kind], full: bool, dry_run: bool) -> Result<i64> {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        self.conn.execute(
            "INSERT INTO runs (kinds, full, started_at, status, dry_run, summary)
             VALUES (?1, ?2, ?3, 'running', ?4, '{}')",
            (
                serde_json::to_string(&kinds)?,
                full,
                ts(Utc::now()),
                dry_run,
            ),
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(
        &self,
        id: i64,
        status: RunStatus,
        summary: &serde_json::Value,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at = ?2, status = ?3, summary = ?4 WHERE id = ?1",
            (
                id,
                ts(Utc::now()),
                status.as_str(),
                serde_json::to_string(summary)?,
            ),
        )?;
        Ok(())
    }

    /// Marks runs left `running` by a killed process as aborted; returns how many.
    pub fn abort_stale_runs(&self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE runs SET status = 'aborted', finished_at = ?1 WHERE status = 'running'",
            [ts(Utc::now())],
        )?)
    }

    /// The newest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.query_runs(
            &format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"),
            [limit as i64],
        )
    }

    pub fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        Ok(self
            .query_runs(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
            )?
            .pop())
    }

    pub fn latest_run(&self) -> Result<Option<RunRecord>> {
        Ok(self.runs(1)?.pop())
    }

    /// The newest run that covered `kind`, for `status`.
    pub fn latest_run_for(&self, kind: Kind) -> Result<Option<RunRecord>> {
        Ok(self
            .query_runs(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs
                     WHERE EXISTS (SELECT 1 FROM json_each(runs.kinds) WHERE value = ?1)
                     ORDER BY id DESC LIMIT 1"
                ),
                [kind.as_str()],
            )?
            .pop())
    }

    /// How many items failed in the newest `runs` runs (all of them, not a listed page).
    pub fn count_recent_failures(&self, runs: usize) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM run_items
             WHERE outcome = ?1
               AND run_id IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?2)",
            rusqlite::params![ItemOutcome::Failed.as_str(), runs as i64],
            |row| row.get(0),
        )?;
        Ok(n as u64)
    }

    /// Deletes all but the newest `keep` runs (items and audit rows go with them).
    pub fn prune_runs(&self, keep: u32) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM runs WHERE id NOT IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?1)",
            [keep],
        )?)
    }

    /// Age-based retention, as of `now`. A run that wrote or failed something (an applied or
    /// failed item, or a status other than `succeeded`) and every dry run is kept `keep_days`
    /// days. A no-op run (succeeded, nothing applied, nothing failed) is kept as long, but only
    /// the newest of each UTC hour per job (same kinds, same `full`): on a 5-minute schedule
    /// those are 12 identical rows an hour, and counting them against a run limit pushed the
    /// runs that mattered out within hours. The newest no-op run of each job is always the one
    /// its hour keeps, so `status`, `/healthz` and the parked-conflict view see it. The last
    /// day is kept whole: what happened today is what an operator looks at run by run. Runs
    /// still running are never touched. Items and API calls go with their run. Returns how
    /// many runs were deleted.
    pub fn prune_history(&self, keep_days: u32, now: DateTime<Utc>) -> Result<usize> {
        let cutoff = ts(now - chrono::Duration::days(i64::from(keep_days)));
        let whole_since = ts(now - chrono::Duration::days(1));
        let expired = self.conn.execute(
            "DELETE FROM runs WHERE finished_at IS NOT NULL AND started_at < ?1",
            [&cutoff],
        )?;
        const NO_OP: &str = "r.started_at < ?1
             AND r.finished_at IS NOT NULL AND r.status = 'succeeded' AND r.dry_run = 0
             AND NOT EXISTS (SELECT 1 FROM run_items i
                             WHERE i.run_id = r.id AND i.outcome IN ('applied', 'failed'))";
        // The run kept for an hour says how many it stands for (its own count included, and
        // those of runs it replaces that already stood for others), before they go.
        let thinned = self.transaction(|s| {
            s.conn.execute(
                &format!(
                    "WITH noop AS (
                       SELECT r.id, substr(r.started_at, 1, 13) AS hour, r.kinds, r.full,
                              COALESCE(json_extract(r.summary, '$.stands_for'), 1) AS n
                       FROM runs r WHERE {NO_OP}),
                     kept AS (
                       SELECT MAX(id) AS id, SUM(n) AS total FROM noop
                       GROUP BY hour, kinds, full HAVING COUNT(*) > 1)
                     UPDATE runs
                     SET summary = json_set(summary, '$.stands_for',
                                            (SELECT total FROM kept WHERE kept.id = runs.id))
                     WHERE id IN (SELECT id FROM kept)"
                ),
                [&whole_since],
            )?;
            Ok(s.conn.execute(
                &format!(
                    "DELETE FROM runs WHERE id IN (
                       SELECT r.id FROM runs r WHERE {NO_OP}
                       EXCEPT
                       SELECT MAX(r.id) FROM runs r WHERE {NO_OP}
                       GROUP BY substr(r.started_at, 1, 13), r.kinds, r.full)"
                ),
                [&whole_since],
            )?)
        })?;
        Ok(expired + thinned)
    }

    /// Inserts items of run `run_id` in one transaction.
    pub fn insert_run_items(&self, run_id: i64, items: &[RunItem]) -> Result<()> {
        self.transaction(|s| {
            let mut stmt = s.conn.prepare_cached(
                "INSERT INTO run_items (run_id, kind, source_id, target_id, action, outcome, reason, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for item in items {
                stmt.execute((
                    run_id,
                    item.kind.as_str(),
                    &item.source_id,
                    &item.target_id,
                    &item.action,
                    item.outcome.as_str(),
                    &item.reason,
                    serde_json::to_string(&item.detail)?,
                ))?;
            }
            Ok(())
        })
    }

    /// The items of a run a report lists (everything but plain applied creates, links and
    /// updates, which it counts), in insertion order, from `offset`, at most `limit`; and how
    /// many there are in all.
    pub fn listed_run_items(
        &self,
        run_id: i64,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<(Vec<RunItem>, u64)> {
        const LISTED: &str =
            "run_id = ?1 AND NOT (outcome = 'applied' AND action IN ('create', 'link', 'update'))";
        let total: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM run_items WHERE {LISTED}"),
            [run_id],
            |r| r.get(0),
        )?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS} FROM run_items WHERE {LISTED} ORDER BY id LIMIT ?2 OFFSET ?3"
        ))?;
        let limit = limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
        let mut rows = stmt.query((run_id, limit, offset.min(i64::MAX as u64) as i64))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(item_from_row(row)?);
        }
        Ok((out, total as u64))
    }

    /// Items of a run in insertion order.
    pub fn run_items(&self, run_id: i64) -> Result<Vec<RunItem>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS} FROM run_items WHERE run_id = ?1 ORDER BY id"
        ))?;
        let mut rows = stmt.query([run_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(item_from_row(row)?);
        }
        Ok(out)
    }

    /// Parked conflicts and failures of the latest run covering each kind are what `status`
    /// shows; this counts a run's items per (kind, outcome).
    pub fn run_item_counts(&self, run_id: i64) -> Result<Vec<(Kind, ItemOutcome, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, outcome, count(*) FROM run_items WHERE run_id = ?1
             GROUP BY kind, outcome ORDER BY kind, outcome",
        )?;
        let mut rows = stmt.query([run_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let kind: String = row.get(0)?;
            let outcome: String = row.get(1)?;
            let n: i64 = row.get(2)?;
            out.push((parse_kind(&kind)?, ItemOutcome::parse(&outcome)?, n as u64));
        }
        Ok(out)
    }

    /// Stores a batch of audit records taken at `at` (the flush time), in one transaction.
    pub fn insert_api_calls(
        &self,
        run_id: Option<i64>,
        records: &[AuditRecord],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let at = ts(at);
        self.transaction(|s| {
            let mut stmt = s.conn.prepare_cached(
                "INSERT INTO api_calls (run_id, api, method, path, status, attempt, latency_ms, error_class, at, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for r in records {
                stmt.execute((
                    run_id,
                    &r.api,
                    &r.method,
                    &r.path,
                    r.status,
                    r.attempt,
                    r.latency_ms as i64,
                    r.error_class.map(error_class_str),
                    &at,
                    &r.message,
                ))?;
            }
            Ok(())
        })
    }

    pub fn api_calls(&self, run_id: i64) -> Result<Vec<ApiCall>> {
        let mut out = Vec::new();
        self.each_api_call(run_id, |c| {
            out.push(c);
            Ok(())
        })?;
        Ok(out)
    }

    /// The API calls of a run in order, one at a time: an initial sync records hundreds of
    /// thousands, which a report only counts.
    pub fn each_api_call(
        &self,
        run_id: i64,
        mut f: impl FnMut(ApiCall) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CALL_COLUMNS} FROM api_calls WHERE run_id = ?1 ORDER BY id"
        ))?;
        let mut rows = stmt.query([run_id])?;
        while let Some(row) = rows.next()? {
            f(call_from_row(row)?)?;
        }
        Ok(())
    }

    pub fn api_call_stats(&self, run_id: i64) -> Result<ApiCallStats> {
        let (total, retries, rate_limited, errors, max_lat, avg_lat): (
            i64,
            i64,
            i64,
            i64,
            i64,
            f64,
        ) = self.conn.query_row(
            "SELECT count(*),
                        coalesce(sum(attempt > 1), 0),
                        coalesce(sum(status = 429), 0),
                        coalesce(sum(error_class IS NOT NULL), 0),
                        coalesce(max(latency_ms), 0),
                        coalesce(avg(latency_ms), 0.0)
                 FROM api_calls WHERE run_id = ?1",
            [run_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT api, method, count(*) FROM api_calls WHERE run_id = ?1
             GROUP BY api, method ORDER BY api, method",
        )?;
        let mut rows = stmt.query([run_id])?;
        let mut by_method = Vec::new();
        while let Some(row) = rows.next()? {
            let n: i64 = row.get(2)?;
            by_method.push(MethodCount {
                api: row.get(0)?,
                method: row.get(1)?,
                calls: n as u64,
            });
        }
        Ok(ApiCallStats {
            total: total as u64,
            by_method,
            retries: retries as u64,
            rate_limited: rate_limited as u64,
            errors: errors as u64,
            max_latency_ms: max_lat as u64,
            avg_latency_ms: avg_lat.round() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Link, MatchMethod};
    use chrono::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A finished run of `kinds` started at `start`, with `applied` and `failed` items and
    /// `calls` API calls, as a pass records it.
    #[allow(clippy::too_many_arguments)]
    fn record(
        store: &Store,
        kinds: &[Kind],
        full: bool,
        start: DateTime<Utc>,
        status: RunStatus,
        (applied, failed, skipped): (usize, usize, usize),
        calls: usize,
        summary: &serde_json::Value,
    ) -> i64 {
        let id = store.start_run(kinds, full, false).unwrap();
        store
            .conn
            .execute(
                "UPDATE runs SET started_at = ?2 WHERE id = ?1",
                (id, ts(start)),
            )
            .unwrap();
        let item = |n: usize, outcome: ItemOutcome| RunItem {
            kind: kinds[0],
            source_id: format!("{id}-{n}"),
            target_id: Some(format!("ghl-contact-{id}-{n}")),
            action: "create".into(),
            outcome,
            reason: (outcome != ItemOutcome::Applied).then(|| "no email or phone".into()),
            detail: serde_json::json!({"fields": ["email", "phone", "firstName"]}),
        };
        let mut items = Vec::new();
        items.extend((0..applied).map(|n| item(n, ItemOutcome::Applied)));
        items.extend((0..failed).map(|n| item(applied + n, ItemOutcome::Failed)));
        items.extend((0..skipped).map(|n| item(applied + failed + n, ItemOutcome::Skipped)));
        store.insert_run_items(id, &items).unwrap();
        let calls: Vec<AuditRecord> = (0..calls)
            .map(|n| AuditRecord {
                api: if n % 2 == 0 { "hotspot" } else { "ghl" }.into(),
                method: "GET".into(),
                path: "/contacts/{id}".into(),
                status: Some(200),
                attempt: 1,
                latency_ms: 120,
                error_class: None,
                message: None,
            })
            .collect();
        store
            .insert_api_calls(Some(id), &calls, start + Duration::seconds(5))
            .unwrap();
        store.finish_run(id, status, summary).unwrap();
        store
            .conn
            .execute(
                "UPDATE runs SET finished_at = ?2 WHERE id = ?1",
                (id, ts(start + Duration::seconds(10))),
            )
            .unwrap();
        id
    }

    #[test]
    fn retention_keeps_eventful_runs_for_the_days_and_one_no_op_run_per_hour_and_job() {
        let store = Store::open_in_memory().unwrap();
        let none = serde_json::json!({});
        let c = [Kind::Contact];
        let n = [Kind::Note];
        let ok = RunStatus::Succeeded;
        // 40 days ago: a run with writes, past the 30 days.
        let old = record(
            &store,
            &c,
            false,
            at("2026-10-23T10:00:00Z"),
            ok,
            (3, 0, 0),
            2,
            &none,
        );
        // 20 days ago: a failed run and a run with writes: kept.
        let failed = record(
            &store,
            &c,
            false,
            at("2026-11-12T10:00:00Z"),
            RunStatus::Failed,
            (0, 0, 0),
            1,
            &none,
        );
        let wrote = record(
            &store,
            &c,
            false,
            at("2026-11-12T10:05:00Z"),
            ok,
            (2, 1, 0),
            3,
            &none,
        );
        // Within one hour: three no-op contacts runs, two no-op notes runs, one with skips only.
        let c1 = record(
            &store,
            &c,
            false,
            at("2026-11-12T11:00:00Z"),
            ok,
            (0, 0, 0),
            2,
            &none,
        );
        let c2 = record(
            &store,
            &c,
            false,
            at("2026-11-12T11:05:00Z"),
            ok,
            (0, 0, 4),
            2,
            &none,
        );
        let c3 = record(
            &store,
            &c,
            false,
            at("2026-11-12T11:10:00Z"),
            ok,
            (0, 0, 0),
            2,
            &none,
        );
        let n1 = record(
            &store,
            &n,
            false,
            at("2026-11-12T11:00:00Z"),
            ok,
            (0, 0, 0),
            2,
            &none,
        );
        let n2 = record(
            &store,
            &n,
            false,
            at("2026-11-12T11:10:00Z"),
            ok,
            (0, 0, 0),
            2,
            &none,
        );
        // The next hour's single no-op run.
        let c4 = record(
            &store,
            &c,
            false,
            at("2026-11-12T12:00:00Z"),
            ok,
            (0, 0, 0),
            2,
            &none,
        );
        // Within the last day every run is kept, no-op or not.
        let today1 = record(
            &store,
            &c,
            false,
            at("2026-12-02T08:00:00Z"),
            ok,
            (0, 0, 0),
            2,
            &none,
        );
        let today2 = record(
            &store,
            &c,
            false,
            at("2026-12-02T08:05:00Z"),
            ok,
            (0, 0, 0),
            2,
            &none,
        );
        // A run still going is never touched, however old it looks.
        let running = store.start_run(&c, false, false).unwrap();
        store
            .conn
            .execute(
                "UPDATE runs SET started_at = '2026-09-01T00:00:00.000Z' WHERE id = ?1",
                [running],
            )
            .unwrap();

        let deleted = store.prune_history(30, at("2026-12-02T10:00:00Z")).unwrap();
        let kept: Vec<i64> = store.runs(100).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(
            kept,
            vec![running, today2, today1, c4, n2, c3, wrote, failed],
            "deleted {deleted}"
        );
        assert_eq!(deleted, 4);
        for gone in [old, c1, c2, n1] {
            assert!(store.run_items(gone).unwrap().is_empty());
            assert!(store.api_calls(gone).unwrap().is_empty());
        }
        assert_eq!(store.run_items(wrote).unwrap().len(), 3);
        assert_eq!(store.api_calls(wrote).unwrap().len(), 3);
        // The run kept for an hour is its summary: it says how many runs it stands for.
        let stands_for = |id| store.run(id).unwrap().unwrap().summary["stands_for"].as_u64();
        assert_eq!(stands_for(c3), Some(3));
        assert_eq!(stands_for(n2), Some(2));
        assert_eq!(stands_for(c4), None, "alone in its hour");
        assert_eq!(stands_for(today2), None);
        // Pruning again changes nothing: the count is not added twice.
        assert_eq!(
            store.prune_history(30, at("2026-12-02T10:05:00Z")).unwrap(),
            0
        );
        assert_eq!(stands_for(c3), Some(3));
    }

    /// The state after 30 days of the shipped schedule at 10,000 contacts, pruned as the daemon
    /// prunes. Assumptions (README, "Performance"): contacts every 5 min, notes every 10, tasks
    /// every 15, businesses hourly, a full pass daily; 10,000 contacts with a note and a task
    /// each; 10 new guests an hour (one contacts and one notes run each hour write 10 records
    /// with 12 calls); every other incremental run writes nothing and makes 2 calls; the full
    /// pass reads 10,000 contacts (200 calls) and records 500 skipped guests. Prints the size.
    #[test]
    fn state_size_after_30_days_of_the_default_schedule_at_10000_contacts() {
        let store = Store::open_in_memory().unwrap();
        store
            .transaction(|s| {
                for i in 0..10_000 {
                    for (kind, id) in [
                        (Kind::Contact, format!("{i}")),
                        (Kind::Note, format!("tx-{i}")),
                        (Kind::Task, format!("welcome:{i}")),
                    ] {
                        let mut l = Link::new(
                            kind,
                            id,
                            format!("ghl-{}-{i}", kind.as_str()),
                            MatchMethod::Created,
                        );
                        l.source_hash = Some(crate::model::Digest::of(b"source"));
                        l.target_hash = Some(crate::model::Digest::of(b"target"));
                        s.upsert_link(&l)?;
                    }
                }
                Ok(())
            })
            .unwrap();
        // A run summary of the size a pass writes (counts per kind, quota, requests by method).
        let summary = serde_json::json!({
            "kinds": Kind::ALL.iter().map(|k| (k.as_str().to_string(), serde_json::json!({
                "created": 0, "adopted": 0, "updated": 0, "unchanged": 10000, "skipped": 0,
                "failed": 0, "deleted": 0, "conflicts": 0, "drift": 0, "deferred": 0}))).collect::<serde_json::Map<_, _>>(),
            "requests": {"GET": 2, "POST": 0, "PUT": 0}, "retries": 0, "rate_limited": 0,
            "ghl_daily_remaining": 199000
        });
        let start = at("2026-11-01T00:00:00Z");
        let ok = RunStatus::Succeeded;
        let mut runs = 0;
        for minute in (0..30 * 24 * 60).step_by(5) {
            let t = start + Duration::minutes(minute);
            let busy_hour_slot = minute % 60 == 0;
            let mut run =
                |kinds: &[Kind], full: bool, items: (usize, usize, usize), calls: usize| {
                    record(&store, kinds, full, t, ok, items, calls, &summary);
                    runs += 1;
                };
            // The hour's 10 new guests are written by its first contacts and notes runs.
            let (items, calls) = if busy_hour_slot {
                ((10, 0, 0), 12)
            } else {
                ((0, 0, 0), 2)
            };
            run(&[Kind::Contact], false, items, calls);
            if minute % 10 == 0 {
                run(&[Kind::Note], false, items, calls);
            }
            if minute % 15 == 0 {
                run(&[Kind::Task], false, (0, 0, 0), 2);
            }
            if minute % 60 == 0 {
                run(&[Kind::Business], false, (0, 0, 0), 2);
            }
            if minute % (24 * 60) == 3 * 60 {
                run(&Kind::ALL, true, (0, 0, 500), 200);
            }
            if minute % 60 == 55 {
                store.prune_history(30, t).unwrap();
            }
        }
        let end = start + Duration::days(30);
        store.prune_history(30, end).unwrap();
        let pages: i64 = store
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        let page_size: i64 = store
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        let bytes = pages * page_size;
        let kept = store.runs(100_000).unwrap().len();
        println!(
            "30 days, default schedule, 10,000 contacts: {runs} runs made, {kept} kept, state {bytes} bytes ({:.1} MiB)",
            bytes as f64 / (1024.0 * 1024.0)
        );
        assert_eq!(runs, 30 * 553, "the schedule's runs");
        // Eventful runs (2 an hour) and the daily full passes are all kept; no-op runs are one
        // per hour and job.
        // The last day whole (553 runs); before it, per hour: contacts and notes one eventful
        // run and one no-op each, tasks and businesses one no-op each; plus the full passes.
        assert_eq!(kept, 29 * 24 * 6 + 29 + 553, "kept {kept} of {runs}");
        assert!(bytes < 64 * 1024 * 1024, "{bytes} bytes");
    }
}
