//! In-process emulator of the HotspotSystem REST API v2.0, on 127.0.0.1.
//!
//! It follows `/work/shared/reference/hotspotsystem-api.md` and is strict wherever the
//! reference is: the 18 GET routes of §4 only, the `sn-apikey` header on every route, one sort
//! property, known `fields` only, numeric `limit`/`offset` (a record offset), the list envelope
//! and a `Link` header with self/next/prev. Where the reference leaves a choice open the choice is
//! written next to the code that makes it:
//!
//! - `/ping` requires the key too (unknown upstream; requiring it catches a client that forgets
//!   the header on its health check).
//! - The key is checked before routing, so an unauthenticated request never learns which paths
//!   exist: missing/wrong key → 401, then unknown path → 404, then non-GET → 405.
//! - `limit` above the maximum is clamped (not rejected); `limit` < 1 or non-numeric → 400.
//! - Unknown query parameters are ignored; a list parameter given twice → 400.
//! - `/me`, `/ping` and `/locations/options` ignore the query.
//!
//! [`OddValues`] serves what a real account's database can hold and no documented type admits
//! (MySQL zero dates, malformed dates, digits-only text as numbers, nulls, an object where text
//! belongs), each on a few records.
//! How `offset` is read and whether `Link` is sent are knobs ([`Paging`]): the reference's
//! wording reads `offset` as a page index, its Link example as a record offset. Whether `sort`
//! is honoured is one too ([`SortSupport`]): the reference only infers server-side sorting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::faults::{self, FaultKnobs, FaultState};
use super::hotspot_webhooks::{Delivery, WebhookEvent, WebhookOptions, WebhookSender, WebhookSpec};
use super::seed::{
    ApiRecord, Customer, HotspotData, MacTransaction, PaidTransaction, SocialTransaction, Voucher,
    VoucherTransaction,
};

/// Base path of every route.
const BASE: &str = "/v2.0";

/// Behaviour knobs of the emulator.
#[derive(Clone)]
pub struct HotspotOptions {
    /// The one key `sn-apikey` must carry.
    pub api_key: String,
    /// Send every number as a string and `registered_at` as `YYYY-MM-DD HH:MM:SS`.
    pub lenient_types: bool,
    /// Delay added before answering each request.
    pub latency: Duration,
    /// Page size when `limit` is absent (100 per the COMPOSIO catalog).
    pub default_limit: usize,
    /// Larger `limit` values are clamped to this (1000 was seen in real use).
    pub max_limit: usize,
    /// Values no documented type admits, served on some records (off by default).
    pub odd_values: OddValues,
    /// How lists page: `offset` reading and `Link` header.
    pub paging: Paging,
    /// Whether `sort` orders the list.
    pub sort: SortSupport,
}

/// What the server does with `sort`. The reference allows sorting by any property and shows
/// `sort=-registered_at` in use, but that the server honours it is inferred.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SortSupport {
    /// Ordered by the property (numbers by value, text byte by byte).
    #[default]
    Honoured,
    /// Validated, then ignored: the list comes in the order the records were created.
    Ignored,
    /// Validated, then ignored, the list coming newest first by creation except that the
    /// records of each page are shuffled: a server sorting by a date that ties or a cache
    /// that reorders within a page.
    PagesShuffled,
}

/// How the list routes read `offset` and which `Link` header they send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paging {
    pub offset: OffsetReading,
    pub link: LinkHeader,
}

/// What `offset` means to the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OffsetReading {
    /// A record offset (the reference's Link example and every known client).
    #[default]
    Records,
    /// A zero-based page index of `limit` records (the reference's wording).
    PageIndex,
    /// Hostile: ignored, every answer starts at the first record.
    Ignored,
}

/// The `Link` header of list answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkHeader {
    /// `self`, `next` while more records follow, and `prev`.
    #[default]
    Standard,
    /// No `Link` header at all.
    Absent,
    /// Hostile: `next` always present, alternating between the first and the second page.
    Alternating,
}

/// Values a real HotspotSystem account can send that the reference's types do not admit. The
/// reference is silent on them; a MySQL-backed API sends them as the database holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OddValues {
    /// MySQL's zero date `0000-00-00 00:00:00` as `registered_at` / `action_date_gmt` of the
    /// records [`Oddity::at`] names.
    pub zero_dates: bool,
    /// A date that is no date (`2023-02-30 25:61:00`) on the records [`Oddity::at`] names.
    pub malformed_dates: bool,
    /// Every text value made only of digits (customer ids, zip codes, package ids) sent as a
    /// JSON number, as a numeric column would send it. Applied after `lenient_types`, so with
    /// both on, the integers that `lenient_types` turned into text are numbers again; only
    /// non-integer numbers and dates keep its form.
    pub text_as_numbers: bool,
    /// `null` where a value is expected: every field but the id of some records, and some
    /// records as a whole (a `null` item in the list).
    pub nulls: bool,
    /// `city` sent as a JSON object (`{"name": …}`) on the records [`Oddity::at`] names, as a
    /// serializer that nests a value would send it.
    pub object_cities: bool,
}

/// What the emulator does to one record when the matching [`OddValues`] knob is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oddity {
    ZeroDate,
    MalformedDate,
    /// Every field but `id` is `null`.
    NullFields,
    /// The record is sent as `null`.
    NullRecord,
    /// `city` is an object holding the city.
    ObjectCity,
}

/// The dates [`Oddity::ZeroDate`] and [`Oddity::MalformedDate`] replace.
const DATE_FIELDS: &[&str] = &["registered_at", "action_date_gmt"];

impl Oddity {
    /// The oddity of the record at `position` of its list in the account's data (customers,
    /// subscribers and each transaction type counted apart, from 0): every 100th record from
    /// the 4th gets a zero date, from the 6th a malformed date, from the 8th null fields, and
    /// from the 12th is sent as `null` (seeded guests 3 to 11 all have an email or a phone),
    /// and from the 14th has its `city` as an object.
    pub fn at(position: usize) -> Option<Oddity> {
        match position % 100 {
            3 => Some(Oddity::ZeroDate),
            5 => Some(Oddity::MalformedDate),
            7 => Some(Oddity::NullFields),
            11 => Some(Oddity::NullRecord),
            13 => Some(Oddity::ObjectCity),
            _ => None,
        }
    }

    fn apply(self, record: Value) -> Value {
        let Value::Object(mut map) = record else {
            return record;
        };
        let set_dates = |map: &mut serde_json::Map<String, Value>, to: &str| {
            for f in DATE_FIELDS {
                if let Some(d) = map.get_mut(*f) {
                    *d = Value::String(to.to_string());
                }
            }
        };
        match self {
            Oddity::ZeroDate => set_dates(&mut map, "0000-00-00 00:00:00"),
            Oddity::MalformedDate => set_dates(&mut map, "2023-02-30 25:61:00"),
            Oddity::NullFields => {
                for (k, v) in map.iter_mut() {
                    if k != "id" {
                        *v = Value::Null;
                    }
                }
            }
            Oddity::NullRecord => return Value::Null,
            Oddity::ObjectCity => {
                if let Some(c) = map.get_mut("city") {
                    *c = json!({ "name": c.take() });
                }
            }
        }
        Value::Object(map)
    }
}

impl OddValues {
    /// The oddity served at `position`, if its knob is on.
    pub fn at(&self, position: usize) -> Option<Oddity> {
        Oddity::at(position).filter(|o| match o {
            Oddity::ZeroDate => self.zero_dates,
            Oddity::MalformedDate => self.malformed_dates,
            Oddity::NullFields | Oddity::NullRecord => self.nulls,
            Oddity::ObjectCity => self.object_cities,
        })
    }
}

/// Digit-only text as a JSON number; text with a leading zero or too long for an exact
/// integer stays text (a numeric column could not have held it).
fn text_as_number(v: Value) -> Value {
    match v {
        Value::String(s)
            if !s.is_empty()
                && s.len() <= 15
                && !s.starts_with('0')
                && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<u64>()
                .map(Value::from)
                .unwrap_or(Value::String(s))
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, text_as_number(v)))
                .collect(),
        ),
        other => other,
    }
}

impl Default for HotspotOptions {
    fn default() -> Self {
        HotspotOptions {
            api_key: "hs-test-key".to_string(),
            lenient_types: false,
            latency: Duration::ZERO,
            default_limit: 100,
            max_limit: 1000,
            odd_values: OddValues::default(),
            paging: Paging::default(),
            sort: SortSupport::default(),
        }
    }
}

/// The key is a secret: Debug never shows it.
impl std::fmt::Debug for HotspotOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotspotOptions")
            .field("api_key", &"<redacted>")
            .field("lenient_types", &self.lenient_types)
            .field("latency", &self.latency)
            .field("default_limit", &self.default_limit)
            .field("max_limit", &self.max_limit)
            .field("odd_values", &self.odd_values)
            .field("paging", &self.paging)
            .field("sort", &self.sort)
            .finish()
    }
}

/// One request as the emulator saw it. The key is never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotspotRequest {
    pub method: String,
    /// Path without the query, e.g. `/v2.0/customers`.
    pub path: String,
    /// Raw query string, empty when there was none.
    pub query: String,
    pub status: u16,
}

struct Shared {
    data: Mutex<HotspotData>,
    /// Changes when a test regenerates the key ([`HotspotEmulator::rotate_api_key`]).
    api_key: Mutex<String>,
    lenient: AtomicBool,
    odd: Mutex<OddValues>,
    latency_nanos: AtomicU64,
    default_limit: usize,
    max_limit: usize,
    paging: Mutex<Paging>,
    sort: Mutex<SortSupport>,
    requests: Mutex<Vec<HotspotRequest>>,
    addr: SocketAddr,
}

/// Locks a mutex even if a panicking test poisoned it; the data stays usable for the others.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running emulator. Dropping it (or [`HotspotEmulator::shutdown`]) stops the server.
pub struct HotspotEmulator {
    shared: Arc<Shared>,
    faults: FaultState,
    /// Sends webhooks for the records [`HotspotEmulator::add_record`] adds.
    webhooks: Arc<WebhookSender>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl HotspotEmulator {
    /// Starts on 127.0.0.1 with an OS-chosen port.
    pub async fn start(data: HotspotData, opts: HotspotOptions) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), data, opts).await
    }

    /// Starts on the given address. Non-loopback addresses are refused (InvalidInput): the
    /// project never listens beyond 127.0.0.1.
    pub async fn start_on(
        addr: SocketAddr,
        data: HotspotData,
        opts: HotspotOptions,
    ) -> std::io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the emulator listens on loopback only, not {addr}"),
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            data: Mutex::new(data),
            api_key: Mutex::new(opts.api_key),
            lenient: AtomicBool::new(opts.lenient_types),
            odd: Mutex::new(opts.odd_values),
            latency_nanos: AtomicU64::new(opts.latency.as_nanos() as u64),
            default_limit: opts.default_limit.max(1),
            max_limit: opts.max_limit.max(1),
            paging: Mutex::new(opts.paging),
            sort: Mutex::new(opts.sort),
            requests: Mutex::new(Vec::new()),
            addr,
        });
        // Same fault middleware as the GHL emulator. Injected status faults answer before the
        // handler, so they are not in `requests()`; the API is read-only, so
        // `p_drop_after_write` never fires here.
        let faults = FaultState::new(FaultKnobs::default(), 0x5eed_f417);
        let app = Router::new()
            .fallback(handle)
            .layer(axum::middleware::from_fn_with_state(
                faults.clone(),
                faults::inject,
            ))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "hotspot emulator stopped with an error");
            }
        });
        Ok(HotspotEmulator {
            shared,
            faults,
            webhooks: Arc::new(WebhookSender::default()),
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT/v2.0`
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.shared.addr, BASE)
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Reads or edits the served data; changes are visible to the next request.
    pub fn with_data<R>(&self, f: impl FnOnce(&mut HotspotData) -> R) -> R {
        f(&mut lock(&self.shared.data))
    }

    /// Configures the account's webhooks (Control Center → Manage Webhooks) and starts their
    /// batched sends.
    pub fn set_webhooks(&self, specs: Vec<WebhookSpec>, options: WebhookOptions) {
        self.webhooks.configure(specs, options);
    }

    /// Adds a record to the served data, as a guest registering or paying does, and queues its
    /// webhook deliveries.
    pub fn add_record(&self, record: NewRecord) {
        let lenient = self.shared.lenient.load(Ordering::Relaxed);
        let (event, location, id, json) = {
            let mut data = lock(&self.shared.data);
            match record {
                NewRecord::Customer(c) => {
                    let out = (
                        WebhookEvent::CustomerCreate,
                        c.location_id.clone(),
                        c.id.clone(),
                        c.to_json(lenient),
                    );
                    data.customers.push(c);
                    out
                }
                NewRecord::Subscriber(c) => {
                    let out = (
                        WebhookEvent::SubscriberCreate,
                        c.location_id.clone(),
                        c.id.clone(),
                        c.to_json(lenient),
                    );
                    data.subscribers.push(c);
                    out
                }
                NewRecord::Mac(t) => {
                    let out = (
                        WebhookEvent::MacTransactionCreate,
                        t.location_id.to_string(),
                        t.id.to_string(),
                        t.to_json(lenient),
                    );
                    data.mac_transactions.push(t);
                    out
                }
                NewRecord::Voucher(t) => {
                    let out = (
                        WebhookEvent::VoucherTransactionCreate,
                        t.location_id.to_string(),
                        t.id.to_string(),
                        t.to_json(lenient),
                    );
                    data.voucher_transactions.push(t);
                    out
                }
                NewRecord::Social(t) => {
                    let out = (
                        WebhookEvent::SocialTransactionCreate,
                        t.location_id.to_string(),
                        t.id.to_string(),
                        t.to_json(lenient),
                    );
                    data.social_transactions.push(t);
                    out
                }
                NewRecord::Paid(t) => {
                    let out = (
                        WebhookEvent::PaidTransactionCreate,
                        t.location_id.to_string(),
                        t.id.to_string(),
                        t.to_json(lenient),
                    );
                    data.paid_transactions.push(t);
                    out
                }
            }
        };
        self.webhooks.record_added(event, &location, &id, json);
    }

    /// Every webhook POST made so far, in order.
    pub fn webhook_deliveries(&self) -> Vec<Delivery> {
        self.webhooks.deliveries()
    }

    /// Webhook deliveries still waiting for a 200.
    pub fn webhooks_queued(&self) -> usize {
        self.webhooks.queued()
    }

    /// Every request the handler answered, in arrival order. Answers injected by
    /// [`HotspotEmulator::set_faults`] are not here (they never reach the handler); the client's
    /// audit sees them.
    pub fn requests(&self) -> Vec<HotspotRequest> {
        lock(&self.shared.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// How many requests each location's own routes (`/locations/{id}/...`) answered since the
    /// last [`HotspotEmulator::clear_requests`], by location id; account-wide lists count
    /// under no location. A pass that reads each location once shows here as the same small
    /// number (its pages) for every location.
    pub fn reads_per_location(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in lock(&self.shared.requests).iter() {
            if let Some(Route::List {
                location: Some(loc),
                ..
            }) = match_route(&r.path)
            {
                *out.entry(loc).or_insert(0) += 1;
            }
        }
        out
    }

    pub fn set_latency(&self, d: Duration) {
        self.shared
            .latency_nanos
            .store(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Changes how lists page, from the next request on.
    pub fn set_paging(&self, paging: Paging) {
        *lock(&self.shared.paging) = paging;
    }

    /// Changes what `sort` does, from the next request on.
    pub fn set_sort(&self, sort: SortSupport) {
        *lock(&self.shared.sort) = sort;
    }

    /// A new API key, as when the operator regenerates it: from now on only `new` is accepted.
    pub fn rotate_api_key(&self, new: &str) {
        *lock(&self.shared.api_key) = new.to_string();
    }

    pub fn set_lenient_types(&self, on: bool) {
        self.shared.lenient.store(on, Ordering::Relaxed);
    }

    pub fn set_odd_values(&self, odd: OddValues) {
        *lock(&self.shared.odd) = odd;
    }

    /// Injects faults into later answers (5xx, 429 with or without `Retry-After`, latency), the
    /// same knobs as the GHL emulator; `FaultKnobs::default()` turns them off.
    pub fn set_faults(&self, knobs: FaultKnobs) {
        self.faults.set(knobs);
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HotspotEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A record a test adds to the account ([`HotspotEmulator::add_record`]).
#[derive(Debug, Clone)]
pub enum NewRecord {
    Customer(Customer),
    Subscriber(Customer),
    Mac(MacTransaction),
    Voucher(VoucherTransaction),
    Social(SocialTransaction),
    Paid(PaidTransaction),
}

/// An error answer: `{"error": message}` with its status.
struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
    fn not_found(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

/// The list resources of §4.
#[derive(Clone, Copy, Debug)]
enum Resource {
    Locations,
    Customers,
    Subscribers,
    Vouchers,
    MacTransactions,
    VoucherTransactions,
    SocialTransactions,
    PaidTransactions,
}

impl Resource {
    fn from_segments(segments: &[&str]) -> Option<Self> {
        Some(match segments {
            ["customers"] => Resource::Customers,
            ["subscribers"] => Resource::Subscribers,
            ["vouchers"] => Resource::Vouchers,
            ["transactions", "mac"] => Resource::MacTransactions,
            ["transactions", "voucher"] => Resource::VoucherTransactions,
            ["transactions", "social"] => Resource::SocialTransactions,
            ["transactions", "paid"] => Resource::PaidTransactions,
            _ => return None,
        })
    }
}

/// A matched route.
enum Route {
    Me,
    Ping,
    LocationOptions,
    List {
        resource: Resource,
        location: Option<String>,
    },
}

fn match_route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix(BASE)?.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    Some(match segments.as_slice() {
        ["me"] => Route::Me,
        ["ping"] => Route::Ping,
        ["locations"] => Route::List {
            resource: Resource::Locations,
            location: None,
        },
        ["locations", "options"] => Route::LocationOptions,
        ["locations", id, tail @ ..] if !id.is_empty() => Route::List {
            resource: Resource::from_segments(tail)?,
            location: Some((*id).to_string()),
        },
        other => Route::List {
            resource: Resource::from_segments(other)?,
            location: None,
        },
    })
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let latency = Duration::from_nanos(shared.latency_nanos.load(Ordering::Relaxed));
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match answer(&shared, &method, &uri, &headers) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    lock(&shared.requests).push(HotspotRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        status: response.status().as_u16(),
    });
    response
}

fn answer(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let key_ok = headers
        .get("sn-apikey")
        .is_some_and(|k| k.as_bytes() == lock(&shared.api_key).as_bytes());
    if !key_ok {
        let msg = if headers.contains_key("sn-apikey") {
            "Invalid API key"
        } else {
            "Missing API key: send it in the sn-apikey header"
        };
        return Err(ApiError(StatusCode::UNAUTHORIZED, msg.into()));
    }
    let route = match_route(uri.path())
        .ok_or_else(|| ApiError::not_found(format!("Not found: {}", uri.path())))?;
    if method != Method::GET {
        let mut r = ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Method {method} not allowed: the API is read-only"),
        )
        .into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return Ok(r);
    }
    let lenient = shared.lenient.load(Ordering::Relaxed);
    let data = lock(&shared.data);
    match route {
        Route::Me => Ok(axum::Json(data.owner.to_json(lenient)).into_response()),
        Route::Ping => Ok(axum::Json(json!({ "ping": "pong" })).into_response()),
        Route::LocationOptions => {
            let items: Vec<Value> = data
                .locations
                .iter()
                .map(|l| json!({ "id": l.id, "name": l.name }))
                .collect();
            Ok(axum::Json(json!({ "items": items })).into_response())
        }
        Route::List { resource, location } => {
            let params = ListParams::parse(uri, shared)?;
            if let Some(loc) = &location
                && !data.locations.iter().any(|l| &l.id == loc)
            {
                return Err(ApiError::not_found(format!("Location {loc} not found")));
            }
            let odd = *lock(&shared.odd);
            let (fields, records) = collect(&data, resource, location.as_deref(), odd);
            drop(data);
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| shared.addr.to_string());
            let paging = *lock(&shared.paging);
            let sort = *lock(&shared.sort);
            list_response(
                records,
                &fields,
                &params,
                AnswerShape {
                    lenient,
                    odd,
                    paging,
                    sort,
                },
                uri,
                &host,
            )
        }
    }
}

/// Strict JSON of every record the route lists (with the odd values that are on), plus the
/// property names of its type.
fn collect(
    data: &HotspotData,
    resource: Resource,
    location: Option<&str>,
    odd: OddValues,
) -> (Vec<String>, Vec<Value>) {
    // A record's oddity follows its place in the account's list, whatever the location asked.
    let all = |items: Vec<(usize, Value)>| -> Vec<Value> {
        items
            .into_iter()
            .map(|(i, r)| match odd.at(i) {
                Some(o) => o.apply(r),
                None => r,
            })
            .collect()
    };
    fn pick<'a, T: ApiRecord + 'a>(
        items: &'a [T],
        keep: impl Fn(&T) -> bool,
    ) -> Vec<(usize, Value)> {
        items
            .iter()
            .enumerate()
            .filter(|(_, r)| keep(r))
            .map(|(i, r)| (i, r.to_json(false)))
            .collect()
    }
    fn names<T: ApiRecord>(_: &[T]) -> Vec<String> {
        T::field_names()
    }
    let loc_num: Option<i64> = location.and_then(|l| l.parse().ok());
    let in_loc_str = |id: &str| location.is_none_or(|l| l == id);
    // A location id that is not numeric cannot match an integer transaction location_id.
    let in_loc_num = |id: i64| location.is_none() || loc_num == Some(id);
    let (names, items) = match resource {
        Resource::Locations => (names(&data.locations), pick(&data.locations, |_| true)),
        Resource::Customers => (
            names(&data.customers),
            pick(&data.customers, |c: &Customer| in_loc_str(&c.location_id)),
        ),
        Resource::Subscribers => (
            names(&data.subscribers),
            pick(&data.subscribers, |c: &Customer| in_loc_str(&c.location_id)),
        ),
        Resource::Vouchers => (
            names(&data.vouchers),
            pick(&data.vouchers, |v: &Voucher| in_loc_str(&v.location_id)),
        ),
        Resource::MacTransactions => (
            names(&data.mac_transactions),
            pick(&data.mac_transactions, |t: &MacTransaction| {
                in_loc_num(t.location_id)
            }),
        ),
        Resource::VoucherTransactions => (
            names(&data.voucher_transactions),
            pick(&data.voucher_transactions, |t: &VoucherTransaction| {
                in_loc_num(t.location_id)
            }),
        ),
        Resource::SocialTransactions => (
            names(&data.social_transactions),
            pick(&data.social_transactions, |t: &SocialTransaction| {
                in_loc_num(t.location_id)
            }),
        ),
        Resource::PaidTransactions => (
            names(&data.paid_transactions),
            pick(&data.paid_transactions, |t: &PaidTransaction| {
                in_loc_num(t.location_id)
            }),
        ),
    };
    (names, all(items))
}

/// The validated list parameters, plus the query pairs that are not ours (kept in links).
struct ListParams {
    fields: Option<Vec<String>>,
    sort: Option<(String, bool)>,
    limit: usize,
    offset: usize,
    others: Vec<(String, String)>,
}

impl ListParams {
    fn parse(uri: &Uri, shared: &Shared) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| ApiError::bad_request(format!("Malformed query string: {e}")))?;
        let mut params = ListParams {
            fields: None,
            sort: None,
            limit: shared.default_limit,
            offset: 0,
            others: Vec::new(),
        };
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in &pairs {
            if matches!(key.as_str(), "fields" | "sort" | "limit" | "offset") {
                if seen.contains(&key.as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "Parameter {key} given more than once"
                    )));
                }
                seen.push(key);
            }
            match key.as_str() {
                "fields" => {
                    let names: Vec<String> = value.split(',').map(str::to_string).collect();
                    params.fields = Some(names);
                }
                "sort" => {
                    let (name, desc) = match value.strip_prefix('-') {
                        Some(rest) => (rest, true),
                        None => (value.as_str(), false),
                    };
                    params.sort = Some((name.to_string(), desc));
                }
                "limit" => {
                    let n = parse_count(value).filter(|n| *n >= 1).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Invalid limit {value:?}: expected an integer of at least 1"
                        ))
                    })?;
                    params.limit = n.min(shared.max_limit);
                }
                "offset" => {
                    params.offset = parse_count(value).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Invalid offset {value:?}: expected a non-negative integer"
                        ))
                    })?;
                }
                _ => params.others.push((key.clone(), value.clone())),
            }
        }
        Ok(params)
    }
}

/// Digits only: rejects signs, spaces, decimals and the empty string. Huge values saturate.
fn parse_count(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<usize>().unwrap_or(usize::MAX))
}

/// Order of JSON values for `sort`: null first, then numbers, then strings (byte order).
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            _ => 4,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// How the knobs shape a list answer: value types, odd values, paging.
#[derive(Debug, Clone, Copy)]
struct AnswerShape {
    lenient: bool,
    odd: OddValues,
    paging: Paging,
    sort: SortSupport,
}

fn list_response(
    mut records: Vec<Value>,
    field_names: &[String],
    params: &ListParams,
    shape: AnswerShape,
    uri: &Uri,
    host: &str,
) -> Result<Response, ApiError> {
    let AnswerShape {
        lenient,
        odd,
        paging,
        sort,
    } = shape;
    let known = |name: &str| field_names.iter().any(|f| f == name);
    if let Some(fields) = &params.fields
        && let Some(bad) = fields.iter().find(|f| !known(f))
    {
        return Err(ApiError::bad_request(format!(
            "Unknown field {bad:?} in fields; known: {}",
            field_names.join(",")
        )));
    }
    // Sort on the strict values, so the order does not depend on lenient mode.
    if let Some((name, desc)) = &params.sort {
        if !known(name) {
            return Err(ApiError::bad_request(format!(
                "Cannot sort by {name:?}: sort takes exactly one property name, optionally \
                 prefixed with '-'; known: {}",
                field_names.join(",")
            )));
        }
        match sort {
            // Stable in both directions: ties keep insertion order.
            SortSupport::Honoured => records.sort_by(|a, b| {
                let o = compare(&a[name.as_str()], &b[name.as_str()]);
                if *desc { o.reverse() } else { o }
            }),
            SortSupport::Ignored => {}
            SortSupport::PagesShuffled => {
                records.reverse();
                // Each page of `limit` records reversed in place: newest-first across pages,
                // oldest-first within each; deterministic, so every read sees the same order.
                for page in records.chunks_mut(params.limit.max(1)) {
                    page.reverse();
                }
            }
        }
    }
    let total = records.len();
    let start = match paging.offset {
        OffsetReading::Records => params.offset,
        OffsetReading::PageIndex => params.offset.saturating_mul(params.limit),
        OffsetReading::Ignored => 0,
    };
    let items: Vec<Value> = records
        .into_iter()
        .skip(start)
        .take(params.limit)
        .map(|r| {
            let r = if lenient {
                super::seed::lenient_form(r)
            } else {
                r
            };
            let r = if odd.text_as_numbers {
                text_as_number(r)
            } else {
                r
            };
            match (&params.fields, r) {
                (Some(fields), Value::Object(mut map)) => Value::Object(
                    fields
                        .iter()
                        .filter_map(|f| map.remove(f).map(|v| (f.clone(), v)))
                        .collect(),
                ),
                (_, r) => r,
            }
        })
        .collect();

    let link = |offset: usize| {
        let mut query: Vec<String> = params
            .others
            .iter()
            .chain(
                [
                    params
                        .fields
                        .as_ref()
                        .map(|f| ("fields".to_string(), f.join(","))),
                    params.sort.as_ref().map(|(n, d)| {
                        (
                            "sort".to_string(),
                            format!("{}{n}", if *d { "-" } else { "" }),
                        )
                    }),
                ]
                .iter()
                .flatten(),
            )
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        query.push(format!("limit={}", params.limit));
        query.push(format!("offset={offset}"));
        format!("<http://{host}{}?{}>", uri.path(), query.join("&"))
    };
    // The offsets of the next and previous pages, in the server's own reading.
    let step = match paging.offset {
        OffsetReading::PageIndex => 1,
        OffsetReading::Records | OffsetReading::Ignored => params.limit,
    };
    let mut links = vec![format!("{}; rel=\"self\"", link(params.offset))];
    match paging.link {
        LinkHeader::Alternating => {
            let other = if params.offset == 0 { step } else { 0 };
            links.push(format!("{}; rel=\"next\"", link(other)));
        }
        LinkHeader::Standard | LinkHeader::Absent => {
            if start.saturating_add(params.limit) < total {
                links.push(format!(
                    "{}; rel=\"next\"",
                    link(params.offset.saturating_add(step))
                ));
            }
        }
    }
    if params.offset > 0 {
        links.push(format!(
            "{}; rel=\"prev\"",
            link(params.offset.saturating_sub(step))
        ));
    }
    let mut response = axum::Json(json!({
        "metadata": { "total_count": total },
        "items": items,
    }))
    .into_response();
    if paging.link != LinkHeader::Absent
        && let Ok(value) = HeaderValue::from_str(&links.join(", "))
    {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// Percent-encodes a query component (everything but RFC 3986 unreserved characters and `,`).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(match_route("/v2.0/me"), Some(Route::Me)));
        assert!(matches!(
            match_route("/v2.0/locations/options"),
            Some(Route::LocationOptions)
        ));
        assert!(matches!(
            match_route("/v2.0/locations/4/transactions/paid"),
            Some(Route::List {
                resource: Resource::PaidTransactions,
                location: Some(_)
            })
        ));
        assert!(match_route("/v2.0/customers/").is_none());
        assert!(match_route("/v2.0/locations/4").is_none());
        assert!(match_route("/v2.0/locations//customers").is_none());
        assert!(match_route("/v1.0/customers").is_none());
        assert!(match_route("/v2.0/users").is_none());
    }

    #[test]
    fn counts_and_encoding() {
        assert_eq!(parse_count("10"), Some(10));
        assert_eq!(parse_count("+1"), None);
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count(""), None);
        assert_eq!(parse_count("1.5"), None);
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
