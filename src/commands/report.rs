//! `report [RUN|latest|list] [--format text|json|html] [--output FILE]`.

use std::io::Write;

use anyhow::{Context, bail};

use crate::cli::{ReportArgs, ReportFormat};
use crate::config::Config;
use crate::report;
use crate::store::Store;

use super::EXIT_OK;

pub fn run(cfg: &Config, args: &ReportArgs) -> anyhow::Result<u8> {
    let store = Store::open(&cfg.state.path)?;
    let text = match args.run.as_deref() {
        Some("list") => list(&store)?,
        None | Some("latest") => {
            let Some(run) = store.latest_run()? else {
                bail!(
                    "no run recorded yet in {}; run `sync` first",
                    cfg.state.path.display()
                );
            };
            render(&store, run.id, args.format)?
        }
        Some(id) => {
            let id: i64 = id
                .parse()
                .with_context(|| format!("`{id}` is not a run id, `latest` or `list`"))?;
            render(&store, id, args.format)?
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(EXIT_OK)
}

fn render(store: &Store, id: i64, format: ReportFormat) -> anyhow::Result<String> {
    let Some(r) = report::load(store, id)? else {
        bail!("run {id} is not in the state database (see `report list`)");
    };
    Ok(match format {
        ReportFormat::Text => r.to_text(),
        ReportFormat::Json => r.to_json() + "\n",
        ReportFormat::Html => bail!("the HTML report is not available in this build"),
    })
}

fn list(store: &Store) -> anyhow::Result<String> {
    let mut out = String::from("  run  started               status     mode        kinds\n");
    for run in store.runs(50)? {
        let mode = match (run.dry_run, run.full) {
            (true, _) => "dry-run",
            (false, true) => "full",
            (false, false) => "normal",
        };
        let kinds: Vec<&str> = run.kinds.iter().map(|k| k.as_str()).collect();
        out.push_str(&format!(
            "{:>5}  {}  {:<9}  {:<10}  {}\n",
            run.id,
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.status.as_str(),
            mode,
            kinds.join(",")
        ));
    }
    Ok(out)
}
