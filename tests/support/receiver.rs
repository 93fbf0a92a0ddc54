//! A webhook receiver on 127.0.0.1: records every POST (path and JSON body) and answers 200, as
//! Slack's incoming webhooks do, or the status a test sets (Teams workflows answer 202; a revoked
//! webhook 404).

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Post {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: serde_json::Value,
}

/// What the handler shares with the test.
#[derive(Clone, Default)]
struct Shared {
    posts: Arc<Mutex<Vec<Post>>>,
    status: Arc<AtomicU16>,
}

pub struct Receiver {
    pub addr: std::net::SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Shared::default();
        shared.status.store(200, Ordering::SeqCst);
        let app = Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared, task }
    }

    /// The status later posts are answered with (still recorded).
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// A URL on this receiver whose path looks like a webhook's secret token.
    pub fn url(&self, token_path: &str) -> String {
        format!("http://{}{token_path}", self.addr)
    }

    pub fn posts(&self) -> Vec<Post> {
        self.shared.posts.lock().unwrap().clone()
    }

    /// The `text` of every post so far.
    pub fn texts(&self) -> Vec<String> {
        self.posts()
            .iter()
            .map(|p| p.body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

async fn record(State(shared): State<Shared>, req: Request) -> StatusCode {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    shared.posts.lock().unwrap().push(Post {
        method,
        path,
        content_type,
        body,
    });
    StatusCode::from_u16(shared.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK)
}
