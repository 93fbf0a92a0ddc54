//! The create journal (DESIGN.md §5): an intent is committed before a non-idempotent create is
//! sent; on success it is marked done in the same transaction that writes the link, so a crash
//! leaves either a pending intent (resolved next start by looking the marker up in GHL) or a
//! link — never a created record the state does not know about.

use chrono::{DateTime, Utc};
use rusqlite::Row;

use super::{Link, Result, Store, StoreError, parse_digest, parse_kind, parse_ts, ts};
use crate::model::{Digest, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentState {
    Pending,
    Done,
    /// Resolved without a link: the record was not found and the create will be planned again.
    Abandoned,
}

impl IntentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentState::Pending => "pending",
            IntentState::Done => "done",
            IntentState::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => IntentState::Pending,
            "done" => IntentState::Done,
            "abandoned" => IntentState::Abandoned,
            _ => {
                return Err(StoreError::BadValue {
                    column: "journal.state",
                    value: s.to_string(),
                });
            }
        })
    }
}

/// What is about to be created.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIntent {
    pub kind: Kind,
    pub source_id: String,
    /// e.g. `create_note`, `create_task`, `create_contact`, `create_business`.
    pub op: String,
    /// The reference the created record carries (note/task reference line, custom field value),
    /// by which a pending intent is found again in GHL.
    pub marker: String,
    pub payload_hash: Option<Digest>,
    pub run_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub id: i64,
    pub kind: Kind,
    pub source_id: String,
    pub op: String,
    pub marker: String,
    pub payload_hash: Option<Digest>,
    pub state: IntentState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub target_id: Option<String>,
    pub run_id: Option<i64>,
}

const COLUMNS: &str = "id, kind, source_id, op, marker, payload_hash, state, created_at, updated_at, target_id, run_id";

fn from_row(row: &Row<'_>) -> Result<Intent> {
    let kind: String = row.get(1)?;
    let state: String = row.get(6)?;
    let created: String = row.get(7)?;
    let updated: String = row.get(8)?;
    Ok(Intent {
        id: row.get(0)?,
        kind: parse_kind(&kind)?,
        source_id: row.get(2)?,
        op: row.get(3)?,
        marker: row.get(4)?,
        payload_hash: parse_digest("journal.payload_hash", row.get(5)?)?,
        state: IntentState::parse(&state)?,
        created_at: parse_ts("journal.created_at", &created)?,
        updated_at: parse_ts("journal.updated_at", &updated)?,
        target_id: row.get(9)?,
        run_id: row.get(10)?,
    })
}

impl Store {
    /// Records the intent (committed immediately unless inside a transaction); returns its id.
    pub fn journal_intent(&self, intent: &NewIntent) -> Result<i64> {
        let now = ts(Utc::now());
        self.conn
            .prepare_cached(
                "INSERT INTO journal (kind, source_id, op, marker, payload_hash, state,
                                      created_at, updated_at, run_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6, ?7)",
            )?
            .execute((
                intent.kind.as_str(),
                &intent.source_id,
                &intent.op,
                &intent.marker,
                intent.payload_hash.map(|d| d.to_hex()),
                now,
                intent.run_id,
            ))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks a pending intent done with the id the create returned.
    pub fn journal_done(&self, id: i64, target_id: &str) -> Result<()> {
        self.finish_intent(id, IntentState::Done, Some(target_id))
    }

    /// Marks a pending intent abandoned (read-back found nothing; the create may be planned again).
    pub fn journal_abandon(&self, id: i64) -> Result<()> {
        self.finish_intent(id, IntentState::Abandoned, None)
    }

    fn finish_intent(&self, id: i64, state: IntentState, target_id: Option<&str>) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE journal SET state = ?2, target_id = coalesce(?3, target_id), updated_at = ?4
             WHERE id = ?1 AND state = 'pending'",
            (id, state.as_str(), target_id, ts(Utc::now())),
        )?;
        if n == 0 {
            return Err(StoreError::IntentNotPending(id));
        }
        Ok(())
    }

    /// Atomically marks intent `journal_id` done (target = `link.target_id`) and writes `link`.
    pub fn complete_create(&self, journal_id: i64, link: &Link) -> Result<()> {
        self.transaction(|s| {
            s.journal_done(journal_id, &link.target_id)?;
            s.upsert_link(link)
        })
    }

    /// Intents still pending, oldest first: resolve these (by marker look-up) before any retry.
    pub fn pending_intents(&self) -> Result<Vec<Intent>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM journal WHERE state = 'pending' ORDER BY id"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(from_row(row)?);
        }
        Ok(out)
    }

    pub fn intent(&self, id: i64) -> Result<Option<Intent>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM journal WHERE id = ?1"))?;
        let mut rows = stmt.query([id])?;
        match rows.next()? {
            Some(row) => Ok(Some(from_row(row)?)),
            None => Ok(None),
        }
    }
}
