//! The planner's inputs, outputs and policy.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::mapping::{MappedSource, SkippedSource};
use crate::model::{
    CanonicalContact, ConflictPolicy, ContactProjection, Digest, DriftPolicy, Field,
    SourceDeletePolicy, TargetDeletePolicy,
};

use super::IdentityIndex;

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
    /// Boxed: they are loaded only for records whose hash moved, and an empty `Option` of a
    /// contact inline would be most of the size of each of 100,000 base entries.
    pub source_fields: Option<Box<CanonicalContact>>,
    pub target_fields: Option<Box<CanonicalContact>>,
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

/// How much of GHL a target listing covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TargetCoverage {
    /// Every contact, read to its end without a gap: a linked contact it lacks was deleted
    /// (behind the mass-deletion guard).
    Full,
    /// The contacts GHL updated since a bound, read to its end, plus those fetched by id: a
    /// linked contact it lacks was not updated since and is taken as unchanged; nothing is
    /// inferred from an absence.
    Incremental,
    /// A page failed or may have missed a contact: nothing is inferred, and no create is
    /// made where the policy asks for a complete listing.
    #[default]
    Incomplete,
}

impl From<bool> for TargetCoverage {
    /// A listing of every contact, complete or not.
    fn from(complete: bool) -> Self {
        if complete {
            TargetCoverage::Full
        } else {
            TargetCoverage::Incomplete
        }
    }
}

/// Everything the planner looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactsInput {
    pub source: BTreeMap<String, SourceEntry>,
    /// Listed records known unchanged without being mapped, by source id with the ids merged
    /// into them. The caller vouches that each has an active base link whose GHL contact is
    /// listed and that planning its full entry would give an `Unchanged` item and no action
    /// (its last plan did, and neither side nor the base moved since: see `reconcile::settled`).
    /// Present like any listed record: never taken for deleted, counted unchanged.
    pub unchanged: BTreeMap<String, Vec<String>>,
    /// Every page fetched without error: only then may a missing record mean "deleted".
    pub source_complete: bool,
    /// Records listed but not synced (e.g. no email or phone); they are present, not deleted.
    pub skipped: Vec<SkippedSource>,
    /// Records listed but kept out of this pass by the operator (`[filter]`, `--limit`):
    /// present, so never taken for deleted, and not planned at all (no item, no action).
    pub kept_out: BTreeSet<String>,
    pub target: HashMap<String, TargetEntry>,
    /// How much of GHL the target listing covers: what may be inferred from a contact's absence.
    pub target_coverage: TargetCoverage,
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
        target_coverage: impl Into<TargetCoverage>,
        cfg: &crate::mapping::MappingConfig,
        base: BTreeMap<String, BaseLink>,
        parked: BTreeMap<String, ParkedMark>,
    ) -> Self {
        let source = mapped
            .contacts
            .into_iter()
            .map(|m| (m.source_id.clone(), SourceEntry::from(m)))
            .collect();
        let mut input = Self {
            source,
            source_complete,
            skipped: mapped.skipped,
            base,
            parked,
            ..Self::default()
        };
        input.set_targets(targets, target_coverage.into(), cfg);
        input
    }

    /// Listed records nothing is planned for this pass: held (`skipped`) or kept out by the
    /// operator. Never taken for deleted, and their contacts are not needed.
    pub fn not_planned(&self) -> std::collections::HashSet<&str> {
        self.skipped
            .iter()
            .map(|s| s.source_id.as_str())
            .chain(self.kept_out.iter().map(String::as_str))
            .collect()
    }

    /// Replaces the GHL side: maps the contacts through the same field map as the source and
    /// indexes them for first matches.
    pub fn set_targets<T: std::borrow::Borrow<crate::model::TargetContact>>(
        &mut self,
        // By value, each contact is dropped once projected: the listing is not held twice.
        targets: impl IntoIterator<Item = T>,
        coverage: TargetCoverage,
        cfg: &crate::mapping::MappingConfig,
    ) {
        let fields = cfg.fields.target_fields();
        self.target = targets
            .into_iter()
            .map(|t| {
                let t = t.borrow();
                (
                    t.target_id.clone(),
                    TargetEntry {
                        projection: crate::mapping::target_projection_with(t, cfg, &fields),
                        date_updated: t.date_updated,
                    },
                )
            })
            .collect();
        self.identity =
            IdentityIndex::build(cfg.fields.hotspot_id_field.clone(), self.target.iter());
        self.target_coverage = coverage;
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
    pub(super) fn new(
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

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

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
