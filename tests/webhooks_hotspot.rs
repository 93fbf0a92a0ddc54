//! HotspotSystem webhooks through the real binary: the emulator sends them (batched, signed,
//! retried), `run` receives them on `[webhooks] listen`, queues them in the state and wakes
//! the pair's pass at once. The contacts job ticks once a year in these configs, so only a
//! webhook can explain a guest reaching GHL.
//!
//! Times from the emulator's delivery to the contact in GHL are printed (`--nocapture`).

mod support;

use std::time::{Duration, Instant};

use hotspot_ghl_sync::sandbox::faults::FaultKnobs;
use hotspot_ghl_sync::sandbox::ghl::GhlOptions;
use hotspot_ghl_sync::sandbox::hotspot::{HotspotOptions, NewRecord, SortSupport};
use hotspot_ghl_sync::sandbox::hotspot_webhooks::{
    Batching, BodyKeys, SignatureEncoding, SignatureHeader, WebhookEvent, WebhookOptions,
    WebhookSpec,
};
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::{RunStatus, Store, WebhookEvent as QueuedEvent};
use support::daemon::Daemon;
use support::fast_lane::FastEnv;
use support::webhooks::{HookEnv, KEYS, daemon_config, free_port, guest, mac_transaction, post};
use support::{ANCHOR, BIN, TempDir};

/// Well under the once-a-year tick, and under the minute HotspotSystem batches take.
const REACHES_GHL_WITHIN: Duration = Duration::from_secs(20);

/// The time from the emulator sending the delivery of `record` to `reached`.
fn since_delivery(env: &HookEnv, record: &str, reached: Instant) -> Duration {
    let sent = env
        .sandbox
        .hotspot
        .webhook_deliveries()
        .into_iter()
        .find(|d| d.record_ids.iter().any(|r| r == record) && d.status == Some(200))
        .map(|d| d.sent_at)
        .unwrap_or_else(|| {
            panic!(
                "no delivery of {record} answered 200: {:#?}",
                env.sandbox.hotspot.webhook_deliveries()
            )
        });
    reached.saturating_duration_since(sent)
}

/// Waits until every delivery was taken and every queued event processed, then a moment more
/// for the pass that processed the last of them to let go of its lock.
async fn settle(env: &HookEnv) {
    env.wait_until(Duration::from_secs(20), |e| {
        e.sandbox.hotspot.webhooks_queued() == 0
            && e.queue().iter().all(|q| q.processed_at.is_some())
    })
    .await
    .expect("deliveries taken and events processed");
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_guest_reaches_ghl_with_its_note_and_task_under_every_spelling() {
    let env = HookEnv::start("hooks-spellings", 3).await;
    let mut daemon = env.spawn_daemon().await;

    use SignatureEncoding::{Base64, Base64OfHex, Hex};
    let readings = [
        (
            SignatureHeader::Standard,
            Base64,
            BodyKeys::Example,
            Batching::PerRecord,
            true,
        ),
        (
            SignatureHeader::Cgi,
            Base64OfHex,
            BodyKeys::Rest,
            Batching::PerRecord,
            false,
        ),
        (
            SignatureHeader::Standard,
            Hex,
            BodyKeys::Pascal,
            Batching::Array,
            true,
        ),
    ];
    for (n, (header, encoding, keys, batching, event_in_url)) in readings.into_iter().enumerate() {
        // The previous guest's passes are over: a pass still running could otherwise sync this
        // guest before its webhook is even sent.
        settle(&env).await;
        env.configure_sender(header, encoding, keys, batching, event_in_url);
        let g = guest(n as u32 + 1);
        let email = g.email.clone().unwrap();
        env.sandbox
            .hotspot
            .add_record(NewRecord::Customer(g.clone()));
        env.sandbox
            .hotspot
            .add_record(NewRecord::Mac(mac_transaction(&g, 70_000 + n as i64)));
        let reached = env
            .wait_until(REACHES_GHL_WITHIN, |e| {
                e.contact_id(&email)
                    .is_some_and(|id| e.notes_and_tasks(&id) == (1, 1))
            })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{header:?}/{encoding:?}/{keys:?}/{batching:?}: guest, note and task not in GHL; deliveries {:#?}\nlog:\n{}",
                    env.sandbox.hotspot.webhook_deliveries(),
                    daemon.log()
                )
            });
        println!(
            "webhook → contact, note and task in GHL ({header:?} header, {encoding:?}, {keys:?} keys, {batching:?}): {:?}",
            since_delivery(&env, &g.id, reached)
        );
        assert_eq!(env.contacts_with(&email), 1);
    }
    // Two events a reading, every one processed.
    let queue = env.queue();
    assert_eq!(queue.len(), 6, "{queue:#?}");
    let settled = env
        .wait_until(Duration::from_secs(10), |e| {
            e.queue().iter().all(|q| q.processed_at.is_some())
        })
        .await;
    assert!(settled.is_some(), "events left pending: {:#?}", env.queue());
    assert!(
        env.runs().iter().all(|r| r.status == RunStatus::Succeeded),
        "{:#?}",
        env.runs()
    );
    assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_badly_signed_body_is_refused_and_a_replay_changes_nothing() {
    let env = HookEnv::start("hooks-refused", 2).await;
    let mut daemon = env.spawn_daemon().await;
    let g = guest(42);
    let email = g.email.clone().unwrap();
    // The guest exists upstream, so a pass would find it: only the refusal keeps it out.
    env.sandbox
        .hotspot
        .with_data(|d| d.customers.push(g.clone()));
    let body = format!(
        r#"{{"id":"{}","UserName":"{}","email":"{email}","name":"Webhook Guest42"}}"#,
        g.id, g.user_name
    );
    let query = "?event=customer.create&location=1";

    for signed in [
        None,
        Some(("X-HotspotSystem-Hmac-Sha256", "not-a-configured-key")),
        Some(("X-Some-Other-Header", KEYS[0])),
    ] {
        assert_eq!(
            env.post(query, body.as_bytes(), signed).await,
            401,
            "{signed:?}"
        );
    }
    // Signed, but with a different body than the one sent.
    let sig = hotspot_ghl_sync::sandbox::hotspot_webhooks::sign(b"{}", KEYS[0]);
    let status = support::http_client()
        .post(env.url(query))
        .header("X-HotspotSystem-Hmac-Sha256", sig)
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    // Over max_body_bytes, signed or not.
    let big = vec![b' '; 70_000];
    assert_eq!(
        env.post(query, &big, Some(("X-HotspotSystem-Hmac-Sha256", KEYS[0])))
            .await,
        413
    );
    // Signed, but no event this receiver knows: refused naming why.
    assert_eq!(
        env.post(
            "?event=customer.delete",
            body.as_bytes(),
            Some(("X-HotspotSystem-Hmac-Sha256", KEYS[0]))
        )
        .await,
        400
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.queue().is_empty(), "{:#?}", env.queue());
    assert!(env.runs().is_empty(), "a refused body started a pass");
    assert_eq!(env.contacts_with(&email), 0);
    assert!(
        !daemon.log().contains(KEYS[0]) && !daemon.log().contains("not-a-configured-key"),
        "a key reached the log"
    );

    // Signed with the second webhook's key, in the CGI spelling: taken.
    let signed = Some(("HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256", KEYS[1]));
    assert_eq!(env.post(query, body.as_bytes(), signed).await, 200);
    env.wait_until(REACHES_GHL_WITHIN, |e| e.contacts_with(&email) == 1)
        .await
        .unwrap_or_else(|| panic!("guest not in GHL; log:\n{}", daemon.log()));
    env.wait_until(Duration::from_secs(10), |e| {
        e.queue().iter().all(|q| q.processed_at.is_some())
    })
    .await
    .expect("the event is processed");
    let runs = env.runs().len();

    // The same event again (HotspotSystem retries): 200, no new row, no pass, no contact.
    for _ in 0..3 {
        assert_eq!(env.post(query, body.as_bytes(), signed).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(env.queue().len(), 1, "{:#?}", env.queue());
    assert_eq!(env.runs().len(), runs, "a replay started a pass");
    assert_eq!(env.contacts_with(&email), 1);
    assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_answered_200_survives_a_sigkill() {
    let env = HookEnv::start("hooks-kill", 2).await;
    // A slow GHL: the pass the event wakes cannot end before the kill.
    env.sandbox.ghl.set_faults(FaultKnobs {
        latency: Duration::from_millis(1_500),
        ..FaultKnobs::default()
    });
    let mut daemon = env.spawn_daemon().await;
    let g = guest(7);
    let email = g.email.clone().unwrap();
    env.sandbox
        .hotspot
        .with_data(|d| d.customers.push(g.clone()));
    let body = format!(
        r#"{{"id":"{}","UserName":"{}","email":"{email}"}}"#,
        g.id, g.user_name
    );
    let signed = Some(("X-HotspotSystem-Hmac-Sha256", KEYS[0]));
    assert_eq!(
        env.post("?event=customer.create", body.as_bytes(), signed)
            .await,
        200
    );
    daemon.signal("KILL");
    daemon
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("killed");
    let queue = env.queue();
    assert_eq!(queue.len(), 1);
    assert!(queue[0].processed_at.is_none(), "{queue:#?}");
    assert_eq!(env.contacts_with(&email), 0);

    env.sandbox.ghl.set_faults(FaultKnobs::default());
    let mut daemon = env.spawn_daemon().await;
    env.wait_until(REACHES_GHL_WITHIN, |e| e.contacts_with(&email) == 1)
        .await
        .unwrap_or_else(|| panic!("the queued event was lost; log:\n{}", daemon.log()));
    env.wait_until(Duration::from_secs(10), |e| {
        e.queue().iter().all(|q| q.processed_at.is_some())
    })
    .await
    .expect("the event is processed after the restart");
    assert!(
        daemon.log().contains("pending from before the start"),
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_fifty_guests_is_coalesced_into_a_few_passes() {
    let env = HookEnv::start("hooks-burst", 0).await;
    let mut daemon = env.spawn_daemon().await;
    env.configure_sender(
        SignatureHeader::Standard,
        SignatureEncoding::Base64,
        BodyKeys::Example,
        Batching::PerRecord,
        true,
    );
    let guests: Vec<_> = (100..150).map(guest).collect();
    for g in &guests {
        env.sandbox
            .hotspot
            .add_record(NewRecord::Customer(g.clone()));
    }
    let emails: Vec<String> = guests.iter().map(|g| g.email.clone().unwrap()).collect();
    let all_in = env
        .wait_until(Duration::from_secs(45), |e| {
            emails.iter().all(|m| e.contacts_with(m) == 1)
        })
        .await
        .unwrap_or_else(|| panic!("not every guest reached GHL; log:\n{}", daemon.log()));
    // The first pass may read every guest before the last webhook is even sent: wait for all.
    env.wait_until(Duration::from_secs(20), |e| {
        e.sandbox.hotspot.webhook_deliveries().len() >= 50
    })
    .await
    .expect("every webhook sent");
    let deliveries = env.sandbox.hotspot.webhook_deliveries();
    assert_eq!(deliveries.len(), 50, "one delivery each, none retried");
    assert!(deliveries.iter().all(|d| d.status == Some(200)));
    let first = deliveries.iter().map(|d| d.sent_at).min().unwrap();
    let last = deliveries.iter().map(|d| d.sent_at).max().unwrap();
    let worst = guests
        .iter()
        .map(|g| since_delivery(&env, &g.id, all_in))
        .max()
        .unwrap();
    println!(
        "burst of 50 webhooks (sent over {:?}): all 50 contacts in GHL {:?} after the first delivery (the last was sent {:?} after it); at most {worst:?} from a guest's own delivery",
        last - first,
        all_in.saturating_duration_since(first),
        last - first,
    );
    env.wait_until(Duration::from_secs(10), |e| {
        e.queue().iter().all(|q| q.processed_at.is_some())
    })
    .await
    .expect("every event processed");
    let runs = env.runs();
    println!("passes for the burst: {}", runs.len());
    assert!(
        (1..=6).contains(&runs.len()),
        "50 events coalesce into a few passes, not one each: {}",
        runs.len()
    );
    assert_eq!(env.queue().len(), 50);
    assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_refused_while_the_daemon_is_down_is_retried_until_taken() {
    let env = HookEnv::start("hooks-retry", 1).await;
    env.configure_sender(
        SignatureHeader::Cgi,
        SignatureEncoding::Base64,
        BodyKeys::Example,
        Batching::PerRecord,
        true,
    );
    let g = guest(3);
    let email = g.email.clone().unwrap();
    // Nobody listens yet: the emulator keeps the delivery and sends it again.
    env.sandbox
        .hotspot
        .add_record(NewRecord::Customer(g.clone()));
    env.wait_until(Duration::from_secs(5), |e| {
        e.sandbox.hotspot.webhook_deliveries().len() >= 2
    })
    .await
    .expect("the delivery is retried");
    let mut daemon = env.spawn_daemon().await;
    env.wait_until(REACHES_GHL_WITHIN, |e| e.contacts_with(&email) == 1)
        .await
        .unwrap_or_else(|| panic!("guest not in GHL; log:\n{}", daemon.log()));
    assert_eq!(env.sandbox.hotspot.webhooks_queued(), 0);
    assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
}

/// Waits until `ok` holds; panics after [`REACHES_GHL_WITHIN`].
async fn wait_for(ok: &dyn Fn() -> bool) {
    let deadline = Instant::now() + REACHES_GHL_WITHIN;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two pairs behind one receiver: an event goes to the pair that reads its location, one
/// without a location to both (each pass reads only its own locations), one for a location no
/// pair reads to none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pairs_an_event_wakes_the_pair_of_its_location() {
    let mut ghl = GhlOptions::default().with_locations(2);
    ghl.rate_limit = 100_000;
    let sandbox = Sandbox::start(SandboxOptions {
        seed: SeedSpec {
            seed: 3,
            locations: 2,
            customers: 0,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 0,
        },
        ghl,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox");
    let hs_locations: Vec<String> = sandbox
        .hotspot
        .with_data(|d| d.locations.iter().map(|l| l.id.clone()).collect());
    let ghl_ids = sandbox.ghl.location_ids();
    let beta_token = sandbox
        .ghl
        .token_for(&ghl_ids[1])
        .expect("beta has a token");
    let dir = TempDir::new("hooks-pairs");
    let config = dir.path("config.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_W_HS_KEY"
rate_limit = 10000

[ghl]
base_url = "{ghl_url}"
token_env = "HGS_W_GHL_TOKEN"
hotspot_id_field = "{ANCHOR}"
rate_limit = 50000

[schedule]
contacts = "0 0 1 1 *"
notes = "off"
tasks = "off"
full = "off"

[webhooks]
listen = "127.0.0.1:{port}"
hotspot_keys_env = ["HGS_W_KEY_A"]

[[pairs]]
name = "alpha"
hotspot_locations = ["{l0}"]
[pairs.ghl]
location_id = "{a}"

[[pairs]]
name = "beta"
hotspot_locations = ["{l1}"]
[pairs.ghl]
location_id = "{b}"
token_env = "HGS_W_GHL_TOKEN_BETA"
"#,
            state = dir.path("state/sync.db").display(),
            hs = sandbox.hotspot.base_url(),
            ghl_url = sandbox.ghl.base_url(),
            l0 = hs_locations[0],
            l1 = hs_locations[1],
            a = ghl_ids[0],
            b = ghl_ids[1],
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config")
        .arg(&config)
        .arg("run")
        .env_remove("HGS_CONFIG")
        .env_remove("RUST_LOG")
        .env("HGS_W_HS_KEY", sandbox.hotspot_api_key())
        .env("HGS_W_GHL_TOKEN", sandbox.ghl_token())
        .env("HGS_W_GHL_TOKEN_BETA", &beta_token)
        .env("HGS_W_KEY_A", KEYS[0]);
    let mut daemon = Daemon::spawn(cmd, dir.path("daemon.log"));
    daemon
        .wait_for_line(&["webhook receiver listening"], Duration::from_secs(20))
        .await;

    let url = |query: &str| format!("http://127.0.0.1:{port}/hooks/hotspotsystem{query}");
    sandbox.hotspot.set_webhooks(
        hs_locations
            .iter()
            .map(|l| WebhookSpec {
                location_id: l.clone(),
                event: WebhookEvent::CustomerCreate,
                url: url(&format!("?event=customer.create&location={l}")),
                key: KEYS[0].to_string(),
            })
            .collect(),
        WebhookOptions {
            batch_interval: Duration::from_millis(200),
            ..WebhookOptions::default()
        },
    );
    let emails_in = |location: &str| -> Vec<String> {
        sandbox.ghl.location(location).with_state(|s| {
            s.contacts
                .values()
                .filter_map(|c| c.email.clone())
                .collect()
        })
    };
    let queue = |pair: &str| -> Vec<QueuedEvent> {
        Store::open(dir.path(&format!("state/{pair}.db")))
            .unwrap()
            .webhook_events(100)
            .unwrap()
    };

    // A guest of beta's location, through the emulator's webhook of that location.
    let mut g = guest(201);
    g.location_id = hs_locations[1].clone();
    sandbox.hotspot.add_record(NewRecord::Customer(g.clone()));
    let beta_email = g.email.clone().unwrap();
    wait_for(&|| emails_in(&ghl_ids[1]).contains(&beta_email)).await;
    wait_for(&|| queue("beta").iter().all(|q| q.processed_at.is_some())).await;
    assert!(
        emails_in(&ghl_ids[0]).is_empty(),
        "alpha's sub-account got a contact"
    );
    assert!(queue("alpha").is_empty(), "{:#?}", queue("alpha"));
    assert_eq!(queue("beta").len(), 1);

    // A guest of alpha's location whose callback URL names no location: both pairs queue it
    // and run a pass; only alpha reads its location.
    let mut g = guest(202);
    g.location_id = hs_locations[0].clone();
    sandbox.hotspot.with_data(|d| d.customers.push(g.clone()));
    let alpha_email = g.email.clone().unwrap();
    let body = format!(
        r#"{{"id":"{}","UserName":"{}","email":"{alpha_email}"}}"#,
        g.id, g.user_name
    );
    let status = post(
        &url("?event=customer.create"),
        body.as_bytes(),
        Some(("X-HotspotSystem-Hmac-Sha256", KEYS[0])),
    )
    .await;
    assert_eq!(status, 200);
    wait_for(&|| emails_in(&ghl_ids[0]).contains(&alpha_email)).await;
    wait_for(&|| {
        ["alpha", "beta"].iter().all(|p| {
            queue(p).len() == 1 + usize::from(*p == "beta")
                && queue(p).iter().all(|q| q.processed_at.is_some())
        })
    })
    .await;
    assert!(!emails_in(&ghl_ids[1]).contains(&alpha_email));

    // A location no pair reads: answered 200 (retries would change nothing), stored nowhere.
    let body = br#"{"id":"9","UserName":"x","email":"nobody@example.com"}"#;
    let status = post(
        &url("?event=customer.create&location=999"),
        body,
        Some(("X-HotspotSystem-Hmac-Sha256", KEYS[0])),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(queue("alpha").len(), 1);
    assert_eq!(queue("beta").len(), 2);
    assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
}

/// `sandbox --webhook-url ... --new-guest-every-secs 1`: the emulators as a process of their own
/// send signed webhooks for the guests they add, and `run` syncs each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_command_sends_webhooks_for_the_guests_it_adds() {
    use std::io::{BufRead, BufReader};

    let port = free_port();
    let hook_url = format!("http://127.0.0.1:{port}/hooks/hotspotsystem?event=customer.create");
    let refused = std::process::Command::new(BIN)
        .args([
            "sandbox",
            "--webhook-url",
            "http://192.0.2.1/hooks/hotspotsystem",
        ])
        .output()
        .unwrap();
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--webhook-url"),
        "{refused:?}"
    );

    let mut sandbox = std::process::Command::new(BIN)
        .args(["sandbox", "--hotspot-port", "0", "--ghl-port", "0"])
        .args(["--locations", "1", "--customers", "2", "--subscribers", "0"])
        .args(["--transactions", "0", "--rate-limit", "100000"])
        .args(["--webhook-url", &hook_url, "--webhook-key", KEYS[1]])
        .args(["--webhook-header", "cgi", "--webhook-batch-ms", "200"])
        .args(["--new-guest-every-secs", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(sandbox.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Press Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
    }
    let after = |prefix: &str| -> String {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {lines:#?}"))
            .trim()
            .to_string()
    };
    let hs = after("HotspotSystem emulator:");
    let hs_key = after("header   sn-apikey:");
    let ghl = after("GHL emulator:");
    let token = after("headers  Authorization: Bearer");
    let location = after("location");
    assert!(lines.iter().any(|l| l.contains(&hook_url)), "{lines:#?}");

    let dir = TempDir::new("hooks-sandbox-cmd");
    let config = dir.path("config.toml");
    let state = dir.path("state.db");
    std::fs::write(&config, daemon_config(&state, &hs, &ghl, &location, port)).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config")
        .arg(&config)
        .arg("run")
        .env_remove("HGS_CONFIG")
        .env_remove("RUST_LOG")
        .env("HGS_W_HS_KEY", hs_key)
        .env("HGS_W_GHL_TOKEN", token)
        .env("HGS_W_KEY_A", KEYS[0])
        .env("HGS_W_KEY_B", KEYS[1]);
    let mut daemon = Daemon::spawn(cmd, dir.path("daemon.log"));
    daemon
        .wait_for_line(&["webhook receiver listening"], Duration::from_secs(20))
        .await;
    let processed = || {
        Store::open(&state)
            .ok()
            .and_then(|s| s.webhook_events(100).ok())
            .map(|q| q.iter().filter(|e| e.processed_at.is_some()).count())
            .unwrap_or(0)
    };
    wait_for(&|| processed() >= 2).await;
    let runs = Store::open(&state).unwrap().runs(100).unwrap();
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{runs:#?}"
    );
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
}

/// A webhook wakes a pass over just its records. The bodies here only name the records (an id,
/// nothing else), and the transaction's event comes before its guest's; the records are read
/// from the REST listing newest first, so the contact carries every field, no listing is read
/// whole, a guest not named (registered just before) is not written, and the regular pass then
/// has nothing left to write for the named one. Under sort honoured and sort ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_wakes_a_pass_over_just_its_records() {
    for (i, sort) in [SortSupport::Honoured, SortSupport::Ignored]
        .into_iter()
        .enumerate()
    {
        let env = FastEnv::start(
            &format!("hooks-targeted-{i}"),
            2,
            60,
            HotspotOptions {
                sort,
                ..HotspotOptions::default()
            },
            Duration::ZERO,
            20,
            &[("contacts", "0 0 0 1 1 *")],
        )
        .await;
        env.ok(&["sync"]).await;
        let port = free_port();
        let without_webhooks = std::fs::read_to_string(&env.config).unwrap();
        let mut text = without_webhooks.clone();
        text.push_str(&format!(
            "\n[webhooks]\nlisten = \"127.0.0.1:{port}\"\nhotspot_keys_env = [\"HGS_W_KEY_A\"]\n"
        ));
        std::fs::write(&env.config, text).unwrap();
        let mut cmd = env.command(&["run"]);
        cmd.env("HGS_W_KEY_A", KEYS[0]);
        let mut daemon = Daemon::spawn(cmd, env.dir.join(format!("daemon-{i}.log")));
        daemon
            .wait_for_line(&["webhook receiver listening"], Duration::from_secs(20))
            .await;

        let guests = env.register(2);
        // The newest is named; the one before it is not, and is below the named id.
        let (other, named) = (&guests[0], &guests[1]);
        // Both at one location, so that the read at the named one's location meets the other.
        let (location, email) = env.sandbox.hotspot.with_data(|d| {
            let c = d.customer_mut(&named.customer_id).unwrap();
            let (location, email) = (c.location_id.clone(), c.email.clone());
            d.customer_mut(&other.customer_id).unwrap().location_id = location.clone();
            for t in d.mac_transactions.iter_mut() {
                if t.id == other.transaction_id {
                    t.location_id = location.parse().unwrap();
                }
            }
            (location, email)
        });
        env.clear_requests();
        let url = |query: String| format!("http://127.0.0.1:{port}/hooks/hotspotsystem{query}");
        let signed = Some(("X-HotspotSystem-Hmac-Sha256", KEYS[0]));
        let body = format!(r#"{{"id":{}}}"#, named.transaction_id);
        let query = format!("?event=transaction.mac.create&location={location}");
        assert_eq!(post(&url(query), body.as_bytes(), signed).await, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let body = format!(r#"{{"id":"{}"}}"#, named.customer_id);
        let query = format!("?event=customer.create&location={location}");
        assert_eq!(post(&url(query), body.as_bytes(), signed).await, 200);
        env.wait_in_ghl(std::slice::from_ref(named), REACHES_GHL_WITHIN)
            .await;
        let state = Store::open(env.state_path()).unwrap();
        let deadline = Instant::now() + REACHES_GHL_WITHIN;
        while state
            .webhook_events(10)
            .unwrap()
            .iter()
            .any(|q| q.processed_at.is_none())
        {
            assert!(Instant::now() < deadline, "events left pending");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());

        assert_eq!(env.in_ghl(other).contacts, 0, "{sort:?}: a guest not named");
        let contact = env.contacts_of(&named.customer_id)[0].clone();
        let ghl_email = env
            .sandbox
            .ghl
            .with_state(|s| s.contacts[&contact].email.clone());
        assert_eq!(
            ghl_email, email,
            "{sort:?}: the contact's fields come from REST"
        );
        let requests = env.hotspot_requests();
        for r in &requests {
            assert!(
                r.query.contains("sort=-id") || r.path.ends_with("/locations"),
                "{sort:?}: a listing read whole: {r:?}"
            );
        }
        println!(
            "{sort:?}: the events' passes made {} HotspotSystem and {} GHL request(s): {:?}",
            requests.len(),
            env.ghl_request_count(),
            env.sandbox
                .ghl
                .requests()
                .iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect::<Vec<_>>()
        );

        let field_reads = env
            .sandbox
            .ghl
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/customFields"))
            .count();
        assert_eq!(
            field_reads, 1,
            "{sort:?}: the second pass resolves custom fields from the first one's read"
        );

        // The regular pass writes the other guest, and nothing for the named one.
        std::fs::write(&env.config, &without_webhooks).unwrap();
        env.clear_requests();
        env.ok(&["sync"]).await;
        for w in env.ghl_writes() {
            assert!(
                !w.contains(contact.as_str()),
                "{sort:?}: the regular pass wrote {w} for the named guest"
            );
        }
        assert!(env.in_ghl(named).complete(), "{:?}", env.in_ghl(named));
        assert!(env.in_ghl(other).complete(), "{:?}", env.in_ghl(other));
    }
}

/// An event whose record HotspotSystem does not list yet stays pending, and its pass runs
/// again (after 5 s) until the record is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_ahead_of_its_record_is_retried_until_the_record_is_listed() {
    let env = HookEnv::start("hooks-ahead", 3).await;
    let mut daemon = env.spawn_daemon().await;
    let g = guest(7);
    let email = g.email.clone().unwrap();
    let body = format!(r#"{{"id":"{}"}}"#, g.id);
    let status = env
        .post(
            "?event=customer.create&location=1",
            body.as_bytes(),
            Some(("X-HotspotSystem-Hmac-Sha256", KEYS[0])),
        )
        .await;
    assert_eq!(status, 200);
    daemon
        .wait_for_line(&["targeted pass done"], Duration::from_secs(20))
        .await;
    assert_eq!(env.contact_id(&email), None);
    assert!(env.queue().iter().all(|q| q.processed_at.is_none()));
    env.sandbox.hotspot.add_record(NewRecord::Customer(g));
    env.wait_until(REACHES_GHL_WITHIN, |e| e.contact_id(&email).is_some())
        .await
        .unwrap_or_else(|| panic!("never written:\n{}", daemon.log()));
    env.wait_until(Duration::from_secs(5), |e| {
        e.queue().iter().all(|q| q.processed_at.is_some())
    })
    .await
    .expect("the event is processed once its record is written");
    assert!(daemon.log().contains("still pending"), "{}", daemon.log());
    assert_eq!(env.contacts_with(&email), 1);
    assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
    // `status` shows the queue.
    let out = env.command(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "Webhook events from hotspotsystem: none pending; 1 received in the last 24 h"
        ),
        "{text}"
    );
    // `check` says what the receiver would verify with, never the keys.
    let out = env.command(&["check"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("receives on 127.0.0.1:{}", env.port))
            && text.contains("2 HotspotSystem key(s)")
            && text.contains("no ghl_ed25519_public_key_file"),
        "{text}"
    );
    assert!(KEYS.iter().all(|k| !text.contains(k)), "{text}");
}
