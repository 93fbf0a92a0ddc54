//! GHL's webhooks end to end: the daemon of [`super::webhooks::HookEnv`] with the GHL
//! emulator's keys in `[webhooks]`, the emulator sending its signed events to `/hooks/ghl`.

use std::process::Command;
use std::time::Duration;

use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::sandbox::ghl::webhooks::{
    GhlDelivery, GhlWebhookOptions, Scheme, SignedBytes, TimestampForm,
};
use hotspot_ghl_sync::sandbox::hotspot::NewRecord;
use hotspot_ghl_sync::store::{Link, LinkStatus, Store, WebhookEvent};

use super::Out;
use super::daemon::Daemon;
use super::webhooks::HookEnv;

/// Emulators with `customers` seeded guests, synced once by `sync`, and a config that trusts
/// the emulator's webhook keys (its test RSA key and its Ed25519 key).
pub async fn start(name: &str, customers: usize) -> HookEnv {
    start_with(name, customers, "", Vec::new()).await
}

/// [`start`], with `sections` appended to the config (after `[webhooks]`) and `records` added
/// to HotspotSystem before the first sync.
pub async fn start_with(
    name: &str,
    customers: usize,
    sections: &str,
    records: Vec<NewRecord>,
) -> HookEnv {
    let mut env = HookEnv::start(name, customers).await;
    for r in records {
        env.sandbox.hotspot.add_record(r);
    }
    let out = run(&env, &["sync"]).await;
    assert_eq!(out.code, 0, "first sync: {}", out.show());
    // A port free now: the one picked before the sync may have been taken since.
    env.port = super::webhooks::free_port();
    env.write_config();
    let hooks = env.sandbox.ghl.webhooks();
    let rsa = env.dir.path("ghl-rsa.der");
    std::fs::write(&rsa, hooks.rsa_public_key_der()).unwrap();
    let ed = env.dir.path("ghl-ed25519.pub");
    std::fs::write(&ed, hooks.ed25519_public_key()).unwrap();
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str(&format!(
        "ghl_public_key_file = \"{}\"\nghl_ed25519_public_key_file = \"{}\"\n{sections}",
        rsa.display(),
        ed.display()
    ));
    std::fs::write(&env.config, text).unwrap();
    env
}

/// Runs the binary with `args` to its end.
pub async fn run(env: &HookEnv, args: &[&str]) -> Out {
    let mut cmd: Command = env.command(args);
    tokio::task::spawn_blocking(move || Out::from_output(cmd.output().expect("the binary runs")))
        .await
        .unwrap()
}

/// The receiver's GHL URL.
pub fn url(env: &HookEnv) -> String {
    format!("http://127.0.0.1:{}/hooks/ghl", env.port)
}

/// Points the emulator's sender at the daemon with these readings.
pub fn configure(env: &HookEnv, scheme: Scheme, signed: SignedBytes, timestamp: TimestampForm) {
    env.sandbox.ghl.webhooks().configure(GhlWebhookOptions {
        scheme,
        signed,
        timestamp,
        ..GhlWebhookOptions::new(url(env))
    });
}

/// The link of `kind` pointing at GHL record `target`, from the state file.
pub fn link_to(env: &HookEnv, kind: Kind, target: &str) -> Option<Link> {
    Store::open(env.state_path())
        .expect("open state")
        .link_by_target(kind, target)
        .expect("link")
}

pub fn status_of(env: &HookEnv, kind: Kind, target: &str) -> Option<LinkStatus> {
    link_to(env, kind, target).map(|l| l.status)
}

/// The GHL events the state recorded (`source = ghl`).
pub fn recorded(env: &HookEnv) -> Vec<WebhookEvent> {
    env.queue()
        .into_iter()
        .filter(|e| e.source == "ghl")
        .collect()
}

/// The emulator's deliveries of `event_type`.
pub fn deliveries(env: &HookEnv, event_type: &str) -> Vec<GhlDelivery> {
    env.sandbox
        .ghl
        .webhooks()
        .deliveries()
        .into_iter()
        .filter(|d| d.event_type == event_type)
        .collect()
}

/// Waits until the emulator has a delivery of `event_type` answered (any status).
pub async fn answered(env: &HookEnv, event_type: &str, n: usize) -> Vec<GhlDelivery> {
    env.wait_until(Duration::from_secs(10), |e| {
        deliveries(e, event_type)
            .iter()
            .filter(|d| d.status.is_some())
            .count()
            >= n
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no {event_type} delivery answered: {:#?}",
            env.sandbox.ghl.webhooks().deliveries()
        )
    });
    deliveries(env, event_type)
}

/// A call to the GHL emulator's API as a CRM user's client would make it.
pub async fn ghl_api(env: &HookEnv, method: reqwest::Method, path: &str, body: Option<&str>) {
    let mut req = super::http_client()
        .request(method, format!("{}{path}", env.sandbox.ghl.base_url()))
        .bearer_auth(env.sandbox.ghl_token())
        .header("Version", "2021-07-28");
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let status = req.send().await.expect("the emulator answers").status();
    assert!(status.is_success(), "{path}: {status}");
}

/// Some linked guest's GHL contact and its onboarding task.
pub fn contact_with_task(env: &HookEnv) -> (String, String) {
    env.sandbox.ghl.with_state(|s| {
        let t = s
            .tasks
            .values()
            .filter(|t| !t.completed)
            .min_by_key(|t| t.id.clone())
            .expect("an onboarding task");
        (t.contact_id.clone(), t.id.clone())
    })
}

/// Stops the daemon, checking it exits cleanly.
pub async fn stop(mut d: Daemon) {
    assert_eq!(d.stop().await, Some(0), "daemon log:\n{}", d.log());
}
