//! Time of `POST /contacts/search` pages against the GHL emulator holding N contacts.
//!
//! `cargo run --example ghl_search_pages -- 100000 5` reads 5 pages of 500 the way a listing
//! does (same filters and sort, `page` 1, 2, …). With `uncached` as a third argument, one write
//! is left lagging behind search for the whole run, which makes every page filter and sort the
//! whole location, as every page did before the emulator kept a search's ordered matches.

use std::time::{Duration, Instant};

use chrono::Utc;
use hotspot_ghl_sync::sandbox::ghl::{Contact, GhlEmulator, GhlOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: i64 = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let pages: u64 = args.get(2).map_or(Ok(5), |a| a.parse())?;
    let uncached = args.get(3).is_some_and(|a| a == "uncached");
    let emu = GhlEmulator::start(GhlOptions {
        rate_limit: 1_000_000,
        ..GhlOptions::default()
    })
    .await?;
    let base = Utc::now() - chrono::Duration::days(30);
    emu.with_state(|s| {
        for i in 0..n {
            let id = s.new_id();
            let mut c = Contact::new(id, base + chrono::Duration::seconds(i));
            c.email = Some(format!("guest{i}@example.com"));
            s.insert_contact(c);
        }
    });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let send = |body: serde_json::Value, path: &str| {
        http.post(format!("{}{path}", emu.base_url()))
            .bearer_auth("pit-test-token")
            .header("Version", "2021-07-28")
            .json(&body)
            .send()
    };
    if uncached {
        emu.set_search_lag(Duration::from_secs(3600));
        let r = send(
            json!({"locationId": emu.location_id(), "email": "lag@example.com"}),
            "/contacts/",
        )
        .await?;
        anyhow::ensure!(r.status().as_u16() == 201, "create: {}", r.status());
    }
    let mut times = Vec::new();
    for page in 1..=pages {
        let body = json!({"locationId": emu.location_id(), "pageLimit": 500, "page": page,
                          "sort": [{"field": "dateAdded", "direction": "asc"}]});
        let t = Instant::now();
        let r = send(body, "/contacts/search").await?;
        anyhow::ensure!(r.status().is_success(), "search: {}", r.status());
        let v: serde_json::Value = r.json().await?;
        times.push(t.elapsed());
        anyhow::ensure!(
            v["contacts"].as_array().map_or(0, Vec::len) == 500,
            "short page"
        );
    }
    let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    let rest = &times[1..];
    let mean = rest.iter().sum::<Duration>() / rest.len().max(1) as u32;
    println!(
        "{n} contacts, {} pages: first {} ms, later pages mean {} ms (each: {ms:?})",
        if uncached { "uncached" } else { "cached" },
        ms[0],
        mean.as_millis()
    );
    Ok(())
}
