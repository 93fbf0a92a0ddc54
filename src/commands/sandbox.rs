//! `sandbox`: both emulators on loopback with seeded data and fault knobs, until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::cli::{SandboxArgs, SeedArgs};
use crate::sandbox::faults::FaultKnobs;
use crate::sandbox::ghl::{GhlOptions, SearchPaging};
use crate::sandbox::hotspot::{HotspotOptions, Paging};
use crate::sandbox::seed::SeedSpec;
use crate::sandbox::{Sandbox, SandboxOptions};

use super::EXIT_OK;

pub(crate) fn seed_spec(a: &SeedArgs) -> SeedSpec {
    SeedSpec {
        seed: a.seed,
        locations: a.locations,
        customers: a.customers,
        subscribers: a.subscribers,
        subscribers_also_customers: a.subscribers_also_customers.min(a.subscribers),
        transactions: a.transactions,
    }
}

pub async fn run(args: &SandboxArgs) -> anyhow::Result<u8> {
    let faults = FaultKnobs {
        latency: Duration::from_millis(args.latency_ms),
        p500: args.p500,
        p502: args.p502,
        p503: args.p503,
        p_drop_after_write: args.p_drop_after_write,
        p429_retry_after: args.p429_retry_after,
        p429_no_retry_after: args.p429_no_retry_after,
        ..FaultKnobs::default()
    };
    let ghl = GhlOptions {
        rate_limit: args.rate_limit,
        rate_window: Duration::from_millis(args.rate_window_ms),
        daily_quota: args.daily_quota,
        access_token_lifetime: Duration::from_secs(args.token_ttl_secs),
        allow_duplicates: args.allow_duplicates,
        search_lag: Duration::from_millis(args.search_lag_ms),
        dedup_lags: args.dedup_lags,
        search_paging: SearchPaging {
            total_cap: args.search_total_cap,
            unstable_default_order: args.search_unstable_order,
            stuck: args.search_stuck,
        },
        faults,
        ..GhlOptions::default()
    };
    let hotspot = HotspotOptions {
        lenient_types: args.lenient_types,
        latency: Duration::from_millis(args.latency_ms),
        paging: Paging {
            offset: args.hotspot_offset,
            link: args.hotspot_link,
        },
        ..HotspotOptions::default()
    };
    let sandbox = Sandbox::start(SandboxOptions {
        seed: seed_spec(&args.seed),
        hotspot,
        ghl,
        hotspot_addr: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, args.hotspot_port))),
        ghl_addr: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, args.ghl_port))),
    })
    .await?;
    let (customers, subscribers, transactions) = sandbox.hotspot.with_data(|d| {
        (
            d.customers.len(),
            d.subscribers.len(),
            d.transaction_count(),
        )
    });
    // The sandbox's credentials are fixed test values, not secrets: printing them is the point.
    println!("HotspotSystem emulator: {}", sandbox.hotspot.base_url());
    println!("  header   sn-apikey: {}", sandbox.hotspot_api_key());
    println!(
        "  data     {customers} customers, {subscribers} subscribers, {transactions} transactions"
    );
    println!("GHL emulator:           {}", sandbox.ghl.base_url());
    println!("  headers  Authorization: Bearer {}", sandbox.ghl_token());
    println!("           Version: 2021-07-28");
    println!("  location {}", sandbox.ghl.location_id());
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    Ok(EXIT_OK)
}
