//! The dashboard of an installation with several pairs: the overview of pairs at `/` and its
//! JSON twin, each pair's own pages under `/pairs/{name}/` with their links kept inside the
//! pair, `/healthz` and `/metrics` per pair, and pairs whose state file is missing or corrupt
//! shown as such without breaking anything. The pairs' states are seeded by the real binary
//! (`sync` of each pair, each to its own GHL sub-account).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hotspot_ghl_sync::config::{Config, Form, Installation, Pair};
use hotspot_ghl_sync::dashboard::{self, Exposure};
use hotspot_ghl_sync::privacy::PersonalData;
use hotspot_ghl_sync::sandbox::ghl::GhlOptions;
use hotspot_ghl_sync::sandbox::seed::{SeedSpec, Spread};
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::secret::InsecureFiles;
use serde_json::Value;
use support::{BIN, Out, TempDir};

/// Two pairs synced by the binary, and two that never could be: one without a state file,
/// one whose state file is not a database.
struct Agency {
    _sandbox: Sandbox,
    dir: TempDir,
    inst: Installation,
    /// The GHL sub-account of each synced pair.
    ghl: [String; 2],
}

const SYNCED: [&str; 2] = ["cafe-zurich", "hotel-basel"];

fn pair_config(
    sb: &Sandbox,
    state: &Path,
    ghl_location: &str,
    token_env: &str,
    hs: &str,
) -> String {
    format!(
        r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs_url}"
api_key_env = "HGS_TEST_HS_KEY"
locations = ["{hs}"]
rate_limit = 10000

[ghl]
base_url = "{ghl_url}"
location_id = "{ghl_location}"
auth = "private_token"
token_env = "{token_env}"
hotspot_id_field = "contact.hotspot_customer_id"
rate_limit = 50000

[http]
timeout_secs = 5
max_attempts = 3
max_elapsed_secs = 20
"#,
        state = state.display(),
        hs_url = sb.hotspot.base_url(),
        ghl_url = sb.ghl.base_url(),
    )
}

async fn agency() -> Agency {
    let mut ghl = GhlOptions::default().with_locations(2);
    ghl.rate_limit = 100_000;
    let sandbox = Sandbox::start(SandboxOptions {
        seed: SeedSpec {
            seed: 16,
            locations: 2,
            customers: 20,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 10,
        },
        spread: Spread::Even,
        ghl,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let dir = TempDir::new("dashboard-pairs");
    let hs_ids: Vec<String> = sandbox
        .hotspot
        .with_data(|d| d.locations.iter().map(|l| l.id.clone()).collect());
    let ghl_ids = sandbox.ghl.location_ids();
    let mut pairs = Vec::new();
    for (i, name) in SYNCED.iter().enumerate() {
        let path = dir.path(&format!("{name}.toml"));
        let state = dir.path(&format!("{name}.db"));
        let token = sandbox.ghl.token_for(&ghl_ids[i]).unwrap();
        std::fs::write(
            &path,
            pair_config(
                &sandbox,
                &state,
                &ghl_ids[i],
                "HGS_TEST_PAIR_TOKEN",
                &hs_ids[i],
            ),
        )
        .unwrap();
        let out = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .args(["sync", "--full"])
            .env("HGS_TEST_HS_KEY", sandbox.hotspot_api_key())
            .env("HGS_TEST_PAIR_TOKEN", token)
            .env_remove("RUST_LOG")
            .output()
            .await
            .unwrap();
        let out = Out::from_output(out);
        assert_eq!(out.code, 0, "sync of {name}: {}", out.stderr);
        pairs.push(Pair {
            name: name.to_string(),
            config: Config::load_with(&path, true, InsecureFiles::Refuse).unwrap(),
        });
    }
    let mut never = pairs[0].config.clone();
    never.state.path = dir.path("never-synced.db");
    let mut broken = pairs[1].config.clone();
    broken.state.path = dir.path("broken.db");
    std::fs::write(
        &broken.state.path,
        "this is not a database, it was cut short",
    )
    .unwrap();
    pairs.push(Pair {
        name: "never-synced".into(),
        config: never,
    });
    pairs.push(Pair {
        name: "broken".into(),
        config: broken,
    });
    Agency {
        _sandbox: sandbox,
        inst: Installation {
            source_path: dir.path("agency.toml"),
            pairs,
            form: Form::Pairs,
            max_concurrent_pairs: 4,
        },
        dir,
        ghl: [ghl_ids[0].clone(), ghl_ids[1].clone()],
    }
}

/// The installation's dashboard on an ephemeral loopback port, until the sender is dropped.
async fn serve(
    inst: &Installation,
    personal: PersonalData,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = dashboard::installation_app(
        inst,
        None,
        Exposure {
            personal,
            ..Exposure::loopback()
        },
    );
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (format!("http://{addr}"), tx)
}

async fn get(base: &str, path: &str) -> (u16, String) {
    let res = support::http_client()
        .get(format!("{base}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The emails of the guests of the `i`th synced pair's HotspotSystem location.
fn emails_of_pair(a: &Agency, i: usize) -> Vec<String> {
    let loc = &a.inst.pairs[i].config.hotspot.locations[0];
    a._sandbox.hotspot.with_data(|d| {
        d.customers
            .iter()
            .filter(|c| &c.location_id == loc)
            .filter_map(|c| c.email.clone())
            .filter(|e| !e.is_empty())
            .collect()
    })
}

fn state(a: &Agency, name: &str) -> PathBuf {
    a.inst
        .pairs
        .iter()
        .find(|p| p.name == name)
        .unwrap()
        .config
        .state
        .path
        .clone()
}

#[tokio::test]
async fn the_home_page_is_an_overview_of_every_pair() {
    let a = agency().await;
    let (base, _stop) = serve(&a.inst, PersonalData::Show).await;

    let (status, home) = get(&base, "/").await;
    assert_eq!(status, 200, "{home}");
    assert!(home.contains("id=\"pairs\""), "{home}");
    for (i, name) in SYNCED.iter().enumerate() {
        assert!(home.contains(&format!("href=\"/pairs/{name}\"")), "{name}");
        assert!(home.contains(&a.ghl[i]), "GHL location of {name}");
        assert!(
            home.contains(&format!("href=\"/pairs/{name}/runs/1\"")),
            "last run of {name}"
        );
    }
    assert!(
        home.contains("b-nostate"),
        "the pair without a state file shows so"
    );
    assert!(
        home.contains("b-unreadable"),
        "the corrupt state file shows so"
    );
    assert!(home.contains("never-synced.db yet"));
    assert!(home.contains("2 of 4 pairs need attention"), "{home}");

    let pairs: Value = serde_json::from_str(&get(&base, "/api/pairs").await.1).unwrap();
    let pairs = pairs.as_array().unwrap();
    assert_eq!(pairs.len(), 4);
    let by_name = |n: &str| pairs.iter().find(|p| p["name"] == n).unwrap().clone();
    for (i, name) in SYNCED.iter().enumerate() {
        let p = by_name(name);
        assert_eq!(p["state"], "ok");
        assert_eq!(p["ghl_location_id"], a.ghl[i].as_str());
        assert_eq!(p["last_run"]["id"], 1);
        assert_eq!(p["last_run"]["status"], "succeeded");
        assert_eq!(p["last_run_failed"], 0);
        assert_eq!(p["links"]["pages"], format!("/pairs/{name}"));
    }
    assert_eq!(by_name("never-synced")["state"], "missing");
    let broken = by_name("broken");
    assert_eq!(broken["state"], "unreadable");
    assert_eq!(broken["healthy"], false);
    assert!(broken["error"].as_str().unwrap().len() > 3);
}

#[tokio::test]
async fn each_pair_has_its_own_pages_under_its_name() {
    let a = agency().await;
    let (base, _stop) = serve(&a.inst, PersonalData::Show).await;
    let zurich = SYNCED[0];
    let basel = SYNCED[1];

    let (status, page) = get(&base, &format!("/pairs/{zurich}")).await;
    assert_eq!(status, 200, "{page}");
    let (status, again) = get(&base, &format!("/pairs/{zurich}/")).await;
    assert_eq!(status, 200, "a trailing slash is followed to the same page");
    assert!(again.contains("id=\"health\""));
    assert!(page.contains("id=\"health\""), "the pair's own overview");
    assert!(page.contains(&format!("href=\"/pairs/{zurich}/runs/1\"")));
    assert!(
        page.contains(&format!("href=\"/pairs/{zurich}/calls\"")),
        "the navigation stays in the pair"
    );
    assert!(page.contains("<a href=\"/\">All pairs</a>"));
    assert!(
        !page.contains("href=\"/runs"),
        "no link leaves the pair: {page}"
    );

    // Each pair's runs and guests are its own: a guest of Basel is not a guest of Zurich.
    let basel_runs: Value =
        serde_json::from_str(&get(&base, &format!("/pairs/{basel}/api/runs")).await.1).unwrap();
    assert_eq!(basel_runs.as_array().unwrap().len(), 1);
    let zurich_runs: Value =
        serde_json::from_str(&get(&base, &format!("/pairs/{zurich}/api/runs")).await.1).unwrap();
    assert_ne!(
        basel_runs[0]["started_at"], zurich_runs[0]["started_at"],
        "each pair's pages read its own state"
    );
    assert!(state(&a, basel).is_file());

    for path in [
        "runs",
        "runs/1",
        "contacts",
        "notes",
        "tasks",
        "appointments",
        "guests",
        "calls",
        "errors",
    ] {
        let (status, body) = get(&base, &format!("/pairs/{basel}/{path}")).await;
        assert_eq!(status, 200, "/pairs/{basel}/{path}: {body}");
        assert!(body.contains(&format!("href=\"/pairs/{basel}/")), "{path}");
    }
    let (status, _) = get(&base, "/pairs/no-such-pair/runs").await;
    assert_eq!(status, 404);
    let (status, body) = get(&base, "/pairs/never-synced/runs").await;
    assert_eq!(status, 503, "a pair without state says so on its pages");
    assert!(body.contains("never-synced.db"));
    let (status, _) = get(&base, "/pairs/broken").await;
    assert_eq!(
        status, 500,
        "a corrupt state file is that pair's error page"
    );
    let (status, _) = get(&base, &format!("/pairs/{zurich}")).await;
    assert_eq!(status, 200, "and the other pairs still show");
}

#[tokio::test]
async fn healthz_names_the_unhealthy_pairs_and_metrics_carry_a_pair_label() {
    let a = agency().await;
    let (base, stop) = serve(&a.inst, PersonalData::Show).await;

    let (status, body) = get(&base, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("unhealthy\n"));
    assert!(
        body.contains("never-synced: no state database at"),
        "{body}"
    );
    assert!(body.contains("broken: state database unreadable"), "{body}");
    for name in SYNCED {
        assert!(
            !body.contains(&format!("{name}:")),
            "{name} is healthy: {body}"
        );
    }

    let (status, metrics) = get(&base, "/metrics").await;
    assert_eq!(status, 200);
    for name in SYNCED {
        assert!(
            metrics.contains(&format!("hgs_healthy{{pair=\"{name}\"}} 1")),
            "{metrics}"
        );
        assert!(metrics.contains(&format!(
            "hgs_runs{{pair=\"{name}\",status=\"succeeded\"}} 1"
        )));
        assert!(metrics.contains(&format!("hgs_state_readable{{pair=\"{name}\"}} 1")));
    }
    assert!(metrics.contains("hgs_healthy{pair=\"broken\"} 0"));
    assert!(metrics.contains("hgs_state_readable{pair=\"never-synced\"} 0"));
    assert_eq!(
        metrics.matches("# TYPE hgs_runs gauge").count(),
        1,
        "one header per family"
    );

    // Without the two pairs that cannot be read, the installation is healthy.
    drop(stop);
    let mut healthy = a.inst.clone();
    healthy.pairs.retain(|p| SYNCED.contains(&p.name.as_str()));
    let (base, _stop) = serve(&healthy, PersonalData::Show).await;
    let (status, body) = get(&base, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let h: Value = serde_json::from_str(&get(&base, "/api/health").await.1).unwrap();
    assert_eq!(h["healthy"], true);
    assert_eq!(h["pairs"].as_array().unwrap().len(), 2);
    let _ = &a.dir;
}

/// With personal data masked, a pair's guest search is no oracle of who is a guest: an email
/// finds nothing (it does, shown), as in the single form; the overview shows none either.
#[tokio::test]
async fn personal_data_stays_masked_on_every_pairs_pages() {
    let a = agency().await;
    let zurich = SYNCED[0];
    let email = emails_of_pair(&a, 0)[0].clone();
    let q = email.replace('@', "%40");
    let (shown, show) = serve(&a.inst, PersonalData::Show).await;
    let (status, body) = get(&shown, &format!("/pairs/{zurich}/api/guests?q={q}")).await;
    assert_eq!(status, 200, "shown, the email finds its guest: {body}");
    drop(show);

    let (base, _stop) = serve(&a.inst, PersonalData::Mask).await;
    let (status, _) = get(&base, &format!("/pairs/{zurich}/api/guests?q={q}")).await;
    assert_eq!(status, 404, "masked, an email finds nothing");
    let (status, page) = get(&base, &format!("/pairs/{zurich}/guests?q={q}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("looked up by id only"), "{page}");
    let every_email: Vec<String> = (0..2).flat_map(|i| emails_of_pair(&a, i)).collect();
    for path in ["/", "/api/pairs"] {
        let (status, body) = get(&base, path).await;
        assert_eq!(status, 200, "{path}");
        for e in &every_email {
            assert!(!body.contains(e.as_str()), "{path} shows {e}");
        }
    }
}
