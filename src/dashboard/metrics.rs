//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Everything is read from the state database, so the numbers cover the runs still recorded
//! (`report.keep_days`): they are gauges, not counters, because pruning can lower them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::health::{self, HealthPolicy};
use crate::model::Kind;
use crate::report::{self, RunSummary};
use crate::store::{Store, StoreError, WebhookQueue};

/// Escapes a label value (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition being written: families in the order they first appear, each with its
/// samples, so that the samples of several pairs share one `# HELP`/`# TYPE` header.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
}

struct Family {
    name: String,
    help: String,
    samples: Vec<String>,
}

impl Exposition {
    /// The text: every family's header, then its samples.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge", f.name, f.help, f.name);
            for s in &f.samples {
                let _ = writeln!(out, "{s}");
            }
        }
        out
    }

    fn family_mut(&mut self, name: &str, help: &str) -> &mut Family {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(at) => at,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[at]
    }
}

/// Writes into an [`Exposition`], every sample carrying `base` labels first (the pair's).
struct Out<'a> {
    exposition: &'a mut Exposition,
    base: &'a [(&'a str, &'a str)],
    /// The family the samples that follow belong to.
    current: String,
}

impl Out<'_> {
    fn family(&mut self, name: &str, help: &str) {
        self.exposition.family_mut(name, help);
        self.current = name.to_string();
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut line = name.to_string();
        let all: Vec<String> = self
            .base
            .iter()
            .chain(labels)
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        if !all.is_empty() {
            let _ = write!(line, "{{{}}}", all.join(","));
        }
        let _ = write!(line, " {value}");
        debug_assert_eq!(self.current, name, "a sample follows its family");
        self.exposition.family_mut(name, "").samples.push(line);
    }
}

/// The samples of one pair whose state could not be read: it is counted as unhealthy.
pub fn write_unreadable(exposition: &mut Exposition, pair: &str) {
    let base = [("pair", pair)];
    let mut o = Out {
        exposition,
        base: &base,
        current: String::new(),
    };
    state_readable(&mut o, false);
    o.family("hgs_healthy", HEALTHY_HELP);
    o.sample("hgs_healthy", &[], 0.0);
}

const HEALTHY_HELP: &str =
    "1 when every scheduled job completed a run within the allowed age (see /healthz).";

fn state_readable(o: &mut Out<'_>, readable: bool) {
    o.family(
        "hgs_state_readable",
        "1 when the pair's state database could be read (agency mode).",
    );
    o.sample("hgs_state_readable", &[], if readable { 1.0 } else { 0.0 });
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// Renders all metrics at `now`.
pub fn render(
    store: &Store,
    policy: &HealthPolicy,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let mut exposition = Exposition::default();
    write(&mut exposition, store, policy, now, None)?;
    Ok(exposition.text())
}

/// Writes the metrics of one state database; with `pair`, every sample is labelled with it
/// and `hgs_state_readable` says the state was read.
pub fn write(
    exposition: &mut Exposition,
    store: &Store,
    policy: &HealthPolicy,
    now: DateTime<Utc>,
    pair: Option<&str>,
) -> Result<(), StoreError> {
    let base: Vec<(&str, &str)> = pair.map(|p| ("pair", p)).into_iter().collect();
    let mut o = Out {
        exposition,
        base: &base,
        current: String::new(),
    };
    if pair.is_some() {
        state_readable(&mut o, true);
    }

    o.family(
        "hgs_runs",
        "Runs recorded in the state database, by status.",
    );
    let counts = store.run_status_counts()?;
    for status in ["running", "succeeded", "partial", "failed", "aborted"] {
        let n = counts
            .iter()
            .find(|(s, _)| s == status)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        o.sample("hgs_runs", &[("status", status)], n as f64);
    }

    // Per-kind totals over recorded, non-dry runs.
    let runs = store.runs(u32::MAX as usize)?;
    let mut writes: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut quota: Option<u64> = None;
    for run in &runs {
        let summary: RunSummary = serde_json::from_value(run.summary.clone()).unwrap_or_default();
        if quota.is_none() {
            quota = summary.ghl_daily_remaining;
        }
        if run.dry_run {
            continue;
        }
        for (kind, c) in &summary.kinds {
            *writes.entry(kind.clone()).or_default() += c.writes();
            *failures.entry(kind.clone()).or_default() += c.failed;
        }
    }
    for k in Kind::ALL {
        writes.entry(k.as_str().to_string()).or_default();
        failures.entry(k.as_str().to_string()).or_default();
    }
    o.family(
        "hgs_writes",
        "Records created, updated or deleted in GHL by the recorded runs (dry runs excluded), by kind.",
    );
    for (k, n) in &writes {
        o.sample("hgs_writes", &[("kind", k)], *n as f64);
    }
    o.family(
        "hgs_failures",
        "Records that failed in the recorded runs (dry runs excluded), by kind.",
    );
    for (k, n) in &failures {
        o.sample("hgs_failures", &[("kind", k)], *n as f64);
    }

    if let Some(last) = runs.first() {
        o.family("hgs_last_run_id", "Id of the newest run.");
        o.sample("hgs_last_run_id", &[], last.id as f64);
        o.family(
            "hgs_last_run_start_timestamp_seconds",
            "Start time of the newest run (Unix seconds).",
        );
        o.sample(
            "hgs_last_run_start_timestamp_seconds",
            &[],
            secs(last.started_at),
        );
        o.family("hgs_last_run_status", "1 for the status of the newest run.");
        o.sample(
            "hgs_last_run_status",
            &[("status", last.status.as_str())],
            1.0,
        );
        if let Some(r) = report::load_window(store, last.id, report::ItemWindow::NONE)? {
            o.family(
                "hgs_last_run_api_requests",
                "API requests of the newest run, by API.",
            );
            for (api, u) in &r.api {
                o.sample(
                    "hgs_last_run_api_requests",
                    &[("api", api)],
                    u.requests as f64,
                );
            }
            o.family(
                "hgs_last_run_api_rate_limited",
                "429 answers in the newest run, by API.",
            );
            for (api, u) in &r.api {
                o.sample(
                    "hgs_last_run_api_rate_limited",
                    &[("api", api)],
                    u.rate_limited as f64,
                );
            }
        }
    }

    o.family(
        "hgs_last_success_timestamp_seconds",
        "End time of the newest completed (succeeded or partial, not dry) run covering the kind (Unix seconds); absent when none.",
    );
    for k in Kind::ALL {
        if let Some(run) = store.last_successful_run(Some(k), false)? {
            let at = run.finished_at.unwrap_or(run.started_at);
            o.sample(
                "hgs_last_success_timestamp_seconds",
                &[("kind", k.as_str())],
                secs(at),
            );
        }
    }

    if let Some(q) = quota {
        o.family(
            "hgs_ghl_daily_quota_remaining",
            "GHL daily request quota left, as last reported at the end of a run.",
        );
        o.sample("hgs_ghl_daily_quota_remaining", &[], q as f64);
    }

    o.family("hgs_links", "Linked records, by kind and status.");
    for (kind, status, n) in store.link_counts()? {
        o.sample(
            "hgs_links",
            &[("kind", kind.as_str()), ("status", status.as_str())],
            n as f64,
        );
    }

    o.family(
        "hgs_parked_conflicts",
        "Conflicts parked for a person by the newest run of each kind.",
    );
    o.sample(
        "hgs_parked_conflicts",
        &[],
        store.parked_conflicts()?.len() as f64,
    );

    type Value = fn(&WebhookQueue) -> Option<f64>;
    let webhook_families: [(&str, &str, Value); 3] = [
        (
            "hgs_webhook_events_pending",
            "Webhook events received and not yet processed, by sender.",
            |q| Some(q.pending as f64),
        ),
        (
            "hgs_webhook_events_received_last_day",
            "Webhook events received in the last 24 hours, by sender.",
            |q| Some(q.received_last_day as f64),
        ),
        (
            "hgs_webhook_last_received_timestamp_seconds",
            "When the newest webhook event was received (Unix seconds), by sender.",
            |q| q.last_received_at.map(secs),
        ),
    ];
    let queues = store.webhook_queues(now)?;
    for (name, help, value) in webhook_families.iter().filter(|_| !queues.is_empty()) {
        o.family(name, help);
        for q in &queues {
            if let Some(v) = value(q) {
                o.sample(name, &[("source", &q.source)], v);
            }
        }
    }

    let h = health::evaluate(store, policy, now)?;
    o.family("hgs_healthy", HEALTHY_HELP);
    o.sample("hgs_healthy", &[], if h.healthy { 1.0 } else { 0.0 });
    o.family(
        "hgs_health_max_age_seconds",
        "Allowed age of the last successful run of each scheduled job.",
    );
    o.sample("hgs_health_max_age_seconds", &[], h.max_age_seconds as f64);
    Ok(())
}
