//! The webhook queue: events as received, kept until a pass that started after them ends
//! successfully. The receiver answers 200 only once its row is committed, so a crash after
//! the answer loses nothing: the next start finds the row pending and wakes the pair.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use super::{Result, Store, parse_opt_ts, parse_ts, ts};

/// An event to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEvent<'a> {
    /// Who sent it, e.g. `hotspotsystem`.
    pub source: &'a str,
    /// e.g. `customer.create`.
    pub event_type: &'a str,
    pub location_id: Option<&'a str>,
    pub record_id: &'a str,
    /// The body as received.
    pub body: &'a [u8],
    pub received_at: DateTime<Utc>,
}

/// A queued event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: i64,
    pub source: String,
    pub event_type: String,
    pub location_id: Option<String>,
    pub record_id: String,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, source, event_type, location_id, record_id, body, received_at, processed_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(WebhookEvent, String, Option<String>)> {
    Ok((
        WebhookEvent {
            id: r.get(0)?,
            source: r.get(1)?,
            event_type: r.get(2)?,
            location_id: r.get(3)?,
            record_id: r.get(4)?,
            body: r.get(5)?,
            received_at: DateTime::<Utc>::MIN_UTC,
            processed_at: None,
        },
        r.get(6)?,
        r.get(7)?,
    ))
}

fn finish(
    (mut e, received, processed): (WebhookEvent, String, Option<String>),
) -> Result<WebhookEvent> {
    e.received_at = parse_ts("webhook_events.received_at", &received)?;
    e.processed_at = parse_opt_ts("webhook_events.processed_at", processed)?;
    Ok(e)
}

impl Store {
    /// Queues `event`, committed when this returns. `false`: the same event (source, type and
    /// record) is already queued or was processed, and nothing was written.
    pub fn insert_webhook_event(&self, event: &NewWebhookEvent<'_>) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO webhook_events
                 (source, event_type, location_id, record_id, body, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (source, event_type, record_id) DO NOTHING",
            (
                event.source,
                event.event_type,
                event.location_id,
                event.record_id,
                event.body,
                ts(event.received_at),
            ),
        )?;
        Ok(n == 1)
    }

    /// Records an event the receiver acted on at once (nothing for a pass to do): stored
    /// processed, so that a replay of it is known. `false`: already recorded, nothing written.
    pub fn record_handled_webhook_event(&self, event: &NewWebhookEvent<'_>) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO webhook_events
                 (source, event_type, location_id, record_id, body, received_at, processed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT (source, event_type, record_id) DO NOTHING",
            (
                event.source,
                event.event_type,
                event.location_id,
                event.record_id,
                event.body,
                ts(event.received_at),
            ),
        )?;
        Ok(n == 1)
    }

    /// Forgets the processed events of `source` received before `before`; returns how many.
    pub fn forget_webhook_events(&self, source: &str, before: DateTime<Utc>) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM webhook_events
             WHERE source = ?1 AND processed_at IS NOT NULL AND received_at < ?2",
            (source, ts(before)),
        )?)
    }

    /// The events no successful pass has covered yet, oldest first.
    pub fn pending_webhook_events(&self) -> Result<Vec<WebhookEvent>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM webhook_events WHERE processed_at IS NULL ORDER BY id"
        ))?;
        let rows = stmt.query_map([], row)?;
        rows.map(|r| finish(r?)).collect()
    }

    /// Every queued event, processed or not, newest first (at most `limit`).
    pub fn webhook_events(&self, limit: usize) -> Result<Vec<WebhookEvent>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM webhook_events ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], row)?;
        rows.map(|r| finish(r?)).collect()
    }

    /// The newest pending event's id: a pass that starts now covers the events up to it.
    pub fn webhook_events_high_water(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT MAX(id) FROM webhook_events WHERE processed_at IS NULL",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Marks the pending events up to `up_to` (an id from [`Store::webhook_events_high_water`])
    /// processed at `now`, and forgets processed events older than `keep_days`; returns how
    /// many were marked.
    pub fn mark_webhook_events_processed(
        &self,
        up_to: i64,
        now: DateTime<Utc>,
        keep_days: u32,
    ) -> Result<usize> {
        self.transaction(|s| {
            let marked = s.conn.execute(
                "UPDATE webhook_events SET processed_at = ?1
                 WHERE processed_at IS NULL AND id <= ?2",
                (ts(now), up_to),
            )?;
            s.conn.execute(
                "DELETE FROM webhook_events WHERE processed_at IS NOT NULL AND processed_at < ?1",
                [ts(now - chrono::Duration::days(i64::from(keep_days)))],
            )?;
            Ok(marked)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(record: &'a str, at: DateTime<Utc>) -> NewWebhookEvent<'a> {
        NewWebhookEvent {
            source: "hotspotsystem",
            event_type: "customer.create",
            location_id: Some("4"),
            record_id: record,
            body: br#"{"id":"1"}"#,
            received_at: at,
        }
    }

    #[test]
    fn a_replay_inserts_nothing_and_processing_covers_only_what_came_before() {
        let s = Store::open_in_memory().unwrap();
        let t = Utc::now();
        assert_eq!(s.webhook_events_high_water().unwrap(), None);
        assert!(s.insert_webhook_event(&event("1", t)).unwrap());
        assert!(!s.insert_webhook_event(&event("1", t)).unwrap(), "replay");
        let other_type = NewWebhookEvent {
            event_type: "subscriber.create",
            ..event("1", t)
        };
        assert!(s.insert_webhook_event(&other_type).unwrap());
        let hw = s.webhook_events_high_water().unwrap().unwrap();
        // Received while the pass ran: not covered by it.
        assert!(s.insert_webhook_event(&event("2", t)).unwrap());
        assert_eq!(s.mark_webhook_events_processed(hw, t, 30).unwrap(), 2);
        let pending = s.pending_webhook_events().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].record_id, "2");
        assert_eq!(pending[0].location_id.as_deref(), Some("4"));
        assert_eq!(pending[0].body, br#"{"id":"1"}"#.to_vec());
        // Processed and replayed: still nothing new.
        assert!(!s.insert_webhook_event(&event("1", t)).unwrap());
        assert_eq!(s.webhook_events(10).unwrap().len(), 3);
    }

    #[test]
    fn processed_events_older_than_the_retention_are_forgotten() {
        let s = Store::open_in_memory().unwrap();
        let long_ago = Utc::now() - chrono::Duration::days(40);
        s.insert_webhook_event(&event("1", long_ago)).unwrap();
        s.mark_webhook_events_processed(1, long_ago, 30).unwrap();
        s.insert_webhook_event(&event("2", Utc::now())).unwrap();
        s.mark_webhook_events_processed(2, Utc::now(), 30).unwrap();
        let left: Vec<String> = s
            .webhook_events(10)
            .unwrap()
            .into_iter()
            .map(|e| e.record_id)
            .collect();
        assert_eq!(left, ["2"]);
    }
}
