//! The HotspotSystem emulator's webhooks (reference §8): configured per location and event with
//! a callback URL and a key of their own; a record added to the emulator's data
//! ([`super::hotspot::HotspotEmulator::add_record`]) queues a delivery to each matching webhook;
//! deliveries go out in batches every `batch_interval` (about a minute upstream; zero sends each
//! record as soon as it is added), as a POST of the flat record signed with
//! base64(HMAC-SHA256(body, key)), and anything answered but 200 is sent again at the next batch,
//! up to `max_attempts` times.
//!
//! What the reference leaves open is a knob: the signature header's spelling and its digest's
//! encoding, the body's key
//! spelling (REST's `user_name`, the known example's `UserName`, or every key capitalised), and
//! whether a batch is one POST per record or one POST of an array.
//!
//! This module signs on its own: it shares no code with the product's receiver, so a mistake
//! there cannot hide behind the same mistake here.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The events HotspotSystem sends (all creation-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WebhookEvent {
    CustomerCreate,
    SubscriberCreate,
    MacTransactionCreate,
    VoucherTransactionCreate,
    SocialTransactionCreate,
    PaidTransactionCreate,
}

impl WebhookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::CustomerCreate => "customer.create",
            WebhookEvent::SubscriberCreate => "subscriber.create",
            WebhookEvent::MacTransactionCreate => "transaction.mac.create",
            WebhookEvent::VoucherTransactionCreate => "transaction.voucher.create",
            WebhookEvent::SocialTransactionCreate => "transaction.social.create",
            WebhookEvent::PaidTransactionCreate => "transaction.paid.create",
        }
    }
}

/// One webhook of the Control Center.
#[derive(Clone)]
pub struct WebhookSpec {
    pub location_id: String,
    pub event: WebhookEvent,
    /// The callback URL, query included (e.g. `...?event=customer.create&location=4`).
    pub url: String,
    /// The webhook's own key.
    pub key: String,
}

/// The key is a secret: Debug never shows it.
impl std::fmt::Debug for WebhookSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSpec")
            .field("location_id", &self.location_id)
            .field("event", &self.event)
            .field("url", &self.url)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The header the signature travels in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SignatureHeader {
    /// `X-HotspotSystem-Hmac-Sha256`.
    #[default]
    Standard,
    /// `HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256`, the name HotspotSystem's PHP sample reads.
    Cgi,
}

impl SignatureHeader {
    pub fn name(self) -> &'static str {
        match self {
            SignatureHeader::Standard => "X-HotspotSystem-Hmac-Sha256",
            SignatureHeader::Cgi => "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256",
        }
    }
}

/// How the body spells the record's keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BodyKeys {
    /// As the REST API: `user_name`.
    Rest,
    /// As the one known example: `UserName`, every other key as REST.
    #[default]
    Example,
    /// Every key capitalised: `UserName`, `Email`, `RegisteredAt`.
    Pascal,
}

/// How the signature's digest is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SignatureEncoding {
    /// base64 of the raw digest (the reference).
    #[default]
    Base64,
    /// base64 of the hex digest (PHP's `hash_hmac` without its raw flag, then base64).
    Base64OfHex,
    /// The hex digest.
    Hex,
}

/// What one POST carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Batching {
    /// One POST per record (the reference's "the body is the flat record").
    #[default]
    PerRecord,
    /// One POST per webhook and batch, its body an array of records.
    Array,
}

/// The sender's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookOptions {
    /// How often queued deliveries go out (about a minute upstream). Zero: each record goes
    /// out as soon as it is added, and what was not answered 200 again [`RESEND_UNBATCHED`]
    /// later.
    pub batch_interval: Duration,
    pub header: SignatureHeader,
    pub encoding: SignatureEncoding,
    pub keys: BodyKeys,
    pub batching: Batching,
    /// Sends of one delivery at most ("at least 20 times" upstream).
    pub max_attempts: u32,
    /// How long one POST may take before it counts as failed.
    pub timeout: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            batch_interval: Duration::from_secs(60),
            header: SignatureHeader::default(),
            encoding: SignatureEncoding::default(),
            keys: BodyKeys::default(),
            batching: Batching::default(),
            max_attempts: 20,
            timeout: Duration::from_secs(10),
        }
    }
}

/// With a zero batch interval, how long a delivery not answered 200 waits before its next send
/// when no new record comes first.
pub const RESEND_UNBATCHED: Duration = Duration::from_secs(1);

/// One POST as the sender made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event: WebhookEvent,
    pub location_id: String,
    /// The records it carried.
    pub record_ids: Vec<String>,
    /// 1 for the first send.
    pub attempt: u32,
    /// The answer's status; `None` when none came (refused connection, timeout).
    pub status: Option<u16>,
    pub sent_at: Instant,
    pub answered_at: Instant,
}

/// A record waiting for its next send.
#[derive(Debug, Clone)]
struct Pending {
    spec: WebhookSpec,
    record_id: String,
    record: Value,
    /// Sends so far.
    attempts: u32,
}

#[derive(Default)]
struct State {
    specs: Vec<WebhookSpec>,
    options: WebhookOptions,
    queue: Vec<Pending>,
    log: Vec<Delivery>,
    task: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The emulator's webhook sender.
#[derive(Default)]
pub struct WebhookSender {
    state: Mutex<State>,
    /// Signalled when a record is queued, for the unbatched sends (zero interval). Shared with
    /// the sending task so that waiting on it does not keep the sender alive.
    queued: Arc<Notify>,
}

impl WebhookSender {
    /// Configures the webhooks and starts sending (inside a tokio runtime).
    pub fn configure(self: &Arc<Self>, specs: Vec<WebhookSpec>, options: WebhookOptions) {
        let mut st = lock(&self.state);
        st.specs = specs;
        st.options = options;
        if st.task.is_none() {
            let me = Arc::downgrade(self);
            let queued = Arc::clone(&self.queued);
            st.task = Some(tokio::spawn(async move {
                loop {
                    let interval = match me.upgrade() {
                        Some(s) => lock(&s.state).options.batch_interval,
                        None => return,
                    };
                    if interval.is_zero() {
                        tokio::select! {
                            () = queued.notified() => {}
                            () = tokio::time::sleep(RESEND_UNBATCHED) => {}
                        }
                    } else {
                        tokio::time::sleep(interval).await;
                    }
                    let Some(sender) = me.upgrade() else { return };
                    sender.send_batch().await;
                }
            }));
        }
    }

    /// Queues a delivery of `record` (an API record's JSON) to every webhook of `event` at
    /// `location_id`.
    pub fn record_added(
        &self,
        event: WebhookEvent,
        location_id: &str,
        record_id: &str,
        record: Value,
    ) {
        let mut st = lock(&self.state);
        let specs: Vec<WebhookSpec> = st
            .specs
            .iter()
            .filter(|s| s.event == event && s.location_id == location_id)
            .cloned()
            .collect();
        for spec in specs {
            st.queue.push(Pending {
                spec,
                record_id: record_id.to_string(),
                record: record.clone(),
                attempts: 0,
            });
        }
        drop(st);
        self.queued.notify_one();
    }

    /// Every POST made so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.state).log.clone()
    }

    /// Deliveries still waiting for a 200.
    pub fn queued(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// Sends what is queued now (the batch run).
    async fn send_batch(&self) {
        let (batch, options) = {
            let mut st = lock(&self.state);
            (std::mem::take(&mut st.queue), st.options)
        };
        if batch.is_empty() {
            return;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = match reqwest::Client::builder().timeout(options.timeout).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "emulated webhook sender has no HTTP client");
                lock(&self.state).queue.extend(batch);
                return;
            }
        };
        let groups: Vec<Vec<Pending>> = match options.batching {
            Batching::PerRecord => batch.into_iter().map(|p| vec![p]).collect(),
            Batching::Array => {
                let mut groups: Vec<Vec<Pending>> = Vec::new();
                for p in batch {
                    match groups
                        .iter_mut()
                        .find(|g| g[0].spec.url == p.spec.url && g[0].spec.key == p.spec.key)
                    {
                        Some(g) => g.push(p),
                        None => groups.push(vec![p]),
                    }
                }
                groups
            }
        };
        for group in groups {
            let records: Vec<Value> = group
                .iter()
                .map(|p| spell_keys(&p.record, options.keys))
                .collect();
            let body = match options.batching {
                Batching::PerRecord => serde_json::to_vec(&records[0]),
                Batching::Array => serde_json::to_vec(&records),
            }
            .unwrap_or_default();
            let spec = &group[0].spec;
            let signature = sign_as(&body, &spec.key, options.encoding);
            let attempt = group.iter().map(|p| p.attempts).max().unwrap_or(0) + 1;
            let sent_at = Instant::now();
            let status = client
                .post(&spec.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(options.header.name(), signature)
                .body(body)
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16());
            let answered_at = Instant::now();
            let mut st = lock(&self.state);
            st.log.push(Delivery {
                event: spec.event,
                location_id: spec.location_id.clone(),
                record_ids: group.iter().map(|p| p.record_id.clone()).collect(),
                attempt,
                status,
                sent_at,
                answered_at,
            });
            if status != Some(200) {
                for mut p in group {
                    p.attempts += 1;
                    if p.attempts < options.max_attempts {
                        st.queue.push(p);
                    }
                }
            }
        }
    }
}

impl Drop for WebhookSender {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.state).task.take() {
            task.abort();
        }
    }
}

/// base64(HMAC-SHA256(body, key)), as HotspotSystem signs.
pub fn sign(body: &[u8], key: &str) -> String {
    sign_as(body, key, SignatureEncoding::Base64)
}

/// HMAC-SHA256(body, key) written as `encoding` says.
pub fn sign_as(body: &[u8], key: &str, encoding: SignatureEncoding) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex = || -> String { digest.iter().map(|b| format!("{b:02x}")).collect() };
    match encoding {
        SignatureEncoding::Base64 => Base64::encode_string(digest.as_slice()),
        SignatureEncoding::Base64OfHex => Base64::encode_string(hex().as_bytes()),
        SignatureEncoding::Hex => hex(),
    }
}

/// `record`'s keys as `keys` spells them.
pub fn spell_keys(record: &Value, keys: BodyKeys) -> Value {
    let Value::Object(map) = record else {
        return record.clone();
    };
    let out: Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let k = match keys {
                BodyKeys::Rest => k.clone(),
                BodyKeys::Example if k == "user_name" => "UserName".to_string(),
                BodyKeys::Example => k.clone(),
                BodyKeys::Pascal => pascal(k),
            };
            (k, v.clone())
        })
        .collect();
    Value::Object(out)
}

fn pascal(key: &str) -> String {
    key.split('_')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A receiver answering `status` to every POST, on a free loopback port; returns its URL.
    async fn receiver(status: u16) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let code = axum::http::StatusCode::from_u16(status).unwrap();
        let app =
            axum::Router::new().route("/hook", axum::routing::post(move || async move { code }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hook")
    }

    fn unbatched(url: String) -> Arc<WebhookSender> {
        let sender = Arc::new(WebhookSender::default());
        sender.configure(
            vec![WebhookSpec {
                location_id: "1".into(),
                event: WebhookEvent::CustomerCreate,
                url,
                key: "k".into(),
            }],
            WebhookOptions {
                batch_interval: Duration::ZERO,
                ..WebhookOptions::default()
            },
        );
        sender
    }

    async fn wait_for(sender: &WebhookSender, n: usize, limit: Duration) -> Vec<Delivery> {
        let start = Instant::now();
        while sender.deliveries().len() < n && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sender.deliveries()
    }

    #[tokio::test]
    async fn a_zero_interval_sends_each_record_as_it_is_added() {
        let sender = unbatched(receiver(200).await);
        // Past the first wait of the sending task: a record now must not wait for a tick.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for id in ["1", "2"] {
            let added = Instant::now();
            sender.record_added(WebhookEvent::CustomerCreate, "1", id, json!({"id": id}));
            let log = wait_for(&sender, id.parse().unwrap(), Duration::from_secs(5)).await;
            let d = log.last().expect("a delivery");
            assert_eq!(
                (d.record_ids.as_slice(), d.status),
                (&[id.to_string()][..], Some(200))
            );
            assert!(
                d.sent_at.duration_since(added) < RESEND_UNBATCHED / 2,
                "record {id} waited {:?}",
                d.sent_at.duration_since(added)
            );
        }
        assert_eq!(sender.queued(), 0);
    }

    #[tokio::test]
    async fn a_zero_interval_sends_a_refused_record_again() {
        let sender = unbatched(receiver(503).await);
        sender.record_added(WebhookEvent::CustomerCreate, "1", "1", json!({"id": "1"}));
        let log = wait_for(&sender, 2, RESEND_UNBATCHED * 3).await;
        assert_eq!(
            log.iter()
                .map(|d| (d.attempt, d.status))
                .collect::<Vec<_>>(),
            [(1, Some(503)), (2, Some(503))]
        );
        assert!(log[1].sent_at.duration_since(log[0].sent_at) >= RESEND_UNBATCHED / 2);
    }

    #[test]
    fn keys_are_spelled_as_asked() {
        let r = json!({"id": "1", "user_name": "AA", "registered_at": "x"});
        assert_eq!(spell_keys(&r, BodyKeys::Rest), r);
        assert_eq!(
            spell_keys(&r, BodyKeys::Example),
            json!({"id": "1", "UserName": "AA", "registered_at": "x"})
        );
        assert_eq!(
            spell_keys(&r, BodyKeys::Pascal),
            json!({"Id": "1", "UserName": "AA", "RegisteredAt": "x"})
        );
    }

    #[test]
    fn the_signature_is_base64_hmac_sha256() {
        // RFC 4231 test case 2.
        let data = b"what do ya want for nothing?";
        assert_eq!(
            sign(data, "Jefe"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
        let hex = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(sign_as(data, "Jefe", SignatureEncoding::Hex), hex);
        assert_eq!(
            sign_as(data, "Jefe", SignatureEncoding::Base64OfHex),
            Base64::encode_string(hex.as_bytes())
        );
    }
}
