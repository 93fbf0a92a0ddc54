//! Properties of the pure contact planner over random three-way states: a second plan after
//! applying the first is empty; every record gets exactly one item; the delete guard holds; no
//! duplicate creates; owned-tag removal never touches a foreign tag; one source per target.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use hotspot_ghl_sync::mapping::{SkipReason, SkippedSource};
use hotspot_ghl_sync::model::{
    CanonicalContact, ConflictPolicy, ContactProjection, DriftPolicy, Field, SourceDeletePolicy,
    StdField, TargetDeletePolicy,
};
use hotspot_ghl_sync::reconcile::{
    Action, BaseLink, ContactPolicy, ContactsInput, IdentityIndex, LinkStatus, Outcome, Plan,
    SourceEntry, TargetCoverage, TargetEntry, apply_to_snapshots, plan_contacts,
};

const GENERATED: [&str; 4] = ["hotspotsystem", "newsletter", "location:a", "location:b"];
const FOREIGN: [&str; 3] = ["vip", "lead", "hs-deleted"];
const ANCHOR: &str = "contact.hotspot_id";

fn now() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// Small value pools so that emails, phones and contents collide often.
fn content() -> impl Strategy<Value = CanonicalContact> {
    (
        prop::option::of(0u8..5),
        prop::option::of(0u8..4),
        prop::option::of(0u8..3),
        prop::option::of(0u8..3),
    )
        .prop_map(|(e, p, c, n)| {
            let mut f = CanonicalContact::new();
            f.set_std(StdField::Email, e.map(|e| format!("e{e}@x.io")));
            f.set_std(StdField::Phone, p.map(|p| format!("+1555010200{p}")));
            f.set_std(
                StdField::City,
                c.map(|c| ["Oslo", "Rome", "Lima"][c as usize].into()),
            );
            f.set_std(
                StdField::FirstName,
                n.map(|n| ["Ann", "Bo", "Cy"][n as usize].into()),
            );
            f
        })
}

fn tags(pool: &'static [&'static str]) -> impl Strategy<Value = BTreeSet<String>> {
    prop::collection::vec(prop::sample::select(pool), 0..3)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

#[derive(Debug, Clone)]
struct SourceSpec {
    content: CanonicalContact,
    tags: BTreeSet<String>,
    /// Listed in this run's source snapshot (else: gone, or skipped).
    listed: bool,
    skipped: bool,
    /// Linked to target index `link % targets` in the base.
    link: Option<usize>,
    base_source_changed: Option<CanonicalContact>,
    base_target_changed: Option<CanonicalContact>,
    per_field: bool,
    owned: BTreeSet<String>,
    tombstoned: bool,
    /// Another (unlisted) record merged into this one, as a subscriber into a customer.
    merged_from: Option<usize>,
}

fn source_spec() -> impl Strategy<Value = SourceSpec> {
    (
        content(),
        tags(&GENERATED),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.05),
        prop::option::of(0usize..16),
        prop::option::of(content()),
        prop::option::of(content()),
        any::<bool>(),
        tags(&GENERATED),
        (
            prop::bool::weighted(0.1),
            prop::option::weighted(0.15, 0usize..12),
        ),
    )
        .prop_map(
            |(
                content,
                tags,
                listed,
                skipped,
                link,
                bs,
                bt,
                per_field,
                owned,
                (tombstoned, merged_from),
            )| {
                SourceSpec {
                    merged_from,
                    content,
                    tags,
                    listed,
                    skipped,
                    link,
                    base_source_changed: bs,
                    base_target_changed: bt,
                    per_field,
                    owned,
                    tombstoned,
                }
            },
        )
}

#[derive(Debug, Clone)]
struct TargetSpec {
    content: CanonicalContact,
    tags: BTreeSet<String>,
    foreign: BTreeSet<String>,
    listed: bool,
    known_deleted: bool,
    anchor: Option<u8>,
    updated_hours_ago: Option<i64>,
}

fn target_spec() -> impl Strategy<Value = TargetSpec> {
    (
        content(),
        tags(&GENERATED),
        tags(&FOREIGN),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.05),
        prop::option::weighted(0.2, 0u8..12),
        prop::option::of(0i64..48),
    )
        .prop_map(
            |(content, tags, foreign, listed, known_deleted, anchor, updated)| TargetSpec {
                content,
                tags,
                foreign,
                listed,
                known_deleted,
                anchor,
                updated_hours_ago: updated,
            },
        )
}

#[derive(Debug, Clone)]
struct World {
    input: ContactsInput,
    policy: ContactPolicy,
}

fn policy() -> impl Strategy<Value = ContactPolicy> {
    (
        prop::sample::select(vec![
            ConflictPolicy::HotspotWins,
            ConflictPolicy::GhlWins,
            ConflictPolicy::NewestWins,
            ConflictPolicy::Report,
        ]),
        prop::sample::select(vec![DriftPolicy::Keep, DriftPolicy::Reassert]),
        prop::sample::select(vec![
            SourceDeletePolicy::Ignore,
            SourceDeletePolicy::Tag,
            SourceDeletePolicy::Delete,
        ]),
        prop::sample::select(vec![
            TargetDeletePolicy::Respect,
            TargetDeletePolicy::Recreate,
        ]),
        prop::sample::select(vec![0.0, 0.1, 0.5, 1.0]),
        any::<bool>(),
    )
        .prop_map(|(c, d, sd, td, ratio, strict)| {
            let mut p = ContactPolicy::new(now());
            p.conflict = c;
            p.drift = d;
            p.on_source_delete = sd;
            p.on_target_delete = td;
            p.max_delete_ratio = ratio;
            p.create_requires_complete_target = strict;
            p
        })
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(source_spec(), 0..12),
        prop::collection::vec(target_spec(), 0..12),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        any::<bool>(),
        policy(),
    )
        .prop_map(
            |(sources, targets, s_complete, t_complete, anchored, policy)| {
                let hotspot_field = anchored.then(|| ANCHOR.to_owned());
                let mut input = ContactsInput {
                    source_complete: s_complete,
                    target_coverage: t_complete.into(),
                    ..ContactsInput::default()
                };
                for (j, t) in targets.iter().enumerate() {
                    let id = format!("g{j}");
                    if t.known_deleted {
                        input.target_deleted.insert(id.clone());
                    }
                    if !t.listed || t.known_deleted {
                        continue;
                    }
                    let mut fields = t.content.clone();
                    if let (Some(_), Some(a)) = (&hotspot_field, t.anchor) {
                        fields.set(Field::Custom(ANCHOR.into()), Some(format!("c{a}")));
                    }
                    let all_tags = t.tags.union(&t.foreign).cloned().collect();
                    input.target.insert(
                        id,
                        TargetEntry {
                            projection: ContactProjection::new(fields, all_tags),
                            date_updated: t
                                .updated_hours_ago
                                .map(|h| now() - chrono::Duration::hours(h)),
                        },
                    );
                }
                let mut used_targets = BTreeSet::new();
                for (i, s) in sources.iter().enumerate() {
                    let sid = format!("c{i}");
                    let mut fields = s.content.clone();
                    if hotspot_field.is_some() {
                        fields.set(Field::Custom(ANCHOR.into()), Some(sid.clone()));
                    }
                    let sp = ContactProjection::new(fields, s.tags.clone());
                    if s.skipped {
                        input.skipped.push(SkippedSource {
                            source_id: sid.clone(),
                            reason: SkipReason::NoEmailOrPhone,
                        });
                    } else if s.listed {
                        input
                            .source
                            .insert(sid.clone(), SourceEntry::new(sp.clone()));
                    }
                    // Base link to a distinct target (possibly one that is now gone).
                    let Some(l) = s.link else { continue };
                    let tid = format!("g{}", l % targets.len().max(1));
                    if !used_targets.insert(tid.clone()) {
                        continue;
                    }
                    let tp = input
                        .target
                        .get(&tid)
                        .map(|t| t.projection.clone())
                        .unwrap_or_else(|| sp.clone());
                    let bs = s
                        .base_source_changed
                        .clone()
                        .map_or(sp.fields.clone(), |mut c| {
                            if hotspot_field.is_some() {
                                c.set(Field::Custom(ANCHOR.into()), Some(sid.clone()));
                            }
                            c
                        });
                    let bt = s.base_target_changed.clone().unwrap_or(tp.fields.clone());
                    input.base.insert(
                        sid,
                        BaseLink {
                            target_id: tid,
                            source_hash: bs.digest(),
                            target_hash: bt.digest(),
                            source_fields: s.per_field.then(|| Box::new(bs.clone())),
                            target_fields: s.per_field.then(|| Box::new(bt.clone())),
                            owned_tags: s.owned.clone(),
                            status: if s.tombstoned {
                                LinkStatus::Tombstoned
                            } else {
                                LinkStatus::Active
                            },
                        },
                    );
                }
                let mut merged = BTreeSet::new();
                for (i, s) in sources.iter().enumerate() {
                    let Some(j) = s.merged_from else { continue };
                    let (into, from) = (format!("c{i}"), format!("c{j}"));
                    if j == i
                        || j >= sources.len()
                        || input.source.contains_key(&from)
                        || sources[j].skipped
                        || !merged.insert(from.clone())
                    {
                        continue;
                    }
                    if let Some(e) = input.source.get_mut(&into) {
                        e.merged_ids.push(from);
                    }
                }
                input.identity = IdentityIndex::build(hotspot_field, input.target.iter());
                World { input, policy }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn second_plan_after_apply_is_empty(w in world()) {
        let p1 = plan_contacts(&w.input, &w.policy);
        let next = apply_to_snapshots(&p1, &w.input);
        let p2 = plan_contacts(&next, &w.policy);
        prop_assert!(p2.actions.is_empty(), "first: {:#?}\nsecond: {:#?}", p1.actions, p2.actions);
        // And it stays empty.
        let again = apply_to_snapshots(&p2, &next);
        prop_assert_eq!(&again, &next);
    }

    #[test]
    fn every_record_and_link_has_exactly_one_item(w in world()) {
        let p = plan_contacts(&w.input, &w.policy);
        let mut count: HashMap<&str, usize> = HashMap::new();
        for it in &p.items {
            *count.entry(it.source_id.as_str()).or_default() += 1;
        }
        let expected: BTreeSet<&str> = w.input.source.keys().map(String::as_str)
            .chain(w.input.skipped.iter().map(|s| s.source_id.as_str()))
            .chain(w.input.base.keys().map(String::as_str))
            .collect();
        for id in &expected {
            prop_assert_eq!(count.get(id).copied(), Some(1), "record {}: {:#?}", id, p.items);
        }
        prop_assert_eq!(count.len(), expected.len());
        for it in &p.items {
            prop_assert!(!it.reason.is_empty());
        }
    }

    #[test]
    fn delete_guard_holds(w in world()) {
        let p = plan_contacts(&w.input, &w.policy);
        let deletions = p.actions.iter()
            .filter(|a| matches!(a, Action::DeleteContact { .. } | Action::TagDeleted { .. }))
            .count();
        let linked = w.input.base.values().filter(|b| b.status == LinkStatus::Active).count();
        prop_assert!(deletions as f64 <= w.policy.max_delete_ratio * linked as f64);
        if !w.input.source_complete || (w.input.source.is_empty() && w.input.skipped.is_empty()) {
            prop_assert_eq!(deletions, 0);
        }
        if w.policy.on_source_delete == SourceDeletePolicy::Ignore {
            prop_assert_eq!(deletions, 0);
        }
        // Target deletions are inferred only from a complete listing or a known deletion.
        for a in &p.actions {
            if let Action::Tombstone { target_id, .. } = a {
                prop_assert!(w.input.target_deleted.contains(target_id) || w.input.target_coverage == TargetCoverage::Full);
            }
        }
    }

    #[test]
    fn no_two_creates_for_one_email_and_one_source_per_target(w in world()) {
        let p = plan_contacts(&w.input, &w.policy);
        let mut emails = BTreeSet::new();
        let mut adopted = BTreeSet::new();
        let linked_elsewhere: BTreeMap<&str, &str> = w.input.base.iter()
            .filter(|(_, b)| b.status == LinkStatus::Active)
            .map(|(s, b)| (b.target_id.as_str(), s.as_str())).collect();
        for a in &p.actions {
            match a {
                Action::CreateContact { fields, .. } => {
                    if let Some(e) = fields.email() {
                        prop_assert!(emails.insert(e.to_owned()), "two creates for {}", e);
                    }
                }
                Action::LinkExisting { source_id, target_id, .. } => {
                    prop_assert!(adopted.insert(target_id.clone()), "{} adopted twice", target_id);
                    if let Some(owner) = linked_elsewhere.get(target_id.as_str()) {
                        // Only when the other link is given up in this same plan.
                        let forgets_owner = p.actions.iter().any(|a| matches!(a,
                            Action::ForgetLink { source_id, .. } if source_id == owner));
                        prop_assert!(
                            *owner == source_id.as_str() || forgets_owner,
                            "{} linked to {}'s target {}",
                            source_id,
                            owner,
                            target_id
                        );
                    }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn tags_never_in_updates_and_only_owned_tags_removed(w in world()) {
        let p = plan_contacts(&w.input, &w.policy);
        for a in &p.actions {
            if let Action::RemoveTags { source_id, tags, .. } = a {
                let owned = &w.input.base[source_id].owned_tags;
                prop_assert!(tags.is_subset(owned), "removes unowned {:?}", tags.difference(owned));
                for t in tags {
                    prop_assert!(!FOREIGN.contains(&t.as_str()) || owned.contains(t));
                }
            }
        }
        // Foreign tags survive the applied plan.
        let next = apply_to_snapshots(&p, &w.input);
        for (id, t) in &w.input.target {
            let Some(after) = next.target.get(id) else { continue };
            let owned: BTreeSet<&String> = w.input.base.values()
                .filter(|b| &b.target_id == id)
                .flat_map(|b| b.owned_tags.iter())
                .collect();
            for tag in &t.projection.tags {
                if !owned.contains(tag) {
                    prop_assert!(after.projection.tags.contains(tag), "foreign tag {} lost", tag);
                }
            }
        }
    }
}

/// What the contacts step hands the planner for records it did not map: every record whose
/// plan was `Unchanged` with no action, as a summary (source id and merged ids) instead of its
/// projection.
fn summarise(input: &ContactsInput, plan: &Plan) -> ContactsInput {
    let acted: BTreeSet<&str> = plan.actions.iter().map(|a| a.source_id()).collect();
    let mut out = input.clone();
    for it in &plan.items {
        if it.outcome != Outcome::Unchanged || acted.contains(it.source_id.as_str()) {
            continue;
        }
        if let Some(s) = out.source.remove(&it.source_id) {
            out.unchanged.insert(it.source_id.clone(), s.merged_ids);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Planning with unchanged summaries gives the same plan as planning with the full
    /// projections: on the generated world and on the settled world after applying its plan,
    /// where most records are unchanged.
    #[test]
    fn unchanged_summaries_plan_like_full_projections(w in world()) {
        let p1 = plan_contacts(&w.input, &w.policy);
        let summarised = summarise(&w.input, &p1);
        prop_assert_eq!(&plan_contacts(&summarised, &w.policy), &p1);
        let next = apply_to_snapshots(&p1, &w.input);
        let p2 = plan_contacts(&next, &w.policy);
        let summarised = summarise(&next, &p2);
        prop_assert_eq!(&plan_contacts(&summarised, &w.policy), &p2);
    }
}
