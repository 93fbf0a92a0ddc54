//! The pure three-way contact planner (DESIGN.md §4).
//!
//! Input: the source snapshot (S), the target snapshot (T), the base (B: what was recorded after
//! the last successful write or match), an identity index for first matches, and the policy.
//! Output: a [`Plan`] — actions as data, one [`PlanItem`] per source record or link saying what
//! happens and why, and the guard notes. No I/O and no clock: time comes in through the policy.
//!
//! # Contract for `apply`
//! After a remote write succeeds, apply records the new base so the sync's own writes never come
//! back as changes:
//! - `CreateContact`: link `source_id` → new id (replacing any link); base source hash/fields from
//!   the input's source entry, base target hash/fields from the read-back; owned tags = `tags`.
//! - `LinkExisting`, `UpdateContact`: the same base, owned tags unchanged (a new link owns none).
//! - `AddTags`: owned ∪= tags. `RemoveTags`, `ForgetOwnedTags`: owned −= tags.
//!   `TagDeleted`: owned ∪= {tag} (so the tag is removed again if the source comes back).
//! - `RecordBase`: state only, values given. `Tombstone`: link status → tombstoned.
//! - `DeleteContact`, `ForgetLink`: remove the link. `Park`/`Unpark`: set/clear the park mark.
//!
//! Actions of one record appear in order (a link before its tags).
//!
//! # Order of planning (why: a second plan over the applied result must be empty)
//! 1. Guards on the GHL listing; records whose source is gone (deletions, under their guard).
//! 2. Linked records: the three-way decision per field.
//! 3. New records, matched against the identity index as the updates of step 2 leave it,
//!    minus the contacts step 1 deletes. A first match fills an existing contact's email and
//!    phone but never replaces them, since other records match on them.
//! 4. Records nothing matched: created, unless a contact this plan creates or links will carry
//!    the same email or phone (then parked), or the GHL listing is incomplete (deferred).
//!
//! When a mass-deletion guard trips, new links and creates are held too: the listing is not
//! trusted, and they would shift the guard's own ratio.
//!
//! Parks: an identity park (which contact is this?) stays until the source record changes; a
//! content park (conflict under `report`) is re-planned whenever either side changes.

//!
//! # Layout
//! - [`types`]: the planner's input ([`ContactsInput`], [`ContactPolicy`]), output ([`Plan`],
//!   [`Action`], [`PlanItem`], [`Outcome`]) and the base it compares against ([`BaseLink`]).
//! - [`identity`]: the identity index new records are matched against.
//! - `linked`: records with a link (present, merge, conflict, drift, tags).
//! - `new`: records without one (first matches and creates).
//! - `gone`: deletions on either side and their guards.

mod gone;
mod identity;
mod linked;
mod new;
#[cfg(test)]
mod testkit;
mod types;

pub use identity::IdentityIndex;
pub use types::*;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::model::{
    CanonicalContact, ConflictPolicy, DriftPolicy, Field, SourceDeletePolicy, StdField,
    TargetDeletePolicy,
};

// ---------------------------------------------------------------------------------------------

struct Planner<'a> {
    input: &'a ContactsInput,
    policy: &'a ContactPolicy,
    plan: Plan,
    /// Target ids linked in the base or in this plan; never two sources onto one target.
    /// Built on first use: a run with no new record never pays for it.
    claimed_set: Option<HashSet<Cow<'a, str>>>,
    /// Source ids whose base link is being taken over by the record they merged into.
    released: HashSet<&'a str>,
    /// Ids of records merged into a listed record (present, not deleted).
    merged_into: HashSet<&'a str>,
    /// Identity keys GHL will hold after this plan's creates and links: a later record with the
    /// same key must not create a second contact.
    pending: HashMap<(MatchMethod, String), &'a str>,
    /// Targets this plan deletes: no longer candidates for a match.
    doomed: HashSet<&'a str>,
    /// Records without an active link, matched after every linked record is planned.
    new_records: Vec<(&'a str, &'a SourceEntry, Outcome)>,
    /// New records that matched nothing, created after every match is known.
    unmatched: Vec<(&'a str, &'a SourceEntry, Outcome)>,
    /// The identity index as it will be after the updates of linked records in this plan, so
    /// that new records match what the next run will see.
    index: Cow<'a, IdentityIndex>,
    /// Target-gone inference from the listing is allowed (complete and not mass-missing).
    infer_target_gone: bool,
}

/// A source id with its entry in the source snapshot and in the base, either possibly absent.
type Joined<'a> = (&'a String, Option<&'a SourceEntry>, Option<&'a BaseLink>);

/// Merge-join of the two sorted maps: one pass instead of a tree lookup per record.
fn join_sorted<'a>(
    source: &'a BTreeMap<String, SourceEntry>,
    base: &'a BTreeMap<String, BaseLink>,
) -> Vec<Joined<'a>> {
    let mut out = Vec::with_capacity(source.len().max(base.len()));
    let mut a = source.iter().peekable();
    let mut b = base.iter().peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => a.next().map(|(k, s)| (k, Some(s), None)),
            (None, Some(_)) => b.next().map(|(k, l)| (k, None, Some(l))),
            (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => a.next().map(|(k, s)| (k, Some(s), None)),
                std::cmp::Ordering::Greater => b.next().map(|(k, l)| (k, None, Some(l))),
                std::cmp::Ordering::Equal => match (a.next(), b.next()) {
                    (Some((k, s)), Some((_, l))) => Some((k, Some(s), Some(l))),
                    _ => None,
                },
            },
        };
        out.extend(next);
    }
    out
}

/// Plans one reconcile pass over contacts. Pure and deterministic.
pub fn plan_contacts(input: &ContactsInput, policy: &ContactPolicy) -> Plan {
    let mut p = Planner {
        input,
        policy,
        plan: Plan::default(),
        claimed_set: None,
        released: HashSet::new(),
        merged_into: HashSet::new(),
        pending: HashMap::new(),
        doomed: HashSet::new(),
        new_records: Vec::new(),
        unmatched: Vec::new(),
        index: Cow::Borrowed(&input.identity),
        infer_target_gone: false,
    };
    p.target_guard();
    // Links of records merged into another record are handed over to it.
    let merges = input
        .source
        .iter()
        .map(|(sid, s)| (sid, &s.merged_ids))
        .chain(&input.unchanged);
    for (sid, merged_ids) in merges {
        for m in merged_ids {
            if input.source.contains_key(m) || input.unchanged.contains_key(m) {
                continue;
            }
            p.merged_into.insert(m.as_str());
            if !input.base.contains_key(sid)
                && let Some(b) = input.base.get(m)
                && b.status == LinkStatus::Active
                && !p.target_gone(&b.target_id)
            {
                p.released.insert(m.as_str());
            }
        }
    }
    // Listed but not planned: never taken for deleted.
    let skipped = input.not_planned();
    // Deletions first: the targets they remove are no candidates for matching new records.
    let joined = join_sorted(&input.source, &input.base);
    p.plan_gone(&joined, &skipped);
    for &(sid, s, b) in &joined {
        if let Some(s) = s {
            p.plan_present(sid, s, b);
        } else if let Some(b) = b
            && input.unchanged.contains_key(sid)
        {
            p.plan_unchanged(sid, b);
        }
    }
    p.index_after_updates();
    // A listing that tripped a mass-deletion guard is not trusted for new links or creates
    // either: they would also shift the guard's own ratio, so the next run would decide
    // differently without anything having changed.
    let held = p.plan.guards.iter().any(|g| {
        matches!(
            g.kind,
            GuardKind::DeleteRatio | GuardKind::SourceEmpty | GuardKind::TargetMassMissing
        )
    });
    for (sid, s, outcome) in std::mem::take(&mut p.new_records) {
        if held {
            let target = input.base.get(sid).map(|b| b.target_id.as_str());
            p.plan.items.push(PlanItem::new(
                sid,
                target,
                Outcome::Deferred(DeferReason::DeletionGuard),
                "held: a mass-deletion guard tripped this run; no new link or create",
            ));
        } else {
            p.plan_new(sid, s, outcome);
        }
    }
    for (sid, s, outcome) in std::mem::take(&mut p.unmatched) {
        p.plan_unmatched(sid, s, outcome);
    }
    for s in &input.skipped {
        if input.source.contains_key(&s.source_id) {
            continue;
        }
        let target = input.base.get(&s.source_id).map(|b| b.target_id.as_str());
        p.plan.items.push(PlanItem::new(
            &s.source_id,
            target,
            Outcome::Skipped,
            format!("skipped: {}", s.reason.as_str()),
        ));
    }
    p.plan
}

impl<'a> Planner<'a> {
    pub(super) fn claimed(&mut self) -> &mut HashSet<Cow<'a, str>> {
        let base = &self.input.base;
        self.claimed_set.get_or_insert_with(|| {
            // A tombstoned link claims nothing: its contact was deleted in GHL.
            base.values()
                .filter(|b| b.status == LinkStatus::Active)
                .map(|b| Cow::Borrowed(b.target_id.as_str()))
                .collect()
        })
    }

    pub(super) fn target_gone(&self, target_id: &str) -> bool {
        self.input.target_deleted.contains(target_id)
            || (self.infer_target_gone && !self.input.target.contains_key(target_id))
    }

    pub(super) fn push(&mut self, a: Action) {
        self.plan.actions.push(a);
    }

    /// Parks a record unless it is already parked with the same content.
    pub(super) fn park(
        &mut self,
        sid: &str,
        s: &SourceEntry,
        target_id: Option<&str>,
        reason: ParkReason,
        mut item: PlanItem,
    ) {
        let target_hash = target_id
            .and_then(|t| self.input.target.get(t))
            .map(|t| t.projection.hash);
        let same = self.input.parked.get(sid).is_some_and(|m| {
            m.source_hash == s.projection.hash
                && (reason.is_identity()
                    || (!m.reason.is_identity()
                        && m.target_hash == target_hash
                        && m.target_id.as_deref() == target_id))
        });
        if same {
            item.outcome = Outcome::StillParked;
        } else {
            item.outcome = Outcome::Parked;
            self.push(Action::Park {
                source_id: sid.to_owned(),
                target_id: target_id.map(str::to_owned),
                source_hash: s.projection.hash,
                target_hash,
                reason,
            });
        }
        self.plan.items.push(item);
    }

    pub(super) fn unpark_if_parked(&mut self, sid: &str) {
        if self.input.parked.contains_key(sid) {
            self.push(Action::Unpark {
                source_id: sid.to_owned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::mapping::SkipReason;
    use crate::mapping::SkippedSource;
    #[test]
    fn skipped_records_get_an_item_and_are_not_deletions() {
        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Delete;
        pol.max_delete_ratio = 1.0;
        let mut w = deletion_world(3, 1);
        w.skipped.push(SkippedSource {
            source_id: "c0".into(),
            reason: SkipReason::NoEmailOrPhone,
        });
        w.skipped.push(SkippedSource {
            source_id: "mac-1".into(),
            reason: SkipReason::NoEmailOrPhone,
        });
        let p = plan_contacts(&w, &pol);
        assert!(p.actions.is_empty());
        assert_eq!(item(&p, "c0").outcome, Outcome::Skipped);
        assert!(item(&p, "mac-1").reason.contains("no_email_or_phone"));
    }

    #[test]
    fn kept_out_records_are_neither_deletions_nor_planned() {
        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Delete;
        pol.max_delete_ratio = 1.0;
        // Every record but one kept out by the operator: none may look deleted.
        let mut w = deletion_world(4, 3);
        w.kept_out = ["c0", "c1", "c2"].map(String::from).into();
        let p = plan_contacts(&w, &pol);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert!(p.guards.is_empty(), "{:?}", p.guards);
        assert_eq!(
            p.items
                .iter()
                .map(|i| i.source_id.as_str())
                .collect::<Vec<_>>(),
            ["c3"]
        );
        // All of them kept out: not "HotspotSystem listed no records" either.
        let mut w = deletion_world(2, 2);
        w.kept_out = ["c0", "c1"].map(String::from).into();
        let p = plan_contacts(&w, &pol);
        assert!(p.actions.is_empty() && p.items.is_empty() && p.guards.is_empty());
    }
}
