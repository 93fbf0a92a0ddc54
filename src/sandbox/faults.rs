//! Fault knobs shared by both emulators, and the axum middleware that injects them.
//!
//! The knobs exist so tests (and `sandbox`) can make an emulator misbehave the way a real API on
//! the internet does: slow answers, 5xx from the service or its gateway, 429 with or without
//! `Retry-After`, and — the nasty one — a connection that dies *after* the write was applied, so a
//! client that retries blindly creates duplicates. And hostile answers: headers that lie (an
//! `X-RateLimit-Interval-Milliseconds` of a day), bodies far larger than any page, error
//! messages carrying newlines and terminal escapes.
//!
//! Use: keep one [`FaultState`] per emulator and install it with
//! `axum::middleware::from_fn_with_state(fault_state.clone(), faults::inject)`. Change the knobs at
//! run time with [`FaultState::set`]. Every injected fault tags the response with an
//! [`InjectedFault`] extension so an outer logging layer can tell injected answers from real ones.

use std::io;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Probabilities (each 0..=1) and delays of injected faults. `Default` injects nothing.
///
/// The status faults (`p500`, `p502`, `p503`, `p429_*`) are drawn from one roll, so their sum
/// should stay ≤ 1; they answer *before* the handler runs, so no state changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultKnobs {
    /// Added before every answer (also before injected faults).
    pub latency: Duration,
    /// `500 {"statusCode":500,"message":"Internal Server Error"}` without running the handler.
    pub p500: f64,
    /// `502` with an HTML body, as a load balancer in front of the API answers.
    pub p502: f64,
    /// `503` with an HTML body.
    pub p503: f64,
    /// For writes only (POST, PUT, PATCH, DELETE; not the POST searches, which only read): the
    /// handler runs and its state change is kept, then the connection dies before the client
    /// has a complete response.
    pub p_drop_after_write: f64,
    /// `429` carrying `Retry-After: retry_after_secs`.
    pub p429_retry_after: f64,
    /// `429` without `Retry-After`.
    pub p429_no_retry_after: f64,
    /// Seconds announced in `Retry-After` by `p429_retry_after`.
    pub retry_after_secs: u64,
    /// Set on every answer, over the emulator's own values (e.g. `X-RateLimit-*`).
    pub headers: Vec<(String, String)>,
    /// Every 2xx answer's body is preceded by this much JSON whitespace (it still parses), made
    /// on the fly, never held in memory.
    pub pad_body: Option<BodyPadding>,
    /// Answer with this error instead of running the handler.
    pub error_answer: Option<ErrorAnswer>,
}

/// See [`FaultKnobs::pad_body`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyPadding {
    pub bytes: u64,
    /// Send `Content-Length` (else the body is chunked and its length known only at its end).
    pub announce_length: bool,
}

/// See [`FaultKnobs::error_answer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: u16,
    /// The `message` of the JSON body (GHL's shape; HotspotSystem's client reads it too).
    pub message: String,
    /// Only writes get it (the listings work, each record's write fails); else every request.
    pub only_writes: bool,
}

/// Marker put in the extensions of a response whose fate a fault decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// The handler did not run; the status is the injected one.
    Status(u16),
    /// The handler ran (state kept) and the body is cut off mid-stream.
    DroppedAfterWrite,
}

/// Knobs plus a seeded RNG, cheap to clone, shared between the emulator handle and the middleware.
#[derive(Debug, Clone)]
pub struct FaultState {
    knobs: Arc<RwLock<FaultKnobs>>,
    rng: Arc<Mutex<StdRng>>,
}

impl FaultState {
    /// New state with the given knobs; `seed` makes fault sequences reproducible.
    pub fn new(knobs: FaultKnobs, seed: u64) -> Self {
        Self {
            knobs: Arc::new(RwLock::new(knobs)),
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        }
    }

    /// Wrap an existing knob cell (for an emulator that owns its own `Arc<RwLock<FaultKnobs>>`).
    pub fn from_shared(knobs: Arc<RwLock<FaultKnobs>>, seed: u64) -> Self {
        Self {
            knobs,
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        }
    }

    /// Replace all knobs at once; applies to the next request.
    pub fn set(&self, knobs: FaultKnobs) {
        *self.knobs.write().unwrap_or_else(|e| e.into_inner()) = knobs;
    }

    /// Current knobs.
    pub fn get(&self) -> FaultKnobs {
        self.knobs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The shared knob cell.
    pub fn knobs(&self) -> Arc<RwLock<FaultKnobs>> {
        self.knobs.clone()
    }

    fn roll(&self) -> f64 {
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random::<f64>()
    }
}

/// A request that changes something. GHL's searches are POSTs but only read, so a "dropped
/// after the write" fault does not apply to them.
fn is_write(method: &Method, path: &str) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && !path.trim_end_matches('/').ends_with("/search")
}

fn json_status(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"statusCode": status.as_u16(), "message": message});
    (status, axum::Json(body)).into_response()
}

fn html_status(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    );
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// Decide a status fault from one uniform draw `u` in [0, 1).
fn pick_status_fault(k: &FaultKnobs, u: f64) -> Option<Response> {
    let mut edge = 0.0;
    let mut hit = |p: f64| {
        edge += p.clamp(0.0, 1.0);
        u < edge
    };
    if hit(k.p500) {
        return Some(json_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        ));
    }
    if hit(k.p502) {
        return Some(html_status(StatusCode::BAD_GATEWAY));
    }
    if hit(k.p503) {
        return Some(html_status(StatusCode::SERVICE_UNAVAILABLE));
    }
    if hit(k.p429_retry_after) {
        let mut r = json_status(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(k.retry_after_secs));
        return Some(r);
    }
    if hit(k.p429_no_retry_after) {
        return Some(json_status(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
        ));
    }
    None
}

/// Turn a finished response into one whose body stream fails after a few bytes while announcing
/// the full length: hyper then aborts the connection, and the client sees a transport error
/// instead of a usable answer.
async fn cut_off(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let full_len = bytes.len().max(2) + 16;
    let head = bytes.slice(..bytes.len().min(1));
    let stream = futures_util::stream::iter(vec![
        Ok::<Bytes, io::Error>(head),
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "fault injected: connection dropped after the write",
        )),
    ]);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(full_len));
    parts.extensions.insert(InjectedFault::DroppedAfterWrite);
    Response::from_parts(parts, Body::from_stream(stream))
}

/// `pad` bytes of spaces, then the body, streamed: the padding is never in memory at once.
async fn padded(resp: Response, pad: BodyPadding) -> Response {
    static SPACES: [u8; 64 * 1024] = [b' '; 64 * 1024];
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let total = pad.bytes + bytes.len() as u64;
    let chunk = SPACES.len() as u64;
    let spaces = (0..pad.bytes.div_ceil(chunk)).map(move |i| {
        let len = chunk.min(pad.bytes - i * chunk) as usize;
        Ok::<Bytes, io::Error>(Bytes::from_static(&SPACES[..len]))
    });
    let stream = futures_util::stream::iter(spaces.chain(std::iter::once(Ok(bytes))));
    parts.headers.remove(header::CONTENT_LENGTH);
    if pad.announce_length {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    }
    Response::from_parts(parts, Body::from_stream(stream))
}

/// The middleware: latency, then maybe a status fault (handler not run), else the handler and,
/// for writes, maybe a dropped connection; then the hostile shapes (headers, padding).
pub async fn inject(State(faults): State<FaultState>, req: Request, next: Next) -> Response {
    let knobs = faults.get();
    if !knobs.latency.is_zero() {
        tokio::time::sleep(knobs.latency).await;
    }
    let write = is_write(req.method(), req.uri().path());
    let injected = pick_status_fault(&knobs, faults.roll()).or_else(|| {
        let e = knobs.error_answer.as_ref()?;
        (write || !e.only_writes).then(|| {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            json_status(status, &e.message)
        })
    });
    let mut resp = match injected {
        Some(mut resp) => {
            let code = resp.status().as_u16();
            resp.extensions_mut().insert(InjectedFault::Status(code));
            resp
        }
        None => {
            let resp = next.run(req).await;
            if write && knobs.p_drop_after_write > 0.0 && faults.roll() < knobs.p_drop_after_write {
                return cut_off(resp).await;
            }
            match knobs.pad_body {
                Some(pad) if resp.status().is_success() => padded(resp, pad).await,
                _ => resp,
            }
        }
    };
    for (name, value) in &knobs.headers {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_knobs_no_fault() {
        let k = FaultKnobs::default();
        for i in 0..100 {
            assert!(pick_status_fault(&k, i as f64 / 100.0).is_none());
        }
    }

    #[test]
    fn bands_follow_probabilities() {
        let k = FaultKnobs {
            p500: 0.1,
            p502: 0.1,
            p429_retry_after: 0.1,
            retry_after_secs: 7,
            ..Default::default()
        };
        assert_eq!(pick_status_fault(&k, 0.05).unwrap().status(), 500);
        assert_eq!(pick_status_fault(&k, 0.15).unwrap().status(), 502);
        let r = pick_status_fault(&k, 0.25).unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert!(pick_status_fault(&k, 0.35).is_none());
    }
}
