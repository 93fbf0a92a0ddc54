//! Contract: every request body the typed `GhlClient` (and `OAuthTokens`) sends is valid against
//! the official GHL OpenAPI request schema. The client drives the emulator, the bodies are read
//! back from the emulator's request log, and each is validated strictly (unknown properties are
//! errors, as on the real server). Where the spec has no usable schema (the contact search body
//! is an empty DTO) the body is checked against the fields `reference/ghl-api.md` §3.4 documents.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use chrono::{TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use hotspot_ghl_sync::ghl::wire::{
    BusinessInput, ContactCreate, ContactUpdate, CustomFieldInput, Filter, NoteInput, SortSpec,
    TaskCreate, TaskSearch, TaskUpdate,
};
use hotspot_ghl_sync::ghl::{
    GhlClient, MemoryTokenStore, OAuthConfig, OAuthTokens, TokenSource, TokenStore,
};
use hotspot_ghl_sync::http::{AuditSink, HttpPolicy, PolicyConfig};
use hotspot_ghl_sync::sandbox::ghl::{
    Contact, GhlEmulator, GhlOptions, GhlRequest, PRODUCT_SCOPES,
};
use support::openapi::validate_request;

const CONTACTS: &str = "apps/contacts.json";
const BUSINESSES: &str = "apps/businesses.json";
const LOCATIONS: &str = "apps/locations.json";
const OAUTH: &str = "apps/oauth.json";
const CF_KEY: &str = "contact.hotspot_customer_id";

fn fast() -> PolicyConfig {
    PolicyConfig {
        api: "ghl",
        rate_max: 100_000,
        rate_window: Duration::from_secs(1),
        max_attempts: 3,
        max_elapsed: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        daily_reserve: 0,
        daily_recheck: Duration::from_secs(3600),
        max_response_bytes: 32 << 20,
    }
}

fn policy() -> HttpPolicy {
    HttpPolicy::new(fast(), AuditSink::new()).unwrap()
}

async fn start() -> (GhlEmulator, GhlClient) {
    let emu = GhlEmulator::start(GhlOptions {
        rate_limit: 100_000,
        rate_window: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = GhlClient::new(
        &emu.base_url(),
        &emu.location_id(),
        TokenSource::Static(SecretString::from("pit-test-token")),
        policy(),
    )
    .unwrap();
    (emu, client)
}

/// The spec operation a logged write belongs to: `Some((spec, template))`, or `None` for a
/// request that carries no body (GET, DELETE of a record). Search is handled apart.
fn operation(method: &str, path: &str) -> Option<(&'static str, &'static str)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method, segs.as_slice()) {
        ("POST", ["contacts"]) => (CONTACTS, "/contacts/"),
        ("POST", ["contacts", "upsert"]) => (CONTACTS, "/contacts/upsert"),
        ("POST", ["contacts", "bulk", "business"]) => (CONTACTS, "/contacts/bulk/business"),
        ("PUT", ["contacts", _]) => (CONTACTS, "/contacts/{contactId}"),
        ("POST" | "DELETE", ["contacts", _, "tags"]) => (CONTACTS, "/contacts/{contactId}/tags"),
        ("POST", ["contacts", _, "tasks"]) => (CONTACTS, "/contacts/{contactId}/tasks"),
        ("PUT", ["contacts", _, "tasks", _]) => (CONTACTS, "/contacts/{contactId}/tasks/{taskId}"),
        ("PUT", ["contacts", _, "tasks", _, "completed"]) => {
            (CONTACTS, "/contacts/{contactId}/tasks/{taskId}/completed")
        }
        ("POST", ["contacts", _, "notes"]) => (CONTACTS, "/contacts/{contactId}/notes"),
        ("PUT", ["contacts", _, "notes", _]) => (CONTACTS, "/contacts/{contactId}/notes/{id}"),
        ("POST", ["businesses"]) => (BUSINESSES, "/businesses/"),
        ("PUT", ["businesses", _]) => (BUSINESSES, "/businesses/{businessId}"),
        ("POST", ["locations", _, "tasks", "search"]) => {
            (LOCATIONS, "/locations/{locationId}/tasks/search")
        }
        _ => return None,
    })
}

/// §3.4: the fields of a search body, with `locationId` and `pageLimit` required, `page` and
/// `searchAfter` never together, `pageLimit ≤ 500` and `page × pageLimit ≤ 10,000`.
#[track_caller]
fn check_search_body(body: &Value, location_id: &str) {
    const KNOWN: &[&str] = &[
        "locationId",
        "pageLimit",
        "page",
        "searchAfter",
        "filters",
        "sort",
        "query",
    ];
    let obj = body.as_object().expect("search body is an object");
    for k in obj.keys() {
        assert!(
            KNOWN.contains(&k.as_str()),
            "unknown search key {k}: {body}"
        );
    }
    assert_eq!(obj.get("locationId"), Some(&json!(location_id)), "{body}");
    let limit = obj
        .get("pageLimit")
        .and_then(Value::as_u64)
        .expect("pageLimit");
    assert!((1..=500).contains(&limit), "{body}");
    assert!(
        !(obj.contains_key("page") && obj.contains_key("searchAfter")),
        "page with searchAfter: {body}"
    );
    if let Some(p) = obj.get("page") {
        let p = p.as_u64().expect("page is a number");
        assert!(p >= 1 && p * limit <= 10_000, "{body}");
    }
    if let Some(sa) = obj.get("searchAfter") {
        assert!(sa.as_array().is_some_and(|a| !a.is_empty()), "{body}");
    }
    if let Some(q) = obj.get("query") {
        assert!(q.as_str().is_some_and(|q| q.chars().count() <= 75));
    }
    if let Some(sort) = obj.get("sort") {
        let sort = sort.as_array().expect("sort is an array");
        assert!(sort.len() <= 2, "{body}");
        for s in sort {
            let o = s.as_object().expect("sort item");
            assert_eq!(
                o.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                BTreeSet::from(["direction", "field"]),
                "{body}"
            );
            assert!(matches!(o["direction"].as_str(), Some("asc" | "desc")));
        }
    }
    for f in obj
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check_filter(f);
    }
}

/// A filter is `{field, operator, value?}` or `{group: AND|OR, filters: [...]}`.
#[track_caller]
fn check_filter(f: &Value) {
    let o = f.as_object().expect("filter is an object");
    if o.contains_key("group") {
        assert_eq!(
            o.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            BTreeSet::from(["filters", "group"]),
            "{f}"
        );
        assert!(matches!(o["group"].as_str(), Some("AND" | "OR")), "{f}");
        for inner in o["filters"].as_array().expect("group filters") {
            check_filter(inner);
        }
        return;
    }
    for k in o.keys() {
        assert!(
            matches!(k.as_str(), "field" | "operator" | "value"),
            "unknown filter key {k}: {f}"
        );
    }
    assert!(o["field"].is_string(), "{f}");
    let op = o["operator"].as_str().expect("operator");
    assert!(
        matches!(
            op,
            "eq" | "not_eq" | "contains" | "not_contains" | "exists" | "not_exists" | "range"
        ),
        "{f}"
    );
    match op {
        "exists" | "not_exists" => assert!(!o.contains_key("value"), "{f}"),
        "range" => {
            let r = o["value"].as_object().expect("range value is an object");
            assert!(!r.is_empty());
            for k in r.keys() {
                assert!(matches!(k.as_str(), "gt" | "gte" | "lt" | "lte"), "{f}");
            }
        }
        _ => {
            if let Some(s) = o.get("value").and_then(Value::as_str) {
                assert!(s.chars().count() <= 75, "{f}");
            }
        }
    }
}

/// Validates every logged request: 2xx from the strict emulator, and its body against the spec
/// (or §3.4 for search). Returns how many bodies each operation had.
fn validate_log(log: &[GhlRequest], location_id: &str) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for r in log {
        assert!(
            (200..300).contains(&r.status),
            "{} {} answered {}: {:?}",
            r.method,
            r.path,
            r.status,
            r.body
        );
        if r.method == "POST" && r.path == "/contacts/search" {
            check_search_body(r.body.as_ref().expect("search body"), location_id);
            *seen.entry("POST /contacts/search".to_string()).or_default() += 1;
            continue;
        }
        let Some((spec, template)) = operation(&r.method, &r.path) else {
            assert!(
                r.body.is_none(),
                "{} {} has an unchecked body",
                r.method,
                r.path
            );
            continue;
        };
        let body = r
            .body
            .as_ref()
            .unwrap_or_else(|| panic!("{} {} sent no JSON body", r.method, r.path));
        if let Err(errs) = validate_request(spec, &r.method, template, body) {
            panic!(
                "{} {template} body breaks the spec: {errs:#?}\nbody: {body:#}",
                r.method
            );
        }
        *seen.entry(format!("{} {template}", r.method)).or_default() += 1;
    }
    seen
}

fn full_create(email: &str, field_id: &str) -> ContactCreate {
    ContactCreate {
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        name: Some("Ada Lovelace".into()),
        email: Some(email.into()),
        phone: Some("+15550100101".into()),
        address1: Some("12 Engine Row".into()),
        city: Some("London".into()),
        state: Some("LDN".into()),
        postal_code: Some("N1 9GU".into()),
        country: Some("GB".into()),
        website: Some("https://example.com".into()),
        timezone: Some("Europe/London".into()),
        company_name: Some("Analytical Engines".into()),
        source: Some("hotspot".into()),
        assigned_to: None,
        dnd: Some(false),
        date_of_birth: Some("1990-09-25".into()),
        tags: Some(vec!["wifi".into(), "hs-cafe".into()]),
        custom_fields: Some(vec![
            CustomFieldInput::by_key(CF_KEY, "HS-1"),
            CustomFieldInput::by_id(field_id, "HS-1"),
        ]),
    }
}

#[tokio::test]
async fn every_contact_write_matches_the_spec() {
    let (emu, client) = start().await;
    let field_id = emu.with_state(|s| s.custom_field(CF_KEY).unwrap().id.clone());
    let created = client
        .create_contact(&full_create("ada@example.com", &field_id), false)
        .await
        .unwrap();
    let id = created.id.unwrap();
    client
        .update_contact(
            &id,
            &ContactUpdate {
                first_name: Some(Some("Augusta".into())),
                last_name: Some(Some("King".into())),
                name: Some(Some("Augusta King".into())),
                email: Some(Some("augusta@example.com".into())),
                phone: Some(Some("+15550100102".into())),
                address1: Some(Some("1 Ockham Park".into())),
                city: Some(None),
                state: Some(Some("SRY".into())),
                postal_code: Some(Some("GU23".into())),
                country: Some(Some("GB".into())),
                website: Some(Some("https://example.org".into())),
                timezone: Some(Some("Europe/London".into())),
                source: Some(Some("hotspot".into())),
                assigned_to: None,
                dnd: Some(true),
                date_of_birth: Some(Some("1815-12-10".into())),
                custom_fields: Some(vec![CustomFieldInput::by_key(CF_KEY, "HS-2")]),
            },
        )
        .await
        .unwrap();
    let up = client
        .upsert_contact(&full_create("babbage@example.com", &field_id))
        .await
        .unwrap();
    assert_eq!(up.new, Some(true));
    client
        .add_tags(&id, &["hs-paid".into(), "hs-voucher".into()])
        .await
        .unwrap();
    client.remove_tags(&id, &["hs-paid".into()]).await.unwrap();
    let other = up.contact.unwrap().id.unwrap();
    assert!(client.delete_contact(&other).await.unwrap());

    let seen = validate_log(&emu.requests(), &emu.location_id());
    let want: BTreeSet<&str> = [
        "POST /contacts/",
        "PUT /contacts/{contactId}",
        "POST /contacts/upsert",
        "POST /contacts/{contactId}/tags",
        "DELETE /contacts/{contactId}/tags",
    ]
    .into();
    assert_eq!(
        seen.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        want
    );
    // The DELETE of the contact went out without a body.
    assert!(emu.requests().iter().any(|r| r.method == "DELETE"
        && r.path == format!("/contacts/{other}")
        && r.body.is_none()));
}

#[tokio::test]
async fn task_note_business_and_association_writes_match_the_spec() {
    let (emu, client) = start().await;
    let cid = client
        .create_contact(
            &ContactCreate {
                email: Some("t@example.com".into()),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap()
        .id
        .unwrap();
    let due = Utc.with_ymd_and_hms(2030, 7, 8, 2, 30, 0).unwrap();
    let task = client
        .create_task(
            &cid,
            &TaskCreate {
                title: "Welcome call".into(),
                body: Some("New WiFi guest at Cafe".into()),
                due_date: due,
                completed: false,
                assigned_to: Some("y0BeYjuRIlDwsDcOHOJo".into()),
            },
            false,
        )
        .await
        .unwrap();
    let tid = task.id.unwrap();
    client
        .update_task(
            &cid,
            &tid,
            &TaskUpdate {
                title: Some("Welcome call (2)".into()),
                body: Some("moved".into()),
                due_date: Some(due + chrono::Duration::days(1)),
                completed: Some(false),
                assigned_to: Some("y0BeYjuRIlDwsDcOHOJo".into()),
            },
        )
        .await
        .unwrap();
    let done = client.complete_task(&cid, &tid, true).await.unwrap();
    assert_eq!(done.completed, Some(true));
    let note = client
        .create_note(
            &cid,
            &NoteInput {
                body: Some("Paid 4.50 EUR [hs:paid:9]".into()),
                user_id: Some("GCs5KuzPqTls7vWclkEV".into()),
                title: Some("WiFi purchase".into()),
                color: Some("#FFAA00".into()),
                pinned: Some(false),
            },
            false,
        )
        .await
        .unwrap();
    client
        .update_note(
            &cid,
            note.id.as_deref().unwrap(),
            &NoteInput {
                body: Some("Paid 4.50 EUR [hs:paid:9] (edited)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let full_business = BusinessInput {
        name: Some("Cafe Aurora".into()),
        phone: Some("+15550100999".into()),
        email: Some("cafe@example.com".into()),
        website: Some("https://cafe.example.com".into()),
        address: Some("1 Harbour St".into()),
        city: Some("Oslo".into()),
        postal_code: Some("0150".into()),
        state: Some("Oslo".into()),
        country: Some("NO".into()),
        description: Some("HotspotSystem location 3".into()),
    };
    let biz = client
        .create_business(&full_business, false)
        .await
        .unwrap()
        .id
        .unwrap();
    client
        .update_business(
            &biz,
            &BusinessInput {
                description: Some("renamed".into()),
                ..full_business.clone()
            },
        )
        .await
        .unwrap();
    client
        .bulk_business(std::slice::from_ref(&cid), Some(&biz))
        .await
        .unwrap();
    assert_eq!(
        emu.with_state(|s| s.contacts[&cid].business_id.clone()),
        Some(biz.clone())
    );
    client
        .bulk_business(std::slice::from_ref(&cid), None)
        .await
        .unwrap();
    assert_eq!(
        emu.with_state(|s| s.contacts[&cid].business_id.clone()),
        None
    );
    let found = client
        .search_location_tasks(&TaskSearch {
            contact_id: Some(vec![cid.clone()]),
            completed: Some(true),
            assigned_to: Some(vec!["y0BeYjuRIlDwsDcOHOJo".into()]),
            query: Some("Welcome".into()),
            limit: Some(10),
            skip: Some(0),
            business_id: None,
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    client
        .search_location_tasks(&TaskSearch::default())
        .await
        .unwrap();

    let seen = validate_log(&emu.requests(), &emu.location_id());
    let want: BTreeSet<&str> = [
        "POST /contacts/",
        "POST /contacts/{contactId}/tasks",
        "PUT /contacts/{contactId}/tasks/{taskId}",
        "PUT /contacts/{contactId}/tasks/{taskId}/completed",
        "POST /contacts/{contactId}/notes",
        "PUT /contacts/{contactId}/notes/{id}",
        "POST /businesses/",
        "PUT /businesses/{businessId}",
        "POST /contacts/bulk/business",
        "POST /locations/{locationId}/tasks/search",
    ]
    .into();
    assert_eq!(
        seen.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        want
    );
    assert_eq!(seen["POST /contacts/bulk/business"], 2);
    // `businessId: null` removes the association, so it is sent, not skipped.
    let removal = emu
        .requests()
        .into_iter()
        .filter(|r| r.path == "/contacts/bulk/business")
        .nth(1)
        .unwrap();
    assert_eq!(removal.body.unwrap()["businessId"], Value::Null);
}

#[tokio::test]
async fn search_bodies_with_every_filter_kind_match_section_3_4() {
    let (emu, client) = start().await;
    let field_id = emu.with_state(|s| s.custom_field(CF_KEY).unwrap().id.clone());
    let now = Utc::now();
    emu.with_state(|s| {
        for i in 0..6 {
            let id = s.new_id();
            let mut c = Contact::new(id, now - chrono::Duration::hours(i));
            c.email = Some(format!("s{i}@example.com"));
            c.phone = Some(format!("+1555010020{i}"));
            c.tags = vec![if i % 2 == 0 { "even" } else { "odd" }.into()];
            c.custom_fields = vec![(field_id.clone(), json!(format!("HS-{i}")))];
            s.insert_contact(c);
        }
    });
    let run = |filters: Vec<Filter>, sort: Vec<SortSpec>| {
        let client = client.clone();
        async move {
            let mut s = client.search_contacts(filters, sort, 100);
            let mut ids = Vec::new();
            while let Some(page) = s.next_page().await.unwrap() {
                ids.extend(page.into_iter().map(|c| c.id.unwrap()));
            }
            assert!(s.complete());
            ids
        }
    };
    assert_eq!(
        run(vec![Filter::email_eq("s1@example.com")], vec![])
            .await
            .len(),
        1
    );
    assert_eq!(
        run(vec![Filter::phone_eq("+15550100202")], vec![])
            .await
            .len(),
        1
    );
    assert_eq!(
        run(vec![Filter::custom_field_eq(&field_id, "HS-3")], vec![])
            .await
            .len(),
        1
    );
    assert_eq!(
        run(
            vec![Filter::date_updated_range(
                Some(now - chrono::Duration::minutes(150)),
                Some(now + chrono::Duration::minutes(1)),
            )],
            vec![]
        )
        .await
        .len(),
        3
    );
    assert_eq!(
        run(
            vec![Filter::any_of(vec![
                Filter::email_eq("s0@example.com"),
                Filter::email_eq("s5@example.com"),
            ])],
            vec![SortSpec::desc("dateUpdated"), SortSpec::asc("email")],
        )
        .await
        .len(),
        2
    );
    assert_eq!(run(vec![Filter::eq("tags", "odd")], vec![]).await.len(), 3);
    assert_eq!(run(vec![], vec![SortSpec::asc("dateAdded")]).await.len(), 6);

    let log = emu.requests();
    let seen = validate_log(&log, &emu.location_id());
    assert_eq!(seen.get("POST /contacts/search"), Some(&7));
    let fields: BTreeSet<String> = log
        .iter()
        .filter_map(|r| r.body.as_ref()?.get("filters")?.as_array().cloned())
        .flatten()
        .map(|f| f.get("field").or(f.get("group")).unwrap().to_string())
        .collect();
    assert_eq!(fields.len(), 6, "each filter kind was sent: {fields:?}");
}

#[tokio::test]
async fn search_after_bodies_beyond_10000_match_section_3_4() {
    let (emu, client) = start().await;
    let base = Utc::now() - chrono::Duration::days(3);
    emu.with_state(|s| {
        for i in 0..10_200 {
            let id = s.new_id();
            s.insert_contact(Contact::new(id, base + chrono::Duration::seconds(i)));
        }
    });
    let mut search = client.search_contacts(vec![], vec![], 500);
    let mut n = 0;
    while let Some(page) = search.next_page().await.unwrap() {
        n += page.len();
    }
    assert_eq!(n, 10_200);
    assert!(search.complete());
    let log = emu.requests();
    let seen = validate_log(&log, &emu.location_id());
    assert_eq!(seen.get("POST /contacts/search"), Some(&21));
    let last = log.last().unwrap().body.clone().unwrap();
    assert!(
        last.get("searchAfter").is_some() && last.get("page").is_none(),
        "{last}"
    );
}

/// One form body as sent: its pairs in order.
type FormPairs = Vec<(String, String)>;

/// Form bodies sent to the token endpoint, captured by a recording proxy in front of the
/// emulator (the emulator itself never logs them: they carry secrets).
#[derive(Clone)]
struct Proxy {
    upstream: String,
    seen: Arc<Mutex<Vec<FormPairs>>>,
    http: reqwest::Client,
}

async fn token_proxy(State(p): State<Proxy>, Form(form): Form<FormPairs>) -> impl IntoResponse {
    p.seen.lock().unwrap().push(form.clone());
    let resp = p
        .http
        .post(format!("{}/oauth/token", p.upstream))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    (
        status,
        axum::Json(resp.json::<Value>().await.unwrap_or(Value::Null)),
    )
}

fn form_json(form: &[(String, String)]) -> Value {
    let mut m = Map::new();
    for (k, v) in form {
        assert!(
            m.insert(k.clone(), Value::String(v.clone())).is_none(),
            "{k} sent twice"
        );
    }
    Value::Object(m)
}

#[tokio::test]
async fn oauth_exchange_and_refresh_forms_match_the_spec() {
    let (emu, _) = start().await;
    let proxy = Proxy {
        upstream: emu.base_url(),
        seen: Arc::default(),
        http: support::http_client(),
    };
    let app = Router::new()
        .route("/oauth/token", post(token_proxy))
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let store = Arc::new(MemoryTokenStore::new(None));
    let cfg = OAuthConfig::new(
        &base,
        "emu-client-id",
        SecretString::from("emu-client-secret"),
    );
    let tokens = OAuthTokens::new(cfg, store.clone(), policy()).unwrap();
    let code = emu.issue_auth_code(PRODUCT_SCOPES);
    let first = tokens
        .exchange_code(&code, Some("http://127.0.0.1:9/callback"))
        .await
        .unwrap();
    // As after a 401 on the first access token: one refresh grant.
    let fresh = tokens
        .refresh_after_rejection(&first.access_token)
        .await
        .unwrap();
    assert_ne!(fresh.expose_secret(), first.access_token.expose_secret());
    assert_eq!(emu.token_refreshes(), 1);
    assert_eq!(
        store.load().unwrap().unwrap().access_token.expose_secret(),
        fresh.expose_secret()
    );

    let forms = proxy.seen.lock().unwrap().clone();
    assert_eq!(forms.len(), 2);
    for form in &forms {
        let body = form_json(form);
        if let Err(errs) = validate_request(OAUTH, "POST", "/oauth/token", &body) {
            panic!("token form breaks the spec: {errs:#?}");
        }
    }
    let exchange = form_json(&forms[0]);
    assert_eq!(exchange["grant_type"], "authorization_code");
    assert_eq!(exchange["code"], code.as_str());
    assert_eq!(exchange["redirect_uri"], "http://127.0.0.1:9/callback");
    assert!(exchange.get("refresh_token").is_none());
    let refresh = form_json(&forms[1]);
    assert_eq!(refresh["grant_type"], "refresh_token");
    assert_eq!(
        refresh["refresh_token"],
        first.refresh_token.expose_secret()
    );
    assert_eq!(
        refresh["user_type"], "Location",
        "the official SDK sends it"
    );
    assert!(refresh.get("code").is_none());
}
