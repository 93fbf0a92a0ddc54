//! What a dry run takes its planned writes to have done, so that every kind plans as the real
//! run would: notes, tasks and business associations hang off contact links, and on a fresh
//! account those links do not exist until the contacts step has written them.
//!
//! The contacts plan is applied in memory ([`super::simulate`]: a new contact gets the id
//! `sim-{source_id}`), and the contact links it would add, re-point or end are kept for the
//! pass ([`DryRunState`]); the steps after contacts read the state's links through them. Nothing
//! here touches the state or GHL. The writes each step would send are counted per operation
//! ([`crate::report::dry_run::KindWrites`]), one per request the real run sends for them.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use super::apply::{Registrations, update_body};
use super::plan::{Action, ContactsInput, LinkStatus, Plan};
use super::simulate::apply_to_snapshots;
use super::snapshot::CustomFields;
use crate::model::{CanonicalContact, StdField};
use crate::report::dry_run::{KindWrites, WriteOp};

/// A contact link as the contacts plan would leave it, with what the later kinds read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLink {
    pub target_id: String,
    pub location_id: Option<String>,
    pub location_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// Source id → its contact link after the plan, for the links the plan adds, re-points or ends
/// (`None`: no active link). Links the plan leaves on the same contact are not here.
pub type PlannedLinks = BTreeMap<String, Option<PlannedLink>>;

/// A planned note as the latest-visit association reads a note link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedVisit {
    pub contact_id: String,
    pub location_id: String,
    /// RFC 3339, as a note link's `extra.at`.
    pub at: String,
}

/// What the steps of a dry run hand on: set by the contacts and notes steps, read by the
/// steps after them. Empty in a real run.
#[derive(Debug, Default)]
pub struct DryRunState {
    contacts: OnceLock<PlannedLinks>,
    visits: Mutex<Vec<PlannedVisit>>,
}

impl DryRunState {
    pub fn set_contacts(&self, links: PlannedLinks) {
        let _ = self.contacts.set(links);
    }

    /// The contact links the contacts plan changes (none before it ran, or in a real run).
    pub fn contacts(&self) -> &PlannedLinks {
        static NONE: PlannedLinks = BTreeMap::new();
        self.contacts.get().unwrap_or(&NONE)
    }

    pub fn add_visits(&self, visits: impl IntoIterator<Item = PlannedVisit>) {
        self.visits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(visits);
    }

    pub fn visits(&self) -> Vec<PlannedVisit> {
        self.visits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Pure: the contact links `plan` adds, re-points or ends, as [`super::simulate`] applies it.
/// `registrations` are where the records registered, which the apply stores on each link.
pub fn planned_links(
    plan: &Plan,
    input: &ContactsInput,
    registrations: &Registrations<'_>,
) -> PlannedLinks {
    let after = apply_to_snapshots(plan, input);
    let active = |i: &ContactsInput, sid: &str| {
        i.base
            .get(sid)
            .filter(|b| b.status == LinkStatus::Active)
            .map(|b| b.target_id.clone())
    };
    let mut out = PlannedLinks::new();
    for a in &plan.actions {
        let sid = a.source_id();
        if out.contains_key(sid) {
            continue;
        }
        let now = active(&after, sid);
        if now == active(input, sid) {
            continue;
        }
        let link = now.map(|target_id| {
            let empty = CanonicalContact::new();
            let fields = input
                .source
                .get(sid)
                .map(|s| &s.projection.fields)
                .unwrap_or(&empty);
            let get = |f: StdField| fields.get_std(f).map(str::to_string);
            let registered = registrations.get(sid);
            PlannedLink {
                target_id,
                location_id: registered.map(|r| r.location_id.to_string()),
                location_name: registered.map(|r| r.location_name.to_string()),
                first_name: get(StdField::FirstName),
                last_name: get(StdField::LastName),
                email: get(StdField::Email),
                phone: get(StdField::Phone),
            }
        });
        out.insert(sid.to_string(), link);
    }
    out
}

/// Pure: the GHL writes a contacts plan sends, one per request the apply makes for it.
pub fn contact_writes(plan: &Plan, custom_fields: &CustomFields) -> KindWrites {
    let mut out = KindWrites::new();
    let mut add = |op| *out.entry(op).or_default() += 1;
    for a in &plan.actions {
        match a {
            Action::CreateContact { .. } => add(WriteOp::Create),
            Action::LinkExisting { fields, .. } | Action::UpdateContact { fields, .. } => {
                // Only fields GHL's update accepts are sent; none, and nothing is.
                if !update_body(fields, custom_fields).0.is_empty() {
                    add(WriteOp::Update);
                }
            }
            Action::AddTags { .. } | Action::TagDeleted { .. } => add(WriteOp::AddTags),
            Action::RemoveTags { .. } => add(WriteOp::RemoveTags),
            Action::DeleteContact { .. } => add(WriteOp::Delete),
            // State only.
            Action::ForgetOwnedTags { .. }
            | Action::Tombstone { .. }
            | Action::RecordBase { .. }
            | Action::ForgetLink { .. }
            | Action::Park { .. }
            | Action::Unpark { .. } => {}
        }
    }
    out
}

/// `n` writes of one operation (a kind with none is listed as sending nothing).
pub fn writes_of(op: WriteOp, n: u64) -> KindWrites {
    [(op, n)].into()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::reconcile::apply::Registration;

    use super::*;
    use crate::model::{ContactProjection, Field};
    use crate::reconcile::plan::{BaseLink, FieldChanges, SourceEntry};

    fn projection(first: &str, email: &str) -> ContactProjection {
        let mut c = CanonicalContact::new();
        c.set_std(StdField::FirstName, Some(first.into()));
        c.set_std(StdField::Email, Some(email.into()));
        ContactProjection::new(c, BTreeSet::new())
    }

    fn linked(input: &mut ContactsInput, sid: &str, tid: &str) {
        let p = projection(sid, &format!("{sid}@example.com"));
        input.base.insert(
            sid.into(),
            BaseLink {
                target_id: tid.into(),
                source_hash: p.hash,
                target_hash: p.hash,
                source_fields: None,
                target_fields: None,
                owned_tags: BTreeSet::new(),
                status: LinkStatus::Active,
            },
        );
        input.source.insert(sid.into(), SourceEntry::new(p));
    }

    /// A create, an update GHL's update API cannot take, a deletion and a deletion tag.
    fn world() -> (Plan, ContactsInput) {
        let mut input = ContactsInput::default();
        input.source.insert(
            "1".into(),
            SourceEntry::new(projection("Ann", "ann@example.com")),
        );
        for (sid, tid) in [("2", "G2"), ("3", "G3"), ("4", "G4")] {
            linked(&mut input, sid, tid);
        }
        let not_writable: FieldChanges =
            [(Field::Std(StdField::CompanyName), Some("Acme".into()))].into();
        let plan = Plan {
            actions: vec![
                Action::CreateContact {
                    source_id: "1".into(),
                    fields: Box::new(input.source["1"].projection.fields.clone()),
                    tags: ["wifi".to_string()].into(),
                },
                Action::UpdateContact {
                    source_id: "2".into(),
                    target_id: "G2".into(),
                    fields: not_writable,
                },
                Action::DeleteContact {
                    source_id: "3".into(),
                    target_id: "G3".into(),
                },
                Action::TagDeleted {
                    source_id: "4".into(),
                    target_id: "G4".into(),
                    tag: "deleted".into(),
                },
            ],
            ..Plan::default()
        };
        (plan, input)
    }

    #[test]
    fn only_links_the_plan_adds_or_ends_stand_in_for_the_state() {
        let (plan, input) = world();
        let registrations: Registrations = [(
            "1",
            Registration {
                location_id: "L1",
                location_name: "Cafe",
            },
        )]
        .into();
        let links = planned_links(&plan, &input, &registrations);
        let keys: Vec<&str> = links.keys().map(String::as_str).collect();
        assert_eq!(keys, ["1", "3"], "2 and 4 stay on the same contact");
        let new = links["1"].as_ref().expect("a new link");
        assert_eq!(new.target_id, "sim-1");
        assert_eq!(new.location_id.as_deref(), Some("L1"));
        assert_eq!(new.location_name.as_deref(), Some("Cafe"));
        assert_eq!(new.first_name.as_deref(), Some("Ann"));
        assert_eq!(new.email.as_deref(), Some("ann@example.com"));
        assert_eq!(links["3"], None, "a deleted contact's link ends");
    }

    #[test]
    fn contact_writes_count_the_requests_the_apply_sends() {
        let (plan, _) = world();
        let w = contact_writes(&plan, &CustomFields::default());
        // No update: the company name is not sent (GHL's update API refuses it).
        assert_eq!(
            w,
            [
                (WriteOp::Create, 1),
                (WriteOp::Delete, 1),
                (WriteOp::AddTags, 1)
            ]
            .into()
        );
    }
}
