//! Contact-scoped tasks, notes and appointments; businesses; location and its custom fields;
//! location task search.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::contacts::parent_not_found;
use super::state::{Business, GhlState, Note, Task, iso};
use super::validate::{ApiError, ApiResult, Dto, Ty, check, check_query, qget, s};
use super::{Ctx, same_location};

const READ: &str = "contacts.readonly";
const WRITE: &str = "contacts.write";

fn need_contact(st: &GhlState, id: &str) -> Result<(), ApiError> {
    if st.contacts.contains_key(id) {
        Ok(())
    } else {
        Err(parent_not_found(id))
    }
}

// ---------------------------------------------------------------- tasks

const TASK_CREATE: Dto = Dto {
    fields: &[
        ("title", Ty::Str),
        ("body", Ty::Str),
        ("dueDate", Ty::Str),
        ("completed", Ty::Bool),
        ("assignedTo", Ty::Str),
    ],
    required: &["title", "dueDate", "completed"],
};

const TASK_UPDATE: Dto = Dto {
    fields: TASK_CREATE.fields,
    required: &[],
};

const TASK_COMPLETED: Dto = Dto {
    fields: &[("completed", Ty::Bool)],
    required: &["completed"],
};

const TASK_SEARCH: Dto = Dto {
    fields: &[
        ("contactId", Ty::StrArray),
        ("completed", Ty::Bool),
        ("assignedTo", Ty::StrArray),
        ("query", Ty::Str),
        ("limit", Ty::Num),
        ("skip", Ty::Num),
        ("businessId", Ty::Str),
    ],
    required: &[],
};

/// ISO-8601 with or without milliseconds (both forms are accepted; n8n strips them).
fn parse_due(raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::unprocessable(vec!["dueDate must be a valid ISO 8601 date string".into()])
        })
}

fn task_json(t: &Task) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(t.id));
    m.insert("title".into(), json!(t.title));
    if let Some(b) = &t.body {
        m.insert("body".into(), json!(b));
    }
    if let Some(a) = &t.assigned_to {
        m.insert("assignedTo".into(), json!(a));
    }
    m.insert("dueDate".into(), json!(iso(t.due_date)));
    m.insert("completed".into(), json!(t.completed));
    m.insert("contactId".into(), json!(t.contact_id));
    Value::Object(m)
}

fn find_task<'a>(st: &'a mut GhlState, cid: &str, tid: &str) -> Result<&'a mut Task, ApiError> {
    need_contact(st, cid)?;
    st.tasks
        .get_mut(tid)
        .filter(|t| t.contact_id == cid)
        .ok_or_else(|| ApiError::bad_request(format!("Task with id {tid} not found")))
}

pub(crate) fn list_tasks(st: &mut GhlState, ctx: &Ctx, cid: &str) -> ApiResult {
    ctx.need(READ)?;
    need_contact(st, cid)?;
    let tasks: Vec<Value> = st
        .tasks
        .values()
        .filter(|t| t.contact_id == cid)
        .map(task_json)
        .collect();
    Ok((StatusCode::OK, json!({"tasks": tasks})))
}

pub(crate) fn create_task(st: &mut GhlState, ctx: &Ctx, cid: &str) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &TASK_CREATE)?;
    need_contact(st, cid)?;
    let due = parse_due(obj["dueDate"].as_str().unwrap_or_default())?;
    let t = Task {
        id: st.new_id(),
        contact_id: cid.to_string(),
        title: s(&obj, "title").unwrap_or_default(),
        body: s(&obj, "body"),
        assigned_to: s(&obj, "assignedTo"),
        due_date: due,
        completed: obj["completed"].as_bool().unwrap_or(false),
        date_added: Utc::now(),
    };
    let out = task_json(&t);
    st.tasks.insert(t.id.clone(), t);
    Ok((StatusCode::CREATED, json!({"task": out})))
}

pub(crate) fn get_task(st: &mut GhlState, ctx: &Ctx, cid: &str, tid: &str) -> ApiResult {
    ctx.need(READ)?;
    if st.deleted_task_rows
        && let Some(t) = st.deleted_tasks.get(tid).filter(|t| t.contact_id == cid)
    {
        let mut v = task_json(t);
        v["deleted"] = json!(true);
        return Ok((StatusCode::OK, json!({ "task": v })));
    }
    let t = find_task(st, cid, tid)?;
    Ok((StatusCode::OK, json!({"task": task_json(t)})))
}

pub(crate) fn update_task(st: &mut GhlState, ctx: &Ctx, cid: &str, tid: &str) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &TASK_UPDATE)?;
    let due = match obj.get("dueDate").and_then(Value::as_str) {
        Some(d) => Some(parse_due(d)?),
        None => None,
    };
    let t = find_task(st, cid, tid)?;
    if let Some(v) = s(&obj, "title") {
        t.title = v;
    }
    if obj.contains_key("body") {
        t.body = s(&obj, "body");
    }
    if obj.contains_key("assignedTo") {
        t.assigned_to = s(&obj, "assignedTo");
    }
    if let Some(d) = due {
        t.due_date = d;
    }
    if let Some(c) = obj.get("completed").and_then(Value::as_bool) {
        t.completed = c;
    }
    Ok((StatusCode::OK, json!({"task": task_json(t)})))
}

pub(crate) fn complete_task(st: &mut GhlState, ctx: &Ctx, cid: &str, tid: &str) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &TASK_COMPLETED)?;
    let t = find_task(st, cid, tid)?;
    t.completed = obj["completed"].as_bool().unwrap_or(false);
    Ok((StatusCode::OK, json!({"task": task_json(t)})))
}

pub(crate) fn delete_task(st: &mut GhlState, ctx: &Ctx, cid: &str, tid: &str) -> ApiResult {
    ctx.need(WRITE)?;
    find_task(st, cid, tid)?;
    st.delete_task(tid);
    Ok((StatusCode::OK, json!({"succeded": true})))
}

/// `POST /locations/{locationId}/tasks/search`. Item shape is untyped in the spec; items carry
/// both `id` and `_id` and `contactDetails`, as third-party clients read them. Without
/// `completed`, pending tasks only or both (`task_search_pending_by_default`); deleted tasks
/// as rows flagged `deleted: true` when `deleted_task_rows` is on.
pub(crate) fn search_tasks(st: &mut GhlState, ctx: &Ctx, lid: &str) -> ApiResult {
    ctx.need("locations/tasks.readonly")?;
    let obj = check(&ctx.body, &TASK_SEARCH)?;
    same_location(st, lid)?;
    let list = |k: &str| -> Option<Vec<String>> {
        obj.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
    };
    let contact_ids = list("contactId");
    let assigned = list("assignedTo");
    let completed = obj
        .get("completed")
        .and_then(Value::as_bool)
        .or(st.task_search_pending_by_default.then_some(false));
    let query = s(&obj, "query").map(|q| q.to_lowercase());
    let business = s(&obj, "businessId");
    let limit = obj.get("limit").and_then(Value::as_u64).unwrap_or(25) as usize;
    let skip = obj.get("skip").and_then(Value::as_u64).unwrap_or(0) as usize;
    let deleted: Vec<&Task> = if st.deleted_task_rows {
        st.deleted_tasks.values().collect()
    } else {
        Vec::new()
    };
    let tasks: Vec<Value> = st
        .tasks
        .values()
        .map(|t| (t, false))
        .chain(deleted.into_iter().map(|t| (t, true)))
        .filter(|(t, _)| {
            contact_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&t.contact_id))
        })
        .filter(|(t, _)| {
            assigned
                .as_ref()
                .is_none_or(|a| t.assigned_to.as_ref().is_some_and(|x| a.contains(x)))
        })
        .filter(|(t, _)| completed.is_none_or(|c| c == t.completed))
        .filter(|(t, _)| {
            query.as_ref().is_none_or(|q| {
                t.title.to_lowercase().contains(q)
                    || t.body
                        .as_ref()
                        .is_some_and(|b| b.to_lowercase().contains(q))
            })
        })
        .filter(|(t, _)| {
            business.as_ref().is_none_or(|b| {
                st.contacts
                    .get(&t.contact_id)
                    .is_some_and(|c| c.business_id.as_ref() == Some(b))
            })
        })
        .skip(skip)
        .take(limit)
        .map(|(t, gone)| {
            let mut v = task_json(t);
            v["_id"] = json!(t.id);
            if gone {
                v["deleted"] = json!(true);
            }
            if let Some(c) = st.contacts.get(&t.contact_id) {
                v["contactDetails"] = json!({
                    "firstName": c.first_name.clone().unwrap_or_default(),
                    "lastName": c.last_name.clone().unwrap_or_default(),
                });
            }
            v
        })
        .collect();
    Ok((StatusCode::OK, json!({"tasks": tasks})))
}

// ---------------------------------------------------------------- notes

const NOTE_CREATE: Dto = Dto {
    fields: &[
        ("userId", Ty::Str),
        ("body", Ty::Str),
        ("title", Ty::Str),
        ("color", Ty::Str),
        ("pinned", Ty::Bool),
    ],
    required: &["body"],
};

const NOTE_UPDATE: Dto = Dto {
    fields: NOTE_CREATE.fields,
    required: &[],
};

fn note_json(n: &Note) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(n.id));
    m.insert("body".into(), json!(n.body));
    if let Some(u) = &n.user_id {
        m.insert("userId".into(), json!(u));
    }
    m.insert("dateAdded".into(), json!(iso(n.date_added)));
    m.insert("contactId".into(), json!(n.contact_id));
    if let Some(t) = &n.title {
        m.insert("title".into(), json!(t));
    }
    if let Some(c) = &n.color {
        m.insert("color".into(), json!(c));
    }
    m.insert("pinned".into(), json!(n.pinned));
    Value::Object(m)
}

fn find_note<'a>(st: &'a mut GhlState, cid: &str, nid: &str) -> Result<&'a mut Note, ApiError> {
    need_contact(st, cid)?;
    st.notes
        .get_mut(nid)
        .filter(|n| n.contact_id == cid)
        .ok_or_else(|| ApiError::bad_request(format!("Note with id {nid} not found")))
}

pub(crate) fn list_notes(st: &mut GhlState, ctx: &Ctx, cid: &str) -> ApiResult {
    ctx.need(READ)?;
    need_contact(st, cid)?;
    let notes: Vec<Value> = st
        .notes
        .values()
        .filter(|n| n.contact_id == cid)
        .map(note_json)
        .collect();
    Ok((StatusCode::OK, json!({"notes": notes})))
}

pub(crate) fn create_note(st: &mut GhlState, ctx: &Ctx, cid: &str) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &NOTE_CREATE)?;
    need_contact(st, cid)?;
    let n = Note {
        id: st.new_id(),
        contact_id: cid.to_string(),
        body: s(&obj, "body").unwrap_or_default(),
        user_id: s(&obj, "userId"),
        title: s(&obj, "title"),
        color: s(&obj, "color"),
        pinned: obj.get("pinned").and_then(Value::as_bool).unwrap_or(false),
        date_added: Utc::now(),
    };
    let out = note_json(&n);
    st.notes.insert(n.id.clone(), n);
    Ok((StatusCode::CREATED, json!({"note": out})))
}

pub(crate) fn get_note(st: &mut GhlState, ctx: &Ctx, cid: &str, nid: &str) -> ApiResult {
    ctx.need(READ)?;
    let n = find_note(st, cid, nid)?;
    Ok((StatusCode::OK, json!({"note": note_json(n)})))
}

pub(crate) fn update_note(st: &mut GhlState, ctx: &Ctx, cid: &str, nid: &str) -> ApiResult {
    ctx.need(WRITE)?;
    let obj = check(&ctx.body, &NOTE_UPDATE)?;
    let n = find_note(st, cid, nid)?;
    if let Some(b) = s(&obj, "body") {
        n.body = b;
    }
    if obj.contains_key("userId") {
        n.user_id = s(&obj, "userId");
    }
    if obj.contains_key("title") {
        n.title = s(&obj, "title");
    }
    if obj.contains_key("color") {
        n.color = s(&obj, "color");
    }
    if let Some(p) = obj.get("pinned").and_then(Value::as_bool) {
        n.pinned = p;
    }
    Ok((StatusCode::OK, json!({"note": note_json(n)})))
}

pub(crate) fn delete_note(st: &mut GhlState, ctx: &Ctx, cid: &str, nid: &str) -> ApiResult {
    ctx.need(WRITE)?;
    find_note(st, cid, nid)?;
    st.notes.remove(nid);
    Ok((StatusCode::OK, json!({"succeded": true})))
}

// ---------------------------------------------------------------- appointments

pub(crate) fn appointments(st: &mut GhlState, ctx: &Ctx, cid: &str) -> ApiResult {
    ctx.need(READ)?;
    need_contact(st, cid)?;
    let loc = st.location_id.clone();
    let events: Vec<Value> = st
        .appointments
        .iter()
        .filter(|a| a.contact_id == cid)
        .map(|a| {
            let mut m = Map::new();
            m.insert("id".into(), json!(a.id));
            m.insert("calendarId".into(), json!(a.calendar_id));
            m.insert("status".into(), json!(a.status));
            m.insert("title".into(), json!(a.title));
            if let Some(u) = &a.assigned_user_id {
                m.insert("assignedUserId".into(), json!(u));
            }
            if let Some(n) = &a.notes {
                m.insert("notes".into(), json!(n));
            }
            m.insert("startTime".into(), json!(a.start_time));
            m.insert("endTime".into(), json!(a.end_time));
            if let Some(ad) = &a.address {
                m.insert("address".into(), json!(ad));
            }
            m.insert("locationId".into(), json!(loc));
            m.insert("contactId".into(), json!(a.contact_id));
            m.insert("appointmentStatus".into(), json!(a.appointment_status));
            m.insert("users".into(), json!([]));
            m.insert("dateAdded".into(), json!(a.start_time));
            m.insert("dateUpdated".into(), json!(a.start_time));
            m.insert("assignedResources".into(), json!([]));
            Value::Object(m)
        })
        .collect();
    let trace = st.new_id();
    Ok((StatusCode::OK, json!({"events": events, "traceId": trace})))
}

// ---------------------------------------------------------------- businesses

const BUSINESS_FIELDS: &[(&str, Ty)] = &[
    ("name", Ty::Str),
    ("phone", Ty::Str),
    ("email", Ty::Str),
    ("website", Ty::Str),
    ("address", Ty::Str),
    ("city", Ty::Str),
    ("postalCode", Ty::Str),
    ("state", Ty::Str),
    ("country", Ty::Str),
    ("description", Ty::Str),
];

const BUSINESS_CREATE: Dto = Dto {
    fields: &[
        ("name", Ty::Str),
        ("locationId", Ty::Str),
        ("phone", Ty::Str),
        ("email", Ty::Str),
        ("website", Ty::Str),
        ("address", Ty::Str),
        ("city", Ty::Str),
        ("postalCode", Ty::Str),
        ("state", Ty::Str),
        ("country", Ty::Str),
        ("description", Ty::Str),
    ],
    required: &["name", "locationId"],
};

const BUSINESS_UPDATE: Dto = Dto {
    fields: BUSINESS_FIELDS,
    required: &[],
};

fn business_json(b: &Business, loc: &str) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(b.id));
    m.insert("name".into(), json!(b.name));
    for (k, v) in [
        ("phone", &b.phone),
        ("email", &b.email),
        ("website", &b.website),
        ("address", &b.address),
        ("city", &b.city),
        ("description", &b.description),
        ("state", &b.state),
        ("postalCode", &b.postal_code),
        ("country", &b.country),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    m.insert("updatedBy".into(), json!({}));
    m.insert("locationId".into(), json!(loc));
    m.insert("createdBy".into(), json!({}));
    m.insert("createdAt".into(), json!(iso(b.created_at)));
    m.insert("updatedAt".into(), json!(iso(b.updated_at)));
    Value::Object(m)
}

fn apply_business(b: &mut Business, obj: &Map<String, Value>) {
    for (k, v) in obj {
        let sv = v.as_str().map(str::to_string);
        match k.as_str() {
            "name" => b.name = sv.unwrap_or_default(),
            "phone" => b.phone = sv,
            "email" => b.email = sv,
            "website" => b.website = sv,
            "address" => b.address = sv,
            "city" => b.city = sv,
            "postalCode" => b.postal_code = sv,
            "state" => b.state = sv,
            "country" => b.country = sv,
            "description" => b.description = sv,
            _ => {}
        }
    }
}

fn business_not_found(id: &str) -> ApiError {
    ApiError::bad_request(format!("Business with id {id} not found"))
}

pub(crate) fn list_businesses(st: &mut GhlState, ctx: &Ctx) -> ApiResult {
    ctx.need("businesses.readonly")?;
    check_query(
        &ctx.query,
        &["locationId", "limit", "skip"],
        &["locationId"],
    )?;
    same_location(st, qget(&ctx.query, "locationId").unwrap_or_default())?;
    let num = |name: &str, default: usize| -> Result<usize, ApiError> {
        qget(&ctx.query, name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| ApiError::unprocessable(vec![format!("{name} must be a number")]))
        })
    };
    let (limit, skip) = (num("limit", 100)?, num("skip", 0)?);
    let list: Vec<Value> = st
        .businesses
        .values()
        .skip(skip)
        .take(limit)
        .map(|b| business_json(b, &st.location_id))
        .collect();
    Ok((StatusCode::OK, json!({"businesses": list})))
}

pub(crate) fn create_business(st: &mut GhlState, ctx: &Ctx) -> ApiResult {
    ctx.need("businesses.write")?;
    let obj = check(&ctx.body, &BUSINESS_CREATE)?;
    same_location(st, &s(&obj, "locationId").unwrap_or_default())?;
    let now = Utc::now();
    let mut b = Business {
        id: st.new_object_id(),
        created_at: now,
        updated_at: now,
        ..Default::default()
    };
    apply_business(&mut b, &obj);
    let out = business_json(&b, &st.location_id);
    st.businesses.insert(b.id.clone(), b);
    Ok((
        StatusCode::CREATED,
        json!({"success": true, "buiseness": out}),
    ))
}

pub(crate) fn get_business(st: &mut GhlState, ctx: &Ctx, id: &str) -> ApiResult {
    ctx.need("businesses.readonly")?;
    let b = st
        .businesses
        .get(id)
        .ok_or_else(|| business_not_found(id))?;
    Ok((
        StatusCode::OK,
        json!({"business": business_json(b, &st.location_id)}),
    ))
}

pub(crate) fn update_business(st: &mut GhlState, ctx: &Ctx, id: &str) -> ApiResult {
    ctx.need("businesses.write")?;
    let obj = check(&ctx.body, &BUSINESS_UPDATE)?;
    let loc = st.location_id.clone();
    let b = st
        .businesses
        .get_mut(id)
        .ok_or_else(|| business_not_found(id))?;
    apply_business(b, &obj);
    b.updated_at = Utc::now();
    Ok((
        StatusCode::OK,
        json!({"success": true, "buiseness": business_json(b, &loc)}),
    ))
}

pub(crate) fn delete_business(st: &mut GhlState, ctx: &Ctx, id: &str) -> ApiResult {
    ctx.need("businesses.write")?;
    st.businesses
        .remove(id)
        .ok_or_else(|| business_not_found(id))?;
    for c in st.contacts.values_mut() {
        if c.business_id.as_deref() == Some(id) {
            c.business_id = None;
        }
    }
    Ok((StatusCode::OK, json!({"success": true})))
}

// ---------------------------------------------------------------- location

pub(crate) fn location(st: &mut GhlState, ctx: &Ctx, lid: &str) -> ApiResult {
    ctx.need("locations.readonly")?;
    same_location(st, lid)?;
    Ok((
        StatusCode::OK,
        json!({"location": {
            "id": st.location_id,
            "companyId": st.company_id,
            "name": st.location_name,
            "address": "1 Emulator Way",
            "city": "Testville",
            "state": "CA",
            "country": "US",
            "postalCode": "94000",
            "website": "https://example.invalid",
            "timezone": "UTC",
            "email": "owner@example.invalid",
            "phone": "+15550000000",
            "settings": {"allowDuplicateContact": st.allow_duplicates},
        }}),
    ))
}

pub(crate) fn custom_fields(st: &mut GhlState, ctx: &Ctx, lid: &str) -> ApiResult {
    ctx.need("locations/customFields.readonly")?;
    check_query(&ctx.query, &["model"], &[])?;
    same_location(st, lid)?;
    let list: Vec<Value> = st
        .custom_fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({
                "id": f.id,
                "name": f.name,
                "fieldKey": f.field_key,
                "placeholder": "",
                "dataType": f.data_type,
                "position": i * 50,
                "locationId": st.location_id,
                "model": "contact",
            })
        })
        .collect();
    Ok((StatusCode::OK, json!({"customFields": list})))
}
