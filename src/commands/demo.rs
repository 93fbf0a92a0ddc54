//! `demo`: the whole job with no account — both emulators in-process with seeded guests, a GHL
//! location that already knows some of them, a temporary configuration and state, one sync, and
//! its report.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;

use crate::cli::DemoArgs;
use crate::config::{Config, Overrides};
use crate::reconcile::pass::PassOptions;
use crate::report;
use crate::sandbox::ghl::GhlOptions;
use crate::sandbox::{CRM_OWN_TAG, Sandbox, SandboxOptions};

use super::EXIT_OK;
use super::sandbox::seed_spec;
use super::sync::{IMPLEMENTED, sync_once};

const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

/// The `--state-dir` that makes the demo's database the one `config/demo.toml` names
/// (`[state] path = "state/demo.db"`), so that `serve` needs no config of its own.
const DEMO_STATE_DIR: &str = "state";

/// Contacts the demo's GHL location holds before the first sync.
const PREEXISTING: usize = 50;

pub async fn run(args: &DemoArgs) -> anyhow::Result<u8> {
    let mut ghl = GhlOptions {
        // The real limit is 100 per 10 s; the demo's emulator is faster so it ends in seconds.
        rate_limit: 2_000,
        ..GhlOptions::default()
    };
    ghl.custom_fields.push((
        "contact.social_network".into(),
        "Social network".into(),
        "TEXT".into(),
    ));
    let sandbox = Sandbox::start(SandboxOptions {
        seed: seed_spec(&args.seed),
        ghl,
        ..Default::default()
    })
    .await
    .context("cannot start the emulators")?;
    let adopted = sandbox.seed_existing_contacts(PREEXISTING);

    let (dir, temporary) = match &args.state_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("hgs-demo-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let state_path: PathBuf = dir.join("demo.db");
    let key = sandbox.hotspot_api_key().to_string();
    let token = sandbox.ghl_token().to_string();
    let env = move |name: &str| match name {
        "HGS_DEMO_HOTSPOT_KEY" => Some(key.clone()),
        "HGS_DEMO_GHL_TOKEN" => Some(token.clone()),
        _ => None,
    };
    let mut cfg = Config::from_str_with_env(DEMO_CONFIG, "config/demo.toml", &env)?
        .with_overrides(&Overrides {
            hotspot_base_url: Some(sandbox.hotspot.base_url()),
            ghl_base_url: Some(sandbox.ghl.base_url()),
            state_path: Some(state_path.clone()),
        })?;
    cfg.ghl.location_id = sandbox.ghl.location_id();

    let (customers, subscribers) = sandbox
        .hotspot
        .with_data(|d| (d.customers.len(), d.subscribers.len()));
    println!(
        "Demo: {customers} HotspotSystem customers and {subscribers} subscribers; the GHL location already"
    );
    println!(
        "holds {} of them (typed differently, with the sales team's own tag `{CRM_OWN_TAG}`).",
        adopted.len()
    );
    println!();

    let opts = PassOptions {
        kinds: IMPLEMENTED.iter().copied().collect(),
        dry_run: false,
        // A first pass reads everything anyway; recording it as full also satisfies the
        // dashboard's health check for the demo config's `full` schedule.
        full: true,
        limit: None,
        progress: None,
        scope: Default::default(),
    };
    let stop = AtomicBool::new(false);
    let started = std::time::Instant::now();
    let (result, store) = sync_once(&cfg, &opts, &stop).await?;
    let elapsed = started.elapsed();
    let report = report::load(&store, result.run_id)?.context("the demo run left no report")?;
    print!("{}", report.to_text());
    println!();
    println!(
        "Finished in {:.1} s.",
        elapsed
            .as_secs_f64()
            .max(Duration::from_millis(1).as_secs_f64())
    );
    let ghl_contacts = sandbox.ghl.with_state(|s| s.contacts.len());
    println!("GHL now holds {ghl_contacts} contacts.");
    drop(store);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    for line in next_steps(&dir, temporary) {
        println!("{line}");
    }
    Ok(EXIT_OK)
}

/// This binary as a command the user can paste: as it was invoked, relative to the current
/// directory when it lies under it. After `cargo run` that is `target/release/hotspot-ghl-sync`,
/// which is not on PATH; installed, it is the bare name.
fn invoked_as() -> String {
    let Some(arg0) = std::env::args_os().next() else {
        return "hotspot-ghl-sync".into();
    };
    let path = std::path::PathBuf::from(arg0);
    if path.is_absolute()
        && let Ok(cwd) = std::env::current_dir()
        && let Ok(relative) = path.strip_prefix(&cwd)
    {
        return relative.display().to_string();
    }
    path.display().to_string()
}

/// The demo's last lines: how to look at the run in the dashboard. With `--state-dir state`
/// these are the two commands a new user types from the clone; with another directory, what to
/// change; without one (the state was removed), the `--state-dir` to use next time.
fn next_steps(dir: &Path, temporary: bool) -> Vec<String> {
    let bin = invoked_as();
    let demo = format!("{bin} demo --state-dir {DEMO_STATE_DIR}");
    let serve = format!("{bin} --config config/demo.toml serve");
    let db = dir.join("demo.db");
    if temporary {
        return vec![
            "The demo's state was temporary. To explore the run in the dashboard, run from the"
                .into(),
            "repository's directory:".into(),
            format!("  {demo}"),
            format!("  {serve}"),
        ];
    }
    if dir == Path::new(DEMO_STATE_DIR) {
        return vec![
            format!(
                "State kept in {}. To explore the run in the dashboard:",
                db.display()
            ),
            format!("  {demo}"),
            format!("  {serve}"),
        ];
    }
    vec![
        format!(
            "State kept in {}. config/demo.toml reads state/demo.db: run `{demo}`",
            db.display()
        ),
        format!(
            "instead, or serve a copy of config/demo.toml whose [state] path is \"{}\":",
            db.display()
        ),
        format!("  {bin} --config <that copy> serve"),
    ]
}
