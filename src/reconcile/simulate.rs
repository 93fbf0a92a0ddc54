//! An in-memory stand-in for `apply`: applies a plan to the snapshots and the base exactly as
//! the apply contract in [`super::plan`] says, assuming every write succeeds and GHL stores
//! what it is sent. Used by property tests (plan → apply → plan again must be empty) and dry runs.

use std::collections::BTreeSet;

use crate::model::{CanonicalContact, ContactProjection};

use super::plan::{
    Action, BaseLink, ContactsInput, FieldChanges, LinkStatus, ParkedMark, Plan, TargetEntry,
};

fn with_changes(f: &CanonicalContact, changes: &FieldChanges) -> CanonicalContact {
    let mut out = f.clone();
    for (k, v) in changes {
        out.set(k.clone(), v.clone());
    }
    out
}

/// Returns the state the next run would see after `plan` was applied to `input`.
/// New GHL contacts get ids `sim-{source_id}` (suffixed if taken).
pub fn apply_to_snapshots(plan: &Plan, input: &ContactsInput) -> ContactsInput {
    let mut out = input.clone();
    for a in &plan.actions {
        match a {
            Action::CreateContact {
                source_id,
                fields,
                tags,
            } => {
                let mut tid = format!("sim-{source_id}");
                let mut n = 1;
                while out.target.contains_key(&tid) || out.target_deleted.contains(&tid) {
                    n += 1;
                    tid = format!("sim-{source_id}-{n}");
                }
                let t = ContactProjection::new((**fields).clone(), tags.clone());
                out.identity.insert(&tid, &t.fields);
                let s = &input.source[source_id].projection;
                out.base.insert(
                    source_id.clone(),
                    BaseLink {
                        target_id: tid.clone(),
                        source_hash: s.hash,
                        target_hash: t.hash,
                        source_fields: Some(Box::new(s.fields.clone())),
                        target_fields: Some(Box::new(t.fields.clone())),
                        owned_tags: tags.clone(),
                        status: LinkStatus::Active,
                    },
                );
                out.target.insert(
                    tid,
                    TargetEntry {
                        projection: t,
                        date_updated: None,
                    },
                );
            }
            Action::LinkExisting {
                source_id,
                target_id,
                fields,
                ..
            }
            | Action::UpdateContact {
                source_id,
                target_id,
                fields,
            } => {
                let s = &input.source[source_id].projection;
                let t = out
                    .target
                    .entry(target_id.clone())
                    .or_insert_with(|| TargetEntry {
                        projection: ContactProjection::new(
                            CanonicalContact::new(),
                            BTreeSet::new(),
                        ),
                        date_updated: None,
                    });
                let new_fields = with_changes(&t.projection.fields, fields);
                t.projection = ContactProjection::new(new_fields, t.projection.tags.clone());
                let tp = t.projection.clone();
                out.identity.remove(target_id);
                out.identity.insert(target_id, &tp.fields);
                let owned = match a {
                    Action::UpdateContact { .. } => out
                        .base
                        .get(source_id)
                        .map(|b| b.owned_tags.clone())
                        .unwrap_or_default(),
                    _ => BTreeSet::new(),
                };
                out.base.insert(
                    source_id.clone(),
                    BaseLink {
                        target_id: target_id.clone(),
                        source_hash: s.hash,
                        target_hash: tp.hash,
                        source_fields: Some(Box::new(s.fields.clone())),
                        target_fields: Some(Box::new(tp.fields)),
                        owned_tags: owned,
                        status: LinkStatus::Active,
                    },
                );
            }
            Action::AddTags {
                source_id,
                target_id,
                tags,
            } => {
                if let Some(t) = out.target.get_mut(target_id) {
                    t.projection.tags.extend(tags.iter().cloned());
                }
                if let Some(b) = out.base.get_mut(source_id) {
                    b.owned_tags.extend(tags.iter().cloned());
                }
            }
            Action::RemoveTags {
                source_id,
                target_id,
                tags,
            } => {
                if let Some(t) = out.target.get_mut(target_id) {
                    t.projection.tags.retain(|x| !tags.contains(x));
                }
                if let Some(b) = out.base.get_mut(source_id) {
                    b.owned_tags.retain(|x| !tags.contains(x));
                }
            }
            Action::ForgetOwnedTags { source_id, tags } => {
                if let Some(b) = out.base.get_mut(source_id) {
                    b.owned_tags.retain(|x| !tags.contains(x));
                }
            }
            Action::DeleteContact {
                source_id,
                target_id,
            } => {
                out.target.remove(target_id);
                out.identity.remove(target_id);
                out.base.remove(source_id);
            }
            Action::TagDeleted {
                source_id,
                target_id,
                tag,
            } => {
                if let Some(t) = out.target.get_mut(target_id) {
                    t.projection.tags.insert(tag.clone());
                }
                if let Some(b) = out.base.get_mut(source_id) {
                    b.owned_tags.insert(tag.clone());
                }
            }
            Action::Tombstone { source_id, .. } => {
                if let Some(b) = out.base.get_mut(source_id) {
                    b.status = LinkStatus::Tombstoned;
                }
            }
            Action::RecordBase {
                source_id,
                target_id,
                source_hash,
                target_hash,
                source_fields,
                target_fields,
            } => {
                let b = out
                    .base
                    .entry(source_id.clone())
                    .or_insert_with(|| BaseLink {
                        target_id: target_id.clone(),
                        source_hash: *source_hash,
                        target_hash: *target_hash,
                        source_fields: None,
                        target_fields: None,
                        owned_tags: BTreeSet::new(),
                        status: LinkStatus::Active,
                    });
                b.target_id.clone_from(target_id);
                b.source_hash = *source_hash;
                b.target_hash = *target_hash;
                b.source_fields = Some(source_fields.clone());
                b.target_fields = Some(target_fields.clone());
            }
            Action::ForgetLink { source_id, .. } => {
                out.base.remove(source_id);
            }
            Action::Park {
                source_id,
                target_id,
                source_hash,
                target_hash,
                reason,
            } => {
                out.parked.insert(
                    source_id.clone(),
                    ParkedMark {
                        target_id: target_id.clone(),
                        source_hash: *source_hash,
                        target_hash: *target_hash,
                        reason: reason.clone(),
                    },
                );
            }
            Action::Unpark { source_id } => {
                out.parked.remove(source_id);
            }
        }
    }
    out
}
