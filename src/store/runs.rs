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

    /// Items of a run in insertion order.
    pub fn run_items(&self, run_id: i64) -> Result<Vec<RunItem>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, source_id, target_id, action, outcome, reason, detail
             FROM run_items WHERE run_id = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query([run_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let kind: String = row.get(0)?;
            let outcome: String = row.get(4)?;
            let detail: String = row.get(6)?;
            out.push(RunItem {
                kind: parse_kind(&kind)?,
                source_id: row.get(1)?,
                target_id: row.get(2)?,
                action: row.get(3)?,
                outcome: ItemOutcome::parse(&outcome)?,
                reason: row.get(5)?,
                detail: serde_json::from_str(&detail)?,
            });
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
                "INSERT INTO api_calls (run_id, api, method, path, status, attempt, latency_ms, error_class, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
                ))?;
            }
            Ok(())
        })
    }

    pub fn api_calls(&self, run_id: i64) -> Result<Vec<ApiCall>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT run_id, api, method, path, status, attempt, latency_ms, error_class, at
             FROM api_calls WHERE run_id = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query([run_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let class: Option<String> = row.get(7)?;
            let at: String = row.get(8)?;
            let latency: i64 = row.get(6)?;
            out.push(ApiCall {
                run_id: row.get(0)?,
                record: AuditRecord {
                    api: row.get(1)?,
                    method: row.get(2)?,
                    path: row.get(3)?,
                    status: row.get(4)?,
                    attempt: row.get(5)?,
                    latency_ms: latency as u64,
                    error_class: class.as_deref().map(parse_error_class).transpose()?,
                },
                at: parse_ts("api_calls.at", &at)?,
            });
        }
        Ok(out)
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
