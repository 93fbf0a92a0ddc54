//! HotspotSystem locations → GHL businesses, and each contact associated with the business of
//! its location.
//!
//! A location's business comes from `businesses.location_map`, or is found by name, or created
//! (journaled, marker = the name). A business the sync created or found by name is renamed when
//! its location is; a configured one belongs to the user and is left as it is. Links:
//! `source_id` = location id, `extra` {"name"}. The association of each contact is remembered in
//! its contact link's `extra.business_id`, so only changes are sent, through
//! `POST /contacts/bulk/business` with up to `batch_size` ids per call.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Value, json};

use super::context::{PassContext, lock};
use super::dry_run::{PlannedLinks, PlannedVisit};
use super::outcome::KindOutcome;
use super::snapshot::Location;
use crate::config::AssociateBy;
use crate::ghl::wire::BusinessInput;
use crate::model::Kind;
use crate::report::KindCounts;
use crate::report::dry_run::WriteOp;
use crate::store::{
    ItemOutcome, Link, LinkStatus, MatchMethod, NewIntent, RunItem, Store, StoreError,
};

/// What to do for one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusinessAction {
    /// Record (or re-point) the link to an existing business.
    Link {
        location_id: String,
        business_id: String,
        name: String,
        method: MatchMethod,
    },
    Create {
        location_id: String,
        name: String,
    },
    Rename {
        location_id: String,
        business_id: String,
        name: String,
    },
}

/// Pure planning of the location → business map. `existing` (GHL businesses, id → name) is
/// needed only when some location has neither a link nor a configured business.
pub fn plan_businesses(
    locations: &[Location],
    location_map: &BTreeMap<String, String>,
    links: &HashMap<String, Link>,
    existing: &[(String, String)],
) -> Vec<BusinessAction> {
    let mut out = Vec::new();
    for loc in locations {
        let link = links
            .get(&loc.id)
            .filter(|l| l.status == LinkStatus::Active);
        let linked_name = link.and_then(|l| l.extra.get("name").and_then(Value::as_str));
        if let Some(bid) = location_map.get(&loc.id) {
            if link.map(|l| l.target_id.as_str()) != Some(bid.as_str())
                || linked_name != Some(loc.name.as_str())
            {
                out.push(BusinessAction::Link {
                    location_id: loc.id.clone(),
                    business_id: bid.clone(),
                    name: loc.name.clone(),
                    method: MatchMethod::Config,
                });
            }
            continue;
        }
        match link {
            Some(l) if linked_name != Some(loc.name.as_str()) => out.push(BusinessAction::Rename {
                location_id: loc.id.clone(),
                business_id: l.target_id.clone(),
                name: loc.name.clone(),
            }),
            Some(_) => {}
            None => match existing.iter().find(|(_, n)| n.trim() == loc.name.trim()) {
                Some((bid, _)) => out.push(BusinessAction::Link {
                    location_id: loc.id.clone(),
                    business_id: bid.clone(),
                    name: loc.name.clone(),
                    method: MatchMethod::Name,
                }),
                None => out.push(BusinessAction::Create {
                    location_id: loc.id.clone(),
                    name: loc.name.clone(),
                }),
            },
        }
    }
    out
}

/// Whether planning needs the GHL business listing.
pub fn needs_listing(
    locations: &[Location],
    location_map: &BTreeMap<String, String>,
    links: &HashMap<String, Link>,
) -> bool {
    locations.iter().any(|l| {
        !location_map.contains_key(&l.id)
            && links
                .get(&l.id)
                .is_none_or(|k| k.status != LinkStatus::Active)
    })
}

/// One contact's association state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub contact_id: String,
    /// The location it belongs to (registration or latest visit).
    pub location_id: Option<String>,
    /// The business it was last associated with by the sync.
    pub associated: Option<String>,
}

/// Contacts (one per GHL contact) with the location they belong to under `by`. The latest
/// visit comes from the note links (`extra.contact_id`, `location_id`, `at`); a contact with no
/// visit keeps its registration location. Only those values are read of each link.
/// Guests kept out of this pass (`kept_out`, by source id) are left out.
///
/// In a dry run, `planned` (the contact links the contacts plan adds, re-points or ends) stands
/// in for the state's links of the same records, and `visits` (the notes it plans) join the
/// note links.
pub fn members(
    store: &Store,
    by: AssociateBy,
    kept_out: &BTreeSet<String>,
    planned: &PlannedLinks,
    visits: &[PlannedVisit],
) -> Result<Vec<Member>, StoreError> {
    let mut latest: HashMap<String, (String, String)> = HashMap::new();
    let mut visit = |cid: String, loc: String, at: String| match latest.get_mut(&cid) {
        Some(e) if at > e.0 => *e = (at, loc),
        Some(_) => {}
        None => {
            latest.insert(cid, (at, loc));
        }
    };
    if by == AssociateBy::LatestVisit {
        let paths = ["$.contact_id", "$.location_id", "$.at"];
        store.each_link_head(Kind::Note, &paths, |n, extra| {
            let [Some(cid), Some(loc), Some(at)] =
                <[Option<String>; 3]>::try_from(extra).expect("one value per path asked for")
            else {
                return Ok(());
            };
            if n.status != LinkStatus::Parked {
                visit(cid, loc, at);
            }
            Ok(())
        })?;
        for v in visits {
            visit(v.contact_id.clone(), v.location_id.clone(), v.at.clone());
        }
    }
    let mut by_target: BTreeMap<String, Member> = BTreeMap::new();
    let mut member = |target: String, registration: Option<String>, associated| {
        by_target.entry(target.clone()).or_insert_with(|| Member {
            location_id: latest.remove(&target).map(|(_, loc)| loc).or(registration),
            contact_id: target,
            associated,
        });
    };
    let paths = ["$.location_id", "$.business_id"];
    let mut seen_planned = HashSet::new();
    // Ordered by source id: a contact's first link speaks for it.
    store.each_link_head(Kind::Contact, &paths, |l, extra| {
        if kept_out.contains(&l.source_id) {
            return Ok(());
        }
        let [registration, associated] =
            <[Option<String>; 2]>::try_from(extra).expect("one value per path asked for");
        match planned.get(&l.source_id) {
            // A link the plan writes keeps what its row holds (the apply updates the row).
            Some(p) => {
                seen_planned.insert(l.source_id.clone());
                if let Some(p) = p {
                    let registration = registration.or_else(|| p.location_id.clone());
                    // Re-pointed to a new contact: the association was the old one's (the
                    // apply drops it from the row).
                    let associated = associated.filter(|_| p.target_id == l.target_id);
                    member(p.target_id.clone(), registration, associated);
                }
            }
            None if l.status != LinkStatus::Active || l.target_id.is_empty() => {}
            None => member(l.target_id, registration, associated),
        }
        Ok(())
    })?;
    for (sid, p) in planned {
        if let (false, Some(p)) = (seen_planned.contains(sid), p) {
            member(p.target_id.clone(), p.location_id.clone(), None);
        }
    }
    Ok(by_target.into_values().collect())
}

/// Pure: the association calls to make, business id → batches of contact ids.
pub fn plan_associations(
    members: &[Member],
    business_of_location: &HashMap<String, String>,
    batch_size: usize,
) -> Vec<(String, Vec<String>)> {
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in members {
        let Some(bid) = m
            .location_id
            .as_ref()
            .and_then(|l| business_of_location.get(l))
        else {
            continue;
        };
        if m.associated.as_deref() != Some(bid.as_str()) {
            groups.entry(bid).or_default().push(m.contact_id.clone());
        }
    }
    let mut out = Vec::new();
    for (bid, ids) in groups {
        for chunk in ids.chunks(batch_size.max(1)) {
            out.push((bid.to_string(), chunk.to_vec()));
        }
    }
    out
}

/// Pure: the ids sent that GHL's answer lists (associated), and the others (in the order sent).
pub fn split_answered(sent: &[String], answered: &[String]) -> (Vec<String>, Vec<String>) {
    let listed: HashSet<&str> = answered.iter().map(String::as_str).collect();
    sent.iter()
        .cloned()
        .partition(|id| listed.contains(id.as_str()))
}

/// The extra of a business link.
pub fn link_extra(name: &str) -> Value {
    json!({ "name": name })
}

/// Runs the businesses step: the location map, then the associations.
pub async fn reconcile(cx: &PassContext<'_>) -> anyhow::Result<KindOutcome> {
    let cfg = &cx.cfg.businesses;
    let mut out = KindOutcome::default();
    let locations = cx.locations().await?;
    let links: HashMap<String, Link> = lock(cx.store)
        .links(Kind::Business)?
        .into_iter()
        .map(|l| (l.source_id.clone(), l))
        .collect();
    // Creates journaled by a run that died: the name listing below adopts what was made.
    let pending: Vec<_> = lock(cx.store)
        .pending_intents()?
        .into_iter()
        .filter(|i| i.kind == Kind::Business)
        .collect();
    let existing: Vec<(String, String)> =
        if needs_listing(&locations, &cfg.location_map, &links) || !pending.is_empty() {
            let mut all = Vec::new();
            let mut skip = 0;
            loop {
                let page = cx.ghl.list_businesses(100, skip).await?;
                let n = page.len() as u32;
                all.extend(
                    page.into_iter()
                        .filter_map(|b| Some((b.id?, b.name.unwrap_or_default()))),
                );
                if n < 100 {
                    break;
                }
                skip += n;
            }
            all
        } else {
            Vec::new()
        };
    for intent in pending {
        let s = lock(cx.store);
        match existing.iter().find(|(_, n)| *n == intent.marker) {
            Some((bid, _)) if !cx.opts.dry_run => {
                let mut link = Link::new(
                    Kind::Business,
                    intent.source_id.clone(),
                    bid.clone(),
                    MatchMethod::JournalRecovered,
                );
                link.created_by_us = true;
                link.extra = link_extra(&intent.marker);
                s.complete_create(intent.id, &link)?;
            }
            Some(_) => {}
            None if !cx.opts.dry_run => s.journal_abandon(intent.id)?,
            None => {}
        }
    }
    let links: HashMap<String, Link> = lock(cx.store)
        .links(Kind::Business)?
        .into_iter()
        .map(|l| (l.source_id.clone(), l))
        .collect();
    let plan = plan_businesses(&locations, &cfg.location_map, &links, &existing);
    let mut business_of: HashMap<String, String> = links
        .values()
        .filter(|l| l.status == LinkStatus::Active)
        .map(|l| (l.source_id.clone(), l.target_id.clone()))
        .collect();
    for action in &plan {
        if cx.opts.dry_run {
            out.counts.deferred += 1;
            out.notes.push(format!("Would {}", describe(action)));
            // The associations below go to the business as if it were linked or made.
            let (loc, bid, op) = match action {
                BusinessAction::Link {
                    location_id,
                    business_id,
                    ..
                } => (location_id, business_id.clone(), None),
                BusinessAction::Create { location_id, .. } => (
                    location_id,
                    format!("sim-business-{location_id}"),
                    Some(WriteOp::Create),
                ),
                BusinessAction::Rename {
                    location_id,
                    business_id,
                    ..
                } => (location_id, business_id.clone(), Some(WriteOp::Update)),
            };
            business_of.insert(loc.clone(), bid);
            if let Some(op) = op {
                *out.planned.entry(op).or_default() += 1;
            }
            continue;
        }
        let r = apply_action(cx, action).await;
        match r {
            Ok((loc, bid, counted)) => {
                business_of.insert(loc, bid);
                *counted(&mut out.counts) += 1;
            }
            Err(e) => {
                out.counts.failed += 1;
                out.items.push(RunItem {
                    kind: Kind::Business,
                    source_id: action_location(action).to_string(),
                    target_id: None,
                    action: "business".into(),
                    outcome: ItemOutcome::Failed,
                    reason: Some(format!("{e:#}")),
                    detail: Value::Null,
                });
            }
        }
    }
    out.counts.unchanged += (locations.len() - plan.len().min(locations.len())) as u64;

    // Associations.
    let kept_out = cx.kept_out().await?;
    let members = members(
        &lock(cx.store),
        cfg.associate_by,
        kept_out,
        cx.dry.contacts(),
        &cx.dry.visits(),
    )?;
    let calls = plan_associations(&members, &business_of, cfg.batch_size);
    drop(members);
    // The links of the contacts to associate, to record the business on each.
    let mut links_of_target: HashMap<String, Vec<String>> = HashMap::new();
    if !calls.is_empty() {
        let wanted: HashSet<&str> = calls
            .iter()
            .flat_map(|(_, ids)| ids.iter().map(String::as_str))
            .collect();
        lock(cx.store).each_link_head(Kind::Contact, &[], |l, _| {
            if wanted.contains(l.target_id.as_str()) {
                links_of_target
                    .entry(l.target_id)
                    .or_default()
                    .push(l.source_id);
            }
            Ok(())
        })?;
    }
    let mut associated = 0u64;
    for (bid, ids) in &calls {
        if cx.opts.dry_run {
            associated += ids.len() as u64;
            *out.planned.entry(WriteOp::Associate).or_default() += 1;
            continue;
        }
        if cx.stop.load(std::sync::atomic::Ordering::SeqCst) {
            out.counts.deferred += ids.len() as u64;
            continue;
        }
        match cx.ghl.bulk_business(ids, Some(bid)).await {
            Ok(answered) => {
                // Only the ids GHL's answer lists were associated (it leaves out contacts it
                // does not know, and may handle part of a call); the others are not recorded,
                // so the next pass sends them again.
                let (done, missed) = split_answered(ids, &answered);
                let s = lock(cx.store);
                s.transaction(|s| {
                    for id in &done {
                        for sid in links_of_target.get(id.as_str()).into_iter().flatten() {
                            let Some(l) = s.link(Kind::Contact, sid)? else {
                                continue;
                            };
                            let mut extra = l.extra;
                            if !extra.is_object() {
                                extra = json!({});
                            }
                            extra["business_id"] = json!(bid);
                            s.set_link_extra(Kind::Contact, sid, &extra)?;
                        }
                    }
                    Ok(())
                })?;
                associated += done.len() as u64;
                out.counts.failed += missed.len() as u64;
                for id in missed {
                    out.items.push(RunItem {
                        kind: Kind::Business,
                        source_id: bid.clone(),
                        target_id: Some(id),
                        action: "associate".into(),
                        outcome: ItemOutcome::Failed,
                        reason: Some(
                            "GHL's answer did not list this contact as associated (a contact deleted in GHL is left out); sent again next run"
                                .into(),
                        ),
                        detail: Value::Null,
                    });
                }
            }
            Err(e) => {
                out.counts.failed += ids.len() as u64;
                out.notes.push(format!(
                    "Associating {} contact(s) with business {bid} failed: {e}",
                    ids.len()
                ));
            }
        }
    }
    if !calls.is_empty() {
        out.notes.push(format!(
            "{} {associated} contact(s) with their location's business in {} call(s).",
            if cx.opts.dry_run {
                "Would associate"
            } else {
                "Associated"
            },
            calls.len()
        ));
    }
    Ok(out)
}

fn action_location(a: &BusinessAction) -> &str {
    match a {
        BusinessAction::Link { location_id, .. }
        | BusinessAction::Create { location_id, .. }
        | BusinessAction::Rename { location_id, .. } => location_id,
    }
}

fn describe(a: &BusinessAction) -> String {
    match a {
        BusinessAction::Link {
            location_id,
            business_id,
            method,
            ..
        } => {
            format!(
                "link location {location_id} to business {business_id} ({})",
                method.as_str()
            )
        }
        BusinessAction::Create { location_id, name } => {
            format!("create business \"{name}\" for location {location_id}")
        }
        BusinessAction::Rename {
            business_id, name, ..
        } => {
            format!("rename business {business_id} to \"{name}\"")
        }
    }
}

type Counter = fn(&mut KindCounts) -> &mut u64;

async fn apply_action(
    cx: &PassContext<'_>,
    action: &BusinessAction,
) -> anyhow::Result<(String, String, Counter)> {
    match action {
        BusinessAction::Link {
            location_id,
            business_id,
            name,
            method,
        } => {
            let mut link = Link::new(
                Kind::Business,
                location_id.clone(),
                business_id.clone(),
                *method,
            );
            link.extra = link_extra(name);
            lock(cx.store).upsert_link(&link)?;
            Ok((location_id.clone(), business_id.clone(), |c| &mut c.adopted))
        }
        BusinessAction::Rename {
            location_id,
            business_id,
            name,
        } => {
            cx.ghl
                .update_business(
                    business_id,
                    &BusinessInput {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                )
                .await?;
            lock(cx.store).set_link_extra(Kind::Business, location_id, &link_extra(name))?;
            Ok((location_id.clone(), business_id.clone(), |c| &mut c.updated))
        }
        BusinessAction::Create { location_id, name } => {
            let intent = lock(cx.store).journal_intent(&NewIntent {
                kind: Kind::Business,
                source_id: location_id.clone(),
                op: "create_business".into(),
                marker: name.clone(),
                payload_hash: None,
                run_id: Some(cx.run_id),
            })?;
            let b = cx
                .ghl
                .create_business(
                    &BusinessInput {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    false,
                )
                .await?;
            let bid =
                b.id.ok_or_else(|| anyhow::anyhow!("GHL created a business without an id"))?;
            let mut link = Link::new(
                Kind::Business,
                location_id.clone(),
                bid.clone(),
                MatchMethod::Created,
            );
            link.extra = link_extra(name);
            lock(cx.store).complete_create(intent, &link)?;
            Ok((location_id.clone(), bid, |c| &mut c.created))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(id: &str, name: &str) -> Location {
        Location {
            id: id.into(),
            name: name.into(),
        }
    }

    fn blink(loc: &str, bid: &str, name: &str) -> (String, Link) {
        let mut l = Link::new(crate::model::Kind::Business, loc, bid, MatchMethod::Created);
        l.extra = link_extra(name);
        (loc.to_string(), l)
    }

    #[test]
    fn locations_map_config_then_name_then_create_and_renames_follow() {
        let locations = [
            loc("1", "Cafe"),
            loc("2", "Hotel"),
            loc("3", "Mall"),
            loc("4", "Pier"),
        ];
        let map: BTreeMap<String, String> = [("1".to_string(), "B1".to_string())].into();
        let links: HashMap<String, Link> = [blink("4", "B4", "Old Pier")].into();
        let existing = vec![("B2".to_string(), "Hotel".to_string())];
        assert!(needs_listing(&locations, &map, &links));
        let plan = plan_businesses(&locations, &map, &links, &existing);
        assert_eq!(
            plan,
            vec![
                BusinessAction::Link {
                    location_id: "1".into(),
                    business_id: "B1".into(),
                    name: "Cafe".into(),
                    method: MatchMethod::Config
                },
                BusinessAction::Link {
                    location_id: "2".into(),
                    business_id: "B2".into(),
                    name: "Hotel".into(),
                    method: MatchMethod::Name
                },
                BusinessAction::Create {
                    location_id: "3".into(),
                    name: "Mall".into()
                },
                BusinessAction::Rename {
                    location_id: "4".into(),
                    business_id: "B4".into(),
                    name: "Pier".into()
                },
            ]
        );
        let links: HashMap<String, Link> = [blink("4", "B4", "Pier")].into();
        assert!(plan_businesses(&[loc("4", "Pier")], &map, &links, &[]).is_empty());
        assert!(!needs_listing(&[loc("4", "Pier")], &map, &links));
    }

    #[test]
    fn associations_batch_only_changes() {
        let members: Vec<Member> = (0..7)
            .map(|i| Member {
                contact_id: format!("c{i}"),
                location_id: Some(if i < 5 { "1" } else { "2" }.into()),
                associated: (i == 0).then(|| "B1".to_string()),
            })
            .collect();
        let bmap: HashMap<String, String> = [("1", "B1"), ("2", "B2")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let calls = plan_associations(&members, &bmap, 3);
        let sizes: Vec<(&str, usize)> = calls
            .iter()
            .map(|(b, ids)| (b.as_str(), ids.len()))
            .collect();
        assert_eq!(sizes, [("B1", 3), ("B1", 1), ("B2", 2)]);
    }

    #[test]
    fn only_the_ids_the_answer_lists_count_as_associated() {
        let sent: Vec<String> = ["a", "b", "c"].map(String::from).into();
        let (done, missed) = split_answered(&sent, &["c".into(), "a".into(), "x".into()]);
        assert_eq!(done, ["a", "c"]);
        assert_eq!(missed, ["b"]);
        let (done, missed) = split_answered(&sent, &[]);
        assert!(done.is_empty());
        assert_eq!(missed, sent);
    }

    #[test]
    fn latest_visit_overrides_registration() {
        let mut c = Link::new(
            crate::model::Kind::Contact,
            "100",
            "G1",
            MatchMethod::Created,
        );
        c.extra = json!({"location_id": "1"});
        let mut n1 = Link::new(
            crate::model::Kind::Note,
            "mac:1",
            "n1",
            MatchMethod::Created,
        );
        n1.extra =
            json!({"contact_id": "G1", "location_id": "2", "at": "2025-01-02T00:00:00+00:00"});
        let mut n2 = Link::new(
            crate::model::Kind::Note,
            "mac:2",
            "n2",
            MatchMethod::Created,
        );
        n2.extra =
            json!({"contact_id": "G1", "location_id": "3", "at": "2025-01-01T00:00:00+00:00"});
        let store = Store::open_in_memory().unwrap();
        for l in [c, n1, n2] {
            store.upsert_link(&l).unwrap();
        }
        assert_eq!(
            members(
                &store,
                AssociateBy::Registration,
                &BTreeSet::new(),
                &PlannedLinks::new(),
                &[]
            )
            .unwrap()[0]
                .location_id
                .as_deref(),
            Some("1")
        );
        assert_eq!(
            members(
                &store,
                AssociateBy::LatestVisit,
                &BTreeSet::new(),
                &PlannedLinks::new(),
                &[]
            )
            .unwrap()[0]
                .location_id
                .as_deref(),
            Some("2")
        );
    }
}
