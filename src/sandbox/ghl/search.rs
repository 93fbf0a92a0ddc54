//! `POST /contacts/search` (Contacts Search API, reference §3.4).
//!
//! Emulator choices where the doc is silent: default order `dateAdded desc` then `id asc`;
//! `page × pageLimit > 10,000` → 422 (use `searchAfter`); `page` together with `searchAfter` → 422;
//! text comparisons (`eq`, `contains`) are case-insensitive; `tags eq` with a string means "has
//! this tag", with an array "has any of them"; `total` is the exact number of matches. The other
//! readings of `total` and of the default order are knobs (`SearchPaging`).

use std::cmp::Ordering;

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate};
use serde_json::{Value, json};

use super::contacts::search_shape;
use super::search_cache::{Key, SearchCache};
use super::state::{Contact, DateRangeFormat, GhlState, normalize_phone};
use super::validate::{ApiError, ApiResult, Dto, Ty, check, s};
use super::{Ctx, same_location};

const DTO: Dto = Dto {
    fields: &[
        ("locationId", Ty::Str),
        ("pageLimit", Ty::Num),
        ("page", Ty::Num),
        ("searchAfter", Ty::Any),
        ("filters", Ty::Any),
        ("sort", Ty::Any),
        ("query", Ty::Str),
    ],
    required: &["locationId", "pageLimit"],
};

/// Records reachable with `page` paging.
pub const PAGE_WINDOW: u64 = 10_000;
pub const MAX_PAGE_LIMIT: u64 = 500;

const SORTABLE: &[&str] = &[
    "firstNameLowerCase",
    "lastNameLowerCase",
    "businessName",
    "dateAdded",
    "dateUpdated",
    "email",
    "dnd",
    "source",
];

const TEXT_FIELDS: &[&str] = &[
    "firstNameLowerCase",
    "lastNameLowerCase",
    "contactName",
    "address",
    "assignedTo",
    "city",
    "state",
    "country",
    "postalCode",
    "source",
    "companyName",
    "timezone",
    "type",
    "website",
];

#[derive(Debug, Clone)]
enum Filter {
    Cond {
        field: String,
        op: String,
        value: Option<Value>,
    },
    Group {
        any: bool,
        items: Vec<Filter>,
    },
}

fn ops_for(field: &str) -> Option<&'static [&'static str]> {
    const TEXT_OPS: &[&str] = &[
        "eq",
        "not_eq",
        "contains",
        "not_contains",
        "exists",
        "not_exists",
    ];
    Some(match field {
        "id" => &["eq", "not_eq"],
        "email" | "phone" => &["eq", "not_eq", "exists", "not_exists"],
        "dateAdded" | "dateUpdated" | "dateOfBirth" => &["range", "exists", "not_exists"],
        "tags" => TEXT_OPS,
        "dnd" => &["eq", "not_eq"],
        f if f.starts_with("customFields.") && f.len() > "customFields.".len() => TEXT_OPS,
        f if TEXT_FIELDS.contains(&f) => TEXT_OPS,
        _ => return None,
    })
}

fn parse_filters(
    v: &Value,
    path: &str,
    dates: DateRangeFormat,
    errs: &mut Vec<String>,
) -> Vec<Filter> {
    let Some(items) = v.as_array() else {
        errs.push(format!("{path} must be an array"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}.{i}");
        let Some(obj) = item.as_object() else {
            errs.push(format!("{p} must be an object"));
            continue;
        };
        if let Some(group) = obj.get("group") {
            let any = match group.as_str() {
                Some("AND") => false,
                Some("OR") => true,
                _ => {
                    errs.push(format!(
                        "{p}.group must be one of the following values: AND, OR"
                    ));
                    continue;
                }
            };
            for k in obj.keys() {
                if k != "group" && k != "filters" {
                    errs.push(format!("{p}.property {k} should not exist"));
                }
            }
            let inner = obj.get("filters").cloned().unwrap_or(Value::Null);
            let items = parse_filters(&inner, &format!("{p}.filters"), dates, errs);
            out.push(Filter::Group { any, items });
            continue;
        }
        for k in obj.keys() {
            if !matches!(k.as_str(), "field" | "operator" | "value") {
                errs.push(format!("{p}.property {k} should not exist"));
            }
        }
        let field = obj.get("field").and_then(Value::as_str).unwrap_or_default();
        let op = obj
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(ops) = ops_for(field) else {
            errs.push(format!(
                "{p}.field {field:?} is not a supported filter field"
            ));
            continue;
        };
        if !ops.contains(&op) {
            errs.push(format!(
                "{p}.operator {op:?} is not supported for field {field}"
            ));
            continue;
        }
        let value = obj.get("value").cloned();
        match (op, &value) {
            ("exists" | "not_exists", Some(_)) => {
                errs.push(format!("{p}.value must not be sent with operator {op}"))
            }
            ("exists" | "not_exists", None) => {}
            (_, None) => errs.push(format!("{p}.value should not be empty")),
            ("range", Some(v)) => {
                let form = form_of(field, dates);
                let ok = v.as_object().is_some_and(|o| {
                    !o.is_empty()
                        && o.iter().all(|(k, x)| {
                            matches!(k.as_str(), "gt" | "gte" | "lt" | "lte")
                                && form.accepts(x)
                                && to_ms(field, x).is_some()
                        })
                });
                if !ok {
                    errs.push(format!(
                        "{p}.value must be an object of gt/gte/lt/lte with {}",
                        form.described()
                    ));
                }
            }
            (_, Some(v)) => {
                let strings: Vec<&str> = match v {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) if field == "tags" => {
                        a.iter().filter_map(Value::as_str).collect()
                    }
                    Value::Bool(_) if field == "dnd" => vec![],
                    _ => {
                        errs.push(format!("{p}.value has the wrong type"));
                        continue;
                    }
                };
                if strings.iter().any(|s| s.chars().count() > 75) {
                    errs.push(format!("{p}.value must be at most 75 characters"));
                }
                if op.contains("contains")
                    && strings
                        .iter()
                        .any(|s| !s.chars().all(|c| c.is_alphanumeric() || c == ' '))
                {
                    errs.push(format!(
                        "{p}.value: {op} does not support special characters"
                    ));
                }
            }
        }
        if op == "range" && form_of(field, dates) == DateRangeFormat::Ignored {
            continue;
        }
        out.push(Filter::Cond {
            field: field.to_string(),
            op: op.to_string(),
            value,
        });
    }
    out
}

/// The date form a range on `field` takes: `dateOfBirth` is a day, whatever form the
/// timestamps take.
fn form_of(field: &str, dates: DateRangeFormat) -> DateRangeFormat {
    if field == "dateOfBirth" {
        DateRangeFormat::Both
    } else {
        dates
    }
}

/// A range bound as epoch milliseconds (ISO string, `YYYY-MM-DD`, or a number).
fn to_ms(_field: &str, v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|d| d.timestamp_millis())
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|d| d.and_utc().timestamp_millis())
            }),
        _ => None,
    }
}

fn text_of(c: &Contact, field: &str) -> Option<String> {
    let v = match field {
        "firstNameLowerCase" => c.first_name.clone(),
        "lastNameLowerCase" => c.last_name.clone(),
        "contactName" => c.full_name(),
        "address" => c.address1.clone(),
        "assignedTo" => c.assigned_to.clone(),
        "city" => c.city.clone(),
        "state" => c.state.clone(),
        "country" => c.country.clone(),
        "postalCode" => c.postal_code.clone(),
        "source" => c.source.clone(),
        "companyName" => c.company_name.clone(),
        "timezone" => c.timezone.clone(),
        "type" => Some(c.contact_type.clone()),
        "website" => c.website.clone(),
        "email" => c.email.clone(),
        "id" => Some(c.id.clone()),
        f => {
            let id = f.strip_prefix("customFields.")?;
            c.custom_fields
                .iter()
                .find(|(fid, _)| fid == id)
                .map(|(_, v)| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
        }
    };
    v.filter(|s| !s.is_empty())
}

fn date_of(c: &Contact, field: &str) -> Option<i64> {
    match field {
        "dateAdded" => Some(c.date_added.timestamp_millis()),
        "dateUpdated" => Some(c.date_updated.timestamp_millis()),
        "dateOfBirth" => c
            .date_of_birth
            .as_ref()
            .and_then(|d| to_ms(field, &Value::String(d.clone()))),
        _ => None,
    }
}

fn matches(c: &Contact, f: &Filter) -> bool {
    match f {
        Filter::Group { any, items } => {
            if *any {
                items.iter().any(|x| matches(c, x))
            } else {
                items.iter().all(|x| matches(c, x))
            }
        }
        Filter::Cond { field, op, value } => cond(c, field, op, value.as_ref()),
    }
}

fn cond(c: &Contact, field: &str, op: &str, value: Option<&Value>) -> bool {
    let want: Vec<String> = match value {
        Some(Value::String(s)) => vec![s.to_lowercase()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_lowercase)
            .collect(),
        _ => vec![],
    };
    match field {
        "dateAdded" | "dateUpdated" | "dateOfBirth" => {
            let d = date_of(c, field);
            return match op {
                "exists" => d.is_some(),
                "not_exists" => d.is_none(),
                _ => {
                    let Some(d) = d else { return false };
                    value
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .all(|(k, v)| {
                            let b = to_ms(field, v).unwrap_or(0);
                            match k.as_str() {
                                "gt" => d > b,
                                "gte" => d >= b,
                                "lt" => d < b,
                                _ => d <= b,
                            }
                        })
                }
            };
        }
        "dnd" => {
            let eq = value.and_then(Value::as_bool) == Some(c.dnd)
                || value.and_then(Value::as_str) == Some(if c.dnd { "true" } else { "false" });
            return if op == "eq" { eq } else { !eq };
        }
        "tags" => {
            let tags: Vec<String> = c.tags.iter().map(|t| t.to_lowercase()).collect();
            return match op {
                "exists" => !tags.is_empty(),
                "not_exists" => tags.is_empty(),
                "eq" => want.iter().any(|w| tags.contains(w)),
                "not_eq" => !want.iter().any(|w| tags.contains(w)),
                "contains" => want.iter().any(|w| tags.iter().any(|t| t.contains(w))),
                _ => !want.iter().any(|w| tags.iter().any(|t| t.contains(w))),
            };
        }
        _ => {}
    }
    let have = if field == "phone" {
        c.phone.clone()
    } else {
        text_of(c, field).map(|s| s.to_lowercase())
    };
    let want_one = if field == "phone" {
        want.first()
            .and_then(|w| normalize_phone(w))
            .unwrap_or_default()
    } else {
        want.first().cloned().unwrap_or_default()
    };
    match op {
        "exists" => have.is_some(),
        "not_exists" => have.is_none(),
        "eq" => have.as_deref() == Some(want_one.as_str()),
        "not_eq" => have.as_deref() != Some(want_one.as_str()),
        "contains" => have.is_some_and(|h| h.contains(&want_one)),
        _ => !have.is_some_and(|h| h.contains(&want_one)),
    }
}

fn key_of(c: &Contact, field: &str) -> Key {
    match field {
        "dateAdded" => Key::Num(c.date_added.timestamp_millis()),
        "dateUpdated" => Key::Num(c.date_updated.timestamp_millis()),
        "dnd" => Key::Num(i64::from(c.dnd)),
        "email" => Key::Str(c.email.clone().unwrap_or_default().to_lowercase()),
        "businessName" => Key::Str(c.company_name.clone().unwrap_or_default().to_lowercase()),
        f => Key::Str(text_of(c, f).unwrap_or_default().to_lowercase()),
    }
}

fn key_from_json(field: &str, v: &Value) -> Option<Key> {
    match field {
        "dateAdded" | "dateUpdated" | "dnd" => v.as_i64().map(Key::Num),
        _ => v.as_str().map(|s| Key::Str(s.to_string())),
    }
}

fn cmp_keys(a: &[Key], b: &[Key], dirs: &[bool]) -> Ordering {
    for (i, desc) in dirs.iter().enumerate() {
        let o = a[i].cmp(&b[i]);
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    // The id tiebreak is always ascending.
    a[dirs.len()].cmp(&b[dirs.len()])
}

/// Every searchable contact that matches, with its sort keys, in the order of `sort`.
fn matching<'a>(
    st: &'a GhlState,
    filters: &[Filter],
    query: Option<&str>,
    sort: &[(String, bool)],
    dirs: &[bool],
) -> Vec<(Vec<Key>, &'a Contact)> {
    let mut hits: Vec<(Vec<Key>, &Contact)> = st
        .searchable()
        .into_iter()
        .filter(|c| filters.iter().all(|f| matches(c, f)))
        .filter(|c| match query {
            None => true,
            Some(q) => [
                &c.first_name,
                &c.last_name,
                &c.email,
                &c.phone,
                &c.company_name,
            ]
            .into_iter()
            .flatten()
            .any(|f| f.to_lowercase().contains(q)),
        })
        .map(|c| {
            let mut k: Vec<Key> = sort.iter().map(|(f, _)| key_of(c, f)).collect();
            k.push(Key::Str(c.id.clone()));
            (k, c)
        })
        .collect();
    hits.sort_by(|a, b| cmp_keys(&a.0, &b.0, dirs));
    hits
}

pub(crate) fn search(st: &mut GhlState, ctx: &Ctx) -> ApiResult {
    ctx.need("contacts.readonly")?;
    let obj = check(&ctx.body, &DTO)?;
    same_location(st, &s(&obj, "locationId").unwrap_or_default())?;
    let mut errs = Vec::new();
    let page_limit = obj["pageLimit"].as_u64().unwrap_or(0);
    if page_limit == 0 || page_limit > MAX_PAGE_LIMIT {
        errs.push(format!(
            "pageLimit must be an integer between 1 and {MAX_PAGE_LIMIT}"
        ));
    }
    let page = match obj.get("page") {
        None => None,
        Some(v) => match v.as_u64().filter(|p| *p >= 1) {
            Some(p) => Some(p),
            None => {
                errs.push("page must be a positive integer".into());
                None
            }
        },
    };
    let search_after = obj.get("searchAfter").cloned();
    if page.is_some() && search_after.is_some() {
        errs.push("page and searchAfter cannot be used together".into());
    }
    if let Some(p) = page
        && p.saturating_mul(page_limit) > PAGE_WINDOW
    {
        errs.push(format!(
            "page * pageLimit must not exceed {PAGE_WINDOW}; use searchAfter to go further"
        ));
    }
    let query = s(&obj, "query").map(|q| q.to_lowercase());
    if query.as_ref().is_some_and(|q| q.chars().count() > 75) {
        errs.push("query must be shorter than or equal to 75 characters".into());
    }
    let filters = match obj.get("filters") {
        Some(v) => parse_filters(v, "filters", st.date_range_format, &mut errs),
        None => Vec::new(),
    };
    // Sort: [(field, desc)]
    let mut sort: Vec<(String, bool)> = Vec::new();
    let explicit_sort = obj.get("sort").is_some();
    match obj.get("sort") {
        None => sort.push(("dateAdded".into(), true)),
        Some(Value::Array(items)) => {
            if items.len() > 2 {
                errs.push("sort must contain no more than 2 elements".into());
            }
            for (i, it) in items.iter().enumerate() {
                let field = it.get("field").and_then(Value::as_str).unwrap_or_default();
                let dir = it.get("direction").and_then(Value::as_str).unwrap_or("");
                if !SORTABLE.contains(&field) {
                    errs.push(format!("sort.{i}.field {field:?} is not sortable"));
                }
                if !matches!(dir, "asc" | "desc") {
                    errs.push(format!(
                        "sort.{i}.direction must be one of the following values: asc, desc"
                    ));
                }
                if let Some(o) = it.as_object() {
                    for k in o.keys() {
                        if k != "field" && k != "direction" {
                            errs.push(format!("sort.{i}.property {k} should not exist"));
                        }
                    }
                }
                sort.push((field.to_string(), dir == "desc"));
            }
            if items.is_empty() {
                sort.push(("dateAdded".into(), true));
            }
        }
        Some(_) => errs.push("sort must be an array".into()),
    }
    let cursor: Option<Vec<Key>> = match &search_after {
        None => None,
        Some(v) => {
            let parsed = v.as_array().and_then(|a| {
                if a.len() != sort.len() + 1 {
                    return None;
                }
                let mut keys = Vec::new();
                for (i, (field, _)) in sort.iter().enumerate() {
                    keys.push(key_from_json(field, &a[i])?);
                }
                keys.push(Key::Str(a[sort.len()].as_str()?.to_string()));
                Some(keys)
            });
            if parsed.is_none() {
                errs.push(
                    "searchAfter must be the searchAfter array of a contact returned with the same sort"
                        .into(),
                );
            }
            parsed
        }
    };
    if !errs.is_empty() {
        return Err(ApiError::unprocessable(errs));
    }

    let dirs: Vec<bool> = sort.iter().map(|(_, d)| *d).collect();
    let paging = st.search_paging.clone();
    let shuffle = (paging.unstable_default_order && !explicit_sort).then(|| st.roll());
    st.expire_lag();
    // The matches of a plain search, in order, are kept until the location changes: reading
    // 100,000 contacts 500 at a time then filters and sorts once, not 200 times. A lagging
    // write, an unstable order or a hostile search answer differently each time: never kept.
    let cacheable = st.lagging.is_empty() && shuffle.is_none() && !paging.stuck;
    let cache_key = cacheable.then(|| json!([obj.get("filters"), sort, query]).to_string());
    if let Some(key) = &cache_key
        && st.search_cache.as_ref().is_none_or(|c| &c.key != key)
    {
        let hits = matching(st, &filters, query.as_deref(), &sort, &dirs)
            .into_iter()
            .map(|(k, c)| (k, c.id.clone()))
            .collect();
        st.search_cache = Some(SearchCache {
            key: key.clone(),
            hits,
        });
    }
    if let (Some(_), Some(cache)) = (&cache_key, &st.search_cache) {
        // Seek into the kept order: only the page's contacts are looked at.
        let start = start_of(
            &cache.hits,
            |h| &h.0,
            cursor.as_deref(),
            page,
            page_limit,
            &dirs,
        );
        let total = paging.total_cap.map_or(cache.hits.len() as u64, |cap| {
            (cache.hits.len() as u64).min(cap)
        });
        let page_hits = cache.hits.iter().skip(start).take(page_limit as usize);
        let hits = page_hits.filter_map(|(k, id)| st.contacts.get(id).map(|c| (k.as_slice(), c)));
        return Ok(answer(&st.location_id, hits, total));
    }
    let mut hits = matching(st, &filters, query.as_deref(), &sort, &dirs);
    if let Some(seed) = shuffle {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        hits.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    }

    let mut total = hits.len() as u64;
    if let Some(cap) = paging.total_cap {
        total = total.min(cap);
    }
    if paging.stuck {
        // The first page again, filled up to `pageLimit` by repeating it if need be.
        let first: Vec<(Vec<Key>, &Contact)> =
            hits.iter().take(page_limit as usize).cloned().collect();
        let mut page = Vec::new();
        while !first.is_empty() && page.len() < page_limit as usize {
            page.extend(first.iter().take(page_limit as usize - page.len()).cloned());
        }
        hits = page;
        total = 1_000_000_000;
    }
    let start = if paging.stuck {
        0
    } else {
        start_of(&hits, |h| &h.0, cursor.as_deref(), page, page_limit, &dirs)
    };
    let page_hits = hits.iter().skip(start).take(page_limit as usize);
    Ok(answer(
        &st.location_id,
        page_hits.map(|(k, c)| (k.as_slice(), *c)),
        total,
    ))
}

/// Where the requested page starts in `hits`, ordered by the keys `key` gives.
fn start_of<T>(
    hits: &[T],
    key: impl Fn(&T) -> &Vec<Key>,
    cursor: Option<&[Key]>,
    page: Option<u64>,
    page_limit: u64,
    dirs: &[bool],
) -> usize {
    match (cursor, page) {
        (Some(cur), _) => {
            hits.partition_point(|h| cmp_keys(key(h), cur, dirs) != Ordering::Greater)
        }
        (None, Some(p)) => ((p - 1) * page_limit) as usize,
        (None, None) => 0,
    }
}

/// One page of the search answer: each contact in its search shape with its cursor.
fn answer<'a>(
    loc: &str,
    hits: impl Iterator<Item = (&'a [Key], &'a Contact)>,
    total: u64,
) -> (StatusCode, Value) {
    let contacts: Vec<Value> = hits
        .map(|(k, c)| {
            let mut m = search_shape(c, loc);
            m.insert(
                "searchAfter".into(),
                Value::Array(k.iter().map(Key::json).collect()),
            );
            Value::Object(m)
        })
        .collect();
    (
        StatusCode::OK,
        json!({"contacts": contacts, "total": total}),
    )
}
