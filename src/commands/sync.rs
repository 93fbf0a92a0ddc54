//! `sync [--only KINDS] [--dry-run] [--full] [--format json]`: one reconcile pass, then its
//! report; a dry run adds the writes it would send and their estimated requests and time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::bail;

use crate::cli::{OutputFormat, SyncArgs};
use crate::config::{Config, Form, Installation, Pair};
use crate::connect;
use crate::hotspot::HotspotClient;
use crate::hotspot::shared::{ReadRound, RoundLimits, Wants};
use crate::model::Kind;
use crate::progress::Progress;
use crate::reconcile::new_records::{Tick, run_new};
use crate::reconcile::pass::{Interruption, PassOptions, PassResult, run_pass};
use crate::report::dry_run::DryRunEstimate;
use crate::report::{self, RunReport};
use crate::store::{RunStatus, Store};

use super::{EXIT_FAILURE, EXIT_OK};

/// The kinds this build reconciles, in the order a pass runs them.
pub const IMPLEMENTED: &[Kind] = &[
    Kind::Contact,
    Kind::Note,
    Kind::Task,
    Kind::Business,
    Kind::Appointment,
];

/// `--only contacts,notes` → kinds; empty → every implemented kind.
pub fn parse_only(only: &[String]) -> anyhow::Result<BTreeSet<Kind>> {
    if only.is_empty() {
        return Ok(IMPLEMENTED.iter().copied().collect());
    }
    let mut out = BTreeSet::new();
    for word in only {
        let kind = match word.trim() {
            "contacts" | "contact" => Kind::Contact,
            "notes" | "note" => Kind::Note,
            "tasks" | "task" => Kind::Task,
            "businesses" | "business" => Kind::Business,
            "appointments" | "appointment" => Kind::Appointment,
            other => bail!(
                "--only: `{other}` is not a kind (contacts, notes, tasks, businesses, appointments)"
            ),
        };
        if !IMPLEMENTED.contains(&kind) {
            bail!("--only: `{word}` is not reconciled by this build yet");
        }
        out.insert(kind);
    }
    Ok(out)
}

/// Opens the state file of a caller that already holds its lock ([`Store::lock`]), and marks
/// runs a killed process left `running` as aborted. Split from [`sync_once`] because the daemon
/// takes the lock once for its whole life and then runs many passes.
pub fn open_locked_state(cfg: &Config) -> anyhow::Result<Store> {
    let store = Store::open(&cfg.state.path)?;
    let stale = store.abort_stale_runs()?;
    if stale > 0 {
        tracing::warn!(
            runs = stale,
            "earlier runs did not finish (crash or kill); marked aborted"
        );
    }
    Ok(store)
}

/// Opens the state under its lock and runs one pass. Used by `sync` and `demo`.
pub async fn sync_once(
    cfg: &Config,
    opts: &PassOptions,
    stop: &AtomicBool,
) -> anyhow::Result<(PassResult, Store)> {
    sync_once_sharing(cfg, opts, stop, None).await
}

/// [`sync_once`] with the HotspotSystem client given (one that shares its reads with other
/// pairs), or built from `cfg`.
async fn sync_once_sharing(
    cfg: &Config,
    opts: &PassOptions,
    stop: &AtomicBool,
    hs: Option<HotspotClient>,
) -> anyhow::Result<(PassResult, Store)> {
    let lock = Store::lock(&cfg.state.path)?;
    let mut store = open_locked_state(cfg)?;
    // Released with the store, after its connection: the caller still reads the run from it.
    store.keep_lock(lock);
    let hs = match hs {
        Some(hs) => hs,
        None => connect::hotspot_client(cfg)?,
    };
    let ghl = connect::ghl_client(cfg)?;
    if let Some(progress) = &opts.progress {
        progress.watch_rate_limit(ghl.policy());
        progress.watch_rate_limit(hs.policy());
    }
    let store = Mutex::new(store);
    let result = run_pass(cfg, &store, &hs, &ghl, opts, stop).await?;
    Ok((
        result,
        store.into_inner().unwrap_or_else(|p| p.into_inner()),
    ))
}

/// `sync` on the pairs selected: in the single form exactly as before the pairs existed; with
/// `[[pairs]]`, each pair in turn (see [`sync_each`]), every block of output named by its pair.
/// The exit code is the worst of the pairs'.
pub async fn run_pairs(
    inst: &Installation,
    selected: &[&Pair],
    args: &SyncArgs,
) -> anyhow::Result<u8> {
    let opts = PassOptions {
        kinds: parse_only(&args.only)?,
        dry_run: args.dry_run,
        full: args.full,
        limit: args.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        progress: None,
        scope: Default::default(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if crate::schedule::wait_for_signal().await.is_ok() {
                tracing::warn!("stop requested: finishing in-flight writes, then exiting");
                stop.store(true, Ordering::SeqCst);
            }
        })
    };
    let outcome = match (inst.form, selected) {
        (Form::Single, [pair]) => match sync_pair(&pair.config, args, &opts, &stop, None).await {
            Ok(done) => {
                match (args.format, &done.json) {
                    (OutputFormat::Text, _) => print!("{}", done.text),
                    (OutputFormat::Json, Some(doc)) => println!("{}", pretty(doc)),
                    (OutputFormat::Json, None) => {}
                }
                Ok(done.code)
            }
            Err(e) => Err(e),
        },
        _ => Ok(sync_each(selected, args, &opts, &stop).await),
    };
    watcher.abort();
    outcome
}

/// One pass per pair, one pair after another, each under its own state lock; a pair that fails
/// (locked state, refused token, an API down) is reported and the next one runs. Prints each
/// pair's block as it finishes (text) or one array at the end (JSON), and returns the worst
/// exit code.
///
/// The pairs are one round of shared HotspotSystem reads (`hotspot::shared`): the account's
/// location listing is read once for all of them, and a location two pairs read is read once,
/// its pages kept (within the round's cap) until the later pair has taken them.
async fn sync_each(pairs: &[&Pair], args: &SyncArgs, opts: &PassOptions, stop: &AtomicBool) -> u8 {
    let mut codes = Vec::with_capacity(pairs.len());
    let mut docs = Vec::with_capacity(pairs.len());
    let round = ReadRound::new(RoundLimits::default());
    // Every pair's client joins the round before the first pass: an answer is kept only for
    // the clients that have joined when it arrives.
    let mut clients: Vec<Option<anyhow::Result<HotspotClient>>> = pairs
        .iter()
        .map(|p| {
            let reads = round.reader(Wants::from_config(&p.config.hotspot.locations));
            Some(connect::hotspot_client(&p.config).map(|c| c.with_shared_reads(reads)))
        })
        .collect();
    for (i, pair) in pairs.iter().enumerate() {
        // Taken out whether the pair runs or not: a client dropped releases what was kept for it.
        let hs = clients[i].take().expect("each pair's client is taken once");
        if stop.load(Ordering::SeqCst) {
            eprintln!("pair {}: not started (stop requested)", pair.name);
            continue;
        }
        if args.format == OutputFormat::Text {
            println!("== pair {} ==", pair.name);
        }
        let done = match hs {
            Ok(hs) => sync_pair(&pair.config, args, opts, stop, Some(hs)).await,
            Err(e) => Err(e),
        };
        let (code, doc) = match done {
            Ok(done) => {
                if args.format == OutputFormat::Text {
                    print!("{}", done.text);
                }
                (
                    done.code,
                    done.json.unwrap_or_else(|| serde_json::json!({})),
                )
            }
            Err(err) => {
                let code = super::exit_code_for(&err);
                let message = super::render_error(&err);
                eprintln!("error: pair {}: {message}", pair.name);
                (code, serde_json::json!({ "error": message }))
            }
        };
        codes.push(code);
        let mut doc = doc;
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("pair".into(), pair.name.clone().into());
            obj.insert("exit_code".into(), code.into());
        }
        docs.push(doc);
    }
    if args.format == OutputFormat::Json {
        println!("{}", pretty(&serde_json::Value::Array(docs)));
    }
    super::worst(codes)
}

/// One pair's pass, its output rendered but not printed.
struct PairSync {
    code: u8,
    text: String,
    /// `None` when no run was recorded.
    json: Option<serde_json::Value>,
}

async fn sync_pair(
    cfg: &Config,
    args: &SyncArgs,
    opts: &PassOptions,
    stop: &AtomicBool,
    hs: Option<HotspotClient>,
) -> anyhow::Result<PairSync> {
    if args.new {
        return new_pair(cfg, stop, hs).await;
    }
    let opts = PassOptions {
        // Nothing to watch in a dry run: it writes nothing.
        progress: if args.dry_run {
            None
        } else {
            Progress::for_stderr()
        },
        ..opts.clone()
    };
    let (result, store) = sync_once_sharing(cfg, &opts, stop, hs).await?;
    render(cfg, &store, &result)
}

/// `sync --new`: one tick of the fast lane (`reconcile::new_records`), under the state lock
/// like any pass. An idle tick records no run and says so.
async fn new_pair(
    cfg: &Config,
    stop: &AtomicBool,
    hs: Option<HotspotClient>,
) -> anyhow::Result<PairSync> {
    let lock = Store::lock(&cfg.state.path)?;
    let mut store = open_locked_state(cfg)?;
    store.keep_lock(lock);
    let hs = match hs {
        Some(hs) => hs,
        None => connect::hotspot_client(cfg)?,
    };
    let ghl = connect::ghl_client(cfg)?;
    let store = Mutex::new(store);
    let tick = run_new(cfg, &store, &hs, &ghl, stop).await?;
    let store = store.into_inner().unwrap_or_else(|p| p.into_inner());
    match tick {
        Tick::Idle {
            locations,
            initialised,
        } => {
            let mut text = format!(
                "Fast lane: nothing new at {locations} location(s); nothing written, no run recorded.\n"
            );
            if initialised > 0 {
                text.push_str(&format!(
                    "First tick: {initialised} cursor(s) set from the newest records; older guests are left to the regular passes.\n"
                ));
            }
            Ok(PairSync {
                code: EXIT_OK,
                text,
                json: Some(serde_json::json!({
                    "new": { "idle": true, "locations": locations, "cursors_initialised": initialised }
                })),
            })
        }
        Tick::Ran { pass } => render(cfg, &store, &pass),
    }
}

/// The output and exit code of a pass that ran.
fn render(cfg: &Config, store: &Store, result: &PassResult) -> anyhow::Result<PairSync> {
    let mut text = String::new();
    let mut json = None;
    if let Some(r) = report::load(store, result.run_id)? {
        let estimate = report::dry_run::load_estimate(store, &r)?;
        if let Some(plan) = &result.plan_text {
            text.push_str(plan);
        }
        text.push_str(&r.to_text());
        if let Some(e) = &estimate {
            text.push_str(&e.to_text());
        }
        json = Some(sync_json(&r, estimate.as_ref()));
    }
    let code = if result.interrupted == Some(Interruption::BudgetSpent) {
        eprintln!(
            "error: the pass ran out of its time budget (sync.pass_budget_secs = {}s) and stopped; the next run goes on from here",
            cfg.sync.pass_budget_secs
        );
        EXIT_FAILURE
    } else {
        match result.status {
            RunStatus::Partial | RunStatus::Failed => EXIT_FAILURE,
            _ => EXIT_OK,
        }
    };
    Ok(PairSync { code, text, json })
}

fn pretty(doc: &serde_json::Value) -> String {
    serde_json::to_string_pretty(doc).expect("a JSON value always serializes")
}

/// `sync --format json`: the GHL writes (a dry run's as planned, with the estimate's fields; a
/// real run's as sent, counted from its API calls) and the run report.
fn sync_json(r: &RunReport, estimate: Option<&DryRunEstimate>) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "run_id": r.run_id,
        "status": r.status,
        "dry_run": r.dry_run,
        "writes": r.ghl_writes(),
    });
    if let (Some(e), Some(obj)) = (estimate, doc.as_object_mut())
        && let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(e)
    {
        obj.extend(fields);
    }
    doc["report"] = serde_json::to_value(r).unwrap_or_default();
    doc
}
