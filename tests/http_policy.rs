//! The HTTP policy and both clients against small axum servers on 127.0.0.1:0, one per test.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use hotspot_ghl_sync::ghl::wire::{ContactCreate, Filter, SortSpec};
use hotspot_ghl_sync::ghl::{
    GhlClient, GhlError, MemoryTokenStore, OAuthConfig, OAuthTokens, TokenPair, TokenSource,
    TokenStore,
};
use hotspot_ghl_sync::hotspot::HotspotClient;
use hotspot_ghl_sync::http::{
    AuditSink, ErrorClass, HttpError, HttpPolicy, Method, PolicyConfig, Request,
};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

fn cfg() -> PolicyConfig {
    PolicyConfig {
        api: "ghl",
        rate_max: 1000,
        rate_window: Duration::from_secs(1),
        max_attempts: 4,
        max_elapsed: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        min_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        daily_reserve: 0,
        daily_recheck: Duration::from_secs(3600),
        max_response_bytes: 32 << 20,
    }
}

fn policy(c: PolicyConfig) -> (HttpPolicy, AuditSink) {
    let sink = AuditSink::new();
    (HttpPolicy::new(c, sink.clone()).unwrap(), sink)
}

/// A handler that answers from a script of (status, headers, body), then 200 forever.
/// One scripted answer: status, headers, JSON body.
type Answer = (u16, Vec<(&'static str, String)>, Value);

fn scripted(script: Vec<Answer>) -> (Router, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let script = Arc::new(script);
    let h = hits.clone();
    let handler = move || {
        let n = h.fetch_add(1, Ordering::SeqCst) as usize;
        let script = script.clone();
        async move {
            let (status, headers, body) =
                script
                    .get(n)
                    .cloned()
                    .unwrap_or((200, vec![], json!({"ok": true})));
            let mut resp =
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            for (k, v) in headers {
                resp.headers_mut().insert(k, v.parse().unwrap());
            }
            resp
        }
    };
    let app = Router::new().route(
        "/contacts/{id}",
        get(handler.clone()).post(handler.clone()).put(handler),
    );
    (app, hits)
}

fn get_req(base: &str) -> Request {
    Request::new(
        Method::GET,
        format!("{base}/contacts/abc123"),
        "/contacts/{id}",
    )
}

#[tokio::test]
async fn rate_limited_with_retry_after_is_honoured() {
    let (app, hits) = scripted(vec![(
        429,
        vec![("retry-after", "1".into())],
        json!({"statusCode": 429, "message": "Too Many Requests"}),
    )]);
    let base = serve(app).await;
    let (p, sink) = policy(cfg());
    let t = std::time::Instant::now();
    let r = p.send(&get_req(&base)).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(990),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let s = p.stats();
    assert_eq!((s.rate_limited, s.retries), (1, 1));
    let audit = sink.drain();
    assert_eq!(audit[0].error_class, Some(ErrorClass::RateLimited));
    assert_eq!(audit[1].status, Some(200));
}

#[tokio::test]
async fn rate_limited_without_retry_after_backs_off() {
    let (app, hits) = scripted(vec![(429, vec![], json!({})), (429, vec![], json!({}))]);
    let base = serve(app).await;
    let mut c = cfg();
    c.min_backoff = Duration::from_millis(40);
    c.max_backoff = Duration::from_millis(200);
    let (p, _) = policy(c);
    let t = std::time::Instant::now();
    p.send(&get_req(&base)).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Two backoffs of at least the minimum each.
    assert!(
        t.elapsed() >= Duration::from_millis(80),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn burst_of_5xx_then_success() {
    let (app, hits) = scripted(vec![
        (503, vec![], json!({"message": "down"})),
        (500, vec![], json!({"message": "oops"})),
        (502, vec![], json!({})),
    ]);
    let base = serve(app).await;
    let (p, sink) = policy(cfg());
    assert_eq!(p.send(&get_req(&base)).await.unwrap().status, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    let audit = sink.drain();
    let attempts: Vec<u32> = audit.iter().map(|a| a.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3, 4]);
    assert!(
        audit[..3]
            .iter()
            .all(|a| a.error_class == Some(ErrorClass::Transient))
    );
    assert!(
        audit
            .iter()
            .all(|a| a.path == "/contacts/{id}" && a.method == "GET" && a.api == "ghl")
    );
    assert!(audit.iter().all(|a| !a.path.contains("abc123")));
}

#[tokio::test]
async fn retry_cap_reached_is_transient() {
    let script = (0..10)
        .map(|_| (503, vec![], json!({"message": "busy"})))
        .collect();
    let (app, hits) = scripted(script);
    let base = serve(app).await;
    let mut c = cfg();
    c.max_attempts = 3;
    let (p, _) = policy(c);
    let err = p.send(&get_req(&base)).await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Transient));
    assert_eq!(err.status(), Some(503));
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    match err {
        HttpError::Api(e) => {
            assert_eq!(e.attempts, 3);
            assert_eq!(e.message, "busy");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn elapsed_cap_stops_retries() {
    let script = (0..10)
        .map(|_| (429, vec![("retry-after", "5".to_string())], json!({})))
        .collect();
    let (app, hits) = scripted(script);
    let base = serve(app).await;
    let mut c = cfg();
    c.max_elapsed = Duration::from_secs(2);
    let (p, _) = policy(c);
    let t = std::time::Instant::now();
    let err = p.send(&get_req(&base)).await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::RateLimited));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn timeout_is_transient() {
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/contacts/{id}",
        get(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }
        }),
    );
    let base = serve(app).await;
    let mut c = cfg();
    c.timeout = Duration::from_millis(100);
    c.max_attempts = 2;
    let (p, sink) = policy(c);
    let err = p.send(&get_req(&base)).await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Transient));
    assert_eq!(err.status(), None);
    assert!(err.to_string().contains("timeout"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(sink.drain().iter().all(|a| a.status.is_none()));
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // Bind then drop: the port is closed.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let mut c = cfg();
    c.max_attempts = 2;
    let (p, _) = policy(c);
    let err = p.send(&get_req(&base)).await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Transient));
    assert!(err.to_string().contains("connection failed"), "{err}");
}

#[tokio::test]
async fn unprocessable_is_permanent_and_names_the_field() {
    let (app, hits) = scripted(vec![(
        422,
        vec![],
        json!({"statusCode": 422, "message": ["property locationId should not exist"], "error": "Unprocessable Entity"}),
    )]);
    let base = serve(app).await;
    let (p, _) = policy(cfg());
    let req = Request::new(Method::PUT, format!("{base}/contacts/x1"), "/contacts/{id}")
        .json(json!({"locationId": "L"}));
    let err = p.send(&req).await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Permanent));
    assert_eq!(err.status(), Some(422));
    assert!(err.to_string().contains("locationId"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn non_idempotent_post_is_retried_only_when_the_caller_says_so() {
    let script = vec![(500, vec![], json!({})), (500, vec![], json!({}))];
    let (app, hits) = scripted(script.clone());
    let base = serve(app).await;
    let (p, _) = policy(cfg());
    let post = Request::new(Method::POST, format!("{base}/contacts/x"), "/contacts/{id}")
        .json(json!({"a": 1}));
    assert_eq!(p.send(&post).await.unwrap_err().status(), Some(500));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let (app, hits) = scripted(script);
    let base = serve(app).await;
    let post = Request::new(Method::POST, format!("{base}/contacts/x"), "/contacts/{id}")
        .json(json!({"a": 1}))
        .retry_unsafe(true);
    assert_eq!(p.send(&post).await.unwrap().status, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(p.stats().requests_by_method.get("POST"), Some(&4));
}

#[tokio::test]
async fn daily_reserve_fails_fast_without_sending() {
    let quota = vec![
        ("x-ratelimit-daily-remaining", "5".to_string()),
        ("x-ratelimit-limit-daily", "200000".to_string()),
    ];
    let (app, hits) = scripted(vec![(200, quota, json!({}))]);
    let base = serve(app).await;
    let mut c = cfg();
    c.daily_reserve = 5;
    let (p, _) = policy(c);
    assert!(p.quota().is_none());
    p.send(&get_req(&base)).await.unwrap();
    let q = p.quota().unwrap();
    assert_eq!((q.daily_remaining, q.daily_limit), (5, Some(200000)));
    let err = p.send(&get_req(&base)).await.unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::QuotaReserveReached {
                daily_remaining: 5,
                reserve: 5,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// A figure at the reserve expires: at the reset the server names, or after the recheck when
/// the reset is absent or absurd. Then one request goes out and its answer lifts the reserve.
#[tokio::test]
async fn a_daily_figure_at_the_reserve_expires_and_one_request_learns_the_new_one() {
    for reset in [Some("150"), None, Some("0"), Some("999999999999")] {
        let mut low = vec![("x-ratelimit-daily-remaining", "5".to_string())];
        if let Some(r) = reset {
            low.push(("x-ratelimit-daily-reset", r.to_string()));
        }
        let back = vec![("x-ratelimit-daily-remaining", "199000".to_string())];
        let (app, hits) = scripted(vec![(200, low, json!({})), (200, back, json!({}))]);
        let base = serve(app).await;
        let mut c = cfg();
        c.daily_reserve = 5;
        c.daily_recheck = Duration::from_millis(150);
        let (p, _) = policy(c);
        p.send(&get_req(&base)).await.unwrap();
        let err = p.send(&get_req(&base)).await.unwrap_err();
        assert!(
            matches!(err, HttpError::QuotaReserveReached { .. }),
            "{reset:?}: {err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        p.send(&get_req(&base)).await.unwrap();
        assert_eq!(p.quota().unwrap().daily_remaining, 199000, "{reset:?}");
        p.send(&get_req(&base)).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 3, "{reset:?}");
    }
}

#[tokio::test]
async fn limiter_waits_a_window_when_server_says_none_remain() {
    let headers = vec![
        ("x-ratelimit-remaining", "0".to_string()),
        ("x-ratelimit-max", "100".to_string()),
        ("x-ratelimit-interval-milliseconds", "300".to_string()),
    ];
    let (app, _) = scripted(vec![(200, headers, json!({}))]);
    let base = serve(app).await;
    let (p, _) = policy(cfg());
    p.send(&get_req(&base)).await.unwrap();
    let t = std::time::Instant::now();
    p.send(&get_req(&base)).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(280),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn limiter_spaces_requests_to_the_configured_rate() {
    let (app, hits) = scripted(vec![]);
    let base = serve(app).await;
    let mut c = cfg();
    c.rate_max = 5;
    c.rate_window = Duration::from_millis(500);
    let (p, _) = policy(c);
    let t = std::time::Instant::now();
    for _ in 0..10 {
        p.send(&get_req(&base)).await.unwrap();
    }
    // 5 from the full bucket, 5 more at 10/s.
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 10);
}

// ---- GHL auth ------------------------------------------------------------------------------

#[derive(Default)]
struct OAuthServer {
    token_calls: AtomicU32,
    /// (access, refresh) currently valid.
    valid: Mutex<(String, String)>,
    store: Mutex<Option<Arc<MemoryTokenStore>>>,
    used_before_saved: AtomicU32,
}

async fn token_endpoint(
    State(s): State<Arc<OAuthServer>>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let n = s.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ok_form = form.get("grant_type").map(String::as_str) == Some("refresh_token")
        && form.get("client_id").map(String::as_str) == Some("cid")
        && form.get("client_secret").map(String::as_str) == Some("csecret")
        && form.get("user_type").map(String::as_str) == Some("Location");
    let mut valid = s.valid.lock().unwrap();
    if !ok_form || form.get("refresh_token") != Some(&valid.1) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    *valid = (format!("at-{n}"), format!("rt-{n}"));
    axum::Json(json!({"access_token": valid.0, "token_type": "Bearer", "expires_in": 86399,
        "refresh_token": valid.1, "scope": "contacts.readonly contacts.write", "userType": "Location",
        "locationId": "LOC"}))
    .into_response()
}

async fn oauth_contact(
    State(s): State<Arc<OAuthServer>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_start_matches("Bearer ")
        .to_string();
    let version_ok = headers.get("version").and_then(|v| v.to_str().ok()) == Some("2021-07-28");
    let valid = s.valid.lock().unwrap().clone();
    if bearer != valid.0 || !version_ok {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"statusCode": 401, "message": "Invalid token: access token is invalid"}),
            ),
        )
            .into_response();
    }
    // The pair in use must already be in the store.
    if let Some(store) = s.store.lock().unwrap().as_ref() {
        let saved = store.load().unwrap().unwrap();
        if saved.refresh_token.expose_secret() != valid.1 {
            s.used_before_saved.fetch_add(1, Ordering::SeqCst);
        }
    }
    axum::Json(json!({"contact": {"id": id, "email": "a@b.c", "locationId": "LOC"}}))
        .into_response()
}

/// A day-long pair (as GHL issues them) that expires in `expires_in_s`.
fn pair(access: &str, refresh: &str, expires_in_s: i64) -> TokenPair {
    let expires_at = Utc::now() + chrono::Duration::seconds(expires_in_s);
    TokenPair {
        access_token: access.into(),
        refresh_token: refresh.into(),
        issued_at: expires_at - chrono::Duration::seconds(86_399),
        expires_at,
        scope: None,
        user_type: Some("Location".into()),
        location_id: Some("LOC".into()),
    }
}

async fn oauth_setup(
    initial: TokenPair,
    server_valid: (&str, &str),
) -> (
    GhlClient,
    Arc<OAuthServer>,
    Arc<MemoryTokenStore>,
    Arc<OAuthTokens>,
) {
    let s = Arc::new(OAuthServer::default());
    *s.valid.lock().unwrap() = (server_valid.0.into(), server_valid.1.into());
    let store = Arc::new(MemoryTokenStore::new(Some(initial)));
    *s.store.lock().unwrap() = Some(store.clone());
    let app = Router::new()
        .route("/oauth/token", post(token_endpoint))
        .route("/contacts/{id}", get(oauth_contact))
        .with_state(s.clone());
    let base = serve(app).await;
    let (p, _) = policy(cfg());
    let mut oc = OAuthConfig::new(&base, "cid", "csecret".into());
    oc.refresh_margin = Duration::from_secs(60);
    let tokens = Arc::new(OAuthTokens::new(oc, store.clone(), p.clone()).unwrap());
    let client = GhlClient::new(&base, "LOC", TokenSource::OAuth(tokens.clone()), p).unwrap();
    (client, s, store, tokens)
}

#[tokio::test]
async fn unauthorized_refreshes_once_then_succeeds() {
    // The server already revoked at-0 (still "valid" locally): 401, refresh, retry.
    let (client, server, store, tokens) =
        oauth_setup(pair("at-0", "rt-0", 3600), ("at-revoked", "rt-0")).await;
    let c = client.get_contact("c1").await.unwrap().unwrap();
    assert_eq!(c.id.as_deref(), Some("c1"));
    assert_eq!(server.token_calls.load(Ordering::SeqCst), 1);
    assert_eq!(tokens.refresh_count(), 1);
    let saved = store.load().unwrap().unwrap();
    assert_eq!(saved.refresh_token.expose_secret(), "rt-1");
    assert_eq!(server.used_before_saved.load(Ordering::SeqCst), 0);
    // The rotated refresh token is the one used next time.
    client.get_contact("c2").await.unwrap();
    assert_eq!(server.token_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn twenty_concurrent_callers_over_an_expired_token_refresh_once() {
    let (client, server, store, tokens) =
        oauth_setup(pair("at-0", "rt-0", -10), ("at-0", "rt-0")).await;
    let mut joins = Vec::new();
    for i in 0..20 {
        let c = client.clone();
        joins.push(tokio::spawn(async move {
            c.get_contact(&format!("id{i}")).await
        }));
    }
    for j in joins {
        assert!(j.await.unwrap().unwrap().is_some());
    }
    assert_eq!(server.token_calls.load(Ordering::SeqCst), 1);
    assert_eq!(tokens.refresh_count(), 1);
    assert_eq!(store.saves(), 1);
    assert_eq!(server.used_before_saved.load(Ordering::SeqCst), 0);
    assert_eq!(
        store.load().unwrap().unwrap().access_token.expose_secret(),
        "at-1"
    );
}

#[tokio::test]
async fn proactive_refresh_inside_the_margin() {
    // Expires in 30 s, margin 60 s: refreshed before the first call, no 401 needed.
    let (client, server, _, _) = oauth_setup(pair("at-0", "rt-0", 30), ("at-0", "rt-0")).await;
    client.get_contact("x").await.unwrap();
    assert_eq!(server.token_calls.load(Ordering::SeqCst), 1);
    let audit = client.policy().audit().drain();
    assert!(audit.iter().all(|a| a.status != Some(401)), "{audit:?}");
}

#[tokio::test]
async fn failed_refresh_is_an_auth_error_without_secrets() {
    let (client, _, _, _) = oauth_setup(pair("at-0", "rt-0", -10), ("at-9", "rt-other")).await;
    let err = client.get_contact("x").await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Auth));
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("rt-0") && !text.contains("csecret") && !text.contains("at-0"),
        "{text}"
    );
}

#[tokio::test]
async fn static_token_401_is_auth_and_not_retried() {
    let (app, hits) = scripted(vec![(
        401,
        vec![],
        json!({"statusCode": 401, "message": "Invalid token"}),
    )]);
    let base = serve(app).await;
    let (p, _) = policy(cfg());
    let client = GhlClient::new(
        &base,
        "LOC",
        TokenSource::Static("pit-supersecret".into()),
        p,
    )
    .unwrap();
    let err = client.get_contact("abc").await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Auth));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let text = format!("{err} {err:?} {client:?}");
    assert!(!text.contains("supersecret"), "{text}");
}

// ---- GHL endpoints -------------------------------------------------------------------------

#[tokio::test]
async fn get_contact_not_found_is_none_and_duplicate_create_names_the_contact() {
    let app = Router::new()
        .route(
            "/contacts/{id}",
            get(|Path(id): Path<String>| async move {
                (StatusCode::BAD_REQUEST, axum::Json(json!({"message": format!("Contact not found for id:{id}"), "error": "Bad Request", "statusCode": 400})))
            }),
        )
        .route(
            "/contacts/",
            post(|axum::Json(body): axum::Json<Value>| async move {
                assert_eq!(body["locationId"], "LOC");
                (StatusCode::BAD_REQUEST, axum::Json(json!({"statusCode": 400,
                    "message": "This location does not allow duplicated contacts.",
                    "meta": {"contactId": "EXISTING1", "contactName": "Ann", "matchingField": "email"}})))
            }),
        );
    let base = serve(app).await;
    let (p, _) = policy(cfg());
    let client = GhlClient::new(&base, "LOC", TokenSource::Static("pit-x".into()), p).unwrap();
    assert!(client.get_contact("gone").await.unwrap().is_none());
    let err = client
        .create_contact(
            &ContactCreate {
                email: Some("a@b.c".into()),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap_err();
    match err {
        GhlError::Duplicate {
            contact_id,
            matching_field,
            ..
        } => {
            assert_eq!(contact_id, "EXISTING1");
            assert_eq!(matching_field.as_deref(), Some("email"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn search_pages_by_number_then_by_search_after() {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let b = bodies.clone();
    let app = Router::new().route(
        "/contacts/search",
        post(move |axum::Json(body): axum::Json<Value>| {
            let b = b.clone();
            async move {
                b.lock().unwrap().push(body.clone());
                let limit = body["pageLimit"].as_u64().unwrap();
                let n = if body.get("searchAfter").is_some() { 3 } else { limit };
                let start = body["page"].as_u64().map(|p| (p - 1) * limit).unwrap_or(10_000);
                let contacts: Vec<Value> = (start..start + n)
                    .map(|i| json!({"id": format!("c{i}"), "address": "x", "searchAfter": [i, format!("c{i}")]}))
                    .collect();
                axum::Json(json!({"contacts": contacts, "total": 10_003}))
            }
        }),
    );
    let base = serve(app).await;
    let (p, _) = policy(cfg());
    let client = GhlClient::new(&base, "LOC", TokenSource::Static("pit-x".into()), p).unwrap();
    let mut s = client.search_contacts(
        vec![Filter::email_eq("a@b.c")],
        vec![SortSpec::asc("dateUpdated")],
        9999,
    );
    let mut seen = 0;
    let mut max_page = 0;
    while let Some(page) = s.next_page().await.unwrap() {
        max_page = max_page.max(page.len());
        seen += page.len();
    }
    assert_eq!(max_page, 500, "pageLimit is capped at 500");
    assert_eq!(seen, 10_003);
    assert_eq!(s.total(), Some(10_003));
    assert!(s.complete());
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 21);
    assert_eq!(bodies[19]["page"], 20);
    assert!(bodies[20].get("page").is_none());
    assert_eq!(bodies[20]["searchAfter"], json!([9999, "c9999"]));
    assert_eq!(bodies[0]["locationId"], "LOC");
    assert_eq!(
        bodies[0]["filters"],
        json!([{"field": "email", "operator": "eq", "value": "a@b.c"}])
    );
}

// ---- HotspotSystem -------------------------------------------------------------------------

fn customers_app(
    link: bool,
    total: u64,
    records: u64,
    key_seen: Arc<Mutex<Vec<String>>>,
) -> Router {
    Router::new().route(
        "/v2.0/customers",
        get(
            move |headers: HeaderMap,
                  axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>| {
                let key_seen = key_seen.clone();
                async move {
                    key_seen.lock().unwrap().push(
                        headers.get("sn-apikey").and_then(|v| v.to_str().ok()).unwrap_or("").to_string(),
                    );
                    let limit: u64 = q.get("limit").and_then(|s| s.parse().ok()).unwrap_or(100);
                    let offset: u64 = q.get("offset").and_then(|s| s.parse().ok()).unwrap_or(0);
                    let end = (offset + limit).min(records);
                    let items: Vec<Value> = (offset..end)
                        .map(|i| json!({"id": i.to_string(), "email": format!("u{i}@x.y"), "registered_at": "2020-01-01 10:00:00"}))
                        .collect();
                    let host = headers.get("host").unwrap().to_str().unwrap().to_string();
                    let mut resp = axum::Json(json!({"metadata": {"total_count": total}, "items": items})).into_response();
                    if link {
                        let mut l = format!("<http://{host}/v2.0/customers?limit={limit}&offset={offset}>; rel=\"self\"");
                        if end < records {
                            l.push_str(&format!(", <http://{host}/v2.0/customers?limit={limit}&offset={end}>; rel=\"next\""));
                        }
                        resp.headers_mut().insert("link", l.parse().unwrap());
                    }
                    resp
                }
            },
        ),
    )
}

async fn drain(client: &HotspotClient) -> (u64, bool, Option<u64>) {
    let mut pager = client.customers(None).sort("-registered_at");
    let mut n = 0;
    while let Some(page) = pager.next_page().await.unwrap() {
        assert!(page.len() <= 3);
        n += page.len() as u64;
    }
    (n, pager.complete(), pager.total_count())
}

#[tokio::test]
async fn hotspot_pager_follows_link_and_is_complete() {
    let keys = Arc::<Mutex<Vec<String>>>::default();
    let base = serve(customers_app(true, 7, 7, keys.clone())).await;
    let (p, sink) = policy(PolicyConfig {
        api: "hotspot",
        ..cfg()
    });
    let client = HotspotClient::new(&format!("{base}/v2.0"), "hs-key-secret".into(), p)
        .unwrap()
        .with_page_size(3);
    assert_eq!(drain(&client).await, (7, true, Some(7)));
    let keys = keys.lock().unwrap();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k == "hs-key-secret"));
    assert!(
        sink.drain()
            .iter()
            .all(|a| a.path == "/customers" && a.api == "hotspot")
    );
}

#[tokio::test]
async fn hotspot_pager_falls_back_to_offsets_and_detects_short_listing() {
    let keys = Arc::<Mutex<Vec<String>>>::default();
    let base = serve(customers_app(false, 7, 7, keys.clone())).await;
    let (p, _) = policy(cfg());
    let client = HotspotClient::new(&format!("{base}/v2.0"), "k".into(), p)
        .unwrap()
        .with_page_size(3);
    assert_eq!(drain(&client).await, (7, true, Some(7)));
    // 3 pages, and before the first at a non-zero offset one probe of how `offset` is read.
    assert_eq!(keys.lock().unwrap().len(), 4);

    // The server claims 9 but lists 7: never complete, so no deletion is inferred.
    let base = serve(customers_app(true, 9, 7, Arc::default())).await;
    let (p, _) = policy(cfg());
    let client = HotspotClient::new(&format!("{base}/v2.0"), "k".into(), p)
        .unwrap()
        .with_page_size(3);
    assert_eq!(drain(&client).await, (7, false, Some(9)));
}

/// 10 records, no `Link` header, `offset` read by `start(offset, limit)`, `limit` capped at
/// `max_limit`; counts its requests.
fn offset_app(start: fn(u64, u64) -> u64, max_limit: u64, hits: Arc<AtomicU32>) -> Router {
    Router::new().route(
        "/v2.0/customers",
        get(
            move |axum::extract::Query(q): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let limit: u64 = q
                        .get("limit")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(100)
                        .min(max_limit);
                    let offset: u64 = q.get("offset").and_then(|s| s.parse().ok()).unwrap_or(0);
                    let from = start(offset, limit).min(10);
                    let items: Vec<Value> = (from..(from + limit).min(10))
                        .map(|i| json!({"id": i.to_string()}))
                        .collect();
                    axum::Json(json!({"metadata": {"total_count": 10}, "items": items}))
                }
            },
        ),
    )
}

/// A HotspotSystem client of the test server at `base`, paging 4 records at a time.
fn hotspot_by_4(base: &str) -> HotspotClient {
    let (p, _) = policy(PolicyConfig {
        api: "hotspot",
        ..cfg()
    });
    HotspotClient::new(&format!("{base}/v2.0"), "k".into(), p)
        .unwrap()
        .with_page_size(4)
}

/// Drains the customers of a server built by `offset_app`: (ids in order, complete, requests).
async fn drain_offsets(start: fn(u64, u64) -> u64, max_limit: u64) -> (Vec<String>, bool, u32) {
    let hits = Arc::new(AtomicU32::new(0));
    let base = serve(offset_app(start, max_limit, hits.clone())).await;
    let client = hotspot_by_4(&base);
    let mut pager = client.customers(None);
    let mut ids = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        ids.extend(page.into_iter().filter_map(|c| c.id));
    }
    (ids, pager.complete(), hits.load(Ordering::SeqCst))
}

/// Every reading of `offset` the reference allows lists every record once; only the documented
/// one (a record offset) gives a complete listing.
#[tokio::test]
async fn hotspot_pager_reads_offset_as_records_or_page_index() {
    let all: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    // A record offset: 3 pages of 4 + the probe.
    assert_eq!(drain_offsets(|o, _| o, 100).await, (all.clone(), true, 4));
    // A zero-based page index (the reference's wording).
    assert_eq!(
        drain_offsets(|o, l| o * l, 100).await,
        (all.clone(), false, 4)
    );
    // Pages counted from 1, 0 read as 1.
    assert_eq!(
        drain_offsets(|o, l| o.saturating_sub(1) * l, 100).await,
        (all.clone(), false, 4)
    );
    // A server that caps `limit` at 3 below our 4: the short pages do not end the listing
    // while `total_count` says more.
    assert_eq!(drain_offsets(|o, _| o, 3).await, (all, true, 5));
}

/// A record-offset server where a record arrives at the front right after the first page (a
/// new transaction under `sort=-id`): the probe then looks like pages counted from 1. Read by
/// index, the next page overlaps the first; that ends the listing at once instead of
/// bringing one new record per request.
#[tokio::test]
async fn hotspot_pager_misled_probe_stops_at_the_first_overlap() {
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/v2.0/customers",
        get(
            move |axum::extract::Query(q): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >| {
                let h = h.clone();
                async move {
                    let n = h.fetch_add(1, Ordering::SeqCst);
                    let mut ids: Vec<String> = (0..40).map(|i| i.to_string()).collect();
                    if n > 0 {
                        ids.insert(0, "new".into());
                    }
                    let limit: usize = q.get("limit").and_then(|s| s.parse().ok()).unwrap_or(100);
                    let offset: usize = q.get("offset").and_then(|s| s.parse().ok()).unwrap_or(0);
                    let items: Vec<Value> = ids
                        .iter()
                        .skip(offset)
                        .take(limit)
                        .map(|id| json!({"id": id}))
                        .collect();
                    axum::Json(json!({"metadata": {"total_count": ids.len()}, "items": items}))
                }
            },
        ),
    );
    let base = serve(app).await;
    let (err, complete) = customers_until_error(&base, 20).await;
    let err = err.expect("the overlap is an error");
    assert!(
        err.contains("hotspot /customers") && err.contains("no progress"),
        "{err}"
    );
    assert!(!complete);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "first page, probe, one page by index"
    );
}

/// Pages HotspotSystem customers 4 at a time, at most `pages` pages, until the end or an error:
/// the error's text, and whether the listing counts as complete.
async fn customers_until_error(base: &str, pages: usize) -> (Option<String>, bool) {
    let client = hotspot_by_4(base);
    let mut pager = client.customers(None);
    let mut err = None;
    for _ in 0..pages {
        match pager.next_page().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                err = Some(e.to_string());
                break;
            }
        }
    }
    (err, pager.complete())
}

#[tokio::test]
async fn hotspot_pager_stops_with_an_error_when_offset_is_ignored() {
    let hits = Arc::new(AtomicU32::new(0));
    let base = serve(offset_app(|_, _| 0, 100, hits.clone())).await;
    let (err, complete) = customers_until_error(&base, 10).await;
    let err = err.expect("an ignored offset is an error");
    assert!(
        err.contains("hotspot /customers") && err.contains("ignores `offset`"),
        "{err}"
    );
    assert!(!complete);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "first page, probe, first page again"
    );
}

#[tokio::test]
async fn hotspot_list_without_items_is_an_error_naming_the_endpoint() {
    let app = Router::new()
        .route(
            "/v2.0/locations/{id}/transactions/paid",
            get(|| async { axum::Json(json!({"metadata": {"total_count": 1}})) }),
        )
        .route(
            "/v2.0/locations/options",
            get(|| async { axum::Json(json!({"options": []})) }),
        );
    let base = serve(app).await;
    let (p, _) = policy(cfg());
    let client = HotspotClient::new(&format!("{base}/v2.0"), "k".into(), p).unwrap();
    let err = client.location_options().await.unwrap_err();
    assert!(err.to_string().contains("/locations/options"), "{err}");
    let mut pager = client.paid_transactions(Some("4"));
    let err = pager.next_page().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/locations/{id}/transactions/paid") && text.contains("items"),
        "{text}"
    );
    assert!(!pager.complete());
    assert!(pager.next_page().await.unwrap().is_none());
}

#[tokio::test]
async fn hotspot_errors_never_show_the_api_key() {
    let app = Router::new().route(
        "/v2.0/me",
        get(|| async {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": "General error"})),
            )
        }),
    );
    let base = serve(app).await;
    let mut c = cfg();
    c.max_attempts = 2;
    let (p, sink) = policy(c);
    let client = HotspotClient::new(&format!("{base}/v2.0"), "hs-key-secret".into(), p).unwrap();
    let err = client.me().await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Transient));
    let text = format!("{err} {err:?} {client:?} {:?}", sink.drain());
    assert!(text.contains("General error"), "{text}");
    assert!(!text.contains("hs-key-secret"), "{text}");
}

/// Captures (method, path, body) of every call and answers with the documented shapes.
#[tokio::test]
async fn write_endpoints_send_only_accepted_properties() {
    use axum::extract::OriginalUri;
    use hotspot_ghl_sync::ghl::wire::{
        BusinessInput, ContactUpdate, CustomFieldInput, NoteInput, TaskCreate,
    };
    type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = Router::new().fallback(
        move |method: axum::http::Method, OriginalUri(uri): OriginalUri, body: String| {
            let s = s.clone();
            async move {
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let path = uri.path().to_string();
                s.lock()
                    .unwrap()
                    .push((method.to_string(), path.clone(), body.clone()));
                let answer = match (method.as_str(), path.as_str()) {
                    ("PUT", "/contacts/c1") => json!({"succeded": true, "contact": {"id": "c1"}}),
                    ("POST", "/contacts/c1/tags") | ("DELETE", "/contacts/c1/tags") => {
                        json!({"tags": body["tags"]})
                    }
                    ("POST", "/contacts/c1/notes") => {
                        json!({"note": {"id": "n1", "body": body["body"]}})
                    }
                    ("POST", "/contacts/c1/tasks") => {
                        json!({"task": {"id": "t1", "completed": false}})
                    }
                    ("POST", "/businesses/") => {
                        json!({"success": true, "buiseness": {"id": "b1", "name": "Cafe"}})
                    }
                    ("POST", "/contacts/bulk/business") => {
                        json!({"success": true, "ids": body["ids"]})
                    }
                    ("POST", "/contacts/upsert") => {
                        json!({"new": false, "contact": {"id": "c1"}, "traceId": "t"})
                    }
                    _ => {
                        return (
                            StatusCode::NOT_FOUND,
                            axum::Json(json!({"message": "no route"})),
                        );
                    }
                };
                let status = if method == "POST"
                    && path != "/contacts/upsert"
                    && path != "/contacts/bulk/business"
                {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                (status, axum::Json(answer))
            }
        },
    );
    let base = serve(app).await;
    let (p, _) = policy(cfg());
    let client = GhlClient::new(&base, "LOC", TokenSource::Static("pit-x".into()), p).unwrap();
    let upd = ContactUpdate {
        email: Some(Some("a@b.c".into())),
        custom_fields: Some(vec![CustomFieldInput::by_id("f1", "59")]),
        ..Default::default()
    };
    client.update_contact("c1", &upd).await.unwrap();
    assert_eq!(
        client.add_tags("c1", &["wifi".into()]).await.unwrap(),
        vec!["wifi"]
    );
    client.remove_tags("c1", &["old".into()]).await.unwrap();
    let note = NoteInput {
        body: Some("Visited".into()),
        ..Default::default()
    };
    assert_eq!(
        client
            .create_note("c1", &note, false)
            .await
            .unwrap()
            .id
            .as_deref(),
        Some("n1")
    );
    let task = TaskCreate {
        title: "Welcome".into(),
        body: None,
        due_date: Utc::now(),
        completed: false,
        assigned_to: None,
    };
    client.create_task("c1", &task, false).await.unwrap();
    let biz = BusinessInput {
        name: Some("Cafe".into()),
        ..Default::default()
    };
    assert_eq!(
        client
            .create_business(&biz, false)
            .await
            .unwrap()
            .id
            .as_deref(),
        Some("b1")
    );
    assert_eq!(
        client.bulk_business(&["c1".into()], None).await.unwrap(),
        vec!["c1"]
    );
    let up = client
        .upsert_contact(&ContactCreate {
            email: Some("a@b.c".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(up.new, Some(false));
    assert!(matches!(
        client.create_note("c1", &NoteInput::default(), false).await,
        Err(GhlError::Invalid(_))
    ));

    let seen = seen.lock().unwrap();
    let by = |m: &str, p: &str| {
        seen.iter()
            .find(|(mm, pp, _)| mm == m && pp == p)
            .unwrap()
            .2
            .clone()
    };
    assert_eq!(
        by("PUT", "/contacts/c1"),
        json!({"email": "a@b.c", "customFields": [{"id": "f1", "field_value": "59"}]})
    );
    assert_eq!(by("POST", "/contacts/c1/tags"), json!({"tags": ["wifi"]}));
    assert_eq!(by("DELETE", "/contacts/c1/tags"), json!({"tags": ["old"]}));
    assert_eq!(by("POST", "/contacts/c1/notes"), json!({"body": "Visited"}));
    let t = by("POST", "/contacts/c1/tasks");
    assert!(
        t.get("locationId").is_none() && t["completed"] == json!(false) && t["title"] == "Welcome"
    );
    assert_eq!(
        by("POST", "/businesses/"),
        json!({"name": "Cafe", "locationId": "LOC"})
    );
    assert_eq!(
        by("POST", "/contacts/bulk/business"),
        json!({"locationId": "LOC", "ids": ["c1"], "businessId": null})
    );
    assert_eq!(
        by("POST", "/contacts/upsert"),
        json!({"email": "a@b.c", "locationId": "LOC"})
    );
    assert_eq!(seen.len(), 8, "the invalid note was not sent");
}
