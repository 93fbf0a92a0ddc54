//! Appointments of linked contacts: read from GHL, never written; they feed reports.

use chrono::Utc;
use rusqlite::Row;

use super::{Result, Store, ts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    pub contact_target_id: String,
    pub event_id: String,
    /// As GHL sent it (ISO 8601).
    pub start: Option<String>,
    pub end: Option<String>,
    pub status: Option<String>,
    pub title: Option<String>,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Appointment> {
    Ok(Appointment {
        contact_target_id: row.get(0)?,
        event_id: row.get(1)?,
        start: row.get(2)?,
        end: row.get(3)?,
        status: row.get(4)?,
        title: row.get(5)?,
    })
}

impl Store {
    pub fn upsert_appointment(&self, a: &Appointment) -> Result<()> {
        self.conn
            .prepare_cached(
                r#"INSERT INTO appointments (contact_target_id, event_id, start, "end", status, title, updated_at)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                   ON CONFLICT (contact_target_id, event_id) DO UPDATE SET
                      start = excluded.start, "end" = excluded."end", status = excluded.status,
                      title = excluded.title, updated_at = excluded.updated_at"#,
            )?
            .execute((
                &a.contact_target_id,
                &a.event_id,
                &a.start,
                &a.end,
                &a.status,
                &a.title,
                ts(Utc::now()),
            ))?;
        Ok(())
    }

    /// Replaces the stored appointments of one contact with a complete listing (so cancelled or
    /// deleted events disappear), atomically.
    pub fn replace_appointments(
        &self,
        contact_target_id: &str,
        list: &[Appointment],
    ) -> Result<()> {
        self.transaction(|s| {
            s.conn.execute(
                "DELETE FROM appointments WHERE contact_target_id = ?1",
                [contact_target_id],
            )?;
            for a in list {
                s.upsert_appointment(a)?;
            }
            Ok(())
        })
    }

    pub fn appointments_for(&self, contact_target_id: &str) -> Result<Vec<Appointment>> {
        let mut stmt = self.conn.prepare_cached(
            r#"SELECT contact_target_id, event_id, start, "end", status, title FROM appointments
               WHERE contact_target_id = ?1 ORDER BY start, event_id"#,
        )?;
        let rows = stmt.query_map([contact_target_id], from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub fn appointments(&self) -> Result<Vec<Appointment>> {
        let mut stmt = self.conn.prepare_cached(
            r#"SELECT contact_target_id, event_id, start, "end", status, title FROM appointments
               ORDER BY contact_target_id, start, event_id"#,
        )?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}
