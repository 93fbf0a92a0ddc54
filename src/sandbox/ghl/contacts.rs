//! Contacts: CRUD, upsert, tags, business association, and the three output shapes
//! (GET, create, search/list).

use axum::http::StatusCode;
use chrono::{NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::state::{Contact, GhlState, custom_fields_json, iso, normalize_phone};
use super::validate::{ApiError, ApiResult, Dto, Ty, check, check_query, qget, s};
use super::{Ctx, same_location};

const READ: &str = "contacts.readonly";
const WRITE: &str = "contacts.write";

/// Fields shared by create, update and upsert (types per the spec's DTOs).
macro_rules! contact_fields {
    ($($extra:expr),* $(,)?) => {
        &[
            ("firstName", Ty::StrNull),
            ("lastName", Ty::StrNull),
            ("name", Ty::StrNull),
            ("email", Ty::StrNull),
            ("phone", Ty::StrNull),
            ("address1", Ty::StrNull),
            ("city", Ty::StrNull),
            ("state", Ty::StrNull),
            ("postalCode", Ty::Str),
            ("website", Ty::StrNull),
            ("timezone", Ty::StrNull),
            ("dnd", Ty::Bool),
            ("dndSettings", Ty::Object),
            ("inboundDndSettings", Ty::Object),
            ("tags", Ty::StrArray),
            ("customFields", Ty::CustomFields),
            ("dateOfBirth", Ty::Any),
            ("country", Ty::Str),
            $($extra),*
        ]
    };
}

const CREATE: Dto = Dto {
    fields: contact_fields!(
        ("locationId", Ty::Str),
        ("gender", Ty::Str),
        ("source", Ty::Str),
        ("companyName", Ty::StrNull),
        ("assignedTo", Ty::Str),
    ),
    required: &["locationId"],
};

/// `UpdateContactDto`: no `locationId`, `companyName` or `gender` (the spec omits them, so a
/// whitelisting server rejects them).
const UPDATE: Dto = Dto {
    fields: contact_fields!(("source", Ty::StrNull), ("assignedTo", Ty::StrNull)),
    required: &[],
};

const UPSERT: Dto = Dto {
    fields: contact_fields!(
        ("locationId", Ty::Str),
        ("gender", Ty::Str),
        ("source", Ty::Str),
        ("companyName", Ty::StrNull),
        ("assignedTo", Ty::Str),
        ("createNewIfDuplicateAllowed", Ty::Bool),
    ),
    required: &["locationId"],
};

const TAGS: Dto = Dto {
    fields: &[("tags", Ty::StrArray)],
    required: &["tags"],
};

const BULK_BUSINESS: Dto = Dto {
    fields: &[
        ("locationId", Ty::Str),
        ("ids", Ty::StrArray),
        ("businessId", Ty::StrNull),
    ],
    required: &["locationId", "ids"],
};

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::bad_request(format!("Contact not found for id:{id}"))
}

/// The message GHL gives for a bad contact id on sub-resources (tags, notes, tasks).
pub(crate) fn parent_not_found(id: &str) -> ApiError {
    ApiError::bad_request(format!("Contact with id {id} not found"))
}

fn put(m: &mut Map<String, Value>, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(k.into(), Value::String(v.clone()));
    }
}

/// `GET /contacts/{id}` shape (`GetContectByIdSchema`). Absent fields are omitted, not null.
pub(crate) fn get_shape(c: &Contact, loc: &str) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(c.id));
    m.insert("locationId".into(), json!(loc));
    put(&mut m, "name", &c.full_name());
    put(&mut m, "firstName", &c.first_name);
    put(&mut m, "lastName", &c.last_name);
    put(
        &mut m,
        "firstNameLowerCase",
        &c.first_name.as_ref().map(|s| s.to_lowercase()),
    );
    put(
        &mut m,
        "lastNameLowerCase",
        &c.last_name.as_ref().map(|s| s.to_lowercase()),
    );
    put(
        &mut m,
        "fullNameLowerCase",
        &c.full_name().map(|s| s.to_lowercase()),
    );
    put(&mut m, "email", &c.email);
    put(
        &mut m,
        "emailLowerCase",
        &c.email.as_ref().map(|s| s.to_lowercase()),
    );
    put(&mut m, "timezone", &c.timezone);
    put(&mut m, "companyName", &c.company_name);
    put(&mut m, "phone", &c.phone);
    m.insert("dnd".into(), json!(c.dnd));
    if let Some(d) = &c.dnd_settings {
        m.insert("dndSettings".into(), d.clone());
    }
    m.insert("type".into(), json!(c.contact_type));
    put(&mut m, "source", &c.source);
    put(&mut m, "assignedTo", &c.assigned_to);
    put(&mut m, "address1", &c.address1);
    put(&mut m, "city", &c.city);
    put(&mut m, "state", &c.state);
    put(&mut m, "country", &c.country);
    put(&mut m, "postalCode", &c.postal_code);
    put(&mut m, "website", &c.website);
    m.insert("tags".into(), json!(c.tags));
    put(&mut m, "dateOfBirth", &c.date_of_birth);
    m.insert("dateAdded".into(), json!(iso(c.date_added)));
    m.insert("dateUpdated".into(), json!(iso(c.date_updated)));
    m.insert("customFields".into(), custom_fields_json(c));
    put(&mut m, "businessId", &c.business_id);
    for (k, v) in &c.extra {
        m.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Value::Object(m)
}

/// `POST /contacts/` response shape (`CreateContactSchema`): different from GET.
pub(crate) fn create_shape(c: &Contact, loc: &str) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(c.id));
    m.insert("dateAdded".into(), json!(iso(c.date_added)));
    m.insert("dateUpdated".into(), json!(iso(c.date_updated)));
    m.insert("deleted".into(), json!(false));
    m.insert("tags".into(), json!(c.tags));
    m.insert("type".into(), json!(c.contact_type));
    m.insert("customFields".into(), custom_fields_json(c));
    m.insert("locationId".into(), json!(loc));
    put(&mut m, "firstName", &c.first_name);
    put(
        &mut m,
        "firstNameLowerCase",
        &c.first_name.as_ref().map(|s| s.to_lowercase()),
    );
    put(
        &mut m,
        "fullNameLowerCase",
        &c.full_name().map(|s| s.to_lowercase()),
    );
    put(&mut m, "lastName", &c.last_name);
    put(
        &mut m,
        "lastNameLowerCase",
        &c.last_name.as_ref().map(|s| s.to_lowercase()),
    );
    put(&mut m, "email", &c.email);
    put(
        &mut m,
        "emailLowerCase",
        &c.email.as_ref().map(|s| s.to_lowercase()),
    );
    m.insert("bounceEmail".into(), json!(false));
    m.insert("unsubscribeEmail".into(), json!(false));
    m.insert("dnd".into(), json!(c.dnd));
    if let Some(d) = &c.dnd_settings {
        m.insert("dndSettings".into(), d.clone());
    }
    put(&mut m, "phone", &c.phone);
    put(&mut m, "address1", &c.address1);
    put(&mut m, "city", &c.city);
    put(&mut m, "state", &c.state);
    put(&mut m, "country", &c.country);
    put(&mut m, "postalCode", &c.postal_code);
    put(&mut m, "website", &c.website);
    put(&mut m, "source", &c.source);
    put(&mut m, "companyName", &c.company_name);
    if let Some(dob) = &c.date_of_birth
        && let Ok(d) = NaiveDate::parse_from_str(dob, "%Y-%m-%d")
    {
        m.insert("dateOfBirth".into(), json!(format!("{dob}T00:00:00.000Z")));
        m.insert("birthMonth".into(), json!(chrono::Datelike::month0(&d)));
        m.insert("birthDay".into(), json!(chrono::Datelike::day(&d)));
    }
    m.insert("offers".into(), json!([]));
    m.insert("products".into(), json!([]));
    put(&mut m, "businessId", &c.business_id);
    put(&mut m, "assignedTo", &c.assigned_to);
    Value::Object(m)
}

/// Search / list item shape: `address` (not `address1`), no `name`, plus empty follower lists.
pub(crate) fn search_shape(c: &Contact, loc: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(c.id));
    m.insert("locationId".into(), json!(loc));
    put(&mut m, "firstName", &c.first_name);
    put(&mut m, "lastName", &c.last_name);
    put(
        &mut m,
        "firstNameLowerCase",
        &c.first_name.as_ref().map(|s| s.to_lowercase()),
    );
    put(
        &mut m,
        "lastNameLowerCase",
        &c.last_name.as_ref().map(|s| s.to_lowercase()),
    );
    put(&mut m, "email", &c.email);
    put(&mut m, "phone", &c.phone);
    put(&mut m, "companyName", &c.company_name);
    put(&mut m, "address", &c.address1);
    put(&mut m, "city", &c.city);
    put(&mut m, "state", &c.state);
    put(&mut m, "country", &c.country);
    put(&mut m, "postalCode", &c.postal_code);
    put(&mut m, "website", &c.website);
    put(&mut m, "timezone", &c.timezone);
    put(&mut m, "source", &c.source);
    m.insert("type".into(), json!(c.contact_type));
    m.insert("dnd".into(), json!(c.dnd));
    if let Some(d) = &c.dnd_settings {
        m.insert("dndSettings".into(), d.clone());
    }
    m.insert("tags".into(), json!(c.tags));
    m.insert("customFields".into(), custom_fields_json(c));
    m.insert("dateAdded".into(), json!(iso(c.date_added)));
    m.insert("dateUpdated".into(), json!(iso(c.date_updated)));
    put(&mut m, "dateOfBirth", &c.date_of_birth);
    put(&mut m, "assignedTo", &c.assigned_to);
    put(&mut m, "businessId", &c.business_id);
    m.insert("followers".into(), json!([]));
    m.insert("additionalEmails".into(), json!([]));
    m.insert("additionalPhones".into(), json!([]));
    // Fields the emulator does not model, as GET shows them (a test's odd values).
    for (k, v) in &c.extra {
        m.entry(k.clone()).or_insert_with(|| v.clone());
    }
    m
}

/// Parse the date-of-birth formats the API accepts into `YYYY-MM-DD`.
fn parse_dob(raw: &str) -> Option<String> {
    let head = raw.get(..10).unwrap_or(raw);
    for fmt in [
        "%Y/%m/%d", "%m/%d/%Y", "%Y-%m-%d", "%m-%d-%Y", "%Y.%m.%d", "%m.%d.%Y", "%Y_%m_%d",
        "%m_%d_%Y",
    ] {
        if let Ok(d) = NaiveDate::parse_from_str(head, fmt) {
            return Some(d.format("%Y-%m-%d").to_string());
        }
    }
    None
}

fn looks_like_email(e: &str) -> bool {
    let Some((user, domain)) = e.split_once('@') else {
        return false;
    };
    !user.is_empty() && domain.contains('.') && !domain.starts_with('.') && !e.contains(' ')
}

/// Apply a validated body to a contact. `replace_tags`: PUT/upsert semantics (whole list).
fn apply(st: &GhlState, c: &mut Contact, obj: &Map<String, Value>) -> Result<(), ApiError> {
    let mut msgs = Vec::new();
    for (k, v) in obj {
        let sv = v.as_str().map(str::to_string);
        match k.as_str() {
            "firstName" => c.first_name = sv,
            "lastName" => c.last_name = sv,
            "name" => c.name = sv,
            "email" => match sv {
                Some(e) if !e.is_empty() && !looks_like_email(&e) => {
                    msgs.push("email must be an email".into())
                }
                e => c.email = e.filter(|e| !e.is_empty()),
            },
            "phone" => match sv {
                Some(p) if !p.trim().is_empty() => match normalize_phone(&p) {
                    Some(n) => c.phone = Some(n),
                    None => msgs.push("phone must be a valid phone number".into()),
                },
                _ => c.phone = None,
            },
            "address1" => c.address1 = sv,
            "city" => c.city = sv,
            "state" => c.state = sv,
            "postalCode" => c.postal_code = sv,
            "website" => c.website = sv,
            "timezone" => c.timezone = sv,
            "country" => c.country = sv,
            "source" => c.source = sv,
            "companyName" => c.company_name = sv,
            "assignedTo" => c.assigned_to = sv,
            "dnd" => c.dnd = v.as_bool().unwrap_or(false),
            "dndSettings" => c.dnd_settings = Some(v.clone()),
            "dateOfBirth" => match v {
                Value::Null => c.date_of_birth = None,
                Value::String(raw) => match parse_dob(raw) {
                    Some(d) => c.date_of_birth = Some(d),
                    None => msgs.push("dateOfBirth must be a valid date".into()),
                },
                _ => msgs.push("dateOfBirth must be a valid date".into()),
            },
            "tags" => {
                let mut tags: Vec<String> = Vec::new();
                for t in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
                    let t = t.trim().to_string();
                    if !t.is_empty() && !tags.contains(&t) {
                        tags.push(t);
                    }
                }
                c.tags = tags;
            }
            "customFields" => {
                for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                    let id = item.get("id").and_then(Value::as_str);
                    if st.custom_fields_by_id_only && id.is_none() {
                        msgs.push(format!("customFields.{i}.id must be a string"));
                        continue;
                    }
                    let key = id
                        .or_else(|| item.get("key").and_then(Value::as_str))
                        .unwrap_or_default();
                    let field = if st.custom_fields_by_id_only {
                        st.custom_fields.iter().find(|f| f.id == key)
                    } else {
                        st.custom_field(key)
                    };
                    let Some(field) = field else {
                        msgs.push(format!(
                            "customFields.{i} custom field {key} does not exist"
                        ));
                        continue;
                    };
                    let value = item.get("field_value").cloned().unwrap_or(Value::Null);
                    c.custom_fields.retain(|(id, _)| id != &field.id);
                    if !value.is_null() && value != json!("") {
                        c.custom_fields.push((field.id.clone(), value));
                    }
                }
            }
            "locationId" | "createNewIfDuplicateAllowed" => {}
            other => {
                c.extra.insert(other.to_string(), v.clone());
            }
        }
    }
    if msgs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(msgs))
    }
}

/// Duplicate lookup: email (case-insensitive) first, then phone (E.164).
fn find_duplicate(
    st: &mut GhlState,
    email: Option<&str>,
    phone: Option<&str>,
    exclude: &str,
) -> Option<(String, &'static str)> {
    let candidates: Vec<&Contact> = if st.dedup_lags {
        st.expire_lag();
        st.searchable()
    } else {
        st.contacts.values().collect()
    };
    if let Some(e) = email.filter(|e| !e.is_empty()) {
        let e = e.to_lowercase();
        if let Some(c) = candidates.iter().find(|c| {
            c.id != exclude && c.email.as_deref().map(str::to_lowercase).as_deref() == Some(&e)
        }) {
            return Some((c.id.clone(), "email"));
        }
    }
    if let Some(p) = phone.and_then(normalize_phone)
        && let Some(c) = candidates
            .iter()
            .find(|c| c.id != exclude && c.phone.as_deref() == Some(p.as_str()))
    {
        return Some((c.id.clone(), "phone"));
    }
    None
}

fn duplicate_error(st: &GhlState, id: &str, field: &str) -> ApiError {
    let name = st
        .contacts
        .get(id)
        .and_then(Contact::full_name)
        .unwrap_or_default();
    ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({
            "statusCode": 400,
            "message": "This location does not allow duplicated contacts.",
            "meta": {"contactId": id, "contactName": name, "matchingField": field},
        }),
    }
}

fn body_location(st: &GhlState, obj: &Map<String, Value>) -> Result<(), ApiError> {
    same_location(st, &s(obj, "locationId").unwrap_or_default())
}

pub(crate) fn create(st: &mut GhlState, ctx: &Ctx) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &CREATE)?;
    body_location(st, &obj)?;
    if !st.allow_duplicates
        && let Some((id, field)) = find_duplicate(
            st,
            obj.get("email").and_then(Value::as_str),
            obj.get("phone").and_then(Value::as_str),
            "",
        )
    {
        return Err(duplicate_error(st, &id, field));
    }
    let id = st.new_id();
    let mut c = Contact::new(id.clone(), Utc::now());
    apply(st, &mut c, &obj)?;
    st.note_write(&id);
    let out = create_shape(&c, &st.location_id);
    st.contacts.insert(id, c);
    Ok((StatusCode::CREATED, json!({"contact": out})))
}

pub(crate) fn upsert(st: &mut GhlState, ctx: &Ctx) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &UPSERT)?;
    body_location(st, &obj)?;
    let force_new = st.allow_duplicates
        && obj
            .get("createNewIfDuplicateAllowed")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let existing = if force_new {
        None
    } else {
        find_duplicate(
            st,
            obj.get("email").and_then(Value::as_str),
            obj.get("phone").and_then(Value::as_str),
            "",
        )
        .map(|(id, _)| id)
    };
    let now = Utc::now();
    let (mut c, is_new) = match existing {
        Some(id) => (st.contacts[&id].clone(), false),
        None => (Contact::new(st.new_id(), now), true),
    };
    apply(st, &mut c, &obj)?;
    if !is_new {
        c.touch(now);
    }
    st.note_write(&c.id);
    let out = get_shape(&c, &st.location_id);
    let trace = st.new_id();
    st.contacts.insert(c.id.clone(), c);
    Ok((
        StatusCode::OK,
        json!({"new": is_new, "contact": out, "traceId": trace}),
    ))
}

pub(crate) fn get(st: &mut GhlState, ctx: &Ctx, id: &str) -> ApiResult {
    ctx.need(READ)?;
    let c = st.contacts.get(id).ok_or_else(|| not_found(id))?;
    Ok((
        StatusCode::OK,
        json!({"contact": get_shape(c, &st.location_id)}),
    ))
}

pub(crate) fn update(st: &mut GhlState, ctx: &Ctx, id: &str) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &UPDATE)?;
    let mut c = st.contacts.get(id).cloned().ok_or_else(|| not_found(id))?;
    apply(st, &mut c, &obj)?;
    c.touch(Utc::now());
    st.note_write(id);
    let out = get_shape(&c, &st.location_id);
    st.contacts.insert(id.to_string(), c);
    Ok((StatusCode::OK, json!({"succeded": true, "contact": out})))
}

pub(crate) fn delete(st: &mut GhlState, ctx: &Ctx, id: &str) -> ApiResult {
    ctx.need(WRITE)?;
    if !st.contacts.contains_key(id) {
        return Err(not_found(id));
    }
    st.note_write(id);
    st.delete_contact(id);
    Ok((StatusCode::OK, json!({"succeded": true})))
}

fn tag_list(obj: &Map<String, Value>) -> Vec<String> {
    obj.get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// `POST /contacts/{id}/tags`: adds; answers 201 echoing the tags sent (as the spec example).
pub(crate) fn add_tags(st: &mut GhlState, ctx: &Ctx, id: &str) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &TAGS)?;
    let tags = tag_list(&obj);
    if !st.contacts.contains_key(id) {
        return Err(parent_not_found(id));
    }
    st.note_write(id);
    let c = st
        .contacts
        .get_mut(id)
        .ok_or_else(|| parent_not_found(id))?;
    let mut changed = false;
    for t in &tags {
        if !c.tags.contains(t) {
            c.tags.push(t.clone());
            changed = true;
        }
    }
    if changed {
        c.touch(Utc::now());
    }
    Ok((StatusCode::CREATED, json!({"tags": tags})))
}

/// `DELETE /contacts/{id}/tags` (JSON body): removes; answers 200 echoing the tags sent.
pub(crate) fn remove_tags(st: &mut GhlState, ctx: &Ctx, id: &str) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &TAGS)?;
    let tags = tag_list(&obj);
    if !st.contacts.contains_key(id) {
        return Err(parent_not_found(id));
    }
    st.note_write(id);
    let c = st
        .contacts
        .get_mut(id)
        .ok_or_else(|| parent_not_found(id))?;
    let before = c.tags.len();
    c.tags.retain(|t| !tags.contains(t));
    if c.tags.len() != before {
        c.touch(Utc::now());
    }
    Ok((StatusCode::OK, json!({"tags": tags})))
}

/// `POST /contacts/bulk/business`. Unknown contact ids are skipped and left out of `ids`;
/// an unknown `businessId` is a 400.
pub(crate) fn bulk_business(st: &mut GhlState, ctx: &Ctx) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &BULK_BUSINESS)?;
    if !obj.contains_key("businessId") {
        return Err(ApiError::unprocessable(vec![
            "businessId must be a string".into(),
        ]));
    }
    body_location(st, &obj)?;
    let ids: Vec<String> = obj["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if let Some(long) = ids.iter().position(|i| i.len() > 50) {
        return Err(ApiError::unprocessable(vec![format!(
            "ids.{long} must be shorter than or equal to 50 characters"
        )]));
    }
    let business = s(&obj, "businessId");
    if let Some(b) = &business
        && !st.businesses.contains_key(b)
    {
        return Err(ApiError::bad_request(format!(
            "Business with id {b} not found"
        )));
    }
    let now = Utc::now();
    let mut done = Vec::new();
    for id in ids {
        if st.bulk_business_limit.is_some_and(|n| done.len() >= n) {
            break;
        }
        if st.contacts.contains_key(&id) {
            st.note_write(&id);
            if let Some(c) = st.contacts.get_mut(&id) {
                c.business_id = business.clone();
                c.touch(now);
            }
            done.push(id);
        }
    }
    Ok((StatusCode::OK, json!({"success": true, "ids": done})))
}

/// `GET /contacts/business/{businessId}?locationId=&limit=&skip=&query=` → `{contacts, count}`.
pub(crate) fn by_business(st: &mut GhlState, ctx: &Ctx, bid: &str) -> ApiResult {
    ctx.need(READ)?;
    check_query(
        &ctx.query,
        &["locationId", "limit", "skip", "query"],
        &["locationId"],
    )?;
    same_location(st, qget(&ctx.query, "locationId").unwrap_or_default())?;
    let num = |name: &str, default: usize| -> Result<usize, ApiError> {
        match qget(&ctx.query, name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::unprocessable(vec![format!("{name} must be a number")])),
        }
    };
    let limit = num("limit", 25)?;
    let skip = num("skip", 0)?;
    let q = qget(&ctx.query, "query").map(str::to_lowercase);
    let all: Vec<&Contact> = st
        .contacts
        .values()
        .filter(|c| c.business_id.as_deref() == Some(bid))
        .filter(|c| match &q {
            None => true,
            Some(q) => [&c.first_name, &c.last_name, &c.email, &c.phone]
                .into_iter()
                .flatten()
                .any(|f| f.to_lowercase().contains(q)),
        })
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(limit)
        .map(|c| Value::Object(search_shape(c, &st.location_id)))
        .collect();
    Ok((
        StatusCode::OK,
        json!({"contacts": page, "count": all.len()}),
    ))
}
