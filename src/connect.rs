//! Building the two API clients from a validated [`Config`]: one HTTP policy per API (rate,
//! retries, timeouts from `[hotspot]`, `[ghl]`, `[http]`) and the GHL token source.

use anyhow::Context;

use crate::config::Config;
use crate::ghl::GhlClient;
use crate::ghl::token_store::token_source;
use crate::hotspot::HotspotClient;
use crate::http::{AuditSink, HttpPolicy};

/// The GHL HTTP policy from `[ghl]` and `[http]`.
pub fn ghl_policy(cfg: &Config) -> anyhow::Result<HttpPolicy> {
    HttpPolicy::new(cfg.ghl_http().clone(), AuditSink::new())
        .context("cannot set up the GHL HTTP client")
}

/// The HotspotSystem HTTP policy from `[hotspot]` and `[http]`.
pub fn hotspot_policy(cfg: &Config) -> anyhow::Result<HttpPolicy> {
    HttpPolicy::new(cfg.hotspot_http().clone(), AuditSink::new())
        .context("cannot set up the HotspotSystem HTTP client")
}

pub fn hotspot_client(cfg: &Config) -> anyhow::Result<HotspotClient> {
    Ok(HotspotClient::with_secret(
        &cfg.hotspot.base_url,
        cfg.hotspot.api_key.clone(),
        hotspot_policy(cfg)?,
    )
    .context("cannot set up the HotspotSystem client")?
    .with_page_size(cfg.hotspot.page_size))
}

/// The GHL client over the configured token source (a Private Integration token, or the OAuth
/// pair kept in the state database).
pub fn ghl_client(cfg: &Config) -> anyhow::Result<GhlClient> {
    let policy = ghl_policy(cfg)?;
    let tokens = token_source(cfg, &cfg.state.path, policy.clone())
        .map_err(|e| anyhow::Error::new(crate::ghl::GhlError::Auth(e)))?;
    GhlClient::new(&cfg.ghl.base_url, &cfg.ghl.location_id, tokens, policy)
        .context("cannot set up the GHL client")
}
