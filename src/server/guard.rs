//! Per-request bounds: a whole request (body read included) gets `request_timeout`, and a body
//! larger than `max_body_bytes` is refused with 413 before any handler sees it (by its
//! `Content-Length`, or while it streams in when there is none).

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Limits;

/// `app` wrapped in the request bounds of `limits`.
pub fn layer(app: Router, limits: &Limits) -> Router {
    let timeout = limits.request_timeout;
    let max = limits.max_body_bytes;
    app.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| bounded(req, next, timeout, max),
    ))
    .layer(DefaultBodyLimit::max(
        usize::try_from(max).unwrap_or(usize::MAX),
    ))
}

async fn bounded(req: Request, next: Next, timeout: std::time::Duration, max: u64) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request bodies are limited to {max} bytes\n"),
        )
            .into_response();
    }
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {} s\n", timeout.as_secs()),
        )
            .into_response(),
    }
}
