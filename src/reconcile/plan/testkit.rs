//! Builders shared by the planner's unit tests.

use chrono::{DateTime, Utc};

use super::*;
use crate::model::ContactProjection;
use crate::model::StdField::*;
use crate::reconcile::simulate::apply_to_snapshots;

pub(super) fn now() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

pub(super) fn policy() -> ContactPolicy {
    ContactPolicy::new(now())
}

pub(super) fn fields(pairs: &[(StdField, &str)]) -> CanonicalContact {
    let mut c = CanonicalContact::new();
    for (f, v) in pairs {
        c.set_std(*f, Some((*v).to_owned()));
    }
    c
}

pub(super) fn proj(pairs: &[(StdField, &str)], tags: &[&str]) -> ContactProjection {
    ContactProjection::new(
        fields(pairs),
        tags.iter().map(|t| (*t).to_owned()).collect(),
    )
}

pub(super) fn world() -> ContactsInput {
    ContactsInput {
        source_complete: true,
        target_coverage: TargetCoverage::Full,
        ..ContactsInput::default()
    }
}

pub(super) fn src(w: &mut ContactsInput, id: &str, p: ContactProjection) {
    w.source.insert(id.into(), SourceEntry::new(p));
}

pub(super) fn tgt(w: &mut ContactsInput, id: &str, p: ContactProjection) {
    w.target.insert(
        id.into(),
        TargetEntry {
            projection: p,
            date_updated: None,
        },
    );
    w.identity = IdentityIndex::build(w.identity.hotspot_field.clone(), w.target.iter());
}

/// A link whose base is the current content of both sides (as after a sync).
pub(super) fn link(w: &mut ContactsInput, sid: &str, tid: &str, owned: &[&str]) {
    let s = &w.source[sid].projection;
    let t = &w.target[tid].projection;
    w.base.insert(
        sid.into(),
        BaseLink {
            target_id: tid.into(),
            source_hash: s.hash,
            target_hash: t.hash,
            source_fields: Some(Box::new(s.fields.clone())),
            target_fields: Some(Box::new(t.fields.clone())),
            owned_tags: owned.iter().map(|t| (*t).to_owned()).collect(),
            status: LinkStatus::Active,
        },
    );
}

pub(super) fn set_src(w: &mut ContactsInput, id: &str, f: StdField, v: &str) {
    let e = w.source.get_mut(id).unwrap();
    let mut c = e.projection.fields.clone();
    c.set_std(f, Some(v.into()));
    e.projection = ContactProjection::new(c, e.projection.tags.clone());
}

pub(super) fn set_tgt(w: &mut ContactsInput, id: &str, f: StdField, v: &str) {
    let e = w.target.get_mut(id).unwrap();
    let mut c = e.projection.fields.clone();
    c.set_std(f, Some(v.into()));
    e.projection = ContactProjection::new(c, e.projection.tags.clone());
}

pub(super) fn item<'p>(p: &'p Plan, sid: &str) -> &'p PlanItem {
    let found: Vec<_> = p.items.iter().filter(|i| i.source_id == sid).collect();
    assert_eq!(found.len(), 1, "exactly one item for {sid}: {:?}", p.items);
    found[0]
}

/// Applies the plan in memory and checks the next plan makes no changes at all.
pub(super) fn settles(w: &ContactsInput, pol: &ContactPolicy) -> ContactsInput {
    let p = plan_contacts(w, pol);
    let next = apply_to_snapshots(&p, w);
    let p2 = plan_contacts(&next, pol);
    assert!(
        p2.actions.is_empty(),
        "second plan not empty: {:?}",
        p2.actions
    );
    next
}

pub(super) fn changes(pairs: &[(StdField, Option<&str>)]) -> FieldChanges {
    pairs
        .iter()
        .map(|(f, v)| (Field::Std(*f), v.map(str::to_owned)))
        .collect()
}

pub(super) fn linked_world() -> ContactsInput {
    let mut w = world();
    src(
        &mut w,
        "c1",
        proj(
            &[(Email, "a@x.io"), (FirstName, "Ann"), (City, "Oslo")],
            &[],
        ),
    );
    tgt(
        &mut w,
        "g1",
        proj(
            &[(Email, "a@x.io"), (FirstName, "Ann"), (City, "Oslo")],
            &[],
        ),
    );
    link(&mut w, "c1", "g1", &[]);
    w
}

pub(super) fn conflict_world() -> ContactsInput {
    let mut w = linked_world();
    set_src(&mut w, "c1", City, "Bergen");
    set_tgt(&mut w, "g1", City, "Paris");
    w
}

/// `n` linked records, `gone` of which disappear from the source listing.
pub(super) fn deletion_world(n: usize, gone: usize) -> ContactsInput {
    let mut w = world();
    for i in 0..n {
        let (s, g) = (format!("c{i}"), format!("g{i}"));
        src(&mut w, &s, proj(&[(Email, &format!("{i}@x.io"))], &[]));
        tgt(&mut w, &g, proj(&[(Email, &format!("{i}@x.io"))], &[]));
        link(&mut w, &s, &g, &[]);
    }
    for i in 0..gone {
        w.source.remove(&format!("c{i}"));
    }
    w
}
