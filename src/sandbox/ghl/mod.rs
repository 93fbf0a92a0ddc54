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
//! - Signed webhooks of the changes made through the API, and of those a test makes as a CRM
//!   user ([`GhlEmulator::webhooks`], [`webhooks`]).
//! - An agency: [`GhlOptions::with_locations`] adds sub-accounts, each with its own records,
//!   tokens and limits ([`GhlEmulator::location`], [`GhlEmulator::location_ids`],
//!   [`GhlEmulator::token_for`]); the agency's token (`user_type=Company`) mints location tokens
//!   (`POST /oauth/locationToken`) and lists them (`GET /oauth/installedLocations`). Every
//!   request is logged with the location it counted against.
//!
//! Layers, outermost first: request log → gate (bearer token, rate limit and its headers on every
//! answer, `Version` header) → fault injection → routing (scope check, DTO validation, handler).
//!
//! Emulator choices where the reference is silent are documented on the items that make them:
//! missing `Version` → 400 and a wrong one → 422; `page × pageLimit > 10,000` → 422; unknown
//! custom field id/key → 422; a location id other than the emulated one → 403.

mod auth;
pub use self::auth::{LocationTokenAnswer, PitRotation, RotatedPair};
mod contacts;
mod records;
mod search;
mod search_cache;
pub mod state;
mod validate;
pub mod webhooks;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The shape of the 403 for a token used on another location's resources (or the agency's
/// token on a sub-account's): GHL's body for it is unconfirmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForbiddenBody {
    /// NestJS's full error: `statusCode`, `message`, `error`.
    #[default]
    Nest,
    /// `message` alone.
    MessageOnly,
    /// An empty JSON object.
    Empty,
}

/// A further sub-account under the same agency. `Debug` redacts its tokens.
#[derive(Clone)]
pub struct SubAccount {
    /// 20-character location id.
    pub location_id: String,
    pub name: String,
    /// Its own Private Integration Tokens and their scopes.
    pub tokens: Vec<(String, Vec<String>)>,
}

impl std::fmt::Debug for SubAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubAccount")
            .field("location_id", &self.location_id)
            .field("name", &self.name)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .finish()
    }
}

/// Configuration of the emulated agency: its first sub-account (`location_id`, `tokens`) and
/// any further ones (`sub_accounts`), which share every other setting but keep their own
/// records, tokens, burst window and daily quota. `Debug` redacts tokens and the client secret.
#[derive(Clone)]
pub struct GhlOptions {
    /// 20-character location (sub-account) id.
    pub location_id: String,
    /// Static Private Integration Tokens and their scopes (never expire).
    pub tokens: Vec<(String, Vec<String>)>,
    /// Further sub-accounts of the agency (see [`GhlOptions::with_locations`]).
    pub sub_accounts: Vec<SubAccount>,
    /// The agency (company) id.
    pub company_id: String,
    /// The marketplace app's id, as `GET /oauth/installedLocations` wants it in `appId`.
    pub app_id: String,
    /// `GET /oauth/installedLocations` silently lowers a larger `limit` to this. GHL states no
    /// page size bound.
    pub installed_locations_max_limit: usize,
    /// The body of a 403 for a token used on another location's resources.
    pub forbidden_body: ForbiddenBody,
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
    /// Lifetime of OAuth access tokens (`expires_in` is this minus one second, like 86399).
    pub access_token_lifetime: Duration,
    /// Whether a refresh ends the access token issued with the old pair at once. GHL does not
    /// say; off (the default) lets it live to its expiry.
    pub revoke_access_on_refresh: bool,
    /// What `POST /oauth/locationToken` answers beyond the token: the documented body, or one
    /// of the readings the documentation leaves open.
    pub location_token_answer: LocationTokenAnswer,
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
            .field("sub_accounts", &self.sub_accounts)
            .field("company_id", &self.company_id)
            .field("app_id", &self.app_id)
            .field(
                "installed_locations_max_limit",
                &self.installed_locations_max_limit,
            )
            .field("forbidden_body", &self.forbidden_body)
            .field("oauth_client_id", &self.oauth_client_id)
            .field("oauth_client_secret", &"<redacted>")
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("revoke_access_on_refresh", &self.revoke_access_on_refresh)
            .field("location_token_answer", &self.location_token_answer)
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
            sub_accounts: Vec::new(),
            company_id: "EmuCompany0000000001".into(),
            app_id: "EmuApp00000000000000001a".into(),
            installed_locations_max_limit: 100,
            forbidden_body: ForbiddenBody::default(),
            oauth_client_id: "emu-client-id".into(),
            oauth_client_secret: "emu-client-secret".into(),
            access_token_lifetime: Duration::from_secs(86_400),
            revoke_access_on_refresh: false,
            location_token_answer: LocationTokenAnswer::default(),
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

impl GhlOptions {
    /// `n` sub-accounts in all (at least one): the first is `location_id` with `tokens`, the
    /// others get generated ids (`EmuLoc00000000000001`, ...), names and one PIT each
    /// (`pit-location-1`, ...) with the scopes of the first token.
    pub fn with_locations(mut self, n: usize) -> Self {
        let scopes = self
            .tokens
            .first()
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        self.sub_accounts = (1..n.max(1))
            .map(|i| SubAccount {
                location_id: format!("EmuLoc{i:014}"),
                name: format!("Emulated Sub-Account {i}"),
                tokens: vec![(format!("pit-location-{i}"), scopes.clone())],
            })
            .collect();
        self
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
    /// The location whose limits the request counted against (the one its token speaks for);
    /// `None` for an unknown token, the token endpoint and the agency's own calls.
    pub location: Option<String>,
    /// When the answer was complete.
    pub at: std::time::Instant,
    /// JSON request body, if the request had one (form bodies and `/oauth/token` bodies are not
    /// recorded: they carry secrets).
    pub body: Option<Value>,
    /// The fault injected into this answer, if any.
    pub fault: Option<InjectedFault>,
}

/// One sub-account: its records and its own limits, as GHL counts them per location.
pub(crate) struct Location {
    pub state: Mutex<GhlState>,
    pub limiter: Mutex<auth::Limiter>,
    /// Whether the agency's marketplace app is installed here (a PIT works either way).
    pub app_installed: AtomicBool,
}

pub(crate) struct Shared {
    /// The first one is the location of `GhlOptions::location_id`.
    pub locations: Vec<Location>,
    /// Location id → index in `locations`.
    pub index: HashMap<String, usize>,
    /// What the agency endpoints list.
    pub installed: Vec<auth::Installed>,
    /// The agency's own limits (its token's calls count against the company, not a location).
    pub company_limiter: Mutex<auth::Limiter>,
    pub company_id: String,
    pub app_id: String,
    pub installed_locations_max_limit: usize,
    pub auth: Mutex<auth::Auth>,
    pub log: Mutex<Vec<GhlRequest>>,
    pub scope_denial_body: ScopeDenialBody,
    pub forbidden_body: ForbiddenBody,
    /// Sends the webhooks of changes made through the API, once configured.
    pub webhooks: Arc<webhooks::GhlWebhookSender>,
}

impl Shared {
    fn primary(&self) -> &Location {
        &self.locations[0]
    }

    fn location(&self, id: &str) -> Option<&Location> {
        self.index.get(id).map(|&i| &self.locations[i])
    }

    fn agency(&self) -> auth::Agency<'_> {
        auth::Agency {
            company_id: &self.company_id,
            app_id: &self.app_id,
            locations: self
                .installed
                .iter()
                .zip(&self.locations)
                .map(|(i, l)| auth::Installed {
                    installed: l.app_installed.load(Ordering::Relaxed),
                    ..i.clone()
                })
                .collect(),
            max_limit: self.installed_locations_max_limit,
        }
    }

    /// The limiter `principal`'s requests count against.
    fn limiter_of(&self, principal: &auth::Principal) -> &Mutex<auth::Limiter> {
        match principal {
            auth::Principal::Location(l) => self
                .location(l)
                .map_or(&self.primary().limiter, |loc| &loc.limiter),
            auth::Principal::Company(_) => &self.company_limiter,
        }
    }
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
        let mut accounts = vec![SubAccount {
            location_id: opts.location_id.clone(),
            name: "Emulated Sub-Account".into(),
            tokens: opts.tokens.clone(),
        }];
        accounts.extend(opts.sub_accounts.iter().cloned());
        let mut pits = Vec::new();
        let mut locations = Vec::new();
        let mut index = HashMap::new();
        for (i, acc) in accounts.iter().enumerate() {
            // Each sub-account draws its ids from its own sequence: GHL's ids are unique
            // across locations, so one location's id never names another's record.
            let seed = opts.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            locations.push(Location {
                state: Mutex::new(location_state(&opts, acc, seed)),
                limiter: Mutex::new(limiter(&opts)),
                app_installed: AtomicBool::new(true),
            });
            index.insert(acc.location_id.clone(), i);
            pits.extend(
                acc.tokens
                    .iter()
                    .map(|(t, sc)| (t.clone(), sc.clone(), acc.location_id.clone())),
            );
        }
        let mut tokens = auth::Auth::new(
            &pits,
            opts.oauth_client_id.clone(),
            opts.oauth_client_secret.clone(),
            opts.access_token_lifetime,
            opts.seed,
        );
        tokens.revoke_access_on_refresh = opts.revoke_access_on_refresh;
        tokens.location_token_answer = opts.location_token_answer;
        let shared = Arc::new(Shared {
            locations,
            index,
            installed: accounts
                .iter()
                .map(|a| auth::Installed {
                    id: a.location_id.clone(),
                    name: a.name.clone(),
                    installed: true,
                })
                .collect(),
            company_limiter: Mutex::new(limiter(&opts)),
            company_id: opts.company_id.clone(),
            app_id: opts.app_id.clone(),
            installed_locations_max_limit: opts.installed_locations_max_limit.max(1),
            auth: Mutex::new(tokens),
            log: Mutex::new(Vec::new()),
            scope_denial_body: opts.scope_denial_body,
            forbidden_body: opts.forbidden_body,
            webhooks: Arc::new(webhooks::GhlWebhookSender::default()),
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

    /// The first location's id (the only one unless `sub_accounts` adds more).
    pub fn location_id(&self) -> String {
        lock(&self.shared.primary().state).location_id.clone()
    }

    /// Every location's id, the first one first.
    pub fn location_ids(&self) -> Vec<String> {
        self.shared.installed.iter().map(|l| l.id.clone()).collect()
    }

    /// The agency's (company) id.
    pub fn company_id(&self) -> String {
        self.shared.company_id.clone()
    }

    /// The marketplace app's id (`appId` of `GET /oauth/installedLocations`).
    pub fn app_id(&self) -> String {
        self.shared.app_id.clone()
    }

    /// One location, for its own records, limits and tokens. Panics on an id the emulator
    /// does not serve (a test's mistake).
    pub fn location(&self, id: &str) -> LocationHandle<'_> {
        let Some(&i) = self.shared.index.get(id) else {
            panic!("the GHL emulator serves no location {id}");
        };
        LocationHandle {
            shared: &self.shared,
            index: i,
        }
    }

    /// A Private Integration Token of `location` that works now, if it has one.
    pub fn token_for(&self, location: &str) -> Option<String> {
        lock(&self.shared.auth).pits_of(location).into_iter().next()
    }

    /// Every request so far, in arrival order of completion.
    pub fn requests(&self) -> Vec<GhlRequest> {
        lock(&self.shared.log).clone()
    }

    /// The most requests that counted against `location` (every location: `None`) within any
    /// span of `window` in the log so far. A client that keeps a location under its burst limit
    /// shows at most `rate_limit` here for `rate_window`; several locations together may show
    /// more.
    pub fn busiest_window(&self, location: Option<&str>, window: Duration) -> usize {
        let mut times: Vec<std::time::Instant> = lock(&self.shared.log)
            .iter()
            .filter(|r| match location {
                Some(l) => r.location.as_deref() == Some(l),
                None => r.location.is_some(),
            })
            .map(|r| r.at)
            .collect();
        times.sort();
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while start <= end && times[end].duration_since(times[start]) >= window {
                start += 1;
            }
            best = best.max(end + 1 - start);
        }
        best
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    pub fn set_faults(&self, knobs: FaultKnobs) {
        self.faults.set(knobs);
    }

    /// Change the burst limit of every location (and of the agency); restarts the current
    /// windows.
    pub fn set_rate_limit(&self, max: u32, window: Duration) {
        for loc in &self.shared.locations {
            lock(&loc.limiter).set_burst(max, window);
        }
        lock(&self.shared.company_limiter).set_burst(max, window);
    }

    /// A new day: every location's whole daily quota is back and the day's reset counts from
    /// now.
    pub fn reset_daily_quota(&self) {
        for loc in &self.shared.locations {
            lock(&loc.limiter).reset_day();
        }
        lock(&self.shared.company_limiter).reset_day();
    }

    /// What is left of the first location's daily quota.
    pub fn set_daily_remaining(&self, n: u64) {
        lock(&self.shared.primary().limiter).daily_remaining = n;
    }

    /// Change the search lag for later writes, in every location.
    pub fn set_search_lag(&self, lag: Duration) {
        self.each_state(|st| st.search_lag = lag);
    }

    /// Change how contact search pages, from the next search on, in every location.
    pub fn set_search_paging(&self, paging: SearchPaging) {
        self.each_state(|st| {
            st.search_paging = paging.clone();
            st.contacts_changed();
        });
    }

    /// Change the date form `range` filters take, from the next search on, in every location.
    pub fn set_date_range_format(&self, format: DateRangeFormat) {
        self.each_state(|st| {
            st.date_range_format = format;
            st.contacts_changed();
        });
    }

    /// Let search catch up now, as if the lag had elapsed, and lag no later write: what a run
    /// started minutes after the last one sees. In every location.
    pub fn settle_search(&self) {
        self.each_state(|st| {
            st.contacts_changed();
            st.search_lag = Duration::ZERO;
            st.lagging.clear();
        });
    }

    fn each_state(&self, mut f: impl FnMut(&mut GhlState)) {
        for loc in &self.shared.locations {
            f(&mut lock(&loc.state));
        }
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

    /// Read or edit the first location's records directly, bypassing HTTP, validation and
    /// search lag.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut GhlState) -> R) -> R {
        self.location(&self.location_id()).with_state(f)
    }

    /// The webhook sender: configure it to have changes made through the API sent, or emit
    /// an event as a user of GHL's UI would cause it ([`webhooks`]).
    pub fn webhooks(&self) -> &Arc<webhooks::GhlWebhookSender> {
        &self.shared.webhooks
    }
}

/// One location of a running emulator (see [`GhlEmulator::location`]).
pub struct LocationHandle<'a> {
    shared: &'a Shared,
    index: usize,
}

impl LocationHandle<'_> {
    fn loc(&self) -> &Location {
        &self.shared.locations[self.index]
    }

    pub fn id(&self) -> String {
        self.shared.installed[self.index].id.clone()
    }

    /// Read or edit this location's records directly, bypassing HTTP, validation and search
    /// lag.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut GhlState) -> R) -> R {
        let mut st = lock(&self.loc().state);
        st.contacts_changed();
        f(&mut st)
    }

    /// Change this location's burst limit; restarts its current window.
    pub fn set_rate_limit(&self, max: u32, window: Duration) {
        lock(&self.loc().limiter).set_burst(max, window);
    }

    /// What is left of this location's daily quota.
    pub fn set_daily_remaining(&self, n: u64) {
        lock(&self.loc().limiter).daily_remaining = n;
    }

    /// A new day for this location alone.
    pub fn reset_daily_quota(&self) {
        lock(&self.loc().limiter).reset_day();
    }

    /// The sub-account revokes its integration: every token that speaks for it (its PITs and
    /// any OAuth or location token) is answered 401 from now on. The agency can still mint a
    /// new location token.
    pub fn revoke_tokens(&self) {
        lock(&self.shared.auth).revoke_location(&self.id());
    }

    /// The agency uninstalls its marketplace app here: the location's OAuth and location
    /// tokens are answered 401, no new location token is minted (400) and
    /// `GET /oauth/installedLocations` lists it with `isInstalled: false`. Its Private
    /// Integration Tokens, which belong to no app, go on working.
    pub fn uninstall_app(&self) {
        self.loc().app_installed.store(false, Ordering::Relaxed);
        lock(&self.shared.auth).revoke_oauth_of(&self.id());
    }

    /// The app installed here again.
    pub fn install_app(&self) {
        self.loc().app_installed.store(true, Ordering::Relaxed);
    }
}

fn location_state(opts: &GhlOptions, acc: &SubAccount, seed: u64) -> GhlState {
    let mut st = GhlState::new(acc.location_id.clone(), opts.allow_duplicates, seed);
    st.location_name = acc.name.clone();
    st.company_id = opts.company_id.clone();
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
    st
}

fn limiter(opts: &GhlOptions) -> auth::Limiter {
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
    let location = match resp.extensions().get::<auth::Principal>() {
        Some(auth::Principal::Location(l)) => Some(l.clone()),
        _ => None,
    };
    lock(&shared.log).push(GhlRequest {
        method,
        path,
        query,
        status: resp.status().as_u16(),
        location,
        at: std::time::Instant::now(),
        body: json_body,
        fault: resp.extensions().get::<InjectedFault>().copied(),
    });
    resp
}

fn is_oauth_token_path(path: &str) -> bool {
    path.trim_end_matches('/') == "/oauth/token"
}

/// Bearer token, rate limit of the location (or agency) the token speaks for, with its headers
/// on every answer, and `Version` header. Answers that belong to no one (the token endpoint,
/// an unknown token) carry the first location's headers.
async fn gate(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let mut principal = None;
    let mut resp = if is_oauth_token_path(req.uri().path()) {
        next.run(req).await
    } else {
        match admit(&shared, &req) {
            Ok(grant) => {
                principal = Some(grant.principal.clone());
                req.extensions_mut().insert(grant);
                next.run(req).await
            }
            Err((who, r)) => {
                principal = who;
                *r
            }
        }
    };
    let limiter = match &principal {
        Some(p) => shared.limiter_of(p),
        None => &shared.primary().limiter,
    };
    let mut limiter = lock(limiter);
    if limiter.send_headers {
        limiter.headers(resp.headers_mut());
    }
    drop(limiter);
    if let Some(p) = principal {
        resp.extensions_mut().insert(p);
    }
    resp
}

/// The caller's grant, or the refusal (with whom the token speaks for, once known).
type Admission = Result<auth::Grant, (Option<auth::Principal>, Box<Response>)>;

fn admit(shared: &Shared, req: &Request) -> Admission {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let grant = lock(&shared.auth)
        .check(token)
        .map_err(|e| (None, Box::new(e.into_response())))?;
    let who = Some(grant.principal.clone());
    {
        let mut lim = lock(shared.limiter_of(&grant.principal));
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
            return Err((who, Box::new(r)));
        }
    }
    match req.headers().get("version").map(|v| v.to_str().unwrap_or("")) {
        None => Err((
            who,
            ApiError {
                status: StatusCode::BAD_REQUEST,
                body: json!({"statusCode": 400, "message": "Version header was not found", "error": "Bad Request"}),
            }
            .boxed(),
        )),
        Some(API_VERSION) => Ok(grant),
        Some(_) => Err((
            who,
            ApiError::unprocessable(vec![format!(
                "version must be one of the following values: {API_VERSION}"
            )])
            .boxed(),
        )),
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
    let grant = req.extensions().get::<auth::Grant>().cloned();
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 32 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let agency_path = path.trim_end_matches('/');
    let result = match (&method, agency_path, grant) {
        (&Method::POST, "/oauth/token", _) => oauth_token(&shared, &content_type, &bytes),
        (&Method::POST, "/oauth/locationToken", Some(grant)) => form_fields(&content_type, &bytes)
            .and_then(|form| lock(&shared.auth).location_token(&grant, &form, &shared.agency())),
        (&Method::GET, "/oauth/installedLocations", Some(grant)) => {
            lock(&shared.auth).installed_locations(&grant, &query, &shared.agency())
        }
        (_, _, Some(grant)) => match parse_json(&bytes) {
            Ok(body) => {
                let ctx = Ctx {
                    scopes: grant.scopes,
                    query,
                    body,
                };
                match &grant.principal {
                    auth::Principal::Location(l) => match shared.location(l) {
                        Some(loc) => {
                            let answer = route(loc, &method, &path, &ctx);
                            if let Ok((_, body)) = &answer {
                                shared
                                    .webhooks
                                    .after_api_call(l, method.as_str(), &path, body);
                            }
                            answer
                        }
                        None => Err(ApiError::forbidden_location()),
                    },
                    // The agency's token does not act inside a sub-account: it mints a
                    // location token for that.
                    auth::Principal::Company(_) => Err(ApiError::forbidden_location()),
                }
            }
            Err(e) => Err(e),
        },
        // Only the token endpoint's path comes through the gate without a grant.
        (_, _, None) => Err(ApiError::not_found(method.as_str(), &path)),
    };
    match result {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(mut e) => {
            if e.is_scope_denial() && shared.scope_denial_body == ScopeDenialBody::MessageOnly {
                e.body = serde_json::json!({"message": e.body["message"].clone()});
            }
            if e.status == StatusCode::FORBIDDEN {
                match shared.forbidden_body {
                    ForbiddenBody::Nest => {}
                    ForbiddenBody::MessageOnly => {
                        e.body = serde_json::json!({"message": e.body["message"].clone()});
                    }
                    ForbiddenBody::Empty => e.body = serde_json::json!({}),
                }
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

/// The fields of a form-urlencoded body (the OAuth endpoints take no JSON).
fn form_fields(content_type: &str, bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::unprocessable(vec![
            "Content-Type must be application/x-www-form-urlencoded".into(),
        ]));
    }
    let uri: axum::http::Uri = format!("/?{}", String::from_utf8_lossy(bytes))
        .parse()
        .map_err(|_| ApiError::bad_request("Malformed form body"))?;
    Ok(Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map_err(|_| ApiError::bad_request("Malformed form body"))?
        .0)
}

fn oauth_token(shared: &Shared, content_type: &str, bytes: &[u8]) -> ApiResult {
    let form = form_fields(content_type, bytes)?;
    let loc = shared.installed[0].id.clone();
    lock(&shared.auth).token_endpoint(&form, &loc, &shared.company_id)
}

/// Route by path segments (a trailing slash is ignored) and method.
fn route(loc: &Location, method: &Method, path: &str, ctx: &Ctx) -> ApiResult {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut st = lock(&loc.state);
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

/// 403 unless `loc` is the location the caller's token speaks for.
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
