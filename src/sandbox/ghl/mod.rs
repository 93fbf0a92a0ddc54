//! GHL (LeadConnector API v2) emulator on 127.0.0.1, as strict as `reference/ghl-api.md`
//! describes the real service, so client bugs show up in tests instead of in production.
//!
//! Public API:
//! - [`GhlOptions`] (with `Default`): location, tokens and scopes, OAuth client, limits, lag,
//!   faults, custom fields.
//! - [`GhlEmulator::start`] / [`GhlEmulator::start_on`] (async; need a tokio runtime), then
//!   [`GhlEmulator::base_url`], the request log ([`GhlEmulator::requests`]), run-time knobs
//!   (`set_faults`, `set_rate_limit`, `set_daily_remaining`, `reset_daily_quota`, `set_search_lag`,
//!   `set_search_paging`), OAuth helpers
//!   (`issue_auth_code`, `token_refreshes`, `expire_access_tokens`) and direct state access
//!   ([`GhlEmulator::with_state`]) for tests that play a CRM user.
//!
//! Layers, outermost first: request log → gate (bearer token, rate limit and its headers on every
//! answer, `Version` header) → fault injection → routing (scope check, DTO validation, handler).
//!
//! Emulator choices where the reference is silent are documented on the items that make them:
//! missing `Version` → 400 and a wrong one → 422; `page × pageLimit > 10,000` → 422; unknown
//! custom field id/key → 422; a location id other than the emulated one → 403.

mod auth;
pub use self::auth::{PitRotation, RotatedPair};
mod contacts;
mod records;
mod search;
mod search_cache;
pub mod state;
mod validate;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use self::state::{
    Appointment, Business, Contact, CustomField, DateRangeFormat, GhlState, Note, SearchPaging,
    Task, normalize_phone,
};
use self::validate::{ApiError, ApiResult};
use crate::sandbox::faults::{self, FaultKnobs, FaultState, InjectedFault};

/// Every scope the product uses; the default PIT carries all of them.
pub const PRODUCT_SCOPES: &[&str] = &[
    "contacts.readonly",
    "contacts.write",
    "businesses.readonly",
    "businesses.write",
    "locations.readonly",
    "locations/customFields.readonly",
    "locations/tasks.readonly",
    "users.readonly",
];

/// The only accepted `Version` header value.
pub const API_VERSION: &str = "2021-07-28";

/// The shape of the 401 for a token without the endpoint's scope. The reference quotes only
/// `{"message":"The token is not authorized for this scope."}` and guesses the other fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScopeDenialBody {
    /// NestJS's full error: `statusCode`, `message`, `error`.
    #[default]
    Nest,
    /// `message` alone.
    MessageOnly,
}

/// Configuration of one emulated location. `Debug` redacts tokens and the client secret.
#[derive(Clone)]
pub struct GhlOptions {
    /// 20-character location (sub-account) id.
    pub location_id: String,
    /// Static Private Integration Tokens and their scopes (never expire).
    pub tokens: Vec<(String, Vec<String>)>,
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
    /// Lifetime of OAuth access tokens (`expires_in` is this minus one second, like 86399).
    pub access_token_lifetime: Duration,
    /// Whether a refresh ends the access token issued with the old pair at once. GHL does not
    /// say; off (the default) lets it live to its expiry.
    pub revoke_access_on_refresh: bool,
    /// The body of a scope denial: third parties quote only its `message`.
    pub scope_denial_body: ScopeDenialBody,
    /// Requests allowed per `rate_window` per location.
    pub rate_limit: u32,
    pub rate_window: Duration,
    pub daily_quota: u64,
    /// Length of the emulated day, after which the daily quota is back; `None` (the default)
    /// is the UTC day, which only sets `X-RateLimit-Daily-Reset`: the quota comes back through
    /// [`GhlEmulator::reset_daily_quota`]. GHL does not say when its day turns.
    pub daily_period: Option<Duration>,
    /// Whether answers carry `X-RateLimit-Daily-Reset` (observed on every answer, undocumented:
    /// read as milliseconds until the day resets, which is UNCONFIRMED).
    pub daily_reset_header: bool,
    /// Whether a burst-limit 429 carries `Retry-After` (the reference marks it UNCONFIRMED).
    pub retry_after_on_429: bool,
    /// Whether answers carry the `X-RateLimit-*` headers. Observed on every answer, but not
    /// promised: without them a client knows only the requests it sent itself.
    pub rate_limit_headers: bool,
    /// The location's "Allow Duplicate Contact" setting.
    pub allow_duplicates: bool,
    /// How long a contact write takes to become visible to `POST /contacts/search`.
    pub search_lag: Duration,
    /// Whether duplicate matching (the create's duplicate check and the upsert's match) sees
    /// only what search sees, lagging writes by `search_lag`. Unknown for the real API; off
    /// means it sees every write at once, as GET-by-id does.
    pub dedup_lags: bool,
    /// Whether `POST /locations/{id}/tasks/search` without `completed` answers pending tasks
    /// only (the spec's `completed` reads "Task Completed Or Pending" and gives no default);
    /// off answers both.
    pub task_search_pending_by_default: bool,
    /// Whether a deleted task stays readable as a row flagged `deleted: true` (in the task
    /// search and GET by id), as a soft-deleting backend would serve it; off, it is gone (not
    /// found). The spec is silent; its recurring-task schema carries such a `deleted` flag.
    pub deleted_task_rows: bool,
    /// `POST /contacts/bulk/business` associates and lists in its answer's `ids` at most this
    /// many of the ids sent (a partial answer; the spec's example lists one id of two). Unknown
    /// contacts are always left out of the answer.
    pub bulk_business_limit: Option<usize>,
    /// Whether contact writes (create, update, upsert) take custom field values by `id` only,
    /// refusing `key` with 422. The spec disagrees with itself: its `TextField` schema requires
    /// `id`, its `customFieldsInputStringSchema` says "Pass either `id` or `key`". Off accepts
    /// either.
    pub custom_fields_by_id_only: bool,
    /// How contact search pages: `total` capped, order without a sort, a hostile search.
    pub search_paging: SearchPaging,
    /// The date form a `range` filter on `dateAdded`/`dateUpdated` takes (unconfirmed: ISO
    /// string or epoch milliseconds); the other form is refused with 422. Default: both. Two
    /// more readings: no such filter at all (`Neither`, 422), or one silently ignored.
    pub date_range_format: DateRangeFormat,
    /// Whether a CRM user's edit ([`GhlState::crm_edit`]) leaves `dateUpdated` alone
    /// (unconfirmed; off advances it, as API writes always do).
    pub edits_keep_date_updated: bool,
    /// Added to every answer (same as `faults.latency`, kept apart for readability).
    pub latency: Duration,
    pub faults: FaultKnobs,
    /// Custom fields to pre-create: `(key, name, dataType)`.
    pub custom_fields: Vec<(String, String, String)>,
    /// Seed of ids, tokens and fault rolls.
    pub seed: u64,
}

impl std::fmt::Debug for GhlOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scopes: Vec<&Vec<String>> = self.tokens.iter().map(|(_, s)| s).collect();
        f.debug_struct("GhlOptions")
            .field("location_id", &self.location_id)
            .field(
                "tokens",
                &format_args!("[{} redacted, scopes {scopes:?}]", self.tokens.len()),
            )
            .field("oauth_client_id", &self.oauth_client_id)
            .field("oauth_client_secret", &"<redacted>")
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("revoke_access_on_refresh", &self.revoke_access_on_refresh)
            .field("scope_denial_body", &self.scope_denial_body)
            .field("rate_limit", &self.rate_limit)
            .field("rate_window", &self.rate_window)
            .field("daily_quota", &self.daily_quota)
            .field("daily_period", &self.daily_period)
            .field("daily_reset_header", &self.daily_reset_header)
            .field("retry_after_on_429", &self.retry_after_on_429)
            .field("allow_duplicates", &self.allow_duplicates)
            .field("search_lag", &self.search_lag)
            .field("dedup_lags", &self.dedup_lags)
            .field(
                "task_search_pending_by_default",
                &self.task_search_pending_by_default,
            )
            .field("deleted_task_rows", &self.deleted_task_rows)
            .field("bulk_business_limit", &self.bulk_business_limit)
            .field("custom_fields_by_id_only", &self.custom_fields_by_id_only)
            .field("search_paging", &self.search_paging)
            .field("date_range_format", &self.date_range_format)
            .field("edits_keep_date_updated", &self.edits_keep_date_updated)
            .field("latency", &self.latency)
            .field("faults", &self.faults)
            .field("custom_fields", &self.custom_fields)
            .field("seed", &self.seed)
            .finish()
    }
}

impl Default for GhlOptions {
    fn default() -> Self {
        Self {
            location_id: "ve9EPM428h8vShlRW1KT".into(),
            tokens: vec![(
                "pit-test-token".into(),
                PRODUCT_SCOPES.iter().map(|s| s.to_string()).collect(),
            )],
            oauth_client_id: "emu-client-id".into(),
            oauth_client_secret: "emu-client-secret".into(),
            access_token_lifetime: Duration::from_secs(86_400),
            revoke_access_on_refresh: false,
            scope_denial_body: ScopeDenialBody::default(),
            rate_limit: 100,
            rate_window: Duration::from_secs(10),
            daily_quota: 200_000,
            daily_period: None,
            daily_reset_header: true,
            retry_after_on_429: true,
            rate_limit_headers: true,
            allow_duplicates: false,
            search_lag: Duration::ZERO,
            dedup_lags: false,
            task_search_pending_by_default: false,
            deleted_task_rows: false,
            bulk_business_limit: None,
            custom_fields_by_id_only: false,
            search_paging: SearchPaging::default(),
            date_range_format: DateRangeFormat::default(),
            edits_keep_date_updated: false,
            latency: Duration::ZERO,
            faults: FaultKnobs::default(),
            custom_fields: vec![(
                "contact.hotspot_customer_id".into(),
                "HotspotSystem customer id".into(),
                "TEXT".into(),
            )],
            seed: 42,
        }
    }
}

/// One request as the emulator saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct GhlRequest {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Status the emulator decided (for a dropped connection: the status the handler produced).
    pub status: u16,
    /// JSON request body, if the request had one (form bodies and `/oauth/token` bodies are not
    /// recorded: they carry secrets).
    pub body: Option<Value>,
    /// The fault injected into this answer, if any.
    pub fault: Option<InjectedFault>,
}

pub(crate) struct Shared {
    pub state: Mutex<GhlState>,
    pub auth: Mutex<auth::Auth>,
    pub limiter: Mutex<auth::Limiter>,
    pub log: Mutex<Vec<GhlRequest>>,
    pub scope_denial_body: ScopeDenialBody,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running emulator; stops when dropped.
pub struct GhlEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    faults: FaultState,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for GhlEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhlEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl GhlEmulator {
    /// Start on `127.0.0.1:0` (a free port).
    pub async fn start(opts: GhlOptions) -> io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), opts).await
    }

    /// Start on a given address (loopback only: anything else is refused).
    pub async fn start_on(addr: SocketAddr, opts: GhlOptions) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the emulator listens on loopback only",
            ));
        }
        let mut st = GhlState::new(opts.location_id.clone(), opts.allow_duplicates, opts.seed);
        st.search_lag = opts.search_lag;
        st.dedup_lags = opts.dedup_lags;
        st.task_search_pending_by_default = opts.task_search_pending_by_default;
        st.deleted_task_rows = opts.deleted_task_rows;
        st.bulk_business_limit = opts.bulk_business_limit;
        st.custom_fields_by_id_only = opts.custom_fields_by_id_only;
        st.search_paging = opts.search_paging.clone();
        st.date_range_format = opts.date_range_format;
        st.edits_keep_date_updated = opts.edits_keep_date_updated;
        for (key, name, ty) in &opts.custom_fields {
            st.add_custom_field(key, name, ty);
        }
        let mut tokens = auth::Auth::new(
            &opts.tokens,
            opts.oauth_client_id.clone(),
            opts.oauth_client_secret.clone(),
            opts.access_token_lifetime,
            opts.seed,
        );
        tokens.revoke_access_on_refresh = opts.revoke_access_on_refresh;
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            auth: Mutex::new(tokens),
            limiter: Mutex::new({
                let mut l = auth::Limiter::new(
                    opts.rate_limit,
                    opts.rate_window,
                    opts.daily_quota,
                    opts.retry_after_on_429,
                );
                l.send_headers = opts.rate_limit_headers;
                l.send_daily_reset = opts.daily_reset_header;
                l.day = opts.daily_period;
                l
            }),
            log: Mutex::new(Vec::new()),
            scope_denial_body: opts.scope_denial_body,
        });
        let mut knobs = opts.faults.clone();
        if knobs.latency.is_zero() {
            knobs.latency = opts.latency;
        }
        let faults = FaultState::new(knobs, opts.seed ^ 0xfa17);
        let app = Router::new()
            .fallback(dispatch)
            .layer(from_fn_with_state(faults.clone(), faults::inject))
            .layer(from_fn_with_state(shared.clone(), gate))
            .layer(from_fn_with_state(shared.clone(), record))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            faults,
            task,
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The emulated location id.
    pub fn location_id(&self) -> String {
        lock(&self.shared.state).location_id.clone()
    }

    /// Every request so far, in arrival order of completion.
    pub fn requests(&self) -> Vec<GhlRequest> {
        lock(&self.shared.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    pub fn set_faults(&self, knobs: FaultKnobs) {
        self.faults.set(knobs);
    }

    /// Change the burst limit; restarts the current window.
    pub fn set_rate_limit(&self, max: u32, window: Duration) {
        lock(&self.shared.limiter).set_burst(max, window);
    }

    /// A new day: the whole daily quota is back and the day's reset counts from now.
    pub fn reset_daily_quota(&self) {
        lock(&self.shared.limiter).reset_day();
    }

    pub fn set_daily_remaining(&self, n: u64) {
        lock(&self.shared.limiter).daily_remaining = n;
    }

    /// Change the search lag for later writes.
    pub fn set_search_lag(&self, lag: Duration) {
        lock(&self.shared.state).search_lag = lag;
    }

    /// Change how contact search pages, from the next search on.
    pub fn set_search_paging(&self, paging: SearchPaging) {
        let mut st = lock(&self.shared.state);
        st.search_paging = paging;
        st.contacts_changed();
    }

    /// Change the date form `range` filters take, from the next search on.
    pub fn set_date_range_format(&self, format: DateRangeFormat) {
        let mut st = lock(&self.shared.state);
        st.date_range_format = format;
        st.contacts_changed();
    }

    /// Let search catch up now, as if the lag had elapsed, and lag no later write: what a run
    /// started minutes after the last one sees.
    pub fn settle_search(&self) {
        let mut st = lock(&self.shared.state);
        st.contacts_changed();
        st.search_lag = Duration::ZERO;
        st.lagging.clear();
    }

    /// A single-use authorization code, as the consent screen would hand to the redirect URI.
    pub fn issue_auth_code(&self, scopes: &[&str]) -> String {
        lock(&self.shared.auth).issue_code(scopes)
    }

    /// How many `refresh_token` grants succeeded.
    pub fn token_refreshes(&self) -> usize {
        lock(&self.shared.auth).refreshes
    }

    /// How many `refresh_token` grants were answered `invalid_grant`.
    pub fn refused_refreshes(&self) -> usize {
        lock(&self.shared.auth).refused_refreshes
    }

    /// The next refresh grant loses a race with another process: that process redeems the
    /// refresh token a moment before (the pair it gets goes to `sink`, to be stored where that
    /// process would store it), and the grant itself is answered `invalid_grant`.
    pub fn race_next_refresh(&self, sink: impl FnOnce(auth::RotatedPair) + Send + 'static) {
        lock(&self.shared.auth).race_next_refresh(Box::new(sink));
    }

    /// A Private Integration Token rotated in the GHL UI: `new` is accepted with the scopes of
    /// `old`; what becomes of `old` is the reading `old_token` (GHL offers both).
    pub fn rotate_private_token(&self, old: &str, new: &str, old_token: PitRotation) {
        lock(&self.shared.auth).rotate_pit(old, new, old_token);
    }

    /// The OAuth app's client secret regenerated: only `new` is accepted from now on.
    pub fn rotate_client_secret(&self, new: &str) {
        lock(&self.shared.auth).rotate_client_secret(new);
    }

    /// Expire every OAuth access token now (PITs are unaffected).
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.auth).expire_all();
    }

    /// Read or edit the stored records directly, bypassing HTTP, validation and search lag.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut GhlState) -> R) -> R {
        let mut st = lock(&self.shared.state);
        st.contacts_changed();
        f(&mut st)
    }
}

impl Drop for GhlEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Outermost layer: record method, path, JSON body and final status of every request.
async fn record(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 32 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // Form bodies and anything sent to the token endpoint carry secrets: never recorded.
    let json_body = if is_form || is_oauth_token_path(parts.uri.path()) {
        None
    } else {
        serde_json::from_slice::<Value>(&bytes).ok()
    };
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let resp = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    lock(&shared.log).push(GhlRequest {
        method,
        path,
        query,
        status: resp.status().as_u16(),
        body: json_body,
        fault: resp.extensions().get::<InjectedFault>().copied(),
    });
    resp
}

/// Granted scopes of the authenticated token, handed from `gate` to the routes.
#[derive(Debug, Clone)]
struct Scopes(Vec<String>);

fn is_oauth_token_path(path: &str) -> bool {
    path.trim_end_matches('/') == "/oauth/token"
}

/// Bearer token, rate limit (headers on every answer) and `Version` header.
async fn gate(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let mut resp = if is_oauth_token_path(req.uri().path()) {
        next.run(req).await
    } else {
        match admit(&shared, &req) {
            Ok(scopes) => {
                req.extensions_mut().insert(Scopes(scopes));
                next.run(req).await
            }
            Err(r) => *r,
        }
    };
    let mut limiter = lock(&shared.limiter);
    if limiter.send_headers {
        limiter.headers(resp.headers_mut());
    }
    drop(limiter);
    resp
}

fn admit(shared: &Shared, req: &Request) -> Result<Vec<String>, Box<Response>> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let scopes = lock(&shared.auth)
        .check(token)
        .map_err(|e| Box::new(e.into_response()))?;
    {
        let mut lim = lock(&shared.limiter);
        if let Err(why) = lim.take() {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"statusCode": 429, "message": "Too Many Requests"})),
            )
                .into_response();
            if why == auth::Limited::Burst && lim.retry_after {
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(lim.retry_after_secs()),
                );
            }
            return Err(Box::new(r));
        }
    }
    match req.headers().get("version").map(|v| v.to_str().unwrap_or("")) {
        None => Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"statusCode": 400, "message": "Version header was not found", "error": "Bad Request"}),
        }
        .boxed()),
        Some(API_VERSION) => Ok(scopes),
        Some(_) => Err(ApiError::unprocessable(vec![format!(
            "version must be one of the following values: {API_VERSION}"
        )])
        .boxed()),
    }
}

impl ApiError {
    fn boxed(self) -> Box<Response> {
        Box::new(self.into_response())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// What a route gets: the caller's scopes, query pairs and parsed JSON body.
pub(crate) struct Ctx {
    pub scopes: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Ctx {
    /// Require a scope (401 "not authorized for this scope" otherwise).
    pub fn need(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(ApiError::scope())
        }
    }
}

async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let scopes = req
        .extensions()
        .get::<Scopes>()
        .map(|s| s.0.clone())
        .unwrap_or_default();
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 32 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let result = if is_oauth_token_path(&path) && method == Method::POST {
        oauth_token(&shared, &content_type, &bytes)
    } else {
        match parse_json(&bytes) {
            Ok(body) => {
                let ctx = Ctx {
                    scopes,
                    query,
                    body,
                };
                route(&shared, &method, &path, &ctx)
            }
            Err(e) => Err(e),
        }
    };
    match result {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(mut e) => {
            if e.is_scope_denial() && shared.scope_denial_body == ScopeDenialBody::MessageOnly {
                e.body = serde_json::json!({"message": e.body["message"].clone()});
            }
            e.into_response()
        }
    }
}

fn parse_json(bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("Unexpected token in JSON: {e}")))
}

fn oauth_token(shared: &Shared, content_type: &str, bytes: &[u8]) -> ApiResult {
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::unprocessable(vec![
            "Content-Type must be application/x-www-form-urlencoded".into(),
        ]));
    }
    let uri: axum::http::Uri = format!("/?{}", String::from_utf8_lossy(bytes))
        .parse()
        .map_err(|_| ApiError::bad_request("Malformed form body"))?;
    let form = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map_err(|_| ApiError::bad_request("Malformed form body"))?
        .0;
    let (loc, company) = {
        let st = lock(&shared.state);
        (st.location_id.clone(), st.company_id.clone())
    };
    lock(&shared.auth).token_endpoint(&form, &loc, &company)
}

/// Route by path segments (a trailing slash is ignored) and method.
fn route(shared: &Shared, method: &Method, path: &str, ctx: &Ctx) -> ApiResult {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut st = lock(&shared.state);
    let st = &mut *st;
    let m = method.as_str();
    if m != "GET" && segs.last() != Some(&"search") {
        st.contacts_changed();
    }
    match (m, segs.as_slice()) {
        ("POST", ["contacts"]) => contacts::create(st, ctx),
        ("POST", ["contacts", "upsert"]) => contacts::upsert(st, ctx),
        ("POST", ["contacts", "search"]) => search::search(st, ctx),
        ("POST", ["contacts", "bulk", "business"]) => contacts::bulk_business(st, ctx),
        ("GET", ["contacts", "business", bid]) => contacts::by_business(st, ctx, bid),
        ("GET", ["contacts", id]) => contacts::get(st, ctx, id),
        ("PUT", ["contacts", id]) => contacts::update(st, ctx, id),
        ("DELETE", ["contacts", id]) => contacts::delete(st, ctx, id),
        ("POST", ["contacts", id, "tags"]) => contacts::add_tags(st, ctx, id),
        ("DELETE", ["contacts", id, "tags"]) => contacts::remove_tags(st, ctx, id),
        ("GET", ["contacts", id, "tasks"]) => records::list_tasks(st, ctx, id),
        ("POST", ["contacts", id, "tasks"]) => records::create_task(st, ctx, id),
        ("GET", ["contacts", id, "tasks", tid]) => records::get_task(st, ctx, id, tid),
        ("PUT", ["contacts", id, "tasks", tid]) => records::update_task(st, ctx, id, tid),
        ("DELETE", ["contacts", id, "tasks", tid]) => records::delete_task(st, ctx, id, tid),
        ("PUT", ["contacts", id, "tasks", tid, "completed"]) => {
            records::complete_task(st, ctx, id, tid)
        }
        ("GET", ["contacts", id, "notes"]) => records::list_notes(st, ctx, id),
        ("POST", ["contacts", id, "notes"]) => records::create_note(st, ctx, id),
        ("GET", ["contacts", id, "notes", nid]) => records::get_note(st, ctx, id, nid),
        ("PUT", ["contacts", id, "notes", nid]) => records::update_note(st, ctx, id, nid),
        ("DELETE", ["contacts", id, "notes", nid]) => records::delete_note(st, ctx, id, nid),
        ("GET", ["contacts", id, "appointments"]) => records::appointments(st, ctx, id),
        ("GET", ["businesses"]) => records::list_businesses(st, ctx),
        ("POST", ["businesses"]) => records::create_business(st, ctx),
        ("GET", ["businesses", id]) => records::get_business(st, ctx, id),
        ("PUT", ["businesses", id]) => records::update_business(st, ctx, id),
        ("DELETE", ["businesses", id]) => records::delete_business(st, ctx, id),
        ("GET", ["locations", lid]) => records::location(st, ctx, lid),
        ("GET", ["locations", lid, "customFields"]) => records::custom_fields(st, ctx, lid),
        ("POST", ["locations", lid, "tasks", "search"]) => records::search_tasks(st, ctx, lid),
        _ => Err(ApiError::not_found(m, path)),
    }
}

/// 403 unless `loc` is the emulated location.
pub(crate) fn same_location(st: &GhlState, loc: &str) -> Result<(), ApiError> {
    if loc == st.location_id {
        Ok(())
    } else {
        Err(ApiError::forbidden_location())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let text = format!("{:?}", GhlOptions::default());
        assert!(!text.contains("pit-test-token"), "{text}");
        assert!(!text.contains("emu-client-secret"), "{text}");
        assert!(text.contains("contacts.write"));
    }
}
