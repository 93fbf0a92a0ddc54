//! Agency mode (a configuration with `[[pairs]]`): the home page is an overview of the pairs,
//! and each pair's pages, exactly those of the single form, live under `/pairs/{name}/`.
//!
//! Each pair's state file is read on its own: a pair whose file is missing or cannot be read
//! shows as such in the overview, `/api/pairs`, `/healthz` and `/metrics`, and never keeps the
//! other pairs from showing.

use std::path::PathBuf;
use std::time::Duration;

use askama::Template;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::health::{self, HealthPolicy, HealthReport, human};
use super::metrics::{self, Exposition};
use super::pages::Error;
use crate::config::Pair;
use crate::report::RunSummary;
use crate::store::{RunRecord, Store};

/// One pair as the dashboard serves it.
#[derive(Debug, Clone)]
pub struct PairSite {
    pub name: String,
    /// Its GHL sub-account.
    pub ghl_location: String,
    /// Its HotspotSystem locations; empty for all of them.
    pub hotspot_locations: Vec<String>,
    pub state_path: PathBuf,
    pub health: HealthPolicy,
    /// `[contacts] default_country`: how a phone typed into its guest search is read.
    pub default_country: String,
}

impl PairSite {
    /// The pair's settings; `health_max_age` as `serve --health-max-age` gives it.
    pub fn new(pair: &Pair, health_max_age: Option<Duration>) -> PairSite {
        let cfg = &pair.config;
        PairSite {
            name: pair.name.clone(),
            ghl_location: cfg.ghl.location_id.clone(),
            hotspot_locations: cfg.hotspot.locations.clone(),
            state_path: cfg.state.path.clone(),
            health: HealthPolicy::from_config(cfg, health_max_age),
            default_country: cfg.contacts.default_country.clone(),
        }
    }

    /// Where its pages live: `/pairs/{name}`, its overview at that very path (`/pairs/{name}/`
    /// redirects there). Names are lower-case letters, digits, `-` and `_`.
    pub fn prefix(&self) -> String {
        format!("/pairs/{}", self.name)
    }

    fn hotspot_text(&self) -> String {
        if self.hotspot_locations.is_empty() {
            "all".to_string()
        } else {
            self.hotspot_locations.join(", ")
        }
    }
}

/// What could be read of one pair's state.
#[derive(Debug)]
pub enum PairState {
    /// No state file yet: the pair has never synced.
    Missing,
    /// The file is there but cannot be used (corrupt, foreign, newer).
    Unreadable(String),
    Read(PairFacts),
}

/// What the overview shows of a pair whose state could be read.
#[derive(Debug)]
pub struct PairFacts {
    pub health: HealthReport,
    pub last_run: Option<RunRecord>,
    /// Records that failed in the newest run.
    pub last_run_failed: u64,
}

/// One pair and what its state says.
#[derive(Debug)]
pub struct PairStatus {
    pub site: PairSite,
    pub state: PairState,
}

impl PairStatus {
    pub fn healthy(&self) -> bool {
        matches!(&self.state, PairState::Read(f) if f.health.healthy)
    }

    /// Why the pair is not healthy, one line each (empty when it is).
    pub fn reasons(&self) -> Vec<String> {
        match &self.state {
            PairState::Missing => vec![format!(
                "no state database at {} yet: run `sync` first",
                self.site.state_path.display()
            )],
            PairState::Unreadable(e) => vec![format!("state database unreadable: {e}")],
            PairState::Read(f) => f.health.reasons(),
        }
    }
}

/// Reads one pair's state (read-only; a missing file is never created).
pub fn read(site: &PairSite, now: DateTime<Utc>) -> PairStatus {
    let state = if !site.state_path.is_file() {
        PairState::Missing
    } else {
        match read_facts(site, now) {
            Ok(facts) => PairState::Read(facts),
            Err(e) => PairState::Unreadable(e.to_string()),
        }
    };
    PairStatus {
        site: site.clone(),
        state,
    }
}

fn read_facts(site: &PairSite, now: DateTime<Utc>) -> Result<PairFacts, crate::store::StoreError> {
    let store = Store::open_read_only(&site.state_path)?;
    let health = health::evaluate(&store, &site.health, now)?;
    let last_run = store.runs(1)?.into_iter().next();
    let last_run_failed = last_run
        .as_ref()
        .map(|r| {
            let s: RunSummary = serde_json::from_value(r.summary.clone()).unwrap_or_default();
            s.kinds.values().map(|c| c.failed).sum()
        })
        .unwrap_or(0);
    Ok(PairFacts {
        health,
        last_run,
        last_run_failed,
    })
}

/// The metrics of every pair, each sample labelled with its pair.
pub fn metrics_text(sites: &[PairSite], now: DateTime<Utc>) -> String {
    let mut exposition = Exposition::default();
    for site in sites {
        let written = site.state_path.is_file()
            && Store::open_read_only(&site.state_path)
                .and_then(|store| {
                    metrics::write(&mut exposition, &store, &site.health, now, Some(&site.name))
                })
                .is_ok();
        if !written {
            metrics::write_unreadable(&mut exposition, &site.name);
        }
    }
    exposition.text()
}

/// The `/api/pairs` entry of one pair.
pub fn pair_json(p: &PairStatus) -> serde_json::Value {
    let prefix = p.site.prefix();
    let (state, error, health, last_run, failed) = match &p.state {
        PairState::Missing => ("missing", None, None, None, None),
        PairState::Unreadable(e) => ("unreadable", Some(e.clone()), None, None, None),
        PairState::Read(f) => (
            "ok",
            None,
            Some(&f.health),
            f.last_run.as_ref().map(|r| {
                json!({
                    "id": r.id,
                    "status": r.status.as_str(),
                    "dry_run": r.dry_run,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "failed": f.last_run_failed,
                })
            }),
            Some(f.last_run_failed),
        ),
    };
    json!({
        "name": p.site.name,
        "ghl_location_id": p.site.ghl_location,
        "hotspot_locations": p.site.hotspot_locations,
        "state": state,
        "error": error,
        "healthy": p.healthy(),
        "reasons": p.reasons(),
        "health": health,
        "last_run": last_run,
        "last_run_failed": failed,
        "links": {
            "pages": prefix,
            "api": format!("{prefix}/api/runs"),
            "health": format!("{prefix}/api/health"),
        },
    })
}

/// One line of the pairs table.
struct PairRow {
    name: String,
    href: String,
    ghl_location: String,
    hotspot: String,
    health: &'static str,
    reasons: Vec<String>,
    last_run: Option<RunCell>,
    failed: String,
}

struct RunCell {
    id: i64,
    href: String,
    status: &'static str,
    ago: String,
}

#[derive(Template)]
#[template(path = "dashboard/pairs.html")]
struct PairsPage {
    rows: Vec<PairRow>,
    healthy: usize,
    total: usize,
}

/// The home page of agency mode.
pub fn overview_page(pairs: &[PairStatus], now: DateTime<Utc>) -> Result<String, Error> {
    let rows: Vec<PairRow> = pairs
        .iter()
        .map(|p| {
            let prefix = p.site.prefix();
            let (health, last_run, failed) = match &p.state {
                PairState::Missing => ("no state", None, "—".to_string()),
                PairState::Unreadable(_) => ("unreadable", None, "—".to_string()),
                PairState::Read(f) => (
                    if f.health.healthy {
                        "healthy"
                    } else {
                        "unhealthy"
                    },
                    f.last_run.as_ref().map(|r| RunCell {
                        id: r.id,
                        href: format!("{prefix}/runs/{}", r.id),
                        status: r.status.as_str(),
                        ago: human((now - r.started_at).num_seconds()),
                    }),
                    f.last_run_failed.to_string(),
                ),
            };
            PairRow {
                name: p.site.name.clone(),
                href: prefix,
                ghl_location: p.site.ghl_location.clone(),
                hotspot: p.site.hotspot_text(),
                health,
                reasons: p.reasons(),
                last_run,
                failed,
            }
        })
        .collect();
    Ok(PairsPage {
        healthy: pairs.iter().filter(|p| p.healthy()).count(),
        total: pairs.len(),
        rows,
    }
    .render()?)
}

/// A pair's page as served under its prefix. The templates write site-absolute links
/// (`href="/runs/3"`, `action="/calls"`); under `/pairs/{name}` they must point into the pair.
/// No value a page shows can forge such a link: the escaper turns every `"` of a value into
/// `&#34;`, so `="/` only ever comes from a template. The navigation gains a way back to the
/// overview and the pair's name.
pub fn under_prefix(html: &str, prefix: &str, name: &str) -> String {
    let mut out = String::with_capacity(html.len() + 1024);
    let mut rest = html;
    while let Some(at) = rest.find("=\"/") {
        let (head, tail) = rest.split_at(at + 2);
        out.push_str(head);
        let attr_start = head.rfind(' ').map(|i| &head[i + 1..]).unwrap_or("");
        rest = tail;
        if attr_start == "href=\"" || attr_start == "action=\"" {
            out.push_str(prefix);
            // `href="/"`, the pair's overview, is the prefix itself.
            if rest.starts_with("/\"") {
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out.replacen(
        "<nav>",
        &format!(
            "<nav><a href=\"/\">All pairs</a><strong style=\"color:#fff;margin-right:16px\">{}</strong>",
            escape(name)
        ),
        1,
    )
}

/// Names are validated to be plain, but the page never trusts that.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_move_under_the_pair_and_values_stay() {
        let html = r#"<nav><a href="/">Overview</a><a href="/runs" class="on">Runs</a></nav><form action="/calls"></form><a href="/runs/3">#3</a><td>x=&#34;/evil</td><td>data-x="/y"</td>"#;
        let out = under_prefix(html, "/pairs/cafe", "cafe");
        assert!(
            out.contains(r#"<a href="/pairs/cafe">Overview</a>"#),
            "{out}"
        );
        assert!(out.contains(r#"href="/pairs/cafe/runs" class="on""#));
        assert!(out.contains(r#"action="/pairs/cafe/calls""#));
        assert!(out.contains(r#"href="/pairs/cafe/runs/3""#));
        assert!(out.contains("x=&#34;/evil"));
        assert!(out.contains(r#"data-x="/y""#), "only links move");
        assert!(out.starts_with(r#"<nav><a href="/">All pairs</a>"#));
    }
}
