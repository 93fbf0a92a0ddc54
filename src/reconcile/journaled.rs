//! Journaled creates, shared by every kind that creates records in GHL: each create is written
//! to the journal before it is sent and completed with its link, so a create whose answer was
//! lost (a crash, a dropped connection) is found again before anything is retried. Here: the
//! concurrent runner of note and task creates and how their results are booked, and the
//! recovery of the intents an earlier run left pending, for contacts and for notes and tasks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::context::lock;
use super::outcome::{Halt, KindOutcome, halt_writing};
use super::plan::ContactsInput;
use crate::config::LostCreateRecovery;
use crate::ghl::{GhlClient, GhlError};
use crate::mapping::{MappingConfig, has_reference};
use crate::model::{Field, Kind};
use crate::store::{IntentState, ItemOutcome, Link, MatchMethod, RunItem, Store};

/// A create journaled this long ago and not yet visible in the GHL listing is presumed never
/// made: GHL's search lags writes by seconds, so a younger one may simply not show yet.
pub const INTENT_SETTLE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Ghl(#[from] GhlError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("GHL answered a create without an id")]
    NoId,
}

/// A create GHL refused outright (4xx other than an expired token and rate limit, or a scope
/// the token lacks), or that the quota reserve stopped before it was sent, made nothing, so its
/// intent is closed at once instead of costing a look-up on the next start (or, under
/// `lost_create_recovery = "wait"`, a hold).
pub(crate) fn abandon_if_refused(store: &Mutex<Store>, intent: i64, e: GhlError) -> CreateError {
    if e.made_nothing()
        && let Err(se) = lock(store).journal_abandon(intent)
    {
        tracing::warn!(error = %se, "could not close a refused create's intent");
    }
    CreateError::Ghl(e)
}

/// Runs journaled creates (notes, tasks) `concurrency` at a time and books each result; once
/// `stop` is set no new create starts and the rest are deferred.
pub(crate) async fn run_creates<'a, T, Fut>(
    kind: Kind,
    items: &'a [T],
    ids: impl Fn(&'a T) -> (&'a str, &'a str),
    concurrency: usize,
    stop: &AtomicBool,
    progress: Option<&crate::progress::Progress>,
    create: impl Fn(&'a T) -> Fut,
) -> KindOutcome
where
    Fut: std::future::Future<Output = Result<(), CreateError>>,
{
    let out = Mutex::new(KindOutcome::default());
    // The bar says "notes" / "tasks".
    let label = format!("{}s", kind.as_str());
    let bar = &crate::progress::Bar::new(progress, &label, items.len() as u64);
    let out_ref = &out;
    futures_util::stream::iter(items.iter().map(|it| {
        let (source_id, contact_id) = ids(it);
        let fut = (!stop.load(Ordering::SeqCst)).then(|| create(it));
        async move {
            let Some(fut) = fut else {
                let mut o = lock_out(out_ref);
                o.counts.deferred += 1;
                o.unfinished.insert(source_id.to_string());
                return;
            };
            let r = fut.await;
            bar.inc();
            lock_out(out_ref).record_create(kind, source_id, contact_id, r, stop);
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .collect::<Vec<()>>()
    .await;
    out.into_inner().unwrap_or_else(|p| p.into_inner())
}

fn lock_out(m: &Mutex<KindOutcome>) -> std::sync::MutexGuard<'_, KindOutcome> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl KindOutcome {
    /// Books the result of one journaled create (a note or a task): counted when it worked;
    /// otherwise left unfinished, and either deferred (the daily-quota reserve stops every
    /// writer through `stop`) or listed as failed with its reason (a scope denial also stops
    /// every writer, and is kept to end the pass with).
    pub fn record_create(
        &mut self,
        kind: Kind,
        source_id: &str,
        contact_id: &str,
        result: Result<(), CreateError>,
        stop: &AtomicBool,
    ) {
        let e = match result {
            Ok(()) => {
                self.counts.created += 1;
                return;
            }
            Err(e) => e,
        };
        self.unfinished.insert(source_id.to_string());
        let halt = match &e {
            CreateError::Ghl(g) => halt_writing(g, stop),
            _ => None,
        };
        if let Some(Halt::Deferred(why)) = halt {
            self.stopped.get_or_insert(why);
            self.counts.deferred += 1;
            return;
        }
        self.counts.failed += 1;
        self.items.push(RunItem {
            kind,
            source_id: source_id.to_string(),
            target_id: None,
            action: "create".into(),
            outcome: ItemOutcome::Failed,
            reason: Some(e.to_string()),
            detail: json!({ "contact_id": contact_id }),
        });
        if let (Some(Halt::ScopeDenied), CreateError::Ghl(g)) = (halt, e) {
            tracing::warn!(kind = kind.as_str(), error = %g, "GHL refused a call for a missing scope; no new write starts");
            self.fatal.get_or_insert(g);
        }
    }

    /// Takes in what the creates of this kind did, then moves each incremental stream's
    /// cursor `(scope, newest id, source ids)` to its newest id, unless a record of that
    /// stream is unfinished: it is read again next run.
    pub fn absorb_creates(
        &mut self,
        applied: KindOutcome,
        store: &Store,
        kind: Kind,
        streams: Vec<(String, Option<i64>, Vec<String>)>,
    ) -> Result<(), crate::store::StoreError> {
        self.counts.created = applied.counts.created;
        self.counts.failed = applied.counts.failed;
        self.counts.deferred = applied.counts.deferred;
        self.items.extend(applied.items);
        self.stopped = applied.stopped;
        self.fatal = applied.fatal;
        for (scope, max, sids) in streams {
            if let Some(max) = max
                && !sids.iter().any(|sid| applied.unfinished.contains(sid))
            {
                store.set_cursor(kind, &scope, &max.to_string())?;
            }
        }
        self.unfinished = applied.unfinished;
        Ok(())
    }
}

/// GHL's answer for a contact (or record) that does not exist.
pub fn is_not_found(e: &GhlError) -> bool {
    matches!(e, GhlError::Http(h) if matches!(h.status(), Some(400 | 404)))
}

/// Resolves pending note or task intents (`kind`) by listing each contact's notes or tasks and
/// looking for the marker: found → the link is recorded; not found → abandoned (the record is
/// planned again).
pub async fn resolve_pending_attached(
    ghl: &GhlClient,
    store: &Mutex<Store>,
    kind: Kind,
    extras: &HashMap<String, Value>,
) -> anyhow::Result<u64> {
    let pending: Vec<_> = lock(store)
        .pending_intents()?
        .into_iter()
        .filter(|i| i.kind == kind && i.state == IntentState::Pending)
        .collect();
    let mut recovered = 0;
    for intent in pending {
        let Some((_, cid)) = intent.op.split_once(':') else {
            lock(store).journal_abandon(intent.id)?;
            continue;
        };
        let found = match kind {
            Kind::Task => ghl.list_tasks(cid).await.map(|ts| {
                ts.into_iter()
                    .find(|t| has_reference(t.body.as_deref().unwrap_or_default(), &intent.marker))
                    .and_then(|t| t.id)
            }),
            _ => ghl.list_notes(cid).await.map(|ns| {
                ns.into_iter()
                    .find(|n| has_reference(n.body.as_deref().unwrap_or_default(), &intent.marker))
                    .and_then(|n| n.id)
            }),
        };
        let found = match found {
            Ok(f) => f,
            // The contact is gone: nothing can have been created on it.
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(e.into()),
        };
        let s = lock(store);
        match found {
            Some(id) => {
                let mut link = Link::new(
                    kind,
                    intent.source_id.clone(),
                    id,
                    MatchMethod::JournalRecovered,
                );
                link.created_by_us = true;
                let mut extra = extras
                    .get(&intent.source_id)
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                extra["contact_id"] = json!(cid);
                if kind == Kind::Task {
                    // `<rule id>:<source id>`: the rule is what completion figures group by.
                    let rule = intent.source_id.split(':').next().unwrap_or_default();
                    extra["rule"] = json!(rule);
                    extra["completed"] = json!(false);
                    extra["edited"] = json!(false);
                }
                link.extra = extra;
                s.complete_create(intent.id, &link)?;
                recovered += 1;
            }
            None => s.journal_abandon(intent.id)?,
        }
    }
    Ok(recovered)
}

/// Creates journaled by an earlier run that never completed (a crash, a dropped connection):
/// if the contact shows in GHL, the planner adopts it through its identity; if not, a record
/// with an email or phone stays pending for apply to upsert (under `lost_create_recovery =
/// "upsert"`), and any other, when the intent is recent, waits a run rather than risk a
/// second contact.
pub fn resolve_pending_contacts(
    store: &Mutex<Store>,
    mapping: &MappingConfig,
    input: &mut ContactsInput,
    recovery: LostCreateRecovery,
) -> anyhow::Result<Vec<String>> {
    let upsert = recovery == LostCreateRecovery::Upsert;
    let s = lock(store);
    let mut held = Vec::new();
    for intent in s.pending_intents()? {
        if intent.kind != Kind::Contact || intent.state != IntentState::Pending {
            continue;
        }
        let marker: Value = serde_json::from_str(&intent.marker).unwrap_or(Value::Null);
        let email = marker.get("email").and_then(Value::as_str);
        let phone = marker.get("phone").and_then(Value::as_str);
        let young = Utc::now() - intent.created_at < chrono::Duration::from_std(INTENT_SETTLE)?;
        // `input.target`: this run's GHL listing, projected.
        let found = input.target.iter().find(|(_, t)| {
            let p = &t.projection;
            let anchor = mapping
                .fields
                .hotspot_id_field
                .as_ref()
                .and_then(|k| p.fields.get(&Field::Custom(k.clone())))
                == Some(intent.source_id.as_str());
            anchor
                || (email.is_some() && p.fields.email() == email)
                || (phone.is_some() && p.fields.phone() == phone)
        });
        match found.map(|(id, _)| id.clone()) {
            Some(target_id) => {
                tracing::info!(source_id = %intent.source_id, target_id = %target_id, "pending create found in GHL; adopting");
                s.journal_done(intent.id, &target_id)?;
            }
            // Keyed by email or phone: apply re-sends it as an upsert, which GHL matches
            // against a contact the lost answer created even before search shows it.
            None if young && upsert && (email.is_some() || phone.is_some()) => {}
            None if young => {
                input.source.remove(&intent.source_id);
                held.push(intent.source_id);
            }
            None => s.journal_abandon(intent.id)?,
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpError;
    use crate::mapping::note_reference;
    use crate::store::NewIntent;

    #[test]
    fn a_refused_create_closes_its_intent_an_unknown_outcome_keeps_it() {
        let store = Mutex::new(Store::open_in_memory().unwrap());
        let intent = |sid: &str| {
            lock(&store)
                .journal_intent(&NewIntent {
                    kind: Kind::Note,
                    source_id: sid.into(),
                    op: "create_note:G1".into(),
                    marker: note_reference("mac", sid),
                    payload_hash: None,
                    run_id: None,
                })
                .unwrap()
        };
        let refused = intent("1");
        abandon_if_refused(&store, refused, GhlError::Invalid("no body".into()));
        let unknown = intent("2");
        abandon_if_refused(
            &store,
            unknown,
            GhlError::Http(HttpError::Config("connection reset".into())),
        );
        let denied = intent("3");
        abandon_if_refused(
            &store,
            denied,
            GhlError::ScopeDenied {
                scope: "contacts.write",
                method: "POST".into(),
                path: "/contacts/{id}/notes",
            },
        );
        let s = lock(&store);
        assert_eq!(
            s.intent(refused).unwrap().unwrap().state,
            IntentState::Abandoned
        );
        assert_eq!(
            s.intent(denied).unwrap().unwrap().state,
            IntentState::Abandoned
        );
        assert_eq!(
            s.intent(unknown).unwrap().unwrap().state,
            IntentState::Pending
        );
    }
}
