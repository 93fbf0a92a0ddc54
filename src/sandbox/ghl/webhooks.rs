//! The GHL emulator's webhooks (reference §11): once configured with a URL, a change made
//! through the emulator's API (a contact updated, tagged or deleted, a task completed or
//! deleted, a note deleted) is POSTed there at once as `{"type", "locationId", "id",
//! "timestamp", "webhookId", ...record fields}`, signed, and sent again on any answer but 2xx
//! (up to `max_attempts`). A test plays a user of GHL's UI with [`GhlWebhookSender::emit`].
//!
//! What the reference leaves open is a knob: which header signs (the Ed25519 `x-ghl-signature`,
//! the legacy RSA `x-wh-signature`, or both), what is signed (the bytes sent, or, as the guide's
//! Node sample suggests, `JSON.stringify` of the parsed body while the wire carries it
//! pretty-printed), and how `timestamp` is written (RFC 3339 or epoch milliseconds).
//!
//! The RSA key is a committed test key (`TEST-ONLY-webhook-rsa-key.pk8.der`), never GHL's; the
//! Ed25519 key is generated per sender. This module signs on its own: it shares no code with
//! the product's receiver, so a mistake there cannot hide behind the same mistake here.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use chrono::{SecondsFormat, Utc};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Map, Value, json};

/// The test RSA key (PKCS#8 DER): for tests only, never a product default.
pub const TEST_RSA_PKCS8: &[u8] = include_bytes!("TEST-ONLY-webhook-rsa-key.pk8.der");

/// Which headers carry a signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scheme {
    /// `x-ghl-signature`, Ed25519.
    #[default]
    Ed25519,
    /// `x-wh-signature`, RSA-SHA256 (the legacy header).
    Rsa,
    /// Both headers.
    Both,
}

/// What the signature covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SignedBytes {
    /// The body as sent (compact JSON).
    #[default]
    Raw,
    /// The compact serialisation, while the body is sent pretty-printed.
    Compact,
}

/// How `timestamp` is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimestampForm {
    /// `2026-12-02T18:00:00.000Z`.
    #[default]
    Rfc3339,
    /// Epoch milliseconds, a number.
    EpochMillis,
}

/// The sender's knobs.
#[derive(Debug, Clone)]
pub struct GhlWebhookOptions {
    /// Where events go (the Marketplace app's webhook URL).
    pub url: String,
    pub scheme: Scheme,
    pub signed: SignedBytes,
    pub timestamp: TimestampForm,
    /// Added to the clock for `timestamp` (a negative one plays a delayed or replayed body).
    pub clock_offset: chrono::Duration,
    /// Sends of one event at most.
    pub max_attempts: u32,
    /// Pause before a send again.
    pub retry_after: Duration,
    pub timeout: Duration,
}

impl GhlWebhookOptions {
    pub fn new(url: impl Into<String>) -> GhlWebhookOptions {
        GhlWebhookOptions {
            url: url.into(),
            scheme: Scheme::default(),
            signed: SignedBytes::default(),
            timestamp: TimestampForm::default(),
            clock_offset: chrono::Duration::zero(),
            max_attempts: 3,
            retry_after: Duration::from_millis(200),
            timeout: Duration::from_secs(10),
        }
    }
}

/// One POST as the sender made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhlDelivery {
    pub event_type: String,
    pub record_id: String,
    pub webhook_id: String,
    /// 1 for the first send.
    pub attempt: u32,
    /// The answer's status; `None` when none came.
    pub status: Option<u16>,
}

/// A signed request, kept so that a test can replay it byte for byte.
#[derive(Clone)]
struct Signed {
    webhook_id: String,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

struct Keys {
    rsa: RsaKeyPair,
    ed25519: Ed25519KeyPair,
}

#[derive(Default)]
struct State {
    options: Option<GhlWebhookOptions>,
    sent: Vec<Signed>,
    log: Vec<GhlDelivery>,
    next_id: u64,
}

/// The emulator's GHL webhook sender.
pub struct GhlWebhookSender {
    keys: Keys,
    state: Mutex<State>,
}

impl Default for GhlWebhookSender {
    fn default() -> Self {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .expect("the system RNG gives an Ed25519 key");
        GhlWebhookSender {
            keys: Keys {
                rsa: RsaKeyPair::from_pkcs8(TEST_RSA_PKCS8).expect("the test RSA key parses"),
                ed25519: Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("a generated key parses"),
            },
            state: Mutex::new(State::default()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GhlWebhookSender {
    /// Sends events to `options.url` from now on.
    pub fn configure(&self, options: GhlWebhookOptions) {
        lock(&self.state).options = Some(options);
    }

    /// The RSA public key, PKCS#1 `RSAPublicKey` DER, for the receiver's configuration.
    pub fn rsa_public_key_der(&self) -> Vec<u8> {
        self.keys.rsa.public_key().as_ref().to_vec()
    }

    /// The Ed25519 public key's 32 bytes.
    pub fn ed25519_public_key(&self) -> Vec<u8> {
        self.keys.ed25519.public_key().as_ref().to_vec()
    }

    /// Every POST made so far, in order.
    pub fn deliveries(&self) -> Vec<GhlDelivery> {
        lock(&self.state).log.clone()
    }

    /// After a successful API call: the event it makes, if any, is sent.
    pub(crate) fn after_api_call(
        self: &Arc<Self>,
        location_id: &str,
        method: &str,
        path: &str,
        answer: &Value,
    ) {
        if lock(&self.state).options.is_none() {
            return;
        }
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (event_type, record) = match (method, segs.as_slice()) {
            ("PUT", ["contacts", id]) => ("ContactUpdate", contact(answer, id)),
            ("POST" | "DELETE", ["contacts", id, "tags"]) => {
                ("ContactTagUpdate", json!({"id": id}))
            }
            ("DELETE", ["contacts", id]) => ("ContactDelete", json!({"id": id})),
            ("PUT", ["contacts", _, "tasks", _] | ["contacts", _, "tasks", _, "completed"])
                if answer["task"]["completed"] == json!(true) =>
            {
                ("TaskComplete", answer["task"].clone())
            }
            ("DELETE", ["contacts", cid, "tasks", tid]) => {
                ("TaskDelete", json!({"id": tid, "contactId": cid}))
            }
            ("DELETE", ["contacts", cid, "notes", nid]) => {
                ("NoteDelete", json!({"id": nid, "contactId": cid}))
            }
            _ => return,
        };
        self.emit(location_id, event_type, record);
    }

    /// Sends `event_type` about `record` (its fields; `id` among them) as GHL would, e.g. for a
    /// change a user made in GHL's UI. Nothing happens unless configured.
    pub fn emit(self: &Arc<Self>, location_id: &str, event_type: &str, record: Value) {
        let Some(signed) = self.sign(location_id, event_type, record) else {
            return;
        };
        let me = Arc::clone(self);
        let (event_type, record_id) = (event_type.to_string(), signed.1);
        tokio::spawn(async move { me.deliver(signed.0, event_type, record_id).await });
    }

    /// Sends an earlier event again, byte for byte (a replay); its sends are logged with the
    /// type `replay`. `false` when no event has that id.
    pub fn replay(self: &Arc<Self>, webhook_id: &str) -> bool {
        let found = lock(&self.state)
            .sent
            .iter()
            .find(|s| s.webhook_id == webhook_id)
            .cloned();
        let Some(signed) = found else { return false };
        let me = Arc::clone(self);
        tokio::spawn(async move {
            me.deliver(signed, "replay".to_string(), String::new())
                .await
        });
        true
    }

    fn sign(&self, location_id: &str, event_type: &str, record: Value) -> Option<(Signed, String)> {
        let (options, n) = {
            let mut st = lock(&self.state);
            st.next_id += 1;
            (st.options.clone()?, st.next_id)
        };
        let at = Utc::now() + options.clock_offset;
        let mut payload: Map<String, Value> = match record {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let record_id = payload
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let webhook_id = format!("emu-wh-{n:08}-{}", at.timestamp_millis());
        payload.insert("type".into(), json!(event_type));
        payload.insert("locationId".into(), json!(location_id));
        payload.insert("webhookId".into(), json!(webhook_id));
        payload.insert(
            "timestamp".into(),
            match options.timestamp {
                TimestampForm::Rfc3339 => json!(at.to_rfc3339_opts(SecondsFormat::Millis, true)),
                TimestampForm::EpochMillis => json!(at.timestamp_millis()),
            },
        );
        let payload = Value::Object(payload);
        let compact = serde_json::to_vec(&payload).unwrap_or_default();
        let body = match options.signed {
            SignedBytes::Raw => compact.clone(),
            SignedBytes::Compact => serde_json::to_vec_pretty(&payload).unwrap_or_default(),
        };
        let mut headers = Vec::new();
        if matches!(options.scheme, Scheme::Ed25519 | Scheme::Both) {
            let sig = self.keys.ed25519.sign(&compact);
            headers.push(("x-ghl-signature", Base64::encode_string(sig.as_ref())));
        }
        if matches!(options.scheme, Scheme::Rsa | Scheme::Both) {
            let mut sig = vec![0; self.keys.rsa.public().modulus_len()];
            self.keys
                .rsa
                .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), &compact, &mut sig)
                .ok()?;
            headers.push(("x-wh-signature", Base64::encode_string(&sig)));
        }
        let signed = Signed {
            webhook_id,
            body,
            headers,
        };
        lock(&self.state).sent.push(signed.clone());
        Some((signed, record_id))
    }

    async fn deliver(&self, signed: Signed, event_type: String, record_id: String) {
        let Some(options) = lock(&self.state).options.clone() else {
            return;
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let Ok(client) = reqwest::Client::builder().timeout(options.timeout).build() else {
            return;
        };
        for attempt in 1..=options.max_attempts.max(1) {
            let mut req = client
                .post(&options.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(signed.body.clone());
            for (name, value) in &signed.headers {
                req = req.header(*name, value);
            }
            let status = req.send().await.ok().map(|r| r.status().as_u16());
            lock(&self.state).log.push(GhlDelivery {
                event_type: event_type.clone(),
                record_id: record_id.clone(),
                webhook_id: signed.webhook_id.clone(),
                attempt,
                status,
            });
            if status.is_some_and(|s| (200..300).contains(&s)) {
                return;
            }
            tokio::time::sleep(options.retry_after).await;
        }
    }
}

/// A contact event's record: the API's answer's contact, else its id alone.
fn contact(answer: &Value, id: &str) -> Value {
    match &answer["contact"] {
        Value::Object(m) => {
            let mut m = m.clone();
            m.insert("id".into(), json!(id));
            Value::Object(m)
        }
        _ => json!({"id": id}),
    }
}
