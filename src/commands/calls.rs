//! `calls [RUN|latest] [--failed] [--status N] [--path SUBSTR] [--limit N]`: the API calls a run
//! recorded, one line per attempt, and under a failed one the error message. Paths are stored
//! with ids elided and never with a query string or body, and messages with emails and phone
//! numbers masked, so nothing here shows a secret or a guest's data.

use anyhow::Context;
use serde_json::json;

use crate::cli::{CallsArgs, OutputFormat};
use crate::config::Config;
use crate::http::ErrorClass;
use crate::store::{CallFilter, Store, call_json};

use super::{EXIT_OK, NotFound};

pub fn run(cfg: &Config, args: &CallsArgs) -> anyhow::Result<u8> {
    let store = Store::open_read_only(&cfg.state.path)?;
    let run = match args.run.as_deref() {
        None | Some("latest") => store
            .latest_run()?
            .ok_or_else(|| NotFound::NoRun(cfg.state.path.clone()))?,
        Some(id) => {
            let id: i64 = id
                .parse()
                .with_context(|| format!("`{id}` is not a run id or `latest`"))?;
            store.run(id)?.ok_or(NotFound::Run(id))?
        }
    };
    let filter = CallFilter {
        failed: args.failed,
        status: args.status,
        path: args.path.clone(),
        limit: args.limit,
        offset: 0,
    };
    let page = store.api_call_page(Some(run.id), &filter)?;
    match args.format {
        OutputFormat::Json => {
            let calls: Vec<_> = page.calls.iter().map(call_json).collect();
            let out = json!({
                "run_id": run.id,
                "total": page.total,
                "shown": calls.len(),
                "calls": calls,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        OutputFormat::Text => {
            let mut out = format!(
                "Run #{}: {} matching API call attempt(s){}\n",
                run.id,
                page.total,
                if (page.calls.len() as u64) < page.total {
                    format!(", the first {} shown (--limit)", page.calls.len())
                } else {
                    String::new()
                }
            );
            if !page.calls.is_empty() {
                out.push_str(
                    "  time      api      method  status  attempt  latency  error         path\n",
                );
            }
            for c in &page.calls {
                let r = &c.record;
                out.push_str(&format!(
                    "  {}  {:<7}  {:<6}  {:>6}  {:>7}  {:>5} ms  {:<12}  {}\n",
                    c.at.format("%H:%M:%S"),
                    r.api,
                    r.method,
                    r.status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.attempt,
                    r.latency_ms,
                    r.error_class.map(ErrorClass::as_str).unwrap_or("-"),
                    r.path,
                ));
                if let Some(m) = &r.message {
                    out.push_str(&format!("            {m}\n"));
                }
            }
            print!("{out}");
        }
    }
    Ok(EXIT_OK)
}
