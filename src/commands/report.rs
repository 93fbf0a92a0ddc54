//! `report [RUN|latest|list] [--format text|json|html] [--output FILE]`.

use std::io::Write;

use anyhow::{Context, bail};

use crate::cli::{ReportArgs, ReportFormat};
use crate::config::Config;
use crate::report::{self, html};
use crate::store::Store;

use super::EXIT_OK;

/// A run id that is not in the state database: never run, or pruned since (exit 5).
#[derive(Debug, thiserror::Error)]
#[error("run {0} is not in the state database (`report list` shows the runs it keeps)")]
pub struct UnknownRun(pub i64);

pub fn run(cfg: &Config, args: &ReportArgs) -> anyhow::Result<u8> {
    let store = Store::open_read_only(&cfg.state.path)?;
    let text = match args.run.as_deref() {
        Some("list") => list(&store, args.format)?,
        _ if args.last.is_some() => last_n(&store, cfg, args.last.unwrap_or(1), args.format)?,
        None | Some("latest") => {
            let Some(run) = store.latest_run()? else {
                bail!(
                    "no run recorded yet in {}; run `sync` first",
                    cfg.state.path.display()
                );
            };
            render(&store, cfg, run.id, args.format)?
        }
        Some(id) => {
            let id: i64 = id
                .parse()
                .with_context(|| format!("`{id}` is not a run id, `latest` or `list`"))?;
            render(&store, cfg, id, args.format)?
        }
    };
    match &args.output {
        Some(path) => write_private(path, text.as_bytes())
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(EXIT_OK)
}

/// Writes `bytes` to `path` readable by its owner only: a report holds guests' names, emails
/// and phones. An existing file is made private before anything is written into it.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut file = opts.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        opts.open(path)?.write_all(bytes)
    }
}

fn render(store: &Store, cfg: &Config, id: i64, format: ReportFormat) -> anyhow::Result<String> {
    let Some(mut r) = report::load(store, id)? else {
        return Err(UnknownRun(id).into());
    };
    cfg.report_personal_data().report(&mut r);
    Ok(match format {
        // A dry run's: with what it would have sent.
        ReportFormat::Text => match report::dry_run::load_estimate(store, &r)? {
            Some(e) => r.to_text() + &e.to_text(),
            None => r.to_text(),
        },
        ReportFormat::Json => r.to_json() + "\n",
        ReportFormat::Html => {
            html::render_run_with(&r, &html::load_recent(store, 20)?, cfg.report.max_items)?
        }
    })
}

fn last_n(store: &Store, cfg: &Config, n: usize, format: ReportFormat) -> anyhow::Result<String> {
    let mut reports = html::load_recent(store, n.max(1))?;
    for r in &mut reports {
        cfg.report_personal_data().report(r);
    }
    if reports.is_empty() {
        bail!(
            "no run recorded yet in {}; run `sync` first",
            cfg.state.path.display()
        );
    }
    Ok(match format {
        ReportFormat::Html => html::render_runs(&reports, cfg.report.max_items)?,
        ReportFormat::Json => serde_json::to_string_pretty(&reports)? + "\n",
        ReportFormat::Text => reports
            .iter()
            .map(|r| r.to_text())
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// One row of `report list`.
#[derive(Debug, serde::Serialize)]
struct ListedRun {
    id: i64,
    started_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
    status: &'static str,
    mode: &'static str,
    kinds: Vec<crate::model::Kind>,
    /// How many runs this row stands for: 1, or more for an hour's no-op runs thinned to one.
    stands_for: u64,
}

fn list(store: &Store, format: ReportFormat) -> anyhow::Result<String> {
    let runs: Vec<ListedRun> = store
        .runs(50)?
        .into_iter()
        .map(|run| ListedRun {
            id: run.id,
            started_at: run.started_at,
            finished_at: run.finished_at,
            status: run.status.as_str(),
            mode: match (run.dry_run, run.full) {
                (true, _) => "dry-run",
                (false, true) => "full",
                (false, false) => "normal",
            },
            kinds: run.kinds,
            stands_for: crate::report::stands_for(&run.summary).unwrap_or(1),
        })
        .collect();
    match format {
        ReportFormat::Json => return Ok(serde_json::to_string_pretty(&runs)? + "\n"),
        ReportFormat::Html => {
            bail!("`report list` prints text or JSON (`--format json`), not HTML")
        }
        ReportFormat::Text => {}
    }
    let mut out = String::from("  run  started               status     mode        kinds\n");
    for run in &runs {
        let kinds: Vec<&str> = run.kinds.iter().map(|k| k.as_str()).collect();
        let thinned = match run.stands_for {
            1 => String::new(),
            n => format!("  (stands for {n} no-op runs of its hour)"),
        };
        out.push_str(&format!(
            "{:>5}  {}  {:<9}  {:<10}  {}{thinned}\n",
            run.id,
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.status,
            run.mode,
            kinds.join(",")
        ));
    }
    Ok(out)
}
