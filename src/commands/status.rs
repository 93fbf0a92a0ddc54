//! `status`: links per kind, last run per kind, the API quota last seen, onboarding-task
//! completion, parked conflicts and recent errors — one screen an operator can read at a glance.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::config::Config;
use crate::model::Kind;
use crate::report::RunSummary;
use crate::store::{LinkStatus, Store};

use super::EXIT_OK;

pub fn run(cfg: &Config) -> anyhow::Result<u8> {
    let path = &cfg.state.path;
    if !path.exists() {
        println!("No state yet at {}: run `sync` first.", path.display());
        return Ok(EXIT_OK);
    }
    let store = Store::open(path)?;
    print!("{}", render(&store, cfg)?);
    Ok(EXIT_OK)
}

fn render(store: &Store, cfg: &Config) -> anyhow::Result<String> {
    let mut out = String::new();
    let _ = writeln!(out, "State: {}", cfg.state.path.display());

    let mut links: BTreeMap<Kind, BTreeMap<&str, u64>> = BTreeMap::new();
    for (kind, status, n) in store.link_counts()? {
        let label = match status {
            LinkStatus::Active => "linked",
            LinkStatus::Tombstoned => "deleted in GHL (not recreated)",
            LinkStatus::Parked => "parked",
        };
        *links.entry(kind).or_default().entry(label).or_default() += n;
    }
    let _ = writeln!(out, "\nLinks:");
    if links.is_empty() {
        let _ = writeln!(out, "  none yet");
    }
    for (kind, counts) in &links {
        let parts: Vec<String> = counts.iter().map(|(l, n)| format!("{n} {l}")).collect();
        let _ = writeln!(out, "  {:<12} {}", kind.as_str(), parts.join(", "));
    }

    let _ = writeln!(out, "\nLast run per kind:");
    for kind in Kind::ALL {
        if let Some(run) = store.latest_run_for(kind)? {
            let _ = writeln!(
                out,
                "  {:<12} run {} {} at {}{}",
                kind.as_str(),
                run.id,
                run.status.as_str(),
                run.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                if run.dry_run { " (dry run)" } else { "" }
            );
        }
    }
    if let Some(run) = store.latest_run()? {
        let summary: RunSummary = serde_json::from_value(run.summary).unwrap_or_default();
        if let Some(left) = summary.ghl_daily_remaining {
            let _ = writeln!(
                out,
                "\nGHL daily quota left at the end of run {}: {left}",
                run.id
            );
        }
    }

    let progress = store.task_progress()?;
    if !progress.is_empty() {
        let _ = writeln!(out, "\nOnboarding tasks:");
        for p in progress {
            let pct = if p.total == 0 {
                0.0
            } else {
                100.0 * p.completed as f64 / p.total as f64
            };
            let _ = writeln!(
                out,
                "  {:<20} {}/{} completed ({pct:.0}%), {} edited by CRM users",
                p.rule, p.completed, p.total, p.edited
            );
        }
    }

    let parked = store.parked_conflicts()?;
    let _ = writeln!(out, "\nParked conflicts: {}", parked.len());
    for row in parked.iter().take(20) {
        let i = &row.item;
        let _ = writeln!(
            out,
            "  - {} {}: {}",
            i.kind.as_str(),
            i.source_id,
            i.reason.as_deref().unwrap_or("-")
        );
    }
    let failures = store.recent_failures(5, 20)?;
    let _ = writeln!(out, "Failures in the last 5 runs: {}", failures.len());
    for row in &failures {
        let i = &row.item;
        let _ = writeln!(
            out,
            "  - run {} {} {}: {}",
            row.run_id,
            i.kind.as_str(),
            i.source_id,
            i.reason.as_deref().unwrap_or("-")
        );
    }
    Ok(out)
}
