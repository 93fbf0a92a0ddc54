//! `sandbox`: both emulators on loopback with seeded data and fault knobs, until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::cli::{DateRangeArg, ForbiddenBodyArg, SandboxArgs, SeedArgs};
use crate::sandbox::faults::{BodyPadding, ErrorAnswer, FaultKnobs};
use crate::sandbox::ghl::{
    DateRangeFormat, ForbiddenBody, GhlOptions, ScopeDenialBody, SearchPaging,
};
use crate::sandbox::hotspot::{HotspotOptions, NewRecord, OddValues, Paging};
use crate::sandbox::hotspot_webhooks::{WebhookEvent, WebhookOptions, WebhookSpec};
use crate::sandbox::seed::{Customer, SeedSpec, Spread};
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
    if let Some(url) = &args.webhook_url {
        check_loopback_url(url)?;
    }
    let faults = FaultKnobs {
        latency: Duration::from_millis(args.latency_ms),
        p500: args.p500,
        p502: args.p502,
        p503: args.p503,
        p_drop_after_write: args.p_drop_after_write,
        p429_retry_after: args.p429_retry_after,
        p429_no_retry_after: args.p429_no_retry_after,
        headers: args
            .ghl_headers
            .iter()
            .map(|h| match h.split_once(':') {
                Some((name, value)) => Ok((name.trim().to_string(), value.trim().to_string())),
                None => Err(anyhow::anyhow!("--ghl-header `{h}`: expected NAME:VALUE")),
            })
            .collect::<anyhow::Result<_>>()?,
        pad_body: (args.pad_body_bytes > 0).then_some(BodyPadding {
            bytes: args.pad_body_bytes,
            announce_length: !args.pad_body_unannounced,
        }),
        error_answer: args.write_error_message.clone().map(|message| ErrorAnswer {
            status: 422,
            message,
            only_writes: true,
        }),
        ..FaultKnobs::default()
    };
    let ghl = GhlOptions {
        rate_limit: args.rate_limit,
        rate_window: Duration::from_millis(args.rate_window_ms),
        daily_quota: args.daily_quota,
        daily_period: args.daily_period_secs.map(Duration::from_secs),
        daily_reset_header: !args.no_daily_reset_header,
        access_token_lifetime: Duration::from_secs(args.token_ttl_secs),
        revoke_access_on_refresh: args.revoke_access_on_refresh,
        scope_denial_body: if args.scope_denial_message_only {
            ScopeDenialBody::MessageOnly
        } else {
            ScopeDenialBody::Nest
        },
        allow_duplicates: args.allow_duplicates,
        search_lag: Duration::from_millis(args.search_lag_ms),
        dedup_lags: args.dedup_lags,
        rate_limit_headers: !args.no_rate_limit_headers,
        task_search_pending_by_default: args.task_search_pending_by_default,
        deleted_task_rows: args.deleted_task_rows,
        bulk_business_limit: args.bulk_business_limit,
        custom_fields_by_id_only: args.custom_fields_by_id_only,
        search_paging: SearchPaging {
            total_cap: args.search_total_cap,
            unstable_default_order: args.search_unstable_order,
            stuck: args.search_stuck,
        },
        date_range_format: match args.search_date_format {
            DateRangeArg::Iso => DateRangeFormat::Iso,
            DateRangeArg::Millis => DateRangeFormat::Millis,
            DateRangeArg::Both => DateRangeFormat::Both,
            DateRangeArg::Neither => DateRangeFormat::Neither,
            DateRangeArg::Ignored => DateRangeFormat::Ignored,
        },
        edits_keep_date_updated: args.edits_keep_date_updated,
        forbidden_body: match args.forbidden_body {
            ForbiddenBodyArg::Nest => ForbiddenBody::Nest,
            ForbiddenBodyArg::MessageOnly => ForbiddenBody::MessageOnly,
            ForbiddenBodyArg::Empty => ForbiddenBody::Empty,
        },
        installed_locations_max_limit: usize::from(args.installed_locations_max_limit),
        faults,
        ..GhlOptions::default().with_locations(usize::from(args.ghl_locations))
    };
    let hotspot = HotspotOptions {
        lenient_types: args.lenient_types,
        odd_values: OddValues {
            zero_dates: args.zero_dates,
            malformed_dates: args.malformed_dates,
            text_as_numbers: args.text_as_numbers,
            nulls: args.unexpected_nulls,
            object_cities: args.object_cities,
        },
        latency: Duration::from_millis(args.latency_ms),
        paging: Paging {
            offset: args.hotspot_offset,
            link: args.hotspot_link,
        },
        ..HotspotOptions::default()
    };
    let sandbox = Sandbox::start(SandboxOptions {
        seed: seed_spec(&args.seed),
        spread: if args.even_spread {
            Spread::Even
        } else {
            Spread::Random
        },
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
    let ids = sandbox.ghl.location_ids();
    if ids.len() > 1 {
        println!(
            "  agency   company {}, app {}, {} sub-accounts (location id, Private Integration Token):",
            sandbox.ghl.company_id(),
            sandbox.ghl.app_id(),
            ids.len()
        );
        for id in &ids {
            let pit = sandbox.ghl.token_for(id).unwrap_or_default();
            println!("           {id} {pit}");
        }
    }
    if let Some(url) = &args.webhook_url {
        let locations: Vec<String> = sandbox
            .hotspot
            .with_data(|d| d.locations.iter().map(|l| l.id.clone()).collect());
        sandbox.hotspot.set_webhooks(
            locations
                .iter()
                .map(|l| WebhookSpec {
                    location_id: l.clone(),
                    event: WebhookEvent::CustomerCreate,
                    url: url.clone(),
                    key: args.webhook_key.clone(),
                })
                .collect(),
            WebhookOptions {
                batch_interval: Duration::from_millis(args.webhook_batch_ms),
                header: args.webhook_header,
                encoding: args.webhook_signature,
                keys: args.webhook_keys,
                batching: args.webhook_batching,
                ..WebhookOptions::default()
            },
        );
        println!("Webhooks:               customer.create of every location to {url}");
        println!(
            "  key      {} (header {}, every {} ms)",
            args.webhook_key,
            args.webhook_header.name(),
            args.webhook_batch_ms
        );
    }
    // New guests as they would register at the venue, each with its webhook.
    let adding = args.new_guest_every_secs.map(|secs| {
        let location = sandbox
            .hotspot
            .with_data(|d| d.locations.first().map(|l| l.id.clone()))
            .unwrap_or_default();
        println!("New guests:             one every {secs} s at location {location}");
        let mut tick = tokio::time::interval(Duration::from_secs(secs));
        let mut n = 0u64;
        async move {
            loop {
                tick.tick().await;
                n += 1;
                sandbox
                    .hotspot
                    .add_record(NewRecord::Customer(new_guest(n, &location)));
            }
        }
    });
    println!("Press Ctrl-C to stop.");
    match adding {
        Some(adding) => {
            tokio::select! {
                stop = tokio::signal::ctrl_c() => stop?,
                () = adding => {}
            }
        }
        None => tokio::signal::ctrl_c().await?,
    }
    Ok(EXIT_OK)
}

/// The emulators stay on this machine: so do the webhooks they send.
fn check_loopback_url(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| anyhow::anyhow!("--webhook-url {url:?} is not a URL: {e}"))?;
    match parsed.host_str() {
        Some("127.0.0.1" | "localhost" | "[::1]") if parsed.scheme() == "http" => Ok(()),
        _ => anyhow::bail!(
            "--webhook-url {url:?} must be http://127.0.0.1:PORT/... (the sandbox sends nothing off this machine)"
        ),
    }
}

/// The `n`th guest `--new-guest-every-secs` adds (ids above the seeded ones).
fn new_guest(n: u64, location: &str) -> Customer {
    Customer {
        id: format!("8{n:08}"),
        user_name: format!("SB-{n:08}"),
        name: Some(format!("Sandbox Guest{n}")),
        email: Some(format!("sandbox-guest-{n}@example.com")),
        registered_at: chrono::Utc::now(),
        location_id: location.to_string(),
        ..Customer::default()
    }
}
