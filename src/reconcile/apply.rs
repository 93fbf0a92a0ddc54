//! Executes a contact [`Plan`] against GHL and records each result in the store.
//!
//! Actions of one record run in order (a link before its tags); records run concurrently, up to
//! `max_concurrency` at a time, so throughput approaches the rate limit the HTTP policy enforces.
//! The state change of each action is committed right after its remote write succeeds, and the
//! base is taken from GHL's answer, not from what was sent, so the sync's own writes never come
//! back as changes. Creates are journaled first (DESIGN.md §5).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use serde_json::Value;
use thiserror::Error;

use super::base;
use super::outcome::{Halt, WritingStopped, halt_writing};
use super::plan::{Action, ContactsInput, FieldChanges, Plan};
use super::snapshot::{CustomFields, target_from_contact};
use crate::ghl::wire::{Contact, ContactCreate, ContactUpdate, CustomFieldInput};
use crate::ghl::{GhlClient, GhlError};
use crate::http::ErrorClass;
use crate::mapping::{MappingConfig, target_projection};
use crate::model::{CanonicalContact, ContactProjection, Field, Kind, StdField};
use crate::store::{self, Link, MatchMethod, NewIntent, Store, StoreError};

#[derive(Debug, Error)]
pub enum ApplyError {
    #[error(transparent)]
    Ghl(#[from] GhlError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Inconsistent(String),
}

/// What happened to the records of a plan.
#[derive(Debug, Default)]
pub struct ApplyResult {
    /// Source id → error message of the action that failed (the record's later actions were not run).
    pub failed: HashMap<String, String>,
    /// Records not attempted because the run stopped writing (quota reserve, shutdown).
    pub deferred: BTreeSet<String>,
    /// Source id → fields GHL's update API does not accept (e.g. `companyName`), left as they are.
    pub not_writable: HashMap<String, Vec<String>>,
    /// Source id → GHL id adopted because a create was answered "duplicate".
    pub adopted_duplicates: HashMap<String, String>,
    /// Why writing stopped early and the rest was deferred, if it did.
    pub stopped: Option<WritingStopped>,
    /// The error that ends the pass once the writes in flight are done: GHL refused a call for
    /// a scope the token lacks, which no other record can get past either.
    pub fatal: Option<GhlError>,
}

/// Where a guest registered, stored on its contact link for the dashboard and the business
/// association. Borrowed from the listing: one `extra` object per written record would cost a
/// JSON map each for the whole pass (≈ 900 bytes a record on an initial sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration<'a> {
    pub location_id: &'a str,
    pub location_name: &'a str,
}

impl Registration<'_> {
    /// The keys merged into the link's `extra`.
    pub fn extra(&self) -> Value {
        serde_json::json!({"location_id": self.location_id, "location_name": self.location_name})
    }
}

/// Registrations by source id.
pub type Registrations<'a> = HashMap<&'a str, Registration<'a>>;

/// Everything apply needs besides the plan.
pub struct ContactApplier<'a> {
    pub ghl: &'a GhlClient,
    pub store: &'a Mutex<Store>,
    pub mapping: &'a MappingConfig,
    pub custom_fields: &'a CustomFields,
    pub input: &'a ContactsInput,
    /// Where each written record registered, merged into its link's `extra`.
    pub registrations: &'a Registrations<'a>,
    pub run_id: i64,
    pub max_concurrency: usize,
    /// Re-send a create of unknown outcome as an upsert (else leave its intent pending).
    pub upsert_lost_creates: bool,
    /// Set by a shutdown request: no new record is started, in-flight ones finish.
    pub stop: &'a AtomicBool,
    /// Ticked once per source record done (written, failed or deferred).
    pub progress: Option<&'a crate::progress::Progress>,
}

enum GroupOutcome {
    Done,
    Failed(String),
    Deferred,
    /// Stopped at the daily-quota reserve: deferred, and no record after it starts.
    QuotaReserve(WritingStopped),
    /// Refused for a scope the token lacks: failed, no record after it starts, and the pass
    /// ends with the error.
    ScopeDenied(GhlError),
}

impl ContactApplier<'_> {
    pub async fn apply(&self, plan: &Plan) -> ApplyResult {
        let mut order: Vec<&str> = Vec::new();
        let mut groups: HashMap<&str, Vec<&Action>> = HashMap::new();
        for a in &plan.actions {
            let sid = a.source_id();
            groups
                .entry(sid)
                .or_insert_with(|| {
                    order.push(sid);
                    Vec::new()
                })
                .push(a);
        }
        let result = Mutex::new(ApplyResult::default());
        let bar = crate::progress::Bar::new(self.progress, "contacts", order.len() as u64);
        let bar = &bar;
        let runs = futures_util::stream::iter(order.into_iter().map(|sid| {
            let actions = groups.remove(sid).unwrap_or_default();
            let result = &result;
            async move {
                let outcome = self.run_group(sid, &actions, result).await;
                bar.inc();
                let mut r = result.lock().expect("apply result lock");
                match outcome {
                    GroupOutcome::Done => {}
                    GroupOutcome::Deferred => {
                        r.deferred.insert(sid.to_string());
                    }
                    GroupOutcome::Failed(msg) => {
                        r.failed.insert(sid.to_string(), msg);
                    }
                    GroupOutcome::QuotaReserve(why) => {
                        r.deferred.insert(sid.to_string());
                        r.stopped.get_or_insert(why);
                    }
                    GroupOutcome::ScopeDenied(e) => {
                        r.failed.insert(sid.to_string(), e.to_string());
                        r.fatal.get_or_insert(e);
                    }
                }
            }
        }))
        .buffer_unordered(self.max_concurrency.max(1));
        runs.collect::<Vec<()>>().await;
        let mut r = result.into_inner().expect("apply result lock");
        // Deferred behind a scope denial: the pass ends with that error, which says why.
        if r.stopped.is_none() && r.fatal.is_none() && !r.deferred.is_empty() {
            r.stopped = Some(WritingStopped::StopRequested);
        }
        r
    }

    async fn run_group(
        &self,
        sid: &str,
        actions: &[&Action],
        result: &Mutex<ApplyResult>,
    ) -> GroupOutcome {
        if self.stop.load(Ordering::SeqCst) {
            return GroupOutcome::Deferred;
        }
        for action in actions {
            match self.execute(action, result).await {
                Ok(()) => {}
                Err(e) => {
                    let halt = match &e {
                        ApplyError::Ghl(g) => halt_writing(g, self.stop),
                        _ => None,
                    };
                    return match (halt, e) {
                        (Some(Halt::Deferred(why)), _) => GroupOutcome::QuotaReserve(why),
                        (Some(Halt::ScopeDenied), ApplyError::Ghl(g)) => {
                            tracing::warn!(source_id = sid, error = %g, "GHL refused a call for a missing scope; no new write starts");
                            GroupOutcome::ScopeDenied(g)
                        }
                        (_, e) => {
                            tracing::warn!(source_id = sid, error = %e, "contact action failed");
                            GroupOutcome::Failed(e.to_string())
                        }
                    };
                }
            }
        }
        GroupOutcome::Done
    }

    fn store<R>(&self, f: impl FnOnce(&Store) -> Result<R, StoreError>) -> Result<R, ApplyError> {
        let guard = self
            .store
            .lock()
            .map_err(|_| ApplyError::Inconsistent("state lock poisoned".into()))?;
        Ok(f(&guard)?)
    }

    fn link_or_new(&self, sid: &str, tid: &str, method: MatchMethod) -> Result<Link, ApplyError> {
        let mut link = match self.store(|s| s.link(Kind::Contact, sid))? {
            Some(mut l) => {
                if l.target_id != tid {
                    // The association was the old contact's: the new one has none yet, and the
                    // businesses step must see that to associate it.
                    if let Some(extra) = l.extra.as_object_mut() {
                        extra.remove("business_id");
                    }
                }
                l.target_id = tid.to_string();
                l
            }
            None => Link::new(Kind::Contact, sid, tid, method),
        };
        if let Some(r) = self.registrations.get(sid) {
            base::merge_extra(&mut link, &r.extra());
        }
        Ok(link)
    }

    fn source_projection(&self, sid: &str) -> Result<&ContactProjection, ApplyError> {
        self.input
            .source
            .get(sid)
            .map(|s| &s.projection)
            .ok_or_else(|| {
                ApplyError::Inconsistent(format!(
                    "plan names source {sid} that is not in the snapshot"
                ))
            })
    }

    fn project(&self, c: &Contact) -> Result<ContactProjection, ApplyError> {
        let t = target_from_contact(c, self.custom_fields).ok_or_else(|| {
            ApplyError::Inconsistent("GHL answered a contact without an id".into())
        })?;
        Ok(target_projection(&t, self.mapping))
    }

    /// The contact as GHL has it now: the write's answer when it carries one, else a GET.
    async fn read_back(
        &self,
        tid: &str,
        answer: Option<Contact>,
    ) -> Result<ContactProjection, ApplyError> {
        let contact = match answer {
            Some(c) => c,
            None => self.ghl.get_contact(tid).await?.ok_or_else(|| {
                ApplyError::Inconsistent(format!("contact {tid} vanished right after a write"))
            })?,
        };
        self.project(&contact)
    }

    /// Writes `fields` (if any) and records the new base.
    async fn write_and_record(
        &self,
        sid: &str,
        tid: &str,
        fields: &FieldChanges,
        method: MatchMethod,
        result: &Mutex<ApplyResult>,
    ) -> Result<(), ApplyError> {
        let target = if fields.is_empty() {
            match self.input.target.get(tid) {
                Some(t) => t.projection.clone(),
                None => self.read_back(tid, None).await?,
            }
        } else {
            let (update, not_writable) = update_body(fields, self.custom_fields);
            if !not_writable.is_empty() {
                result
                    .lock()
                    .expect("apply result lock")
                    .not_writable
                    .insert(sid.to_string(), not_writable);
            }
            let answer = if update.is_empty() {
                None
            } else {
                self.ghl.update_contact(tid, &update).await?
            };
            self.read_back(tid, answer).await?
        };
        let source = self.source_projection(sid)?;
        let mut link = self.link_or_new(sid, tid, method)?;
        base::set_base(
            &mut link,
            (source.hash, &source.fields),
            (target.hash, &target.fields),
        );
        self.store(|s| s.upsert_link(&link))
    }

    async fn execute(
        &self,
        action: &Action,
        result: &Mutex<ApplyResult>,
    ) -> Result<(), ApplyError> {
        match action {
            Action::CreateContact {
                source_id,
                fields,
                tags,
            } => self.create(source_id, fields, tags, result).await,
            Action::LinkExisting {
                source_id,
                target_id,
                method,
                fields,
            } => {
                let method = match method {
                    super::plan::MatchMethod::HotspotId => MatchMethod::HotspotIdField,
                    super::plan::MatchMethod::Email => MatchMethod::Email,
                    super::plan::MatchMethod::Phone => MatchMethod::Phone,
                    super::plan::MatchMethod::MergedRecord => MatchMethod::Email,
                };
                self.write_and_record(source_id, target_id, fields, method, result)
                    .await
            }
            Action::UpdateContact {
                source_id,
                target_id,
                fields,
            } => {
                self.write_and_record(source_id, target_id, fields, MatchMethod::Email, result)
                    .await
            }
            Action::AddTags {
                source_id,
                target_id,
                tags,
            } => {
                let list: Vec<String> = tags.iter().cloned().collect();
                self.ghl.add_tags(target_id, &list).await?;
                self.update_link(source_id, |l| l.owned_tags.extend(tags.iter().cloned()))
            }
            Action::RemoveTags {
                source_id,
                target_id,
                tags,
            } => {
                let list: Vec<String> = tags.iter().cloned().collect();
                self.ghl.remove_tags(target_id, &list).await?;
                self.update_link(source_id, |l| l.owned_tags.retain(|t| !tags.contains(t)))
            }
            Action::ForgetOwnedTags { source_id, tags } => {
                self.update_link(source_id, |l| l.owned_tags.retain(|t| !tags.contains(t)))
            }
            Action::DeleteContact {
                source_id,
                target_id,
            } => {
                self.ghl.delete_contact(target_id).await?;
                self.store(|s| s.delete_link(Kind::Contact, source_id).map(|_| ()))
            }
            Action::TagDeleted {
                source_id,
                target_id,
                tag,
            } => {
                self.ghl
                    .add_tags(target_id, std::slice::from_ref(tag))
                    .await?;
                self.update_link(source_id, |l| {
                    l.owned_tags.insert(tag.clone());
                })
            }
            Action::Tombstone { source_id, .. } => self.store(|s| {
                s.set_link_status(Kind::Contact, source_id, store::LinkStatus::Tombstoned)
                    .map(|_| ())
            }),
            Action::RecordBase {
                source_id,
                target_id,
                source_hash,
                target_hash,
                source_fields,
                target_fields,
            } => {
                let mut link = self.link_or_new(source_id, target_id, MatchMethod::Email)?;
                base::set_base(
                    &mut link,
                    (*source_hash, source_fields),
                    (*target_hash, target_fields),
                );
                self.store(|s| s.upsert_link(&link))
            }
            Action::ForgetLink { source_id, .. } => {
                self.store(|s| s.delete_link(Kind::Contact, source_id).map(|_| ()))
            }
            Action::Park {
                source_id,
                target_id,
                source_hash,
                target_hash,
                reason,
            } => {
                let mark = super::plan::ParkedMark {
                    target_id: target_id.clone(),
                    source_hash: *source_hash,
                    target_hash: *target_hash,
                    reason: reason.clone(),
                };
                let mut link = match self.store(|s| s.link(Kind::Contact, source_id))? {
                    Some(l) => l,
                    None => {
                        // Nothing linked yet: a park-only row, never read as a base.
                        let mut l = Link::new(
                            Kind::Contact,
                            source_id.as_str(),
                            target_id.as_deref().unwrap_or(""),
                            MatchMethod::Email,
                        );
                        l.status = store::LinkStatus::Parked;
                        l
                    }
                };
                base::set_park(&mut link, &mark);
                self.store(|s| s.upsert_link(&link))
            }
            Action::Unpark { source_id } => {
                match self.store(|s| s.link(Kind::Contact, source_id))? {
                    Some(l) if l.status == store::LinkStatus::Parked => {
                        self.store(|s| s.delete_link(Kind::Contact, source_id).map(|_| ()))
                    }
                    Some(mut l) => {
                        base::clear_park(&mut l);
                        self.store(|s| s.upsert_link(&l))
                    }
                    None => Ok(()),
                }
            }
        }
    }

    fn update_link(&self, sid: &str, f: impl FnOnce(&mut Link)) -> Result<(), ApplyError> {
        let Some(mut link) = self.store(|s| s.link(Kind::Contact, sid))? else {
            return Err(ApplyError::Inconsistent(format!(
                "no link for {sid} to record tags on"
            )));
        };
        f(&mut link);
        self.store(|s| s.upsert_link(&link))
    }

    /// A create is journaled first: if the process dies after GHL created the contact but
    /// before the link is stored, the next run finds it again instead of creating it twice.
    ///
    /// A create whose outcome is unknown — an earlier run's intent still pending, or this POST
    /// answered 5xx, timed out or lost its connection — is (re)sent as an upsert keyed by email
    /// or phone instead (`ghl.lost_create_recovery = "upsert"`): GHL matches it against the
    /// contact a lost answer may have created, even on a location that allows duplicates.
    /// Under `"wait"` the intent stays pending for a later run's listing to resolve.
    async fn create(
        &self,
        sid: &str,
        fields: &CanonicalContact,
        tags: &BTreeSet<String>,
        result: &Mutex<ApplyResult>,
    ) -> Result<(), ApplyError> {
        let marker = serde_json::json!({
            "hotspot_id": sid,
            "email": fields.email(),
            "phone": fields.phone(),
        })
        .to_string();
        let earlier: Vec<i64> = self.store(|s| {
            Ok(s.pending_intents()?
                .into_iter()
                .filter(|i| i.kind == Kind::Contact && i.source_id == sid)
                .map(|i| i.id)
                .collect())
        })?;
        let intent = self.store(|s| {
            s.journal_intent(&NewIntent {
                kind: Kind::Contact,
                source_id: sid.to_string(),
                op: "create_contact".into(),
                marker,
                payload_hash: Some(fields.digest()),
                run_id: Some(self.run_id),
            })
        })?;
        let body = create_body(fields, tags, self.custom_fields);
        // Re-sent as an upsert when unsure: needs a key GHL matches on, and the setting.
        let upsertable =
            self.upsert_lost_creates && (fields.email().is_some() || fields.phone().is_some());
        if upsertable && !earlier.is_empty() {
            tracing::info!(
                source_id = sid,
                "an earlier create of this contact has an unknown outcome; upserting"
            );
            return self
                .create_by_upsert(sid, &body, tags, intent, &earlier)
                .await;
        }
        match self.ghl.create_contact(&body, false).await {
            Ok(contact) => {
                let tid = contact.id.clone().ok_or_else(|| {
                    ApplyError::Inconsistent("GHL created a contact without an id".into())
                })?;
                let target = self.project(&contact)?;
                let link = self.created_link(sid, &tid, MatchMethod::Created, tags, &target)?;
                self.store(|s| s.complete_create(intent, &link))
            }
            Err(GhlError::Duplicate { contact_id, .. }) => {
                // GHL already has this person (a search lagging a recent write, or a contact
                // our listing could not see): adopt it rather than fail or duplicate.
                self.store(|s| s.journal_done(intent, &contact_id))?;
                self.adopt(sid, &contact_id, fields, tags, result).await?;
                result
                    .lock()
                    .expect("apply result lock")
                    .adopted_duplicates
                    .insert(sid.to_string(), contact_id);
                Ok(())
            }
            // Refused outright (4xx other than an expired token and rate limit, or a scope the
            // token lacks), or stopped at the quota reserve before it was sent (a create is
            // never re-sent after an unknown outcome, so no earlier attempt went out either):
            // nothing made, so the intent is closed instead of holding the record under
            // `lost_create_recovery = "wait"`.
            Err(e) if e.made_nothing() => {
                self.store(|s| s.journal_abandon(intent))?;
                Err(e.into())
            }
            Err(e) if upsertable && e.class() == Some(ErrorClass::Transient) => {
                tracing::info!(source_id = sid, error = %e, "create outcome unknown; upserting");
                self.create_by_upsert(sid, &body, tags, intent, &[]).await
            }
            // The intent stays pending: whether GHL created the contact is unknown, and the
            // next start resolves it by looking before anything is retried.
            Err(e) => Err(e.into()),
        }
    }

    /// The create as an upsert (matched by email, then phone, under either duplicate setting).
    /// Tags go through the additive tag endpoint, never in the upsert body, so a contact it
    /// matches keeps the tags a CRM user gave it. Completes `intent` and the `earlier` ones.
    async fn create_by_upsert(
        &self,
        sid: &str,
        body: &ContactCreate,
        tags: &BTreeSet<String>,
        intent: i64,
        earlier: &[i64],
    ) -> Result<(), ApplyError> {
        let mut untagged = body.clone();
        untagged.tags = None;
        let answer = self.ghl.upsert_contact(&untagged).await?;
        let tid = answer.contact.and_then(|c| c.id).ok_or_else(|| {
            ApplyError::Inconsistent("GHL answered an upsert without a contact id".into())
        })?;
        if !tags.is_empty() {
            let list: Vec<String> = tags.iter().cloned().collect();
            self.ghl.add_tags(&tid, &list).await?;
        }
        let target = self.read_back(&tid, None).await?;
        let method = if answer.new == Some(false) {
            MatchMethod::JournalRecovered
        } else {
            MatchMethod::Created
        };
        let link = self.created_link(sid, &tid, method, tags, &target)?;
        self.store(|s| {
            s.transaction(|s| {
                for id in earlier {
                    s.journal_done(*id, &tid)?;
                }
                s.complete_create(intent, &link)
            })
        })
    }

    /// The link of a contact this sync created (or re-found after a lost answer): our tags,
    /// and the base from the source projection and GHL's answer.
    fn created_link(
        &self,
        sid: &str,
        tid: &str,
        method: MatchMethod,
        tags: &BTreeSet<String>,
        target: &ContactProjection,
    ) -> Result<Link, ApplyError> {
        let source = self.source_projection(sid)?;
        let mut link = self.link_or_new(sid, tid, method)?;
        link.match_method = method;
        link.created_by_us = true;
        link.owned_tags = tags.clone();
        base::set_base(
            &mut link,
            (source.hash, &source.fields),
            (target.hash, &target.fields),
        );
        Ok(link)
    }

    /// Links an existing contact found by GHL's duplicate check: fills the fields that differ
    /// (never replacing its email or phone, by which others match it) and adds our tags.
    async fn adopt(
        &self,
        sid: &str,
        tid: &str,
        fields: &CanonicalContact,
        tags: &BTreeSet<String>,
        result: &Mutex<ApplyResult>,
    ) -> Result<(), ApplyError> {
        let current = self.read_back(tid, None).await?;
        let mut changes = FieldChanges::new();
        for (f, v) in fields.iter() {
            let identity = matches!(f, Field::Std(StdField::Email) | Field::Std(StdField::Phone));
            let have = current.fields.get(&f);
            if have != Some(v) && !(identity && have.is_some()) {
                changes.insert(f, Some(v.to_string()));
            }
        }
        self.write_and_record(sid, tid, &changes, MatchMethod::DuplicateAdopted, result)
            .await?;
        let missing: Vec<String> = tags
            .iter()
            .filter(|t| !current.tags.contains(*t))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.ghl.add_tags(tid, &missing).await?;
            self.update_link(sid, |l| l.owned_tags.extend(missing))?;
        }
        Ok(())
    }
}

/// A custom field value by id. Every mapped key was resolved at the start of the pass (an
/// unknown key stops it before any write), so the id is known; were it not, the key goes in
/// the `id` slot and GHL refuses the write, which is reported, rather than the sync guessing.
fn custom_input(key: &str, value: Option<&str>, cf: &CustomFields) -> CustomFieldInput {
    CustomFieldInput::by_id(
        cf.id_of(key).unwrap_or(key),
        Value::String(value.unwrap_or_default().to_string()),
    )
}

/// The PUT body of changed fields only. Fields the update DTO does not accept are returned
/// instead of sent (GHL rejects unknown properties with 422).
pub fn update_body(changes: &FieldChanges, cf: &CustomFields) -> (ContactUpdate, Vec<String>) {
    let mut u = ContactUpdate::default();
    let mut not_writable = Vec::new();
    let mut custom = Vec::new();
    for (field, value) in changes {
        let v = Some(value.clone());
        match field {
            Field::Std(StdField::FirstName) => u.first_name = v,
            Field::Std(StdField::LastName) => u.last_name = v,
            Field::Std(StdField::Email) => u.email = v,
            Field::Std(StdField::Phone) => u.phone = v,
            Field::Std(StdField::Address1) => u.address1 = v,
            Field::Std(StdField::City) => u.city = v,
            Field::Std(StdField::State) => u.state = v,
            Field::Std(StdField::PostalCode) => u.postal_code = v,
            Field::Std(StdField::Country) => u.country = v,
            Field::Std(StdField::CompanyName) => not_writable.push(field.name().into_owned()),
            Field::Custom(key) => custom.push(custom_input(key, value.as_deref(), cf)),
        }
    }
    if !custom.is_empty() {
        u.custom_fields = Some(custom);
    }
    (u, not_writable)
}

/// The POST body of a new contact: every mapped field and the generated tags.
pub fn create_body(
    fields: &CanonicalContact,
    tags: &BTreeSet<String>,
    cf: &CustomFields,
) -> ContactCreate {
    let mut c = ContactCreate::default();
    let mut custom = Vec::new();
    for (field, value) in fields.iter() {
        let v = Some(value.to_string());
        match field {
            Field::Std(StdField::FirstName) => c.first_name = v,
            Field::Std(StdField::LastName) => c.last_name = v,
            Field::Std(StdField::Email) => c.email = v,
            Field::Std(StdField::Phone) => c.phone = v,
            Field::Std(StdField::CompanyName) => c.company_name = v,
            Field::Std(StdField::Address1) => c.address1 = v,
            Field::Std(StdField::City) => c.city = v,
            Field::Std(StdField::State) => c.state = v,
            Field::Std(StdField::PostalCode) => c.postal_code = v,
            Field::Std(StdField::Country) => c.country = v,
            Field::Custom(key) => custom.push(custom_input(&key, Some(value), cf)),
        }
    }
    if !custom.is_empty() {
        c.custom_fields = Some(custom);
    }
    if !tags.is_empty() {
        c.tags = Some(tags.iter().cloned().collect());
    }
    c
}
