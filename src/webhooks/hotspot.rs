//! What a HotspotSystem webhook says: which record is new — its event type, id and location
//! (reference §8). The record itself is read from the REST listing by the targeted pass
//! ([`crate::reconcile::named_records`]), so the body's other fields are never trusted, nor
//! need they decode: only the id, the location and, without `?event=`, the names of the fields
//! count, and an unknown field or an odd value elsewhere in the record refuses nothing.
//!
//! The body is the flat record, but its key names may differ from REST's (`UserName` where REST
//! writes `user_name`): every key is read in snake case as well, the REST spelling winning when
//! a body has both. The event type comes from the callback URL (`?event=customer.create`), as
//! the operator sets it per webhook; without it, it is told from the fields (a transaction's
//! date, package or answers; else a guest). A subscriber has a customer's fields, and paid and
//! voucher transactions share theirs: those need `?event=` (a body that cannot be told apart
//! is refused naming why). The body may also be a JSON array of such records (a batch); each
//! is an event of its own.

use serde_json::{Map, Value};

use crate::config::TransactionType;

/// A HotspotSystem webhook event type (all creation-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    CustomerCreate,
    SubscriberCreate,
    TransactionCreate(TransactionType),
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::CustomerCreate,
        EventType::SubscriberCreate,
        EventType::TransactionCreate(TransactionType::Mac),
        EventType::TransactionCreate(TransactionType::Voucher),
        EventType::TransactionCreate(TransactionType::Social),
        EventType::TransactionCreate(TransactionType::Paid),
    ];

    /// The name HotspotSystem's Control Center gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CustomerCreate => "customer.create",
            EventType::SubscriberCreate => "subscriber.create",
            EventType::TransactionCreate(TransactionType::Mac) => "transaction.mac.create",
            EventType::TransactionCreate(TransactionType::Voucher) => "transaction.voucher.create",
            EventType::TransactionCreate(TransactionType::Social) => "transaction.social.create",
            EventType::TransactionCreate(TransactionType::Paid) => "transaction.paid.create",
        }
    }

    /// Reads a name as [`EventType::as_str`] writes it (case and surrounding spaces ignored).
    pub fn parse(text: &str) -> Option<EventType> {
        let text = text.trim().to_ascii_lowercase();
        EventType::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct HotspotEvent {
    pub event: EventType,
    /// The record's own `location_id` (transactions), else `?location=` of the callback URL;
    /// customers carry none, so without that parameter it is unknown.
    pub location_id: Option<String>,
    pub record_id: String,
    /// The record as received (the whole body, or its element in a batch).
    pub body: Vec<u8>,
}

/// Why a body is no event this receiver can take. Names the field or parameter at fault,
/// never a value of the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "unknown event type {0:?} in the callback URL's `event` parameter (expected one of customer.create, subscriber.create, transaction.mac.create, transaction.voucher.create, transaction.social.create, transaction.paid.create)"
    )]
    UnknownEvent(String),
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a JSON object (nor an array of them)")]
    NotAnObject,
    #[error(
        "the event type cannot be told from the body: {0}; add ?event=<type> to the webhook's callback URL"
    )]
    Undetermined(&'static str),
    #[error("the {0} record has no `id`")]
    NoId(EventType),
}

/// Decodes a webhook's body: `event` and `location` are the callback URL's parameters.
pub fn decode(
    event: Option<&str>,
    location: Option<&str>,
    body: &[u8],
) -> Result<Vec<HotspotEvent>, DecodeError> {
    let declared = match event.map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => {
            Some(EventType::parse(e).ok_or_else(|| DecodeError::UnknownEvent(e.to_string()))?)
        }
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let location = location.map(str::trim).filter(|l| !l.is_empty());
    match value {
        Value::Object(map) => Ok(vec![decode_record(declared, location, map, body.to_vec())?]),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => {
                    let raw = serde_json::to_vec(&map).unwrap_or_default();
                    decode_record(declared, location, map, raw)
                }
                _ => Err(DecodeError::NotAnObject),
            })
            .collect(),
        _ => Err(DecodeError::NotAnObject),
    }
}

/// Decodes an event as it was queued (its type and one record).
pub fn decode_queued(
    event_type: &str,
    location: Option<&str>,
    body: &[u8],
) -> Result<HotspotEvent, DecodeError> {
    let mut events = decode(Some(event_type), location, body)?;
    match (events.pop(), events.is_empty()) {
        (Some(e), true) => Ok(e),
        _ => Err(DecodeError::NotAnObject),
    }
}

fn decode_record(
    declared: Option<EventType>,
    location: Option<&str>,
    map: Map<String, Value>,
    body: Vec<u8>,
) -> Result<HotspotEvent, DecodeError> {
    let map = rest_keys(map);
    let event = match declared {
        Some(e) => e,
        None => infer(&map)?,
    };
    let record_id = match map.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(DecodeError::NoId(event)),
    };
    let record_location = match map.get("location_id") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(HotspotEvent {
        event,
        location_id: record_location.or(location.map(str::to_string)),
        record_id,
        body,
    })
}

/// The record with every key in REST's snake case (`UserName` → `user_name`,
/// `ActionDateGMT` → `action_date_gmt`); a key already in REST's spelling wins over another
/// spelling of it.
fn rest_keys(map: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut others = Vec::new();
    for (k, v) in map {
        let snake = snake_case(&k);
        if snake == k {
            out.insert(k, v);
        } else {
            others.push((snake, v));
        }
    }
    for (k, v) in others {
        out.entry(k).or_insert(v);
    }
    out
}

fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    let mut prev: Option<char> = None;
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit()) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '-' || c == ' ' {
            out.push('_');
        } else {
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

/// The event type a record's fields show, when no `?event=` names it.
fn infer(map: &Map<String, Value>) -> Result<EventType, DecodeError> {
    let has = |k: &str| map.contains_key(k);
    let transaction = has("action_date_gmt") || has("package_id") || has("operator");
    if transaction {
        let answers = (1..=5).any(|i| has(&format!("q{i}")) || has(&format!("a{i}")));
        let social = map.keys().any(|k| k.starts_with("social_"));
        let paid_or_voucher = has("amount") || has("currency") || has("smscountry");
        return match (answers, social, paid_or_voucher) {
            (true, false, false) => Ok(EventType::TransactionCreate(TransactionType::Mac)),
            (false, true, false) => Ok(EventType::TransactionCreate(TransactionType::Social)),
            (false, false, true) => Err(DecodeError::Undetermined(
                "paid and voucher transactions have the same fields",
            )),
            (false, false, false) if has("package_id") => {
                Ok(EventType::TransactionCreate(TransactionType::Mac))
            }
            _ => Err(DecodeError::Undetermined(
                "the fields of a transaction of no one type",
            )),
        };
    }
    if has("user_name") || has("registered_at") || has("email") || has("phone") {
        // A subscriber has a customer's fields; only `?event=subscriber.create` tells it.
        return Ok(EventType::CustomerCreate);
    }
    Err(DecodeError::Undetermined(
        "neither a guest's fields (user_name, email, phone) nor a transaction's",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_key_spellings_decode_to_the_rest_record() {
        let beam = br#"{"id":"59243583","UserName":"BE-72-B3-40-F9-BE","name":null,"email":"a@example.com","company_name":null}"#;
        let rest = br#"{"id":"59243583","user_name":"BE-72-B3-40-F9-BE","name":null,"email":"a@example.com","company_name":null}"#;
        let pascal = br#"{"Id":59243583,"UserName":"BE-72-B3-40-F9-BE","Email":"a@example.com","RegisteredAt":"2026-12-01 10:00:00"}"#;
        for body in [&beam[..], &rest[..], &pascal[..]] {
            let events = decode(Some("customer.create"), Some("4"), body).unwrap();
            assert_eq!(events.len(), 1);
            let e = &events[0];
            assert_eq!(e.event, EventType::CustomerCreate);
            assert_eq!(e.record_id, "59243583");
            assert_eq!(e.location_id.as_deref(), Some("4"));
            assert_eq!(e.body, body.to_vec());
        }
    }

    #[test]
    fn the_rest_spelling_wins_when_both_are_present() {
        let body = br#"{"Id":"other","id":"1","UserName":"u"}"#;
        let e = decode(Some("customer.create"), None, body).unwrap();
        assert_eq!(e[0].record_id, "1");
        assert_eq!(e[0].location_id, None);
    }

    #[test]
    fn the_type_is_inferred_when_the_url_does_not_name_it() {
        let guest = br#"{"id":"7","UserName":"AA-BB-CC-DD-EE-FF","email":"g@example.com"}"#;
        assert_eq!(
            decode(None, None, guest).unwrap()[0].event,
            EventType::CustomerCreate
        );
        let mac = br#"{"id":12,"location_id":4,"user_name":"u","action_date_gmt":"2026-12-01T10:00:00.000Z","package_id":"1","q1":"Age?","a1":"30"}"#;
        let e = &decode(None, Some("9"), mac).unwrap()[0];
        assert_eq!(e.event, EventType::TransactionCreate(TransactionType::Mac));
        assert_eq!(e.record_id, "12");
        assert_eq!(
            e.location_id.as_deref(),
            Some("4"),
            "the record's own location wins"
        );
        let social = br#"{"id":13,"location_id":"4","action_date_gmt":"2026-12-01T10:00:00.000Z","social_network":"facebook"}"#;
        assert_eq!(
            decode(None, None, social).unwrap()[0].event,
            EventType::TransactionCreate(TransactionType::Social)
        );
        let paid = br#"{"id":14,"location_id":"4","action_date_gmt":"2026-12-01T10:00:00.000Z","amount":5,"currency":"EUR"}"#;
        let e = decode(None, None, paid).unwrap_err();
        assert!(matches!(e, DecodeError::Undetermined(_)), "{e}");
        assert!(e.to_string().contains("?event="), "{e}");
        let e = &decode(Some("transaction.paid.create"), None, paid).unwrap()[0];
        assert_eq!(e.event, EventType::TransactionCreate(TransactionType::Paid));
    }

    #[test]
    fn a_batch_is_one_event_per_record() {
        let body = br#"[{"id":"1","UserName":"a"},{"id":"2","UserName":"b"}]"#;
        let events = decode(Some("subscriber.create"), Some("4"), body).unwrap();
        let ids: Vec<&str> = events.iter().map(|e| e.record_id.as_str()).collect();
        assert_eq!(ids, ["1", "2"]);
        assert!(
            events
                .iter()
                .all(|e| e.event == EventType::SubscriberCreate)
        );
        // Each element is kept on its own, and decodes again as queued.
        let again = decode_queued("subscriber.create", Some("4"), &events[1].body).unwrap();
        assert_eq!(again, events[1]);
    }

    #[test]
    fn bad_bodies_say_why() {
        assert!(matches!(
            decode(Some("customer.delete"), None, b"{}"),
            Err(DecodeError::UnknownEvent(e)) if e == "customer.delete"
        ));
        assert!(matches!(
            decode(None, None, b"not json"),
            Err(DecodeError::NotJson(_))
        ));
        assert_eq!(
            decode(None, None, b"\"text\""),
            Err(DecodeError::NotAnObject)
        );
        assert_eq!(
            decode(Some("customer.create"), None, br#"{"UserName":"a"}"#),
            Err(DecodeError::NoId(EventType::CustomerCreate))
        );
        assert!(matches!(
            decode(None, None, br#"{"id":"1","colour":"red"}"#),
            Err(DecodeError::Undetermined(_))
        ));
    }

    #[test]
    fn every_event_name_round_trips() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
        }
        assert_eq!(
            EventType::parse(" Customer.Create "),
            Some(EventType::CustomerCreate)
        );
        assert_eq!(snake_case("ActionDateGMT"), "action_date_gmt");
        assert_eq!(snake_case("LocationID"), "location_id");
        assert_eq!(snake_case("Q1"), "q1");
        assert_eq!(snake_case("user_name"), "user_name");
    }
}
