//! What a dry run would have sent to GHL: the writes per kind and operation, as the planners
//! decided them, and the requests and time the real run would take at the configured rate limit.
//!
//! The writes are stored with the run (`runs.summary.planned`); the reads are the ones the dry
//! run made itself (it reads what the real run reads), counted from its API-call records, plus
//! those it left out because they only feed what it does not store (appointment lists).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{RunReport, RunSummary};
use crate::store::{Store, StoreError};

/// One kind of GHL write, as a request: what the real run would send once per count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    /// `POST` of a new record (contact, note, task, business).
    Create,
    /// `PUT` of changed fields (a contact, a business's name).
    Update,
    /// `DELETE` of a contact.
    Delete,
    /// `POST /contacts/{id}/tags`: tags added (the deletion tag included).
    AddTags,
    /// `DELETE /contacts/{id}/tags`.
    RemoveTags,
    /// `POST /contacts/bulk/business`: one call per batch of contacts.
    Associate,
}

impl WriteOp {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOp::Create => "create",
            WriteOp::Update => "update",
            WriteOp::Delete => "delete",
            WriteOp::AddTags => "add_tags",
            WriteOp::RemoveTags => "remove_tags",
            WriteOp::Associate => "associate",
        }
    }
}

/// The writes one kind's step planned, by operation.
pub type KindWrites = BTreeMap<WriteOp, u64>;

/// What a dry run stores about what it would have sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunPlan {
    /// Kind (`contact`, `note`, ...) → operation → requests.
    pub kinds: BTreeMap<String, KindWrites>,
    /// GHL reads the real run makes that the dry run left out (appointment lists).
    pub skipped_reads: u64,
    /// `ghl.rate_limit` and `ghl.rate_window_secs` when it ran.
    pub ghl_rate_limit: u32,
    pub ghl_rate_window_secs: u64,
    /// `ghl.daily_reserve` when it ran.
    #[serde(default)]
    pub ghl_daily_reserve: u64,
}

impl DryRunPlan {
    /// Adds one kind's planned writes (kinds with none are listed too: "nothing to send" is news).
    pub fn add(&mut self, kind: &str, writes: &KindWrites, skipped_reads: u64) {
        let entry = self.kinds.entry(kind.to_string()).or_default();
        for (op, n) in writes {
            *entry.entry(*op).or_default() += n;
        }
        self.skipped_reads += skipped_reads;
    }

    pub fn writes(&self) -> u64 {
        self.kinds.values().flat_map(|k| k.values()).sum()
    }

    /// The estimate, given the GHL requests the dry run made (all reads: it sends no write) and
    /// the daily quota GHL last said was left.
    pub fn estimate(&self, ghl_reads_made: u64, daily_remaining: Option<u64>) -> DryRunEstimate {
        let writes = self.writes();
        let reads = ghl_reads_made + self.skipped_reads;
        let requests = writes + reads;
        let limit = u64::from(self.ghl_rate_limit.max(1));
        let window = self.ghl_rate_window_secs.max(1);
        // Whole windows: the limiter lets `limit` requests through per window, then waits.
        let seconds = requests.div_ceil(limit).saturating_sub(1) * window;
        DryRunEstimate {
            writes,
            kinds: self
                .kinds
                .iter()
                .map(|(k, ops)| (k.clone(), ops.values().sum()))
                .collect(),
            writes_by_kind: self.kinds.clone(),
            reads,
            requests,
            seconds,
            rate_limit: self.ghl_rate_limit,
            rate_window_secs: self.ghl_rate_window_secs,
            daily_remaining,
            daily_reserve: self.ghl_daily_reserve,
        }
    }
}

/// What `sync --dry-run` prints: the writes the real run would send, per kind and operation,
/// and the GHL requests and time it would take. `sync --dry-run --format json` prints it as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunEstimate {
    /// GHL writes in all.
    pub writes: u64,
    /// Kind → its GHL writes.
    pub kinds: BTreeMap<String, u64>,
    /// Kind → operation → GHL writes.
    pub writes_by_kind: BTreeMap<String, KindWrites>,
    /// GHL reads: the ones this dry run made, and the ones it left out.
    pub reads: u64,
    /// `writes + reads`.
    pub requests: u64,
    /// The time the GHL rate limit alone imposes on `requests` (latency, retries and the
    /// HotspotSystem reads, about as long as the dry run's own, come on top).
    pub seconds: u64,
    pub rate_limit: u32,
    pub rate_window_secs: u64,
    /// GHL's daily quota left, as it last said (`null` when it did not).
    pub daily_remaining: Option<u64>,
    /// `ghl.daily_reserve`: writing stops when only this many requests of the day are left.
    pub daily_reserve: u64,
}

impl DryRunEstimate {
    /// The requests the real run may send before the daily-quota reserve stops it, when GHL said
    /// how many are left and that is fewer than it needs.
    pub fn quota_short(&self) -> Option<u64> {
        let usable = self.daily_remaining?.saturating_sub(self.daily_reserve);
        (usable < self.requests).then_some(usable)
    }

    /// A few lines for a terminal, after the run report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\nWould send {} write(s) to GHL:", self.writes);
        for (kind, ops) in &self.writes_by_kind {
            let parts: Vec<String> = ops
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(op, n)| format!("{} {n}", op.as_str()))
                .collect();
            let _ = writeln!(
                out,
                "  {kind:<13}{:>6}  {}",
                self.kinds.get(kind).copied().unwrap_or(0),
                if parts.is_empty() {
                    "nothing to send".to_string()
                } else {
                    parts.join(", ")
                }
            );
        }
        let _ = writeln!(
            out,
            "Estimated GHL requests: {} ({} writes + {} reads, the reads as this dry run made them plus the appointment lists it left out).",
            self.requests, self.writes, self.reads
        );
        let _ = writeln!(
            out,
            "Estimated time: at least {} at ghl.rate_limit = {} per {} s (the rate limit alone; latency and retries come on top).",
            duration_words(self.seconds),
            self.rate_limit,
            self.rate_window_secs
        );
        match (self.daily_remaining, self.quota_short()) {
            (Some(left), Some(usable)) => {
                let _ = writeln!(
                    out,
                    "GHL's daily quota: {left} left, ghl.daily_reserve = {}: the run would stop writing after about {usable} requests and leave the rest to the next day.",
                    self.daily_reserve
                );
            }
            (Some(left), None) => {
                let _ = writeln!(
                    out,
                    "GHL's daily quota: {left} left, ghl.daily_reserve = {}: enough.",
                    self.daily_reserve
                );
            }
            (None, _) => {}
        }
        out
    }
}

/// What a dry run would send and how long it would take, from what it stored: the writes it
/// planned and the GHL requests it made (all reads: it sends no write). `None` for a real run.
pub fn load_estimate(store: &Store, r: &RunReport) -> Result<Option<DryRunEstimate>, StoreError> {
    let Some(run) = store.run(r.run_id)? else {
        return Ok(None);
    };
    let summary: RunSummary = serde_json::from_value(run.summary).unwrap_or_default();
    let ghl = r.api.get("ghl");
    let reads = ghl.map(|u| u.requests).unwrap_or(0);
    let left = ghl.and_then(|u| u.daily_remaining);
    Ok(summary.planned.map(|p| p.estimate(reads, left)))
}

/// `0 s`, `42 s`, `3 min 20 s`, `1 h 5 min`.
fn duration_words(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_adds_the_reads_and_waits_whole_windows() {
        let mut p = DryRunPlan {
            ghl_rate_limit: 100,
            ghl_rate_window_secs: 10,
            ..Default::default()
        };
        p.add("contact", &[(WriteOp::Create, 150)].into(), 0);
        p.add(
            "business",
            &[(WriteOp::Create, 1), (WriteOp::Associate, 2)].into(),
            0,
        );
        p.add("appointment", &KindWrites::new(), 7);
        let e = p.estimate(40, Some(250_000));
        assert_eq!(e.writes, 153);
        assert_eq!(e.kinds["business"], 3);
        assert_eq!(e.kinds["appointment"], 0);
        assert_eq!(e.reads, 47);
        assert_eq!(e.requests, 200);
        // 200 requests at 100 per 10 s: the first 100 at once, the next 100 a window later.
        assert_eq!(e.seconds, 10);
        assert_eq!(p.estimate(41, None).seconds, 20);
        assert_eq!(e.quota_short(), None);
        p.ghl_daily_reserve = 1000;
        let short = p.estimate(40, Some(1150));
        assert_eq!(short.quota_short(), Some(150));
        assert!(
            short
                .to_text()
                .contains("stop writing after about 150 requests")
        );
        let text = e.to_text();
        assert!(text.contains("Would send 153 write(s)"), "{text}");
        assert!(text.contains("create 1, associate 2"), "{text}");
        assert!(text.contains("nothing to send"), "{text}");
        assert!(
            text.contains("250000 left, ghl.daily_reserve = 0: enough"),
            "{text}"
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_words(42), "42 s");
        assert_eq!(duration_words(200), "3 min 20 s");
        assert_eq!(duration_words(3900), "1 h 5 min");
    }
}
