//! HotspotSystem transactions → one GHL note each, on the contact of the guest.
//!
//! Transactions never change, so there is no diff: a note link (`source_id = "<type>:<id>"`)
//! says the note exists and it is never written again — a note a CRM user deleted stays deleted.
//! Reads are incremental: per transaction type and location, listed newest first and stopped at
//! the stored id cursor. A transaction whose guest has no GHL contact is kept as a parked link
//! (with what is needed to write it later) and reported, so it is not lost when the cursor moves on.
//! Creates are journaled (marker = the note's reference line) and resolved before any retry.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::snapshot::Location;
use crate::config::TransactionType;
use crate::ghl::wire::NoteInput;
use crate::ghl::{GhlClient, GhlError};
use crate::hotspot::HotspotClient;
use crate::hotspot::wire::TransactionCommon;
use crate::http::HttpError;
use crate::mapping::{has_reference, note_reference, render_with_reference};
use crate::model::{Kind, PhoneNormalizer, SourceContact, norm_email};
use crate::report::KindCounts;
use crate::store::{
    IntentState, ItemOutcome, Link, LinkStatus, MatchMethod, NewIntent, RunItem, Store,
};

/// The wire name of a transaction type (`mac`, `voucher`, `social`, `paid`).
pub fn type_name(t: TransactionType) -> &'static str {
    match t {
        TransactionType::Mac => "mac",
        TransactionType::Voucher => "voucher",
        TransactionType::Social => "social",
        TransactionType::Paid => "paid",
    }
}

/// One transaction, reduced to what notes and tasks need. Serialised into a parked link while
/// its guest has no contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Txn {
    pub kind: String,
    pub id: i64,
    pub location_id: String,
    pub at: Option<DateTime<Utc>>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub user_name: Option<String>,
    pub customer: Option<String>,
    pub amount: Option<f64>,
    pub currency: Option<String>,
    pub package: Option<String>,
    /// Data-capture questions and answers of mac transactions.
    #[serde(default)]
    pub answers: Vec<(String, String)>,
}

impl Txn {
    /// `"<type>:<transaction id>"`, the note link's source id.
    pub fn source_id(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }

    fn from_common(kind: &str, c: &TransactionCommon, location: &str) -> Option<Txn> {
        Some(Txn {
            kind: kind.to_string(),
            id: c.id?,
            location_id: c
                .location_id
                .clone()
                .unwrap_or_else(|| location.to_string()),
            at: c.action_date_gmt,
            email: c.email.clone(),
            phone: c.phone.clone(),
            user_name: c.user_name.clone(),
            customer: c.customer.clone(),
            amount: None,
            currency: None,
            package: None,
            answers: Vec::new(),
        })
    }

    /// Template values: type, transaction_id, location, amount, currency, package, date, name,
    /// email, answers, details.
    pub fn vars(&self, location_names: &HashMap<String, String>) -> BTreeMap<&'static str, String> {
        let mut v = BTreeMap::new();
        v.insert("type", self.kind.clone());
        v.insert("transaction_id", self.id.to_string());
        v.insert(
            "location",
            location_names
                .get(&self.location_id)
                .cloned()
                .unwrap_or_else(|| self.location_id.clone()),
        );
        v.insert("location_id", self.location_id.clone());
        let amount = self.amount.map(|a| format!("{a:.2}")).unwrap_or_default();
        v.insert("amount", amount.clone());
        v.insert("currency", self.currency.clone().unwrap_or_default());
        v.insert("package", self.package.clone().unwrap_or_default());
        v.insert(
            "date",
            self.at
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
        );
        v.insert("name", self.customer.clone().unwrap_or_default());
        v.insert("email", self.email.clone().unwrap_or_default());
        let answers: Vec<String> = self
            .answers
            .iter()
            .map(|(q, a)| format!("{q}: {a}"))
            .collect();
        v.insert("answers", answers.join("\n"));
        let mut details = String::new();
        if !amount.is_empty() {
            details.push_str(&format!(
                " ({amount} {})",
                self.currency.as_deref().unwrap_or_default()
            ));
        }
        if let Some(p) = self.package.as_deref().filter(|p| !p.is_empty()) {
            details.push_str(&format!(", package {p}"));
        }
        for a in &answers {
            details.push('\n');
            details.push_str(a);
        }
        v.insert("details", details);
        v
    }
}

fn answers(pairs: [(&Option<String>, &Option<String>); 5]) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .filter_map(|(q, a)| Some((q.clone()?, a.clone()?)))
        .collect()
}

/// What one stream (type, location) read.
#[derive(Debug, Default)]
pub struct StreamRead {
    pub txns: Vec<Txn>,
    /// Highest id seen, the next cursor.
    pub max_id: Option<i64>,
}

/// Reads the transactions of one type at one location newer than `after`, newest first,
/// stopping at the first page that reaches the cursor.
pub async fn read_stream(
    hs: &HotspotClient,
    t: TransactionType,
    location: &str,
    after: Option<i64>,
) -> Result<StreamRead, HttpError> {
    let kind = type_name(t);
    let mut out = StreamRead::default();
    // Stopping at the cursor is only safe while the server really sorts newest first; a page
    // that is not in descending order means the sort was ignored, and the rest is read in full.
    let mut sorted = true;
    macro_rules! drain {
        ($pager:expr, $conv:expr) => {{
            let mut pager = $pager.sort("-id");
            while let Some(page) = pager.next_page().await? {
                let page: Vec<Txn> = page.into_iter().filter_map($conv).collect();
                sorted &= page.windows(2).all(|w| w[0].id >= w[1].id);
                let mut reached = page.is_empty();
                for txn in page {
                    if after.is_some_and(|a| txn.id <= a) {
                        reached = true;
                        continue;
                    }
                    out.max_id = out.max_id.max(Some(txn.id));
                    out.txns.push(txn);
                }
                if reached && sorted {
                    break;
                }
            }
        }};
    }
    match t {
        TransactionType::Mac => drain!(
            hs.mac_transactions(Some(location)),
            |m: crate::hotspot::wire::MacTransaction| {
                let mut x = Txn::from_common(kind, &m.common, location)?;
                x.package = m.package_id.clone();
                x.answers = answers([
                    (&m.q1, &m.a1),
                    (&m.q2, &m.a2),
                    (&m.q3, &m.a3),
                    (&m.q4, &m.a4),
                    (&m.q5, &m.a5),
                ]);
                Some(x)
            }
        ),
        TransactionType::Voucher => drain!(
            hs.voucher_transactions(Some(location)),
            |p: crate::hotspot::wire::PaidTransaction| {
                let mut x = Txn::from_common(kind, &p.common, location)?;
                x.amount = p.amount;
                x.currency = p.currency.clone();
                Some(x)
            }
        ),
        TransactionType::Paid => drain!(
            hs.paid_transactions(Some(location)),
            |p: crate::hotspot::wire::PaidTransaction| {
                let mut x = Txn::from_common(kind, &p.common, location)?;
                x.amount = p.amount;
                x.currency = p.currency.clone();
                Some(x)
            }
        ),
        TransactionType::Social => drain!(
            hs.social_transactions(Some(location)),
            |s: crate::hotspot::wire::SocialTransaction| {
                let mut x = Txn::from_common(kind, &s.common, location)?;
                x.package = s.package_id.clone();
                Some(x)
            }
        ),
    }
    Ok(out)
}

/// Finds the GHL contact of a guest by email, phone or HotspotSystem user name, through the
/// contact links of the source records that carry them.
#[derive(Debug, Default)]
pub struct ContactIndex {
    by_email: HashMap<String, String>,
    by_phone: HashMap<String, String>,
    by_user: HashMap<String, String>,
    phone: PhoneNormalizer,
}

impl ContactIndex {
    /// `linked`: contact source id → GHL contact id (active links only).
    pub fn build(
        records: &[SourceContact],
        linked: &HashMap<String, String>,
        phone: PhoneNormalizer,
    ) -> ContactIndex {
        let mut ix = ContactIndex {
            phone,
            ..Default::default()
        };
        let mut unlinked = Vec::new();
        for r in records {
            match linked.get(&r.source_id) {
                Some(tid) => ix.add(r, tid),
                None => unlinked.push(r),
            }
        }
        // Records sharing an email are merged into one contact (see `map_sources`), whose link
        // is keyed by one of them only. The others' phones and user names lead there too: their
        // transactions carry those, and often no email.
        for r in unlinked {
            let merged_into = norm_email(r.email.as_deref()).and_then(|e| ix.by_email.get(&e));
            if let Some(tid) = merged_into.cloned() {
                ix.add(r, &tid);
            }
        }
        ix
    }

    /// Makes the record's email, phone and user name lead to `tid`, unless they already lead to
    /// a contact.
    fn add(&mut self, r: &SourceContact, tid: &str) {
        if let Some(e) = norm_email(r.email.as_deref()) {
            self.by_email.entry(e).or_insert_with(|| tid.to_string());
        }
        if let (Some(p), _) = self.phone.normalize(r.phone.as_deref()) {
            self.by_phone.entry(p).or_insert_with(|| tid.to_string());
        }
        if let Some(u) = r
            .user_name
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            self.by_user
                .entry(u.to_string())
                .or_insert_with(|| tid.to_string());
        }
    }

    pub fn find(
        &self,
        email: Option<&str>,
        phone: Option<&str>,
        user: Option<&str>,
    ) -> Option<&str> {
        norm_email(email)
            .and_then(|e| self.by_email.get(&e))
            .or_else(|| {
                self.phone
                    .normalize(phone)
                    .0
                    .and_then(|p| self.by_phone.get(&p))
            })
            .or_else(|| user.map(str::trim).and_then(|u| self.by_user.get(u)))
            .map(String::as_str)
    }
}

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
            None => plan.unmatched.push(t.clone()),
        }
    }
    plan
}

/// GHL's answer for a contact (or record) that does not exist.
pub fn is_not_found(e: &GhlError) -> bool {
    matches!(e, GhlError::Http(h) if matches!(h.status(), Some(400 | 404)))
}

/// The outcome of one kind in a pass.
#[derive(Debug, Default)]
pub struct KindOutcome {
    pub counts: KindCounts,
    pub notes: Vec<String>,
    pub items: Vec<RunItem>,
    /// Source ids whose write failed or was deferred (cursors stay put for their stream).
    pub unfinished: BTreeSet<String>,
    /// Why writing stopped early and the rest was deferred (the daily-quota reserve).
    pub stopped: Option<String>,
    /// The error that ends the pass once the writes in flight are done: GHL refused a call for
    /// a scope the token lacks, which no other record can get past either.
    pub fatal: Option<GhlError>,
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
        if let CreateError::Ghl(g) = &e
            && g.is_quota_reserve()
        {
            stop.store(true, Ordering::SeqCst);
            self.stopped.get_or_insert_with(|| g.to_string());
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
        if let CreateError::Ghl(g) = e
            && g.is_scope_denial()
        {
            stop.store(true, Ordering::SeqCst);
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

pub(crate) fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// Journal op of a note create; the contact id rides along so a pending intent can be looked
/// up on the right contact.
fn note_op(contact_id: &str) -> String {
    format!("create_note:{contact_id}")
}

/// Resolves pending note intents by listing each contact's notes and looking for the marker:
/// found → the link is recorded; not found → abandoned (the transaction is planned again).
pub async fn resolve_pending(
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

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Ghl(#[from] GhlError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("GHL answered a create without an id")]
    NoId,
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

/// Keeps unmatched transactions as parked note links (target empty) so a later run can write
/// them once their guest has a contact; returns how many are newly parked.
pub fn park_unmatched(store: &Store, unmatched: &[Txn]) -> Result<u64, crate::store::StoreError> {
    let mut n = 0;
    store.transaction(|s| {
        for t in unmatched {
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
                "reason": "no GHL contact matches the guest's email, phone or user name",
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
pub fn parked_txns(links: &[Link]) -> Vec<Txn> {
    links
        .iter()
        .filter(|l| l.status == LinkStatus::Parked)
        .filter_map(|l| serde_json::from_value(l.extra.get("txn")?.clone()).ok())
        .collect()
}

/// Locations by id → name.
pub fn location_names(locations: &[Location]) -> HashMap<String, String> {
    locations
        .iter()
        .map(|l| (l.id.clone(), l.name.clone()))
        .collect()
}

/// Runs the notes step of a pass.
pub async fn reconcile(cx: &super::pass::KindContext<'_>) -> anyhow::Result<KindOutcome> {
    let source = cx.source().await?;
    let names = location_names(&source.locations);
    let index = cx.contact_index().await?;
    let mut streams: Vec<(String, Option<i64>, Vec<String>)> = Vec::new();
    let mut txns = Vec::new();
    for t in &cx.cfg.notes.transaction_types {
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
    let note_links = lock(cx.store).links(Kind::Note)?;
    txns.extend(parked_txns(&note_links));
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
        let n = resolve_pending(cx.ghl, cx.store, Kind::Note, &extras).await?;
        if n > 0 {
            out.notes.push(format!(
                "{n} note(s) of an interrupted run were found in GHL and linked."
            ));
        }
    }
    let linked: HashSet<String> = lock(cx.store)
        .links(Kind::Note)?
        .into_iter()
        .filter(|l| l.status != LinkStatus::Parked)
        .map(|l| l.source_id)
        .collect();
    let plan = plan_notes(&txns, &linked, index, &cx.cfg.notes.template, &names);
    out.counts.unchanged = plan.existing;
    out.counts.skipped = plan.unmatched.len() as u64;
    for t in &plan.unmatched {
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
    if !plan.unmatched.is_empty() {
        out.notes.push(format!(
            "{} transaction(s) have no GHL contact yet (email, phone and user name matched nothing); their notes wait for the contact.",
            plan.unmatched.len()
        ));
    }
    if cx.opts.dry_run {
        out.counts.deferred = plan.creates.len() as u64;
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
    park_unmatched(&lock(cx.store), &plan.unmatched)?;
    out.absorb_creates(applied, &lock(cx.store), Kind::Note, streams)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(sid: &str, email: Option<&str>, phone: Option<&str>, user: &str) -> SourceContact {
        SourceContact {
            source_id: sid.into(),
            email: email.map(str::to_string),
            phone: phone.map(str::to_string),
            user_name: Some(user.into()),
            ..Default::default()
        }
    }

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

    fn index() -> ContactIndex {
        let records = vec![
            contact("c1", Some("Ann@Example.com"), None, "u1"),
            contact("c2", None, Some("+44 20 7946 0958"), "u2"),
            contact("c3", None, None, "AA-BB"),
            contact("c4", Some("unlinked@example.com"), None, "u4"),
        ];
        let linked: HashMap<String, String> = [("c1", "G1"), ("c2", "G2"), ("c3", "G3")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        ContactIndex::build(&records, &linked, PhoneNormalizer::new("GB").unwrap())
    }

    #[test]
    fn transactions_find_their_contact_by_email_phone_or_user_name() {
        let ix = index();
        assert_eq!(ix.find(Some(" ann@example.COM "), None, None), Some("G1"));
        assert_eq!(ix.find(None, Some("0044 20 7946 0958"), None), Some("G2"));
        assert_eq!(ix.find(None, None, Some("AA-BB")), Some("G3"));
        assert_eq!(
            ix.find(Some("unlinked@example.com"), None, Some("u4")),
            None
        );
    }

    #[test]
    fn a_customer_merged_by_email_is_found_by_its_own_phone_and_user_name() {
        let records = vec![
            contact(
                "c1",
                Some("couple@example.com"),
                Some("+44 20 7946 0100"),
                "u1",
            ),
            contact(
                "c2",
                Some(" Couple@Example.com"),
                Some("+44 20 7946 0111"),
                "u2",
            ),
        ];
        let linked: HashMap<String, String> = [("c1".to_string(), "G1".to_string())].into();
        let ix = ContactIndex::build(&records, &linked, PhoneNormalizer::new("GB").unwrap());
        assert_eq!(ix.find(None, Some("020 7946 0111"), Some("u2")), Some("G1"));
        assert_eq!(ix.find(None, None, Some("u2")), Some("G1"));
        assert_eq!(ix.find(None, Some("+44 20 7946 0100"), None), Some("G1"));
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
    fn a_refused_create_closes_its_intent_an_unknown_outcome_keeps_it() {
        let store = Mutex::new(Store::open_in_memory().unwrap());
        let intent = |sid: &str| {
            lock(&store)
                .journal_intent(&NewIntent {
                    kind: Kind::Note,
                    source_id: sid.into(),
                    op: note_op("G1"),
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

    #[test]
    fn parked_transactions_round_trip_through_the_store() {
        let store = Store::open_in_memory().unwrap();
        let t = txn(12, None, None, "nobody");
        assert_eq!(park_unmatched(&store, std::slice::from_ref(&t)).unwrap(), 1);
        assert_eq!(park_unmatched(&store, std::slice::from_ref(&t)).unwrap(), 0);
        let links = store.links(Kind::Note).unwrap();
        assert_eq!(parked_txns(&links), vec![t]);
    }
}
