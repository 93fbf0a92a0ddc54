//! `[[pairs]]`: one configuration file, several GHL sub-accounts, each fed by its own
//! HotspotSystem locations and keeping its own state file. Through the real binary against the
//! emulators (two GHL locations, four HotspotSystem locations).

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use hotspot_ghl_sync::sandbox::ghl::GhlOptions;
use hotspot_ghl_sync::sandbox::seed::{SeedSpec, Spread};
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use support::{ANCHOR, BIN, Out, TempDir};

struct Agency {
    sandbox: Sandbox,
    dir: TempDir,
    config: PathBuf,
    /// HotspotSystem location ids, four of them: alpha reads the first two, beta the others.
    hotspot_locations: Vec<String>,
    /// GHL location ids: alpha's, beta's.
    ghl: (String, String),
    beta_token: String,
}

impl Agency {
    async fn start(name: &str) -> Agency {
        let mut ghl = GhlOptions::default().with_locations(2);
        ghl.rate_limit = 100_000;
        let sandbox = Sandbox::start(SandboxOptions {
            seed: SeedSpec {
                seed: 7,
                locations: 4,
                customers: 40,
                subscribers: 0,
                subscribers_also_customers: 0,
                transactions: 0,
            },
            spread: Spread::Even,
            ghl,
            ..SandboxOptions::default()
        })
        .await
        .expect("sandbox starts");
        let hotspot_locations = sandbox
            .hotspot
            .with_data(|d| d.locations.iter().map(|l| l.id.clone()).collect());
        let ids = sandbox.ghl.location_ids();
        let beta_token = sandbox.ghl.token_for(&ids[1]).expect("beta has a PIT");
        let dir = TempDir::new(name);
        let config = dir.path("config.toml");
        let agency = Agency {
            sandbox,
            dir,
            config,
            hotspot_locations,
            ghl: (ids[0].clone(), ids[1].clone()),
            beta_token,
        };
        agency.write_config("");
        agency
    }

    /// The two-pair file; `beta_extra` is appended to beta's `[pairs.ghl]`.
    fn write_config(&self, beta_extra: &str) {
        let l = &self.hotspot_locations;
        let text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_TEST_HS_KEY"
rate_limit = 10000

[ghl]
base_url = "{ghl}"
token_env = "HGS_TEST_GHL_TOKEN"
hotspot_id_field = "{ANCHOR}"
rate_limit = 50000
max_concurrency = 8

[http]
timeout_secs = 5
max_attempts = 2
max_elapsed_secs = 10

[contacts.tags]
base = "hotspotsystem"

[[pairs]]
name = "alpha"
hotspot_locations = ["{l0}", "{l1}"]
[pairs.ghl]
location_id = "{a}"

[[pairs]]
name = "beta"
hotspot_locations = ["{l2}", "{l3}"]
[pairs.ghl]
location_id = "{b}"
token_env = "HGS_TEST_GHL_TOKEN_BETA"
{beta_extra}
[pairs.contacts.tags]
base = "beta-guest"
"#,
            state = self.dir.path("state/sync.db").display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
            l0 = l[0],
            l1 = l[1],
            l2 = l[2],
            l3 = l[3],
            a = self.ghl.0,
            b = self.ghl.1,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("HGS_TEST_HS_KEY", self.sandbox.hotspot_api_key())
            .env("HGS_TEST_GHL_TOKEN", self.sandbox.ghl_token())
            .env("HGS_TEST_GHL_TOKEN_BETA", &self.beta_token)
            .env_remove("RUST_LOG")
            .env_remove("HGS_CONFIG")
            .output()
            .await
            .expect("binary runs");
        Out::from_output(out)
    }

    /// HotspotSystem ids of the customers at `locations`.
    fn customers_at(&self, locations: &[String]) -> BTreeSet<String> {
        self.sandbox.hotspot.with_data(|d| {
            d.customers
                .iter()
                .filter(|c| locations.contains(&c.location_id))
                .map(|c| c.id.clone())
                .collect()
        })
    }

    /// The anchors (HotspotSystem ids) of one GHL location's contacts, and their tags.
    fn contacts_of(&self, location: &str) -> Vec<(String, Vec<String>)> {
        self.sandbox.ghl.location(location).with_state(|s| {
            let Some(field) = s.custom_field(ANCHOR).map(|f| f.id.clone()) else {
                return Vec::new();
            };
            s.contacts
                .values()
                .filter_map(|c| {
                    let anchor = c.custom_fields.iter().find(|(id, _)| *id == field)?;
                    Some((anchor.1.as_str()?.to_string(), c.tags.clone()))
                })
                .collect()
        })
    }
}

#[tokio::test]
async fn each_pair_syncs_its_own_locations_into_its_own_sub_account_with_its_own_state() {
    let agency = Agency::start("pairs-sync").await;
    let out = agency.run(&["sync"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let alpha_at = out
        .stdout
        .find("== pair alpha ==")
        .unwrap_or_else(|| panic!("{}", out.show()));
    let beta_at = out
        .stdout
        .find("== pair beta ==")
        .unwrap_or_else(|| panic!("{}", out.show()));
    assert!(alpha_at < beta_at, "{}", out.show());

    let alpha_ids = agency.customers_at(&agency.hotspot_locations[..2]);
    let beta_ids = agency.customers_at(&agency.hotspot_locations[2..]);
    let alpha = agency.contacts_of(&agency.ghl.0);
    let beta = agency.contacts_of(&agency.ghl.1);
    assert!(!alpha.is_empty() && !beta.is_empty(), "both synced");
    for (anchor, tags) in &alpha {
        assert!(alpha_ids.contains(anchor), "{anchor} is not alpha's guest");
        assert!(tags.contains(&"hotspotsystem".to_string()), "{tags:?}");
        assert!(!tags.contains(&"beta-guest".to_string()), "{tags:?}");
    }
    for (anchor, tags) in &beta {
        assert!(beta_ids.contains(anchor), "{anchor} is not beta's guest");
        // beta's own `[pairs.contacts.tags] base` replaces the inherited one.
        assert!(tags.contains(&"beta-guest".to_string()), "{tags:?}");
        assert!(!tags.contains(&"hotspotsystem".to_string()), "{tags:?}");
    }
    let distinct =
        |v: &[(String, Vec<String>)]| v.iter().map(|(a, _)| a).collect::<BTreeSet<_>>().len();
    assert_eq!(distinct(&alpha), alpha.len(), "no guest twice in alpha");
    assert_eq!(distinct(&beta), beta.len(), "no guest twice in beta");

    // A state file per pair, beside the top-level one, which no pair uses.
    assert!(agency.dir.path("state/alpha.db").exists());
    assert!(agency.dir.path("state/beta.db").exists());
    assert!(!agency.dir.path("state/sync.db").exists());

    // A second pass finds everything in step, in both pairs; JSON names each pair.
    let out = agency.run(&["sync", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let doc: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{}", out.show()));
    let pairs: Vec<&str> = doc
        .as_array()
        .expect("an array of pairs")
        .iter()
        .map(|p| p["pair"].as_str().unwrap())
        .collect();
    assert_eq!(pairs, ["alpha", "beta"]);
    for p in doc.as_array().unwrap() {
        assert_eq!(p["exit_code"], 0, "{p}");
        assert_eq!(p["report"]["status"], "succeeded", "{p}");
    }
    assert_eq!(agency.contacts_of(&agency.ghl.0).len(), alpha.len());
    assert_eq!(agency.contacts_of(&agency.ghl.1).len(), beta.len());
}

#[tokio::test]
async fn pair_selects_one_pair_and_status_shows_every_pair() {
    let agency = Agency::start("pairs-select").await;
    let out = agency.run(&["--pair", "beta", "sync"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    assert!(
        agency.contacts_of(&agency.ghl.0).is_empty(),
        "alpha untouched"
    );
    assert!(!agency.contacts_of(&agency.ghl.1).is_empty());
    assert!(!agency.dir.path("state/alpha.db").exists());

    let out = agency.run(&["status"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let line = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}: {}", out.show()))
            .to_string()
    };
    assert!(line("alpha").contains("never"), "{}", out.show());
    assert!(line("alpha").contains(&agency.ghl.0), "{}", out.show());
    assert!(line("beta").contains("succeeded"), "{}", out.show());
    assert!(
        line("beta").contains(&agency.hotspot_locations[2]),
        "{}",
        out.show()
    );

    let out = agency.run(&["status", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let rows: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{}", out.show()));
    assert_eq!(rows[0]["pair"], "alpha");
    assert_eq!(rows[0]["state"], "none");
    assert_eq!(rows[1]["pair"], "beta");
    assert_eq!(rows[1]["ghl_location"], agency.ghl.1.as_str());
    assert_eq!(rows[1]["last_run"]["status"], "succeeded");
    assert_eq!(rows[1]["failures"], 0);

    // One pair's status, as in the single form.
    let out = agency.run(&["--pair", "beta", "status"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    assert!(out.stdout.contains("linked"), "{}", out.show());

    // Commands that read one state need the pair named.
    let out = agency.run(&["report"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(out.stderr.contains("--pair"), "{}", out.show());
    assert!(out.stderr.contains("alpha, beta"), "{}", out.show());
    let out = agency
        .run(&["report", "--pair", "beta", "--format", "json"])
        .await;
    assert_eq!(out.code, 0, "{}", out.show());
    let out = agency.run(&["--pair", "alpha", "report"]).await;
    assert_eq!(out.code, 4, "no state of alpha yet: {}", out.show());
    assert!(out.stderr.contains("alpha.db"), "{}", out.show());

    let out = agency.run(&["--pair", "gamma", "sync"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(
        out.stderr.contains("no pair named \"gamma\""),
        "{}",
        out.show()
    );
}

#[tokio::test]
async fn one_pair_refused_does_not_stop_the_other() {
    let agency = Agency::start("pairs-isolated").await;
    agency.sandbox.ghl.location(&agency.ghl.0).revoke_tokens();
    let out = agency.run(&["sync"]).await;
    assert_eq!(out.code, 2, "the worst pair's code: {}", out.show());
    assert!(out.stderr.contains("pair alpha"), "{}", out.show());
    assert!(!agency.contacts_of(&agency.ghl.1).is_empty(), "beta ran");
}

#[tokio::test]
async fn an_error_in_a_pair_names_the_pair_key_and_its_line() {
    let agency = Agency::start("pairs-errors").await;
    agency.write_config("rate_limit = 0");
    let text = std::fs::read_to_string(&agency.config).unwrap();
    let line = text.lines().position(|l| l == "rate_limit = 0").unwrap() + 1;
    let out = agency.run(&["sync"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(
        out.stderr
            .contains(&format!(":{line}: key `pairs[1].ghl.rate_limit`")),
        "{}",
        out.show()
    );

    agency.write_config("tokn_env = \"X\"");
    let text = std::fs::read_to_string(&agency.config).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("tokn_env"))
        .unwrap()
        + 1;
    let out = agency.run(&["status"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(
        out.stderr
            .contains(&format!(":{line}: key `pairs[1].ghl.tokn_env`")),
        "{}",
        out.show()
    );

    // Two pairs on one GHL location would fight over its contacts.
    agency.write_config("");
    let text = std::fs::read_to_string(&agency.config).unwrap().replace(
        &format!("location_id = \"{}\"", agency.ghl.1),
        &format!("location_id = \"{}\"", agency.ghl.0),
    );
    std::fs::write(&agency.config, &text).unwrap();
    let out = agency.run(&["check"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(
        out.stderr.contains("key `pairs[1].ghl.location_id`"),
        "{}",
        out.show()
    );
}
