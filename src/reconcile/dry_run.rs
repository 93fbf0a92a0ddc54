//! What a dry run takes its planned writes to have done, so that every kind plans as the real
//! run would: notes, tasks and business associations hang off contact links, and on a fresh
//! account those links do not exist until the contacts step has written them.
//!
//! The contacts plan is applied in memory ([`super::simulate`]: a new contact gets the id
//! `sim-{source_id}`), and the contact links it would add, re-point or end are kept for the
//! pass ([`DryRunState`]); the steps after contacts read the state's links through them. Nothing
//! here touches the state or GHL. The writes each step would send are counted per operation
//! ([`crate::report::dry_run::KindWrites`]), one per request the real run sends for them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use super::apply::update_body;
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
/// `extras` are the descriptive keys the apply merges into each link (registration location).
pub fn planned_links(
    plan: &Plan,
    input: &ContactsInput,
    extras: &HashMap<String, Value>,
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
            let extra = extras.get(sid);
            let text = |k: &str| {
                extra
                    .and_then(|e| e.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            PlannedLink {
                target_id,
                location_id: text("location_id"),
                location_name: text("location_name"),
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
