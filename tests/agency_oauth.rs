//! The agency's OAuth installation, run as the real binary against the emulators started in this
//! process: the Company token connected with `auth ghl exchange` into the agency's token store,
//! a location token minted per sub-account and kept in that pair's state, minted again when it
//! expires or is rejected, and a sub-account that uninstalled the app failing alone, by name.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::Utc;
use hotspot_ghl_sync::sandbox::ghl::{GhlOptions, LocationTokenAnswer, PRODUCT_SCOPES};
use hotspot_ghl_sync::sandbox::seed::{SeedSpec, Spread};
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::{RunStatus, Store, StoredToken};
use secrecy::ExposeSecret;
use support::receiver::Receiver;
use support::{ANCHOR, BIN, CLIENT_ID, CLIENT_SECRET, Out};

/// Exit code of an authentication (or configuration) error.
const EXIT_AUTH: i32 = 2;
const GUESTS: usize = 4;

struct Env {
    sandbox: Sandbox,
    dir: support::TempDir,
    /// Where `[notify]` posts, when a test adds it.
    hook: Receiver,
}

impl Env {
    /// Three sub-accounts under one agency; `GUESTS` guests at one HotspotSystem location.
    async fn start(name: &str) -> Env {
        Env::start_with(name, 1).await
    }

    /// Three sub-accounts under one agency; `GUESTS` guests spread evenly over
    /// `hotspot_locations` HotspotSystem locations.
    async fn start_with(name: &str, hotspot_locations: usize) -> Env {
        Env::start_answering(name, hotspot_locations, LocationTokenAnswer::Documented).await
    }

    /// As [`Env::start_with`], the location tokens minted with the answer `answer`.
    async fn start_answering(
        name: &str,
        hotspot_locations: usize,
        answer: LocationTokenAnswer,
    ) -> Env {
        let sandbox = Sandbox::start(SandboxOptions {
            spread: Spread::Even,
            seed: SeedSpec {
                seed: 16,
                locations: hotspot_locations,
                customers: GUESTS,
                subscribers: 0,
                subscribers_also_customers: 0,
                transactions: 0,
            },
            ghl: GhlOptions {
                rate_limit: 100_000,
                location_token_answer: answer,
                ..GhlOptions::default().with_locations(3)
            },
            ..SandboxOptions::default()
        })
        .await
        .expect("sandbox");
        Env {
            sandbox,
            dir: support::TempDir::new(&format!("agency-oauth-{name}")),
            hook: Receiver::start().await,
        }
    }

    /// The `i`th sub-account's location id.
    fn location(&self, i: usize) -> String {
        self.sandbox.ghl.location_ids()[i].clone()
    }

    fn agency_store(&self) -> PathBuf {
        self.dir.path("agency.db")
    }

    /// A single-pair configuration syncing into `location` under the agency, with its own state.
    fn config_for(&self, location: &str, extra_ghl: &str) -> PathBuf {
        let config = self.dir.path(&format!("{location}.toml"));
        let text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_T_HOTSPOT_KEY"
rate_limit = 10000

[ghl]
base_url = "{ghl}"
location_id = "{location}"
auth = "agency"
company_id = "{company}"
agency_state = "{agency}"
client_id_env = "HGS_T_CLIENT_ID"
client_secret_env = "HGS_T_CLIENT_SECRET"
hotspot_id_field = "{ANCHOR}"
rate_limit = 50000
{extra_ghl}
[http]
timeout_secs = 5
max_attempts = 2
max_elapsed_secs = 5
"#,
            state = self.state_of(location).display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
            company = self.sandbox.ghl.company_id(),
            agency = self.agency_store().display(),
        );
        std::fs::write(&config, text).unwrap();
        config
    }

    /// A `[[pairs]]` file under the agency: pair `p<i>` syncs HotspotSystem location `i` into
    /// GHL sub-account `ghl[i]`, its state `<location>.db`, as [`Env::state_of`] names it.
    fn pairs_config(&self, ghl: &[String]) -> PathBuf {
        let config = self.dir.path("pairs.toml");
        let hotspot: Vec<String> = self
            .sandbox
            .hotspot
            .with_data(|d| d.locations.iter().map(|l| l.id.clone()).collect());
        let mut text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_T_HOTSPOT_KEY"
rate_limit = 10000

[ghl]
base_url = "{ghl}"
auth = "agency"
company_id = "{company}"
agency_state = "{agency}"
client_id_env = "HGS_T_CLIENT_ID"
client_secret_env = "HGS_T_CLIENT_SECRET"
hotspot_id_field = "{ANCHOR}"
rate_limit = 50000

[http]
timeout_secs = 5
max_attempts = 2
max_elapsed_secs = 5
"#,
            state = self.dir.path("top.db").display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
            company = self.sandbox.ghl.company_id(),
            agency = self.agency_store().display(),
        );
        for (i, location) in ghl.iter().enumerate() {
            text += &format!(
                "\n[[pairs]]\nname = \"p{i}\"\nhotspot_locations = [\"{hs}\"]\nstate = \"{state}\"\n[pairs.ghl]\nlocation_id = \"{location}\"\n",
                hs = hotspot[i],
                state = self.state_of(location).display(),
            );
        }
        std::fs::write(&config, text).unwrap();
        config
    }

    /// HotspotSystem ids of the guests at HotspotSystem location number `i`.
    fn guests_at(&self, i: usize) -> BTreeSet<String> {
        self.sandbox.hotspot.with_data(|d| {
            let location = d.locations[i].id.clone();
            d.customers
                .iter()
                .filter(|c| c.location_id == location)
                .map(|c| c.id.clone())
                .collect()
        })
    }

    fn state_of(&self, location: &str) -> PathBuf {
        self.dir.path(&format!("{location}.db"))
    }

    async fn run(&self, config: &PathBuf, args: &[&str]) -> Out {
        let out = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("HGS_CONFIG")
            .env_remove("RUST_LOG")
            .env("HGS_T_HOTSPOT_KEY", self.sandbox.hotspot_api_key())
            .env("HGS_T_CLIENT_ID", CLIENT_ID)
            .env("HGS_T_CLIENT_SECRET", CLIENT_SECRET)
            .env("HGS_T_HOOK", self.hook.url("/agency"))
            .output()
            .await
            .expect("run the binary");
        let out = Out::from_output(out);
        self.assert_no_secret(&out);
        out
    }

    /// The agency admin approves the app for the agency; `auth ghl exchange` stores the pair.
    async fn connect_agency(&self, config: &PathBuf) {
        let mut scopes = PRODUCT_SCOPES.to_vec();
        scopes.extend(["oauth.write", "oauth.readonly"]);
        let code = self.sandbox.ghl.issue_auth_code(&scopes);
        let out = self
            .run(config, &["auth", "ghl", "exchange", "--code", &code])
            .await;
        assert_eq!(out.code, 0, "{}", out.show());
        assert!(!out.stdout.contains("WARNING"), "{}", out.show());
    }

    async fn sync(&self, config: &PathBuf) -> Out {
        let out = self.run(config, &["sync"]).await;
        assert_eq!(out.code, 0, "{}", out.show());
        out
    }

    /// Location tokens the emulator minted (the request log does not say for which location:
    /// form bodies are not recorded, so each test lets one location mint at a time).
    fn mints(&self) -> usize {
        self.sandbox
            .ghl
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/oauth/locationToken" && r.status == 200)
            .count()
    }

    /// HotspotSystem ids on the contacts of `location`.
    fn guests_in(&self, location: &str) -> BTreeSet<String> {
        self.sandbox.ghl.location(location).with_state(|s| {
            let Some(field) = s.custom_field(ANCHOR).map(|f| f.id.clone()) else {
                return BTreeSet::new();
            };
            s.contacts
                .values()
                .filter_map(|c| c.custom_fields.iter().find(|(id, _)| *id == field))
                .filter_map(|(_, v)| v.as_str().map(str::to_string))
                .collect()
        })
    }

    /// Every token this test's files hold, and the app's client secret.
    fn secrets(&self) -> Vec<String> {
        let mut out = vec![CLIENT_SECRET.to_string()];
        let mut take = |path: PathBuf, provider: &str| {
            if !path.exists() {
                return;
            }
            if let Ok(Some(row)) = Store::open(&path).and_then(|s| s.token(provider)) {
                out.push(row.access_token.expose_secret().to_string());
                if let Some(r) = row.refresh_token {
                    out.push(r.expose_secret().to_string());
                }
            }
        };
        take(self.agency_store(), "ghl-agency");
        for loc in self.sandbox.ghl.location_ids() {
            take(self.state_of(&loc), "ghl-location");
        }
        out
    }

    fn assert_no_secret(&self, out: &Out) {
        for secret in self.secrets() {
            assert!(
                !out.stdout.contains(&secret) && !out.stderr.contains(&secret),
                "a secret was printed:\n{}",
                out.show()
            );
        }
    }

    fn kept_location_token(&self, location: &str) -> Option<StoredToken> {
        Store::open(self.state_of(location))
            .unwrap()
            .token("ghl-location")
            .unwrap()
    }
}

#[tokio::test]
async fn a_sync_mints_a_location_token_writes_into_that_location_only_and_keeps_it() {
    let env = Env::start("mint").await;
    let (a, b, c) = (env.location(0), env.location(1), env.location(2));
    let config = env.config_for(&b, "");
    env.connect_agency(&config).await;
    assert!(env.agency_store().exists());

    // `check` mints to try the token, and leaves no state file behind.
    let check = env.run(&config, &["check"]).await;
    assert_eq!(check.code, 0, "{}", check.show());
    assert!(
        check
            .stdout
            .contains("location token minted from the agency's installation accepted"),
        "{}",
        check.show()
    );
    assert!(!env.state_of(&b).exists());
    assert_eq!(env.mints(), 1);

    env.sync(&config).await;
    assert_eq!(env.mints(), 2);
    assert_eq!(env.guests_in(&b).len(), GUESTS, "every guest in B");
    assert!(env.guests_in(&a).is_empty(), "nothing in A");
    assert!(env.guests_in(&c).is_empty(), "nothing in C");
    // The Company pair stays in the agency's store; the pair's state keeps only its location's.
    let kept = env
        .kept_location_token(&b)
        .expect("the location token is kept");
    assert_eq!(kept.location_id.as_deref(), Some(b.as_str()));
    assert!(kept.refresh_token.is_none());
    let state = Store::open(env.state_of(&b)).unwrap();
    assert!(state.token("ghl-agency").unwrap().is_none());
    assert!(state.token("ghl").unwrap().is_none());
    let agency = Store::open(env.agency_store()).unwrap();
    assert!(agency.token("ghl-location").unwrap().is_none());
    assert_eq!(
        agency
            .token("ghl-agency")
            .unwrap()
            .unwrap()
            .user_type
            .as_deref(),
        Some("Company")
    );

    // A second run (another process) reuses the kept token.
    env.sync(&config).await;
    assert_eq!(env.mints(), 2, "no mint while the kept token is fresh");

    let status = env.run(&config, &["auth", "ghl", "status"]).await;
    assert_eq!(status.code, 0, "{}", status.show());
    assert!(
        status.stdout.contains("agency (company"),
        "{}",
        status.show()
    );
    assert!(
        status.stdout.contains("Token type:       Company"),
        "{}",
        status.show()
    );
    assert!(
        status.stdout.contains(&format!("Location {b}: token held")),
        "{}",
        status.show()
    );
}

#[tokio::test]
async fn an_expired_or_rejected_location_token_is_minted_again() {
    let env = Env::start("expiry").await;
    let b = env.location(1);
    let config = env.config_for(&b, "");
    env.connect_agency(&config).await;
    env.sync(&config).await;
    assert_eq!(env.mints(), 1);

    // The kept token nears its expiry: minted again before use, no 401 needed.
    let mut kept = env.kept_location_token(&b).unwrap();
    kept.expires_at = Some(Utc::now() + chrono::Duration::seconds(1));
    // Issued a day ago: the renewal margin (5 minutes, at most a tenth of the lifetime) is then
    // the full 5 minutes, whatever the time between this write and the sync's start.
    kept.updated_at = Utc::now() - chrono::Duration::days(1);
    Store::open(env.state_of(&b))
        .unwrap()
        .save_token(&kept)
        .unwrap();
    env.sync(&config).await;
    assert_eq!(env.mints(), 2, "minted again before its expiry");
    let rejected_before = env
        .sandbox
        .ghl
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(
        rejected_before, 0,
        "nothing was sent with the expiring token"
    );

    // GHL ends every OAuth access token (the agency's too) before their stated expiry: the
    // location token is rejected, minting with the agency's token is rejected, the agency's
    // pair is refreshed once and the location token minted again.
    env.sandbox.ghl.expire_access_tokens();
    env.sync(&config).await;
    assert_eq!(env.mints(), 3, "minted again after the 401");
    assert_eq!(
        env.sandbox.ghl.token_refreshes(),
        1,
        "the agency's pair refreshed once"
    );

    // The sub-account revokes its tokens: the kept one dies, the agency mints a new one.
    env.sandbox.ghl.location(&b).revoke_tokens();
    env.sync(&config).await;
    assert_eq!(env.mints(), 4, "minted again after the revocation");
    assert_eq!(env.guests_in(&b).len(), GUESTS);
}

/// GHL documents `expires_in` and `scope` in the location token's answer, but not that they are
/// always there nor which scopes a location token carries: the sync works under each reading.
#[tokio::test]
async fn a_location_token_answered_without_expiry_or_with_location_scopes_only_works_too() {
    for answer in [
        LocationTokenAnswer::WithoutExpiry,
        LocationTokenAnswer::LocationScopes,
    ] {
        let env = Env::start_answering(&format!("answer-{answer:?}"), 1, answer).await;
        let b = env.location(1);
        let config = env.config_for(&b, "");
        env.connect_agency(&config).await;
        let check = env.run(&config, &["check"]).await;
        assert_eq!(check.code, 0, "{answer:?}: {}", check.show());
        env.sync(&config).await;
        assert_eq!(env.guests_in(&b).len(), GUESTS, "{answer:?}");
        let kept = env
            .kept_location_token(&b)
            .expect("the location token is kept");
        match answer {
            LocationTokenAnswer::WithoutExpiry => {
                // Without a stated lifetime the token is taken to live GHL's usual day; it is
                // not minted again before each run.
                let expires = kept.expires_at.expect("an assumed expiry");
                assert!(
                    expires > Utc::now() + chrono::Duration::hours(23),
                    "{expires}"
                );
                env.sync(&config).await;
                assert_eq!(env.mints(), 2, "check's mint, then one kept for both syncs");
                // It dies earlier than assumed: the 401 says so, and it is minted again.
                env.sandbox.ghl.expire_access_tokens();
                env.sync(&config).await;
                assert_eq!(env.mints(), 3, "minted again after the 401");
            }
            LocationTokenAnswer::LocationScopes => {
                let scope = kept.scope.unwrap_or_default();
                assert!(scope.contains("contacts.write"), "{scope}");
                assert!(!scope.contains("oauth."), "{scope}");
                let status = env.run(&config, &["auth", "ghl", "status"]).await;
                assert_eq!(status.code, 0, "{}", status.show());
            }
            LocationTokenAnswer::Documented => unreachable!(),
        }
        // Nothing reached another sub-account.
        assert!(env.guests_in(&env.location(0)).is_empty(), "{answer:?}");
    }
}

#[tokio::test]
async fn an_uninstalled_location_fails_alone_by_name_and_the_agency_goes_on() {
    let env = Env::start("uninstall").await;
    let (b, c) = (env.location(1), env.location(2));
    let config_b = env.config_for(&b, "");
    let with_alerts = std::fs::read_to_string(&config_b).unwrap()
        + "\n[notify]\nwebhook_url_env = \"HGS_T_HOOK\"\n";
    std::fs::write(&config_b, with_alerts).unwrap();
    let config_c = env.config_for(&c, "");
    env.connect_agency(&config_b).await;
    env.sync(&config_b).await;

    env.sandbox.ghl.location(&b).uninstall_app();
    let out = env.run(&config_b, &["sync"]).await;
    assert_eq!(out.code, EXIT_AUTH, "{}", out.show());
    assert!(
        out.stderr.contains(&b),
        "the error names the location:\n{}",
        out.show()
    );
    assert!(out.stderr.contains("installed"), "{}", out.show());
    let state = Store::open(env.state_of(&b)).unwrap();
    assert!(
        state
            .alert_state("auth_lost")
            .unwrap()
            .active_since
            .is_some(),
        "the pass counts it as lost authentication"
    );
    let alerts = env.hook.texts();
    assert!(
        alerts.iter().any(|t| t.contains(&b)),
        "the alert names the location: {alerts:#?}"
    );

    // The operator sees where the app is installed, to fix the pair or drop it.
    let missing_app_id = env.run(&config_c, &["auth", "ghl", "locations"]).await;
    assert_eq!(missing_app_id.code, EXIT_AUTH, "{}", missing_app_id.show());
    assert!(
        missing_app_id.stderr.contains("ghl.app_id"),
        "{}",
        missing_app_id.show()
    );
    let listing = env.config_for(&c, &format!("app_id = \"{}\"\n", env.sandbox.ghl.app_id()));
    let out = env.run(&listing, &["auth", "ghl", "locations"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let installed = |loc: &str| -> Vec<String> {
        out.stdout
            .lines()
            .filter(|l| l.starts_with(loc))
            .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(installed(&b), ["no"], "{}", out.show());
    assert_eq!(installed(&c), ["yes"], "{}", out.show());
    assert_eq!(installed(&env.location(0)), ["yes"], "{}", out.show());

    // The agency's token still mints for the others: C syncs with the same agency store.
    let before = env.mints();
    env.sync(&config_c).await;
    assert_eq!(env.mints(), before + 1);
    assert_eq!(env.guests_in(&c).len(), GUESTS);
}

#[tokio::test]
async fn without_the_agency_token_a_sync_says_how_to_connect() {
    let env = Env::start("unconnected").await;
    let b = env.location(1);
    let config = env.config_for(&b, "");
    let out = env.run(&config, &["sync"]).await;
    assert_eq!(out.code, EXIT_AUTH, "{}", out.show());
    assert!(out.stderr.contains("auth ghl url"), "{}", out.show());
    assert!(out.stderr.contains("agency.db"), "{}", out.show());
    let status = env.run(&config, &["auth", "ghl", "status"]).await;
    assert_eq!(status.code, EXIT_AUTH, "{}", status.show());
    assert_eq!(env.mints(), 0);

    let url = env.run(&config, &["auth", "ghl", "url"]).await;
    assert_eq!(url.code, 0, "{}", url.show());
    assert!(url.stdout.contains("oauth.write"), "{}", url.show());
    assert!(url.stdout.contains("admin of the agency"), "{}", url.show());
}

#[tokio::test]
async fn agency_keys_are_checked_at_load() {
    let env = Env::start("config").await;
    let b = env.location(1);
    let expect_error = |out: Out, key: &str| {
        assert_eq!(out.code, EXIT_AUTH, "{}", out.show());
        assert!(out.stderr.contains(key), "{key}:\n{}", out.show());
    };

    let config = env.config_for(&b, "");
    let text = std::fs::read_to_string(&config).unwrap();
    let without_company: String = text
        .lines()
        .filter(|l| !l.starts_with("company_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, without_company).unwrap();
    expect_error(
        env.run(&config, &["auth", "ghl", "status"]).await,
        "ghl.company_id",
    );

    let text = text.replace(
        &format!("agency_state = \"{}\"", env.agency_store().display()),
        &format!("agency_state = \"{}\"", env.state_of(&b).display()),
    );
    std::fs::write(&config, &text).unwrap();
    expect_error(
        env.run(&config, &["auth", "ghl", "status"]).await,
        "ghl.agency_state",
    );
}

#[tokio::test]
async fn two_pairs_under_one_agency_mint_their_own_tokens_and_fail_alone() {
    let env = Env::start_with("pairs", 2).await;
    let (a, c) = (env.location(0), env.location(2));
    let config = env.pairs_config(&[a.clone(), c.clone()]);
    // One connection serves every pair: the `auth` commands take any pair.
    let code = env.sandbox.ghl.issue_auth_code(&{
        let mut s = PRODUCT_SCOPES.to_vec();
        s.push("oauth.write");
        s
    });
    let out = env
        .run(
            &config,
            &["--pair", "p0", "auth", "ghl", "exchange", "--code", &code],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.show());

    let out = env.sync(&config).await;
    assert!(out.stdout.contains("== pair p1 =="), "{}", out.show());
    assert_eq!(env.mints(), 2, "one token per location");
    assert_eq!(env.guests_in(&a), env.guests_at(0), "p0's guests in A only");
    assert_eq!(env.guests_in(&c), env.guests_at(1), "p1's guests in C only");
    assert!(env.guests_in(&env.location(1)).is_empty());
    for location in [&a, &c] {
        let kept = env
            .kept_location_token(location)
            .expect("each pair keeps its own");
        assert_eq!(kept.location_id.as_deref(), Some(location.as_str()));
    }
    let status = env
        .run(&config, &["--pair", "p1", "auth", "ghl", "status"])
        .await;
    assert!(
        status.stdout.contains(&format!("Location {c}: token held")),
        "{}",
        status.show()
    );

    // The app uninstalled from C: p1 fails by its location, p0 goes on with its kept token.
    env.sandbox.ghl.location(&c).uninstall_app();
    let out = env.run(&config, &["sync"]).await;
    assert_eq!(out.code, EXIT_AUTH, "{}", out.show());
    assert!(
        out.stderr
            .contains(&format!("pair p1: GHL refused a token for location {c}")),
        "{}",
        out.show()
    );
    assert!(!out.stderr.contains("pair p0"), "{}", out.show());
    let runs = Store::open(env.state_of(&a)).unwrap().runs(10).unwrap();
    assert_eq!(runs.len(), 2, "p0 ran twice");
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{runs:#?}"
    );
    assert_eq!(
        env.mints(),
        2,
        "p0 minted nothing: its kept token still serves"
    );
}
