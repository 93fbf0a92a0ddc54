//! The one HTTP policy both API clients use (DESIGN.md §6).

use serde::{Deserialize, Serialize};

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
}
