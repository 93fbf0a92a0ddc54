//! The webhook queue: events as received, pending until a targeted pass wrote their records
//! or a whole pass that started after them ended successfully. The receiver answers 200 only once its row is committed, so a crash after
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

/// The queue of one sender at a glance (`status`, `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WebhookQueue {
    pub source: String,
    pub pending: u64,
    pub oldest_pending_at: Option<DateTime<Utc>>,
    pub last_received_at: Option<DateTime<Utc>>,
    pub received_last_day: u64,
}

impl Store {
    /// Per sender that has sent anything still kept: pending events, the oldest of them, the
    /// newest event, and how many came in the 24 hours before `now`.
    pub fn webhook_queues(&self, now: DateTime<Utc>) -> Result<Vec<WebhookQueue>> {
        let mut stmt = self.conn.prepare(
            "SELECT source,
                    SUM(processed_at IS NULL),
                    MIN(CASE WHEN processed_at IS NULL THEN received_at END),
                    MAX(received_at),
                    SUM(received_at >= ?1)
             FROM webhook_events GROUP BY source ORDER BY source",
        )?;
        let rows = stmt.query_map([ts(now - chrono::Duration::days(1))], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (source, pending, oldest, last, day) = row?;
            out.push(WebhookQueue {
                source,
                pending: pending.max(0) as u64,
                oldest_pending_at: parse_opt_ts("webhook_events.received_at", oldest)?,
                last_received_at: parse_opt_ts("webhook_events.received_at", last)?,
                received_last_day: day.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Queues `event`, committed when this returns. `false`: the same event (source, type and
    /// record) is already queued or was processed, and nothing was written.
    pub fn insert_webhook_event(&self, event: &NewWebhookEvent<'_>) -> Result<bool> {
        self.insert_event(event, None)
    }

    /// Records an event the receiver acted on at once (nothing for a pass to do): stored
    /// processed, so that a replay of it is known. `false`: already recorded, nothing written.
    pub fn record_handled_webhook_event(&self, event: &NewWebhookEvent<'_>) -> Result<bool> {
        self.insert_event(event, Some(event.received_at))
    }

    fn insert_event(
        &self,
        event: &NewWebhookEvent<'_>,
        processed_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO webhook_events
                 (source, event_type, location_id, record_id, body, received_at, processed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (source, event_type, record_id) DO NOTHING",
            (
                event.source,
                event.event_type,
                event.location_id,
                event.record_id,
                event.body,
                ts(event.received_at),
                processed_at.map(ts),
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

    /// The events received at or after `since`, processed or not, oldest first.
    pub fn webhook_events_received_since(&self, since: DateTime<Utc>) -> Result<Vec<WebhookEvent>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM webhook_events WHERE received_at >= ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([ts(since)], row)?;
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
            s.forget_processed(now, keep_days)?;
            Ok(marked)
        })
    }

    /// Forgets processed events older than `keep_days`.
    fn forget_processed(&self, now: DateTime<Utc>, keep_days: u32) -> Result<()> {
        self.conn.execute(
            "DELETE FROM webhook_events WHERE processed_at IS NOT NULL AND processed_at < ?1",
            [ts(now - chrono::Duration::days(i64::from(keep_days)))],
        )?;
        Ok(())
    }

    /// Marks these events processed (a targeted pass wrote their records), and forgets
    /// processed events older than `keep_days`; returns how many were marked.
    pub fn mark_webhook_events_done(
        &self,
        ids: &[i64],
        now: DateTime<Utc>,
        keep_days: u32,
    ) -> Result<usize> {
        self.transaction(|s| {
            let mut stmt = s.conn.prepare(
                "UPDATE webhook_events SET processed_at = ?1 WHERE processed_at IS NULL AND id = ?2",
            )?;
            let mut marked = 0;
            for id in ids {
                marked += stmt.execute((ts(now), id))?;
            }
            drop(stmt);
            s.forget_processed(now, keep_days)?;
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
    fn a_targeted_pass_marks_just_its_events_and_recent_ones_are_found_by_time() {
        let s = Store::open_in_memory().unwrap();
        let now = Utc::now();
        let old = now - chrono::Duration::minutes(30);
        s.insert_webhook_event(&event("1", old)).unwrap();
        s.insert_webhook_event(&event("2", now)).unwrap();
        s.insert_webhook_event(&event("3", now)).unwrap();
        assert_eq!(s.mark_webhook_events_done(&[1, 3, 3], now, 30).unwrap(), 2);
        let pending: Vec<String> = s
            .pending_webhook_events()
            .unwrap()
            .into_iter()
            .map(|e| e.record_id)
            .collect();
        assert_eq!(pending, ["2"]);
        let recent: Vec<String> = s
            .webhook_events_received_since(now - chrono::Duration::minutes(10))
            .unwrap()
            .into_iter()
            .map(|e| e.record_id)
            .collect();
        assert_eq!(recent, ["2", "3"], "processed or not, oldest first");
    }

    #[test]
    fn the_queue_at_a_glance() {
        let s = Store::open_in_memory().unwrap();
        let now = Utc::now();
        assert!(s.webhook_queues(now).unwrap().is_empty());
        let two_days = now - chrono::Duration::days(2);
        s.insert_webhook_event(&event("1", two_days)).unwrap();
        s.insert_webhook_event(&event("2", now)).unwrap();
        s.insert_webhook_event(&event("3", now)).unwrap();
        s.mark_webhook_events_done(&[3], now, 30).unwrap();
        let q = s.webhook_queues(now).unwrap();
        assert_eq!(
            q,
            [WebhookQueue {
                source: "hotspotsystem".into(),
                pending: 2,
                oldest_pending_at: Some(parse_ts("t", &ts(two_days)).unwrap()),
                last_received_at: Some(parse_ts("t", &ts(now)).unwrap()),
                received_last_day: 2,
            }]
        );
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
