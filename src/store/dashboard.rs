//! Read-only aggregates for the web dashboard (`crate::dashboard`) and its `/metrics` and
//! `/healthz`: activity per day from the links' `extra` JSON, task progress, recent failures,
//! parked conflicts and the last successful run per kind.
//!
//! They rely on the reconciler's conventions for `links.extra`: contacts carry `location_id` /
//! `location_name`; notes carry `type` and `at` (transaction time); tasks carry `rule`,
//! `completed`, `edited`, `title`, `due`.

use chrono::{DateTime, Utc};

use super::{Appointment, ItemOutcome, Result, RunItem, RunRecord, Store};
use crate::model::Kind;

/// A count for one day (`YYYY-MM-DD`) and one group (a location, a transaction type).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DailyCount {
    pub day: String,
    pub group: String,
    pub count: u64,
}

/// Completion of the tasks one rule created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskProgress {
    pub rule: String,
    pub total: u64,
    pub completed: u64,
    /// Tasks a CRM user edited (title or due date), which the sync then leaves alone.
    pub edited: u64,
}

/// A task not completed yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenTask {
    pub rule: String,
    pub source_id: String,
    pub target_id: String,
    pub title: Option<String>,
    pub due: Option<String>,
}

/// A run item with the run it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct RunItemRow {
    pub run_id: i64,
    pub run_started_at: DateTime<Utc>,
    pub item: RunItem,
}

impl Store {
    /// Contacts created or adopted per day (UTC, from `first_linked_at`) and registration
    /// location (name when known, else id, else `(unknown)`), since `since`, newest day first.
    pub fn new_contacts_per_day(&self, since: DateTime<Utc>) -> Result<Vec<DailyCount>> {
        self.daily_counts(
            "SELECT substr(first_linked_at, 1, 10) AS day,
                    coalesce(json_extract(extra, '$.location_name'),
                             json_extract(extra, '$.location_id'), '(unknown)') AS grp,
                    count(*)
             FROM links WHERE kind = 'contact' AND substr(first_linked_at, 1, 10) >= ?1
             GROUP BY day, grp ORDER BY day DESC, grp",
            &since.format("%Y-%m-%d").to_string(),
        )
    }

    /// Notes per day of the transaction (its own date, as HotspotSystem wrote it; the link time
    /// when unknown) and transaction type, since `since`, newest day first.
    pub fn notes_per_day(&self, since: DateTime<Utc>) -> Result<Vec<DailyCount>> {
        self.daily_counts(
            "SELECT substr(coalesce(json_extract(extra, '$.at'), first_linked_at), 1, 10) AS day,
                    coalesce(json_extract(extra, '$.type'),
                             CASE WHEN instr(source_id, ':') > 0
                                  THEN substr(source_id, 1, instr(source_id, ':') - 1)
                                  ELSE '(unknown)' END) AS grp,
                    count(*)
             FROM links WHERE kind = 'note' AND day >= ?1
             GROUP BY day, grp ORDER BY day DESC, grp",
            &since.format("%Y-%m-%d").to_string(),
        )
    }

    fn daily_counts(&self, sql: &str, since_day: &str) -> Result<Vec<DailyCount>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([since_day], |r| {
            let n: i64 = r.get(2)?;
            Ok(DailyCount {
                day: r.get(0)?,
                group: r.get(1)?,
                count: n as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Completion per task rule, over tasks whose link is not tombstoned.
    pub fn task_progress(&self) -> Result<Vec<TaskProgress>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT coalesce(json_extract(extra, '$.rule'),
                             CASE WHEN instr(source_id, ':') > 0
                                  THEN substr(source_id, 1, instr(source_id, ':') - 1)
                                  ELSE '(unknown)' END) AS rule,
                    count(*),
                    coalesce(sum(json_extract(extra, '$.completed') = 1), 0),
                    coalesce(sum(json_extract(extra, '$.edited') = 1), 0)
             FROM links WHERE kind = 'task' AND status != 'tombstoned'
             GROUP BY rule ORDER BY rule",
        )?;
        let rows = stmt.query_map([], |r| {
            let (t, c, e): (i64, i64, i64) = (r.get(1)?, r.get(2)?, r.get(3)?);
            Ok(TaskProgress {
                rule: r.get(0)?,
                total: t as u64,
                completed: c as u64,
                edited: e as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Open (not completed, not tombstoned) tasks, earliest due first (undated last).
    pub fn open_tasks(&self, limit: usize) -> Result<Vec<OpenTask>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT coalesce(json_extract(extra, '$.rule'), ''), source_id, target_id,
                    json_extract(extra, '$.title'), json_extract(extra, '$.due') AS due
             FROM links
             WHERE kind = 'task' AND status != 'tombstoned'
               AND coalesce(json_extract(extra, '$.completed'), 0) != 1
             ORDER BY due IS NULL, due, source_id LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(OpenTask {
                rule: r.get(0)?,
                source_id: r.get(1)?,
                target_id: r.get(2)?,
                title: r.get(3)?,
                due: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Appointments starting at or after `now`, soonest first. Start times are compared as
    /// instants (GHL writes them with various offsets); unparsable starts are left out.
    pub fn upcoming_appointments(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Appointment>> {
        let mut list: Vec<(DateTime<Utc>, Appointment)> = self
            .appointments()?
            .into_iter()
            .filter_map(|a| {
                let start = DateTime::parse_from_rfc3339(a.start.as_deref()?)
                    .ok()?
                    .with_timezone(&Utc);
                (start >= now).then_some((start, a))
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.event_id.cmp(&b.1.event_id)));
        Ok(list.into_iter().take(limit).map(|(_, a)| a).collect())
    }

    /// Failed items of the newest `runs` runs, newest run first, at most `limit`.
    pub fn recent_failures(&self, runs: usize, limit: usize) -> Result<Vec<RunItemRow>> {
        let mut out = Vec::new();
        for run in self.runs(runs)? {
            for item in self.run_items(run.id)? {
                if item.outcome == ItemOutcome::Failed {
                    out.push(RunItemRow {
                        run_id: run.id,
                        run_started_at: run.started_at,
                        item,
                    });
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Conflicts parked for the user, as the newest finished run covering each kind left them
    /// (older runs' parked items were either re-parked by it or resolved).
    pub fn parked_conflicts(&self) -> Result<Vec<RunItemRow>> {
        let mut out = Vec::new();
        for kind in Kind::ALL {
            let Some(run) = self.latest_finished_run_for(kind)? else {
                continue;
            };
            for item in self.run_items(run.id)? {
                if item.kind == kind && item.outcome == ItemOutcome::Parked {
                    out.push(RunItemRow {
                        run_id: run.id,
                        run_started_at: run.started_at,
                        item,
                    });
                }
            }
        }
        Ok(out)
    }

    fn latest_finished_run_for(&self, kind: Kind) -> Result<Option<RunRecord>> {
        self.run_by_query(
            "SELECT id FROM runs
             WHERE status != 'running' AND dry_run = 0
               AND EXISTS (SELECT 1 FROM json_each(runs.kinds) WHERE value = ?1)
             ORDER BY id DESC LIMIT 1",
            (kind.as_str(),),
        )
    }

    /// The newest run that completed (status `succeeded` or `partial`: it went through all its
    /// records, even if some failed), not a dry run, covering `kind` (any kind when `None`);
    /// with `full_only`, only `--full` runs count.
    pub fn last_successful_run(
        &self,
        kind: Option<Kind>,
        full_only: bool,
    ) -> Result<Option<RunRecord>> {
        self.run_by_query(
            "SELECT id FROM runs
             WHERE status IN ('succeeded', 'partial') AND dry_run = 0
               AND (?2 = 0 OR full = 1)
               AND (?1 IS NULL OR EXISTS (SELECT 1 FROM json_each(runs.kinds) WHERE value = ?1))
             ORDER BY id DESC LIMIT 1",
            (kind.map(Kind::as_str), full_only),
        )
    }

    fn run_by_query(&self, sql: &str, params: impl rusqlite::Params) -> Result<Option<RunRecord>> {
        use rusqlite::OptionalExtension;
        let id: Option<i64> = self
            .conn
            .prepare_cached(sql)?
            .query_row(params, |r| r.get(0))
            .optional()?;
        match id {
            Some(id) => self.run(id),
            None => Ok(None),
        }
    }

    /// Number of recorded runs per status (`succeeded`, `partial`, ...), for `/metrics`.
    pub fn run_status_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status")?;
        let rows = stmt.query_map([], |r| {
            let n: i64 = r.get(1)?;
            Ok((r.get::<_, String>(0)?, n as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}
