//! `serve`: a read-only web dashboard over the state database.
//!
//! Pages (`/`, `/runs`, `/runs/{id}`, `/contacts`, `/notes`, `/tasks`, `/appointments`,
//! `/guests`, `/calls`, `/errors`), rendered from `templates/`, JSON under `/api/...`, Prometheus text at `/metrics` and `/healthz` for alerting.
//! With `[[pairs]]` ([`installation_app`]) the home page is the overview of pairs
//! ([`pairs`]), `/healthz` and `/metrics` cover every pair, and each pair's pages are these, under
//! `/pairs/{name}`.
//! Only GET routes exist, and each request opens the state file itself (WAL readers never block
//! the running sync), so the dashboard can run next to the scheduler without coordination.
//! It listens on loopback unless the operator explicitly allows another address, and then only
//! with credentials ([`crate::server::auth`]). It runs on the hardened server of
//! [`crate::server`]; requests naming a host it does not serve get 421 ([`crate::server::host`]);
//! `[dashboard] show_personal_data` masks guests' names, emails and phones ([`crate::privacy`]).
//! At most [`HEAVY_LANE`] pages are built at once (plus [`HEALTH_LANE`] health checks, so
//! `/healthz` never waits behind pages), which bounds the memory concurrent requests can take.

pub mod health;
pub mod metrics;
pub mod pages;
pub mod pairs;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tower::ServiceExt as _;

pub use health::{FALLBACK_MAX_AGE, HealthPolicy, HealthReport, default_max_age};

use crate::config::{Config, Form, Installation};
use crate::privacy::PersonalData;
use crate::report;
use crate::server::auth::{AuthPolicy, Credentials};
use crate::server::host::AllowedHosts;
use crate::server::{self, Limits};
use crate::store::dashboard::{DailyCount, RunItemRow};
use crate::store::{CallFilter, Store, StoreError, call_json};

/// Default `--listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8686";

/// Days shown by the per-day pages unless `?days=` says otherwise (at most 366).
pub const DEFAULT_DAYS: u32 = 30;

/// Pages (and JSON answers) built at once; more requests wait their turn. Each holds its rows
/// and its rendered text, so this, not the number of clients, bounds the memory they take.
pub const HEAVY_LANE: usize = 4;
/// `/healthz`, `/api/health` and `/metrics` have their own lane, never behind pages.
pub const HEALTH_LANE: usize = 2;

/// A value longer than this is cut on HTML pages (the JSON API has it whole).
pub const PAGE_VALUE_CHARS: usize = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(
        "the dashboard listens on loopback only unless --allow-remote is given (it shows customer data); refusing {0}"
    )]
    RemoteNotAllowed(SocketAddr),
    #[error(
        "listening on {0} (beyond loopback) requires credentials: set [dashboard] user with password_hash_file (or password_hash_env), or token_file (or token_env); or keep the dashboard on loopback behind a reverse proxy that does TLS and authentication (README, \"Security\")"
    )]
    NoCredentials(SocketAddr),
}

/// What the outside sees of the dashboard: which host names it answers, who may call it, and
/// whether personal data is shown.
pub struct Exposure {
    pub hosts: AllowedHosts,
    pub auth: AuthPolicy,
    pub personal: PersonalData,
}

impl Exposure {
    /// Loopback names only, no credentials, personal data shown.
    pub fn loopback() -> Self {
        Exposure {
            hosts: AllowedHosts::new(None, &[]),
            auth: AuthPolicy::open(),
            personal: PersonalData::Show,
        }
    }
}

struct Inner {
    state_path: PathBuf,
    health: HealthPolicy,
    personal: PersonalData,
    /// `[contacts] default_country`: how a phone number typed into the guest search is read.
    default_country: String,
    lanes: Lanes,
}

/// The two lanes requests wait in; in agency mode every pair's pages share them, so that the
/// bound on concurrent work holds for the whole server.
#[derive(Clone)]
struct Lanes {
    heavy: Arc<tokio::sync::Semaphore>,
    light: Arc<tokio::sync::Semaphore>,
}

impl Lanes {
    fn new() -> Self {
        Lanes {
            heavy: Arc::new(tokio::sync::Semaphore::new(HEAVY_LANE)),
            light: Arc::new(tokio::sync::Semaphore::new(HEALTH_LANE)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        let sem = match lane {
            Lane::Page => &self.heavy,
            Lane::Health => &self.light,
        };
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Failure::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            // Held by the blocking work itself: a request that times out (or whose client
            // leaves) frees its lane only when the work it started has finished.
            let _permit = permit;
            f()
        })
        .await
        .unwrap_or_else(|e| Err(Failure::Internal(e.to_string())))
    }
}

/// Which lane a request waits in.
#[derive(Clone, Copy)]
enum Lane {
    Page,
    Health,
}

#[derive(Clone)]
struct AppState(Arc<Inner>);

/// Why a request could not be answered.
enum Failure {
    NoState(PathBuf),
    Store(StoreError),
    NotFound(String),
    /// A query parameter that cannot be read.
    BadRequest(String),
    /// The blocking task serving the request panicked, or a page could not be rendered.
    Internal(String),
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::NoState(_) => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Store(_) | Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::NoState(p) => {
                format!("no state database at {} yet: run `sync` first", p.display())
            }
            Failure::Store(e) => e.to_string(),
            Failure::NotFound(what) | Failure::BadRequest(what) => what.clone(),
            Failure::Internal(what) => format!("internal error: {what}"),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<pages::Error> for Failure {
    fn from(e: pages::Error) -> Self {
        match e {
            pages::Error::Store(e) => Failure::Store(e),
            pages::Error::Render(e) => Failure::Internal(e.to_string()),
        }
    }
}

/// HTML answer of a page handler.
struct PageError(Failure);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let msg = self.0.message();
        let body = match &self.0 {
            Failure::NotFound(_) => pages::not_found(&msg),
            Failure::BadRequest(_) => {
                pages::message("Bad request", "Bad request", &msg, pages::Tone::Plain)
            }
            _ => pages::message(
                "Error",
                "Cannot read the state database",
                &msg,
                pages::Tone::Plain,
            ),
        };
        match body {
            Ok(body) => (self.0.status(), Html(body)).into_response(),
            // The page around the message could not be rendered: the message alone.
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{msg}\n{e}")).into_response(),
        }
    }
}

/// JSON answer of an `/api` handler.
struct ApiError(Failure);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0.status(),
            axum::Json(json!({ "error": self.0.message() })),
        )
            .into_response()
    }
}

impl From<Failure> for PageError {
    fn from(f: Failure) -> Self {
        PageError(f)
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        ApiError(f)
    }
}

impl AppState {
    /// Opens the store on a blocking thread and runs `f` with it. A missing file is reported,
    /// never created: the dashboard must not write.
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store, &HealthPolicy) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        self.in_lane(Lane::Page, f).await
    }

    async fn in_lane<T: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce(&Store, &HealthPolicy) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        let inner = self.0.clone();
        self.0
            .lanes
            .run(lane, move || {
                if !inner.state_path.is_file() {
                    return Err(Failure::NoState(inner.state_path.clone()));
                }
                let store = Store::open_read_only(&inner.state_path)?;
                f(&store, &inner.health)
            })
            .await
    }
}

#[derive(Debug, Deserialize)]
struct DaysQuery {
    days: Option<u32>,
}

impl DaysQuery {
    fn days(&self) -> u32 {
        self.days.unwrap_or(DEFAULT_DAYS).clamp(1, 366)
    }
}

/// The dashboard's routes over the state file at `state_path` (opened per request, never
/// created), as served on loopback ([`Exposure::loopback`]). `health` decides `/healthz`; see
/// [`HealthPolicy::from_config`].
pub fn router(state_path: impl Into<PathBuf>, health: HealthPolicy) -> Router {
    app(
        state_path,
        health,
        Exposure::loopback(),
        crate::config::DEFAULT_COUNTRY,
    )
}

/// [`router`] with the given exposure: host allow-list first (a foreign name learns nothing,
/// not even whether credentials are needed), then authentication, then the routes.
/// `default_country` reads phone numbers typed into the guest search (`[contacts]`).
pub fn app(
    state_path: impl Into<PathBuf>,
    health: HealthPolicy,
    exposure: Exposure,
    default_country: &str,
) -> Router {
    let state = AppState(Arc::new(Inner {
        state_path: state_path.into(),
        health,
        personal: exposure.personal,
        default_country: default_country.to_string(),
        lanes: Lanes::new(),
    }));
    expose(pair_routes(state), exposure)
}

/// The pages, JSON and health of one state database, at the root of `Router`.
fn pair_routes(state: AppState) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/contacts", get(contacts_page))
        .route("/notes", get(notes_page))
        .route("/tasks", get(tasks_page))
        .route("/appointments", get(appointments_page))
        .route("/guests", get(guest_page))
        .route("/calls", get(calls_page))
        .route("/errors", get(errors_page))
        .route("/api/runs", get(api_runs))
        .route("/api/runs/{id}", get(api_run))
        .route("/api/contacts/daily", get(api_contacts))
        .route("/api/notes/daily", get(api_notes))
        .route("/api/tasks", get(api_tasks))
        .route("/api/appointments", get(api_appointments))
        .route("/api/errors", get(api_errors))
        .route("/api/guests", get(api_guest))
        .route("/api/calls", get(api_calls))
        .route("/api/health", get(api_health))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(state)
}

/// `routes` as the outside reaches them: host allow-list first (a foreign name learns nothing,
/// not even whether credentials are needed), then authentication.
fn expose(routes: Router, exposure: Exposure) -> Router {
    routes
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(exposure.auth),
            server::auth::require,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(exposure.hosts),
            server::host::check,
        ))
        .layer(axum::middleware::map_response(security_headers))
}

/// The dashboard of an installation: in the single form exactly [`app`] over its one state
/// file; with `[[pairs]]` the overview of pairs at `/` (JSON at `/api/pairs`), `/healthz`,
/// `/api/health` and `/metrics` over every pair, and each pair's own pages under
/// `/pairs/{name}/`.
pub fn installation_app(
    inst: &Installation,
    health_max_age: Option<Duration>,
    exposure: Exposure,
) -> Router {
    expose(
        installation_routes(inst, health_max_age, exposure.personal),
        exposure,
    )
}

/// [`installation_app`] before its host, credential and header layers.
fn installation_routes(
    inst: &Installation,
    health_max_age: Option<Duration>,
    personal: PersonalData,
) -> Router {
    let first = &inst.pairs[0].config;
    if inst.form == Form::Single {
        let state = AppState(Arc::new(Inner {
            state_path: first.state.path.clone(),
            health: HealthPolicy::from_config(first, health_max_age),
            personal,
            default_country: first.contacts.default_country.clone(),
            lanes: Lanes::new(),
        }));
        return pair_routes(state);
    }
    let lanes = Lanes::new();
    let sites: Vec<pairs::PairSite> = inst
        .pairs
        .iter()
        .map(|p| pairs::PairSite::new(p, health_max_age))
        .collect();
    let agency = Agency(Arc::new(AgencyInner {
        sites: sites.clone(),
        lanes: lanes.clone(),
    }));
    let mut routes = Router::new()
        .route("/", get(pairs_overview))
        .route("/api/pairs", get(api_pairs))
        .route("/api/health", get(pairs_api_health))
        .route("/healthz", get(pairs_healthz))
        .route("/metrics", get(pairs_metrics))
        .with_state(agency);
    for site in sites {
        let prefix = site.prefix();
        let state = AppState(Arc::new(Inner {
            state_path: site.state_path.clone(),
            health: site.health.clone(),
            personal,
            default_country: site.default_country.clone(),
            lanes: lanes.clone(),
        }));
        let pages = pair_routes(state).layer(axum::middleware::from_fn_with_state(
            Arc::new(site),
            pair_links,
        ));
        let home = prefix.clone();
        routes = routes
            .route(
                &format!("{prefix}/"),
                get(move || async move { axum::response::Redirect::permanent(&home) }),
            )
            .nest(&prefix, pages);
    }
    routes.fallback(not_found)
}

/// The dashboard of a daemon whose pairs change on SIGHUP: each request is answered by the
/// routes of the installation `installations` holds at that moment (the overview, `/healthz`
/// and `/metrics` list the pairs the daemon runs now; an added pair's pages appear, a removed
/// one's go). What the outside sees (host names, credentials, personal data) stays as set at
/// start, like the listener and its limits. When the sender is gone the routes stay as they are.
fn following_app(
    mut installations: watch::Receiver<Installation>,
    health_max_age: Option<Duration>,
    exposure: Exposure,
) -> Router {
    let personal = exposure.personal;
    let inst = installations.borrow_and_update().clone();
    let current = Arc::new(std::sync::Mutex::new(installation_routes(
        &inst,
        health_max_age,
        personal,
    )));
    let slot = Arc::clone(&current);
    tokio::spawn(async move {
        while installations.changed().await.is_ok() {
            let inst = installations.borrow_and_update().clone();
            let routes = installation_routes(&inst, health_max_age, personal);
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = routes;
        }
    });
    let dispatch = tower::service_fn(move |req: axum::extract::Request| {
        let routes = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        routes.oneshot(req)
    });
    expose(Router::new().fallback_service(dispatch), exposure)
}

/// Every pair of an agency-mode dashboard.
#[derive(Clone)]
struct Agency(Arc<AgencyInner>);

struct AgencyInner {
    sites: Vec<pairs::PairSite>,
    lanes: Lanes,
}

impl Agency {
    /// What each pair's state says now; one pair's missing or broken file is that pair's row.
    async fn statuses(&self, lane: Lane) -> Result<Vec<pairs::PairStatus>, Failure> {
        let sites = self.0.sites.clone();
        self.0
            .lanes
            .run(lane, move || {
                let now = Utc::now();
                Ok(sites.iter().map(|s| pairs::read(s, now)).collect())
            })
            .await
    }
}

/// A pair's HTML pages with their links moved under the pair's prefix
/// ([`pairs::under_prefix`]); JSON and text pass as they are.
async fn pair_links(
    State(site): State<Arc<pairs::PairSite>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let res = next.run(req).await;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !html {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    // Pages are built whole in memory already (and bounded by the lanes): reading one back
    // adds no new bound to keep.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return PageError(Failure::Internal(e.to_string())).into_response();
        }
    };
    let page = pairs::under_prefix(&String::from_utf8_lossy(&bytes), &site.prefix(), &site.name);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(page))
}

async fn pairs_overview(State(agency): State<Agency>) -> Result<Html<String>, PageError> {
    let statuses = agency.statuses(Lane::Page).await?;
    let html = pairs::overview_page(&statuses, Utc::now()).map_err(Failure::from)?;
    Ok(Html(html))
}

async fn api_pairs(State(agency): State<Agency>) -> Result<Json, ApiError> {
    let statuses = agency.statuses(Lane::Page).await?;
    Ok(axum::Json(json!(
        statuses.iter().map(pairs::pair_json).collect::<Vec<_>>()
    )))
}

/// 200 while every pair is healthy; 503 naming each unhealthy pair and why.
async fn pairs_api_health(State(agency): State<Agency>) -> Result<Response, ApiError> {
    let statuses = agency.statuses(Lane::Health).await?;
    let healthy = statuses.iter().all(pairs::PairStatus::healthy);
    let body = json!({
        "healthy": healthy,
        "pairs": statuses.iter().map(|p| json!({
            "name": p.site.name,
            "healthy": p.healthy(),
            "reasons": p.reasons(),
        })).collect::<Vec<_>>(),
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((code, axum::Json(body)).into_response())
}

/// `ok` while every pair is healthy; otherwise 503 with a line per reason, each led by its
/// pair's name.
async fn pairs_healthz(State(agency): State<Agency>) -> Response {
    let text = |code, body: String| {
        (
            code,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match agency.statuses(Lane::Health).await {
        Ok(statuses) if statuses.iter().all(pairs::PairStatus::healthy) => {
            text(StatusCode::OK, "ok\n".into())
        }
        Ok(statuses) => {
            let mut body = String::from("unhealthy\n");
            for p in statuses.iter().filter(|p| !p.healthy()) {
                for why in p.reasons() {
                    body.push_str(&format!("{}: {why}\n", p.site.name));
                }
            }
            text(StatusCode::SERVICE_UNAVAILABLE, body)
        }
        Err(f) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy\n{}\n", f.message()),
        ),
    }
}

async fn pairs_metrics(State(agency): State<Agency>) -> Response {
    let sites = agency.0.sites.clone();
    match agency
        .0
        .lanes
        .run(Lane::Health, move || {
            Ok(pairs::metrics_text(&sites, Utc::now()))
        })
        .await
    {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(f) => (f.status(), f.message()).into_response(),
    }
}

/// Defence in depth behind the escaping: no script, no external load, no framing, no sniffing.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Refuses a non-loopback `listen` unless `allow_remote`.
pub fn check_listen(listen: SocketAddr, allow_remote: bool) -> Result<(), DashboardError> {
    if listen.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(DashboardError::RemoteNotAllowed(listen))
    }
}

/// The exposure `cfg`'s `[dashboard]` gives a server on `listen`: credentials are read now
/// (errors name the variable or file, never the value), and a non-loopback `listen` without
/// any is refused.
pub fn exposure(cfg: &Config, listen: SocketAddr) -> anyhow::Result<Exposure> {
    let d = &cfg.dashboard;
    let credentials = Credentials::load(
        d.basic.as_ref().map(|(u, src)| (u.as_str(), src)),
        d.token.as_ref(),
        d.secret_files,
    )?;
    let loopback = listen.ip().is_loopback();
    if !loopback && credentials.is_none() {
        return Err(DashboardError::NoCredentials(listen).into());
    }
    Ok(Exposure {
        hosts: AllowedHosts::new(Some(listen), &d.allowed_hosts),
        auth: AuthPolicy {
            credentials,
            healthz: d.healthz,
            metrics: d.metrics,
        },
        personal: PersonalData::decide(d.show_personal_data, loopback),
    })
}

/// Serves the dashboard for `cfg`'s state file on `listen` until `shutdown` completes: the
/// single form of [`serve_installation`].
///
/// `health_max_age` is the oldest acceptable age of each scheduled job's last successful run
/// for `/healthz`; `None` gives each job twice its own interval (see [`HealthPolicy`]), or
/// 26 h when nothing is scheduled. A non-loopback `listen` needs `allow_remote` and
/// credentials in `[dashboard]`.
pub async fn serve(
    cfg: &Config,
    listen: SocketAddr,
    allow_remote: bool,
    health_max_age: Option<Duration>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let inst = Installation::single(cfg.clone());
    serve_installation(&inst, listen, allow_remote, health_max_age, shutdown).await
}

/// Serves the dashboard of `inst` on `listen` until `shutdown` completes: its one pair's
/// pages in the single form, the overview of pairs and each pair's pages with `[[pairs]]`
/// ([`installation_app`]). `[dashboard]` (listen rules, credentials, limits, personal data) is
/// the installation's, as the first pair has it: every pair inherits the top level's.
/// `health_max_age` applies to every pair, as in [`serve`].
pub async fn serve_installation(
    inst: &Installation,
    listen: SocketAddr,
    allow_remote: bool,
    health_max_age: Option<Duration>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Nobody sends a new installation: the pages stay those of `inst`.
    let (_, installations) = watch::channel(inst.clone());
    serve_following(
        installations,
        listen,
        allow_remote,
        health_max_age,
        shutdown,
    )
    .await
}

/// As [`serve_installation`], for the installation a daemon runs: the pages follow each
/// installation `installations` receives (a SIGHUP that adds or removes pairs).
pub async fn serve_following(
    installations: watch::Receiver<Installation>,
    listen: SocketAddr,
    allow_remote: bool,
    health_max_age: Option<Duration>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    check_listen(listen, allow_remote)?;
    let inst = installations.borrow().clone();
    let cfg = &inst.pairs[0].config;
    let exposure = exposure(cfg, listen)?;
    for pair in &inst.pairs {
        let path = &pair.config.state.path;
        if !path.is_file() {
            tracing::warn!(pair = %pair.name, path = %path.display(), "no state database yet; pages will say so until the first sync");
        } else if let Err(e) = Store::open_read_only(path) {
            // The single form refuses a foreign or newer file now rather than on every
            // request; with pairs, one broken file is that pair's row, never the others'.
            if inst.form == Form::Single {
                return Err(e.into());
            }
            tracing::warn!(pair = %pair.name, path = %path.display(), error = %e, "state database unreadable; the pair shows as such");
        }
    }
    let policy = HealthPolicy::from_config(cfg, health_max_age);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let limits: Limits = cfg.dashboard.limits.clone();
    tracing::info!(
        %addr,
        max_age_secs = policy.max_age.as_secs(),
        max_connections = limits.effective_max_connections(),
        authentication = exposure.auth.credentials.is_some(),
        personal_data = ?exposure.personal,
        "dashboard listening"
    );
    eprintln!("Dashboard on http://{addr}/ (health: http://{addr}/healthz)");
    if let Err(e) = server::serve(
        listener,
        following_app(installations, health_max_age, exposure),
        limits,
        shutdown,
    )
    .await
    {
        bail!("dashboard server stopped: {e}");
    }
    Ok(())
}

// ---- pages ----

async fn overview(State(st): State<AppState>) -> Result<Html<String>, PageError> {
    let html = st
        .with_store(|s, h| Ok(pages::overview(s, h, Utc::now())?))
        .await?;
    Ok(Html(html))
}

async fn runs_page(State(st): State<AppState>) -> Result<Html<String>, PageError> {
    Ok(Html(st.with_store(|s, _| Ok(pages::runs(s)?)).await?))
}

async fn run_page(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, PageError> {
    let id = parse_id(&id)?;
    let personal = st.0.personal;
    let html = st
        .with_store(move |s, _| {
            pages::run_detail(s, id, personal)?
                .ok_or_else(|| Failure::NotFound(format!("no run #{id}")))
        })
        .await?;
    Ok(Html(html))
}

fn parse_id(id: &str) -> Result<i64, Failure> {
    id.parse()
        .map_err(|_| Failure::NotFound(format!("`{id}` is not a run id")))
}

async fn contacts_page(
    State(st): State<AppState>,
    Query(q): Query<DaysQuery>,
) -> Result<Html<String>, PageError> {
    let days = q.days();
    let html = st
        .with_store(move |s, _| Ok(pages::contacts(s, Utc::now(), days)?))
        .await?;
    Ok(Html(html))
}

async fn notes_page(
    State(st): State<AppState>,
    Query(q): Query<DaysQuery>,
) -> Result<Html<String>, PageError> {
    let days = q.days();
    let html = st
        .with_store(move |s, _| Ok(pages::notes(s, Utc::now(), days)?))
        .await?;
    Ok(Html(html))
}

async fn tasks_page(State(st): State<AppState>) -> Result<Html<String>, PageError> {
    let personal = st.0.personal;
    Ok(Html(
        st.with_store(move |s, _| Ok(pages::tasks(s, personal)?))
            .await?,
    ))
}

async fn appointments_page(State(st): State<AppState>) -> Result<Html<String>, PageError> {
    let personal = st.0.personal;
    let html = st
        .with_store(move |s, _| Ok(pages::appointments(s, Utc::now(), personal)?))
        .await?;
    Ok(Html(html))
}

async fn errors_page(State(st): State<AppState>) -> Result<Html<String>, PageError> {
    let personal = st.0.personal;
    Ok(Html(
        st.with_store(move |s, _| Ok(pages::errors(s, personal)?))
            .await?,
    ))
}

/// `?q=` of the guest search.
#[derive(Debug, Deserialize)]
struct GuestQuery {
    q: Option<String>,
}

async fn guest_page(
    State(st): State<AppState>,
    Query(q): Query<GuestQuery>,
) -> Result<Html<String>, PageError> {
    let personal = st.0.personal;
    let country = st.0.default_country.clone();
    let html = st
        .with_store(move |s, _| Ok(pages::guest(s, q.q.as_deref(), personal, &country)?))
        .await?;
    Ok(Html(html))
}

/// `?run=&failed=&status=&path=&offset=&limit=` of the API-call page and its JSON twin, as a
/// form sends them (empty fields are unset).
#[derive(Debug, Deserialize)]
struct CallsQuery {
    run: Option<String>,
    failed: Option<String>,
    status: Option<String>,
    path: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
}

/// Calls on one `/calls` page, by default and at most.
const CALLS_PAGE: u64 = 100;
const CALLS_PAGE_MAX: u64 = 1_000;

impl CallsQuery {
    /// The run asked for (`None`: every run) and the filter, its page size bounded by `max`.
    fn read(self, default_limit: u64, max: u64) -> Result<(Option<i64>, CallFilter), Failure> {
        let set = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let run = match set(self.run) {
            None => None,
            Some(id) => Some(
                id.trim_start_matches('#')
                    .parse()
                    .map_err(|_| Failure::BadRequest(format!("`{id}` is not a run id")))?,
            ),
        };
        let status =
            match set(self.status) {
                None => None,
                Some(s) => Some(s.parse().map_err(|_| {
                    Failure::BadRequest(format!("`{s}` is not an HTTP status code"))
                })?),
            };
        let limit = self.limit.unwrap_or(default_limit).clamp(1, max);
        let filter = CallFilter {
            failed: set(self.failed).is_some_and(|f| f != "0" && f != "false"),
            status,
            path: set(self.path),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            offset: usize::try_from(self.offset.unwrap_or(0)).unwrap_or(usize::MAX),
        };
        Ok((run, filter))
    }
}

/// 404 unless `run` names a recorded run.
fn check_run(store: &Store, run: Option<i64>) -> Result<(), Failure> {
    match run {
        Some(id) if store.run(id)?.is_none() => Err(Failure::NotFound(format!("no run #{id}"))),
        _ => Ok(()),
    }
}

async fn calls_page(
    State(st): State<AppState>,
    Query(q): Query<CallsQuery>,
) -> Result<Html<String>, PageError> {
    let (run, filter) = q.read(CALLS_PAGE, CALLS_PAGE_MAX)?;
    let html = st
        .with_store(move |s, _| {
            check_run(s, run)?;
            Ok(pages::calls(s, run, &filter)?)
        })
        .await?;
    Ok(Html(html))
}

async fn not_found() -> PageError {
    PageError(Failure::NotFound("There is no such page.".into()))
}

// ---- JSON ----

type Json = axum::Json<serde_json::Value>;

async fn api_runs(State(st): State<AppState>) -> Result<Json, ApiError> {
    let personal = st.0.personal;
    let v = st
        .with_store(move |s, _| {
            let runs: Vec<serde_json::Value> = s
                .runs(100)?
                .into_iter()
                .map(|mut r| {
                    personal.summary_json(&mut r.summary);
                    json!({
                        "id": r.id,
                        "kinds": r.kinds,
                        "full": r.full,
                        "dry_run": r.dry_run,
                        "status": r.status.as_str(),
                        "started_at": r.started_at,
                        "finished_at": r.finished_at,
                        "summary": r.summary,
                    })
                })
                .collect();
            Ok(json!(runs))
        })
        .await?;
    Ok(axum::Json(v))
}

/// `?offset=N&limit=M` of `/api/runs/{id}`: one page of the run's listed items.
#[derive(Debug, serde::Deserialize)]
struct ItemsQuery {
    offset: Option<u64>,
    limit: Option<u64>,
}

/// Items in one `/api/runs/{id}` answer, by default and at most: an initial sync can list
/// hundreds of thousands, and an answer is held whole while it is sent.
const API_RUN_ITEMS: u64 = 1_000;
const API_RUN_ITEMS_MAX: u64 = 5_000;

async fn api_run(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ItemsQuery>,
) -> Result<Json, ApiError> {
    let id = parse_id(&id)?;
    let personal = st.0.personal;
    let window = report::ItemWindow {
        offset: q.offset.unwrap_or(0),
        limit: Some(q.limit.unwrap_or(API_RUN_ITEMS).min(API_RUN_ITEMS_MAX)),
    };
    let v = st
        .with_store(move |s, _| {
            let mut r = report::load_window(s, id, window)?
                .ok_or_else(|| Failure::NotFound(format!("no run #{id}")))?;
            personal.report(&mut r);
            Ok(serde_json::to_value(r).map_err(StoreError::from)?)
        })
        .await?;
    Ok(axum::Json(v))
}

async fn api_contacts(st: State<AppState>, q: Query<DaysQuery>) -> Result<Json, ApiError> {
    per_day(st, q, Store::new_contacts_per_day).await
}

async fn api_notes(st: State<AppState>, q: Query<DaysQuery>) -> Result<Json, ApiError> {
    per_day(st, q, Store::notes_per_day).await
}

/// `{days, counts}` of one daily series over the last `days` days, today included.
async fn per_day(
    State(st): State<AppState>,
    Query(q): Query<DaysQuery>,
    series: fn(&Store, DateTime<Utc>) -> Result<Vec<DailyCount>, StoreError>,
) -> Result<Json, ApiError> {
    let days = q.days();
    let v = st
        .with_store(move |s, _| {
            let since = Utc::now() - chrono::Duration::days(i64::from(days - 1));
            Ok(json!({ "days": days, "counts": series(s, since)? }))
        })
        .await?;
    Ok(axum::Json(v))
}

async fn api_tasks(State(st): State<AppState>) -> Result<Json, ApiError> {
    let personal = st.0.personal;
    let v = st
        .with_store(move |s, _| {
            let mut open = s.open_tasks(1000)?;
            personal.open_tasks(&mut open);
            Ok(json!({ "rules": s.task_progress()?, "open": open }))
        })
        .await?;
    Ok(axum::Json(v))
}

async fn api_appointments(State(st): State<AppState>) -> Result<Json, ApiError> {
    let personal = st.0.personal;
    let v = st
        .with_store(move |s, _| {
            let mut list = s.upcoming_appointments(Utc::now(), 1000)?;
            personal.appointments(&mut list);
            let list: Vec<serde_json::Value> = list
                .into_iter()
                .map(|a| {
                    json!({
                        "contact_target_id": a.contact_target_id,
                        "event_id": a.event_id,
                        "start": a.start,
                        "end": a.end,
                        "status": a.status,
                        "title": a.title,
                    })
                })
                .collect();
            Ok(json!(list))
        })
        .await?;
    Ok(axum::Json(v))
}

fn item_json(r: &RunItemRow) -> serde_json::Value {
    json!({
        "run_id": r.run_id,
        "run_started_at": r.run_started_at,
        "kind": r.item.kind.as_str(),
        "source_id": r.item.source_id,
        "target_id": r.item.target_id,
        "action": r.item.action,
        "outcome": r.item.outcome.as_str(),
        "reason": r.item.reason,
        "detail": r.item.detail,
    })
}

async fn api_errors(State(st): State<AppState>) -> Result<Json, ApiError> {
    let personal = st.0.personal;
    let v = st
        .with_store(move |s, _| {
            let mut parked = s.parked_conflicts()?;
            let mut failures = s.recent_failures(20, 1000)?;
            personal.run_item_rows(&mut parked);
            personal.run_item_rows(&mut failures);
            let parked: Vec<_> = parked.iter().map(item_json).collect();
            let failures: Vec<_> = failures.iter().map(item_json).collect();
            Ok(json!({ "parked_conflicts": parked, "failures": failures }))
        })
        .await?;
    Ok(axum::Json(v))
}

async fn api_guest(
    State(st): State<AppState>,
    Query(q): Query<GuestQuery>,
) -> Result<Json, ApiError> {
    let personal = st.0.personal;
    let country = st.0.default_country.clone();
    let typed = q.q.unwrap_or_default();
    let v = st
        .with_store(move |s, _| {
            let found = pages::find_guest(s, &typed, personal, &country)?
                .ok_or_else(|| Failure::NotFound(format!("no synced guest matches `{typed}`")))?;
            let mut v = found.to_json();
            v["truncated"] = json!(found.truncated);
            Ok(v)
        })
        .await?;
    Ok(axum::Json(v))
}

async fn api_calls(
    State(st): State<AppState>,
    Query(q): Query<CallsQuery>,
) -> Result<Json, ApiError> {
    // The same bounds as a run's items: an answer is held whole while it is sent.
    let (run, filter) = q.read(API_RUN_ITEMS, API_RUN_ITEMS_MAX)?;
    let v = st
        .with_store(move |s, _| {
            check_run(s, run)?;
            let page = s.api_call_page(run, &filter)?;
            Ok(json!({
                "run_id": run,
                "total": page.total,
                "offset": filter.offset,
                "limit": filter.limit,
                "calls": page.calls.iter().map(call_json).collect::<Vec<_>>(),
            }))
        })
        .await?;
    Ok(axum::Json(v))
}

async fn health_report(st: &AppState) -> Result<HealthReport, Failure> {
    st.in_lane(Lane::Health, |s, h| Ok(health::evaluate(s, h, Utc::now())?))
        .await
}

async fn api_health(State(st): State<AppState>) -> Response {
    match health_report(&st).await {
        Ok(h) => {
            let code = if h.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (code, axum::Json(h)).into_response()
        }
        Err(f) => ApiError(f).into_response(),
    }
}

/// 200 `ok` while every scheduled job's last successful run is young enough; otherwise 503
/// with one reason per line (also when the state file is missing or unreadable).
async fn healthz(State(st): State<AppState>) -> Response {
    let text = |code, body: String| {
        (
            code,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match health_report(&st).await {
        Ok(h) if h.healthy => text(StatusCode::OK, "ok\n".into()),
        Ok(h) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy\n{}\n", h.reasons().join("\n")),
        ),
        Err(f) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy\n{}\n", f.message()),
        ),
    }
}

async fn metrics_text(State(st): State<AppState>) -> Response {
    match st
        .in_lane(Lane::Health, |s, h| Ok(metrics::render(s, h, Utc::now())?))
        .await
    {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(f) => (f.status(), f.message()).into_response(),
    }
}
