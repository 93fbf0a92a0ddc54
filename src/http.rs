//! The one HTTP policy both API clients use (DESIGN.md §6).
//!
//! A [`HttpPolicy`] is built once per API. It owns the reqwest client, an adaptive rate limiter,
//! the retry loop (exponential backoff with jitter from `backon`, `Retry-After` honoured), the
//! daily-quota reserve, the audit of every attempt and the counters. It never sees a body it
//! logs, and it never puts a URL (which may carry a query secret) into an error or a log line:
//! only the caller's path template (`/contacts/{id}`) is used for that.
//!
//! What a server says is believed only within bounds: an answer larger than
//! `max_response_bytes` is refused without being read whole, `X-RateLimit-*` values outside
//! [`RATE_WINDOW_MS`] / [`RATE_MAX`] are ignored with a warning, every wait longer than
//! [`LONG_WAIT`] is logged with its reason, and server text is passed through [`clean_text`]
//! before it can reach an error, a log line or a report.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
pub use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// How a failed call should be treated by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// 5xx, timeouts, connection errors: retried with backoff.
    Transient,
    /// 429: retried after `Retry-After` or backoff.
    RateLimited,
    /// 401/403: one token refresh then one retry; otherwise fatal for the run.
    Auth,
    /// Other 4xx: permanent for that record; the run goes on.
    Permanent,
}

impl ErrorClass {
    /// The name stored and shown (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Auth => "auth",
            ErrorClass::Permanent => "permanent",
        }
    }
}

/// One audited API call attempt. Never carries a secret, a query string or a body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// "hotspot" or "ghl".
    pub api: String,
    pub method: String,
    /// Path with ids elided, e.g. `/contacts/{id}/notes`.
    pub path: String,
    /// HTTP status, or None when no response arrived.
    pub status: Option<u16>,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub latency_ms: u64,
    pub error_class: Option<ErrorClass>,
    /// What went wrong, in the server's words (its `message`, control characters escaped, at most
    /// [`CALL_MESSAGE_CHARS`]) or ours (timeout, connection refused); never a body or a secret.
    /// Emails and phone numbers in it are masked before it is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How much of an error message a call keeps: enough for "property locationId should not exist;
/// email must be an email", not a page of HTML.
pub const CALL_MESSAGE_CHARS: usize = 300;

/// `text` as a call keeps it: escaped, on one line, cut at [`CALL_MESSAGE_CHARS`].
fn call_message(text: &str) -> String {
    let clean = clean_text(text.trim());
    match clean.char_indices().nth(CALL_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

/// 32 MiB: a GHL page of 100 contacts is well under 1 MB, a HotspotSystem page of 1,000 records
/// a few hundred KB; the cap only has to stop a runaway answer before it fills memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// Tuning of one API's policy. Durations are plain so tests can use milliseconds.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub api: &'static str,
    /// Requests allowed per `rate_window` (our own ceiling; server headers can only lower it).
    pub rate_max: u32,
    pub rate_window: Duration,
    /// Attempts per request, including the first.
    pub max_attempts: u32,
    /// No retry is started once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
    /// Per-attempt timeout (connect + response).
    pub timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Calls fail fast with [`HttpError::QuotaReserveReached`] once the daily remaining quota
    /// reported by the server is at or below this.
    pub daily_reserve: u64,
    /// How long a daily-remaining figure is believed when the answer carried no sane
    /// `X-RateLimit-Daily-Reset` (see [`daily_trust`]); once it has passed, one request is let
    /// through to learn the current figure.
    pub daily_recheck: Duration,
    /// A 2xx answer with a longer body is refused with [`HttpError::TooLarge`].
    pub max_response_bytes: u64,
}

impl PolicyConfig {
    /// GHL: 100 requests / 10 s per location documented; we keep 10% headroom.
    pub fn ghl() -> Self {
        PolicyConfig {
            api: "ghl",
            rate_max: 90,
            rate_window: Duration::from_secs(10),
            max_attempts: 5,
            max_elapsed: Duration::from_secs(120),
            timeout: Duration::from_secs(30),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            daily_reserve: 1_000,
            daily_recheck: DAILY_RECHECK,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// HotspotSystem documents no limit; stay polite.
    pub fn hotspot() -> Self {
        PolicyConfig {
            api: "hotspot",
            rate_max: 10,
            rate_window: Duration::from_secs(1),
            ..PolicyConfig::ghl()
        }
    }
}

/// The daily quota last reported by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub daily_remaining: u64,
    pub daily_limit: Option<u64>,
}

/// Snapshot of the policy's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Attempts sent, by HTTP method.
    pub requests_by_method: BTreeMap<String, u64>,
    /// Attempts after the first.
    pub retries: u64,
    /// 429 answers received.
    pub rate_limited: u64,
}

/// A failed call, with nothing that could carry a secret: a status, the server's message and the
/// path template.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub api: &'static str,
    pub class: ErrorClass,
    pub method: String,
    pub path: String,
    pub status: Option<u16>,
    pub message: String,
    /// The `meta` object of a GHL error body (the duplicate-contact answer names the contact here).
    pub meta: Option<serde_json::Value>,
    /// Attempts made before giving up.
    pub attempts: u32,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.api, self.method, self.path)?;
        match self.status {
            Some(s) => write!(f, " answered {s}")?,
            None => write!(f, " failed")?,
        }
        write!(f, " ({:?}", self.class)?;
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        write!(f, "): {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The daily quota fell to the configured reserve: stop writing, defer the rest.
    #[error(
        "{api}: daily quota reserve reached ({daily_remaining} left, reserve {reserve}); deferring"
    )]
    QuotaReserveReached {
        api: &'static str,
        daily_remaining: u64,
        reserve: u64,
    },
    /// A response arrived but its body did not have the documented shape.
    #[error("{api} {path}: unexpected response body: {message}")]
    Decode {
        api: &'static str,
        path: String,
        message: String,
    },
    /// The client was configured wrongly (bad base URL, bad header value).
    #[error("configuration: {0}")]
    Config(String),
    /// A 2xx answer longer than `max_response_bytes`: refused before it was read whole. Not
    /// retried: the same request would get the same answer.
    #[error(
        "{api} {method} {path}: answer refused: {size} more than the cap of {limit} bytes (http.max_response_bytes)"
    )]
    TooLarge {
        api: &'static str,
        method: String,
        path: String,
        size: BodySize,
        limit: u64,
    },
}

/// How an over-long answer was found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySize {
    /// Its `Content-Length`, before any of the body was read.
    Announced(u64),
    /// No length was announced; reading stopped at the cap.
    Unannounced,
}

impl std::fmt::Display for BodySize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodySize::Announced(n) => write!(f, "its Content-Length of {n} bytes is"),
            BodySize::Unannounced => write!(f, "its body (no Content-Length) grew"),
        }
    }
}

impl HttpError {
    /// The class for the caller's decision; quota and decode errors are not retryable.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            HttpError::Api(e) => Some(e.class),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Api(e) => e.status,
            _ => None,
        }
    }

    /// A body of the wrong shape. The message may quote the body (serde names the value it
    /// could not take), so it is cleaned like any server text.
    pub fn decode(api: &'static str, path: &str, err: impl std::fmt::Display) -> Self {
        HttpError::Decode {
            api,
            path: path.to_string(),
            message: clean_text(&err.to_string()),
        }
    }
}

/// Where audit records go. Cloning shares the buffer; the store drains it after each batch.
#[derive(Debug, Clone, Default)]
pub struct AuditSink(Arc<Mutex<Vec<AuditRecord>>>);

impl AuditSink {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, rec: AuditRecord) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(rec);
    }

    /// Takes every record collected so far.
    pub fn drain(&self) -> Vec<AuditRecord> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Request body kinds the two APIs use.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

/// One logical request; the policy may send it several times.
///
/// Debug shows header names only, so a request can be logged without leaking its credentials.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    /// Full URL without query string; query pairs go in `query`.
    pub url: String,
    /// Path with ids elided, for audit and errors.
    pub path_template: String,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    pub body: Body,
    /// Whether a non-idempotent request (POST) may be re-sent after an ambiguous failure
    /// (5xx, timeout, dropped connection). A create may already have happened; the caller knows.
    pub retry_unsafe: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path_template)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field(
                "query_keys",
                &self.query.iter().map(|q| &q.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>, path_template: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            path_template: path_template.into(),
            headers: HeaderMap::new(),
            query: Vec::new(),
            body: Body::None,
            retry_unsafe: false,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Result<Self, HttpError> {
        let v = HeaderValue::from_str(value)
            .map_err(|_| HttpError::Config(format!("invalid value for header {name}")))?;
        self.headers.insert(HeaderName::from_static(name), v);
        Ok(self)
    }

    /// A header whose value is a secret: marked sensitive so no HTTP layer prints it.
    pub fn secret_header(mut self, name: &'static str, value: &str) -> Result<Self, HttpError> {
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| HttpError::Config(format!("invalid value for header {name}")))?;
        v.set_sensitive(true);
        self.headers.insert(HeaderName::from_static(name), v);
        Ok(self)
    }

    pub fn query(mut self, key: &str, value: impl ToString) -> Self {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    pub fn form(mut self, pairs: Vec<(String, String)>) -> Self {
        self.body = Body::Form(pairs);
        self
    }

    pub fn retry_unsafe(mut self, yes: bool) -> Self {
        self.retry_unsafe = yes;
        self
    }

    fn idempotent(&self) -> bool {
        matches!(
            self.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        )
    }
}

/// A successful (2xx) answer, body read in full. Debug shows no body: a token endpoint's
/// answer carries secrets.
#[derive(Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Response {
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
    ) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::decode(api, path, e))
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sliding-window limiter: at most `capacity` sends in any span of `window` plus a small margin.
/// GHL counts requests per window; a token bucket of the same size would allow up to twice the
/// limit across a window boundary, and requests that leave together can arrive bunched, hence
/// the margin. Capacity and window follow the server's `X-RateLimit-*` headers.
struct Bucket {
    capacity: usize,
    window: Duration,
    /// Send times of the requests still inside the window, oldest first.
    sent: VecDeque<Instant>,
    /// Set when the server said 0 remaining while our own count was below the limit (someone
    /// else shares the quota): nothing is sent before this instant.
    blocked_until: Option<Instant>,
    /// Nothing sent or seeded yet: only then may an earlier process's sends be taken over.
    fresh: bool,
}

impl Bucket {
    fn new(capacity: u32, window: Duration) -> Self {
        Bucket {
            capacity: capacity.max(1) as usize,
            window,
            sent: VecDeque::new(),
            blocked_until: None,
            fresh: true,
        }
    }

    /// Counts the sends of an earlier process, given by their age, as if made here. Only a
    /// fresh limiter takes them: one that has sent already knows its own window.
    fn seed(&mut self, now: Instant, ages: impl IntoIterator<Item = Duration>) {
        if !std::mem::replace(&mut self.fresh, false) {
            return;
        }
        let mut sent: Vec<Instant> = ages
            .into_iter()
            .filter_map(|a| now.checked_sub(a))
            .collect();
        sent.sort();
        self.sent = sent.into();
        self.forget_old(now);
    }

    /// The span over which `capacity` is enforced: the window plus 5% (at least 25 ms).
    fn span(&self) -> Duration {
        self.window + (self.window / 20).max(Duration::from_millis(25))
    }

    fn forget_old(&mut self, now: Instant) {
        let span = self.span();
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= span)
        {
            self.sent.pop_front();
        }
    }

    /// Takes a slot, or says how long to wait for one.
    fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.fresh = false;
        if let Some(until) = self.blocked_until {
            if now < until {
                return Err(until - now);
            }
            self.blocked_until = None;
        }
        self.forget_old(now);
        if self.sent.len() < self.capacity {
            self.sent.push_back(now);
            return Ok(());
        }
        let oldest = self.sent[self.sent.len() - self.capacity];
        Err((oldest + self.span())
            .saturating_duration_since(now)
            .max(Duration::from_millis(1)))
    }
}

struct Inner {
    cfg: PolicyConfig,
    client: reqwest::Client,
    bucket: Mutex<Bucket>,
    /// u64::MAX until the server reported one.
    daily_remaining: AtomicU64,
    daily_limit: AtomicU64,
    /// Until when `daily_remaining` is believed; past it, the reserve lets one request through.
    daily_trusted_until: Mutex<Option<Instant>>,
    sink: AuditSink,
    stats: Mutex<Stats>,
    /// Whether out-of-bounds `X-RateLimit-*` values were already warned about (once per process
    /// and API: a server that sends them sends them on every answer).
    warned_rate_headers: AtomicBool,
    /// End of the last limiter wait that was logged, so that the requests queued behind one
    /// full window log it once.
    logged_wait_until: Mutex<Option<Instant>>,
    /// Until when the rate limiter holds requests back, for whoever shows progress.
    held_until: Mutex<Option<Instant>>,
}

/// The policy: cheap to clone (shared state), one per API.
#[derive(Clone)]
pub struct HttpPolicy {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HttpPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPolicy")
            .field("api", &self.inner.cfg.api)
            .finish()
    }
}

const NONE: u64 = u64::MAX;

impl HttpPolicy {
    pub fn new(cfg: PolicyConfig, sink: AuditSink) -> Result<Self, HttpError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // Redirects could carry our credentials to another host; neither API uses them.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| HttpError::Config(format!("HTTP client: {}", e.without_url())))?;
        let bucket = Bucket::new(cfg.rate_max, cfg.rate_window);
        Ok(HttpPolicy {
            inner: Arc::new(Inner {
                cfg,
                client,
                bucket: Mutex::new(bucket),
                daily_remaining: AtomicU64::new(NONE),
                daily_limit: AtomicU64::new(NONE),
                daily_trusted_until: Mutex::new(None),
                sink,
                stats: Mutex::new(Stats::default()),
                warned_rate_headers: AtomicBool::new(false),
                logged_wait_until: Mutex::new(None),
                held_until: Mutex::new(None),
            }),
        })
    }

    pub fn api(&self) -> &'static str {
        self.inner.cfg.api
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.inner.cfg
    }

    /// The daily quota last seen in a response, if the server reports one.
    pub fn quota(&self) -> Option<Quota> {
        let rem = self.inner.daily_remaining.load(Ordering::Relaxed);
        if rem == NONE {
            return None;
        }
        let lim = self.inner.daily_limit.load(Ordering::Relaxed);
        Some(Quota {
            daily_remaining: rem,
            daily_limit: (lim != NONE).then_some(lim),
        })
    }

    pub fn stats(&self) -> Stats {
        self.inner
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn audit(&self) -> &AuditSink {
        &self.inner.sink
    }

    /// Wall-clock times of the sends still inside the rate window, oldest first: what the next
    /// process must count against its first window (see [`HttpPolicy::seed_window`]).
    pub fn window_sends(&self) -> Vec<std::time::SystemTime> {
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        let mut b = self.inner.bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.forget_old(now);
        b.sent
            .iter()
            .filter_map(|t| wall.checked_sub(now.saturating_duration_since(*t)))
            .collect()
    }

    /// Takes the sends an earlier process made in the last window (wall-clock times) as this
    /// limiter's own, so that a process started right after a burst does not begin with a full
    /// window the server no longer has. Ignored once this limiter has sent anything.
    pub fn seed_window(&self, sends: &[std::time::SystemTime]) {
        let wall = std::time::SystemTime::now();
        // A time ahead of this clock counts as now.
        let ages = sends
            .iter()
            .map(|t| wall.duration_since(*t).unwrap_or_default());
        let mut b = self.inner.bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.seed(Instant::now(), ages);
    }

    /// Fails fast while the daily quota is at the reserve. A figure at the reserve is believed
    /// only until it expires (see [`daily_trust`]): a long-lived process would otherwise never
    /// send the request whose answer tells it the day has turned. The first call after the
    /// expiry goes out, whatever it is (the reserve leaves room for other users of the quota;
    /// one request per expiry spends little of it), and its answer sets the figure again; the
    /// calls meanwhile still fail fast.
    fn check_reserve(&self) -> Result<(), HttpError> {
        let rem = self.inner.daily_remaining.load(Ordering::Relaxed);
        let reserve = self.inner.cfg.daily_reserve;
        if rem == NONE || rem > reserve {
            return Ok(());
        }
        let now = Instant::now();
        let mut until = self
            .inner
            .daily_trusted_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if until.is_some_and(|u| now >= u) {
            // Claim the one request: if it gets no answer, the next one waits a full recheck.
            *until = Some(now + self.inner.cfg.daily_recheck);
            tracing::info!(
                api = self.inner.cfg.api,
                daily_remaining = rem,
                reserve,
                "the daily quota figure has expired: sending one request to learn the current one"
            );
            return Ok(());
        }
        Err(HttpError::QuotaReserveReached {
            api: self.inner.cfg.api,
            daily_remaining: rem,
            reserve,
        })
    }

    /// Stores a daily-remaining figure with how long it is believed, logging when it takes
    /// the quota to the reserve or back above it.
    fn observe_daily(&self, remaining: u64, reset: Option<&str>) {
        let now = Instant::now();
        let trust = daily_trust(reset, self.inner.cfg.daily_recheck);
        let mut until = self
            .inner
            .daily_trusted_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *until = Some(now + trust.duration());
        let before = self
            .inner
            .daily_remaining
            .swap(remaining, Ordering::Relaxed);
        let reserve = self.inner.cfg.daily_reserve;
        let held_before = before != NONE && before <= reserve;
        let held_now = remaining <= reserve;
        if held_now && !held_before {
            tracing::info!(
                api = self.inner.cfg.api,
                daily_remaining = remaining,
                reserve,
                check_in_secs = trust.duration().as_secs(),
                "daily quota reserve reached: requests held until the figure is checked again \
                 ({})",
                trust
            );
        } else if held_before && !held_now {
            tracing::info!(
                api = self.inner.cfg.api,
                daily_remaining = remaining,
                reserve,
                "daily quota reserve lifted: the server reports requests left again"
            );
        }
    }

    async fn acquire(&self) {
        loop {
            let now = Instant::now();
            let (wait, reason) = {
                let mut b = self.inner.bucket.lock().unwrap_or_else(|p| p.into_inner());
                let server_said_none = b.blocked_until.is_some_and(|u| u > now);
                let (capacity, window) = (b.capacity, b.window);
                match b.try_take(now) {
                    Ok(()) => return,
                    Err(w) if server_said_none => (w, WaitReason::ServerNoneRemaining { window }),
                    Err(w) => (w, WaitReason::WindowFull { capacity, window }),
                }
            };
            {
                let mut held = self
                    .inner
                    .held_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                *held = (*held).max(Some(now + wait));
            }
            if wait >= LONG_WAIT {
                let mut logged = self
                    .inner
                    .logged_wait_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if logged.is_none_or(|until| now >= until) {
                    *logged = Some(now + wait);
                    match reason {
                        // Our own limit filling up is the normal pace of a large sync.
                        WaitReason::WindowFull { .. } => tracing::info!(
                            api = self.inner.cfg.api,
                            wait_secs = wait.as_secs(),
                            "waiting before the next request: {reason}"
                        ),
                        WaitReason::ServerNoneRemaining { .. } => tracing::warn!(
                            api = self.inner.cfg.api,
                            wait_secs = wait.as_secs(),
                            "waiting before the next request: {reason}"
                        ),
                    }
                }
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// How much longer the rate limiter holds requests back, when it does now: a progress bar
    /// that stops moving says why.
    pub fn rate_limit_hold(&self) -> Option<Duration> {
        let held = *self
            .inner
            .held_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        held.map(|until| until.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }

    /// Learns from the `X-RateLimit-*` headers (GHL sends them on every answer).
    fn observe(&self, headers: &HeaderMap) {
        let num = |n: &str| -> Option<u64> {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse().ok())
        };
        if let Some(d) = num("x-ratelimit-daily-remaining") {
            let reset = headers
                .get("x-ratelimit-daily-reset")
                .and_then(|v| v.to_str().ok());
            self.observe_daily(d, reset);
        }
        if let Some(l) = num("x-ratelimit-limit-daily") {
            self.inner.daily_limit.store(l, Ordering::Relaxed);
        }
        let max = num("x-ratelimit-max");
        let interval = num("x-ratelimit-interval-milliseconds");
        let remaining = num("x-ratelimit-remaining");
        if max.is_none() && interval.is_none() && remaining.is_none() {
            return;
        }
        if let Some(why) = rate_headers_out_of_bounds(max, interval, remaining) {
            // The three describe one window: when one is absurd the others are not to be
            // trusted either. Our own configured limit still applies.
            if !self.inner.warned_rate_headers.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    api = self.inner.cfg.api,
                    "ignoring the X-RateLimit-Max/-Remaining/-Interval-Milliseconds of an answer: {why}; the configured rate limit applies (said once; later such answers are ignored the same way)"
                );
            } else {
                tracing::debug!(
                    api = self.inner.cfg.api,
                    "ignoring X-RateLimit values: {why}"
                );
            }
            return;
        }
        let now = Instant::now();
        let mut b = self.inner.bucket.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ms) = interval {
            b.window = Duration::from_millis(ms);
        }
        if let Some(m) = max {
            // The server may lower our ceiling, never raise it above the configured one.
            b.capacity = (m as usize).min(self.inner.cfg.rate_max.max(1) as usize);
        }
        b.forget_old(now);
        if remaining == Some(0) && b.sent.len() < b.capacity {
            // The server counts requests we did not send (the quota is shared): we do not know
            // when its window started, so wait a whole one.
            b.blocked_until = Some(now + b.window);
        }
    }

    fn record(
        &self,
        req: &Request,
        status: Option<u16>,
        attempt: u32,
        started: Instant,
        failure: Option<(ErrorClass, &str)>,
    ) {
        let latency_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(
            api = self.inner.cfg.api,
            method = %req.method,
            path = %req.path_template,
            status,
            attempt,
            latency_ms,
            "http call"
        );
        self.inner.sink.push(AuditRecord {
            api: self.inner.cfg.api.to_string(),
            method: req.method.to_string(),
            path: req.path_template.clone(),
            status,
            attempt,
            latency_ms,
            error_class: failure.map(|(class, _)| class),
            message: failure
                .map(|(_, text)| call_message(text))
                .filter(|m| !m.is_empty()),
        });
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.inner.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn build(&self, req: &Request) -> reqwest::RequestBuilder {
        let mut rb = self
            .inner
            .client
            .request(req.method.clone(), &req.url)
            .headers(req.headers.clone());
        if !req.query.is_empty() {
            rb = rb.query(&req.query);
        }
        match &req.body {
            Body::None => rb,
            Body::Json(v) => rb.json(v),
            Body::Form(pairs) => rb.form(pairs),
        }
    }

    /// Sends `req` under the policy. `Ok` only for a 2xx answer; every other outcome is an error
    /// with its class, after the retries the policy allows.
    pub async fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let cfg = &self.inner.cfg;
        let first = Instant::now();
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(cfg.min_backoff)
            .with_max_delay(cfg.max_backoff)
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.check_reserve()?;
            self.acquire().await;
            self.count(|s| {
                *s.requests_by_method
                    .entry(req.method.to_string())
                    .or_default() += 1;
                if attempt > 1 {
                    s.retries += 1;
                }
            });
            let started = Instant::now();
            let outcome = self.build(req).send().await;
            let (err, retryable, retry_after) = match outcome {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    self.observe(&headers);
                    let success = (200..300).contains(&status);
                    // An error body is only read for its message: its first bytes will do.
                    let read = if success {
                        read_capped(&mut resp, cfg.max_response_bytes).await
                    } else {
                        read_prefix(&mut resp, ERROR_BODY_PREFIX).await.map(Ok)
                    };
                    match read {
                        Ok(Err(size)) => {
                            let why = format!(
                                "answer over http.max_response_bytes ({} bytes), not read",
                                cfg.max_response_bytes
                            );
                            self.record(
                                req,
                                Some(status),
                                attempt,
                                started,
                                Some((ErrorClass::Permanent, &why)),
                            );
                            return Err(HttpError::TooLarge {
                                api: cfg.api,
                                method: req.method.to_string(),
                                path: req.path_template.clone(),
                                size,
                                limit: cfg.max_response_bytes,
                            });
                        }
                        Ok(Ok(body)) if success => {
                            self.record(req, Some(status), attempt, started, None);
                            return Ok(Response {
                                status,
                                headers,
                                body,
                            });
                        }
                        Ok(Ok(body)) => {
                            let class = classify(status);
                            let (message, meta) = server_message(&body);
                            self.record(
                                req,
                                Some(status),
                                attempt,
                                started,
                                Some((class, &message)),
                            );
                            if status == 429 {
                                self.count(|s| s.rate_limited += 1);
                                // A 429 on an exhausted day will not clear by waiting.
                                self.check_reserve()?;
                            }
                            let retryable = match class {
                                // A refused request was not processed: always safe to resend.
                                ErrorClass::RateLimited => true,
                                ErrorClass::Transient => req.idempotent() || req.retry_unsafe,
                                ErrorClass::Auth | ErrorClass::Permanent => false,
                            };
                            let err =
                                self.api_error(req, class, Some(status), message, meta, attempt);
                            (err, retryable, retry_after(&headers))
                        }
                        Err(e) => {
                            let msg = format!("reading the body failed: {}", transport_message(&e));
                            self.record(
                                req,
                                Some(status),
                                attempt,
                                started,
                                Some((ErrorClass::Transient, &msg)),
                            );
                            let err = self.api_error(
                                req,
                                ErrorClass::Transient,
                                Some(status),
                                msg,
                                None,
                                attempt,
                            );
                            (err, req.idempotent() || req.retry_unsafe, None)
                        }
                    }
                }
                Err(e) => {
                    self.record(
                        req,
                        None,
                        attempt,
                        started,
                        Some((ErrorClass::Transient, &transport_message(&e))),
                    );
                    // A failed connect means nothing was sent: safe to resend even a create.
                    let safe = e.is_connect() || req.idempotent() || req.retry_unsafe;
                    let err = self.api_error(
                        req,
                        ErrorClass::Transient,
                        None,
                        transport_message(&e),
                        None,
                        attempt,
                    );
                    (err, safe, None)
                }
            };
            if !retryable || attempt >= cfg.max_attempts {
                return Err(HttpError::Api(Box::new(err)));
            }
            let (delay, reason) = match retry_after {
                Some(d) => (d, "the server's Retry-After"),
                None => (
                    backoff.next().unwrap_or(cfg.max_backoff),
                    "backoff after a failed attempt",
                ),
            };
            if first.elapsed() + delay > cfg.max_elapsed {
                if delay >= LONG_WAIT {
                    tracing::warn!(
                        api = cfg.api,
                        method = %req.method,
                        path = %req.path_template,
                        wait_secs = delay.as_secs(),
                        "not retrying: {reason} asks for a wait past http.max_elapsed_secs"
                    );
                }
                return Err(HttpError::Api(Box::new(err)));
            }
            if delay >= LONG_WAIT {
                tracing::warn!(
                    api = cfg.api,
                    method = %req.method,
                    path = %req.path_template,
                    attempt,
                    wait_secs = delay.as_secs(),
                    "waiting before retrying: {reason} ({})",
                    err.status.map_or("no answer".to_string(), |s| format!("answered {s}"))
                );
            } else {
                tracing::debug!(api = cfg.api, path = %req.path_template, attempt, delay_ms = delay.as_millis() as u64, "retrying");
            }
            tokio::time::sleep(delay).await;
        }
    }

    fn api_error(
        &self,
        req: &Request,
        class: ErrorClass,
        status: Option<u16>,
        message: String,
        meta: Option<serde_json::Value>,
        attempts: u32,
    ) -> ApiError {
        ApiError {
            api: self.inner.cfg.api,
            class,
            method: req.method.to_string(),
            path: req.path_template.clone(),
            status,
            message: clean_text(&message),
            meta,
            attempts,
        }
    }
}

/// A wait at least this long is logged (at warn) with its reason.
const LONG_WAIT: Duration = Duration::from_secs(5);

/// `X-RateLimit-Interval-Milliseconds` believed: real burst windows are seconds long (GHL: 10 s).
/// A day-long window with `Remaining: 0` would stall a pass for a day.
const RATE_WINDOW_MS: RangeInclusive<u64> = 100..=60_000;

/// `X-RateLimit-Max` believed (it can only lower the configured limit).
const RATE_MAX: RangeInclusive<u64> = 1..=1_000_000;

/// `X-RateLimit-Daily-Reset` believed, in milliseconds: GHL does not document the header; one
/// observed value (49013000) reads as the time left in a daily window, so anything that is not
/// within one day is not a time until the reset.
const DAILY_RESET_MS: RangeInclusive<u64> = 1..=86_400_000;

/// How long a daily-remaining figure is believed without a sane reset time. GHL documents a
/// per-day quota but not when its day turns (UTC midnight, the location's midnight, or a
/// rolling 24 hours all fit what is published), so waiting for any one midnight could hold a
/// run for most of a day after the quota came back. Checking hourly spends at most 24 requests
/// a day of the reserve and resumes at most an hour late under every reading.
pub const DAILY_RECHECK: Duration = Duration::from_secs(3600);

/// How long one daily-remaining figure is believed, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DailyTrust {
    /// The answer said when the day resets (`X-RateLimit-Daily-Reset`, milliseconds).
    UntilServerReset(Duration),
    /// No reset time, or one out of [`DAILY_RESET_MS`]: the configured recheck interval.
    Recheck(Duration),
}

impl DailyTrust {
    pub fn duration(self) -> Duration {
        match self {
            DailyTrust::UntilServerReset(d) | DailyTrust::Recheck(d) => d,
        }
    }
}

impl std::fmt::Display for DailyTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DailyTrust::UntilServerReset(d) => {
                write!(f, "the server says its day resets in {} s", d.as_secs())
            }
            DailyTrust::Recheck(d) => write!(
                f,
                "no usable reset time from the server; checking again in {} s",
                d.as_secs()
            ),
        }
    }
}

/// How long to believe a daily-remaining figure that came with `reset` (the raw
/// `X-RateLimit-Daily-Reset` value, if any).
fn daily_trust(reset: Option<&str>, recheck: Duration) -> DailyTrust {
    match reset.and_then(|r| r.trim().parse::<u64>().ok()) {
        Some(ms) if DAILY_RESET_MS.contains(&ms) => {
            DailyTrust::UntilServerReset(Duration::from_millis(ms))
        }
        _ => DailyTrust::Recheck(recheck),
    }
}

/// Why `X-RateLimit-*` values of one answer are not believed, if they are not.
fn rate_headers_out_of_bounds(
    max: Option<u64>,
    interval_ms: Option<u64>,
    remaining: Option<u64>,
) -> Option<String> {
    if let Some(ms) = interval_ms.filter(|ms| !RATE_WINDOW_MS.contains(ms)) {
        return Some(format!(
            "X-RateLimit-Interval-Milliseconds = {ms} is outside {}..={} ms",
            RATE_WINDOW_MS.start(),
            RATE_WINDOW_MS.end()
        ));
    }
    if let Some(m) = max.filter(|m| !RATE_MAX.contains(m)) {
        return Some(format!(
            "X-RateLimit-Max = {m} is outside {}..={}",
            RATE_MAX.start(),
            RATE_MAX.end()
        ));
    }
    match (remaining, max) {
        (Some(r), Some(m)) if r > m => Some(format!(
            "X-RateLimit-Remaining = {r} is more than X-RateLimit-Max = {m}"
        )),
        _ => None,
    }
}

/// Why the limiter holds a request back.
#[derive(Debug, Clone, Copy)]
enum WaitReason {
    /// The server answered `X-RateLimit-Remaining: 0` while our own count was under the limit.
    ServerNoneRemaining { window: Duration },
    /// Our own count filled the window (the configured limit, or a lower `X-RateLimit-Max`).
    WindowFull { capacity: usize, window: Duration },
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitReason::ServerNoneRemaining { window } => write!(
                f,
                "the server answered X-RateLimit-Remaining: 0 (its quota is shared with another client), so one whole {} ms window (X-RateLimit-Interval-Milliseconds or the configured rate_window_secs) is left to pass",
                window.as_millis()
            ),
            WaitReason::WindowFull { capacity, window } => write!(
                f,
                "{capacity} requests were sent in the last {} ms, the limit (configured rate_limit / rate_window_secs, or a lower X-RateLimit-Max)",
                window.as_millis()
            ),
        }
    }
}

/// Error bodies are read up to this many bytes: enough for any message.
const ERROR_BODY_PREFIX: u64 = 64 * 1024;

/// The body, or `Err` with how it was found longer than `limit` (then the rest is not read: the
/// connection is dropped). A `Content-Length` over the limit is refused before reading.
async fn read_capped(
    resp: &mut reqwest::Response,
    limit: u64,
) -> Result<Result<Vec<u8>, BodySize>, reqwest::Error> {
    if let Some(n) = resp.content_length().filter(|n| *n > limit) {
        return Ok(Err(BodySize::Announced(n)));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(Err(BodySize::Unannounced));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

/// At most the first `limit` bytes of the body.
async fn read_prefix(resp: &mut reqwest::Response, limit: u64) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = (limit as usize).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= limit {
            break;
        }
    }
    Ok(body)
}

/// Server text made safe to log and report: control characters (a newline that would start a
/// forged log line, the ESC of a terminal escape sequence, C1 codes) and the invisible
/// direction overrides that reorder what a reader sees are shown escaped (`\n`, `\u{1b}`),
/// never passed through. Applied once, where server text enters an error.
pub fn clean_text(s: &str) -> String {
    let suspect = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(suspect) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if suspect(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Status → class, per DESIGN.md §6.
pub fn classify(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::Auth,
        408 | 500..=599 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A transport error described without its URL (which may carry a secret in the query).
fn transport_message(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        let mut msg = "request failed".to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    }
}

/// The server's message from an error body: GHL's `message` (a string, or an array for 422,
/// joined so the error names the field), HotspotSystem's `error` (string or `{message}`).
fn server_message(body: &[u8]) -> (String, Option<serde_json::Value>) {
    const MAX: usize = 500;
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().take(MAX).collect();
        return (
            if text.is_empty() {
                "no message".into()
            } else {
                text
            },
            None,
        );
    };
    let as_text = |m: &serde_json::Value| -> Option<String> {
        match m {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(items) => Some(
                items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            serde_json::Value::Object(o) => o
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string),
            _ => None,
        }
    };
    let msg = v
        .get("message")
        .and_then(as_text)
        .or_else(|| v.get("error_description").and_then(as_text))
        .or_else(|| v.get("error").and_then(as_text))
        .unwrap_or_else(|| "no message".into());
    let msg: String = msg.chars().take(MAX).collect();
    (msg, v.get("meta").cloned())
}

/// True when `url` is https, or http to a loopback host (the emulators, tests).
pub fn check_base_url(url: &str) -> Result<reqwest::Url, HttpError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| HttpError::Config("base URL is not a valid URL".to_string()))?;
    let host = parsed.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(HttpError::Config(format!(
            "base URL must use https (plain http is allowed on loopback only), got {}://{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or("")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_array_is_joined() {
        let body = br#"{"statusCode":422,"message":["property locationId should not exist","email must be an email"],"error":"Unprocessable Entity"}"#;
        let (m, _) = server_message(body);
        assert_eq!(
            m,
            "property locationId should not exist; email must be an email"
        );
    }

    #[test]
    fn hotspot_error_shapes() {
        assert_eq!(server_message(br#"{"error":"bad key"}"#).0, "bad key");
        assert_eq!(
            server_message(
                br#"{"success":false,"error":{"code":401,"message":"Authorization Required"}}"#
            )
            .0,
            "Authorization Required"
        );
        assert_eq!(server_message(b"oops").0, "oops");
    }

    #[test]
    fn base_url_rules() {
        assert!(check_base_url("https://api.hotspotsystem.com/v2.0").is_ok());
        assert!(check_base_url("http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("http://localhost:1/x").is_ok());
        assert!(check_base_url("http://[::1]:1/").is_ok());
        assert!(check_base_url("http://api.hotspotsystem.com").is_err());
        assert!(check_base_url("ftp://127.0.0.1").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_never_allows_more_than_capacity_in_any_window() {
        let mut b = Bucket::new(2, Duration::from_secs(1));
        let span = b.span();
        let mut sends = Vec::new();
        let start = Instant::now();
        while sends.len() < 10 {
            match b.try_take(Instant::now()) {
                Ok(()) => sends.push(Instant::now()),
                Err(w) => tokio::time::advance(w).await,
            }
        }
        // Any two sends `capacity` apart are at least one span apart: never 3 in a window.
        for pair in sends.windows(3) {
            assert!(pair[2] - pair[0] >= span, "{:?}", pair[2] - pair[0]);
        }
        // And it is not needlessly slow: 10 sends at 2 per 1.05 s take about 4 spans.
        assert!(Instant::now() - start <= span * 4 + Duration::from_millis(5));
        b.blocked_until = Some(Instant::now() + Duration::from_secs(3));
        assert_eq!(
            b.try_take(Instant::now()).unwrap_err(),
            Duration::from_secs(3)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_is_shown_as_a_hold_until_it_frees() {
        let mut cfg = PolicyConfig::ghl();
        cfg.rate_max = 1;
        cfg.rate_window = Duration::from_secs(10);
        let policy = HttpPolicy::new(cfg, AuditSink::new()).unwrap();
        policy.acquire().await;
        assert_eq!(
            policy.rate_limit_hold(),
            None,
            "the first request is not held"
        );
        let queued = tokio::spawn({
            let policy = policy.clone();
            async move { policy.acquire().await }
        });
        tokio::task::yield_now().await;
        let held = policy
            .rate_limit_hold()
            .expect("the second request is held");
        assert!(held > Duration::from_secs(9), "{held:?}");
        queued.await.unwrap();
        assert_eq!(
            policy.rate_limit_hold(),
            None,
            "released once the window frees"
        );
    }

    #[test]
    fn seeded_sends_count_against_a_fresh_window_only() {
        let now = Instant::now() + Duration::from_secs(60);
        let mut b = Bucket::new(3, Duration::from_secs(10));
        // Two sends 1 s and 4 s ago, one long gone.
        b.seed(now, [1, 4, 30].map(Duration::from_secs));
        assert_eq!(b.sent.len(), 2);
        assert_eq!(b.try_take(now), Ok(()));
        // Full: the next slot frees when the send of 4 s ago leaves the span.
        let wait = b.try_take(now).unwrap_err();
        assert!(
            wait > Duration::from_secs(6) && wait < Duration::from_secs(7),
            "{wait:?}"
        );
        // A limiter that has sent keeps its own count.
        b.seed(now, [Duration::ZERO; 3]);
        assert_eq!(b.sent.len(), 3);
    }

    #[test]
    fn server_text_is_shown_with_its_control_characters_escaped() {
        assert_eq!(clean_text("plain text, é ✓"), "plain text, é ✓");
        assert_eq!(
            clean_text("bad\n2026-01-01 INFO forged\u{1b}[2J\r\u{85}\u{202e}x"),
            "bad\\n2026-01-01 INFO forged\\u{1b}[2J\\r\\u{85}\\u{202e}x"
        );
        let (m, _) = server_message(b"{\"message\":\"a\\nb\"}");
        assert_eq!(
            m, "a\nb",
            "server_message keeps the text; api_error cleans it"
        );
        let e = HttpError::decode("ghl", "/x", "invalid type: string \"\u{1b}]0;t\u{7}\"");
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }

    #[test]
    fn rate_limit_headers_are_believed_only_within_bounds() {
        assert_eq!(
            rate_headers_out_of_bounds(Some(100), Some(10_000), Some(0)),
            None
        );
        assert_eq!(rate_headers_out_of_bounds(None, None, Some(5)), None);
        assert!(
            rate_headers_out_of_bounds(Some(1), Some(86_400_000), Some(0))
                .unwrap()
                .contains("Interval-Milliseconds = 86400000")
        );
        assert!(rate_headers_out_of_bounds(Some(100), Some(10), None).is_some());
        assert!(rate_headers_out_of_bounds(Some(0), Some(10_000), None).is_some());
        assert!(rate_headers_out_of_bounds(Some(10), Some(10_000), Some(11)).is_some());
    }

    #[test]
    fn a_daily_figure_is_believed_until_a_sane_reset_else_for_the_recheck() {
        let hour = Duration::from_secs(3600);
        assert_eq!(
            daily_trust(Some("49013000"), hour),
            DailyTrust::UntilServerReset(Duration::from_millis(49_013_000))
        );
        assert_eq!(
            daily_trust(Some(" 86400000 "), hour),
            DailyTrust::UntilServerReset(Duration::from_secs(86_400))
        );
        // Absent, unparsable, zero, negative or beyond a day: not a time until the reset.
        for reset in [
            None,
            Some(""),
            Some("soon"),
            Some("0"),
            Some("-5"),
            Some("86400001"),
            Some("1764633600000"),
        ] {
            assert_eq!(
                daily_trust(reset, hour),
                DailyTrust::Recheck(hour),
                "{reset:?}"
            );
        }
    }

    #[test]
    fn classes() {
        assert_eq!(classify(429), ErrorClass::RateLimited);
        assert_eq!(classify(503), ErrorClass::Transient);
        assert_eq!(classify(401), ErrorClass::Auth);
        assert_eq!(classify(422), ErrorClass::Permanent);
        assert_eq!(classify(400), ErrorClass::Permanent);
    }
}
