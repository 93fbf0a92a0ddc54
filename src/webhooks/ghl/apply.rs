//! What a GHL event records in a pair's state, at once: exactly what a pass records when it
//! finds the same fact, so that the next pass neither repeats the work nor disagrees.
//!
//! - **`ContactDelete`** of a linked contact: its links are tombstoned and its identity is
//!   forgotten, as the planner's `Tombstone` action and the listing's `remove_contact_identity`
//!   do when a pass finds the contact gone. The planner reads a tombstoned link by
//!   `on_target_delete`: `respect` leaves the guest alone for good, `recreate` recreates the
//!   contact at the next pass (so the pair is woken for it). An unlinked contact's identity is
//!   forgotten too (a full listing would drop it). GHL deletes a contact's tasks and notes
//!   with it: the sync's tasks on it are recorded deleted as the task read-back records a task
//!   whose contact is gone (`deleted`, tombstoned), so the next pass does not ask GHL for them
//!   one by one, and its notes are tombstoned like a deleted note (below).
//! - **`TaskComplete` / `TaskDelete`** of a task the sync created: its link's `extra` is what
//!   the task read-back records on seeing the same (`reconcile::tasks::observe`: `completed`,
//!   sticky `edited`; `deleted` and a tombstone), with `checked_at` now, so the read-back no
//!   longer counts it open.
//! - **`NoteDelete`** of a note the sync wrote: the note link is tombstoned with
//!   `deleted = true`. The notes pass never reads notes back and treats a tombstoned link like
//!   an active one (the note exists for it): it is never written again either way; the
//!   tombstone is what `status` counts.
//! - **`ContactUpdate` (`ContactTagUpdate`, `ContactDndUpdate`)** of a linked contact: the
//!   payload is the whole contact, not a diff, and the base of the three-way merge must stay what
//!   both sides last agreed on (writing GHL's new values there would hide the sales team's edit
//!   from the planner, the one thing that must not happen). What a pass caches of the GHL side
//!   that the event makes stale is the link's settled mark (`reconcile::settled`: "the GHL
//!   contact's field hash and tags as last read"), which lets a pass skip the record when the
//!   contact is not in an incremental listing. So the mark is dropped, the link is flagged
//!   [`CHANGED_IN_GHL`], and the pair is woken. The pass then reads the contact: in its
//!   incremental listing when the edit moved `dateUpdated`, else fetched by id because of the
//!   flag (`reconcile::target_read`), which the read clears; and the planner, comparing with the
//!   base, keeps the typed value as GHL's edit.
//! - Anything for a record the sync does not own changes nothing.
//!
//! The event's `webhookId` is recorded in the same transaction (`webhook_events`, source
//! `ghl`, processed at once): a replay is known, even after a restart, and changes nothing.
//! Ids are kept for [`remember_ids`]: a body passes the timestamp check for 10 minutes at most
//! (5 either side of its `timestamp`), so a replay after that is refused anyway.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Change, GhlEvent, SOURCE};
use crate::model::{Kind, TargetDeletePolicy};
use crate::reconcile::target_read::CHANGED_IN_GHL;
use crate::reconcile::tasks::{TaskState, observe};
use crate::store::{Link, LinkStatus, NewWebhookEvent, Store, StoreError};

/// How long a `webhookId` is remembered.
pub fn remember_ids() -> chrono::Duration {
    chrono::Duration::hours(24)
}

/// What the event did to one pair's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Its `webhookId` was recorded before: nothing changed.
    Replay,
    /// The contact's links (these source ids) are tombstoned.
    ContactTombstoned(Vec<String>),
    /// An unlinked contact: only its cached identity was forgotten.
    IdentityForgotten,
    /// A linked contact changed in GHL: its settled mark is dropped (these source ids).
    ContactChanged(Vec<String>),
    TaskCompleted(String),
    TaskDeleted(String),
    NoteDeleted(String),
    /// The state already knew (a completed task completed again, a tombstoned link).
    AlreadyKnown,
    /// No record the sync owns: nothing changed.
    NotOwned,
    /// A type the receiver does not act on.
    Ignored,
}

impl Effect {
    /// Whether the pair's pass should run now for it.
    pub fn wakes(&self, on_target_delete: TargetDeletePolicy) -> bool {
        match self {
            Effect::ContactChanged(_) => true,
            Effect::ContactTombstoned(_) => on_target_delete == TargetDeletePolicy::Recreate,
            _ => false,
        }
    }

    /// For the log.
    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::Replay => "replay: nothing changed",
            Effect::ContactTombstoned(_) => "contact link tombstoned",
            Effect::IdentityForgotten => "unlinked contact forgotten",
            Effect::ContactChanged(_) => "contact marked changed in GHL",
            Effect::TaskCompleted(_) => "task recorded completed",
            Effect::TaskDeleted(_) => "task link tombstoned",
            Effect::NoteDeleted(_) => "note link tombstoned",
            Effect::AlreadyKnown => "already known",
            Effect::NotOwned => "not a record the sync owns",
            Effect::Ignored => "type not acted on",
        }
    }
}

/// Records `event` (received at `at`) in the state of the pair syncing GHL location
/// `location_id`, in one transaction.
pub fn apply(
    store: &Store,
    location_id: &str,
    event: &GhlEvent,
    at: DateTime<Utc>,
) -> Result<Effect, StoreError> {
    store.transaction(|s| {
        let new = s.record_handled_webhook_event(&NewWebhookEvent {
            source: SOURCE,
            event_type: &event.event_type,
            location_id: Some(&event.location_id),
            record_id: &event.webhook_id,
            // The state is updated now; the body (personal data) is not kept.
            body: b"",
            received_at: at,
        })?;
        if !new {
            return Ok(Effect::Replay);
        }
        s.forget_webhook_events(SOURCE, at - remember_ids())?;
        let id = event.record_id.as_str();
        match &event.change {
            Change::ContactDeleted => contact_deleted(s, location_id, id, at),
            Change::ContactChanged => contact_changed(s, id),
            Change::TaskCompleted(task) => {
                task_observed(s, id, &TaskState::Present((**task).clone()), at)
            }
            Change::TaskDeleted => task_observed(s, id, &TaskState::Deleted, at),
            Change::NoteDeleted => note_deleted(s, id),
            Change::None => Ok(Effect::Ignored),
        }
    })
}

fn contact_deleted(
    s: &Store,
    location_id: &str,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Effect, StoreError> {
    let forgotten = s.remove_contact_identity(location_id, id)?;
    let links = s.links_by_target(Kind::Contact, id)?;
    let mut tombstoned = Vec::new();
    for l in links.iter().filter(|l| l.status == LinkStatus::Active) {
        s.set_link_status(Kind::Contact, &l.source_id, LinkStatus::Tombstoned)?;
        tombstoned.push(l.source_id.clone());
    }
    if !links.is_empty() {
        for t in s.links_on_contact(Kind::Task, id)? {
            if t.status == LinkStatus::Active {
                task_gone(s, t, at)?;
            }
        }
        for n in s.links_on_contact(Kind::Note, id)? {
            if n.status == LinkStatus::Active {
                note_gone(s, n)?;
            }
        }
    }
    Ok(match (tombstoned.is_empty(), links.is_empty(), forgotten) {
        (false, _, _) => Effect::ContactTombstoned(tombstoned),
        (true, false, _) => Effect::AlreadyKnown,
        (true, true, true) => Effect::IdentityForgotten,
        (true, true, false) => Effect::NotOwned,
    })
}

/// Where `reconcile::base` keeps a link's settled mark.
const SETTLED_KEYS: [&str; 2] = ["settled", "settled_tags"];

fn contact_changed(s: &Store, id: &str) -> Result<Effect, StoreError> {
    let mut changed = Vec::new();
    for l in s.links_by_target(Kind::Contact, id)? {
        if l.status != LinkStatus::Active {
            continue;
        }
        changed.push(l.source_id.clone());
        let mut extra = l.extra.clone();
        if let Some(map) = extra.as_object_mut() {
            for k in SETTLED_KEYS {
                map.remove(k);
            }
            map.insert(CHANGED_IN_GHL.into(), Value::Bool(true));
            s.set_link_extra(Kind::Contact, &l.source_id, &extra)?;
        }
    }
    Ok(if changed.is_empty() {
        Effect::NotOwned
    } else {
        Effect::ContactChanged(changed)
    })
}

fn task_observed(
    s: &Store,
    id: &str,
    state: &TaskState,
    at: DateTime<Utc>,
) -> Result<Effect, StoreError> {
    let Some(l) = s
        .links_by_target(Kind::Task, id)?
        .into_iter()
        .find(|l| l.status == LinkStatus::Active)
    else {
        return Ok(Effect::NotOwned);
    };
    if matches!(state, TaskState::Deleted) {
        return task_gone(s, l, at);
    }
    let Some((mut extra, _)) = observe(&l.extra, state) else {
        return Ok(Effect::AlreadyKnown);
    };
    extra["checked_at"] = checked_at(at);
    s.set_link_extra(Kind::Task, &l.source_id, &extra)?;
    Ok(Effect::TaskCompleted(l.source_id))
}

fn checked_at(at: DateTime<Utc>) -> Value {
    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// As the read-back records a task confirmed gone.
fn task_gone(s: &Store, l: Link, at: DateTime<Utc>) -> Result<Effect, StoreError> {
    let (mut extra, _) = observe(&l.extra, &TaskState::Deleted).unwrap_or((l.extra.clone(), true));
    extra["checked_at"] = checked_at(at);
    s.set_link_extra(Kind::Task, &l.source_id, &extra)?;
    s.tombstone(Kind::Task, &l.source_id)?;
    Ok(Effect::TaskDeleted(l.source_id))
}

fn note_deleted(s: &Store, id: &str) -> Result<Effect, StoreError> {
    match s
        .links_by_target(Kind::Note, id)?
        .into_iter()
        .find(|l| l.status == LinkStatus::Active)
    {
        Some(l) => note_gone(s, l),
        None => Ok(Effect::NotOwned),
    }
}

fn note_gone(s: &Store, l: Link) -> Result<Effect, StoreError> {
    let mut extra = l.extra.clone();
    if !extra.is_object() {
        extra = Value::Object(Default::default());
    }
    extra["deleted"] = json!(true);
    s.set_link_extra(Kind::Note, &l.source_id, &extra)?;
    s.tombstone(Kind::Note, &l.source_id)?;
    Ok(Effect::NoteDeleted(l.source_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ghl::wire::Task;
    use crate::store::{ContactIdentity, MatchMethod};

    fn event(change: Change, id: &str, hook: &str) -> GhlEvent {
        GhlEvent {
            event_type: "X".into(),
            location_id: "L".into(),
            record_id: id.into(),
            webhook_id: hook.into(),
            timestamp: Utc::now(),
            change,
        }
    }

    fn store() -> Store {
        let s = Store::open_in_memory().unwrap();
        let mut c = Link::new(Kind::Contact, "g1", "c1", MatchMethod::Created);
        c.extra = json!({"settled": "ab", "settled_tags": "cd", "source_fields": {}});
        s.upsert_link(&c).unwrap();
        let mut t = Link::new(Kind::Task, "welcome:g1", "t1", MatchMethod::Created);
        t.extra = json!({"rule": "welcome", "contact_id": "c1", "title": "Hi", "completed": false});
        s.upsert_link(&t).unwrap();
        s.upsert_link(&Link::new(Kind::Note, "mac:5", "n1", MatchMethod::Created))
            .unwrap();
        s.upsert_contact_identities(
            "L",
            &[ContactIdentity {
                target_id: "c1".into(),
                email: Some("a@example.com".into()),
                phone: None,
                anchor: None,
                date_updated: None,
            }],
        )
        .unwrap();
        s
    }

    #[test]
    fn a_deleted_contact_is_tombstoned_and_forgotten_once() {
        let s = store();
        let e = event(Change::ContactDeleted, "c1", "w1");
        let got = apply(&s, "L", &e, Utc::now()).unwrap();
        assert_eq!(got, Effect::ContactTombstoned(vec!["g1".into()]));
        assert_eq!(
            s.link(Kind::Contact, "g1").unwrap().unwrap().status,
            LinkStatus::Tombstoned
        );
        assert!(s.contact_identity("L", "c1").unwrap().is_none());
        // Its task went with it, as the read-back would record it.
        let t = s.link(Kind::Task, "welcome:g1").unwrap().unwrap();
        assert_eq!(
            (t.status, &t.extra["deleted"]),
            (LinkStatus::Tombstoned, &json!(true))
        );
        assert_eq!(apply(&s, "L", &e, Utc::now()).unwrap(), Effect::Replay);
        let again = event(Change::ContactDeleted, "c1", "w2");
        assert_eq!(
            apply(&s, "L", &again, Utc::now()).unwrap(),
            Effect::AlreadyKnown
        );
        // A day later the id is forgotten (its timestamp would be refused long before).
        let later = Utc::now() + remember_ids() + chrono::Duration::minutes(1);
        let next = event(Change::None, "", "w9");
        apply(&s, "L", &next, later).unwrap();
        assert_eq!(apply(&s, "L", &e, later).unwrap(), Effect::AlreadyKnown);
        let other = event(Change::ContactDeleted, "zz", "w3");
        assert_eq!(
            apply(&s, "L", &other, Utc::now()).unwrap(),
            Effect::NotOwned
        );
    }

    #[test]
    fn a_changed_contact_loses_its_settled_mark_and_is_flagged_for_the_next_read() {
        let s = store();
        let got = apply(
            &s,
            "L",
            &event(Change::ContactChanged, "c1", "w1"),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(got, Effect::ContactChanged(vec!["g1".into()]));
        let l = s.link(Kind::Contact, "g1").unwrap().unwrap();
        assert_eq!(l.extra, json!({"source_fields": {}, "ghl_changed": true}));
        assert_eq!(
            s.targets_flagged(Kind::Contact, CHANGED_IN_GHL).unwrap(),
            ["c1"]
        );
        s.clear_flag(Kind::Contact, "c1", CHANGED_IN_GHL).unwrap();
        assert!(
            s.targets_flagged(Kind::Contact, CHANGED_IN_GHL)
                .unwrap()
                .is_empty()
        );
        assert_eq!(l.status, LinkStatus::Active);
    }

    #[test]
    fn tasks_and_notes_as_the_passes_record_them() {
        let s = store();
        let task = Task {
            id: Some("t1".into()),
            completed: Some(true),
            ..Task::default()
        };
        let done = event(Change::TaskCompleted(Box::new(task)), "t1", "w1");
        assert_eq!(
            apply(&s, "L", &done, Utc::now()).unwrap(),
            Effect::TaskCompleted("welcome:g1".into())
        );
        let l = s.link(Kind::Task, "welcome:g1").unwrap().unwrap();
        assert_eq!(l.extra["completed"], json!(true));
        assert!(l.extra["checked_at"].is_string());
        assert_eq!(l.status, LinkStatus::Active);
        let gone = event(Change::TaskDeleted, "t1", "w2");
        assert_eq!(
            apply(&s, "L", &gone, Utc::now()).unwrap(),
            Effect::TaskDeleted("welcome:g1".into())
        );
        assert_eq!(
            s.link(Kind::Task, "welcome:g1").unwrap().unwrap().status,
            LinkStatus::Tombstoned
        );
        let note = event(Change::NoteDeleted, "n1", "w3");
        assert_eq!(
            apply(&s, "L", &note, Utc::now()).unwrap(),
            Effect::NoteDeleted("mac:5".into())
        );
        let l = s.link(Kind::Note, "mac:5").unwrap().unwrap();
        assert_eq!(
            (l.status, &l.extra["deleted"]),
            (LinkStatus::Tombstoned, &json!(true))
        );
        let unknown = event(Change::NoteDeleted, "n9", "w4");
        assert_eq!(
            apply(&s, "L", &unknown, Utc::now()).unwrap(),
            Effect::NotOwned
        );
    }
}
