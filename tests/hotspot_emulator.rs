//! The HotspotSystem emulator against plain reqwest: auth, envelope, paging by Link, sort,
//! fields, parameter validation, location scoping, lenient types, and the seed generator.

use std::collections::HashSet;
use std::time::Duration;

use hotspot_ghl_sync::sandbox::hotspot::{HotspotEmulator, HotspotOptions};
use hotspot_ghl_sync::sandbox::seed::{self, Customer, HotspotData, SeedSpec, hard_cases};
use serde_json::Value;

const KEY: &str = "hs-test-key";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn small() -> HotspotData {
    seed::generate(&SeedSpec {
        seed: 7,
        locations: 3,
        customers: 40,
        subscribers: 12,
        subscribers_also_customers: 5,
        transactions: 120,
    })
}

async fn start(data: HotspotData) -> HotspotEmulator {
    HotspotEmulator::start(data, HotspotOptions::default())
        .await
        .expect("emulator starts")
}

/// GET `url` with the key; returns status, Link header and body.
async fn get(c: &reqwest::Client, url: &str) -> (u16, Option<String>, Value) {
    let r = c
        .get(url)
        .header("sn-apikey", KEY)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let link = r
        .headers()
        .get("link")
        .map(|v| v.to_str().expect("ascii link").to_string());
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, link, body)
}

/// The URL of `rel` in a Link header.
fn rel(link: &str, rel: &str) -> Option<String> {
    link.split(", ").find_map(|part| {
        let (url, r) = part.split_once("; ")?;
        (r == format!("rel=\"{rel}\"")).then(|| {
            url.trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

fn error_message(body: &Value) -> &str {
    body["error"]
        .as_str()
        .expect("error body has a string `error`")
}

#[tokio::test]
async fn key_required_everywhere() {
    let emu = start(small()).await;
    let c = client();
    for path in [
        "/ping",
        "/me",
        "/customers",
        "/locations/1/transactions/mac",
        "/nope",
    ] {
        let url = format!("{}{path}", emu.base_url());
        let r = c.get(&url).send().await.expect("request");
        assert_eq!(r.status().as_u16(), 401, "{path} without key");
        let body: Value = r.json().await.expect("json");
        assert!(!error_message(&body).is_empty());
        let r = c
            .get(&url)
            .header("sn-apikey", "wrong")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 401, "{path} with wrong key");
        let body: Value = r.json().await.expect("json");
        assert!(!error_message(&body).contains("hs-test-key"));
    }
    let (s, _, body) = get(&c, &format!("{}/ping", emu.base_url())).await;
    assert_eq!((s, body), (200, serde_json::json!({"ping": "pong"})));
    let (s, _, body) = get(&c, &format!("{}/me", emu.base_url())).await;
    assert_eq!(s, 200);
    assert!(body["userId"].is_i64());
    assert_eq!(body["operator"], "demo-operator");
}

#[tokio::test]
async fn envelope_options_unknown_paths_and_methods() {
    let data = small();
    let expected_first = data.customers[0].to_json(false);
    let n_customers = data.customers.len() as u64;
    let n_locations = data.locations.len();
    let emu = start(data).await;
    let c = client();
    let (s, link, body) = get(&c, &format!("{}/customers?limit=5", emu.base_url())).await;
    assert_eq!(s, 200);
    assert_eq!(body["metadata"]["total_count"], n_customers);
    assert_eq!(body["items"].as_array().expect("items").len(), 5);
    assert_eq!(body["items"][0], expected_first);
    assert!(body["items"][0].get("location_id").is_none());
    let link = link.expect("Link header");
    assert!(rel(&link, "self").is_some() && rel(&link, "next").is_some());
    assert!(rel(&link, "prev").is_none());

    let (s, link, body) = get(&c, &format!("{}/locations/options", emu.base_url())).await;
    assert_eq!(s, 200);
    assert!(link.is_none() && body.get("metadata").is_none());
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), n_locations);
    assert!(items[0]["id"].is_string() && items[0]["name"].is_string());

    for path in [
        "/users",
        "/customers/",
        "/customers/123",
        "/locations/1",
        "/v1.0",
    ] {
        let (s, _, body) = get(&c, &format!("{}{path}", emu.base_url())).await;
        assert_eq!(s, 404, "{path}");
        assert!(!error_message(&body).is_empty());
    }
    let r = c
        .post(format!("{}/customers", emu.base_url()))
        .header("sn-apikey", KEY)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 405);
    let r = c
        .delete(format!("{}/me", emu.base_url()))
        .header("sn-apikey", KEY)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 405);
}

#[tokio::test]
async fn link_paging_over_2500_customers_returns_each_once() {
    let data = seed::generate(&SeedSpec {
        seed: 11,
        locations: 4,
        customers: 2_500,
        subscribers: 10,
        subscribers_also_customers: 3,
        transactions: 20,
    });
    let expected: Vec<String> = data.customers.iter().map(|c| c.id.clone()).collect();
    let emu = start(data).await;
    let c = client();
    let mut url = format!(
        "{}/customers?sort=registered_at&x=keep%20me",
        emu.base_url()
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (s, link, body) = get(&c, &url).await;
        assert_eq!(s, 200, "{url}");
        assert_eq!(body["metadata"]["total_count"], 2_500);
        let items = body["items"].as_array().expect("items");
        assert!(items.len() <= 100);
        seen.extend(
            items
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_string()),
        );
        let link = link.expect("Link");
        assert!(link.contains("x=keep%20me") && link.contains("sort=registered_at"));
        assert!(
            rel(&link, "self")
                .expect("self")
                .starts_with("http://127.0.0.1:")
        );
        assert_eq!(rel(&link, "prev").is_some(), pages > 0);
        pages += 1;
        match rel(&link, "next") {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(pages, 25);
    assert_eq!(seen, expected, "every record exactly once, in order");

    // Above the maximum: clamped to 1000, and the links say so.
    let (s, link, body) = get(&c, &format!("{}/customers?limit=5000", emu.base_url())).await;
    assert_eq!(s, 200);
    assert_eq!(body["items"].as_array().expect("items").len(), 1_000);
    let next = rel(&link.expect("Link"), "next").expect("next");
    assert!(next.ends_with("limit=1000&offset=1000"), "{next}");
    // Past the end: empty page, no next, a prev.
    let (s, link, body) = get(&c, &format!("{}/customers?offset=2500", emu.base_url())).await;
    assert_eq!(s, 200);
    assert!(body["items"].as_array().expect("items").is_empty());
    let link = link.expect("Link");
    assert!(rel(&link, "next").is_none());
    assert!(
        rel(&link, "prev")
            .expect("prev")
            .ends_with("limit=100&offset=2400")
    );
}

#[tokio::test]
async fn sort_and_fields() {
    let emu = start(small()).await;
    let c = client();
    let base = emu.base_url();
    let ids = |body: &Value, key: &str| -> Vec<Value> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i[key].clone())
            .collect()
    };
    let (_, _, asc) = get(&c, &format!("{base}/transactions/mac?sort=id&limit=1000")).await;
    let (_, _, desc) = get(&c, &format!("{base}/transactions/mac?sort=-id&limit=1000")).await;
    let asc = ids(&asc, "id");
    let mut desc = ids(&desc, "id");
    assert!(asc.len() > 3);
    assert!(asc.windows(2).all(|w| w[0].as_i64() < w[1].as_i64()));
    desc.reverse();
    assert_eq!(asc, desc);

    let (_, _, by_date) = get(&c, &format!("{base}/customers?sort=-registered_at&limit=3")).await;
    let dates = ids(&by_date, "registered_at");
    assert!(dates.windows(2).all(|w| w[0].as_str() > w[1].as_str()));
    let newest = emu.with_data(|d| d.customers.last().map(|c| c.id.clone()));
    assert_eq!(
        by_date["items"][0]["id"].as_str().map(str::to_string),
        newest
    );

    // Sorting by a text field: nulls first, then byte order; stable for ties.
    let (_, _, by_name) = get(&c, &format!("{base}/customers?sort=name&limit=1000")).await;
    let names = ids(&by_name, "name");
    let mut expected: Vec<Option<String>> =
        emu.with_data(|d| d.customers.iter().map(|c| c.name.clone()).collect());
    expected.sort();
    let got: Vec<Option<String>> = names
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_eq!(got, expected);

    let (s, _, proj) = get(&c, &format!("{base}/customers?fields=id,email&limit=4")).await;
    assert_eq!(s, 200);
    for item in proj["items"].as_array().expect("items") {
        let keys: HashSet<&str> = item
            .as_object()
            .expect("obj")
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, HashSet::from(["id", "email"]));
    }
    // Sort then offset then limit then fields.
    let (_, _, page) = get(
        &c,
        &format!("{base}/transactions/paid?sort=-id&offset=1&limit=2&fields=id"),
    )
    .await;
    let mut all_ids: Vec<i64> =
        emu.with_data(|d| d.paid_transactions.iter().map(|t| t.id).collect());
    all_ids.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(
        ids(&page, "id"),
        vec![Value::from(all_ids[1]), Value::from(all_ids[2])]
    );
}

#[tokio::test]
async fn bad_parameters_are_400() {
    let emu = start(small()).await;
    let c = client();
    for q in [
        "sort=nope",
        "sort=id,name",
        "sort=-",
        "sort=",
        "sort=location_id",
        "sort=id&sort=name",
        "fields=id,nope",
        "fields=",
        "fields=id,,email",
        "limit=0",
        "limit=abc",
        "limit=-5",
        "limit=",
        "limit=1.5",
        "offset=-1",
        "offset=x",
    ] {
        let (s, _, body) = get(&c, &format!("{}/customers?{q}", emu.base_url())).await;
        assert_eq!(s, 400, "{q}");
        assert!(!error_message(&body).is_empty(), "{q}");
    }
    // Fields of one type are unknown on another.
    let (s, _, _) = get(&c, &format!("{}/vouchers?fields=email", emu.base_url())).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn location_scoped_lists() {
    let data = small();
    let emu = start(data.clone()).await;
    let c = client();
    let base = emu.base_url();
    let mut customers = 0;
    let mut macs = 0;
    let mut paid = 0;
    for loc in &data.locations {
        let (s, _, body) = get(
            &c,
            &format!("{base}/locations/{}/customers?limit=1000", loc.id),
        )
        .await;
        assert_eq!(s, 200);
        let want = data
            .customers
            .iter()
            .filter(|c| c.location_id == loc.id)
            .count();
        assert_eq!(body["metadata"]["total_count"], want as u64);
        customers += want;

        let (_, _, body) = get(
            &c,
            &format!("{base}/locations/{}/transactions/mac?limit=1000", loc.id),
        )
        .await;
        let items = body["items"].as_array().expect("items");
        assert!(
            items
                .iter()
                .all(|t| t["location_id"].as_i64().map(|n| n.to_string()) == Some(loc.id.clone()))
        );
        macs += items.len();

        let (_, _, body) = get(
            &c,
            &format!("{base}/locations/{}/transactions/paid", loc.id),
        )
        .await;
        paid += body["metadata"]["total_count"].as_u64().expect("count") as usize;

        for tail in [
            "subscribers",
            "vouchers",
            "transactions/voucher",
            "transactions/social",
        ] {
            let (s, _, _) = get(&c, &format!("{base}/locations/{}/{tail}", loc.id)).await;
            assert_eq!(s, 200, "{tail}");
        }
    }
    assert_eq!(customers, data.customers.len());
    assert_eq!(macs, data.mac_transactions.len());
    assert_eq!(paid, data.paid_transactions.len());

    for path in [
        "/locations/999/customers",
        "/locations/abc/transactions/paid",
        "/locations/3/vouchers",
    ] {
        let (s, _, body) = get(&c, &format!("{base}{path}")).await;
        assert_eq!(s, 404, "{path}");
        assert!(error_message(&body).contains("not found"));
    }
}

#[tokio::test]
async fn lenient_types_mode() {
    let emu = start(small()).await;
    let c = client();
    let base = emu.base_url();
    let (_, _, strict) = get(&c, &format!("{base}/transactions/paid?limit=1")).await;
    let t = &strict["items"][0];
    assert!(t["id"].is_i64() && t["location_id"].is_i64() && t["newsletter"].is_i64());
    assert!(t["amount"].is_number());
    assert!(
        t["action_date_gmt"]
            .as_str()
            .expect("date")
            .ends_with(".000Z")
    );
    let (_, _, cust) = get(&c, &format!("{base}/customers?limit=1")).await;
    let ra = cust["items"][0]["registered_at"]
        .as_str()
        .expect("registered_at")
        .to_string();
    assert!(chrono::DateTime::parse_from_rfc3339(&ra).is_ok(), "{ra}");

    emu.set_lenient_types(true);
    let (_, _, lenient) = get(&c, &format!("{base}/transactions/paid?limit=1")).await;
    let l = &lenient["items"][0];
    assert_eq!(l["id"], Value::String(t["id"].to_string()));
    assert_eq!(l["newsletter"], Value::String(t["newsletter"].to_string()));
    let amount = l["amount"].as_str().expect("amount as string");
    assert_eq!(amount, format!("{:.2}", t["amount"].as_f64().expect("f64")));
    assert_eq!(l["action_date_gmt"], t["action_date_gmt"]);
    let (_, _, cust) = get(&c, &format!("{base}/customers?limit=1")).await;
    let ra_l = cust["items"][0]["registered_at"]
        .as_str()
        .expect("registered_at");
    assert!(
        chrono::NaiveDateTime::parse_from_str(ra_l, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{ra_l}"
    );
    assert_eq!(ra_l.replace(' ', "T") + "Z", ra);
    let (_, _, me) = get(&c, &format!("{base}/me")).await;
    assert!(me["userId"].is_string());
    let (_, _, v) = get(&c, &format!("{base}/vouchers?limit=1")).await;
    assert!(v["items"][0]["limit_tl"].is_string() && v["items"][0]["price_enduser"].is_string());
    // Sort order does not depend on the mode: numeric, not textual.
    let (_, _, asc) = get(&c, &format!("{base}/transactions/mac?sort=-id&limit=1000")).await;
    let ids: Vec<i64> = asc["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("string id").parse().expect("int"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
}

#[tokio::test]
async fn request_log_data_edits_latency_and_shutdown() {
    let emu = start(small()).await;
    let c = client();
    let base = emu.base_url();
    let _ = c.get(format!("{base}/me")).send().await.expect("request");
    let _ = get(&c, &format!("{base}/customers?limit=2&offset=1")).await;
    let log = emu.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str(), log[0].status),
        ("GET", "/v2.0/me", 401)
    );
    assert_eq!(
        (log[1].path.as_str(), log[1].query.as_str(), log[1].status),
        ("/v2.0/customers", "limit=2&offset=1", 200)
    );
    emu.clear_requests();
    assert!(emu.requests().is_empty());

    let id = emu.with_data(|d| {
        let c = &mut d.customers[3];
        c.name = Some("Renamed Person".into());
        c.id.clone()
    });
    emu.with_data(|d| {
        d.customer_mut(&id).expect("customer").email = Some("new@example.com".into())
    });
    let (_, _, body) = get(&c, &format!("{base}/customers?limit=1&offset=3")).await;
    assert_eq!(body["items"][0]["name"], "Renamed Person");
    assert_eq!(body["items"][0]["email"], "new@example.com");

    emu.set_latency(Duration::from_millis(150));
    let started = std::time::Instant::now();
    let _ = get(&c, &format!("{base}/ping")).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    emu.set_latency(Duration::ZERO);

    let outside = "0.0.0.0:0".parse().expect("addr");
    let refused = HotspotEmulator::start_on(outside, small(), HotspotOptions::default()).await;
    assert!(refused.is_err(), "non-loopback bind must be refused");

    let addr = emu.addr();
    emu.shutdown().await;
    let fresh = client();
    let err = fresh
        .get(format!("http://{addr}/v2.0/ping"))
        .header("sn-apikey", KEY)
        .send()
        .await;
    assert!(err.is_err(), "server must be gone after shutdown");
}

/// The §5 field names, exactly.
#[test]
fn record_shapes_match_reference() {
    let set = |v: Vec<String>| v.into_iter().collect::<HashSet<String>>();
    let names = |s: &str| {
        s.split_whitespace()
            .map(str::to_string)
            .collect::<HashSet<String>>()
    };
    assert_eq!(
        set(Customer::field_names()),
        names(
            "id user_name name email company_name address city state zip country_code phone \
               social_network social_id social_username social_link social_gender social_age_range \
               social_followers_count registered_at"
        )
    );
    assert_eq!(
        set(seed::Voucher::field_names()),
        names(
            "serial voucher_code limit_tl limit_dl limit_ul simultaneous_use usage_exp validity price_enduser currency"
        )
    );
    let common = "id operator location_id user_name action_date_gmt user_agent customer newsletter \
                  company_name email address city state zip country_code phone";
    assert_eq!(
        set(seed::MacTransaction::field_names()),
        names(&format!(
            "{common} package_id q1 q2 q3 q4 q5 a1 a2 a3 a4 a5"
        ))
    );
    assert_eq!(
        set(seed::VoucherTransaction::field_names()),
        names(&format!("{common} amount currency language smscountry"))
    );
    assert_eq!(
        set(seed::SocialTransaction::field_names()),
        names(&format!(
            "{common} package_id social_id social_username social_link social_gender \
                        social_age_range social_followers_count social_network"
        ))
    );
    assert_eq!(set(seed::Location::field_names()), names("id name"));
    assert_eq!(set(seed::Owner::field_names()), names("userId operator"));
}

#[test]
fn seed_is_deterministic_and_holds_the_hard_cases() {
    let spec = SeedSpec {
        seed: 3,
        customers: 300,
        transactions: 400,
        ..SeedSpec::default()
    };
    let a = seed::generate(&spec);
    assert_eq!(a, seed::generate(&spec));
    assert_ne!(
        a,
        seed::generate(&SeedSpec {
            seed: 4,
            ..spec.clone()
        })
    );
    assert_eq!(a.customers.len(), 300);
    assert_eq!(a.subscribers.len(), spec.subscribers);
    assert_eq!(a.transaction_count(), 400);
    assert!(!a.mac_transactions.is_empty() && !a.voucher_transactions.is_empty());
    assert!(!a.social_transactions.is_empty() && !a.paid_transactions.is_empty());

    let cs = &a.customers;
    let name = |i: usize| cs[i].name.as_deref();
    assert_eq!(
        cs[hard_cases::MIXED_CASE_EMAIL].email.as_deref(),
        Some("Anna.Smith@Example.COM")
    );
    assert_eq!(
        a.subscribers[0].email.as_deref(),
        Some("anna.smith@example.com")
    );
    assert_ne!(a.subscribers[0].id, cs[0].id);
    assert!(name(hard_cases::UNICODE_NAME).is_some_and(|n| !n.is_ascii()));
    assert!(name(hard_cases::EMOJI_NAME).is_some_and(|n| n.contains('🌟')));
    assert_eq!(name(hard_cases::ONE_WORD_NAME), Some("Madonna"));
    assert_eq!(name(hard_cases::EMPTY_NAME), Some(""));
    assert_eq!(name(hard_cases::NULL_NAME), None);
    assert!(
        cs[hard_cases::MISSING_EMAIL].email.is_none()
            && cs[hard_cases::MISSING_EMAIL].phone.is_some()
    );
    assert!(
        cs[hard_cases::MISSING_PHONE].phone.is_none()
            && cs[hard_cases::MISSING_PHONE].email.is_some()
    );
    let mac = &cs[hard_cases::NO_CONTACT_MAC];
    assert!(mac.email.is_none() && mac.phone.is_none());
    assert_eq!(mac.user_name, "BE-72-B3-40-F9-BE");
    assert_eq!(
        cs[hard_cases::PHONE_US_PUNCTUATED].phone.as_deref(),
        Some("+1 (555) 010-2000")
    );
    assert_eq!(
        cs[hard_cases::PHONE_00_PREFIX].phone.as_deref(),
        Some("0044 20 7946 0958")
    );
    assert_eq!(
        cs[hard_cases::PHONE_NATIONAL_GB].phone.as_deref(),
        Some("020 7946 0959")
    );
    assert!(
        cs[hard_cases::SOCIAL_FACEBOOK]
            .social_followers_count
            .is_some()
    );
    assert_eq!(
        cs[hard_cases::SOCIAL_GOOGLE].social_network.as_deref(),
        Some("google")
    );
    assert_eq!(
        cs[hard_cases::LONG_FIELDS]
            .address
            .as_ref()
            .map(|s| s.chars().count()),
        Some(2_000)
    );
    let ws = &cs[hard_cases::WHITESPACE];
    assert!(ws.email.as_deref().is_some_and(|e| e != e.trim()));

    // Distinct customers never share an email (ignoring case and whitespace) nor a phone.
    let mut emails = HashSet::new();
    let mut phones = HashSet::new();
    for c in cs {
        if let Some(e) = &c.email {
            assert!(
                emails.insert(e.trim().to_lowercase()),
                "duplicate email {e}"
            );
        }
        if let Some(p) = &c.phone {
            let digits: String = p.chars().filter(char::is_ascii_digit).collect();
            assert!(phones.insert(digits), "duplicate phone {p}");
        }
    }
    // Exactly `subscribers_also_customers` subscribers are customers by email.
    let shared = a
        .subscribers
        .iter()
        .filter(|s| {
            s.email
                .as_ref()
                .is_some_and(|e| emails.contains(&e.to_lowercase()))
        })
        .count();
    assert_eq!(shared, spec.subscribers_also_customers);
    assert!(
        cs.windows(2)
            .all(|w| w[0].registered_at < w[1].registered_at)
    );
    assert!(
        a.subscribers
            .windows(2)
            .all(|w| w[0].registered_at < w[1].registered_at)
    );

    check_transactions(&a);
    let users: HashSet<&str> = a
        .mac_transactions
        .iter()
        .map(|t| t.user_name.as_str())
        .chain(a.paid_transactions.iter().map(|t| t.user_name.as_str()))
        .chain(a.voucher_transactions.iter().map(|t| t.user_name.as_str()))
        .chain(a.social_transactions.iter().map(|t| t.user_name.as_str()))
        .collect();
    assert!(users.len() > 150, "spread over customers: {}", users.len());
    let mut b = a.clone();
    let before = b.max_transaction_id().expect("ids");
    b.add_transactions(99, 50);
    assert_eq!(b.transaction_count(), 450);
    assert!(b.max_transaction_id().expect("ids") > before);
    check_transactions(&b);
    let mut b2 = a.clone();
    b2.add_transactions(99, 50);
    assert_eq!(b, b2);

    let new_ids = b.add_customers(5, 3);
    assert_eq!(new_ids.len(), 3);
    assert_eq!(b.customers.len(), 303);
    assert!(
        b.customers
            .windows(2)
            .all(|w| w[0].registered_at < w[1].registered_at)
    );
    let mut emails = HashSet::new();
    assert!(
        b.customers
            .iter()
            .filter_map(|c| c.email.as_ref())
            .all(|e| emails.insert(e.trim().to_lowercase()))
    );
    let newest = b.customers.last().expect("customer").registered_at;
    assert!(
        b.paid_transactions
            .iter()
            .all(|t| t.action_date_gmt < newest)
    );
    b.add_transactions(6, 200);
    check_transactions(&b);
}

/// (id, action date, location id, user_name, email, phone) of one transaction of any kind.
type TxSummary<'a> = (i64, String, i64, &'a str, Option<&'a str>, Option<&'a str>);

/// Ids unique and increasing with dates; every transaction names a real customer and location.
fn check_transactions(d: &HotspotData) {
    let mut all: Vec<TxSummary<'_>> = Vec::new();
    for t in &d.mac_transactions {
        all.push((
            t.id,
            t.action_date_gmt.to_rfc3339(),
            t.location_id,
            &t.user_name,
            t.email.as_deref(),
            t.phone.as_deref(),
        ));
    }
    for t in d.voucher_transactions.iter().chain(&d.paid_transactions) {
        all.push((
            t.id,
            t.action_date_gmt.to_rfc3339(),
            t.location_id,
            &t.user_name,
            t.email.as_deref(),
            t.phone.as_deref(),
        ));
    }
    for t in &d.social_transactions {
        all.push((
            t.id,
            t.action_date_gmt.to_rfc3339(),
            t.location_id,
            &t.user_name,
            t.email.as_deref(),
            t.phone.as_deref(),
        ));
    }
    all.sort_by_key(|t| t.0);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
    let locations: HashSet<String> = d.locations.iter().map(|l| l.id.clone()).collect();
    for (id, _, loc, user, email, phone) in all {
        assert!(
            locations.contains(&loc.to_string()),
            "tx {id} location {loc}"
        );
        assert!(
            d.customers.iter().any(|c| c.user_name == user
                && c.email.as_deref() == email
                && c.phone.as_deref() == phone),
            "tx {id} does not identify a customer"
        );
    }
    for list in [
        &d.mac_transactions.iter().map(|t| t.id).collect::<Vec<_>>(),
        &d.paid_transactions.iter().map(|t| t.id).collect(),
    ] {
        assert!(
            list.windows(2).all(|w| w[0] < w[1]),
            "per-kind ids increase in insertion order"
        );
    }
}
