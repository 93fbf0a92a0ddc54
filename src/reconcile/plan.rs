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

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::mapping::{MappedSource, SkippedSource};
use crate::model::{
    CanonicalContact, ConflictPolicy, ContactProjection, Digest, DriftPolicy, Field,
    SourceDeletePolicy, StdField, TargetDeletePolicy,
};

/// Changed fields only; `None` clears the field in GHL.
pub type FieldChanges = BTreeMap<Field, Option<String>>;

/// One source contact in this run's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    pub projection: ContactProjection,
    /// When the source content last changed, if known. HotspotSystem reports no change times,
    /// so `newest_wins` uses `policy.now` (when the change was seen) when absent.
    pub changed_at: Option<DateTime<Utc>>,
    /// `registered_at`: the source time of a record's first match against an existing contact.
    pub registered_at: Option<DateTime<Utc>>,
    /// Other HotspotSystem ids merged into this contact (subscriber with a customer's email).
    pub merged_ids: Vec<String>,
}

impl SourceEntry {
    pub fn new(projection: ContactProjection) -> Self {
        Self {
            projection,
            changed_at: None,
            registered_at: None,
            merged_ids: Vec::new(),
        }
    }
}

impl From<MappedSource> for SourceEntry {
    fn from(m: MappedSource) -> Self {
        let registered_at = m.registered_at.as_deref().and_then(parse_time);
        let merged_ids = m
            .members
            .into_iter()
            .map(|(_, id)| id)
            .filter(|id| *id != m.source_id)
            .collect();
        Self {
            projection: m.projection,
            changed_at: None,
            registered_at,
            merged_ids,
        }
    }
}

/// Parses the two date formats the HotspotSystem API uses, as UTC.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// One GHL contact read this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetEntry {
    pub projection: ContactProjection,
    pub date_updated: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    Active,
    /// The GHL contact was deleted and the sync respects it: never recreated.
    Tombstoned,
}

/// The base of one link, recorded after the last successful write or match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseLink {
    pub target_id: String,
    pub source_hash: Digest,
    pub target_hash: Digest,
    /// Per-field base values of both sides; with them, edits to different fields merge and
    /// clears propagate. Without them the planner decides per record and never clears a field.
    pub source_fields: Option<CanonicalContact>,
    pub target_fields: Option<CanonicalContact>,
    /// Tags the sync added and therefore may remove.
    pub owned_tags: BTreeSet<String>,
    pub status: LinkStatus,
}

/// Why a record is parked (left alone for a human).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum ParkReason {
    /// Both sides changed the same fields and the policy is `report`.
    Conflict,
    /// One identity key finds several GHL contacts.
    AmbiguousMatch {
        method: MatchMethod,
        candidates: Vec<String>,
    },
    /// The matching GHL contact is already linked to another source record.
    TargetAlreadyLinked { target_id: String },
    /// The matching GHL contact carries another HotspotSystem id in the anchor field.
    TargetCarriesOtherId { target_id: String, other: String },
    /// First match under `report` found values that differ on both sides.
    FirstMatchDiffers,
    /// Another source record in this plan creates or links a contact with the same key.
    PendingDuplicate {
        method: MatchMethod,
        other_source: String,
    },
}

impl ParkReason {
    /// Identity parks (which GHL contact is this?) stay parked until the source record changes;
    /// their exact reason may shift as other records get linked, which is no new information.
    /// Content parks are re-evaluated whenever either side changes.
    pub fn is_identity(&self) -> bool {
        !matches!(self, ParkReason::Conflict | ParkReason::FirstMatchDiffers)
    }
}

/// A park recorded in the base: the hashes seen when parking, so an unchanged parked record is
/// not parked again (and a changed one is re-evaluated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedMark {
    pub target_id: Option<String>,
    pub source_hash: Digest,
    pub target_hash: Option<Digest>,
    pub reason: ParkReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMethod {
    HotspotId,
    Email,
    Phone,
    /// The link of a record now merged into this one is taken over.
    MergedRecord,
}

/// GHL contact ids by identity key, for the first match of new source records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityIndex {
    /// The custom field (id or key) holding the HotspotSystem id, as in the field map.
    pub hotspot_field: Option<String>,
    pub by_hotspot_id: HashMap<String, Vec<String>>,
    pub by_email: HashMap<String, Vec<String>>,
    pub by_phone: HashMap<String, Vec<String>>,
}

impl IdentityIndex {
    pub fn new(hotspot_field: Option<String>) -> Self {
        Self {
            hotspot_field,
            ..Self::default()
        }
    }

    /// Index of every target in a snapshot, ids sorted for deterministic plans.
    pub fn build<'a>(
        hotspot_field: Option<String>,
        targets: impl IntoIterator<Item = (&'a String, &'a TargetEntry)>,
    ) -> Self {
        let mut idx = Self::new(hotspot_field);
        for (id, t) in targets {
            idx.insert(id, &t.projection.fields);
        }
        for v in idx
            .by_hotspot_id
            .values_mut()
            .chain(idx.by_email.values_mut())
            .chain(idx.by_phone.values_mut())
        {
            v.sort();
        }
        idx
    }

    pub fn insert(&mut self, target_id: &str, f: &CanonicalContact) {
        if let Some(k) = &self.hotspot_field
            && let Some(v) = f.get_custom(k)
        {
            push_unique(
                self.by_hotspot_id.entry(v.to_owned()).or_default(),
                target_id,
            );
        }
        if let Some(e) = f.email() {
            push_unique(self.by_email.entry(e.to_owned()).or_default(), target_id);
        }
        if let Some(p) = f.phone() {
            push_unique(self.by_phone.entry(p.to_owned()).or_default(), target_id);
        }
    }

    /// Removes `target_id` from the keys of `f` only (cheap, unlike [`Self::remove`]).
    pub fn remove_keys(&mut self, target_id: &str, f: &CanonicalContact) {
        fn drop(m: &mut HashMap<String, Vec<String>>, key: Option<&str>, id: &str) {
            if let Some(k) = key
                && let Some(v) = m.get_mut(k)
            {
                v.retain(|t| t != id);
                if v.is_empty() {
                    m.remove(k);
                }
            }
        }
        let anchor = self.hotspot_value(f);
        drop(&mut self.by_hotspot_id, anchor, target_id);
        drop(&mut self.by_email, f.email(), target_id);
        drop(&mut self.by_phone, f.phone(), target_id);
    }

    pub fn remove(&mut self, target_id: &str) {
        for m in [
            &mut self.by_hotspot_id,
            &mut self.by_email,
            &mut self.by_phone,
        ] {
            m.retain(|_, v| {
                v.retain(|t| t != target_id);
                !v.is_empty()
            });
        }
    }

    fn hotspot_value<'a>(&self, f: &'a CanonicalContact) -> Option<&'a str> {
        self.hotspot_field.as_deref().and_then(|k| f.get_custom(k))
    }
}

/// Keeps each id list sorted, so plans do not depend on insertion order.
fn push_unique(v: &mut Vec<String>, id: &str) {
    if let Err(i) = v.binary_search_by(|x| x.as_str().cmp(id)) {
        v.insert(i, id.to_owned());
    }
}

/// Everything the planner looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactsInput {
    pub source: BTreeMap<String, SourceEntry>,
    /// Every page fetched without error: only then may a missing record mean "deleted".
    pub source_complete: bool,
    /// Records listed but not synced (e.g. no email or phone); they are present, not deleted.
    pub skipped: Vec<SkippedSource>,
    pub target: HashMap<String, TargetEntry>,
    pub target_complete: bool,
    /// GHL contacts known to be deleted (a 400 "Contact not found" on GET, a delete webhook).
    pub target_deleted: BTreeSet<String>,
    pub base: BTreeMap<String, BaseLink>,
    pub parked: BTreeMap<String, ParkedMark>,
    pub identity: IdentityIndex,
}

impl ContactsInput {
    /// Assembles the planner input from this run's listings and the stored base: maps GHL
    /// contacts through the same field map as the source, and indexes them for first matches.
    pub fn from_listings(
        mapped: crate::mapping::MappedSnapshot,
        source_complete: bool,
        targets: &[crate::model::TargetContact],
        target_complete: bool,
        cfg: &crate::mapping::MappingConfig,
        base: BTreeMap<String, BaseLink>,
        parked: BTreeMap<String, ParkedMark>,
    ) -> Self {
        let source = mapped
            .contacts
            .into_iter()
            .map(|m| (m.source_id.clone(), SourceEntry::from(m)))
            .collect();
        let fields = cfg.fields.target_fields();
        let target: HashMap<String, TargetEntry> = targets
            .iter()
            .map(|t| {
                (
                    t.target_id.clone(),
                    TargetEntry {
                        projection: crate::mapping::target_projection_with(t, cfg, &fields),
                        date_updated: t.date_updated,
                    },
                )
            })
            .collect();
        let identity = IdentityIndex::build(cfg.fields.hotspot_id_field.clone(), target.iter());
        Self {
            source,
            source_complete,
            skipped: mapped.skipped,
            target,
            target_complete,
            target_deleted: BTreeSet::new(),
            base,
            parked,
            identity,
        }
    }
}

/// The contact policy of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactPolicy {
    pub conflict: ConflictPolicy,
    pub drift: DriftPolicy,
    pub on_source_delete: SourceDeletePolicy,
    pub on_target_delete: TargetDeletePolicy,
    /// Deletions (tag or delete) are withheld when more than this share of linked records would go.
    pub max_delete_ratio: f64,
    /// The tag put on GHL contacts whose source was deleted, under `on_source_delete = "tag"`.
    pub deleted_tag: String,
    /// No create while the GHL listing is incomplete: an unlisted contact could be the match.
    pub create_requires_complete_target: bool,
    pub now: DateTime<Utc>,
}

impl ContactPolicy {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            conflict: ConflictPolicy::default(),
            drift: DriftPolicy::default(),
            on_source_delete: SourceDeletePolicy::default(),
            on_target_delete: TargetDeletePolicy::default(),
            max_delete_ratio: 0.1,
            deleted_tag: "hs-deleted".into(),
            create_requires_complete_target: true,
            now,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    CreateContact {
        source_id: String,
        fields: Box<CanonicalContact>,
        tags: BTreeSet<String>,
    },
    /// Adopt an existing GHL contact, then write only the fields that differ.
    LinkExisting {
        source_id: String,
        target_id: String,
        method: MatchMethod,
        fields: FieldChanges,
    },
    UpdateContact {
        source_id: String,
        target_id: String,
        fields: FieldChanges,
    },
    AddTags {
        source_id: String,
        target_id: String,
        tags: BTreeSet<String>,
    },
    RemoveTags {
        source_id: String,
        target_id: String,
        tags: BTreeSet<String>,
    },
    /// State only: stop owning tags that are no longer on the contact.
    ForgetOwnedTags {
        source_id: String,
        tags: BTreeSet<String>,
    },
    DeleteContact {
        source_id: String,
        target_id: String,
    },
    /// Soft delete: tag the GHL contact whose source record was deleted.
    TagDeleted {
        source_id: String,
        target_id: String,
        tag: String,
    },
    /// The GHL contact was deleted: keep the link as a tombstone so it is never recreated.
    Tombstone {
        source_id: String,
        target_id: String,
    },
    /// No remote write: both sides agree (or the difference is kept); record the new base.
    RecordBase {
        source_id: String,
        target_id: String,
        source_hash: Digest,
        target_hash: Digest,
        source_fields: Box<CanonicalContact>,
        target_fields: Box<CanonicalContact>,
    },
    /// Deleted on both sides: clear the base.
    ForgetLink {
        source_id: String,
        target_id: String,
    },
    Park {
        source_id: String,
        target_id: Option<String>,
        source_hash: Digest,
        target_hash: Option<Digest>,
        reason: ParkReason,
    },
    Unpark {
        source_id: String,
    },
}

impl Action {
    pub fn source_id(&self) -> &str {
        match self {
            Action::CreateContact { source_id, .. }
            | Action::LinkExisting { source_id, .. }
            | Action::UpdateContact { source_id, .. }
            | Action::AddTags { source_id, .. }
            | Action::RemoveTags { source_id, .. }
            | Action::ForgetOwnedTags { source_id, .. }
            | Action::DeleteContact { source_id, .. }
            | Action::TagDeleted { source_id, .. }
            | Action::Tombstone { source_id, .. }
            | Action::RecordBase { source_id, .. }
            | Action::ForgetLink { source_id, .. }
            | Action::Park { source_id, .. }
            | Action::Unpark { source_id } => source_id,
        }
    }

    /// Whether the action calls GHL (as opposed to changing only the local state).
    pub fn is_remote_write(&self) -> bool {
        matches!(
            self,
            Action::CreateContact { .. }
                | Action::LinkExisting { .. }
                | Action::UpdateContact { .. }
                | Action::AddTags { .. }
                | Action::RemoveTags { .. }
                | Action::DeleteContact { .. }
                | Action::TagDeleted { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Create,
    Link,
    Update,
    /// Content equal or difference kept: only the base is recorded.
    RecordBase,
    Unchanged,
    Parked,
    StillParked,
    /// Not decided this run; retried next run.
    Deferred(DeferReason),
    Skipped,
    SourceDeleteIgnored,
    SourceDeleteTagged,
    SourceDeleted,
    SourceDeleteWithheld,
    TargetDeleteRespected,
    Recreate,
    Forgotten,
    /// A record merged into another one (same email): its item is the other's.
    Merged,
}

/// Why a record was left for the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeferReason {
    /// A mass-deletion guard tripped: the listing is not trusted for new links or creates.
    DeletionGuard,
    /// Its linked GHL contact is not in this run's listing (incomplete or guarded).
    TargetNotListed,
    /// No match, but the GHL listing is incomplete: a create could duplicate.
    TargetIncomplete,
    /// Not listed, but the HotspotSystem listing is incomplete: nothing inferred.
    SourceIncomplete,
    /// Deleted in HotspotSystem, and its GHL contact is not in this run's listing.
    SourceGoneTargetNotListed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    Hotspot,
    Ghl,
    /// Parked: nobody won, nothing written.
    None,
}

/// A field both sides changed differently; the losing value goes to the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldConflict {
    pub field: Field,
    pub source: Option<String>,
    pub target: Option<String>,
    pub winner: Winner,
}

/// What happens to one source record or link, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanItem {
    pub source_id: String,
    pub target_id: Option<String>,
    pub outcome: Outcome,
    pub reason: Cow<'static, str>,
    /// Fields written to GHL.
    pub written: Vec<Field>,
    /// Fields a CRM user changed while HotspotSystem did not.
    pub drift: Vec<Field>,
    pub conflicts: Vec<FieldConflict>,
}

impl PlanItem {
    fn new(
        source_id: &str,
        target_id: Option<&str>,
        outcome: Outcome,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            source_id: source_id.to_owned(),
            target_id: target_id.map(str::to_owned),
            outcome,
            reason: reason.into(),
            written: Vec::new(),
            drift: Vec::new(),
            conflicts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardKind {
    /// More than `max_delete_ratio` of linked records would be deleted or tagged.
    DeleteRatio,
    /// The source listed empty while the base had links.
    SourceEmpty,
    /// The GHL listing is empty, or too many linked contacts are missing from it.
    TargetMassMissing,
    SourceIncomplete,
    TargetIncomplete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardNote {
    pub kind: GuardKind,
    pub affected: usize,
    pub linked: usize,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub items: Vec<PlanItem>,
    pub guards: Vec<GuardNote>,
}

impl Plan {
    pub fn remote_writes(&self) -> usize {
        self.actions.iter().filter(|a| a.is_remote_write()).count()
    }

    /// How many items ended each way, for the run summary.
    pub fn outcome_counts(&self) -> BTreeMap<Outcome, usize> {
        let mut out = BTreeMap::new();
        for it in &self.items {
            *out.entry(it.outcome).or_insert(0) += 1;
        }
        out
    }
}

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
    for (sid, s) in &input.source {
        for m in &s.merged_ids {
            if input.source.contains_key(m) {
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
    let skipped: HashSet<&str> = input.skipped.iter().map(|s| s.source_id.as_str()).collect();
    // Deletions first: the targets they remove are no candidates for matching new records.
    let joined = join_sorted(&input.source, &input.base);
    p.plan_gone(&joined, &skipped);
    for &(sid, s, b) in &joined {
        if let Some(s) = s {
            p.plan_present(sid, s, b);
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
    fn claimed(&mut self) -> &mut HashSet<Cow<'a, str>> {
        let base = &self.input.base;
        self.claimed_set.get_or_insert_with(|| {
            // A tombstoned link claims nothing: its contact was deleted in GHL.
            base.values()
                .filter(|b| b.status == LinkStatus::Active)
                .map(|b| Cow::Borrowed(b.target_id.as_str()))
                .collect()
        })
    }

    fn target_guard(&mut self) {
        let input = self.input;
        if !input.target_complete {
            self.infer_target_gone = false;
            return;
        }
        let active: Vec<&BaseLink> = input
            .base
            .values()
            .filter(|b| b.status == LinkStatus::Active)
            .collect();
        let missing = active
            .iter()
            .filter(|b| {
                !input.target.contains_key(&b.target_id)
                    && !input.target_deleted.contains(&b.target_id)
            })
            .count();
        let linked = active.len();
        if missing > 0 && input.target.is_empty() {
            self.plan.guards.push(GuardNote {
                kind: GuardKind::TargetMassMissing,
                affected: missing,
                linked,
                message: "GHL listed no contacts while links exist: no deletion inferred".into(),
            });
        } else if missing as f64 > self.policy.max_delete_ratio * linked as f64 {
            self.plan.guards.push(GuardNote {
                kind: GuardKind::TargetMassMissing,
                affected: missing,
                linked,
                message: format!(
                    "{missing} of {linked} linked GHL contacts missing from the listing, above \
                     max_delete_ratio {}: no deletion inferred",
                    self.policy.max_delete_ratio
                ),
            });
        } else {
            self.infer_target_gone = true;
        }
    }

    /// Re-keys the identity index for targets whose email, phone or anchor this plan updates.
    fn index_after_updates(&mut self) {
        let anchor = self.index.hotspot_field.clone().map(Field::Custom);
        for a in &self.plan.actions {
            let Action::UpdateContact {
                target_id, fields, ..
            } = a
            else {
                continue;
            };
            let keyed = fields.keys().any(|f| {
                matches!(f, Field::Std(StdField::Email | StdField::Phone))
                    || Some(f) == anchor.as_ref()
            });
            let Some(t) = self.input.target.get(target_id) else {
                continue;
            };
            if keyed {
                let old = &t.projection.fields;
                let mut new = old.clone();
                for (f, v) in fields {
                    new.set(f.clone(), v.clone());
                }
                let idx = self.index.to_mut();
                idx.remove_keys(target_id, old);
                idx.insert(target_id, &new);
            }
        }
    }

    fn target_gone(&self, target_id: &str) -> bool {
        self.input.target_deleted.contains(target_id)
            || (self.infer_target_gone && !self.input.target.contains_key(target_id))
    }

    fn push(&mut self, a: Action) {
        self.plan.actions.push(a);
    }

    /// Parks a record unless it is already parked with the same content.
    fn park(
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

    fn unpark_if_parked(&mut self, sid: &str) {
        if self.input.parked.contains_key(sid) {
            self.push(Action::Unpark {
                source_id: sid.to_owned(),
            });
        }
    }

    fn plan_present(&mut self, sid: &'a str, s: &'a SourceEntry, base: Option<&'a BaseLink>) {
        match base {
            None => self.new_records.push((sid, s, Outcome::Create)),
            Some(b) if b.status == LinkStatus::Tombstoned => match self.policy.on_target_delete {
                TargetDeletePolicy::Respect => {
                    self.unpark_if_parked(sid);
                    self.plan.items.push(PlanItem::new(
                        sid,
                        Some(&b.target_id),
                        Outcome::TargetDeleteRespected,
                        "GHL contact was deleted; not recreated (on_target_delete = respect)",
                    ))
                }
                TargetDeletePolicy::Recreate => self.new_records.push((sid, s, Outcome::Recreate)),
            },
            Some(b) => match self.input.target.get(&b.target_id) {
                Some(t) => self.plan_linked(sid, s, b, t),
                None if self.target_gone(&b.target_id) => match self.policy.on_target_delete {
                    TargetDeletePolicy::Respect => {
                        self.unpark_if_parked(sid);
                        self.push(Action::Tombstone {
                            source_id: sid.to_owned(),
                            target_id: b.target_id.clone(),
                        });
                        self.plan.items.push(PlanItem::new(
                            sid,
                            Some(&b.target_id),
                            Outcome::TargetDeleteRespected,
                            "GHL contact deleted: link tombstoned, not recreated",
                        ));
                    }
                    TargetDeletePolicy::Recreate => {
                        self.new_records.push((sid, s, Outcome::Recreate))
                    }
                },
                None => self.plan.items.push(PlanItem::new(
                    sid,
                    Some(&b.target_id),
                    Outcome::Deferred(DeferReason::TargetNotListed),
                    "linked GHL contact not in this run's listing (incomplete or guarded): \
                     nothing inferred",
                )),
            },
        }
    }

    /// A source record without an active link: take over a merged record's link, match, or create.
    fn plan_new(&mut self, sid: &'a str, s: &'a SourceEntry, create_outcome: Outcome) {
        let idx = self.index.as_ref();
        let f = &s.projection.fields;
        // 1. A link of a record merged into this one.
        for m in &s.merged_ids {
            if self.released.contains(m.as_str())
                && let Some(b) = self.input.base.get(m)
            {
                let tid = b.target_id.as_str();
                self.claimed().insert(Cow::Borrowed(tid));
                if self.link(sid, s, tid, MatchMethod::MergedRecord) {
                    self.push(Action::ForgetLink {
                        source_id: m.clone(),
                        target_id: tid.to_owned(),
                    });
                }
                return;
            }
        }
        // 2. Identity order: anchor field, email, phone. The first key that finds anything decides.
        let hits_of = |m: &HashMap<String, Vec<String>>, k: Option<&str>| -> Vec<String> {
            k.and_then(|k| m.get(k)).cloned().unwrap_or_default()
        };
        let keys: [(MatchMethod, Vec<String>); 3] = [
            (
                MatchMethod::HotspotId,
                hits_of(&idx.by_hotspot_id, Some(sid)),
            ),
            (MatchMethod::Email, hits_of(&idx.by_email, f.email())),
            (MatchMethod::Phone, hits_of(&idx.by_phone, f.phone())),
        ];
        for (method, hits) in keys {
            let live: Vec<&String> = hits
                .iter()
                .filter(|t| !self.target_gone(t) && !self.doomed.contains(t.as_str()))
                .collect();
            if live.is_empty() {
                continue;
            }
            if live.len() > 1 {
                let candidates: Vec<String> = live.iter().map(|t| (*t).clone()).collect();
                let reason = format!(
                    "{} GHL contacts match by {:?}: {}",
                    candidates.len(),
                    method,
                    candidates.join(", ")
                );
                let item = PlanItem::new(sid, None, Outcome::Parked, reason);
                self.park(
                    sid,
                    s,
                    None,
                    ParkReason::AmbiguousMatch { method, candidates },
                    item,
                );
                return;
            }
            let tid = live[0].as_str();
            if self.claimed().contains(tid) {
                let item = PlanItem::new(
                    sid,
                    Some(tid),
                    Outcome::Parked,
                    format!("matching GHL contact {tid} is already linked to another record"),
                );
                self.park(
                    sid,
                    s,
                    Some(tid),
                    ParkReason::TargetAlreadyLinked {
                        target_id: tid.to_owned(),
                    },
                    item,
                );
                return;
            }
            self.link(sid, s, tid, method);
            return;
        }
        // 3. No match: decided after every match of this plan is known (see `plan_unmatched`).
        self.unmatched.push((sid, s, create_outcome));
    }

    /// Creates (or defers) records no GHL contact matched, unless a contact this plan creates
    /// or links will carry the same email or phone: then the record waits (parked) instead of
    /// becoming a duplicate.
    fn plan_unmatched(&mut self, sid: &'a str, s: &'a SourceEntry, create_outcome: Outcome) {
        let f = &s.projection.fields;
        for (method, key) in [
            (MatchMethod::Email, f.email()),
            (MatchMethod::Phone, f.phone()),
        ] {
            let Some(key) = key else { continue };
            if let Some(other) = self.pending.get(&(method, key.to_owned())) {
                let other = (*other).to_owned();
                let item = PlanItem::new(
                    sid,
                    None,
                    Outcome::Parked,
                    format!(
                        "another record ({other}) creates or links a contact with the same \
                         {method:?} in this run"
                    ),
                );
                self.park(
                    sid,
                    s,
                    None,
                    ParkReason::PendingDuplicate {
                        method,
                        other_source: other,
                    },
                    item,
                );
                return;
            }
        }
        if self.policy.create_requires_complete_target && !self.input.target_complete {
            self.plan.items.push(PlanItem::new(
                sid,
                None,
                Outcome::Deferred(DeferReason::TargetIncomplete),
                "no match, but the GHL listing is incomplete: create deferred",
            ));
            return;
        }
        self.add_pending(sid, f.email(), f.phone());
        self.unpark_if_parked(sid);
        self.push(Action::CreateContact {
            source_id: sid.to_owned(),
            fields: Box::new(s.projection.fields.clone()),
            tags: s.projection.tags.clone(),
        });
        let mut item = PlanItem::new(
            sid,
            None,
            create_outcome,
            if create_outcome == Outcome::Recreate {
                "GHL contact was deleted; recreated (on_target_delete = recreate)"
            } else {
                "no matching GHL contact: create"
            },
        );
        item.written = s.projection.fields.iter().map(|(f, _)| f).collect();
        self.plan.items.push(item);
    }

    /// First match: adopt the GHL contact and write only differing fields, as the policy allows.
    /// Returns whether the link was planned (false: parked).
    fn link(&mut self, sid: &'a str, s: &'a SourceEntry, tid: &str, method: MatchMethod) -> bool {
        let sf = &s.projection.fields;
        // The anchor names the record a contact belongs to: never adopt another record's contact
        // (nor rewrite its anchor, which others match on).
        if let Some(t) = self.input.target.get(tid)
            && let Some(k) = &self.index.hotspot_field
            && let Some(other) = t.projection.fields.get(&Field::Custom(k.clone()))
            && other != sid
            && !(method == MatchMethod::MergedRecord && s.merged_ids.iter().any(|m| m == other))
        {
            let item = PlanItem::new(
                sid,
                Some(tid),
                Outcome::Parked,
                format!("matching GHL contact {tid} carries HotspotSystem id {other}"),
            );
            self.park(
                sid,
                s,
                Some(tid),
                ParkReason::TargetCarriesOtherId {
                    target_id: tid.to_owned(),
                    other: other.to_owned(),
                },
                item,
            );
            return false;
        }
        let Some(t) = self.input.target.get(tid) else {
            // Matched through the index only (not listed): write every source value.
            let fields: FieldChanges = sf.iter().map(|(f, v)| (f, Some(v.to_owned()))).collect();
            self.add_pending(sid, sf.email(), sf.phone());
            self.unpark_if_parked(sid);
            let mut item = PlanItem::new(sid, Some(tid), Outcome::Link, "matched; not listed");
            item.written = fields.keys().cloned().collect();
            self.claimed().insert(Cow::Owned(tid.to_owned()));
            self.push(Action::LinkExisting {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                method,
                fields,
            });
            if !s.projection.tags.is_empty() {
                self.push(Action::AddTags {
                    source_id: sid.to_owned(),
                    target_id: tid.to_owned(),
                    tags: s.projection.tags.clone(),
                });
            }
            self.plan.items.push(item);
            return true;
        };
        let tf = &t.projection.fields;
        let anchor = self.index.hotspot_field.clone().map(Field::Custom);
        let mut fields = FieldChanges::new();
        let mut conflicts = Vec::new();
        for f in sf.diff(tf) {
            let (Some(sv), tv) = (sf.get(&f), tf.get(&f)) else {
                continue; // never blank a GHL field on first match
            };
            if tv.is_none() || Some(&f) == anchor.as_ref() {
                fields.insert(f, Some(sv.to_owned()));
                continue;
            }
            // An existing contact's email and phone are identity keys other records match on:
            // a first match fills them but never replaces them.
            let identity_key = matches!(f, Field::Std(StdField::Email | StdField::Phone));
            let winner = match self.policy.conflict {
                ConflictPolicy::Report => Winner::None,
                _ if identity_key => Winner::Ghl,
                ConflictPolicy::HotspotWins => Winner::Hotspot,
                ConflictPolicy::GhlWins => Winner::Ghl,
                ConflictPolicy::NewestWins => self.newest(s, t, true),
            };
            if winner == Winner::Hotspot {
                fields.insert(f.clone(), Some(sv.to_owned()));
            }
            conflicts.push(FieldConflict {
                field: f,
                source: Some(sv.to_owned()),
                target: tv.map(str::to_owned),
                winner,
            });
        }
        if conflicts.iter().any(|c| c.winner == Winner::None) {
            let mut item = PlanItem::new(
                sid,
                Some(tid),
                Outcome::Parked,
                format!("first match by {method:?}: values differ on both sides (policy report)"),
            );
            item.conflicts = conflicts;
            self.park(sid, s, Some(tid), ParkReason::FirstMatchDiffers, item);
            return false;
        }
        let after = |f: StdField| match fields.get(&Field::Std(f)) {
            Some(v) => v.clone(),
            None => tf.get_std(f).map(str::to_owned),
        };
        let (email, phone) = (after(StdField::Email), after(StdField::Phone));
        self.add_pending(sid, email.as_deref(), phone.as_deref());
        self.unpark_if_parked(sid);
        let mut item = PlanItem::new(
            sid,
            Some(tid),
            Outcome::Link,
            match method {
                MatchMethod::HotspotId => "linked by the HotspotSystem id field",
                MatchMethod::Email => "linked by email",
                MatchMethod::Phone => "linked by phone",
                MatchMethod::MergedRecord => "took over the link of a record merged into this one",
            },
        );
        item.written = fields.keys().cloned().collect();
        item.conflicts = conflicts;
        self.claimed().insert(Cow::Owned(tid.to_owned()));
        self.push(Action::LinkExisting {
            source_id: sid.to_owned(),
            target_id: tid.to_owned(),
            method,
            fields,
        });
        let add: BTreeSet<String> = s
            .projection
            .tags
            .difference(&t.projection.tags)
            .cloned()
            .collect();
        if !add.is_empty() {
            self.push(Action::AddTags {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                tags: add,
            });
        }
        self.plan.items.push(item);
        true
    }

    fn add_pending(&mut self, sid: &'a str, email: Option<&str>, phone: Option<&str>) {
        if let Some(e) = email {
            self.pending.insert((MatchMethod::Email, e.to_owned()), sid);
        }
        if let Some(p) = phone {
            self.pending.insert((MatchMethod::Phone, p.to_owned()), sid);
        }
    }

    fn newest(&self, s: &SourceEntry, t: &TargetEntry, first_match: bool) -> Winner {
        let s_time = s
            .changed_at
            .or(if first_match { s.registered_at } else { None })
            .unwrap_or(self.policy.now);
        match t.date_updated {
            Some(tt) if tt > s_time => Winner::Ghl,
            _ => Winner::Hotspot,
        }
    }

    /// The three-way decision for a linked record whose GHL contact is listed.
    fn plan_linked(
        &mut self,
        sid: &'a str,
        s: &'a SourceEntry,
        b: &'a BaseLink,
        t: &'a TargetEntry,
    ) {
        let sp = &s.projection;
        let tp = &t.projection;
        let s_changed = sp.hash != b.source_hash;
        let t_changed = tp.hash != b.target_hash;
        let tid = b.target_id.as_str();

        let mut item = PlanItem::new(sid, Some(tid), Outcome::Unchanged, "unchanged");
        let mut writes = FieldChanges::new();
        if s_changed || t_changed {
            if sp.hash == tp.hash {
                item.outcome = Outcome::RecordBase;
                item.reason = "both sides changed to the same content: base recorded".into();
            } else {
                let per_field = b.source_fields.as_ref().zip(b.target_fields.as_ref());
                let fields: Vec<Field> = match per_field {
                    Some((bs, bt)) => {
                        let mut set: BTreeSet<Field> =
                            sp.fields.diff(&tp.fields).into_iter().collect();
                        if s_changed {
                            set.extend(sp.fields.diff(bs));
                        }
                        if t_changed {
                            set.extend(tp.fields.diff(bt));
                        }
                        set.into_iter().collect()
                    }
                    None => sp.fields.diff(&tp.fields),
                };
                for f in fields {
                    let sv = sp.fields.get(&f);
                    let tv = tp.fields.get(&f);
                    let (s_ch, t_ch) = match per_field {
                        Some((bs, bt)) => {
                            (s_changed && sv != bs.get(&f), t_changed && tv != bt.get(&f))
                        }
                        None => (s_changed, t_changed),
                    };
                    // Without per-field bases a clear cannot be told from "never had it".
                    let may_clear = per_field.is_some();
                    if sv == tv {
                        continue;
                    }
                    match (s_ch, t_ch) {
                        (true, false) => {
                            if sv.is_some() || may_clear {
                                writes.insert(f, sv.map(str::to_owned));
                            }
                        }
                        (false, true) => {
                            if self.policy.drift == DriftPolicy::Reassert && sv.is_some() {
                                writes.insert(f.clone(), sv.map(str::to_owned));
                            }
                            item.drift.push(f);
                        }
                        (true, true) => {
                            let winner = match self.policy.conflict {
                                ConflictPolicy::HotspotWins => Winner::Hotspot,
                                ConflictPolicy::GhlWins => Winner::Ghl,
                                ConflictPolicy::NewestWins => self.newest(s, t, false),
                                ConflictPolicy::Report => Winner::None,
                            };
                            if winner == Winner::Hotspot && (sv.is_some() || may_clear) {
                                writes.insert(f.clone(), sv.map(str::to_owned));
                            }
                            item.conflicts.push(FieldConflict {
                                field: f,
                                source: sv.map(str::to_owned),
                                target: tv.map(str::to_owned),
                                winner,
                            });
                        }
                        (false, false) => {}
                    }
                }
                if item.conflicts.iter().any(|c| c.winner == Winner::None) {
                    item.reason =
                        "both sides changed the same fields (policy report): parked".into();
                    self.park(sid, s, Some(tid), ParkReason::Conflict, item);
                    return;
                }
                item.outcome = if writes.is_empty() {
                    Outcome::RecordBase
                } else {
                    Outcome::Update
                };
                item.reason = match (
                    !writes.is_empty(),
                    !item.drift.is_empty(),
                    !item.conflicts.is_empty(),
                ) {
                    (_, _, true) => "conflict resolved by policy; losing values in the item".into(),
                    (true, true, false) => {
                        "HotspotSystem changes written; CRM edits (drift) handled per drift policy"
                            .into()
                    }
                    (true, false, false) => "HotspotSystem changed: changed fields written".into(),
                    (false, true, false) => "CRM user edited synced fields: kept (drift)".into(),
                    (false, false, false) => {
                        "content differs only where neither side changed: base recorded".into()
                    }
                };
            }
        } else if sp.hash != tp.hash {
            item.reason = "unchanged since the base; differences kept from earlier drift".into();
        }

        self.unpark_if_parked(sid);
        if !writes.is_empty() {
            item.written = writes.keys().cloned().collect();
            self.push(Action::UpdateContact {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                fields: writes,
            });
        } else if s_changed || t_changed {
            self.push(Action::RecordBase {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                source_hash: sp.hash,
                target_hash: tp.hash,
                source_fields: Box::new(sp.fields.clone()),
                target_fields: Box::new(tp.fields.clone()),
            });
        }
        self.plan_tags(sid, tid, &sp.tags, &tp.tags, &b.owned_tags, &mut item);
        self.plan.items.push(item);
    }

    /// Owned-set tag semantics: add generated tags the contact lacks; remove only owned tags no
    /// longer generated; forget ownership of owned tags already gone. Others are never touched.
    fn plan_tags(
        &mut self,
        sid: &str,
        tid: &str,
        desired: &BTreeSet<String>,
        current: &BTreeSet<String>,
        owned: &BTreeSet<String>,
        item: &mut PlanItem,
    ) {
        let add: BTreeSet<String> = desired.difference(current).cloned().collect();
        let mut remove = BTreeSet::new();
        let mut forget = BTreeSet::new();
        for t in owned.difference(desired) {
            if current.contains(t) {
                remove.insert(t.clone());
            } else {
                forget.insert(t.clone());
            }
        }
        let touched = !add.is_empty() || !remove.is_empty();
        if !add.is_empty() {
            self.push(Action::AddTags {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                tags: add,
            });
        }
        if !remove.is_empty() {
            self.push(Action::RemoveTags {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                tags: remove,
            });
        }
        if !forget.is_empty() {
            self.push(Action::ForgetOwnedTags {
                source_id: sid.to_owned(),
                tags: forget,
            });
        }
        if touched && item.outcome == Outcome::Unchanged {
            item.outcome = Outcome::Update;
            item.reason = "generated tags changed".into();
        }
    }

    /// Links (and parks) whose source record is no longer listed.
    fn plan_gone(&mut self, joined: &[Joined<'a>], skipped: &HashSet<&str>) {
        let input = self.input;
        let policy = self.policy;
        // Compared with GHL's tags, which are lower-cased like every tag the sync writes.
        let deleted_tag =
            crate::model::norm_tag(&policy.deleted_tag).unwrap_or_else(|| "hs-deleted".to_owned());
        let mut gone: Vec<(&'a String, &'a BaseLink)> = Vec::new();
        for &(sid, s, b) in joined {
            let Some(b) = b else { continue };
            if s.is_some() || (!skipped.is_empty() && skipped.contains(sid.as_str())) {
                continue;
            }
            if self.merged_into.contains(sid.as_str()) {
                // A released link is forgotten by the record taking it over, once it does.
                let target_suspect = self
                    .plan
                    .guards
                    .iter()
                    .any(|g| g.kind == GuardKind::TargetMassMissing);
                let reason = if self.released.contains(sid.as_str()) {
                    "merged into another record with the same email; its link moves there"
                } else if target_suspect {
                    "merged into another record; link kept while the GHL listing is suspect"
                } else {
                    self.push(Action::ForgetLink {
                        source_id: sid.clone(),
                        target_id: b.target_id.clone(),
                    });
                    self.claimed().remove(b.target_id.as_str());
                    "merged into another record with the same email; link released"
                };
                self.plan.items.push(PlanItem::new(
                    sid,
                    Some(&b.target_id),
                    Outcome::Merged,
                    reason,
                ));
                continue;
            }
            gone.push((sid, b));
        }
        // Parks of records no longer listed.
        for sid in input.parked.keys() {
            if !input.source.contains_key(sid)
                && !skipped.contains(sid.as_str())
                && input.source_complete
            {
                self.push(Action::Unpark {
                    source_id: sid.clone(),
                });
            }
        }
        if gone.is_empty() {
            return;
        }
        if !input.source_complete {
            self.plan.guards.push(GuardNote {
                kind: GuardKind::SourceIncomplete,
                affected: gone.len(),
                linked: input.base.len(),
                message: "HotspotSystem listing incomplete: no deletion inferred".into(),
            });
            for (sid, b) in gone {
                self.plan.items.push(PlanItem::new(
                    sid,
                    Some(&b.target_id),
                    Outcome::Deferred(DeferReason::SourceIncomplete),
                    "not listed, but the HotspotSystem listing is incomplete: nothing inferred",
                ));
            }
            return;
        }
        let linked = input
            .base
            .values()
            .filter(|b| b.status == LinkStatus::Active)
            .count();
        // Decide per link what a source deletion would do, before the guard.
        enum Would {
            Forget,
            Ignore,
            AlreadyTagged,
            Unlisted,
            Tag,
            Delete,
        }
        let decided: Vec<(&String, &BaseLink, Would)> = gone
            .into_iter()
            .map(|(sid, b)| {
                let would = if b.status == LinkStatus::Tombstoned || self.target_gone(&b.target_id)
                {
                    Would::Forget
                } else {
                    match policy.on_source_delete {
                        SourceDeletePolicy::Ignore => Would::Ignore,
                        SourceDeletePolicy::Tag => match input.target.get(&b.target_id) {
                            None => Would::Unlisted,
                            Some(t) if t.projection.tags.contains(&deleted_tag) => {
                                Would::AlreadyTagged
                            }
                            Some(_) => Would::Tag,
                        },
                        SourceDeletePolicy::Delete => Would::Delete,
                    }
                };
                (sid, b, would)
            })
            .collect();
        let deleting = decided
            .iter()
            .filter(|(_, _, w)| matches!(w, Would::Tag | Would::Delete))
            .count();
        let target_suspect = self
            .plan
            .guards
            .iter()
            .any(|g| g.kind == GuardKind::TargetMassMissing);
        let withheld = if deleting == 0 {
            None
        } else if target_suspect {
            Some((
                GuardKind::TargetMassMissing,
                "the GHL listing is missing many linked contacts: deletions withheld".to_owned(),
            ))
        } else if input.source.is_empty() && input.skipped.is_empty() {
            Some((
                GuardKind::SourceEmpty,
                "HotspotSystem listed no records while links exist: deletions withheld".to_owned(),
            ))
        } else if deleting as f64 > policy.max_delete_ratio * linked as f64 {
            Some((
                GuardKind::DeleteRatio,
                format!(
                    "{deleting} of {linked} linked records would be deleted, above \
                     max_delete_ratio {}: deletions withheld",
                    policy.max_delete_ratio
                ),
            ))
        } else {
            None
        };
        if let Some((kind, message)) = &withheld {
            self.plan.guards.push(GuardNote {
                kind: *kind,
                affected: deleting,
                linked,
                message: message.clone(),
            });
        }
        for (sid, b, would) in decided {
            let tid = Some(b.target_id.as_str());
            let item = match would {
                Would::Forget => {
                    self.push(Action::ForgetLink {
                        source_id: sid.clone(),
                        target_id: b.target_id.clone(),
                    });
                    PlanItem::new(
                        sid,
                        tid,
                        Outcome::Forgotten,
                        "deleted on both sides: base cleared",
                    )
                }
                Would::Ignore => PlanItem::new(
                    sid,
                    tid,
                    Outcome::SourceDeleteIgnored,
                    "deleted in HotspotSystem; GHL contact kept (on_source_delete = ignore)",
                ),
                Would::AlreadyTagged => PlanItem::new(
                    sid,
                    tid,
                    Outcome::SourceDeleteTagged,
                    "deleted in HotspotSystem; GHL contact already tagged",
                ),
                Would::Unlisted => PlanItem::new(
                    sid,
                    tid,
                    Outcome::Deferred(DeferReason::SourceGoneTargetNotListed),
                    "deleted in HotspotSystem; GHL contact not in this run's listing: tag deferred",
                ),
                _ if withheld.is_some() => PlanItem::new(
                    sid,
                    tid,
                    Outcome::SourceDeleteWithheld,
                    withheld
                        .as_ref()
                        .map(|(_, m)| m.clone())
                        .unwrap_or_default(),
                ),
                Would::Tag => {
                    self.push(Action::TagDeleted {
                        source_id: sid.clone(),
                        target_id: b.target_id.clone(),
                        tag: deleted_tag.clone(),
                    });
                    PlanItem::new(
                        sid,
                        tid,
                        Outcome::SourceDeleteTagged,
                        "deleted in HotspotSystem; GHL contact tagged (on_source_delete = tag)",
                    )
                }
                Would::Delete => {
                    self.doomed.insert(b.target_id.as_str());
                    self.push(Action::DeleteContact {
                        source_id: sid.clone(),
                        target_id: b.target_id.clone(),
                    });
                    PlanItem::new(
                        sid,
                        tid,
                        Outcome::SourceDeleted,
                        "deleted in HotspotSystem; GHL contact deleted (on_source_delete = delete)",
                    )
                }
            };
            self.plan.items.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::SkipReason;
    use crate::model::StdField::{self, *};
    use crate::reconcile::simulate::apply_to_snapshots;

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn policy() -> ContactPolicy {
        ContactPolicy::new(now())
    }

    fn fields(pairs: &[(StdField, &str)]) -> CanonicalContact {
        let mut c = CanonicalContact::new();
        for (f, v) in pairs {
            c.set_std(*f, Some((*v).to_owned()));
        }
        c
    }

    fn proj(pairs: &[(StdField, &str)], tags: &[&str]) -> ContactProjection {
        ContactProjection::new(
            fields(pairs),
            tags.iter().map(|t| (*t).to_owned()).collect(),
        )
    }

    fn world() -> ContactsInput {
        ContactsInput {
            source_complete: true,
            target_complete: true,
            ..ContactsInput::default()
        }
    }

    fn src(w: &mut ContactsInput, id: &str, p: ContactProjection) {
        w.source.insert(id.into(), SourceEntry::new(p));
    }

    fn tgt(w: &mut ContactsInput, id: &str, p: ContactProjection) {
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
    fn link(w: &mut ContactsInput, sid: &str, tid: &str, owned: &[&str]) {
        let s = &w.source[sid].projection;
        let t = &w.target[tid].projection;
        w.base.insert(
            sid.into(),
            BaseLink {
                target_id: tid.into(),
                source_hash: s.hash,
                target_hash: t.hash,
                source_fields: Some(s.fields.clone()),
                target_fields: Some(t.fields.clone()),
                owned_tags: owned.iter().map(|t| (*t).to_owned()).collect(),
                status: LinkStatus::Active,
            },
        );
    }

    fn set_src(w: &mut ContactsInput, id: &str, f: StdField, v: &str) {
        let e = w.source.get_mut(id).unwrap();
        let mut c = e.projection.fields.clone();
        c.set_std(f, Some(v.into()));
        e.projection = ContactProjection::new(c, e.projection.tags.clone());
    }

    fn set_tgt(w: &mut ContactsInput, id: &str, f: StdField, v: &str) {
        let e = w.target.get_mut(id).unwrap();
        let mut c = e.projection.fields.clone();
        c.set_std(f, Some(v.into()));
        e.projection = ContactProjection::new(c, e.projection.tags.clone());
    }

    fn item<'p>(p: &'p Plan, sid: &str) -> &'p PlanItem {
        let found: Vec<_> = p.items.iter().filter(|i| i.source_id == sid).collect();
        assert_eq!(found.len(), 1, "exactly one item for {sid}: {:?}", p.items);
        found[0]
    }

    /// Applies the plan in memory and checks the next plan makes no changes at all.
    fn settles(w: &ContactsInput, pol: &ContactPolicy) -> ContactsInput {
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

    fn changes(pairs: &[(StdField, Option<&str>)]) -> FieldChanges {
        pairs
            .iter()
            .map(|(f, v)| (Field::Std(*f), v.map(str::to_owned)))
            .collect()
    }

    // --- S new ---------------------------------------------------------------------------

    #[test]
    fn new_source_with_email_match_links_and_writes_only_differing_fields() {
        let mut w = world();
        src(
            &mut w,
            "c1",
            proj(
                &[(Email, "a@x.io"), (FirstName, "Ann"), (City, "Oslo")],
                &["hotspotsystem"],
            ),
        );
        tgt(
            &mut w,
            "g1",
            proj(
                &[
                    (Email, "a@x.io"),
                    (FirstName, "Anna"),
                    (Phone, "+4712345678"),
                ],
                &["vip"],
            ),
        );
        let p = plan_contacts(&w, &policy());
        assert_eq!(
            p.actions,
            vec![
                Action::LinkExisting {
                    source_id: "c1".into(),
                    target_id: "g1".into(),
                    method: MatchMethod::Email,
                    // The GHL phone the source lacks is not blanked.
                    fields: changes(&[(FirstName, Some("Ann")), (City, Some("Oslo"))]),
                },
                Action::AddTags {
                    source_id: "c1".into(),
                    target_id: "g1".into(),
                    tags: ["hotspotsystem".to_owned()].into(),
                },
            ]
        );
        assert_eq!(item(&p, "c1").outcome, Outcome::Link);
        settles(&w, &policy());
    }

    #[test]
    fn identity_order_is_anchor_then_email_then_phone() {
        let mut w = world();
        w.identity = IdentityIndex::new(Some("hs_id".into()));
        src(
            &mut w,
            "c1",
            proj(&[(Email, "a@x.io"), (Phone, "+15550102000")], &[]),
        );
        let mut anchored = fields(&[(Email, "old@x.io")]);
        anchored.set(Field::Custom("hs_id".into()), Some("c1".into()));
        tgt(
            &mut w,
            "g-anchor",
            ContactProjection::new(anchored, BTreeSet::new()),
        );
        tgt(&mut w, "g-email", proj(&[(Email, "a@x.io")], &[]));
        tgt(&mut w, "g-phone", proj(&[(Phone, "+15550102000")], &[]));
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[0],
            Action::LinkExisting { target_id, method: MatchMethod::HotspotId, .. } if target_id == "g-anchor"));

        w.identity.by_hotspot_id.clear();
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[0],
            Action::LinkExisting { target_id, method: MatchMethod::Email, .. } if target_id == "g-email"));

        w.identity.by_email.clear();
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[0],
            Action::LinkExisting { target_id, method: MatchMethod::Phone, .. } if target_id == "g-phone"));
    }

    #[test]
    fn never_two_sources_onto_one_target() {
        let mut w = world();
        src(&mut w, "c1", proj(&[(Email, "a@x.io")], &[]));
        src(
            &mut w,
            "c2",
            proj(&[(Email, "b@x.io"), (Phone, "+15550102000")], &[]),
        );
        tgt(
            &mut w,
            "g1",
            proj(&[(Email, "a@x.io"), (Phone, "+15550102000")], &[]),
        );
        let p = plan_contacts(&w, &policy());
        assert_eq!(item(&p, "c1").outcome, Outcome::Link);
        let c2 = item(&p, "c2");
        assert_eq!(c2.outcome, Outcome::Parked);
        assert!(p.actions.iter().any(|a| matches!(a, Action::Park {
            source_id, reason: ParkReason::TargetAlreadyLinked { .. }, .. } if source_id == "c2")));
        let next = settles(&w, &policy());
        assert_eq!(
            item(&plan_contacts(&next, &policy()), "c2").outcome,
            Outcome::StillParked
        );
    }

    #[test]
    fn ambiguous_match_is_parked_not_created() {
        let mut w = world();
        src(&mut w, "c1", proj(&[(Email, "a@x.io")], &[]));
        tgt(&mut w, "g1", proj(&[(Email, "a@x.io")], &[]));
        tgt(
            &mut w,
            "g2",
            proj(&[(Email, "a@x.io"), (City, "Rome")], &[]),
        );
        let p = plan_contacts(&w, &policy());
        assert_eq!(p.actions.len(), 1);
        assert!(matches!(&p.actions[0], Action::Park {
            reason: ParkReason::AmbiguousMatch { candidates, .. }, .. } if candidates.len() == 2));
        settles(&w, &policy());
    }

    #[test]
    fn new_source_without_match_is_created_unless_target_listing_incomplete() {
        let mut w = world();
        src(&mut w, "c1", proj(&[(Email, "a@x.io")], &["hotspotsystem"]));
        let p = plan_contacts(&w, &policy());
        assert!(
            matches!(&p.actions[..], [Action::CreateContact { source_id, tags, .. }]
            if source_id == "c1" && tags.contains("hotspotsystem"))
        );
        settles(&w, &policy());

        w.target_complete = false;
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty());
        assert_eq!(
            item(&p, "c1").outcome,
            Outcome::Deferred(DeferReason::TargetIncomplete)
        );
    }

    #[test]
    fn two_new_sources_with_one_email_make_one_create() {
        let mut w = world();
        src(&mut w, "c1", proj(&[(Email, "a@x.io")], &[]));
        src(
            &mut w,
            "c2",
            proj(&[(Email, "a@x.io"), (City, "Oslo")], &[]),
        );
        let p = plan_contacts(&w, &policy());
        let creates = p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::CreateContact { .. }))
            .count();
        assert_eq!(creates, 1);
        assert_eq!(item(&p, "c2").outcome, Outcome::Parked);
        settles(&w, &policy());
    }

    // --- linked ----------------------------------------------------------------------------

    fn linked_world() -> ContactsInput {
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

    #[test]
    fn unchanged_on_both_sides_plans_nothing() {
        let w = linked_world();
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty());
        assert_eq!(item(&p, "c1").outcome, Outcome::Unchanged);
    }

    #[test]
    fn source_changed_updates_only_changed_fields() {
        let mut w = linked_world();
        set_src(&mut w, "c1", City, "Bergen");
        let p = plan_contacts(&w, &policy());
        assert_eq!(
            p.actions,
            vec![Action::UpdateContact {
                source_id: "c1".into(),
                target_id: "g1".into(),
                fields: changes(&[(City, Some("Bergen"))]),
            }]
        );
        settles(&w, &policy());
    }

    #[test]
    fn source_clear_propagates_with_field_bases() {
        let mut w = linked_world();
        let e = w.source.get_mut("c1").unwrap();
        let mut c = e.projection.fields.clone();
        c.set_std(City, None);
        e.projection = ContactProjection::new(c, BTreeSet::new());
        let p = plan_contacts(&w, &policy());
        assert!(
            matches!(&p.actions[..], [Action::UpdateContact { fields, .. }]
            if *fields == changes(&[(City, None)]))
        );
        settles(&w, &policy());
    }

    #[test]
    fn target_edit_is_drift_kept_or_reasserted() {
        let mut w = linked_world();
        set_tgt(&mut w, "g1", City, "Paris");
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[..], [Action::RecordBase { .. }]));
        let it = item(&p, "c1");
        assert_eq!(it.drift, vec![Field::Std(City)]);
        assert_eq!(it.outcome, Outcome::RecordBase);
        settles(&w, &policy());

        let mut pol = policy();
        pol.drift = DriftPolicy::Reassert;
        let p = plan_contacts(&w, &pol);
        assert!(
            matches!(&p.actions[..], [Action::UpdateContact { fields, .. }]
            if *fields == changes(&[(City, Some("Oslo"))]))
        );
        settles(&w, &pol);
    }

    #[test]
    fn edits_to_different_fields_merge() {
        let mut w = linked_world();
        set_src(&mut w, "c1", FirstName, "Annie");
        set_tgt(&mut w, "g1", City, "Paris");
        let p = plan_contacts(&w, &policy());
        assert!(
            matches!(&p.actions[..], [Action::UpdateContact { fields, .. }]
            if *fields == changes(&[(FirstName, Some("Annie"))]))
        );
        assert!(item(&p, "c1").conflicts.is_empty());
        let next = settles(&w, &policy());
        let t = &next.target["g1"].projection.fields;
        assert_eq!(t.get_std(FirstName), Some("Annie"));
        assert_eq!(t.get_std(City), Some("Paris"));
    }

    fn conflict_world() -> ContactsInput {
        let mut w = linked_world();
        set_src(&mut w, "c1", City, "Bergen");
        set_tgt(&mut w, "g1", City, "Paris");
        w
    }

    #[test]
    fn conflict_hotspot_wins_writes_and_records_the_loser() {
        let w = conflict_world();
        let p = plan_contacts(&w, &policy());
        assert!(
            matches!(&p.actions[..], [Action::UpdateContact { fields, .. }]
            if *fields == changes(&[(City, Some("Bergen"))]))
        );
        let c = &item(&p, "c1").conflicts[0];
        assert_eq!(
            (c.winner, c.target.as_deref()),
            (Winner::Hotspot, Some("Paris"))
        );
        settles(&w, &policy());
    }

    #[test]
    fn conflict_ghl_wins_keeps_target_and_records_base() {
        let w = conflict_world();
        let mut pol = policy();
        pol.conflict = ConflictPolicy::GhlWins;
        let p = plan_contacts(&w, &pol);
        assert!(matches!(&p.actions[..], [Action::RecordBase { .. }]));
        let c = &item(&p, "c1").conflicts[0];
        assert_eq!(
            (c.winner, c.source.as_deref()),
            (Winner::Ghl, Some("Bergen"))
        );
        settles(&w, &pol);
    }

    #[test]
    fn conflict_newest_wins_compares_timestamps() {
        let mut w = conflict_world();
        let mut pol = policy();
        pol.conflict = ConflictPolicy::NewestWins;
        w.source.get_mut("c1").unwrap().changed_at = Some(now() - chrono::Duration::hours(2));
        w.target.get_mut("g1").unwrap().date_updated = Some(now() - chrono::Duration::hours(1));
        let p = plan_contacts(&w, &pol);
        assert_eq!(item(&p, "c1").conflicts[0].winner, Winner::Ghl);
        w.target.get_mut("g1").unwrap().date_updated = Some(now() - chrono::Duration::hours(3));
        let p = plan_contacts(&w, &pol);
        assert_eq!(item(&p, "c1").conflicts[0].winner, Winner::Hotspot);
        settles(&w, &pol);
    }

    #[test]
    fn conflict_report_parks_once() {
        let w = conflict_world();
        let mut pol = policy();
        pol.conflict = ConflictPolicy::Report;
        let p = plan_contacts(&w, &pol);
        assert!(matches!(
            &p.actions[..],
            [Action::Park {
                reason: ParkReason::Conflict,
                ..
            }]
        ));
        assert_eq!(item(&p, "c1").conflicts[0].winner, Winner::None);
        let next = settles(&w, &pol);
        // Resolving it in GHL (same value as HotspotSystem) unparks and records the base.
        let mut fixed = next.clone();
        set_tgt(&mut fixed, "g1", City, "Bergen");
        let p = plan_contacts(&fixed, &pol);
        assert!(p.actions.contains(&Action::Unpark {
            source_id: "c1".into()
        }));
        assert!(
            p.actions
                .iter()
                .any(|a| matches!(a, Action::RecordBase { .. }))
        );
        settles(&fixed, &pol);
    }

    #[test]
    fn both_changed_to_equal_content_only_records_the_base() {
        let mut w = linked_world();
        set_src(&mut w, "c1", City, "Bergen");
        set_tgt(&mut w, "g1", City, "Bergen");
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[..], [Action::RecordBase { .. }]));
        assert_eq!(p.remote_writes(), 0);
        settles(&w, &policy());
    }

    // --- source deleted --------------------------------------------------------------------

    /// `n` linked records, `gone` of which disappear from the source listing.
    fn deletion_world(n: usize, gone: usize) -> ContactsInput {
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

    #[test]
    fn source_deletion_ignore_tag_delete() {
        let w = deletion_world(20, 1);
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty());
        assert_eq!(item(&p, "c0").outcome, Outcome::SourceDeleteIgnored);

        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Tag;
        let p = plan_contacts(&w, &pol);
        assert_eq!(
            p.actions,
            vec![Action::TagDeleted {
                source_id: "c0".into(),
                target_id: "g0".into(),
                tag: "hs-deleted".into()
            }]
        );
        settles(&w, &pol);

        pol.on_source_delete = SourceDeletePolicy::Delete;
        let p = plan_contacts(&w, &pol);
        assert_eq!(
            p.actions,
            vec![Action::DeleteContact {
                source_id: "c0".into(),
                target_id: "g0".into()
            }]
        );
        assert_eq!(item(&p, "c0").outcome, Outcome::SourceDeleted);
        assert_eq!(p.outcome_counts()[&Outcome::Unchanged], 19);
        settles(&w, &pol);
    }

    #[test]
    fn mass_source_deletion_is_withheld() {
        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Delete;
        let w = deletion_world(20, 3); // 15% > 10%
        let p = plan_contacts(&w, &pol);
        assert!(p.actions.is_empty());
        assert_eq!(p.guards[0].kind, GuardKind::DeleteRatio);
        assert_eq!(item(&p, "c1").outcome, Outcome::SourceDeleteWithheld);
        assert!(item(&p, "c1").reason.contains("max_delete_ratio"));

        pol.max_delete_ratio = 1.0;
        let w = deletion_world(5, 5);
        let p = plan_contacts(&w, &pol);
        assert!(p.actions.is_empty());
        assert_eq!(p.guards[0].kind, GuardKind::SourceEmpty);
    }

    #[test]
    fn incomplete_source_listing_never_infers_deletion() {
        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Delete;
        let mut w = deletion_world(20, 1);
        w.source_complete = false;
        let p = plan_contacts(&w, &pol);
        assert!(p.actions.is_empty());
        assert!(matches!(item(&p, "c0").outcome, Outcome::Deferred(_)));
        assert_eq!(p.guards[0].kind, GuardKind::SourceIncomplete);
    }

    #[test]
    fn deleted_on_both_sides_forgets_the_link() {
        let mut w = deletion_world(20, 1);
        w.target.remove("g0");
        let p = plan_contacts(&w, &policy());
        assert!(
            matches!(&p.actions[..], [Action::ForgetLink { source_id, .. }] if source_id == "c0")
        );
        settles(&w, &policy());
    }

    // --- target deleted --------------------------------------------------------------------

    #[test]
    fn target_deletion_is_respected_or_recreated() {
        let mut w = deletion_world(20, 0);
        w.target.remove("g0");
        let p = plan_contacts(&w, &policy());
        assert_eq!(
            p.actions,
            vec![Action::Tombstone {
                source_id: "c0".into(),
                target_id: "g0".into()
            }]
        );
        let next = settles(&w, &policy());
        assert_eq!(next.base["c0"].status, LinkStatus::Tombstoned);

        let mut pol = policy();
        pol.on_target_delete = TargetDeletePolicy::Recreate;
        let p = plan_contacts(&w, &pol);
        assert!(
            matches!(&p.actions[..], [Action::CreateContact { source_id, .. }] if source_id == "c0")
        );
        assert_eq!(item(&p, "c0").outcome, Outcome::Recreate);
        settles(&w, &pol);
    }

    #[test]
    fn target_missing_from_incomplete_or_empty_listing_is_not_deleted() {
        let mut w = deletion_world(20, 0);
        w.target.remove("g0");
        w.target_complete = false;
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty());
        assert!(matches!(item(&p, "c0").outcome, Outcome::Deferred(_)));

        let mut w = deletion_world(5, 0);
        w.target.clear();
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty());
        assert_eq!(p.guards[0].kind, GuardKind::TargetMassMissing);

        // A known deletion (GET said "Contact not found") needs no listing.
        let mut w = deletion_world(20, 0);
        w.target.remove("g0");
        w.target_complete = false;
        w.target_deleted.insert("g0".into());
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[..], [Action::Tombstone { .. }]));
    }

    // --- tags ------------------------------------------------------------------------------

    #[test]
    fn owned_tags_are_added_and_removed_foreign_tags_untouched() {
        let mut w = world();
        src(
            &mut w,
            "c1",
            proj(&[(Email, "a@x.io")], &["hotspotsystem", "location:b"]),
        );
        tgt(
            &mut w,
            "g1",
            proj(
                &[(Email, "a@x.io")],
                &["hotspotsystem", "location:a", "vip", "newsletter"],
            ),
        );
        link(
            &mut w,
            "c1",
            "g1",
            &["hotspotsystem", "location:a", "social:x"],
        );
        let p = plan_contacts(&w, &policy());
        assert_eq!(
            p.actions,
            vec![
                Action::AddTags {
                    source_id: "c1".into(),
                    target_id: "g1".into(),
                    tags: ["location:b".to_owned()].into()
                },
                Action::RemoveTags {
                    source_id: "c1".into(),
                    target_id: "g1".into(),
                    tags: ["location:a".to_owned()].into()
                },
                Action::ForgetOwnedTags {
                    source_id: "c1".into(),
                    tags: ["social:x".to_owned()].into()
                },
            ]
        );
        let next = settles(&w, &policy());
        let tags = &next.target["g1"].projection.tags;
        assert!(tags.contains("vip") && tags.contains("newsletter"));
    }

    // --- merge and skip --------------------------------------------------------------------

    #[test]
    fn merged_record_hands_its_link_over() {
        let mut w = world();
        src(&mut w, "s9", proj(&[(Email, "a@x.io")], &["newsletter"]));
        tgt(&mut w, "g1", proj(&[(Email, "a@x.io")], &["newsletter"]));
        link(&mut w, "s9", "g1", &["newsletter"]);
        // The customer with the same email now exists: s9 is merged into c1.
        w.source.remove("s9");
        let mut e = SourceEntry::new(proj(
            &[(Email, "a@x.io"), (FirstName, "Ann")],
            &["newsletter"],
        ));
        e.merged_ids = vec!["s9".into()];
        w.source.insert("c1".into(), e);
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.iter().any(|a| matches!(a, Action::LinkExisting {
            source_id, target_id, method: MatchMethod::MergedRecord, .. } if source_id == "c1" && target_id == "g1")));
        assert!(
            p.actions
                .iter()
                .any(|a| matches!(a, Action::ForgetLink { source_id, .. } if source_id == "s9"))
        );
        assert_eq!(item(&p, "s9").outcome, Outcome::Merged);
        settles(&w, &policy());
    }

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
    fn from_listings_maps_both_sides_and_a_synced_pair_plans_nothing() {
        use crate::mapping::{MappingConfig, map_sources};
        use crate::model::{SourceContact, SourceKind, TargetContact};
        let cfg = MappingConfig::default();
        let customer = SourceContact {
            source_id: "c1".into(),
            kind: Some(SourceKind::Customer),
            name: Some("Ann Smith".into()),
            email: Some("Ann@X.io".into()),
            phone: Some("555-010-2000".into()),
            location_id: Some("L1".into()),
            ..SourceContact::default()
        };
        let ghl = TargetContact {
            target_id: "g1".into(),
            first_name: Some("Ann".into()),
            last_name: Some("Smith".into()),
            email: Some("ann@x.io".into()),
            phone: Some("+15550102000".into()),
            tags: ["Lead".to_owned()].into(),
            ..TargetContact::default()
        };
        let mapped = map_sources(std::slice::from_ref(&customer), &cfg, None);
        let w = ContactsInput::from_listings(
            mapped,
            true,
            std::slice::from_ref(&ghl),
            true,
            &cfg,
            BTreeMap::new(),
            BTreeMap::new(),
        );
        let p = plan_contacts(&w, &policy());
        // Same content: adopt with no field writes, only the generated tags are added.
        assert!(matches!(&p.actions[0], Action::LinkExisting { fields, .. } if fields.is_empty()));
        assert!(matches!(&p.actions[1], Action::AddTags { tags, .. }
            if tags.contains("hotspotsystem") && tags.contains("location:l1") && !tags.contains("lead")));
        settles(&w, &policy());
    }

    #[test]
    fn first_match_newest_wins_uses_registration_time() {
        let mut w = world();
        src(
            &mut w,
            "c1",
            proj(&[(Email, "a@x.io"), (FirstName, "Ann")], &[]),
        );
        tgt(
            &mut w,
            "g1",
            proj(&[(Email, "a@x.io"), (FirstName, "Anna")], &[]),
        );
        w.source.get_mut("c1").unwrap().registered_at = Some(now() - chrono::Duration::days(9));
        w.target.get_mut("g1").unwrap().date_updated = Some(now() - chrono::Duration::days(1));
        let mut pol = policy();
        pol.conflict = ConflictPolicy::NewestWins;
        let p = plan_contacts(&w, &pol);
        assert!(
            matches!(&p.actions[..], [Action::LinkExisting { fields, .. }] if fields.is_empty())
        );
        assert_eq!(item(&p, "c1").conflicts[0].winner, Winner::Ghl);
        w.source.get_mut("c1").unwrap().registered_at = Some(now());
        let p = plan_contacts(&w, &pol);
        assert_eq!(item(&p, "c1").conflicts[0].winner, Winner::Hotspot);
        settles(&w, &pol);
    }

    #[test]
    fn deleted_tag_is_compared_lower_cased() {
        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Tag;
        pol.deleted_tag = " HS-Deleted ".into();
        let w = deletion_world(20, 1);
        let p = plan_contacts(&w, &pol);
        assert!(matches!(&p.actions[..], [Action::TagDeleted { tag, .. }] if tag == "hs-deleted"));
        settles(&w, &pol);
    }

    #[test]
    fn plans_serialize_to_json() {
        let w = conflict_world();
        let plan = plan_contacts(&w, &policy());
        let v = serde_json::to_value(&plan).unwrap();
        assert_eq!(v["actions"][0]["action"], "update_contact");
        assert_eq!(v["actions"][0]["fields"]["city"], "Bergen");
        assert_eq!(v["items"][0]["conflicts"][0]["target"], "Paris");
        // A reviewed plan can be read back and applied later.
        let back: Plan = serde_json::from_value(v).unwrap();
        assert_eq!(back, plan);
        let mut w2 = deletion_world(20, 1);
        w2.target.remove("g5");
        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Tag;
        let plan = plan_contacts(&w2, &pol);
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    }
}
