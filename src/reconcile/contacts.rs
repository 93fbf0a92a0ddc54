//! HotspotSystem customers (and subscribers) → GHL contacts: read both sides, map, plan with
//! the pure planner, apply, and account every record into the run.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use chrono::Utc;
use serde_json::{Value, json};

use super::apply::{ApplyResult, ContactApplier, Registration, Registrations};
use super::base;
use super::context::{PassContext, lock};
use super::dry_run::{contact_writes, planned_links};
use super::journaled::{INTENT_SETTLE, resolve_pending_contacts};
use super::outcome::KindOutcome;
use super::plan::{
    Action, ContactsInput, DeferReason, Outcome, Plan, PlanItem, TargetCoverage, plan_contacts,
};
use super::settled;
use super::snapshot::{CustomFields, TargetListing, TargetStamps};
use super::target_read;
use crate::config::LostCreateRecovery;
use crate::ghl::GhlClient;
use crate::mapping::{MappingConfig, SkipReason, SkippedSource};
use crate::model::{Field, Kind};
use crate::report::{KindCounts, Unsynced, UnsyncedRecord};
use crate::store::{ItemOutcome, RunItem, Store};

/// How old the custom field definitions a scoped pass resolves keys with may be: a daemon's
/// scoped passes (webhooks, the fast lane) come every few seconds, its whole passes read them
/// afresh. A field renamed in GHL meanwhile fails that write, named, until the next read.
const SCOPED_FIELDS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs the contacts step of a pass, and keeps both listings in the context for the kinds
/// after it.
pub async fn reconcile(cx: &PassContext<'_>) -> anyhow::Result<KindOutcome> {
    let PassContext {
        cfg,
        store,
        ghl,
        opts,
        run_id,
        stop,
        ..
    } = *cx;
    let source = cx.read_source().await?;
    // The mapping Config built at load, with the location names of this run for the location tags.
    let mapping = cfg.mapping().clone().with_location_names(
        source
            .locations
            .iter()
            .map(|l| (l.id.clone(), l.name.clone())),
    );
    // Before any write: a key the location does not have stops the run, naming it.
    let wanted = cfg.custom_field_keys();
    let scoped = opts.scope.scoped().is_some();
    let custom_fields = if wanted.is_empty() {
        CustomFields::default()
    } else if scoped {
        let fields = ghl
            .location_custom_fields_within(SCOPED_FIELDS_MAX_AGE)
            .await?;
        CustomFields::resolve(&fields, &wanted)?
    } else {
        CustomFields::resolve(&ghl.location_custom_fields().await?, &wanted)?
    };
    let mut notes = Vec::new();
    // A scoped listing is incomplete by construction; that is no news for the report.
    if !source.complete && !scoped {
        notes.push(
            "The HotspotSystem listing was incomplete: no deletion was inferred this run."
                .to_string(),
        );
        for (listing, why) in &source.incomplete {
            notes.push(format!("{listing}: {why}."));
        }
    }
    let ((base_links, parked), marks) = base::load_contacts_marked(&lock(store))?;
    // Records whose link is marked settled are mapped only if the mark no longer matches.
    let split = settled::split(
        &source.records,
        &mapping,
        &marks,
        &parked,
        &source.unreadable,
    );
    let mut mapped = split.mapped.contacts.len() + split.mapped.skipped.len();
    let mut input = ContactsInput::from_listings(
        split.mapped,
        source.complete,
        &[],
        TargetCoverage::Incomplete,
        &mapping,
        base_links,
        parked,
    );
    input.kept_out = source.kept_out.source_ids.clone();
    if scoped {
        // Every linked guest the scoped pass did not read is left as it is: not changed, not
        // gone, its contact not fetched.
        let read: HashSet<&str> = source
            .records
            .iter()
            .map(|r| r.source_id.as_str())
            .collect();
        let others: Vec<String> = input
            .base
            .keys()
            .chain(input.parked.keys())
            .filter(|sid| !read.contains(sid.as_str()))
            .cloned()
            .collect();
        input.kept_out.extend(others);
        let merged = leave_to_merge(&lock(store), &mut input)?;
        if merged > 0 {
            notes.push(format!(
                "{merged} new guest(s) share an email with a guest already synced (a second venue, a second sign-up): left to the contacts pass, which merges them into that contact."
            ));
        }
    }
    let (kept, n) = settled::presettle(&mut input, split.candidates, &marks, &mapping);
    mapped += n;
    let mut target = target_read::read(cx, &custom_fields, &input).await?;
    if !target.complete {
        notes.push(
            "The GHL listing was incomplete: no create and no deletion this run.".to_string(),
        );
        for why in &target.incomplete {
            notes.push(format!("GHL contact search: {why}."));
        }
    }
    let recently_linked = recently_linked_targets(store)?;
    confirm_missing_targets(
        ghl,
        &custom_fields,
        &input.base,
        &recently_linked,
        &mut target,
    )
    .await;
    let coverage = target.coverage();
    input.set_targets(std::mem::take(&mut target.contacts), coverage, &mapping);
    input.target_deleted.extend(target.deleted.iter().cloned());
    target_read::remember(cx, &input, &target)?;
    mapped += settled::settle(&mut input, kept, &marks, &mapping);
    tracing::info!("mapped {mapped} of {} records", split.groups);
    let unreadable = hold_unreadable(&mut input, &source.unreadable, &mapping);
    // Field-level bases only where a hash moved: the only records the planner merges by field.
    let moved: Vec<String> = input
        .base
        .iter()
        .filter(|(sid, b)| {
            let s = input.source.get(*sid).map(|s| s.projection.hash);
            let t = input.target.get(&b.target_id).map(|t| t.projection.hash);
            matches!((s, t), (Some(s), Some(t)) if s != b.source_hash || t != b.target_hash)
        })
        .map(|(sid, _)| sid.clone())
        .collect();
    base::load_fields(&lock(store), &mut input.base, &moved)?;
    let held = resolve_pending_contacts(store, &mapping, &mut input, cfg.ghl.lost_create_recovery)?;
    let plan = plan_contacts(&input, &cfg.contact_policy(Utc::now()));
    for g in &plan.guards {
        notes.push(g.message.clone());
    }

    // Where each guest registered, for the dashboard and the business association: only for
    // the records this plan writes, the only links it is stored on.
    let written: HashSet<&str> = plan.actions.iter().map(|a| a.source_id()).collect();
    let location_names: HashMap<&str, &str> = source
        .locations
        .iter()
        .map(|l| (l.id.as_str(), l.name.as_str()))
        .collect();
    let mut registrations = Registrations::new();
    for r in source
        .records
        .iter()
        .filter(|r| written.contains(r.source_id.as_str()))
    {
        if let Some(loc) = r.location_id.as_deref() {
            registrations
                .entry(r.source_id.as_str())
                .or_insert_with(|| Registration {
                    location_id: loc,
                    location_name: location_names.get(loc).copied().unwrap_or(loc),
                });
        }
    }

    let mut planned = Default::default();
    let (mut result, plan_text) = if opts.dry_run {
        // The kinds after contacts plan on the links this plan would leave.
        cx.dry
            .set_contacts(planned_links(&plan, &input, &registrations));
        planned = contact_writes(&plan, &custom_fields);
        (ApplyResult::default(), Some(describe_plan(&plan)))
    } else {
        let stop_flag = stop;
        let applier = ContactApplier {
            ghl,
            store,
            mapping: &mapping,
            custom_fields: &custom_fields,
            input: &input,
            registrations: &registrations,
            run_id,
            max_concurrency: cfg.ghl.max_concurrency,
            upsert_lost_creates: cfg.ghl.lost_create_recovery == LostCreateRecovery::Upsert,
            stop: stop_flag,
            progress: opts.progress.as_ref(),
        };
        (applier.apply(&plan).await, None)
    };
    if !opts.dry_run {
        let failed = |sid: &str| result.failed.contains_key(sid);
        let new = settled::new_marks(&plan, &failed, &input, &split.raw, &marks);
        base::record_settled(&lock(store), &new)?;
    }
    let mut not_writable: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (sid, fields) in &result.not_writable {
        for f in fields {
            not_writable
                .entry(f.as_str())
                .or_default()
                .push(sid.as_str());
        }
    }
    for (field, sids) in not_writable {
        notes.push(format!(
            "{field} differs from HotspotSystem on {} contact(s) (e.g. {}), but GHL's update API does not accept it (it is set only when the sync creates a contact); left as it is in GHL.",
            sids.len(),
            sids.iter().take(3).copied().collect::<Vec<_>>().join(", ")
        ));
    }
    let fatal = result.fatal.take();
    let (counts, mut items, mut unsynced) = account(&plan, &result, opts.dry_run);
    for sid in held {
        unsynced.push(UnsyncedRecord {
            kind: Kind::Contact,
            source_id: sid.clone(),
            why: Unsynced::CreatePending,
        });
        items.push(RunItem {
            kind: Kind::Contact,
            source_id: sid,
            target_id: None,
            action: "create".into(),
            outcome: ItemOutcome::Deferred,
            reason: Some("an earlier create may still be on its way to GHL's search index; checked again next run".into()),
            detail: Value::Null,
        });
    }
    for (sid, fields) in unreadable {
        unsynced.push(UnsyncedRecord {
            kind: Kind::Contact,
            source_id: sid,
            why: Unsynced::UnreadableValue { fields },
        });
    }
    let mut counts = counts;
    counts.deferred = items
        .iter()
        .filter(|i| i.outcome == ItemOutcome::Deferred)
        .count() as u64;
    let stamps = TargetStamps {
        since: target.since,
        contacts: input
            .target
            .iter()
            .map(|(id, t)| (id.clone(), t.date_updated))
            .collect(),
    };
    cx.keep_listings(&source, stamps);
    Ok(KindOutcome {
        counts,
        notes,
        items,
        unsynced,
        unfinished: Default::default(),
        stopped: result.stopped,
        fatal,
        plan_text,
        planned,
        skipped_reads: 0,
    })
}

/// Holds the linked records that carry a value the mapping reads and that could not be read
/// (taken as empty): planned, that empty value could clear the field in GHL. They are moved to
/// `input.skipped` (present, so never taken for deleted) and returned with those fields, to be
/// reported unsynced. A record not linked yet is left to sync: a create or a first match
/// never blanks a GHL field.
fn hold_unreadable(
    input: &mut ContactsInput,
    unreadable: &BTreeMap<String, BTreeSet<String>>,
    mapping: &MappingConfig,
) -> Vec<(String, Vec<String>)> {
    if unreadable.is_empty() {
        return Vec::new();
    }
    let mut held = Vec::new();
    for (sid, s) in &input.source {
        let members = || std::iter::once(sid).chain(&s.merged_ids);
        let linked = |m: &String| {
            input
                .base
                .get(m)
                .is_some_and(|b| b.status == super::plan::LinkStatus::Active)
        };
        if !members().any(linked) {
            continue;
        }
        let fields: BTreeSet<&String> = members()
            .filter_map(|m| unreadable.get(m))
            .flatten()
            .filter(|f| mapping.reads(f))
            .collect();
        if !fields.is_empty() {
            held.push((sid.clone(), fields.into_iter().cloned().collect::<Vec<_>>()));
        }
    }
    for (sid, fields) in &held {
        let Some(s) = input.source.remove(sid) else {
            continue;
        };
        tracing::warn!(source_id = %sid, fields = %fields.join(", "), "a linked guest has a value that could not be read; left as it is in GHL this run");
        for m in std::iter::once(sid.clone()).chain(s.merged_ids) {
            input.skipped.push(SkippedSource {
                source_id: m,
                reason: SkipReason::UnreadableValue,
            });
        }
    }
    held
}

/// In a scoped pass, a new guest whose email is that of a guest already linked and not read
/// by the pass would be parked as a conflict (or, were that contact missing from GHL's answer,
/// created twice): the whole listing merges records sharing an email into one contact instead.
/// Such guests are set aside for the contacts pass, and counted. The emails are those the
/// links were written with, so no GHL listing is needed to know them.
fn leave_to_merge(store: &Store, input: &mut super::plan::ContactsInput) -> anyhow::Result<usize> {
    let wanted: HashMap<String, String> = input
        .source
        .iter()
        .filter(|(sid, _)| !input.base.contains_key(*sid))
        .filter_map(|(sid, s)| {
            let email = crate::model::norm_email(s.projection.fields.email())?;
            Some((email, sid.clone()))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let mut left = BTreeSet::new();
    store.each_link_head(
        Kind::Contact,
        &["$.source_fields.email"],
        |head, mut extra| {
            if head.status == crate::store::LinkStatus::Active
                && input.kept_out.contains(&head.source_id)
                && let Some(email) = crate::model::norm_email(extra.pop().flatten().as_deref())
                && let Some(sid) = wanted.get(&email)
            {
                left.insert(sid.clone());
            }
            Ok(())
        },
    )?;
    for sid in &left {
        if let Some(s) = input.source.remove(sid) {
            input.kept_out.extend(s.merged_ids);
        }
        input.kept_out.insert(sid.clone());
    }
    Ok(left.len())
}

/// GHL ids of contacts linked within [`INTENT_SETTLE`]: the only ones search may not show yet.
fn recently_linked_targets(store: &Mutex<Store>) -> anyhow::Result<BTreeSet<String>> {
    let since = Utc::now() - chrono::Duration::from_std(INTENT_SETTLE)?;
    Ok(lock(store).targets_linked_since(Kind::Contact, since)?)
}

/// Linked contacts missing from a complete listing look deleted in GHL, but search lags writes
/// by seconds: a contact created just before this run may simply not show yet. GET-by-id is
/// immediate, so each recently linked one is asked for before the planner may infer a
/// deletion or weigh its mass-deletion guard; those that exist join the listing. However many
/// they are: after a burst of creates (a crash, a restart) nearly all links are recent and
/// missing, and without the look-ups the guard would hold every new record. They are bounded
/// by what the rate limit lets a process create in [`INTENT_SETTLE`]. A failed look-up makes
/// the listing incomplete.
async fn confirm_missing_targets(
    ghl: &GhlClient,
    custom_fields: &CustomFields,
    base_links: &BTreeMap<String, super::plan::BaseLink>,
    recently_linked: &BTreeSet<String>,
    target: &mut TargetListing,
) {
    // Only a full listing's absences may be taken for deletions.
    if target.coverage() != TargetCoverage::Full {
        return;
    }
    let listed: BTreeSet<&str> = target
        .contacts
        .iter()
        .map(|t| t.target_id.as_str())
        .collect();
    let active: Vec<&str> = base_links
        .values()
        .filter(|b| b.status == super::plan::LinkStatus::Active)
        .map(|b| b.target_id.as_str())
        .collect();
    let missing: BTreeSet<String> = active
        .iter()
        .filter(|id| !listed.contains(*id))
        .map(|id| id.to_string())
        .collect();
    if missing.is_empty() {
        return;
    }
    for id in missing.intersection(recently_linked) {
        match ghl.get_contact(id).await {
            Ok(Some(c)) => {
                if let Some(t) = super::snapshot::target_from_contact(&c, custom_fields) {
                    tracing::debug!(target_id = %id, "linked contact not yet in search; it exists");
                    target.contacts.push(t);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target_id = %id, error = %e, "could not confirm a missing contact; no deletion inferred this run");
                target.complete = false;
                return;
            }
        }
    }
}

/// Why a record the planner deferred is left unsynced, if it is eligible.
fn unsynced_for(reason: DeferReason) -> Option<Unsynced> {
    match reason {
        DeferReason::DeletionGuard => Some(Unsynced::DeletionGuard),
        DeferReason::TargetNotListed => Some(Unsynced::ContactNotListed),
        DeferReason::TargetIncomplete | DeferReason::SourceIncomplete => {
            Some(Unsynced::ListingIncomplete)
        }
        // Gone from HotspotSystem: nothing left to sync, only a tag to add later.
        DeferReason::SourceGoneTargetNotListed => None,
    }
}

/// Counts, the run items worth keeping (unchanged records are counted, not listed), and the
/// eligible records left unsynced.
fn account(
    plan: &Plan,
    result: &ApplyResult,
    dry_run: bool,
) -> (KindCounts, Vec<RunItem>, Vec<UnsyncedRecord>) {
    let mut c = KindCounts::default();
    let mut items = Vec::new();
    let mut unsynced = Vec::new();
    for it in &plan.items {
        let failed = result.failed.get(&it.source_id);
        // A failed write is told unsynced by the pass, from the failed item.
        let why = match (failed, it.outcome) {
            (None, Outcome::Deferred(reason)) => unsynced_for(reason),
            _ => None,
        };
        if let Some(why) = why {
            unsynced.push(UnsyncedRecord {
                kind: Kind::Contact,
                source_id: it.source_id.clone(),
                why,
            });
        }
        let deferred = result.deferred.contains(&it.source_id);
        if !it.drift.is_empty() {
            c.drift += 1;
        }
        if !it.conflicts.is_empty() || matches!(it.outcome, Outcome::Parked) {
            c.conflicts += 1;
        }
        let (action, done) = match it.outcome {
            Outcome::Create | Outcome::Recreate => ("create", Some(&mut c.created)),
            Outcome::Link => ("link", Some(&mut c.adopted)),
            Outcome::Update => ("update", Some(&mut c.updated)),
            Outcome::SourceDeleted => ("delete", Some(&mut c.deleted)),
            Outcome::SourceDeleteTagged => ("tag_deleted", Some(&mut c.deleted)),
            Outcome::RecordBase
            | Outcome::Unchanged
            | Outcome::StillParked
            | Outcome::Forgotten
            | Outcome::Merged => {
                c.unchanged +=
                    u64::from(!matches!(it.outcome, Outcome::Merged | Outcome::Forgotten));
                ("unchanged", None)
            }
            Outcome::Parked => ("conflict", None),
            Outcome::Deferred(_) => ("deferred", None),
            Outcome::Skipped
            | Outcome::SourceDeleteIgnored
            | Outcome::SourceDeleteWithheld
            | Outcome::TargetDeleteRespected => {
                c.skipped += 1;
                ("skip", None)
            }
        };
        let outcome = if let Some(err) = failed {
            c.failed += 1;
            items.push(item(it, action, ItemOutcome::Failed, err.clone()));
            continue;
        } else if deferred {
            ItemOutcome::Deferred
        } else {
            match it.outcome {
                Outcome::Parked => ItemOutcome::Parked,
                Outcome::Deferred(_) => ItemOutcome::Deferred,
                Outcome::Skipped
                | Outcome::SourceDeleteIgnored
                | Outcome::SourceDeleteWithheld
                | Outcome::TargetDeleteRespected => ItemOutcome::Skipped,
                _ if dry_run => ItemOutcome::Planned,
                _ => ItemOutcome::Applied,
            }
        };
        if matches!(outcome, ItemOutcome::Applied | ItemOutcome::Planned)
            && let Some(n) = done
        {
            *n += 1;
        }
        let label = if !it.conflicts.is_empty() {
            "conflict"
        } else if !it.drift.is_empty() {
            "drift"
        } else {
            action
        };
        // Unchanged records are counted, not listed: a run over 100k guests stores what changed.
        if label == "unchanged" && outcome == ItemOutcome::Applied {
            continue;
        }
        items.push(item(it, label, outcome, it.reason.to_string()));
    }
    (c, items, unsynced)
}

fn item(it: &PlanItem, action: &str, outcome: ItemOutcome, reason: String) -> RunItem {
    let mut detail = serde_json::Map::new();
    if !it.written.is_empty() {
        detail.insert("written".into(), json!(it.written));
    }
    if !it.drift.is_empty() {
        detail.insert("drift".into(), json!(it.drift));
    }
    if !it.conflicts.is_empty() {
        detail.insert("fields".into(), json!(it.conflicts));
    }
    RunItem {
        kind: Kind::Contact,
        source_id: it.source_id.clone(),
        target_id: it.target_id.clone(),
        action: action.into(),
        outcome,
        reason: Some(reason),
        detail: if detail.is_empty() {
            Value::Null
        } else {
            Value::Object(detail)
        },
    }
}

/// The plan in words, one line per remote write, for `--dry-run`.
pub fn describe_plan(plan: &Plan) -> String {
    let mut out = String::new();
    let fields = |f: &BTreeMap<Field, Option<String>>| {
        f.keys()
            .map(|k| k.name().into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tags = |t: &BTreeSet<String>| t.iter().cloned().collect::<Vec<_>>().join(", ");
    for a in &plan.actions {
        let line = match a {
            Action::CreateContact {
                source_id,
                fields: f,
                tags: t,
            } => {
                let names: Vec<String> = f.iter().map(|(k, _)| k.name().into_owned()).collect();
                format!(
                    "create contact for {source_id} ({}); tags {}",
                    names.join(", "),
                    tags(t)
                )
            }
            Action::LinkExisting {
                source_id,
                target_id,
                method,
                fields: f,
            } => {
                format!(
                    "link {source_id} to existing contact {target_id} by {method:?}; update: {}",
                    fields(f)
                )
            }
            Action::UpdateContact {
                source_id,
                target_id,
                fields: f,
            } => {
                format!("update contact {target_id} ({source_id}): {}", fields(f))
            }
            Action::AddTags {
                target_id, tags: t, ..
            } => format!("add tags to {target_id}: {}", tags(t)),
            Action::RemoveTags {
                target_id, tags: t, ..
            } => format!("remove tags from {target_id}: {}", tags(t)),
            Action::DeleteContact {
                source_id,
                target_id,
            } => format!("delete contact {target_id} ({source_id} gone)"),
            Action::TagDeleted {
                source_id,
                target_id,
                tag,
            } => format!("tag contact {target_id} `{tag}` ({source_id} gone)"),
            _ => continue,
        };
        out.push_str("  ");
        out.push_str(&line);
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("  nothing to write\n");
    }
    format!("Contacts plan ({} writes):\n{out}", plan.remote_writes())
}

#[cfg(test)]
mod tests {
    use super::super::plan::{BaseLink, LinkStatus, SourceEntry};
    use super::*;
    use crate::model::{CanonicalContact, ContactProjection, Digest};

    fn base(status: LinkStatus) -> BaseLink {
        BaseLink {
            target_id: "t".into(),
            source_hash: Digest::of(b"s"),
            target_hash: Digest::of(b"t"),
            source_fields: None,
            target_fields: None,
            owned_tags: BTreeSet::new(),
            status,
        }
    }

    #[test]
    fn only_linked_records_with_an_unreadable_mapped_value_are_held() {
        let mut input = ContactsInput::default();
        let entry = || {
            SourceEntry::new(ContactProjection::new(
                CanonicalContact::new(),
                BTreeSet::new(),
            ))
        };
        for sid in ["linked", "unmapped", "new", "tombstoned", "merged"] {
            input.source.insert(sid.into(), entry());
        }
        input.source.get_mut("merged").unwrap().merged_ids = vec!["sub:9".into()];
        for sid in ["linked", "unmapped", "merged"] {
            input.base.insert(sid.into(), base(LinkStatus::Active));
        }
        input
            .base
            .insert("tombstoned".into(), base(LinkStatus::Tombstoned));
        let fields = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let unreadable = BTreeMap::from([
            ("linked".to_string(), fields(&["city", "registered_at"])),
            ("unmapped".to_string(), fields(&["registered_at"])),
            ("new".to_string(), fields(&["email"])),
            ("tombstoned".to_string(), fields(&["email"])),
            // The subscriber merged into a linked customer: its email could split them.
            ("sub:9".to_string(), fields(&["email"])),
        ]);
        let held = hold_unreadable(&mut input, &unreadable, &MappingConfig::default());
        assert_eq!(
            held,
            vec![
                ("linked".to_string(), vec!["city".to_string()]),
                ("merged".to_string(), vec!["email".to_string()]),
            ]
        );
        let left: Vec<&str> = input.source.keys().map(String::as_str).collect();
        assert_eq!(left, ["new", "tombstoned", "unmapped"]);
        let skipped: Vec<(&str, SkipReason)> = input
            .skipped
            .iter()
            .map(|s| (s.source_id.as_str(), s.reason))
            .collect();
        assert_eq!(
            skipped,
            [
                ("linked", SkipReason::UnreadableValue),
                ("merged", SkipReason::UnreadableValue),
                ("sub:9", SkipReason::UnreadableValue),
            ],
            "present, so never taken for deleted"
        );
    }
}
