//! Per-record decoding of list answers: one value that cannot be read never fails a page.
//!
//! Each item of a list is decoded on its own ([`Item`]). An item whose fields all read is taken
//! as it is. Otherwise each field is tried alone; the ones that cannot be read (a MySQL zero date,
//! a word where a number belongs, an object where text belongs) are dropped, so the field is empty
//! as if it had been absent, and the rest of the record decodes. An item that is not an object at
//! all (a `null` in the list), or whose id cannot be read, cannot be used: it is skipped.
//!
//! The clients pass every page through their [`DecodeLog`], which counts the unreadable values per
//! field and names the skipped records; the pass turns that into the run report and, when a record
//! was skipped, into a failed run. A skipped record stays in the page as an empty record (no id),
//! so the page keeps its length (paging counts what the server sent) and every consumer already
//! drops a record without an id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::model::Kind;

/// The lists whose items are decoded one by one, named as the report names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Listing {
    Locations,
    Customers,
    Subscribers,
    MacTransactions,
    VoucherTransactions,
    PaidTransactions,
    SocialTransactions,
    Vouchers,
    /// GHL contacts (search, by business).
    Contacts,
    Notes,
    Tasks,
    Businesses,
    Appointments,
    CustomFields,
}

impl Listing {
    /// The name in reports: HotspotSystem's resource path, GHL's list property.
    pub fn name(self) -> &'static str {
        match self {
            Listing::Locations => "locations",
            Listing::Customers => "customers",
            Listing::Subscribers => "subscribers",
            Listing::MacTransactions => "transactions/mac",
            Listing::VoucherTransactions => "transactions/voucher",
            Listing::PaidTransactions => "transactions/paid",
            Listing::SocialTransactions => "transactions/social",
            Listing::Vouchers => "vouchers",
            Listing::Contacts => "contacts",
            Listing::Notes => "notes",
            Listing::Tasks => "tasks",
            Listing::Businesses => "businesses",
            Listing::Appointments => "appointments",
            Listing::CustomFields => "customFields",
        }
    }

    /// The kind of record a skipped item of this list leaves unsynced.
    pub fn kind(self) -> Kind {
        match self {
            Listing::Locations
            | Listing::Customers
            | Listing::Subscribers
            | Listing::Contacts
            | Listing::CustomFields => Kind::Contact,
            Listing::MacTransactions
            | Listing::VoucherTransactions
            | Listing::PaidTransactions
            | Listing::SocialTransactions
            | Listing::Vouchers
            | Listing::Notes => Kind::Note,
            Listing::Tasks => Kind::Task,
            Listing::Businesses => Kind::Business,
            Listing::Appointments => Kind::Appointment,
        }
    }
}

/// A decoded record that may carry its id.
pub trait Record {
    /// The id, when it was there and could be read.
    fn record_id(&self) -> Option<String>;
}

/// One value a field carried that could not be read; the field was taken as empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The field's name on the wire (`registered_at`, `dateUpdated`).
    pub field: String,
    /// What was sent, safe to show (see [`sample`]).
    pub sample: String,
}

/// One list item, decoded on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<T> {
    /// A record; `unreadable` names the fields that were dropped.
    Read {
        record: T,
        unreadable: Vec<Unreadable>,
    },
    /// Not a record (null, a number, text, a list): nothing of it can be used.
    NotARecord { sample: String },
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Item::decode(Value::deserialize(d)?))
    }
}

impl<T> Item<T> {
    /// The record, when the item was one.
    pub fn record(&self) -> Option<&T> {
        match self {
            Item::Read { record, .. } => Some(record),
            Item::NotARecord { .. } => None,
        }
    }
}

impl<T: DeserializeOwned> Item<T> {
    pub fn decode(value: Value) -> Self {
        if !value.is_object() {
            return Item::NotARecord {
                sample: sample("", &value),
            };
        }
        if let Ok(record) = T::deserialize(&value) {
            return Item::Read {
                record,
                unreadable: Vec::new(),
            };
        }
        let Value::Object(mut map) = value else {
            unreachable!("checked to be an object above");
        };
        // Every record type reads an object with any subset of its fields (all are optional),
        // so a field that fails alone is one that cannot be read.
        let bad: Vec<String> = map
            .iter()
            .filter(|(k, v)| {
                let one = Value::Object(Map::from_iter([((*k).clone(), (*v).clone())]));
                T::deserialize(&one).is_err()
            })
            .map(|(k, _)| k.clone())
            .collect();
        let unreadable: Vec<Unreadable> = bad
            .into_iter()
            .map(|field| {
                let v = map.remove(&field).unwrap_or(Value::Null);
                Unreadable {
                    sample: sample(&field, &v),
                    field,
                }
            })
            .collect();
        let value = Value::Object(map);
        match T::deserialize(&value) {
            Ok(record) => Item::Read { record, unreadable },
            // Fields that read alone but not together: no field can be blamed. (serde's message
            // would quote the values, which may be personal data.)
            Err(_) => Item::NotARecord {
                sample: "an object whose fields do not read together".into(),
            },
        }
    }
}

/// A value fit for a report: dates and ids as sent (what a user needs to find the record), any
/// other value only by its shape, so no personal data (a name, an address) reaches the report.
/// Control characters are removed and the text is cut at 60 characters.
pub fn sample(field: &str, v: &Value) -> String {
    let f = field.to_ascii_lowercase();
    let shows_value = f == "id"
        || f == "_id"
        || f.ends_with("_id")
        || field.ends_with("Id")
        || f.contains("date")
        || f.ends_with("_at")
        || field.ends_with("At")
        || f.ends_with("_gmt")
        || f.ends_with("time");
    match v {
        Value::Null => "null".into(),
        Value::String(s) if shows_value => clean(s, 60),
        Value::Number(n) if shows_value => n.to_string(),
        Value::String(s) => format!("text of {} characters", s.chars().count()),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "true/false".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// `s` without control characters, at most `max` characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
    if s.chars().filter(|c| !c.is_control()).count() > max {
        out.push('…');
    }
    out
}

/// Unreadable values of one field of one list, over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldTally {
    pub count: u64,
    /// The first value seen (see [`sample`]).
    pub sample: String,
    /// Ids of the first few records concerned (none when the id itself was unreadable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
}

/// A record that could not be used at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    pub listing: Listing,
    pub reason: String,
}

/// What one or more pages could not read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeReport {
    /// Keyed `list.field`, e.g. `customers.registered_at`.
    pub unreadable: BTreeMap<String, FieldTally>,
    /// The wire fields taken as empty, per list and record id: every record, not the first
    /// few, because a step must know which of its records carry a value it could not read.
    pub by_record: BTreeMap<Listing, BTreeMap<String, BTreeSet<String>>>,
    pub skipped: Vec<SkippedRecord>,
}

impl DecodeReport {
    pub fn is_empty(&self) -> bool {
        self.unreadable.is_empty() && self.by_record.is_empty() && self.skipped.is_empty()
    }

    pub fn merge(&mut self, other: DecodeReport) {
        for (k, t) in other.unreadable {
            let mine = self.unreadable.entry(k).or_default();
            if mine.count == 0 {
                mine.sample = t.sample;
            }
            mine.count += t.count;
            for id in t.ids {
                if mine.ids.len() < IDS_KEPT {
                    mine.ids.push(id);
                }
            }
        }
        for (listing, records) in other.by_record {
            let mine = self.by_record.entry(listing).or_default();
            for (id, fields) in records {
                mine.entry(id).or_default().extend(fields);
            }
        }
        self.skipped.extend(other.skipped);
    }
}

/// Ids kept per field: enough to find the records, not a list of every guest.
const IDS_KEPT: usize = 3;

/// Where a client records what its pages could not read, until the pass takes it. Clones share
/// one log (a client and its pagers).
#[derive(Debug, Clone, Default)]
pub struct DecodeLog(Arc<Mutex<DecodeReport>>);

impl DecodeLog {
    /// The records of one page, in order, one per item sent. An item that cannot be used is an
    /// empty record (no id) in its place, and is logged; so are the values that were dropped.
    pub fn keep<T: Record + Default>(&self, listing: Listing, items: Vec<Item<T>>) -> Vec<T> {
        let mut found = DecodeReport::default();
        let records = items
            .into_iter()
            .map(|item| match item {
                Item::Read { record, unreadable } => {
                    let id = record.record_id();
                    for u in &unreadable {
                        let t = found
                            .unreadable
                            .entry(format!("{}.{}", listing.name(), u.field))
                            .or_default();
                        if t.count == 0 {
                            t.sample = u.sample.clone();
                        }
                        t.count += 1;
                        if let Some(id) = &id {
                            if t.ids.len() < IDS_KEPT {
                                t.ids.push(id.clone());
                            }
                            found
                                .by_record
                                .entry(listing)
                                .or_default()
                                .entry(id.clone())
                                .or_default()
                                .insert(u.field.clone());
                        }
                    }
                    if id.is_none() {
                        let why = match unreadable.iter().find(|u| is_id_field(&u.field)) {
                            Some(u) => format!("its id could not be read ({})", u.sample),
                            None => "it has no id".to_string(),
                        };
                        found.skipped.push(SkippedRecord {
                            listing,
                            reason: why,
                        });
                    }
                    record
                }
                Item::NotARecord { sample } => {
                    found.skipped.push(SkippedRecord {
                        listing,
                        reason: format!("the item is not a record ({sample})"),
                    });
                    T::default()
                }
            })
            .collect();
        if !found.is_empty() {
            for s in &found.skipped {
                tracing::warn!(list = listing.name(), reason = %s.reason, "a record could not be read; skipped");
            }
            for (field, t) in &found.unreadable {
                tracing::warn!(%field, count = t.count, sample = %t.sample, "values could not be read; taken as empty");
            }
            self.lock().merge(found);
        }
        records
    }

    /// The records of `listing` logged since the last drain that had a value taken as empty,
    /// by id, with the wire names of those fields. Left in the log for the run's report.
    pub fn unreadable_records(&self, listing: Listing) -> BTreeMap<String, BTreeSet<String>> {
        self.lock()
            .by_record
            .get(&listing)
            .cloned()
            .unwrap_or_default()
    }

    /// Everything logged since the last call.
    pub fn drain(&self) -> DecodeReport {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DecodeReport> {
        // The report is plain data, consistent after any panic.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_id_field(field: &str) -> bool {
    matches!(field, "id" | "_id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hotspot::wire::{Customer, PaidTransaction};

    fn items<T: DeserializeOwned>(json: &str) -> Vec<Item<T>> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_bad_value_empties_its_field_only() {
        let page: Vec<Item<Customer>> = items(
            r#"[{"id":"1","email":"a@b.c","registered_at":"0000-00-00 00:00:00"},
                {"id":"2","registered_at":"2013-05-21 17:53:39","name":{"first":"x"}},
                null,
                {"id":{"x":1},"email":"c@d.e"},
                {"id":"5","social_followers_count":"many"}]"#,
        );
        let log = DecodeLog::default();
        let recs = log.keep(Listing::Customers, page);
        assert_eq!(recs.len(), 5, "one record per item sent");
        assert_eq!(recs[0].email.as_deref(), Some("a@b.c"));
        assert_eq!(recs[0].registered_at, None);
        assert!(recs[1].registered_at.is_some());
        assert_eq!(recs[1].name, None);
        assert_eq!(recs[2], Customer::default());
        assert_eq!(recs[3].id, None);
        assert_eq!(recs[3].email.as_deref(), Some("c@d.e"));
        assert_eq!(recs[4].social_followers_count, None);
        let r = log.drain();
        let ra = &r.unreadable["customers.registered_at"];
        assert_eq!(
            (ra.count, ra.sample.as_str(), ra.ids.clone()),
            (1, "0000-00-00 00:00:00", vec!["1".to_string()])
        );
        assert_eq!(r.unreadable["customers.name"].sample, "an object");
        assert_eq!(
            r.unreadable["customers.social_followers_count"].sample,
            "text of 4 characters"
        );
        assert_eq!(
            r.by_record[&Listing::Customers],
            BTreeMap::from([
                (
                    "1".to_string(),
                    BTreeSet::from(["registered_at".to_string()])
                ),
                ("2".to_string(), BTreeSet::from(["name".to_string()])),
                (
                    "5".to_string(),
                    BTreeSet::from(["social_followers_count".to_string()])
                ),
            ]),
            "every record with a value taken as empty, by id"
        );
        assert_eq!(r.skipped.len(), 2, "{r:?}");
        assert!(r.skipped[0].reason.contains("not a record (null)"));
        assert!(r.skipped[1].reason.contains("id could not be read"));
        assert!(log.drain().is_empty(), "drained");
    }

    #[test]
    fn flattened_records_and_samples() {
        let page: Vec<Item<PaidTransaction>> = items(
            "[{\"id\":7,\"action_date_gmt\":\"yesterday\\u001b[2J\",\"amount\":\"1,50\",\"email\":\"x@y.z\"}]",
        );
        let log = DecodeLog::default();
        let recs = log.keep(Listing::PaidTransactions, page);
        assert_eq!(recs[0].common.id, Some(7));
        assert_eq!(recs[0].common.email.as_deref(), Some("x@y.z"));
        assert_eq!(recs[0].amount, None);
        let r = log.drain();
        assert_eq!(
            r.unreadable["transactions/paid.action_date_gmt"].sample, "yesterday[2J",
            "control characters removed"
        );
        assert_eq!(
            r.unreadable["transactions/paid.amount"].sample,
            "text of 4 characters"
        );
        assert!(r.skipped.is_empty());
    }
}
