//! The emulated sub-account: records, id generation, normalisation and the search-lag bookkeeping.
//!
//! Tests play "a CRM user" by editing this directly through `GhlEmulator::with_state`; such edits
//! bypass HTTP, validation and the search lag (they are visible to search at once).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

/// Format used by GHL for contact, note and task timestamps: ISO-8601 UTC with milliseconds.
pub fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A contact as the emulator stores it. `extra` keeps accepted fields the emulator does not
/// interpret (e.g. `gender`, `inboundDndSettings`) so they round-trip.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contact {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Explicit `name`; when absent the output derives it from first and last name.
    pub name: Option<String>,
    pub email: Option<String>,
    /// Stored normalised (E.164-ish, see [`normalize_phone`]).
    pub phone: Option<String>,
    pub company_name: Option<String>,
    pub address1: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub website: Option<String>,
    pub timezone: Option<String>,
    pub source: Option<String>,
    pub assigned_to: Option<String>,
    pub date_of_birth: Option<String>,
    pub contact_type: String,
    pub dnd: bool,
    pub dnd_settings: Option<Value>,
    pub tags: Vec<String>,
    /// `(field id, value)`; the value is whatever `field_value` carried.
    pub custom_fields: Vec<(String, Value)>,
    pub business_id: Option<String>,
    pub date_added: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    pub extra: Map<String, Value>,
}

impl Contact {
    /// New contact with server-managed fields filled in.
    pub fn new(id: String, now: DateTime<Utc>) -> Self {
        Self {
            id,
            contact_type: "lead".into(),
            date_added: now,
            date_updated: now,
            ..Default::default()
        }
    }

    /// Display name as GHL derives it.
    pub fn full_name(&self) -> Option<String> {
        if let Some(n) = &self.name {
            return Some(n.clone());
        }
        let parts: Vec<&str> = [&self.first_name, &self.last_name]
            .into_iter()
            .flatten()
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// Advance `dateUpdated` strictly, so two writes in one millisecond still order.
    pub fn touch(&mut self, now: DateTime<Utc>) {
        let min = self.date_updated + chrono::Duration::milliseconds(1);
        self.date_updated = if now > self.date_updated { now } else { min };
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub id: String,
    pub contact_id: String,
    pub body: String,
    pub user_id: Option<String>,
    pub title: Option<String>,
    pub color: Option<String>,
    pub pinned: bool,
    pub date_added: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub contact_id: String,
    pub title: String,
    pub body: Option<String>,
    pub assigned_to: Option<String>,
    pub due_date: DateTime<Utc>,
    pub completed: bool,
    /// When the emulator created it. Not served (GHL's task schema has no such field): it is
    /// for measuring how long a record took to reach GHL, as contacts' and notes' `date_added`.
    pub date_added: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Business {
    /// 24-hex ObjectId.
    pub id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A calendar event attached to a contact. Times are kept as the wire strings
/// (`"2021-07-16 11:00:00"` in the spec examples).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Appointment {
    pub id: String,
    pub calendar_id: String,
    pub contact_id: String,
    pub title: String,
    pub status: String,
    pub appointment_status: String,
    pub assigned_user_id: Option<String>,
    pub start_time: String,
    pub end_time: String,
    pub notes: Option<String>,
    pub address: Option<String>,
}

/// A location custom field definition (`GET /locations/{id}/customFields`).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomField {
    pub id: String,
    pub name: String,
    /// E.g. `contact.hotspot_customer_id`.
    pub field_key: String,
    /// `TEXT`, `NUMERICAL`, `CHECKBOX`, ...
    pub data_type: String,
}

/// Everything stored in the emulated location.
#[derive(Debug)]
pub struct GhlState {
    pub location_id: String,
    pub location_name: String,
    pub company_id: String,
    pub allow_duplicates: bool,
    pub contacts: BTreeMap<String, Contact>,
    pub notes: BTreeMap<String, Note>,
    pub tasks: BTreeMap<String, Task>,
    /// Tasks deleted through the API, kept for a soft-deleting backend (see
    /// `GhlOptions::deleted_task_rows`); never served as live tasks.
    pub deleted_tasks: BTreeMap<String, Task>,
    pub businesses: BTreeMap<String, Business>,
    pub appointments: Vec<Appointment>,
    pub custom_fields: Vec<CustomField>,
    pub(crate) search_lag: Duration,
    /// Duplicate matching sees what search sees (see `GhlOptions::dedup_lags`).
    pub(crate) dedup_lags: bool,
    /// The location task search without `completed` answers pending tasks only.
    pub(crate) task_search_pending_by_default: bool,
    /// Deleted tasks stay readable, flagged `deleted: true` (search and GET by id).
    pub(crate) deleted_task_rows: bool,
    /// At most this many ids of one bulk business call are associated and listed.
    pub(crate) bulk_business_limit: Option<usize>,
    /// Contact writes take custom field values by `id` only.
    pub(crate) custom_fields_by_id_only: bool,
    /// Contacts whose latest HTTP write is not yet visible to search: id → (visible from,
    /// version search still shows — `None` when search must not see the contact at all).
    pub(crate) lagging: HashMap<String, (Instant, Option<Contact>)>,
    /// How `POST /contacts/search` pages (see `SearchPaging`).
    pub(crate) search_paging: SearchPaging,
    /// The date form a `range` filter takes (see `GhlOptions::date_range_format`).
    pub(crate) date_range_format: DateRangeFormat,
    /// A CRM user's edit ([`GhlState::crm_edit`]) leaves `dateUpdated` alone.
    pub(crate) edits_keep_date_updated: bool,
    /// The last search's ordered matches; dropped whenever contacts may have changed.
    pub(crate) search_cache: Option<super::search_cache::SearchCache>,
    rng: StdRng,
}

/// Readings of `POST /contacts/search` paging that the reference leaves open, and one hostile
/// answer. The default is the emulator's own reading: an exact `total` and a stable default order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPaging {
    /// `total` reported as min(real count, cap) while the pages go on (an Elasticsearch-backed
    /// search can cap its count at its window).
    pub total_cap: Option<u64>,
    /// Without an explicit `sort`, each answer orders the matches anew (no stable default
    /// order), so pages read one after the other skip and repeat contacts.
    pub unstable_default_order: bool,
    /// Hostile: every answer is the same full first page, ending on the same `searchAfter`,
    /// with a `total` of a billion, whatever `page` or `searchAfter` asks for.
    pub stuck: bool,
}

/// The form of a date bound that a `range` filter on `dateAdded`/`dateUpdated` accepts. The
/// reference gives none: an ISO-8601 string (the form GHL prints its dates in) or epoch
/// milliseconds (the form its `searchAfter` cursors carry). The other form is refused with the
/// 422 of a bad filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DateRangeFormat {
    Iso,
    Millis,
    /// Either form (the emulator's own reading).
    #[default]
    Both,
    /// Neither: no `range` filter on these dates is supported (422 whatever the form).
    Neither,
    /// Either form is accepted and then ignored: the answer holds every contact.
    Ignored,
}

impl DateRangeFormat {
    pub(crate) fn accepts(self, v: &Value) -> bool {
        match self {
            DateRangeFormat::Iso => v.is_string(),
            DateRangeFormat::Millis => v.is_number(),
            DateRangeFormat::Both | DateRangeFormat::Ignored => true,
            DateRangeFormat::Neither => false,
        }
    }

    pub(crate) fn described(self) -> &'static str {
        match self {
            DateRangeFormat::Iso => "ISO-8601 dates",
            DateRangeFormat::Millis => "epoch milliseconds",
            DateRangeFormat::Both | DateRangeFormat::Ignored => "ISO dates or epoch milliseconds",
            DateRangeFormat::Neither => "no dates: the range operator is not supported here",
        }
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl GhlState {
    /// A random number from the emulator's seeded generator.
    pub(crate) fn roll(&mut self) -> u64 {
        self.rng.random()
    }

    pub(crate) fn new(location_id: String, allow_duplicates: bool, seed: u64) -> Self {
        Self {
            location_id,
            location_name: "Emulated Sub-Account".into(),
            company_id: "EmuCompany0000000001".into(),
            allow_duplicates,
            contacts: BTreeMap::new(),
            notes: BTreeMap::new(),
            tasks: BTreeMap::new(),
            deleted_tasks: BTreeMap::new(),
            businesses: BTreeMap::new(),
            appointments: Vec::new(),
            custom_fields: Vec::new(),
            search_lag: Duration::ZERO,
            dedup_lags: false,
            task_search_pending_by_default: false,
            deleted_task_rows: false,
            bulk_business_limit: None,
            custom_fields_by_id_only: false,
            lagging: HashMap::new(),
            search_paging: SearchPaging::default(),
            date_range_format: DateRangeFormat::default(),
            edits_keep_date_updated: false,
            search_cache: None,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A fresh 20-character alphanumeric id (contacts, notes, tasks, custom fields, ...).
    pub fn new_id(&mut self) -> String {
        (0..20)
            .map(|_| ALNUM[self.rng.random_range(0..ALNUM.len())] as char)
            .collect()
    }

    /// A fresh 24-hex ObjectId (businesses).
    pub fn new_object_id(&mut self) -> String {
        (0..24)
            .map(|_| char::from_digit(self.rng.random_range(0..16), 16).unwrap_or('0'))
            .collect()
    }

    /// Insert a contact built by a test (its id, if empty, is generated). Returns the id.
    pub fn insert_contact(&mut self, mut c: Contact) -> String {
        if c.id.is_empty() {
            c.id = self.new_id();
        }
        if let Some(p) = c.phone.take() {
            c.phone = normalize_phone(&p).or(Some(p));
        }
        let id = c.id.clone();
        self.contacts.insert(id.clone(), c);
        id
    }

    /// Edit contact `id` as a CRM user does in GHL's UI: `dateUpdated` advances, unless the
    /// location keeps it on such edits (`GhlOptions::edits_keep_date_updated`, an unconfirmed
    /// reading). `None` when there is no such contact.
    pub fn crm_edit<R>(&mut self, id: &str, f: impl FnOnce(&mut Contact) -> R) -> Option<R> {
        let keep = self.edits_keep_date_updated;
        let c = self.contacts.get_mut(id)?;
        let r = f(c);
        if !keep {
            c.touch(Utc::now());
        }
        self.contacts_changed();
        Some(r)
    }

    /// Contacts or how search reads them may have changed: searches match afresh.
    pub(crate) fn contacts_changed(&mut self) {
        self.search_cache = None;
    }

    /// Delete a task as a CRM user does (kept apart for a soft-deleting backend).
    pub fn delete_task(&mut self, id: &str) -> Option<Task> {
        let t = self.tasks.remove(id)?;
        self.deleted_tasks.insert(t.id.clone(), t.clone());
        Some(t)
    }

    /// Delete a contact with its notes and tasks, as the CRM does.
    pub fn delete_contact(&mut self, id: &str) -> Option<Contact> {
        self.notes.retain(|_, n| n.contact_id != id);
        self.tasks.retain(|_, t| t.contact_id != id);
        self.contacts.remove(id)
    }

    /// Custom field by id or key (`contact.xyz`; the `contact.` prefix is optional).
    pub fn custom_field(&self, id_or_key: &str) -> Option<&CustomField> {
        self.custom_fields.iter().find(|f| {
            f.id == id_or_key
                || f.field_key == id_or_key
                || f.field_key.strip_prefix("contact.") == Some(id_or_key)
        })
    }

    /// Add a custom field definition; returns its id.
    pub fn add_custom_field(&mut self, key: &str, name: &str, data_type: &str) -> String {
        let id = self.new_id();
        let field_key = if key.contains('.') {
            key.to_string()
        } else {
            format!("contact.{key}")
        };
        self.custom_fields.push(CustomField {
            id: id.clone(),
            name: name.into(),
            field_key,
            data_type: data_type.into(),
        });
        id
    }

    /// Record that an HTTP write changed contact `id`; call *before* applying the change so the
    /// previous version stays what search sees until the lag elapses.
    pub(crate) fn note_write(&mut self, id: &str) {
        if self.search_lag.is_zero() {
            return;
        }
        let due = Instant::now() + self.search_lag;
        let previous = self.contacts.get(id).cloned();
        self.lagging
            .entry(id.to_string())
            .and_modify(|e| e.0 = due)
            .or_insert((due, previous));
    }

    /// Forget lag entries whose time has come (their latest version becomes searchable).
    pub(crate) fn expire_lag(&mut self) {
        let now = Instant::now();
        self.lagging.retain(|_, (due, _)| *due > now);
    }

    /// Contacts as search sees them (call [`Self::expire_lag`] first): lagging writes are
    /// replaced by the version before them, or hidden if the contact is new.
    pub(crate) fn searchable(&self) -> Vec<&Contact> {
        let mut out: Vec<&Contact> = self
            .contacts
            .values()
            .filter(|c| !self.lagging.contains_key(&c.id))
            .collect();
        out.extend(self.lagging.values().filter_map(|(_, old)| old.as_ref()));
        out
    }
}

/// Normalise a phone number to E.164 the simple way: keep `+` and digits, `00` → `+`,
/// 10 digits → `+1…`, other bare digits get a `+`. `None` when no digits are left.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let digits: String = trimmed.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    if trimmed.starts_with('+') {
        return Some(format!("+{digits}"));
    }
    if let Some(rest) = digits.strip_prefix("00") {
        return Some(format!("+{rest}"));
    }
    if digits.len() == 10 {
        return Some(format!("+1{digits}"));
    }
    Some(format!("+{digits}"))
}

/// Output of `customFields` on a contact.
pub fn custom_fields_json(c: &Contact) -> Value {
    Value::Array(
        c.custom_fields
            .iter()
            .map(|(id, v)| json!({"id": id, "value": v}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(
            normalize_phone("+1 888-888-8888").as_deref(),
            Some("+18888888888")
        );
        assert_eq!(
            normalize_phone("0036 1 234 5678").as_deref(),
            Some("+3612345678")
        );
        assert_eq!(
            normalize_phone("(555) 123-4567").as_deref(),
            Some("+15551234567")
        );
        assert_eq!(normalize_phone("n/a"), None);
    }

    #[test]
    fn ids_have_the_wire_shape() {
        let mut s = GhlState::new("L".into(), false, 1);
        let id = s.new_id();
        assert_eq!(id.len(), 20);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        let b = s.new_object_id();
        assert_eq!(b.len(), 24);
        assert!(b.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
