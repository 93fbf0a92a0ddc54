//! GHL client over the shared HTTP policy: `Authorization: Bearer`, `Version: 2021-07-28`, one
//! token refresh and one retry on a 401.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::AuthError;
use super::token_source::TokenSource;
use super::wire::*;
use crate::decode::{DecodeLog, Listing};
use crate::http::{ErrorClass, HttpError, HttpPolicy, Method, Request, check_base_url};
use crate::listing::{Incomplete, SeenIds, verdict};

/// Search `pageLimit` ceiling.
pub const MAX_PAGE_LIMIT: u32 = 500;
/// `page × pageLimit` may not exceed this; beyond it the search pages by `searchAfter`.
pub const PAGE_WINDOW: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum GhlError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A create refused because the location disallows duplicates; names the existing contact.
    #[error("duplicate contact: {message} (existing contact {contact_id}, matched on {})", matching_field.as_deref().unwrap_or("?"))]
    Duplicate {
        contact_id: String,
        matching_field: Option<String>,
        message: String,
    },
    /// A request the client refuses to send (it would be rejected by the API).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// GHL accepted the token but not for this endpoint's scope: a configuration error that no
    /// token refresh can fix.
    #[error(
        "GHL {method} {path}: the token is not authorized for scope {scope}; grant it (OAuth: `auth ghl url` then `auth ghl exchange --code CODE`; a Private Integration token: add the scope to it in GHL)"
    )]
    ScopeDenied {
        scope: &'static str,
        method: String,
        path: &'static str,
    },
}

impl GhlError {
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            GhlError::Http(h) => h.class(),
            GhlError::Auth(a) => a.class(),
            GhlError::ScopeDenied { .. } => Some(ErrorClass::Auth),
            GhlError::Duplicate { .. } | GhlError::Invalid(_) => Some(ErrorClass::Permanent),
        }
    }

    /// The run must stop writing and defer the rest.
    pub fn is_quota_reserve(&self) -> bool {
        matches!(self, GhlError::Http(HttpError::QuotaReserveReached { .. }))
    }

    /// The token lacks a scope: no later write can do better until it is granted, so the pass
    /// stops starting writes and ends with this error, a configuration error.
    pub fn is_scope_denial(&self) -> bool {
        matches!(self, GhlError::ScopeDenied { .. })
    }

    /// The request made nothing in GHL: refused outright (a 4xx other than an expired token
    /// and the rate limit, or a scope the token lacks), or stopped at the quota reserve before
    /// it was sent. A create that ends so has nothing to look for later.
    pub fn made_nothing(&self) -> bool {
        self.is_quota_reserve()
            || self.is_scope_denial()
            || self.class() == Some(ErrorClass::Permanent)
    }
}

pub type Result<T> = std::result::Result<T, GhlError>;

#[derive(Clone, Debug)]
pub struct GhlClient {
    base: String,
    location_id: String,
    tokens: TokenSource,
    policy: HttpPolicy,
    /// What list items could not be read, for the run report.
    decode: DecodeLog,
    /// The location's custom field definitions as last read, and when (shared by clones: one
    /// client, one location).
    custom_fields: KeptFields,
}

/// Custom field definitions as last read, and when.
type KeptFields = std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, Vec<CustomField>)>>>;

/// Builds one call; the client fills auth and sends it under the policy.
struct Call {
    method: Method,
    path: String,
    template: &'static str,
    query: Vec<(String, String)>,
    body: Option<Value>,
    retry_unsafe: bool,
}

impl Call {
    fn new(method: Method, path: String, template: &'static str) -> Self {
        Call {
            method,
            path,
            template,
            query: Vec::new(),
            body: None,
            retry_unsafe: false,
        }
    }
    fn query(mut self, k: &str, v: impl ToString) -> Self {
        self.query.push((k.to_string(), v.to_string()));
        self
    }
    fn json(mut self, body: &impl Serialize) -> Result<Self> {
        self.body =
            Some(serde_json::to_value(body).map_err(|e| GhlError::Invalid(format!("body: {e}")))?);
        Ok(self)
    }
    fn retry_unsafe(mut self, yes: bool) -> Self {
        self.retry_unsafe = yes;
        self
    }

    /// The scope GHL requires for this call (its Scopes documentation, and the emulator).
    fn scope(&self) -> &'static str {
        let read = self.method == Method::GET;
        match self.template {
            t if t.starts_with("/businesses") => {
                if read {
                    "businesses.readonly"
                } else {
                    "businesses.write"
                }
            }
            "/locations/{id}/tasks/search" => "locations/tasks.readonly",
            "/locations/{id}/customFields" => "locations/customFields.readonly",
            t if t.starts_with("/locations") => "locations.readonly",
            "/contacts/search" => "contacts.readonly",
            _ if read => "contacts.readonly",
            _ => "contacts.write",
        }
    }

    /// `e` is GHL's answer to a token that lacks this call's scope.
    fn scope_denial(&self, e: &crate::http::ApiError) -> Option<GhlError> {
        is_scope_denial(e).then(|| GhlError::ScopeDenied {
            scope: self.scope(),
            method: self.method.to_string(),
            path: self.template,
        })
    }
}

/// A 401 (or 403) whose message mentions a scope: "The token is not authorized for this scope."
/// in GHL's observed answers, whatever the body's shape (a bare `message`, the NestJS
/// `statusCode`/`message`/`error`, a `message` array, OAuth's `insufficient_scope`). The answer
/// to an expired or revoked token never mentions a scope.
fn is_scope_denial(e: &crate::http::ApiError) -> bool {
    matches!(e.status, Some(401 | 403)) && e.message.to_ascii_lowercase().contains("scope")
}

fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl GhlClient {
    pub fn new(
        base_url: &str,
        location_id: &str,
        tokens: TokenSource,
        policy: HttpPolicy,
    ) -> Result<Self> {
        check_base_url(base_url)?;
        Ok(GhlClient {
            base: base_url.trim_end_matches('/').to_string(),
            location_id: location_id.to_string(),
            tokens,
            policy,
            decode: DecodeLog::default(),
            custom_fields: Default::default(),
        })
    }

    pub fn location_id(&self) -> &str {
        &self.location_id
    }

    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    /// Values and records the lists of this client could not read.
    pub fn decode_log(&self) -> &DecodeLog {
        &self.decode
    }

    fn build(&self, call: &Call, token: &SecretString) -> Result<Request> {
        let mut req = Request::new(
            call.method.clone(),
            format!("{}{}", self.base, call.path),
            call.template,
        )
        .header("accept", "application/json")?
        .header("version", API_VERSION)?
        .secret_header(
            "authorization",
            &format!("Bearer {}", token.expose_secret()),
        )?
        .retry_unsafe(call.retry_unsafe);
        req.query = call.query.clone();
        if let Some(b) = &call.body {
            req = req.json(b.clone());
        }
        Ok(req)
    }

    /// Sends with the current token; on a 401, one refresh and one retry. A scope denial is
    /// never refreshed: a new token carries the same scopes.
    async fn send(&self, call: Call) -> Result<crate::http::Response> {
        let token = self.tokens.access_token().await?;
        let answer = match self.policy.send(&self.build(&call, &token)?).await {
            Err(HttpError::Api(e)) if e.status == Some(401) && !is_scope_denial(&e) => {
                match self.tokens.refresh_after_rejection(&token).await? {
                    Some(fresh) => self.policy.send(&self.build(&call, &fresh)?).await,
                    None => Err(HttpError::Api(e)),
                }
            }
            other => other,
        };
        match answer {
            Err(HttpError::Api(e)) => Err(call
                .scope_denial(&e)
                .unwrap_or_else(|| HttpError::Api(e).into())),
            other => Ok(other?),
        }
    }

    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let template = call.template;
        let resp = self.send(call).await?;
        Ok(resp.json(self.policy.api(), template)?)
    }

    // ---- contacts -------------------------------------------------------------------------

    /// `Ok(None)` for a missing or deleted contact (GHL answers 400 "Contact not found").
    pub async fn get_contact(&self, id: &str) -> Result<Option<Contact>> {
        let c = Call::new(
            Method::GET,
            format!("/contacts/{}", seg(id)),
            "/contacts/{id}",
        );
        match self.call::<ContactEnvelope>(c).await {
            Ok(env) => Ok(env.contact),
            Err(GhlError::Http(HttpError::Api(e)))
                if matches!(e.status, Some(400) | Some(404))
                    && e.message.to_ascii_lowercase().contains("not found") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a contact. A duplicate answer becomes [`GhlError::Duplicate`] with the existing
    /// id. `retry_unsafe`: whether a dropped connection may be retried (the caller's journal knows).
    pub async fn create_contact(
        &self,
        fields: &ContactCreate,
        retry_unsafe: bool,
    ) -> Result<Contact> {
        let body = with_location(fields, &self.location_id)?;
        let c = Call::new(Method::POST, "/contacts/".into(), "/contacts/")
            .json(&body)?
            .retry_unsafe(retry_unsafe);
        match self.call::<ContactEnvelope>(c).await {
            Ok(env) => env.contact.ok_or_else(|| missing("/contacts/", "contact")),
            Err(GhlError::Http(HttpError::Api(e))) if e.status == Some(400) => {
                let meta: Option<DuplicateMeta> =
                    e.meta.clone().and_then(|m| serde_json::from_value(m).ok());
                match meta.and_then(|m| m.contact_id.map(|id| (id, m.matching_field))) {
                    Some((contact_id, matching_field)) => Err(GhlError::Duplicate {
                        contact_id,
                        matching_field,
                        message: e.message,
                    }),
                    None => Err(HttpError::Api(e).into()),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn update_contact(
        &self,
        id: &str,
        update: &ContactUpdate,
    ) -> Result<Option<Contact>> {
        let c = Call::new(
            Method::PUT,
            format!("/contacts/{}", seg(id)),
            "/contacts/{id}",
        )
        .json(update)?;
        let r: UpdateContactResponse = self.call(c).await?;
        Ok(r.contact)
    }

    pub async fn delete_contact(&self, id: &str) -> Result<bool> {
        let c = Call::new(
            Method::DELETE,
            format!("/contacts/{}", seg(id)),
            "/contacts/{id}",
        );
        let r: SucceededResponse = self.call(c).await?;
        Ok(r.succeded.unwrap_or(true))
    }

    /// Upsert by the location's duplicate rules; idempotent by nature, so retried freely.
    pub async fn upsert_contact(&self, fields: &ContactCreate) -> Result<UpsertContactResponse> {
        let body = with_location(fields, &self.location_id)?;
        let c = Call::new(Method::POST, "/contacts/upsert".into(), "/contacts/upsert")
            .json(&body)?
            .retry_unsafe(true);
        self.call(c).await
    }

    /// Streams `POST /contacts/search` results page by page; an empty `sort` means oldest
    /// first (see [`ContactSearch`]).
    pub fn search_contacts(
        &self,
        filters: Vec<Filter>,
        sort: Vec<SortSpec>,
        page_limit: u32,
    ) -> ContactSearch {
        ContactSearch {
            client: self.clone(),
            filters,
            sort: if sort.is_empty() { stable_sort() } else { sort },
            page_limit: page_limit.clamp(1, MAX_PAGE_LIMIT),
            page: 0,
            search_after: None,
            received: 0,
            total: None,
            seen: SeenIds::default(),
            since: None,
            latest_update: None,
            done: false,
            failed: false,
        }
    }

    /// Streams the contacts updated at or after `since` (a `dateUpdated` range filter), oldest
    /// first by `dateAdded`. `form` is the date form that worked before, tried first (ISO when
    /// none is known). GHL does not say which form it takes: a first page refused with 400 or
    /// 422 is asked again in the other form, and if that is refused too, without the bound (every
    /// contact). [`ContactSearch::since_filter`] tells what happened; remember its form.
    pub fn search_contacts_updated_since(
        &self,
        since: DateTime<Utc>,
        form: Option<DateForm>,
        page_limit: u32,
    ) -> ContactSearch {
        let first = form.unwrap_or(DateForm::Iso);
        let mut search = self.search_contacts(Vec::new(), Vec::new(), page_limit);
        search.since = Some(Since {
            at: since,
            forms: vec![first, first.other()],
            outcome: SinceFilter::Pending,
        });
        search
    }

    /// The `tags` of the API's answer. Whether GHL answers the contact's full tag set or echoes
    /// the tags sent is unconfirmed (the spec example echoes them, and so does the emulator):
    /// read the contact for its tag set, never this value.
    pub async fn add_tags(&self, contact_id: &str, tags: &[String]) -> Result<Vec<String>> {
        let c = Call::new(
            Method::POST,
            format!("/contacts/{}/tags", seg(contact_id)),
            "/contacts/{id}/tags",
        )
        .json(&TagsBody {
            tags: tags.to_vec(),
        })?
        // Adding a tag twice is harmless.
        .retry_unsafe(true);
        let r: TagsResponse = self.call(c).await?;
        Ok(r.tags)
    }

    /// DELETE with a JSON body. Returns the answer's `tags`, like [`GhlClient::add_tags`].
    pub async fn remove_tags(&self, contact_id: &str, tags: &[String]) -> Result<Vec<String>> {
        let c = Call::new(
            Method::DELETE,
            format!("/contacts/{}/tags", seg(contact_id)),
            "/contacts/{id}/tags",
        )
        .json(&TagsBody {
            tags: tags.to_vec(),
        })?;
        let r: TagsResponse = self.call(c).await?;
        Ok(r.tags)
    }

    // ---- tasks ----------------------------------------------------------------------------

    pub async fn list_tasks(&self, contact_id: &str) -> Result<Vec<Task>> {
        let c = Call::new(
            Method::GET,
            format!("/contacts/{}/tasks", seg(contact_id)),
            "/contacts/{id}/tasks",
        );
        let tasks = self.call::<TasksEnvelope>(c).await?.tasks;
        Ok(self.decode.keep(Listing::Tasks, tasks))
    }

    pub async fn create_task(
        &self,
        contact_id: &str,
        task: &TaskCreate,
        retry_unsafe: bool,
    ) -> Result<Task> {
        let c = Call::new(
            Method::POST,
            format!("/contacts/{}/tasks", seg(contact_id)),
            "/contacts/{id}/tasks",
        )
        .json(task)?
        .retry_unsafe(retry_unsafe);
        let env: TaskEnvelope = self.call(c).await?;
        env.task
            .ok_or_else(|| missing("/contacts/{id}/tasks", "task"))
    }

    pub async fn get_task(&self, contact_id: &str, task_id: &str) -> Result<Task> {
        let c = Call::new(
            Method::GET,
            format!("/contacts/{}/tasks/{}", seg(contact_id), seg(task_id)),
            "/contacts/{id}/tasks/{id}",
        );
        let env: TaskEnvelope = self.call(c).await?;
        env.task
            .ok_or_else(|| missing("/contacts/{id}/tasks/{id}", "task"))
    }

    pub async fn update_task(
        &self,
        contact_id: &str,
        task_id: &str,
        update: &TaskUpdate,
    ) -> Result<Task> {
        let c = Call::new(
            Method::PUT,
            format!("/contacts/{}/tasks/{}", seg(contact_id), seg(task_id)),
            "/contacts/{id}/tasks/{id}",
        )
        .json(update)?;
        let env: TaskEnvelope = self.call(c).await?;
        env.task
            .ok_or_else(|| missing("/contacts/{id}/tasks/{id}", "task"))
    }

    pub async fn complete_task(
        &self,
        contact_id: &str,
        task_id: &str,
        completed: bool,
    ) -> Result<Task> {
        let c = Call::new(
            Method::PUT,
            format!(
                "/contacts/{}/tasks/{}/completed",
                seg(contact_id),
                seg(task_id)
            ),
            "/contacts/{id}/tasks/{id}/completed",
        )
        .json(&serde_json::json!({ "completed": completed }))?;
        let env: TaskEnvelope = self.call(c).await?;
        env.task
            .ok_or_else(|| missing("/contacts/{id}/tasks/{id}/completed", "task"))
    }

    pub async fn delete_task(&self, contact_id: &str, task_id: &str) -> Result<bool> {
        let c = Call::new(
            Method::DELETE,
            format!("/contacts/{}/tasks/{}", seg(contact_id), seg(task_id)),
            "/contacts/{id}/tasks/{id}",
        );
        let r: SucceededResponse = self.call(c).await?;
        Ok(r.succeded.unwrap_or(true))
    }

    /// `POST /locations/{locationId}/tasks/search` (read-only, so retried freely).
    pub async fn search_location_tasks(&self, search: &TaskSearch) -> Result<Vec<Task>> {
        let c = Call::new(
            Method::POST,
            format!("/locations/{}/tasks/search", seg(&self.location_id)),
            "/locations/{id}/tasks/search",
        )
        .json(search)?
        .retry_unsafe(true);
        let tasks = self.call::<TasksEnvelope>(c).await?.tasks;
        Ok(self.decode.keep(Listing::Tasks, tasks))
    }

    // ---- notes ----------------------------------------------------------------------------

    pub async fn list_notes(&self, contact_id: &str) -> Result<Vec<Note>> {
        let c = Call::new(
            Method::GET,
            format!("/contacts/{}/notes", seg(contact_id)),
            "/contacts/{id}/notes",
        );
        let notes = self.call::<NotesEnvelope>(c).await?.notes;
        Ok(self.decode.keep(Listing::Notes, notes))
    }

    pub async fn create_note(
        &self,
        contact_id: &str,
        note: &NoteInput,
        retry_unsafe: bool,
    ) -> Result<Note> {
        if note.body.as_deref().is_none_or(str::is_empty) {
            return Err(GhlError::Invalid("a note needs a body".into()));
        }
        let c = Call::new(
            Method::POST,
            format!("/contacts/{}/notes", seg(contact_id)),
            "/contacts/{id}/notes",
        )
        .json(note)?
        .retry_unsafe(retry_unsafe);
        let env: NoteEnvelope = self.call(c).await?;
        env.note
            .ok_or_else(|| missing("/contacts/{id}/notes", "note"))
    }

    pub async fn get_note(&self, contact_id: &str, note_id: &str) -> Result<Note> {
        let c = Call::new(
            Method::GET,
            format!("/contacts/{}/notes/{}", seg(contact_id), seg(note_id)),
            "/contacts/{id}/notes/{id}",
        );
        let env: NoteEnvelope = self.call(c).await?;
        env.note
            .ok_or_else(|| missing("/contacts/{id}/notes/{id}", "note"))
    }

    pub async fn update_note(
        &self,
        contact_id: &str,
        note_id: &str,
        note: &NoteInput,
    ) -> Result<Note> {
        let c = Call::new(
            Method::PUT,
            format!("/contacts/{}/notes/{}", seg(contact_id), seg(note_id)),
            "/contacts/{id}/notes/{id}",
        )
        .json(note)?;
        let env: NoteEnvelope = self.call(c).await?;
        env.note
            .ok_or_else(|| missing("/contacts/{id}/notes/{id}", "note"))
    }

    pub async fn delete_note(&self, contact_id: &str, note_id: &str) -> Result<bool> {
        let c = Call::new(
            Method::DELETE,
            format!("/contacts/{}/notes/{}", seg(contact_id), seg(note_id)),
            "/contacts/{id}/notes/{id}",
        );
        let r: SucceededResponse = self.call(c).await?;
        Ok(r.succeded.unwrap_or(true))
    }

    // ---- appointments ---------------------------------------------------------------------

    pub async fn contact_appointments(&self, contact_id: &str) -> Result<Vec<Appointment>> {
        let c = Call::new(
            Method::GET,
            format!("/contacts/{}/appointments", seg(contact_id)),
            "/contacts/{id}/appointments",
        );
        let events = self.call::<AppointmentsEnvelope>(c).await?.events;
        Ok(self.decode.keep(Listing::Appointments, events))
    }

    // ---- businesses -----------------------------------------------------------------------

    /// One page of businesses (`limit`, `skip`).
    pub async fn list_businesses(&self, limit: u32, skip: u32) -> Result<Vec<Business>> {
        let c = Call::new(Method::GET, "/businesses/".into(), "/businesses/")
            .query("locationId", &self.location_id)
            .query("limit", limit)
            .query("skip", skip);
        let businesses = self.call::<BusinessesEnvelope>(c).await?.businesses;
        Ok(self.decode.keep(Listing::Businesses, businesses))
    }

    pub async fn get_business(&self, id: &str) -> Result<Business> {
        let c = Call::new(
            Method::GET,
            format!("/businesses/{}", seg(id)),
            "/businesses/{id}",
        );
        let env: BusinessEnvelope = self.call(c).await?;
        env.business
            .ok_or_else(|| missing("/businesses/{id}", "business"))
    }

    pub async fn create_business(
        &self,
        input: &BusinessInput,
        retry_unsafe: bool,
    ) -> Result<Business> {
        if input.name.as_deref().is_none_or(str::is_empty) {
            return Err(GhlError::Invalid("a business needs a name".into()));
        }
        let body = with_location(input, &self.location_id)?;
        let c = Call::new(Method::POST, "/businesses/".into(), "/businesses/")
            .json(&body)?
            .retry_unsafe(retry_unsafe);
        let r: BusinessWriteResponse = self.call(c).await?;
        r.buiseness
            .ok_or_else(|| missing("/businesses/", "buiseness"))
    }

    pub async fn update_business(&self, id: &str, input: &BusinessInput) -> Result<Business> {
        let c = Call::new(
            Method::PUT,
            format!("/businesses/{}", seg(id)),
            "/businesses/{id}",
        )
        .json(input)?;
        let r: BusinessWriteResponse = self.call(c).await?;
        r.buiseness
            .ok_or_else(|| missing("/businesses/{id}", "buiseness"))
    }

    pub async fn delete_business(&self, id: &str) -> Result<bool> {
        let c = Call::new(
            Method::DELETE,
            format!("/businesses/{}", seg(id)),
            "/businesses/{id}",
        );
        let r: SuccessResponse = self.call(c).await?;
        Ok(r.success.unwrap_or(true))
    }

    /// Associates `ids` with `business_id` (`None` removes the association). Idempotent.
    pub async fn bulk_business(
        &self,
        ids: &[String],
        business_id: Option<&str>,
    ) -> Result<Vec<String>> {
        let body = BulkBusinessRequest {
            location_id: self.location_id.clone(),
            ids: ids.to_vec(),
            business_id: business_id.map(str::to_string),
        };
        let c = Call::new(
            Method::POST,
            "/contacts/bulk/business".into(),
            "/contacts/bulk/business",
        )
        .json(&body)?
        .retry_unsafe(true);
        let r: BulkBusinessResponse = self.call(c).await?;
        Ok(r.ids)
    }

    /// One page of the contacts associated with a business; returns (contacts, count).
    pub async fn contacts_by_business(
        &self,
        business_id: &str,
        limit: u32,
        skip: u32,
    ) -> Result<(Vec<Contact>, Option<i64>)> {
        let c = Call::new(
            Method::GET,
            format!("/contacts/business/{}", seg(business_id)),
            "/contacts/business/{id}",
        )
        .query("locationId", &self.location_id)
        .query("limit", limit)
        .query("skip", skip);
        let r: ContactsByBusinessResponse = self.call(c).await?;
        Ok((self.decode.keep(Listing::Contacts, r.contacts), r.count))
    }

    // ---- location -------------------------------------------------------------------------

    pub async fn location_custom_fields(&self) -> Result<Vec<CustomField>> {
        let c = Call::new(
            Method::GET,
            format!("/locations/{}/customFields", seg(&self.location_id)),
            "/locations/{id}/customFields",
        );
        let fields = self.call::<CustomFieldsEnvelope>(c).await?.custom_fields;
        let fields = self.decode.keep(Listing::CustomFields, fields);
        *self.custom_fields.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), fields.clone()));
        Ok(fields)
    }

    /// [`GhlClient::location_custom_fields`], or what it answered less than `max_age` ago: a
    /// pass over a few records (the fast lane's, the webhooks') need not ask again for
    /// definitions that change only when a person edits them, and that every whole pass reads.
    pub async fn location_custom_fields_within(
        &self,
        max_age: std::time::Duration,
    ) -> Result<Vec<CustomField>> {
        let kept = self
            .custom_fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, fields)| fields.clone());
        match kept {
            Some(fields) => Ok(fields),
            None => self.location_custom_fields().await,
        }
    }

    pub async fn get_location(&self) -> Result<GhlLocation> {
        let c = Call::new(
            Method::GET,
            format!("/locations/{}", seg(&self.location_id)),
            "/locations/{id}",
        );
        let env: LocationEnvelope = self.call(c).await?;
        env.location
            .ok_or_else(|| missing("/locations/{id}", "location"))
    }
}

fn missing(path: &str, field: &str) -> GhlError {
    HttpError::decode("ghl", path, format!("missing `{field}`")).into()
}

/// Serializes `fields` and adds `locationId` (create bodies only).
fn with_location(fields: &impl Serialize, location_id: &str) -> Result<Value> {
    let mut v =
        serde_json::to_value(fields).map_err(|e| GhlError::Invalid(format!("body: {e}")))?;
    match v.as_object_mut() {
        Some(o) => {
            o.insert("locationId".into(), Value::String(location_id.to_string()));
            Ok(v)
        }
        None => Err(GhlError::Invalid("body is not an object".into())),
    }
}

/// Streams `POST /contacts/search`: `page` while `page × pageLimit ≤ 10,000`, then `searchAfter`
/// from the last contact of the previous page.
///
/// The listing ends on a short or empty page: `total` is a hint (an index can cap it at its
/// window while the pages go on). A contact seen twice makes the listing incomplete; a page of
/// contacts all seen before, or the same cursor twice, is a search that makes no progress and
/// ends the listing with an error.
#[derive(Debug)]
pub struct ContactSearch {
    client: GhlClient,
    filters: Vec<Filter>,
    sort: Vec<SortSpec>,
    page_limit: u32,
    /// Last page fetched by number (0 before the first).
    page: u32,
    /// The `searchAfter` of the last contact of the previous page.
    search_after: Option<Vec<Value>>,
    received: u64,
    total: Option<u64>,
    seen: SeenIds,
    /// The `dateUpdated` lower bound and the forms still to try, for an incremental listing.
    since: Option<Since>,
    /// The latest `dateUpdated` among the contacts received.
    latest_update: Option<DateTime<Utc>>,
    done: bool,
    failed: bool,
}

#[derive(Debug)]
struct Since {
    at: DateTime<Utc>,
    /// The form sent now first, then the one to try if it is refused.
    forms: Vec<DateForm>,
    outcome: SinceFilter,
}

/// What became of the `dateUpdated` bound of [`GhlClient::search_contacts_updated_since`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SinceFilter {
    /// No bound was asked for: a listing of every contact.
    #[default]
    NotAsked,
    /// Asked, no page answered yet.
    Pending,
    /// GHL took the bound written in this form and answered only contacts updated since.
    Applied(DateForm),
    /// GHL took the bound written in this form but answered contacts updated before it: it
    /// ignores the filter, and the listing holds every contact (only costlier).
    Ignored(DateForm),
    /// GHL refused the bound in both forms; the listing ran without it, over every contact.
    Refused,
}

impl SinceFilter {
    /// The form GHL took, to try first next time.
    pub fn form(self) -> Option<DateForm> {
        match self {
            SinceFilter::Applied(f) | SinceFilter::Ignored(f) => Some(f),
            _ => None,
        }
    }
}

/// The order of a listing when the caller asks for none. GHL does not document its default
/// order, and pages read in an order that changes between requests skip and repeat contacts;
/// oldest first also puts contacts created while the listing is read after it.
fn stable_sort() -> Vec<SortSpec> {
    vec![SortSpec::asc("dateAdded")]
}

const SEARCH_PATH: &str = "/contacts/search";

impl ContactSearch {
    /// True only when every page arrived and nothing in them says a contact may be missing:
    /// the condition for inferring deletions in GHL from a listing.
    pub fn complete(&self) -> bool {
        self.done && self.incomplete().is_empty()
    }

    /// Why the listing is not complete (empty while it is, or while it is still being read).
    pub fn incomplete(&self) -> Vec<Incomplete> {
        verdict(self.failed, &self.seen, self.total)
    }

    pub fn total(&self) -> Option<u64> {
        self.total
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// What became of the `dateUpdated` bound ([`SinceFilter::NotAsked`] for a plain listing).
    pub fn since_filter(&self) -> SinceFilter {
        self.since
            .as_ref()
            .map_or(SinceFilter::NotAsked, |s| s.outcome)
    }

    /// Whether the listing, read to its end, holds every contact of the location: no bound was
    /// asked, or GHL refused or ignored it. Only such a listing, when [`Self::complete`], may
    /// tell that a contact it lacks was deleted.
    pub fn lists_every_contact(&self) -> bool {
        !matches!(
            self.since_filter(),
            SinceFilter::Pending | SinceFilter::Applied(_)
        )
    }

    /// The `dateUpdated` lower bound asked for, if any.
    pub fn since_bound(&self) -> Option<DateTime<Utc>> {
        self.since.as_ref().map(|s| s.at)
    }

    /// The latest `dateUpdated` among the contacts received so far: the high-water mark from
    /// which the next incremental listing starts (less a margin).
    pub fn latest_update(&self) -> Option<DateTime<Utc>> {
        self.latest_update
    }

    /// The filters of the next request: the caller's, and the bound in the form tried now.
    fn request_filters(&self) -> Vec<Filter> {
        let mut filters = self.filters.clone();
        if let Some(s) = &self.since
            && let Some(form) = s.forms.first()
        {
            filters.push(Filter::date_updated_since(s.at, *form));
        }
        filters
    }

    /// A first page refused with 400 or 422 while a bound is sent: the bound's form is the
    /// likely cause. Drops that form; true when the page should be asked again.
    fn refused_bound(&mut self, e: &GhlError) -> bool {
        let refused =
            matches!(e, GhlError::Http(HttpError::Api(a)) if matches!(a.status, Some(400 | 422)));
        let first_page = self.page == 0 && self.search_after.is_none() && self.received == 0;
        let Some(since) = self.since.as_mut() else {
            return false;
        };
        if !refused || !first_page || since.forms.is_empty() {
            return false;
        }
        let form = since.forms.remove(0);
        tracing::warn!(
            api = self.client.policy.api(),
            path = SEARCH_PATH,
            form = form.as_str(),
            "the contact search refused a dateUpdated bound written as {}: {e}",
            form.as_str()
        );
        if since.forms.is_empty() {
            since.outcome = SinceFilter::Refused;
        }
        true
    }

    fn fail(&mut self, e: GhlError) -> GhlError {
        self.done = true;
        self.failed = true;
        e
    }

    fn no_progress(&mut self, why: String) -> GhlError {
        let e = crate::listing::no_progress(self.client.policy.api(), SEARCH_PATH, why);
        self.fail(e.into())
    }

    /// The next page, `Ok(None)` when exhausted.
    pub async fn next_page(&mut self) -> Result<Option<Vec<SearchContact>>> {
        if self.done {
            return Ok(None);
        }
        let next_page = self.page + 1;
        let by_page = next_page as u64 * self.page_limit as u64 <= PAGE_WINDOW;
        let search_after = if by_page {
            None
        } else {
            match &self.search_after {
                Some(sa) => Some(sa.clone()),
                None => {
                    return Err(self.fail(
                        HttpError::decode(
                            self.client.policy.api(),
                            SEARCH_PATH,
                            "the last contact carried no searchAfter cursor",
                        )
                        .into(),
                    ));
                }
            }
        };
        let (req, r) = loop {
            let req = SearchRequest {
                location_id: self.client.location_id.clone(),
                page_limit: self.page_limit,
                page: by_page.then_some(next_page),
                search_after: search_after.clone(),
                filters: self.request_filters(),
                sort: self.sort.clone(),
                query: None,
            };
            let c = Call::new(Method::POST, SEARCH_PATH.into(), SEARCH_PATH)
                .json(&req)?
                .retry_unsafe(true);
            match self.client.call::<SearchResponse>(c).await {
                Ok(r) => break (req, r),
                Err(e) if self.refused_bound(&e) => continue,
                Err(e) => return Err(self.fail(e)),
            }
        };
        if by_page {
            self.page = next_page;
        }
        if let Some(t) = r.total {
            self.total = Some(t.max(0) as u64);
        }
        let n = r.contacts.len() as u64;
        self.received += n;
        let contacts = self.client.decode.keep(Listing::Contacts, r.contacts);
        let dates = contacts.iter().filter_map(|c| c.date_updated);
        self.latest_update = dates.clone().max().max(self.latest_update);
        if let Some(since) = self.since.as_mut()
            && let Some(&form) = since.forms.first()
        {
            let older = dates.clone().any(|d| d < since.at);
            since.outcome = match since.outcome {
                SinceFilter::Ignored(f) => SinceFilter::Ignored(f),
                _ if older => SinceFilter::Ignored(form),
                _ => SinceFilter::Applied(form),
            };
        }
        let progress = self
            .seen
            .add(contacts.iter().filter_map(|c| c.id.as_deref()));
        let cursor = contacts
            .last()
            .map(|c| c.search_after.clone())
            .filter(|sa| !sa.is_empty());
        let at = match &req.page {
            Some(p) => format!("page {p}"),
            None => "the next searchAfter page".to_string(),
        };
        if progress.stalled() {
            return Err(self.no_progress(format!(
                "{at} held only contacts already listed ({n} of them, total said {})",
                self.total.map_or("nothing".to_string(), |t| t.to_string())
            )));
        }
        if cursor.is_some() && cursor == self.search_after {
            return Err(self.no_progress(format!(
                "{at} ended on the same searchAfter cursor as the page before"
            )));
        }
        if progress.repeated > 0 {
            tracing::warn!(
                api = self.client.policy.api(),
                path = SEARCH_PATH,
                repeated = progress.repeated,
                "{at} repeated contacts of earlier pages: the listing is incomplete"
            );
        }
        self.search_after = cursor;
        if n < self.page_limit as u64 {
            self.done = true;
        }
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(contacts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, message: &str) -> crate::http::ApiError {
        crate::http::ApiError {
            api: "GHL",
            class: ErrorClass::Auth,
            method: "GET".into(),
            path: "/contacts/{id}".into(),
            status: Some(status),
            message: message.into(),
            meta: None,
            attempts: 1,
        }
    }

    #[test]
    fn scope_denials_are_told_from_dead_tokens_whatever_the_wording() {
        for m in [
            "The token is not authorized for this scope.",
            // A NestJS `message` array, joined.
            "The token is not authorized for this scope.; Unauthorized",
            "insufficient_scope",
            "Token lacks the required SCOPE contacts.write",
        ] {
            assert!(is_scope_denial(&answer(401, m)), "{m}");
            assert!(is_scope_denial(&answer(403, m)), "{m}");
        }
        for m in [
            "Invalid token: access token is invalid",
            "Invalid JWT",
            "jwt expired",
            "no message",
        ] {
            assert!(!is_scope_denial(&answer(401, m)), "{m}");
        }
        assert!(!is_scope_denial(&answer(
            400,
            "The token is not authorized for this scope."
        )));
    }

    #[test]
    fn each_call_names_the_scope_ghl_documents_for_it() {
        let scope = |m: Method, t: &'static str| Call::new(m, String::new(), t).scope();
        assert_eq!(scope(Method::POST, "/contacts/search"), "contacts.readonly");
        assert_eq!(scope(Method::GET, "/contacts/{id}"), "contacts.readonly");
        assert_eq!(scope(Method::POST, "/contacts/"), "contacts.write");
        assert_eq!(
            scope(Method::POST, "/contacts/{id}/notes"),
            "contacts.write"
        );
        assert_eq!(scope(Method::GET, "/businesses/"), "businesses.readonly");
        assert_eq!(scope(Method::PUT, "/businesses/{id}"), "businesses.write");
        assert_eq!(
            scope(Method::POST, "/locations/{id}/tasks/search"),
            "locations/tasks.readonly"
        );
        assert_eq!(
            scope(Method::GET, "/locations/{id}/customFields"),
            "locations/customFields.readonly"
        );
        assert_eq!(scope(Method::GET, "/locations/{id}"), "locations.readonly");
    }
}
