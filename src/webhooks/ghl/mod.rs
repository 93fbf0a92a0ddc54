//! GHL's webhooks (`POST /hooks/ghl`): what an event says, and whether it is fresh.
//!
//! A body is `{"type": "ContactDelete", "locationId": ..., "id": ..., "timestamp": ...,
//! "webhookId": ..., ...record fields}` (reference §11). The receiver acts on the events that
//! change what the sync owns ([`Change`]); any other type is answered 200 and left alone.
//! `timestamp` comes as RFC 3339 (the guide's example) or, as other GHL payloads write dates,
//! epoch milliseconds (a number or a numeric string): each is read. A body more than
//! [`MAX_SKEW`] older or newer than this host's clock is refused, as the guide asks, and a
//! `webhookId` already recorded in the pair's state is a replay ([`apply`]).
//!
//! | answer | when | GHL |
//! |---|---|---|
//! | 200 | recorded in the state of the pairs of its location; or a replay (nothing changes); or for a location no pair syncs (a warning) | done |
//! | 400 | signed, but not JSON, or without `type`, `locationId`, `webhookId`, `timestamp`, or the `id` of an event acted on | retries |
//! | 401 | no signature verifies ([`signature`]), or not fresh: a stale body is refused as unauthenticated, since it is what a replay looks like; nothing stored | retries |
//! | 503 | a pair's state cannot take it now | retries |

pub mod apply;
pub mod signature;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::ghl::wire::Task;

/// The receiver's path.
pub const PATH: &str = "/hooks/ghl";
/// `webhook_events.source` of GHL's events (their `record_id` is the `webhookId`).
pub const SOURCE: &str = "ghl";

/// How far a body's `timestamp` may be from now, either way.
pub fn max_skew() -> Duration {
    Duration::minutes(5)
}

/// What an event asks of the sync's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `ContactDelete`: the contact `id` is gone.
    ContactDeleted,
    /// `ContactUpdate`, `ContactTagUpdate`, `ContactDndUpdate`: the contact `id` changed in GHL.
    ContactChanged,
    /// `TaskComplete`: the task `id`, as the payload shows it (marked completed).
    TaskCompleted(Box<Task>),
    /// `TaskDelete`: the task `id` is gone.
    TaskDeleted,
    /// `NoteDelete`: the note `id` is gone.
    NoteDeleted,
    /// Any other type: nothing to record.
    None,
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct GhlEvent {
    /// As GHL names it (`ContactDelete`).
    pub event_type: String,
    pub location_id: String,
    /// The record's id (`id`); empty for a type the receiver does not act on and that has none.
    pub record_id: String,
    pub webhook_id: String,
    pub timestamp: DateTime<Utc>,
    pub change: Change,
}

/// Why a signed body is no event this receiver can take. Names the field, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("the body has no `{0}`")]
    Missing(&'static str),
    #[error("`timestamp` is neither RFC 3339 nor epoch milliseconds")]
    BadTimestamp,
    /// serde's words are left out: they may quote a value of the record.
    #[error("the {0} record's fields do not decode as a task")]
    BadRecord(String),
}

/// Why a body is refused as not fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error("its timestamp is {0} s old, more than 300 s")]
    TooOld(i64),
    #[error("its timestamp is {0} s ahead of this host's clock, more than 300 s")]
    InTheFuture(i64),
}

/// Decodes a verified body.
pub fn decode(body: &[u8]) -> Result<GhlEvent, DecodeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(DecodeError::NotAnObject);
    };
    let event_type = text(&map, "type").ok_or(DecodeError::Missing("type"))?;
    let location_id = text(&map, "locationId").ok_or(DecodeError::Missing("locationId"))?;
    let webhook_id = text(&map, "webhookId").ok_or(DecodeError::Missing("webhookId"))?;
    let timestamp = timestamp(
        map.get("timestamp")
            .ok_or(DecodeError::Missing("timestamp"))?,
    )?;
    let change = match event_type.as_str() {
        "ContactDelete" => Change::ContactDeleted,
        "ContactUpdate" | "ContactTagUpdate" | "ContactDndUpdate" => Change::ContactChanged,
        "TaskComplete" => {
            let mut task: Task = serde_json::from_value(Value::Object(map.clone()))
                .map_err(|_| DecodeError::BadRecord(event_type.clone()))?;
            task.completed = Some(true);
            Change::TaskCompleted(Box::new(task))
        }
        "TaskDelete" => Change::TaskDeleted,
        "NoteDelete" => Change::NoteDeleted,
        _ => Change::None,
    };
    let record_id = match (text(&map, "id"), &change) {
        (Some(id), _) => id,
        (None, Change::None) => String::new(),
        (None, _) => return Err(DecodeError::Missing("id")),
    };
    Ok(GhlEvent {
        event_type,
        location_id,
        record_id,
        webhook_id,
        timestamp,
        change,
    })
}

/// Whether `at` is within [`max_skew`] of `now`.
pub fn fresh(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Stale> {
    let age = now - at;
    if age > max_skew() {
        Err(Stale::TooOld(age.num_seconds()))
    } else if -age > max_skew() {
        Err(Stale::InTheFuture((-age).num_seconds()))
    } else {
        Ok(())
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// RFC 3339, or epoch milliseconds as a number or a numeric string.
fn timestamp(v: &Value) -> Result<DateTime<Utc>, DecodeError> {
    let millis = match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(t.with_timezone(&Utc));
            }
            s.parse::<i64>().ok()
        }
        _ => None,
    };
    millis
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .ok_or(DecodeError::BadTimestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timestamp_form_reads_the_same_instant() {
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 18, 0, 0).unwrap();
        let ms = at.timestamp_millis();
        for ts in [
            Value::from("2026-12-02T18:00:00Z"),
            Value::from("2026-12-02T19:00:00+01:00"),
            Value::from("2026-12-02T18:00:00.000Z"),
            Value::from(ms),
            Value::from(ms.to_string()),
        ] {
            let body = serde_json::json!({
                "type": "ContactDelete", "locationId": "L", "id": "c1",
                "webhookId": "w1", "timestamp": ts,
            });
            let e = decode(body.to_string().as_bytes()).unwrap();
            assert_eq!(e.timestamp, at, "{ts}");
            assert_eq!(e.change, Change::ContactDeleted);
        }
        let bad = br#"{"type":"ContactDelete","locationId":"L","id":"c","webhookId":"w","timestamp":"yesterday"}"#;
        assert_eq!(decode(bad), Err(DecodeError::BadTimestamp));
    }

    #[test]
    fn freshness_is_five_minutes_either_way() {
        let now = Utc::now();
        assert_eq!(fresh(now - Duration::seconds(299), now), Ok(()));
        assert_eq!(fresh(now + Duration::seconds(299), now), Ok(()));
        assert!(matches!(
            fresh(now - Duration::seconds(301), now),
            Err(Stale::TooOld(301))
        ));
        assert!(matches!(
            fresh(now + Duration::seconds(301), now),
            Err(Stale::InTheFuture(301))
        ));
    }

    #[test]
    fn types_and_their_changes() {
        let body = |t: &str, extra: &str| {
            format!(
                r#"{{"type":"{t}","locationId":"L","id":"r1","webhookId":"w","timestamp":"2026-12-02T18:00:00Z"{extra}}}"#
            )
        };
        let task =
            decode(body("TaskComplete", r#","contactId":"c1","title":"Call""#).as_bytes()).unwrap();
        match task.change {
            Change::TaskCompleted(t) => {
                assert_eq!(t.completed, Some(true));
                assert_eq!(t.contact_id.as_deref(), Some("c1"));
                assert_eq!(t.title.as_deref(), Some("Call"));
            }
            other => panic!("{other:?}"),
        }
        // Real TaskComplete payloads may lack contactId: still a completion.
        assert!(matches!(
            decode(body("TaskComplete", "").as_bytes()).unwrap().change,
            Change::TaskCompleted(_)
        ));
        for (t, c) in [
            ("ContactUpdate", Change::ContactChanged),
            ("ContactTagUpdate", Change::ContactChanged),
            ("ContactDndUpdate", Change::ContactChanged),
            ("TaskDelete", Change::TaskDeleted),
            ("NoteDelete", Change::NoteDeleted),
            ("NoteCreate", Change::None),
        ] {
            assert_eq!(decode(body(t, "").as_bytes()).unwrap().change, c, "{t}");
        }
        let no_id = br#"{"type":"NoteDelete","locationId":"L","webhookId":"w","timestamp":1}"#;
        assert_eq!(decode(no_id), Err(DecodeError::Missing("id")));
        let no_hook = br#"{"type":"NoteDelete","locationId":"L","id":"n","timestamp":1}"#;
        assert_eq!(decode(no_hook), Err(DecodeError::Missing("webhookId")));
        let other = br#"{"type":"AppInstall","locationId":"L","webhookId":"w","timestamp":1}"#;
        assert_eq!(decode(other).unwrap().record_id, "");
    }
}
