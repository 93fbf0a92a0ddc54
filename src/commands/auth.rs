//! `auth ghl url|exchange|status`: OAuth set-up of the GHL sub-account, or of the agency's
//! installation that mints each location's token (DESIGN.md §7).
//!
//! Nothing here ever prints a token: `status` shows expiry, scopes and location only.

use std::collections::BTreeSet;

use anyhow::{Context, anyhow};
use chrono::Utc;

use crate::cli::{AuthCommand, GhlAuthCommand};
use crate::config::{Config, GhlAuth};
use crate::ghl::auth::authorize_url_at;
use crate::ghl::token_store::{
    SqliteLocationTokenStore, SqliteTokenStore, oauth_config, oauth_store_path, oauth_tokens,
};
use crate::ghl::{AuthError, GhlError};

use super::EXIT_OK;

/// A scope the configuration asks for, and the feature that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeededScope {
    pub scope: String,
    pub why: &'static str,
}

/// The scopes the enabled features need, in a stable order; `ghl.scopes`, when written in the
/// file, replaces the computed list (least privilege is the default, the operator has the last
/// word).
pub(crate) fn needed_scopes(cfg: &Config) -> Vec<NeededScope> {
    if let Some(listed) = &cfg.ghl.listed_scopes {
        return listed
            .iter()
            .map(|scope| NeededScope {
                scope: scope.clone(),
                why: "listed in ghl.scopes",
            })
            .collect();
    }
    let mut out = Vec::new();
    let mut add = |scope: &str, why: &'static str| {
        out.push(NeededScope {
            scope: scope.to_string(),
            why,
        })
    };
    add("contacts.readonly", "contacts, notes, tasks, appointments");
    add("contacts.write", "contacts, tags, notes, tasks");
    add("locations.readonly", "location check");
    if !cfg.custom_field_keys().is_empty() {
        add(
            "locations/customFields.readonly",
            "custom fields (ghl.hotspot_id_field, contacts.fields)",
        );
    }
    if cfg.businesses.enabled {
        add("businesses.readonly", "[businesses] enabled");
        add("businesses.write", "[businesses] enabled");
    }
    if cfg.tasks.enabled {
        add("locations/tasks.readonly", "[tasks] enabled");
    }
    out
}

pub(crate) use crate::connect::{ghl_policy, hotspot_policy};

/// An authentication error in the form `dispatch` maps to exit code 2.
pub(crate) fn auth_error(e: AuthError) -> anyhow::Error {
    anyhow::Error::new(GhlError::Auth(e))
}

pub async fn run(cfg: &Config, cmd: &AuthCommand) -> anyhow::Result<u8> {
    match cmd {
        AuthCommand::Ghl(GhlAuthCommand::Url) => url(cfg),
        AuthCommand::Ghl(GhlAuthCommand::Exchange { code }) => exchange(cfg, code).await,
        AuthCommand::Ghl(GhlAuthCommand::Status) => status(cfg),
        AuthCommand::Ghl(GhlAuthCommand::Locations) => locations(cfg).await,
    }
}

/// The OAuth app's keys of `cfg` (`oauth` or `agency`): client id, redirect URI, authorize URL.
fn app_keys(cfg: &Config) -> anyhow::Result<(&str, &str, &str)> {
    oauth_config(cfg)
        .map_err(auth_error)
        .context("this command needs OAuth")?;
    match &cfg.ghl.auth {
        GhlAuth::OAuth {
            client_id,
            redirect_uri,
            authorize_url,
            ..
        } => Ok((client_id, redirect_uri, authorize_url)),
        GhlAuth::Agency(a) => Ok((&a.client_id, &a.redirect_uri, &a.authorize_url)),
        GhlAuth::PrivateToken { .. } => Err(anyhow!(
            "this command needs ghl.auth = \"oauth\" or \"agency\""
        )),
    }
}

/// Scopes the agency's own token needs on top of those of the sync: minting location tokens
/// and listing the sub-accounts the app is installed on.
const AGENCY_SCOPES: &[(&str, &str)] = &[
    ("oauth.write", "mint location tokens (auth = \"agency\")"),
    (
        "oauth.readonly",
        "list installed sub-accounts (auth ghl locations)",
    ),
];

/// What the authorization URL asks for: the sync's scopes, and with `agency` the agency's.
fn requested_scopes(cfg: &Config) -> Vec<NeededScope> {
    let mut needed = needed_scopes(cfg);
    if matches!(cfg.ghl.auth, GhlAuth::Agency(_)) && cfg.ghl.listed_scopes.is_none() {
        needed.extend(AGENCY_SCOPES.iter().map(|(scope, why)| NeededScope {
            scope: scope.to_string(),
            why,
        }));
    }
    needed
}

fn url(cfg: &Config) -> anyhow::Result<u8> {
    let (client_id, redirect_uri, authorize_url) = app_keys(cfg)?;
    let needed = requested_scopes(cfg);
    let scopes: Vec<&str> = needed.iter().map(|n| n.scope.as_str()).collect();
    let link = authorize_url_at(authorize_url, client_id, redirect_uri, &scopes)
        .map_err(auth_error)
        .context("cannot build the authorization URL")?;
    match &cfg.ghl.auth {
        GhlAuth::Agency(a) => println!(
            "Open this URL as an admin of the agency (company {}) and install the app for the agency and the sub-accounts it syncs:",
            a.company_id
        ),
        _ => println!("Open this URL as an admin of the GHL sub-account and approve the app:"),
    }
    println!();
    println!("  {link}");
    println!();
    println!("Scopes requested ({}):", needed.len());
    for n in &needed {
        println!("  {:<34} {}", n.scope, n.why);
    }
    println!();
    println!(
        "GHL then redirects to {redirect_uri}?code=CODE; run `hotspot-ghl-sync auth ghl exchange --code CODE` with that code."
    );
    Ok(EXIT_OK)
}

async fn exchange(cfg: &Config, code: &str) -> anyhow::Result<u8> {
    let (_, redirect_uri, _) = app_keys(cfg)?;
    let code = code.trim();
    if code.is_empty() {
        return Err(auth_error(AuthError::Config(
            "--code is empty; pass the code from the redirect URL".into(),
        )));
    }
    let store_path = oauth_store_path(cfg);
    let (tokens, _store) = oauth_tokens(cfg, ghl_policy(cfg)?)
        .map_err(auth_error)
        .with_context(|| format!("cannot open the token store {}", store_path.display()))?;
    let pair = tokens
        .exchange_code(code, Some(redirect_uri))
        .await
        .map_err(auth_error)
        .context("exchanging the authorization code at GHL failed (codes are single-use and short-lived; get a new one with `auth ghl url`)")?;
    match &cfg.ghl.auth {
        GhlAuth::Agency(a) => {
            println!(
                "Stored the agency's GHL OAuth token pair in {}; every pair of this file mints its location token from it.",
                store_path.display()
            );
            if pair.user_type.as_deref() != Some("Company") {
                println!(
                    "WARNING: GHL issued a {} token, not an agency (Company) one: approve the app at agency level for company {}",
                    pair.user_type.as_deref().unwrap_or("(unstated)"),
                    a.company_id
                );
            }
        }
        _ => println!(
            "Stored the GHL OAuth token pair in {}.",
            store_path.display()
        ),
    }
    print_pair_summary(
        pair.location_id.as_deref(),
        pair.user_type.as_deref(),
        pair.scope.as_deref(),
        Some(pair.expires_at),
    );
    warn_about_pair(cfg, pair.location_id.as_deref(), pair.scope.as_deref());
    println!("Run `hotspot-ghl-sync check` to verify access.");
    Ok(EXIT_OK)
}

fn status(cfg: &Config) -> anyhow::Result<u8> {
    let mode = match &cfg.ghl.auth {
        GhlAuth::PrivateToken { .. } => {
            "private integration token (static; nothing to refresh)".to_string()
        }
        GhlAuth::OAuth { .. } => "oauth".to_string(),
        GhlAuth::Agency(a) => format!("agency (company {})", a.company_id),
    };
    println!("GHL auth:         {mode}");
    println!("Location (config): {}", cfg.ghl.location_id);
    let path = oauth_store_path(cfg);
    let what = match cfg.ghl.auth {
        GhlAuth::Agency(_) => "agency token store",
        _ => "state database",
    };
    if !path.exists() {
        return no_token(cfg, &format!("no {what} at {}", path.display()));
    }
    let store = match cfg.ghl.auth {
        GhlAuth::Agency(_) => SqliteTokenStore::open_agency(path),
        _ => SqliteTokenStore::open(path),
    }
    .map_err(auth_error)
    .with_context(|| format!("cannot open the {what} {}", path.display()))?;
    let Some(row) = store.stored().map_err(auth_error)? else {
        return no_token(
            cfg,
            &format!("no GHL OAuth token stored in {}", path.display()),
        );
    };
    match cfg.ghl.auth {
        GhlAuth::Agency(_) => println!("Agency store:     {}", path.display()),
        _ => println!("State database:   {}", path.display()),
    }
    print_pair_summary(
        row.location_id.as_deref(),
        row.user_type.as_deref(),
        row.scope.as_deref(),
        row.expires_at,
    );
    println!(
        "Refresh token:    {}",
        if row.refresh_token.is_some() {
            "stored"
        } else {
            "MISSING (reconnect: `auth ghl url`, then `auth ghl exchange --code CODE`)"
        }
    );
    println!(
        "Last saved:       {}",
        row.updated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    warn_about_pair(cfg, row.location_id.as_deref(), row.scope.as_deref());
    if matches!(cfg.ghl.auth, GhlAuth::Agency(_)) {
        location_token_status(cfg)?;
    }
    Ok(EXIT_OK)
}

/// The token minted for this configuration's location, as its state keeps it.
fn location_token_status(cfg: &Config) -> anyhow::Result<()> {
    let loc = &cfg.ghl.location_id;
    let state = &cfg.state.path;
    let held = SqliteLocationTokenStore::new(state)
        .stored()
        .map_err(auth_error)
        .with_context(|| format!("cannot read the state database {}", state.display()))?
        .filter(|row| row.location_id.as_deref() == Some(loc.as_str()));
    match held.and_then(|row| row.expires_at) {
        Some(t) => println!(
            "Location {loc}: token held in {}, expires {} ({})",
            state.display(),
            t.format("%Y-%m-%d %H:%M:%S UTC"),
            time_left(t, "minted again on next use")
        ),
        None => println!("Location {loc}: no token held (minted on next use)"),
    }
    Ok(())
}

fn time_left(t: chrono::DateTime<Utc>, when_expired: &str) -> String {
    let left = t - Utc::now();
    if left <= chrono::Duration::zero() {
        format!("expired; {when_expired}")
    } else {
        format!("in {}h {:02}m", left.num_hours(), left.num_minutes() % 60)
    }
}

/// The agency's sub-accounts, for the operator to copy location ids into `[[pairs]]`.
async fn locations(cfg: &Config) -> anyhow::Result<u8> {
    let GhlAuth::Agency(auth) = &cfg.ghl.auth else {
        return Err(auth_error(AuthError::Config(
            "`auth ghl locations` needs ghl.auth = \"agency\"".into(),
        )));
    };
    let Some(app_id) = &auth.app_id else {
        return Err(auth_error(AuthError::Config(
            "`auth ghl locations` needs ghl.app_id, the marketplace app's id (in the app's settings; GHL asks for it to list installations)".into(),
        )));
    };
    let agency =
        crate::ghl::token_store::agency(cfg, auth, &ghl_policy(cfg)?).map_err(auth_error)?;
    let listed = agency
        .installed_locations(app_id)
        .await
        .map_err(auth_error)
        .context("cannot list the agency's sub-accounts")?;
    println!("{:<26} {:<10} name", "location_id", "installed");
    for l in &listed {
        println!(
            "{:<26} {:<10} {}",
            l.id,
            if l.installed { "yes" } else { "no" },
            l.name
        );
    }
    let installed = listed.iter().filter(|l| l.installed).count();
    println!();
    println!(
        "{} sub-accounts, the app installed on {installed}; each synced one is a [[pairs]] entry with [pairs.ghl] location_id = \"…\".",
        listed.len()
    );
    Ok(EXIT_OK)
}

fn no_token(cfg: &Config, why: &str) -> anyhow::Result<u8> {
    match &cfg.ghl.auth {
        GhlAuth::PrivateToken { .. } => {
            println!("OAuth token:      none ({why}); not needed with a private integration token");
            Ok(EXIT_OK)
        }
        GhlAuth::OAuth { .. } => Err(auth_error(AuthError::NoTokens)).context(why.to_string()),
        GhlAuth::Agency(a) => Err(auth_error(AuthError::NoCompanyToken {
            store: a.token_store.display().to_string(),
        }))
        .context(why.to_string()),
    }
}

fn print_pair_summary(
    location: Option<&str>,
    user_type: Option<&str>,
    scope: Option<&str>,
    expires_at: Option<chrono::DateTime<Utc>>,
) {
    println!("Location (token): {}", location.unwrap_or("(not stated)"));
    if let Some(u) = user_type {
        println!("Token type:       {u}");
    }
    match expires_at {
        Some(t) => println!(
            "Access expires:   {} ({})",
            t.format("%Y-%m-%d %H:%M:%S UTC"),
            time_left(t, "refreshed on next use")
        ),
        None => println!("Access expires:   unknown (refreshed on next use)"),
    }
    let scopes: Vec<&str> = scope
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    println!("Scopes ({}):       {}", scopes.len(), scopes.join(" "));
}

/// Warnings about a stored pair that does not fit the configuration (`check` makes them errors).
fn warn_about_pair(cfg: &Config, location: Option<&str>, scope: Option<&str>) {
    if let Some(l) = location
        && l != cfg.ghl.location_id
    {
        println!(
            "WARNING: the token is for location {l}, the configuration names {}",
            cfg.ghl.location_id
        );
    }
    let granted: BTreeSet<&str> = scope
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    for n in needed_scopes(cfg) {
        if !granted.contains(n.scope.as_str()) {
            println!(
                "WARNING: scope {} is needed ({}) but was not granted",
                n.scope, n.why
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ghl.scopes` is taken as loaded: the file is not read again, so a path that no longer
    /// exists (or a file edited since) changes nothing.
    #[test]
    fn listed_scopes_are_the_loaded_ones() {
        let text = "[hotspot]\napi_key_env = \"K\"\n\n[ghl]\nlocation_id = \"loc\"\ntoken_env = \"T\"\nscopes = [\"contacts.readonly\", \" \"]\n";
        let env = |_: &str| Some("secret".to_string());
        let cfg = Config::from_str_with_env(text, "/nonexistent/hgs.toml", &env).unwrap();
        let needed: Vec<String> = needed_scopes(&cfg).into_iter().map(|n| n.scope).collect();
        assert_eq!(needed, ["contacts.readonly"]);
    }
}
