//! HotspotSystem transactions → one GHL note each, on the contact of the guest.
//!
//! Transactions never change, so there is no diff: a note link (`source_id = "<type>:<id>"`)
//! says the note exists and it is never written again — a note a CRM user deleted stays deleted.
//! Reads are incremental: per transaction type and location, listed newest first and stopped at
//! the stored id cursor. A transaction whose guest has no GHL contact is kept as a parked link
//! (with what is needed to write it later) and reported, so it is not lost when the cursor moves on.
//! Creates are journaled (marker = the note's reference line) and resolved before any retry.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use serde_json::{Value, json};

use super::context::{PassContext, lock};
use super::dry_run::{PlannedVisit, writes_of};
use super::journaled::{CreateError, abandon_if_refused, resolve_pending_attached, run_creates};
use super::outcome::KindOutcome;
use super::snapshot::location_names;
use super::transactions::{ContactIndex, Txn, read_stream, type_name};
use crate::ghl::GhlClient;
use crate::ghl::wire::NoteInput;
use crate::mapping::{note_reference, render_with_reference};
use crate::model::Kind;
use crate::report::dry_run::WriteOp;
use crate::store::{
    ItemOutcome, Link, LinkStatus, MatchMethod, NewIntent, RunItem, Store, StoreError,
};

/// One note to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteCreate {
    pub source_id: String,
    pub contact_id: String,
    pub body: String,
    pub reference: String,
    pub extra: Value,
}

/// What to do with the transactions of a run.
#[derive(Debug, Default, PartialEq)]
pub struct NotesPlan {
    pub creates: Vec<NoteCreate>,
    /// Transactions whose guest has no contact yet (kept parked, reported).
    pub unmatched: Vec<Txn>,
    /// Transactions that already have their note.
    pub existing: u64,
    /// Transactions of guests kept out of this pass (`[filter]`, `--limit`): kept parked,
    /// written once their guest is synced.
    pub kept_out: Vec<Txn>,
}

/// Pure planning: one create per transaction with no note link whose contact is known.
/// `linked` holds the source ids of note links that are not parked (active or tombstoned).
pub fn plan_notes(
    txns: &[Txn],
    linked: &HashSet<String>,
    index: &ContactIndex,
    template: &str,
    location_names: &HashMap<String, String>,
) -> NotesPlan {
    let mut plan = NotesPlan::default();
    let mut seen = HashSet::new();
    for t in txns {
        let sid = t.source_id();
        if !seen.insert(sid.clone()) {
            continue;
        }
        if linked.contains(&sid) {
            plan.existing += 1;
            continue;
        }
        match index.find(
            t.email.as_deref(),
            t.phone.as_deref(),
            t.user_name.as_deref(),
        ) {
            Some(cid) => {
                let reference = note_reference(&t.kind, &t.id.to_string());
                let body = render_with_reference(template, &t.vars(location_names), &reference);
                plan.creates.push(NoteCreate {
                    source_id: sid,
                    contact_id: cid.to_string(),
                    body,
                    reference,
                    extra: json!({
                        "type": t.kind,
                        "location_id": t.location_id,
                        "at": t.at.map(|a| a.to_rfc3339()),
                        "contact_id": cid,
                    }),
                });
            }
            None if index.kept_out(
                t.email.as_deref(),
                t.phone.as_deref(),
                t.user_name.as_deref(),
            ) =>
            {
                plan.kept_out.push(t.clone())
            }
            None => plan.unmatched.push(t.clone()),
        }
    }
    plan
}

/// Journal op of a note create; the contact id rides along so a pending intent can be looked
/// up on the right contact.
fn note_op(contact_id: &str) -> String {
    format!("create_note:{contact_id}")
}

/// Writes the planned notes, `concurrency` at a time; each create is journaled first and its
/// link committed with the intent's completion.
pub async fn apply_notes(
    ghl: &GhlClient,
    store: &Mutex<Store>,
    creates: &[NoteCreate],
    run_id: i64,
    concurrency: usize,
    stop: &AtomicBool,
    progress: Option<&crate::progress::Progress>,
) -> KindOutcome {
    run_creates(
        Kind::Note,
        creates,
        |c| (c.source_id.as_str(), c.contact_id.as_str()),
        concurrency,
        stop,
        progress,
        |c| create_one(ghl, store, c, run_id),
    )
    .await
}

async fn create_one(
    ghl: &GhlClient,
    store: &Mutex<Store>,
    c: &NoteCreate,
    run_id: i64,
) -> Result<(), CreateError> {
    let intent = lock(store).journal_intent(&NewIntent {
        kind: Kind::Note,
        source_id: c.source_id.clone(),
        op: note_op(&c.contact_id),
        marker: c.reference.clone(),
        payload_hash: None,
        run_id: Some(run_id),
    })?;
    let note = ghl
        .create_note(
            &c.contact_id,
            &NoteInput {
                body: Some(c.body.clone()),
                ..Default::default()
            },
            false,
        )
        .await
        .map_err(|e| abandon_if_refused(store, intent, e))?;
    let id = note.id.ok_or(CreateError::NoId)?;
    let mut link = Link::new(Kind::Note, c.source_id.clone(), id, MatchMethod::Created);
    link.extra = c.extra.clone();
    lock(store).complete_create(intent, &link)?;
    Ok(())
}

/// Keeps unmatched transactions as parked note links (target empty) so a later run can write
/// them once their guest has a contact; returns how many are newly parked.
pub fn park_unmatched(store: &Store, unmatched: &[Txn]) -> Result<u64, crate::store::StoreError> {
    park(
        store,
        unmatched,
        "no GHL contact matches the guest's email, phone or user name",
    )
}

/// Keeps transactions as parked note links, saying why they wait; returns how many are new.
fn park(store: &Store, txns: &[Txn], reason: &str) -> Result<u64, crate::store::StoreError> {
    let mut n = 0;
    store.transaction(|s| {
        for t in txns {
            let sid = t.source_id();
            if s.link(Kind::Note, &sid)?.is_some() {
                continue;
            }
            let mut link = Link::new(Kind::Note, sid, "", MatchMethod::Email);
            link.status = LinkStatus::Parked;
            link.extra = json!({
                "type": t.kind,
                "location_id": t.location_id,
                "at": t.at.map(|a| a.to_rfc3339()),
                "reason": reason,
                "txn": t,
            });
            s.upsert_link(&link)?;
            n += 1;
        }
        Ok(())
    })?;
    Ok(n)
}

/// Transactions parked by earlier runs, to try again.
pub fn parked_txns(store: &Store) -> Result<Vec<Txn>, StoreError> {
    let mut out = Vec::new();
    store.each_link_head(Kind::Note, &["$.txn"], |l, mut extra| {
        if l.status == LinkStatus::Parked
            && let Some(t) = extra.pop().flatten()
            && let Ok(t) = serde_json::from_str(&t)
        {
            out.push(t);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Runs the notes step of a pass.
pub async fn reconcile(cx: &PassContext<'_>) -> anyhow::Result<KindOutcome> {
    let source = cx.source().await?;
    let names = location_names(&source.locations);
    let index = cx.contact_index().await?;
    let mut streams: Vec<(String, Option<i64>, Vec<String>)> = Vec::new();
    let mut txns = Vec::new();
    let scoped = cx.opts.scope.scoped();
    // A scoped pass writes the notes of its own transactions only, and moves no cursor of the
    // notes pass: what it leaves, that pass reads and writes as before.
    let types: Vec<_> = match scoped {
        Some(s) => {
            txns.extend(s.txns.iter().cloned());
            Vec::new()
        }
        None => cx.cfg.notes.transaction_types.iter().copied().collect(),
    };
    for t in &types {
        for loc in &source.locations {
            let scope = format!("{}:{}", type_name(*t), loc.id);
            let after = if cx.opts.full {
                None
            } else {
                lock(cx.store)
                    .cursor(Kind::Note, &scope)?
                    .and_then(|c| c.parse().ok())
            };
            let r = read_stream(cx.hs, *t, &loc.id, after).await?;
            streams.push((scope, r.max_id, r.txns.iter().map(Txn::source_id).collect()));
            txns.extend(r.txns);
        }
    }
    let read = txns.len();
    if scoped.is_none() {
        txns.extend(parked_txns(&lock(cx.store))?);
    }
    let extras: HashMap<String, Value> = txns
        .iter()
        .map(|t| {
            (
                t.source_id(),
                json!({"type": t.kind, "location_id": t.location_id, "at": t.at.map(|a| a.to_rfc3339())}),
            )
        })
        .collect();
    let mut out = KindOutcome::default();
    if !cx.opts.dry_run {
        let n = resolve_pending_attached(cx.ghl, cx.store, Kind::Note, &extras).await?;
        if n > 0 {
            out.notes.push(format!(
                "{n} note(s) of an interrupted run were found in GHL and linked."
            ));
        }
    }
    let mut linked: HashSet<String> = HashSet::new();
    lock(cx.store).each_link_head(Kind::Note, &[], |l, _| {
        if l.status != LinkStatus::Parked {
            linked.insert(l.source_id);
        }
        Ok(())
    })?;
    let plan = plan_notes(&txns, &linked, index, &cx.cfg.notes.template, &names);
    out.counts.unchanged = plan.existing;
    out.counts.skipped = plan.unmatched.len() as u64;
    if scoped.is_some() {
        // Transactions of guests this pass did not write (a returning guest): the notes pass
        // reads them from its own cursor. Nothing is parked or reported for them here.
        out.counts.skipped = 0;
        out.notes.extend((!plan.unmatched.is_empty()).then(|| {
            format!(
                "{} new transaction(s) of guests outside this pass are left to the notes pass.",
                plan.unmatched.len()
            )
        }));
    }
    for t in plan.unmatched.iter().filter(|_| scoped.is_none()) {
        out.items.push(RunItem {
            kind: Kind::Note,
            source_id: t.source_id(),
            target_id: None,
            action: "skip".into(),
            outcome: ItemOutcome::Skipped,
            reason: Some("no GHL contact matches the guest's email, phone or user name; kept for a later run".into()),
            detail: json!({"location_id": t.location_id, "user_name": t.user_name}),
        });
    }
    if !plan.unmatched.is_empty() && scoped.is_none() {
        out.notes.push(format!(
            "{} transaction(s) have no GHL contact yet (email, phone and user name matched nothing); their notes wait for the contact.",
            plan.unmatched.len()
        ));
    }
    if !plan.kept_out.is_empty() {
        out.notes.push(format!(
            "{} transaction(s) belong to guests kept out by the filter or --limit: no note this pass; kept until their guest is synced.",
            plan.kept_out.len()
        ));
    }
    if cx.opts.dry_run {
        out.counts.deferred = plan.creates.len() as u64;
        out.planned = writes_of(WriteOp::Create, plan.creates.len() as u64);
        // The latest visit of each contact, for the business association after it.
        cx.dry.add_visits(plan.creates.iter().filter_map(|c| {
            Some(PlannedVisit {
                contact_id: c.contact_id.clone(),
                location_id: c.extra.get("location_id")?.as_str()?.to_string(),
                at: c.extra.get("at")?.as_str()?.to_string(),
            })
        }));
        out.notes.push(format!(
            "Would create {} note(s) from {read} new transaction(s).",
            plan.creates.len()
        ));
        return Ok(out);
    }
    let applied = apply_notes(
        cx.ghl,
        cx.store,
        &plan.creates,
        cx.run_id,
        cx.cfg.ghl.max_concurrency,
        cx.stop,
        cx.opts.progress.as_ref(),
    )
    .await;
    if scoped.is_none() {
        park_unmatched(&lock(cx.store), &plan.unmatched)?;
    }
    park(
        &lock(cx.store),
        &plan.kept_out,
        "the guest is kept out by the filter or --limit",
    )?;
    out.absorb_creates(applied, &lock(cx.store), Kind::Note, streams)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::transactions::tests::index;
    use super::*;

    fn txn(id: i64, email: Option<&str>, phone: Option<&str>, user: &str) -> Txn {
        Txn {
            kind: "paid".into(),
            id,
            location_id: "1".into(),
            at: None,
            email: email.map(str::to_string),
            phone: phone.map(str::to_string),
            user_name: Some(user.into()),
            customer: Some("Ann".into()),
            amount: Some(2.5),
            currency: Some("EUR".into()),
            package: None,
            answers: vec![],
        }
    }

    #[test]
    fn one_note_per_transaction_and_none_for_linked_or_unmatched() {
        let ix = index();
        let txns = vec![
            txn(10, Some("ann@example.com"), None, "x"),
            txn(10, Some("ann@example.com"), None, "x"),
            txn(11, None, None, "AA-BB"),
            txn(12, None, None, "nobody"),
        ];
        let linked: HashSet<String> = ["paid:11".to_string()].into();
        let names: HashMap<String, String> = [("1".to_string(), "Cafe".to_string())].into();
        let plan = plan_notes(&txns, &linked, &ix, "{type} at {location}{details}", &names);
        assert_eq!(plan.creates.len(), 1);
        assert_eq!(plan.existing, 1);
        assert_eq!(plan.unmatched.len(), 1);
        assert_eq!(plan.unmatched[0].id, 12);
        let c = &plan.creates[0];
        assert_eq!(c.source_id, "paid:10");
        assert_eq!(c.contact_id, "G1");
        assert_eq!(c.body, "paid at Cafe (2.50 EUR)\nRef: hgs:paid:10");
        assert_eq!(c.extra["type"], "paid");
        assert_eq!(c.extra["location_id"], "1");
    }

    #[test]
    fn parked_transactions_round_trip_through_the_store() {
        let store = Store::open_in_memory().unwrap();
        let t = txn(12, None, None, "nobody");
        assert_eq!(park_unmatched(&store, std::slice::from_ref(&t)).unwrap(), 1);
        assert_eq!(park_unmatched(&store, std::slice::from_ref(&t)).unwrap(), 0);
        assert_eq!(parked_txns(&store).unwrap(), vec![t]);
    }
}
