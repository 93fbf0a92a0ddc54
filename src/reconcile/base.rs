//! The planner's base (`BaseLink`, `ParkedMark`) as the store keeps it: one `links` row per
//! contact, with the per-field base values, the registration location and any park mark in the
//! row's `extra` JSON.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::plan::{BaseLink, LinkStatus, ParkReason, ParkedMark};
use super::settled::Settled;
use crate::model::{CanonicalContact, Digest, Kind};
use crate::store::{self, Link, Store, StoreError};

/// The base and the park marks of every contact, keyed by source id.
pub type ContactBase = (BTreeMap<String, BaseLink>, BTreeMap<String, ParkedMark>);

/// Loads every contact link as planner input: hashes, GHL id, owned tags, status, park marks,
/// and the settled marks of the links that carry one (`reconcile::settled`). The per-field base
/// values, most of a link row, are left out: the planner compares fields only for records whose
/// hash moved, and [`load_fields`] reads those.
pub fn load_contacts_marked(
    store: &Store,
) -> Result<(ContactBase, HashMap<String, Settled>), StoreError> {
    let mut base = BTreeMap::new();
    let mut parked = BTreeMap::new();
    let mut marks = HashMap::new();
    // SQLite reads the three keys; the per-field bases in the same JSON are never decoded.
    let paths = [
        "$.park",
        &format!("$.{SETTLED}"),
        &format!("$.{SETTLED_TAGS}"),
    ];
    store.each_link_head(Kind::Contact, &paths, |link, extra| {
        let [park, settled, settled_tags] =
            <[Option<String>; 3]>::try_from(extra).expect("one value per path asked for");
        if let Some(mark) = park
            .and_then(|p| serde_json::from_str::<Value>(&p).ok())
            .as_ref()
            .and_then(park_from_json)
        {
            parked.insert(link.source_id.clone(), mark);
        }
        let digest = |v: Option<String>| v.as_deref().and_then(Digest::from_hex);
        if let (Some(mark), Some(target_tags)) = (digest(settled), digest(settled_tags)) {
            marks.insert(link.source_id.clone(), Settled { mark, target_tags });
        }
        let status = match link.status {
            store::LinkStatus::Active => LinkStatus::Active,
            store::LinkStatus::Tombstoned => LinkStatus::Tombstoned,
            // A park without a link: nothing was ever linked for this record.
            store::LinkStatus::Parked => return Ok(()),
        };
        let (Some(source_hash), Some(target_hash)) = (link.source_hash, link.target_hash) else {
            return Ok(());
        };
        base.insert(
            link.source_id,
            BaseLink {
                target_id: link.target_id,
                source_hash,
                target_hash,
                source_fields: None,
                target_fields: None,
                owned_tags: link.owned_tags,
                status,
            },
        );
        Ok(())
    })?;
    Ok(((base, parked), marks))
}

/// Where a link keeps its settled mark, and the digest of the GHL tags the mark covers.
const SETTLED: &str = "settled";
const SETTLED_TAGS: &str = "settled_tags";

/// Stores the settled marks of `marks`' links, in one transaction.
pub fn record_settled(store: &Store, marks: &[(String, Settled)]) -> Result<(), StoreError> {
    if marks.is_empty() {
        return Ok(());
    }
    store.transaction(|s| {
        for (sid, mark) in marks {
            if let Some(mut link) = s.link(Kind::Contact, sid)? {
                let extra = as_object(&mut link.extra);
                extra.insert(SETTLED.into(), Value::from(mark.mark.to_hex()));
                extra.insert(SETTLED_TAGS.into(), Value::from(mark.target_tags.to_hex()));
                s.upsert_link(&link)?;
            }
        }
        Ok(())
    })
}

/// Fills in the per-field base values of the links of `source_ids`.
pub fn load_fields(
    store: &Store,
    base: &mut BTreeMap<String, BaseLink>,
    source_ids: &[String],
) -> Result<(), StoreError> {
    for sid in source_ids {
        let (Some(b), Some(mut link)) = (base.get_mut(sid), store.link(Kind::Contact, sid)?) else {
            continue;
        };
        b.source_fields = take_fields(&mut link.extra, "source_fields");
        b.target_fields = take_fields(&mut link.extra, "target_fields");
    }
    Ok(())
}

fn take_fields(extra: &mut Value, key: &str) -> Option<Box<CanonicalContact>> {
    extra
        .as_object_mut()?
        .remove(key)
        .and_then(|v| serde_json::from_value(v).ok())
        .map(Box::new)
}

/// Records the base of a link after a successful write or match.
pub fn set_base(
    link: &mut Link,
    source: (Digest, &CanonicalContact),
    target: (Digest, &CanonicalContact),
) {
    link.source_hash = Some(source.0);
    link.target_hash = Some(target.0);
    link.status = store::LinkStatus::Active;
    let extra = as_object(&mut link.extra);
    extra.insert(
        "source_fields".into(),
        serde_json::to_value(source.1).unwrap_or(Value::Null),
    );
    extra.insert(
        "target_fields".into(),
        serde_json::to_value(target.1).unwrap_or(Value::Null),
    );
    extra.remove("park");
}

pub fn set_park(link: &mut Link, mark: &ParkedMark) {
    as_object(&mut link.extra).insert("park".into(), park_to_json(mark));
}

pub fn clear_park(link: &mut Link) {
    as_object(&mut link.extra).remove("park");
}

/// Merges `more` into the link's extra (location and similar descriptive keys).
pub fn merge_extra(link: &mut Link, more: &Value) {
    if let Value::Object(m) = more {
        let extra = as_object(&mut link.extra);
        for (k, v) in m {
            extra.insert(k.clone(), v.clone());
        }
    }
}

fn as_object(v: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("just made an object")
}

fn park_to_json(m: &ParkedMark) -> Value {
    json!({
        "target_id": m.target_id,
        "source_hash": m.source_hash.to_hex(),
        "target_hash": m.target_hash.map(|h| h.to_hex()),
        "reason": m.reason,
    })
}

fn park_from_json(v: &Value) -> Option<ParkedMark> {
    Some(ParkedMark {
        target_id: v
            .get("target_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        source_hash: Digest::from_hex(v.get("source_hash")?.as_str()?)?,
        target_hash: v
            .get("target_hash")
            .and_then(Value::as_str)
            .and_then(Digest::from_hex),
        reason: serde_json::from_value::<ParkReason>(v.get("reason")?.clone()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MatchMethod;

    #[test]
    fn park_and_base_round_trip_through_the_store() {
        let store = Store::open_in_memory().unwrap();
        let mut fields = CanonicalContact::new();
        fields.set_std(crate::model::StdField::Email, Some("a@b.co".into()));
        let mut link = Link::new(Kind::Contact, "s1", "t1", MatchMethod::Email);
        set_base(
            &mut link,
            (fields.digest(), &fields),
            (fields.digest(), &fields),
        );
        let mark = ParkedMark {
            target_id: Some("t1".into()),
            source_hash: fields.digest(),
            target_hash: None,
            reason: ParkReason::Conflict,
        };
        set_park(&mut link, &mark);
        store.upsert_link(&link).unwrap();
        let ((mut base, parked), _) = load_contacts_marked(&store).unwrap();
        assert_eq!(base["s1"].source_fields, None, "fields load on demand");
        load_fields(&store, &mut base, &["s1".to_string()]).unwrap();
        assert_eq!(base["s1"].source_fields.as_deref(), Some(&fields));
        assert_eq!(base["s1"].target_fields.as_deref(), Some(&fields));
        assert_eq!(base["s1"].target_hash, fields.digest());
        assert_eq!(parked["s1"], mark);
    }
}
