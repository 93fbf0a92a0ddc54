//! The emulators as an agency sees them. GHL: several sub-accounts, each with its own records,
//! tokens, burst window and daily quota; the agency's OAuth token, the location tokens it mints
//! and the sub-accounts it lists. HotspotSystem: many locations, seeded evenly and cheaply, with
//! reads counted per location. Plain HTTP and the `sandbox` command, no product code.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hotspot_ghl_sync::sandbox::ghl::{ForbiddenBody, GhlEmulator, GhlOptions, PRODUCT_SCOPES};
use hotspot_ghl_sync::sandbox::hotspot::{HotspotEmulator, HotspotOptions};
use hotspot_ghl_sync::sandbox::seed::{self, SeedSpec, Spread};
use reqwest::Method;
use serde_json::{Value, json};

const VERSION: &str = "2021-07-28";

struct Agency {
    emu: GhlEmulator,
    http: reqwest::Client,
}

impl Agency {
    async fn start(opts: GhlOptions) -> Self {
        Self {
            emu: GhlEmulator::start(opts).await.unwrap(),
            http: support::http_client(),
        }
    }

    fn ids(&self) -> (String, String) {
        let ids = self.emu.location_ids();
        (ids[0].clone(), ids[1].clone())
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.emu.base_url()))
            .bearer_auth(token)
            .header("Version", VERSION);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }

    async fn location(&self, token: &str, id: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call(token, Method::GET, &format!("/locations/{id}"), None)
            .await
    }

    /// The agency's token, through the authorization-code grant with `user_type=Company`.
    async fn company_token(&self, scopes: &[&str]) -> Value {
        let code = self.emu.issue_auth_code(scopes);
        let resp = self
            .http
            .post(format!("{}/oauth/token", self.emu.base_url()))
            .form(&[
                ("client_id", support::CLIENT_ID),
                ("client_secret", support::CLIENT_SECRET),
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("user_type", "Company"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// A fresh agency token with the app's scopes, and a location token it mints for `location`.
    async fn agency_and_minted(&self, location: &str) -> (String, String) {
        let grant = self.company_token(&agency_scopes()).await;
        let agency = grant["access_token"].as_str().unwrap().to_string();
        let company = self.emu.company_id();
        let (_, minted) = self
            .location_token(
                &agency,
                &[("companyId", &company), ("locationId", location)],
            )
            .await;
        let minted = minted["access_token"].as_str().unwrap().to_string();
        (agency, minted)
    }

    async fn location_token(&self, token: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/oauth/locationToken", self.emu.base_url()))
            .bearer_auth(token)
            .header("Version", VERSION)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn installed(&self, token: &str, query: &str) -> (u16, Value) {
        let (st, _, body) = self
            .call(
                token,
                Method::GET,
                &format!("/oauth/installedLocations?{query}"),
                None,
            )
            .await;
        (st, body)
    }
}

fn agency_scopes() -> Vec<&'static str> {
    let mut s = PRODUCT_SCOPES.to_vec();
    s.extend(["oauth.write", "oauth.readonly"]);
    s
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> u64 {
    h[name].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn one_location_by_default_and_generated_ones_on_request() {
    let one = Agency::start(GhlOptions::default()).await;
    assert_eq!(one.emu.location_ids(), vec![one.emu.location_id()]);
    assert_eq!(
        one.emu.token_for(&one.emu.location_id()).as_deref(),
        Some("pit-test-token")
    );

    let many = Agency::start(GhlOptions::default().with_locations(3)).await;
    let ids = many.emu.location_ids();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], many.emu.location_id());
    for id in &ids {
        assert_eq!(id.len(), 20, "{id}");
        let pit = many.emu.token_for(id).unwrap();
        let (st, _, body) = many.location(&pit, id).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["location"]["id"], id.as_str());
        assert_eq!(
            body["location"]["companyId"],
            many.emu.company_id().as_str()
        );
    }
}

#[tokio::test]
async fn each_location_has_its_own_burst_window_and_daily_quota() {
    let api = Agency::start(GhlOptions {
        rate_limit: 3,
        rate_window: Duration::from_secs(60),
        ..GhlOptions::default().with_locations(2)
    })
    .await;
    let (a, b) = api.ids();
    let (pit_a, pit_b) = (
        api.emu.token_for(&a).unwrap(),
        api.emu.token_for(&b).unwrap(),
    );

    for left in [2, 1, 0] {
        let (st, h, _) = api.location(&pit_a, &a).await;
        assert_eq!(st, 200);
        assert_eq!(header(&h, "x-ratelimit-remaining"), left);
    }
    let (st, _, _) = api.location(&pit_a, &a).await;
    assert_eq!(st, 429, "A's window is spent");
    let (st, h, _) = api.location(&pit_b, &b).await;
    assert_eq!(st, 200, "B counts its own window");
    assert_eq!(header(&h, "x-ratelimit-remaining"), 2);
    assert_eq!(header(&h, "x-ratelimit-daily-remaining"), 199_999);

    api.emu.set_rate_limit(100, Duration::from_secs(60));
    api.emu.location(&a).set_daily_remaining(0);
    let (st, h, _) = api.location(&pit_a, &a).await;
    assert_eq!(st, 429, "A's day is spent");
    assert_eq!(header(&h, "x-ratelimit-daily-remaining"), 0);
    let (st, h, _) = api.location(&pit_b, &b).await;
    assert_eq!(st, 200, "B counts its own day");
    assert_eq!(header(&h, "x-ratelimit-daily-remaining"), 199_998);

    let log = api.emu.requests();
    let of = |loc: &str| {
        log.iter()
            .filter(|r| r.location.as_deref() == Some(loc))
            .count()
    };
    assert_eq!(
        (of(&a), of(&b)),
        (5, 2),
        "the log names each request's location"
    );
    let minute = Duration::from_secs(60);
    assert_eq!(api.emu.busiest_window(Some(&a), minute), 5);
    assert_eq!(api.emu.busiest_window(Some(&b), minute), 2);
    assert_eq!(api.emu.busiest_window(None, minute), 7);
    assert_eq!(api.emu.busiest_window(Some(&a), Duration::ZERO), 0);
}

#[tokio::test]
async fn a_location_pit_on_another_location_is_forbidden() {
    let api = Agency::start(GhlOptions::default().with_locations(2)).await;
    let (a, b) = api.ids();
    let pit_a = api.emu.token_for(&a).unwrap();
    let (st, _, body) = api.location(&pit_a, &b).await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["statusCode"], 403);
    let (st, _, _) = api
        .call(
            &pit_a,
            Method::POST,
            "/contacts/search",
            Some(json!({"locationId": b, "pageLimit": 10})),
        )
        .await;
    assert_eq!(st, 403);

    // A contact of B is no record of A's: ids are unique across locations.
    let in_b = api.emu.location(&b).with_state(|s| {
        let id = s.new_id();
        s.insert_contact(hotspot_ghl_sync::sandbox::ghl::Contact::new(
            id,
            chrono::Utc::now(),
        ))
    });
    let (st, _, _) = api
        .call(&pit_a, Method::GET, &format!("/contacts/{in_b}"), None)
        .await;
    assert_eq!(st, 400, "not found in A");
    let pit_b = api.emu.token_for(&b).unwrap();
    let (st, _, body) = api
        .call(&pit_b, Method::GET, &format!("/contacts/{in_b}"), None)
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["contact"]["locationId"], b.as_str());

    for (shape, expected) in [
        (
            ForbiddenBody::MessageOnly,
            json!({"message": "The token does not have access to this location."}),
        ),
        (ForbiddenBody::Empty, json!({})),
    ] {
        let api = Agency::start(GhlOptions {
            forbidden_body: shape,
            ..GhlOptions::default().with_locations(2)
        })
        .await;
        let (a, b) = api.ids();
        let (st, _, body) = api.location(&api.emu.token_for(&a).unwrap(), &b).await;
        assert_eq!((st, body), (403, expected), "{shape:?}");
    }
}

#[tokio::test]
async fn the_agency_token_mints_location_tokens_that_work_only_on_their_location() {
    let api = Agency::start(GhlOptions::default().with_locations(3)).await;
    let (a, b) = api.ids();
    let company = api.emu.company_id();
    let grant = api.company_token(&agency_scopes()).await;
    assert_eq!(grant["userType"], "Company");
    assert_eq!(grant["companyId"], company.as_str());
    let agency = grant["access_token"].as_str().unwrap();

    let (st, _, _) = api.location(agency, &b).await;
    assert_eq!(
        st, 403,
        "the agency's token does not act inside a sub-account"
    );

    let (st, body) = api
        .location_token(agency, &[("companyId", &company), ("locationId", &b)])
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["locationId"], b.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(body["scope"].as_str().unwrap().contains("contacts.write"));
    assert!(body.get("refresh_token").is_none(), "{body}");
    let for_b = body["access_token"].as_str().unwrap();
    let (st, _, _) = api.location(for_b, &b).await;
    assert_eq!(st, 200);
    let (st, _, _) = api.location(for_b, &a).await;
    assert_eq!(st, 403, "a location token works on its own location only");
    let last = api.emu.requests().pop().unwrap();
    assert_eq!(last.location.as_deref(), Some(b.as_str()));

    let pit_a = api.emu.token_for(&a).unwrap();
    let (st, _) = api
        .location_token(&pit_a, &[("companyId", &company), ("locationId", &b)])
        .await;
    assert_eq!(st, 401, "a sub-account's PIT cannot mint");
    let (st, _) = api
        .location_token(
            agency,
            &[("companyId", "SomeOtherCompany0001"), ("locationId", &b)],
        )
        .await;
    assert_eq!(st, 403);
    let (st, body) = api.location_token(agency, &[("locationId", &b)]).await;
    assert_eq!(st, 422, "{body}");
    let (st, _) = api
        .location_token(
            agency,
            &[
                ("companyId", &company),
                ("locationId", "NoSuchLocation000001"),
            ],
        )
        .await;
    assert_eq!(st, 400);
    let no_version = api
        .http
        .post(format!("{}/oauth/locationToken", api.emu.base_url()))
        .bearer_auth(agency)
        .form(&[("companyId", company.as_str()), ("locationId", b.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);

    let narrow = api.company_token(&["oauth.readonly"]).await;
    let (st, _) = api
        .location_token(
            narrow["access_token"].as_str().unwrap(),
            &[("companyId", &company), ("locationId", &b)],
        )
        .await;
    assert_eq!(st, 401, "minting needs oauth.write");
}

#[tokio::test]
async fn installed_locations_pages_through_every_sub_account() {
    let api = Agency::start(GhlOptions {
        installed_locations_max_limit: 3,
        ..GhlOptions::default().with_locations(5)
    })
    .await;
    let grant = api.company_token(&agency_scopes()).await;
    let agency = grant["access_token"].as_str().unwrap();
    let (company, app) = (api.emu.company_id(), api.emu.app_id());

    let mut seen = Vec::new();
    let mut skip = 0;
    loop {
        let (st, body) = api
            .installed(
                agency,
                &format!("companyId={company}&appId={app}&skip={skip}&limit=2"),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["count"], 5);
        let page = body["locations"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        for l in page {
            assert_eq!(l["isInstalled"], true);
            seen.push(l["_id"].as_str().unwrap().to_string());
        }
        skip += page.len();
    }
    assert_eq!(seen, api.emu.location_ids());

    let (_, body) = api
        .installed(agency, &format!("companyId={company}&appId={app}&limit=10"))
        .await;
    assert_eq!(
        body["locations"].as_array().unwrap().len(),
        3,
        "limit capped"
    );
    let (_, body) = api
        .installed(
            agency,
            &format!("companyId={company}&appId={app}&query=account%204"),
        )
        .await;
    assert_eq!(body["count"], 1, "{body}");

    let (st, _) = api.installed(agency, &format!("companyId={company}")).await;
    assert_eq!(st, 422, "appId is required");
    let (st, _) = api
        .installed(agency, &format!("companyId={company}&appId={app}&sort=x"))
        .await;
    assert_eq!(st, 422, "unknown parameters are refused");
    let pit = api.emu.token_for(&api.emu.location_id()).unwrap();
    let (st, _) = api
        .installed(&pit, &format!("companyId={company}&appId={app}"))
        .await;
    assert_eq!(st, 401, "a location PIT cannot list");
}

#[tokio::test]
async fn a_revoked_location_answers_401_and_the_others_go_on() {
    let api = Agency::start(GhlOptions::default().with_locations(2)).await;
    let (a, b) = api.ids();
    let company = api.emu.company_id();
    let (pit_a, pit_b) = (
        api.emu.token_for(&a).unwrap(),
        api.emu.token_for(&b).unwrap(),
    );
    let (agency, old_b) = api.agency_and_minted(&b).await;
    let (agency, old_b) = (agency.as_str(), old_b.as_str());

    api.emu.location(&b).revoke_tokens();
    assert_eq!(api.location(&pit_b, &b).await.0, 401);
    assert_eq!(api.location(old_b, &b).await.0, 401);
    assert_eq!(api.emu.token_for(&b), None);
    assert_eq!(api.location(&pit_a, &a).await.0, 200, "A goes on");

    let (st, fresh) = api
        .location_token(agency, &[("companyId", &company), ("locationId", &b)])
        .await;
    assert_eq!(st, 200);
    let (st, _, _) = api
        .location(fresh["access_token"].as_str().unwrap(), &b)
        .await;
    assert_eq!(st, 200, "the agency can mint again");
}

fn agency_seed(locations: usize, customers: usize) -> SeedSpec {
    SeedSpec {
        seed: 5,
        locations,
        customers,
        subscribers: 0,
        subscribers_also_customers: 0,
        transactions: 0,
    }
}

#[test]
fn an_even_spread_seeds_200_locations_of_200_guests_cheaply() {
    let started = Instant::now();
    let data = seed::generate_spread(&agency_seed(200, 40_000), Spread::Even);
    let took = started.elapsed();
    assert_eq!(data.locations.len(), 200);
    for loc in &data.locations {
        let guests = data
            .customers
            .iter()
            .filter(|c| c.location_id == loc.id)
            .count();
        assert_eq!(guests, 200, "location {}", loc.id);
    }
    // Seconds would make every agency test slow; a debug build needs well under one.
    assert!(took < Duration::from_secs(5), "seeding took {took:?}");

    let random = seed::generate(&agency_seed(20, 400));
    assert!(
        random.locations.iter().any(|l| random
            .customers
            .iter()
            .filter(|c| c.location_id == l.id)
            .count()
            != 20),
        "the default spread stays random"
    );
}

#[tokio::test]
async fn hotspot_reads_are_counted_per_location() {
    let data = seed::generate_spread(&agency_seed(3, 30), Spread::Even);
    let ids: Vec<String> = data.locations.iter().map(|l| l.id.clone()).collect();
    let opts = HotspotOptions::default();
    let key = opts.api_key.clone();
    let emu = HotspotEmulator::start(data, opts).await.unwrap();
    let http = support::http_client();
    let get = |path: String| {
        http.get(format!("{}{path}", emu.base_url()))
            .header("sn-apikey", &key)
            .send()
    };
    for path in [
        format!("/locations/{}/customers", ids[0]),
        format!("/locations/{}/customers?offset=5", ids[0]),
        format!("/locations/{}/transactions/mac", ids[1]),
        "/customers".to_string(),
        "/locations".to_string(),
    ] {
        let r = get(path.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let counts = emu.reads_per_location();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        vec![(ids[0].clone(), 2), (ids[1].clone(), 1)]
    );
    emu.clear_requests();
    assert!(emu.reads_per_location().is_empty());
}

/// `sandbox --ghl-locations 3` prints every sub-account with its token, and each works.
#[tokio::test]
async fn the_sandbox_command_prints_every_sub_account_and_its_token() {
    let mut child = Command::new(support::BIN)
        .args([
            "sandbox",
            "--hotspot-port",
            "0",
            "--ghl-port",
            "0",
            "--ghl-locations",
            "3",
            "--locations",
            "4",
            "--customers",
            "40",
            "--even-spread",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Press Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    assert!(text.contains("3 sub-accounts"), "{text}");
    let base = lines
        .iter()
        .find_map(|l| l.strip_prefix("GHL emulator:"))
        .map(|u| u.trim().to_string())
        .unwrap_or_else(|| panic!("{text}"));
    let pairs: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some(id), Some(pit), None) if id.len() == 20 && pit.starts_with("pit-") => {
                    Some((id.to_string(), pit.to_string()))
                }
                _ => None,
            }
        })
        .collect();
    let http = support::http_client();
    let mut answers = Vec::new();
    for (id, pit) in &pairs {
        let r = http
            .get(format!("{base}/locations/{id}"))
            .bearer_auth(pit)
            .header("Version", VERSION)
            .send()
            .await;
        answers.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(pairs.len(), 3, "{text}");
    assert_eq!(answers, vec![200, 200, 200], "{text}");
}

#[tokio::test]
async fn a_location_without_the_app_is_listed_uninstalled_and_mints_nothing() {
    let api = Agency::start(GhlOptions::default().with_locations(3)).await;
    let (a, b) = api.ids();
    let (company, app) = (api.emu.company_id(), api.emu.app_id());
    let (agency, old_b) = api.agency_and_minted(&b).await;
    let (agency, old_b) = (agency.as_str(), old_b.as_str());

    api.emu.location(&b).uninstall_app();
    assert_eq!(
        api.location(old_b, &b).await.0,
        401,
        "its location token is dead"
    );
    let pit_b = api.emu.token_for(&b).unwrap();
    assert_eq!(
        api.location(&pit_b, &b).await.0,
        200,
        "a PIT belongs to no app"
    );
    let (st, body) = api
        .location_token(agency, &[("companyId", &company), ("locationId", &b)])
        .await;
    assert_eq!(st, 400, "{body}");
    let (st, _) = api
        .location_token(agency, &[("companyId", &company), ("locationId", &a)])
        .await;
    assert_eq!(st, 200, "the others still mint");

    let listed = |body: &Value| -> Vec<(String, bool)> {
        body["locations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["_id"].as_str().unwrap().to_string(),
                    l["isInstalled"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let base = format!("companyId={company}&appId={app}");
    let (_, all) = api.installed(agency, &base).await;
    assert_eq!(all["count"], 3);
    assert!(listed(&all).contains(&(b.clone(), false)), "{all}");
    let (_, on) = api
        .installed(agency, &format!("{base}&isInstalled=true"))
        .await;
    assert_eq!(on["count"], 2);
    let (_, off) = api
        .installed(agency, &format!("{base}&isInstalled=false"))
        .await;
    assert_eq!(listed(&off), vec![(b.clone(), false)]);

    api.emu.location(&b).install_app();
    let (st, _) = api
        .location_token(agency, &[("companyId", &company), ("locationId", &b)])
        .await;
    assert_eq!(st, 200, "installed again");
}
