//! Webhook receivers: `POST /hooks/hotspotsystem` and `POST /hooks/ghl` ([`ghl`]), served by
//! `run` on `[webhooks] listen` through the project's bounded server ([`crate::server`]).
//!
//! A body is answered 200 only once its events are committed in the state database of every
//! pair they are for ([`Inbox`]); the sender retries anything else, so a crash after the answer
//! loses nothing and a crash before it costs a retry. What each answer means:
//!
//! | answer | when | the sender |
//! |---|---|---|
//! | 200 | queued, or already queued (a replay changes nothing), or for a location no pair syncs (logged) | done |
//! | 400 | signed, but no event this receiver knows (unknown `?event=`, not JSON, type not inferable, no id), logged as an error naming why | retries: nothing is lost while the callback URL is fixed |
//! | 401 | no signature, or one made with none of the configured keys; nothing is stored | retries |
//! | 413 | the body is over `[webhooks] max_body_bytes` | retries |
//! | 503 | a pair the event is for cannot store it now (its state is being reopened, a disk error) | retries |
//!
//! Where an event goes ([`route`]): to the pairs whose `hotspot.locations` hold its location (a
//! pair listing none reads them all). Customers carry no location, so a customer event without
//! `?location=` in its callback URL goes to every pair (each pair's pass reads only its own
//! locations: a pair without the guest finds nothing to do); an event for a location that no
//! pair syncs is answered 200 and dropped, with a warning, since no pass could ever use it.
//!
//! GHL's events are not queued but recorded at once in the pairs of their GHL location; their
//! answers and what each records are in [`ghl`].

pub mod ghl;
pub mod hotspot;
pub mod signature;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};

use crate::config::{GhlKeys, HotspotKeys, WebhooksConfig};
use crate::server::{self, Limits};
use crate::store::{NewWebhookEvent, Store, StoreError};

use self::ghl::GhlEvent;
use self::ghl::apply::Effect;
use self::hotspot::{DecodeError, HotspotEvent};

/// The HotspotSystem receiver's path.
pub const HOTSPOT_PATH: &str = "/hooks/hotspotsystem";
/// `webhook_events.source` of HotspotSystem's events.
pub const SOURCE_HOTSPOT: &str = "hotspotsystem";

/// Where accepted events go: the daemon's pairs.
pub trait Inbox: Send + Sync + 'static {
    /// Queues `event` (received at `at`) in the state of each pair it is for and wakes those
    /// that had not queued it yet. Blocking (SQLite): called on a blocking thread.
    fn accept(&self, event: &HotspotEvent, at: DateTime<Utc>) -> Result<Accepted, InboxError>;
}

/// Where GHL's events go: the pairs syncing their location.
pub trait GhlInbox: Send + Sync + 'static {
    /// Records `event` (received at `at`) in the state of each pair whose GHL location is the
    /// event's, at once ([`ghl::apply`]). Blocking (SQLite): called on a blocking thread.
    fn apply(&self, event: &GhlEvent, at: DateTime<Utc>) -> Result<GhlAccepted, InboxError>;
}

/// What became of a GHL event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GhlAccepted {
    /// What it did in each pair of its location.
    Applied(Vec<(String, Effect)>),
    /// No pair syncs its location.
    NoPair,
}

/// What became of an accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Queued in these pairs' states; `new`: how many of them did not have it yet.
    Queued { pairs: Vec<String>, new: usize },
    /// For a location no pair syncs.
    NoPair { location: String },
}

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("pair {pair:?} cannot take events now: {reason}")]
    Unavailable { pair: String, reason: String },
    #[error("pair {pair:?}: {source}")]
    Store {
        pair: String,
        #[source]
        source: StoreError,
    },
}

/// A pair as routing sees it.
#[derive(Debug, Clone, Copy)]
pub struct PairLocations<'a> {
    pub name: &'a str,
    /// Its `hotspot.locations`; empty: every location of the account.
    pub locations: &'a [String],
}

/// The pairs (indexes into `pairs`) an event of `location` is for; see the module's table.
pub fn route(location: Option<&str>, pairs: &[PairLocations<'_>]) -> Vec<usize> {
    pairs
        .iter()
        .enumerate()
        .filter(|(_, p)| match location {
            None => true,
            Some(l) => p.locations.is_empty() || p.locations.iter().any(|x| x == l),
        })
        .map(|(i, _)| i)
        .collect()
}

/// Queues `event` in one pair's state: `true` when it was not there yet.
pub fn queue(store: &Store, event: &HotspotEvent, at: DateTime<Utc>) -> Result<bool, StoreError> {
    store.insert_webhook_event(&NewWebhookEvent {
        source: SOURCE_HOTSPOT,
        event_type: event.event.as_str(),
        location_id: event.location_id.as_deref(),
        record_id: &event.record_id,
        body: &event.body,
        received_at: at,
    })
}

/// A queued event no successful pass has covered yet, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub event: HotspotEvent,
}

/// The events pending for the pair whose state `store` is, oldest first, with their records:
/// what a pass may work on. A row that no longer decodes (written by a later version) is
/// skipped with a warning; it stays pending until a whole pass covers it.
pub fn pending_events(store: &Store) -> Result<Vec<PendingEvent>, StoreError> {
    Ok(decoded(store.pending_webhook_events()?))
}

/// The events received since `since`, processed or not, oldest first.
pub fn events_since(store: &Store, since: DateTime<Utc>) -> Result<Vec<PendingEvent>, StoreError> {
    Ok(decoded(store.webhook_events_received_since(since)?))
}

fn decoded(rows: Vec<crate::store::WebhookEvent>) -> Vec<PendingEvent> {
    let mut out = Vec::new();
    for row in rows {
        if row.source != SOURCE_HOTSPOT {
            continue;
        }
        match hotspot::decode_queued(&row.event_type, row.location_id.as_deref(), &row.body) {
            Ok(event) => out.push(PendingEvent {
                id: row.id,
                received_at: row.received_at,
                event,
            }),
            Err(e) => {
                tracing::warn!(id = row.id, event = %row.event_type, error = %e, "queued webhook event does not decode; left for the next whole pass")
            }
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen for webhooks on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the webhook receiver stopped: {0}")]
    Serve(#[source] std::io::Error),
}

struct Receiver {
    keys: HotspotKeys,
    inbox: Arc<dyn Inbox>,
    ghl_keys: GhlKeys,
    ghl_inbox: Arc<dyn GhlInbox>,
}

/// Where each source's events go.
#[derive(Clone)]
pub struct Inboxes {
    pub hotspot: Arc<dyn Inbox>,
    pub ghl: Arc<dyn GhlInbox>,
}

/// The receiver's routes.
pub fn app(keys: HotspotKeys, ghl_keys: GhlKeys, inboxes: Inboxes) -> Router {
    Router::new()
        .route(HOTSPOT_PATH, post(receive_hotspot))
        .route(ghl::PATH, post(receive_ghl))
        .with_state(Arc::new(Receiver {
            keys,
            inbox: inboxes.hotspot,
            ghl_keys,
            ghl_inbox: inboxes.ghl,
        }))
}

/// Serves the receivers on `listen` until `shutdown` completes.
pub async fn serve(
    listen: SocketAddr,
    cfg: &WebhooksConfig,
    inboxes: Inboxes,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    let limits = Limits {
        max_body_bytes: cfg.max_body_bytes,
        ..Limits::default()
    };
    tracing::info!(%addr, path = HOTSPOT_PATH, ghl_path = ghl::PATH, max_body_bytes = cfg.max_body_bytes, "webhook receiver listening");
    match (
        cfg.ghl_keys.ed25519.is_some(),
        cfg.ghl_keys.accept_legacy_rsa,
    ) {
        (false, _) => tracing::warn!(
            "no ghl_ed25519_public_key_file: GHL webhooks verify only by the legacy x-wh-signature (RSA), which GHL has announced it will retire"
        ),
        (true, true) => tracing::info!(
            "GHL webhooks verify by x-ghl-signature (Ed25519), else the legacy x-wh-signature (RSA)"
        ),
        (true, false) => tracing::info!("GHL webhooks verify by x-ghl-signature (Ed25519) only"),
    }
    server::serve(
        listener,
        app(cfg.hotspot_keys.clone(), cfg.ghl_keys.clone(), inboxes),
        limits,
        shutdown,
    )
    .await
    .map_err(ServeError::Serve)
}

fn answer(status: StatusCode, text: impl Into<String>) -> Response {
    let mut text = text.into();
    text.push('\n');
    (status, text).into_response()
}

async fn receive_hotspot(
    State(rx): State<Arc<Receiver>>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = Utc::now();
    let keys = match rx.keys.current() {
        Ok(keys) => keys,
        Err(e) => {
            tracing::error!(error = %e, "webhook keys unreadable; answering 503 so that the sender retries");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the receiver's keys are unreadable",
            );
        }
    };
    if let Err(e) = signature::verify(&headers, &body, &keys) {
        tracing::warn!(reason = %e, bytes = body.len(), "webhook refused (401): not signed by a configured key; nothing stored");
        return answer(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let events = match hotspot::decode(
        params.get("event").map(String::as_str),
        params.get("location").map(String::as_str),
        &body,
    ) {
        Ok(events) => events,
        Err(e) => return refuse_undecodable(&e, params.get("event")),
    };
    let inbox = Arc::clone(&rx.inbox);
    let accepted = blocking(move || {
        events
            .iter()
            .map(|e| {
                inbox
                    .accept(e, received_at)
                    .map(|a| (e.event, e.record_id.clone(), e.location_id.clone(), a))
            })
            .collect::<Result<Vec<_>, InboxError>>()
    })
    .await;
    // The store refused, or the task storing it died: either way the sender retries.
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::error!(error = %e, "webhook event not stored; answering 503 so that the sender retries");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the event cannot be stored now; retry later",
            );
        }
    };
    let mut new = 0;
    for (event, record, location, a) in &accepted {
        match a {
            Accepted::Queued { pairs, new: n } => {
                new += n;
                tracing::info!(event = %event, record = %record, location = location.as_deref().unwrap_or("-"), pairs = ?pairs, new = *n > 0, "webhook event queued");
            }
            Accepted::NoPair { location } => {
                tracing::warn!(event = %event, record = %record, location = %location, "webhook event for a location no pair syncs (hotspot.locations); answered 200 and dropped")
            }
        }
    }
    answer(
        StatusCode::OK,
        format!("{} event(s) received, {new} new", accepted.len()),
    )
}

/// Runs an inbox's blocking work (SQLite) off the runtime; the inbox's error, or the task's
/// death, as text for the log.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, InboxError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(done) => done.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

async fn receive_ghl(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let received_at = Utc::now();
    let verified = match ghl::signature::verify(&headers, &body, &rx.ghl_keys) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(reason = %e, bytes = body.len(), "GHL webhook refused (401): not signed by GHL's key; nothing stored");
            return answer(StatusCode::UNAUTHORIZED, e.to_string());
        }
    };
    let event = match ghl::decode(&body) {
        Ok(event) => event,
        Err(e) => {
            tracing::error!(error = %e, "signed GHL webhook refused (400)");
            return answer(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    if let Err(e) = ghl::fresh(event.timestamp, received_at) {
        tracing::warn!(event = %event.event_type, webhook_id = %event.webhook_id, reason = %e, "GHL webhook refused (401): not fresh (a replay, or a clock off); nothing stored");
        return answer(StatusCode::UNAUTHORIZED, format!("stale: {e}"));
    }
    let inbox = Arc::clone(&rx.ghl_inbox);
    let applied = {
        let event = event.clone();
        blocking(move || inbox.apply(&event, received_at)).await
    };
    let applied = match applied {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "GHL webhook event not recorded; answering 503 so that GHL retries");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the event cannot be recorded now; retry later",
            );
        }
    };
    let (id, hook) = (&event.record_id, &event.webhook_id);
    match &applied {
        GhlAccepted::NoPair => {
            tracing::warn!(event = %event.event_type, location = %event.location_id, record = %id, webhook_id = %hook, "GHL webhook for a location no pair syncs (ghl.location_id); answered 200 and dropped")
        }
        GhlAccepted::Applied(effects) => {
            for (pair, effect) in effects {
                match effect {
                    Effect::NotOwned | Effect::Ignored => {
                        tracing::debug!(event = %event.event_type, record = %id, webhook_id = %hook, pair = %pair, effect = effect.as_str(), "GHL webhook event: nothing to record")
                    }
                    _ => {
                        tracing::info!(event = %event.event_type, location = %event.location_id, record = %id, webhook_id = %hook, pair = %pair, effect = effect.as_str(), scheme = ?verified.scheme, signed = ?verified.signed, "GHL webhook event handled")
                    }
                }
            }
        }
    }
    answer(StatusCode::OK, "received")
}

/// 400 for a signed body that holds no event this receiver knows: logged as an error (the
/// sender retries it, so the operator can still fix the callback URL before anything is lost).
fn refuse_undecodable(e: &DecodeError, event: Option<&String>) -> Response {
    tracing::error!(error = %e, event = event.map(String::as_str).unwrap_or("-"), "signed webhook refused (400): check the callback URL's ?event= of this webhook");
    answer(StatusCode::BAD_REQUEST, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_go_to_the_pairs_that_read_their_location() {
        let a = vec!["1".to_string(), "2".to_string()];
        let b = vec!["3".to_string()];
        let all: Vec<String> = Vec::new();
        let pairs = [
            PairLocations {
                name: "a",
                locations: &a,
            },
            PairLocations {
                name: "b",
                locations: &b,
            },
        ];
        assert_eq!(route(Some("2"), &pairs), vec![0]);
        assert_eq!(route(Some("3"), &pairs), vec![1]);
        assert_eq!(route(Some("9"), &pairs), Vec::<usize>::new());
        assert_eq!(
            route(None, &pairs),
            vec![0, 1],
            "unknown location: every pair"
        );
        let single = [PairLocations {
            name: "default",
            locations: &all,
        }];
        assert_eq!(
            route(Some("9"), &single),
            vec![0],
            "a pair of every location"
        );
    }
}
