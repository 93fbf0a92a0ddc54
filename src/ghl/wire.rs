//! GHL (LeadConnector v2, `Version: 2021-07-28`) wire types (reference §3–§9).
//!
//! Responses: every field optional, nulls tolerated, unknown fields ignored, wire typos kept
//! (`succeded`, `buiseness`). Requests: only properties the API accepts, `None` never sent —
//! the server is strictly whitelisting (422 `property X should not exist`), so e.g. no request
//! type used on a contact PUT, a note or a tag call has a `locationId` field at all, and the
//! contact update type has no `tags` (a PUT would replace every tag).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decode::{Item, Record};
use crate::hotspot::wire::lenient;

/// The `Version` header every GHL v2 request carries.
pub const API_VERSION: &str = "2021-07-28";

/// Output form of a custom field value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomFieldValue {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// String, number, array or object depending on the field type.
    pub value: Value,
}

/// Input form of a custom field value: `{id|key, field_value}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomFieldInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub field_value: Value,
}

impl CustomFieldInput {
    pub fn by_id(id: &str, value: impl Into<Value>) -> Self {
        CustomFieldInput {
            id: Some(id.to_string()),
            key: None,
            field_value: value.into(),
        }
    }

    /// `key` like `contact.hotspot_customer_id`.
    pub fn by_key(key: &str, value: impl Into<Value>) -> Self {
        CustomFieldInput {
            id: None,
            key: Some(key.to_string()),
            field_value: value.into(),
        }
    }
}

/// A contact as GET `/contacts/{id}` returns it. The create answer (a slightly different shape:
/// no `name`/`timezone`, plus `deleted` and others) and the by-business list decode into it too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Contact {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub location_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub first_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub last_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub email: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub phone: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub company_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address1: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub city: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub state: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub postal_code: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub country: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub website: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub timezone: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub source: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient::opt_string")]
    pub contact_type: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub assigned_to: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub dnd: Option<bool>,
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub custom_fields: Vec<CustomFieldValue>,
    /// Kept as text: the API mixes `YYYY-MM-DD` and ISO here.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub date_of_birth: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub date_added: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub date_updated: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub business_id: Option<String>,
    /// Present on the create answer only.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub deleted: Option<bool>,
}

/// A contact as POST `/contacts/search` returns it: `address` (not `address1`), and the
/// `searchAfter` cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SearchContact {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub location_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub first_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub last_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub email: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub phone: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub company_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub city: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub state: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub postal_code: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub country: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub website: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub source: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient::opt_string")]
    pub contact_type: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub dnd: Option<bool>,
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub custom_fields: Vec<CustomFieldValue>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub date_of_birth: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub date_added: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub date_updated: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub business_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub business_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub assigned_to: Option<String>,
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub search_after: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ContactEnvelope {
    pub contact: Option<Contact>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UpdateContactResponse {
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub succeded: Option<bool>,
    pub contact: Option<Contact>,
}

/// `{succeded: true}` (delete contact/task/note; the typo is the API's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SucceededResponse {
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub succeded: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UpsertContactResponse {
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub new: Option<bool>,
    pub contact: Option<Contact>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub trace_id: Option<String>,
}

/// The `meta` of the 400 duplicate answer to a contact create.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DuplicateMeta {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub contact_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub contact_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub matching_field: Option<String>,
}

/// Fields of a contact create or upsert (the client adds `locationId`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactCreate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnd: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    /// On create only: the initial tag set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Vec<CustomFieldInput>>,
}

/// Body of PUT `/contacts/{id}`: no `locationId`, `companyName`, `gender` (not in the DTO) and no
/// `tags` (a PUT replaces all tags). `Some(None)` sends `null`, which clears the field.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address1: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnd: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Vec<CustomFieldInput>>,
}

impl ContactUpdate {
    /// True when nothing would be sent (callers skip the call).
    pub fn is_empty(&self) -> bool {
        self == &ContactUpdate::default()
    }
}

/// POST `/contacts/search` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    pub location_id: String,
    pub page_limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_after: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sort: Vec<SortSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// A search filter: a condition or a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Filter {
    Condition {
        field: String,
        operator: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
    },
    Group {
        group: String,
        filters: Vec<Filter>,
    },
}

impl Filter {
    pub fn eq(field: &str, value: impl Into<Value>) -> Self {
        Filter::Condition {
            field: field.to_string(),
            operator: "eq".into(),
            value: Some(value.into()),
        }
    }

    pub fn email_eq(email: &str) -> Self {
        Filter::eq("email", email)
    }

    /// `phone` with country code (E.164).
    pub fn phone_eq(phone: &str) -> Self {
        Filter::eq("phone", phone)
    }

    /// `customFields.<fieldId>` equals `value`.
    pub fn custom_field_eq(field_id: &str, value: &str) -> Self {
        Filter::eq(&format!("customFields.{field_id}"), value)
    }

    /// `dateUpdated` within `[gte, lte]` (either side open).
    pub fn date_updated_range(gte: Option<DateTime<Utc>>, lte: Option<DateTime<Utc>>) -> Self {
        let mut range = serde_json::Map::new();
        if let Some(g) = gte {
            range.insert("gte".into(), DateForm::Iso.write(g));
        }
        if let Some(l) = lte {
            range.insert("lte".into(), DateForm::Iso.write(l));
        }
        Filter::Condition {
            field: "dateUpdated".into(),
            operator: "range".into(),
            value: Some(Value::Object(range)),
        }
    }

    /// `dateUpdated ≥ since`, the bound written in `form`.
    pub fn date_updated_since(since: DateTime<Utc>, form: DateForm) -> Self {
        Filter::Condition {
            field: "dateUpdated".into(),
            operator: "range".into(),
            value: Some(serde_json::json!({ "gte": form.write(since) })),
        }
    }

    pub fn any_of(filters: Vec<Filter>) -> Self {
        Filter::Group {
            group: "OR".into(),
            filters,
        }
    }
}

/// How a date bound is written in a search `range` filter. The reference does not say; GHL
/// prints dates as ISO-8601 and its `searchAfter` cursors carry epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateForm {
    Iso,
    Millis,
}

impl DateForm {
    /// A date range bound in this form.
    pub fn write(self, d: DateTime<Utc>) -> Value {
        match self {
            DateForm::Iso => Value::String(d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            DateForm::Millis => Value::from(d.timestamp_millis()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DateForm::Iso => "iso",
            DateForm::Millis => "millis",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "iso" => Some(DateForm::Iso),
            "millis" => Some(DateForm::Millis),
            _ => None,
        }
    }

    pub fn other(self) -> Self {
        match self {
            DateForm::Iso => DateForm::Millis,
            DateForm::Millis => DateForm::Iso,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SortSpec {
    pub field: String,
    /// "asc" or "desc".
    pub direction: String,
}

impl SortSpec {
    pub fn asc(field: &str) -> Self {
        SortSpec {
            field: field.into(),
            direction: "asc".into(),
        }
    }
    pub fn desc(field: &str) -> Self {
        SortSpec {
            field: field.into(),
            direction: "desc".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SearchResponse {
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub contacts: Vec<Item<SearchContact>>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub total: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ContactsByBusinessResponse {
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub contacts: Vec<Item<Contact>>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub count: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagsBody {
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TagsResponse {
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub tags: Vec<String>,
}

/// Decoded through [`TaskWire`]: the location task search answers `_id`, and may carry `id`
/// beside it (the emulator sends both), which a serde `alias` rejects as a duplicate field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", from = "TaskWire")]
pub struct Task {
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub body: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub assigned_to: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub due_date: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub completed: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub contact_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub date_added: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub date_updated: Option<DateTime<Utc>>,
    /// A soft-deleted task may still be served, flagged (the spec is silent on task rows; its
    /// recurring tasks carry this flag): such a task is deleted, not present.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub deleted: Option<bool>,
}

impl Task {
    /// Whether GHL flags this row as deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted == Some(true)
    }
}

/// The wire form of [`Task`]: `id` and `_id` apart, so an answer with both decodes.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TaskWire {
    #[serde(deserialize_with = "lenient::opt_string")]
    id: Option<String>,
    #[serde(rename = "_id", deserialize_with = "lenient::opt_string")]
    underscore_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    title: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    body: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    assigned_to: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    due_date: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    completed: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_string")]
    contact_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    date_added: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    date_updated: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    deleted: Option<bool>,
}

impl From<TaskWire> for Task {
    fn from(w: TaskWire) -> Self {
        Task {
            id: w.id.or(w.underscore_id),
            title: w.title,
            body: w.body,
            assigned_to: w.assigned_to,
            due_date: w.due_date,
            completed: w.completed,
            contact_id: w.contact_id,
            date_added: w.date_added,
            date_updated: w.date_updated,
            deleted: w.deleted,
        }
    }
}

/// POST `/contacts/{id}/tasks`: `title`, `dueDate`, `completed` required.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCreate {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Sent without milliseconds (`2021-07-08T02:30:00Z`): some servers reject `.000Z`.
    #[serde(serialize_with = "ser_datetime_secs")]
    pub due_date: DateTime<Utc>,
    pub completed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// PUT `/contacts/{id}/tasks/{taskId}`: all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_datetime_secs"
    )]
    pub due_date: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

fn ser_datetime_secs<S: serde::Serializer>(d: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn ser_opt_datetime_secs<S: serde::Serializer>(
    d: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_datetime_secs(d, s),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TaskEnvelope {
    pub task: Option<Task>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TasksEnvelope {
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub tasks: Vec<Item<Task>>,
}

/// POST `/locations/{locationId}/tasks/search` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSearch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Note {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub body: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub date_added: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub contact_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub color: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub pinned: Option<bool>,
}

/// POST/PUT `/contacts/{id}/notes[/{noteId}]` body — never a `locationId`. On create `body` is
/// required; the client checks it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NoteEnvelope {
    pub note: Option<Note>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NotesEnvelope {
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub notes: Vec<Item<Note>>,
}

/// An event of GET `/contacts/{id}/appointments`; times may be `YYYY-MM-DD HH:MM:SS` (taken
/// as UTC) or ISO with offset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Appointment {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub calendar_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub assigned_user_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub notes: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub location_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub contact_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub appointment_status: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub date_added: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub date_updated: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AppointmentsEnvelope {
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub events: Vec<Item<Appointment>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Business {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub location_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub phone: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub email: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub website: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub city: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub state: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub postal_code: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub country: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub description: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Business create/update fields (the client adds `locationId` on create only).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BusinessInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `{success, buiseness}` (the typo is the API's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BusinessWriteResponse {
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub success: Option<bool>,
    pub buiseness: Option<Business>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BusinessEnvelope {
    pub business: Option<Business>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BusinessesEnvelope {
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub businesses: Vec<Item<Business>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SuccessResponse {
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub success: Option<bool>,
}

/// POST `/contacts/bulk/business`. `businessId: null` removes the association, so it is always
/// sent (never skipped).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkBusinessRequest {
    pub location_id: String,
    pub ids: Vec<String>,
    pub business_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BulkBusinessResponse {
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub success: Option<bool>,
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub ids: Vec<String>,
}

/// A location custom field definition (to resolve `contact.hotspot_customer_id` to its id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CustomField {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub field_key: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub data_type: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub model: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub location_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CustomFieldsEnvelope {
    #[serde(deserialize_with = "lenient::vec_or_null")]
    pub custom_fields: Vec<Item<CustomField>>,
}

/// GET `/locations/{id}` (the fields the product uses).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GhlLocation {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub company_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub timezone: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub email: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub phone: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LocationEnvelope {
    pub location: Option<GhlLocation>,
}

/// 200 answer of POST `/oauth/token`. Secrets are moved into `SecretString` at once by the
/// token source; this type is never logged (its Debug hides them).
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub token_type: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub expires_in: Option<i64>,
    pub refresh_token: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub scope: Option<String>,
    #[serde(rename = "userType", deserialize_with = "lenient::opt_string")]
    pub user_type: Option<String>,
    #[serde(rename = "locationId", deserialize_with = "lenient::opt_string")]
    pub location_id: Option<String>,
    #[serde(rename = "companyId", deserialize_with = "lenient::opt_string")]
    pub company_id: Option<String>,
    #[serde(rename = "userId", deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[REDACTED]")
            .field("refresh_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("user_type", &self.user_type)
            .field("location_id", &self.location_id)
            .finish()
    }
}

/// The id is what makes a listed record usable (see [`crate::decode`]).
macro_rules! record_by_id {
    ($($t:ty),*) => {$(
        impl Record for $t {
            fn record_id(&self) -> Option<String> {
                self.id.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
            }
        }
    )*};
}
record_by_id!(
    Contact,
    SearchContact,
    Task,
    Note,
    Appointment,
    Business,
    CustomField
);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn get_contact_shape() {
        let env: ContactEnvelope = serde_json::from_value(json!({"contact": {
            "id": "seD4PfOuKoVMLkEZqohJ", "name": "rubika deo", "locationId": "ve9EPM428h8vShlRW1KT",
            "firstName": "rubika", "lastName": "Deo", "email": "rubika@deos.com", "emailLowerCase": "rubika@deos.com",
            "timezone": null, "companyName": "DGS VolMAX", "phone": "+18832327657", "dnd": true,
            "dndSettings": {"Call": {"status": "active"}}, "type": "read", "source": "public api",
            "assignedTo": "y0BeYjuRIlDwsDcOHOJo", "address1": "3535 1st St N", "city": "ruDolomitebika",
            "state": "AL", "country": "US", "postalCode": "35061", "website": "https://www.tesla.com",
            "tags": ["nisi sint commodo amet", "consequat"], "dateOfBirth": "1990-09-25",
            "dateAdded": "2021-07-02T05:18:26.704Z", "dateUpdated": "2021-07-02T05:18:26.704Z",
            "attachments": "", "ssn": null, "customFields": [{"id": "MgobCB14YMVKuE4Ka8p1", "value": "name"}],
            "businessId": "641c094001436dbc2081e642", "attributionSource": {"url": "x"}, "followers": null
        }}))
        .unwrap();
        let c = env.contact.unwrap();
        assert_eq!(c.address1.as_deref(), Some("3535 1st St N"));
        assert_eq!(c.contact_type.as_deref(), Some("read"));
        assert_eq!(c.timezone, None);
        assert_eq!(c.custom_fields[0].value, json!("name"));
        assert_eq!(
            c.date_updated,
            Some(
                Utc.with_ymd_and_hms(2021, 7, 2, 5, 18, 26).unwrap()
                    + chrono::Duration::milliseconds(704)
            )
        );
    }

    #[test]
    fn create_update_upsert_delete_shapes() {
        let created: ContactEnvelope = serde_json::from_value(json!({"contact": {
            "id": "seD4PfOuKoVMLkEZqohJ", "dateOfBirth": "1990-09-25T00:00:00.000Z", "deleted": false,
            "offers": [], "products": [], "tags": null, "customFields": null, "birthMonth": 9}}))
        .unwrap();
        let c = created.contact.unwrap();
        assert_eq!(c.deleted, Some(false));
        assert!(c.tags.is_empty());
        let upd: UpdateContactResponse =
            serde_json::from_value(json!({"succeded": true, "contact": {"id": "x"}})).unwrap();
        assert_eq!(upd.succeded, Some(true));
        let del: SucceededResponse = serde_json::from_value(json!({"succeded": true})).unwrap();
        assert_eq!(del.succeded, Some(true));
        let ups: UpsertContactResponse = serde_json::from_value(
            json!({"new": true, "contact": {"id": "abc"}, "traceId": "t-1"}),
        )
        .unwrap();
        assert_eq!(ups.new, Some(true));
        assert_eq!(ups.trace_id.as_deref(), Some("t-1"));
        let dup: DuplicateMeta = serde_json::from_value(
            json!({"contactId": "aWbX", "contactName": "A B", "matchingField": "email"}),
        )
        .unwrap();
        assert_eq!(dup.contact_id.as_deref(), Some("aWbX"));
    }

    #[test]
    fn search_shape_uses_address_and_search_after() {
        let r: SearchResponse = serde_json::from_value(json!({"contacts": [{
            "id": "102goXVW3lIExEQPOnd3", "address": "Main 1", "phoneLabel": "mobile",
            "dateUpdated": "2024-01-01T00:00:00.000Z", "searchAfter": [1234, "102goXVW3lIExEQPOnd3"],
            "opportunities": [], "additionalEmails": [], "dateOfBirth": "1990-01-01"}], "total": 1}))
        .unwrap();
        assert_eq!(r.total, Some(1));
        assert_eq!(
            r.contacts[0].record().unwrap().address.as_deref(),
            Some("Main 1")
        );
        assert_eq!(r.contacts[0].record().unwrap().search_after.len(), 2);
    }

    #[test]
    fn request_dtos_never_carry_rejected_properties() {
        let upd = ContactUpdate {
            first_name: Some(Some("Ann".into())),
            phone: Some(None),
            custom_fields: Some(vec![CustomFieldInput::by_key(
                "contact.hotspot_customer_id",
                "59",
            )]),
            ..Default::default()
        };
        let v = serde_json::to_value(&upd).unwrap();
        assert_eq!(
            v,
            json!({"firstName": "Ann", "phone": null,
                   "customFields": [{"key": "contact.hotspot_customer_id", "field_value": "59"}]})
        );
        assert!(ContactUpdate::default().is_empty());
        let note = serde_json::to_value(NoteInput {
            body: Some("hi".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(note, json!({"body": "hi"}));
        let task = serde_json::to_value(TaskCreate {
            title: "Call".into(),
            body: None,
            due_date: Utc.with_ymd_and_hms(2021, 7, 8, 2, 30, 0).unwrap(),
            completed: false,
            assigned_to: None,
        })
        .unwrap();
        assert_eq!(
            task,
            json!({"title": "Call", "dueDate": "2021-07-08T02:30:00Z", "completed": false})
        );
        let bulk = serde_json::to_value(BulkBusinessRequest {
            location_id: "L".into(),
            ids: vec!["a".into()],
            business_id: None,
        })
        .unwrap();
        assert_eq!(
            bulk,
            json!({"locationId": "L", "ids": ["a"], "businessId": null})
        );
        let f = serde_json::to_value(Filter::date_updated_range(
            Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()),
            None,
        ))
        .unwrap();
        assert_eq!(
            f,
            json!({"field": "dateUpdated", "operator": "range", "value": {"gte": "2024-01-01T00:00:00.000Z"}})
        );
    }

    #[test]
    fn a_listed_record_with_a_bad_value_is_read_and_a_null_one_skipped() {
        use crate::decode::{DecodeLog, Listing};
        let env: TasksEnvelope = serde_json::from_str(
            r#"{"tasks":[{"_id":"t1","title":"Call","dueDate":"0000-00-00 00:00:00","completed":"maybe"},
                         null,
                         {"id":"t3","dueDate":"2026-01-02T03:04:05Z"}]}"#,
        )
        .unwrap();
        let log = DecodeLog::default();
        let tasks = log.keep(Listing::Tasks, env.tasks);
        assert_eq!(tasks.len(), 3, "the page keeps its length");
        assert_eq!(tasks[0].id.as_deref(), Some("t1"));
        assert_eq!(tasks[0].title.as_deref(), Some("Call"));
        assert_eq!((tasks[0].due_date, tasks[0].completed), (None, None));
        assert_eq!(tasks[1].id, None);
        assert!(tasks[2].due_date.is_some());
        let r = log.drain();
        assert_eq!(r.unreadable["tasks.dueDate"].ids, vec!["t1".to_string()]);
        assert_eq!(
            r.unreadable["tasks.completed"].sample,
            "text of 5 characters"
        );
        assert_eq!(r.skipped.len(), 1);
        let bad: SearchResponse = serde_json::from_str(
            r#"{"contacts":[{"id":"c1","dateUpdated":"not a date","email":"a@b.c"}],"total":1}"#,
        )
        .unwrap();
        let contacts = log.keep(Listing::Contacts, bad.contacts);
        assert_eq!(contacts[0].email.as_deref(), Some("a@b.c"));
        assert_eq!(
            log.drain().unreadable["contacts.dateUpdated"].sample,
            "not a date"
        );
    }

    #[test]
    fn tasks_notes_appointments_businesses() {
        let t: TaskEnvelope = serde_json::from_value(json!({"task": {"id": "t1", "title": "x",
            "dueDate": "2021-07-08T02:30:00.000Z", "completed": false, "contactId": "c"}}))
        .unwrap();
        assert_eq!(t.task.unwrap().completed, Some(false));
        let s: TasksEnvelope =
            serde_json::from_value(json!({"tasks": [{"_id": "t9", "completed": true}]})).unwrap();
        assert_eq!(s.tasks[0].record().unwrap().id.as_deref(), Some("t9"));
        // Search items may carry both ids (the emulator sends both); `id` wins.
        let both: TasksEnvelope = serde_json::from_value(
            json!({"tasks": [{"id": "t1", "_id": "t1", "title": "x", "completed": false}]}),
        )
        .unwrap();
        assert_eq!(both.tasks[0].record().unwrap().id.as_deref(), Some("t1"));
        let n: NotesEnvelope = serde_json::from_value(json!({"notes": [{"id": "n", "body": "b",
            "userId": "u", "dateAdded": "2021-07-08T12:02:11.285Z", "contactId": "c"}]}))
        .unwrap();
        assert_eq!(n.notes[0].record().unwrap().pinned, None);
        let a: AppointmentsEnvelope = serde_json::from_value(json!({"events": [
            {"id": "e1", "startTime": "2021-07-16 11:00:00", "endTime": "2023-09-25T16:00:00+05:30",
             "appointmentStatus": "confirmed", "users": []}], "traceId": "x"}))
        .unwrap();
        assert_eq!(
            a.events[0].record().unwrap().start_time,
            Some(Utc.with_ymd_and_hms(2021, 7, 16, 11, 0, 0).unwrap())
        );
        assert_eq!(
            a.events[0].record().unwrap().end_time,
            Some(Utc.with_ymd_and_hms(2023, 9, 25, 10, 30, 0).unwrap())
        );
        let b: BusinessWriteResponse = serde_json::from_value(json!({"success": true,
            "buiseness": {"id": "63771dcac1116f0e21de8e12", "name": "Cafe", "locationId": "L",
            "createdBy": {}, "createdAt": "2021-07-02T05:18:26.704Z"}}))
        .unwrap();
        assert_eq!(b.buiseness.unwrap().name.as_deref(), Some("Cafe"));
        let cf: CustomFieldsEnvelope = serde_json::from_value(json!({"customFields": [
            {"id": "3sv6", "name": "pincode", "fieldKey": "contact.pincode", "dataType": "TEXT",
             "position": 0, "picklistOptions": ["a"], "model": "contact"}]}))
        .unwrap();
        assert_eq!(
            cf.custom_fields[0].record().unwrap().field_key.as_deref(),
            Some("contact.pincode")
        );
        let tok: TokenResponse = serde_json::from_value(json!({"access_token": "AT", "token_type": "Bearer",
            "expires_in": 86399, "refresh_token": "RT", "scope": "contacts.readonly", "userType": "Location",
            "locationId": "L", "companyId": "C", "approvedLocations": ["L"], "userId": "U", "isBulkInstallation": false}))
        .unwrap();
        assert_eq!(tok.expires_in, Some(86399));
        let dbg = format!("{tok:?}");
        assert!(!dbg.contains("AT\"") && !dbg.contains("RT\""), "{dbg}");
    }
}
