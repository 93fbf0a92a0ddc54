//! `check`: is this configuration ready to sync? (DESIGN.md §7, §8)
//!
//! Configuration valid (it was loaded to get here); HotspotSystem reachable with the key
//! (`GET /me`); GHL token valid; granted scopes against the scopes the enabled features need (a
//! missing one is an error, an extra one a warning); the configured location exists; the
//! HotspotSystem-id custom field exists.
//!
//! Granted scopes: an OAuth token states them (`scope` of the stored pair, compared exactly). A
//! Private Integration token cannot be introspected, so each read scope is probed with a harmless
//! GET and "401 not authorized for this scope" counts as missing; write scopes would need a write
//! and are reported as not verifiable. With OAuth, calls are only made for granted scopes (the
//! token states them; a probe would say nothing more).
//!
//! Exit codes: 0 all good (warnings allowed), 2 a configuration or authentication problem, 1 when
//! the only problems are transient (an API unreachable, 5xx, rate limited): try again later.

use std::collections::BTreeSet;

use chrono::Utc;
use serde::Serialize;

use crate::cli::{CheckArgs, OutputFormat};

use crate::config::{Config, Form, GhlAuth, Installation, Pair};
use crate::ghl::token_store::{SqliteTokenStore, token_source};
use crate::ghl::wire::TaskSearch;
use crate::ghl::{AuthError, GhlClient, GhlError, TokenSource};
use crate::hotspot::client::HotspotClient;
use crate::http::{ErrorClass, HttpError};
use crate::reconcile::snapshot::CustomFields;

use super::auth::{NeededScope, ghl_policy, hotspot_policy, needed_scopes};
use super::{EXIT_CONFIG, EXIT_FAILURE, EXIT_OK};

/// What a failed check means for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    /// Fix the configuration, the token or the GHL location.
    Config,
    /// Outage or rate limit: the check could not finish.
    Transient,
}

/// How sure a finding is, as printed (`ok`, `note`, `WARNING`, `ERROR`) and in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Note,
    Warning,
    Error,
}

#[derive(Debug, Serialize)]
struct Finding {
    level: Level,
    message: String,
}

/// Prints each finding as it is made (text) or all of them at the end (JSON), and remembers
/// the worst.
#[derive(Debug)]
struct Report {
    format: OutputFormat,
    /// The pair checked, in a file with `[[pairs]]`: each finding is named by it.
    pair: Option<String>,
    findings: Vec<Finding>,
    config_errors: usize,
    transient_errors: usize,
    warnings: usize,
}

impl Report {
    fn new(format: OutputFormat, pair: Option<String>) -> Self {
        Report {
            format,
            pair,
            findings: Vec::new(),
            config_errors: 0,
            transient_errors: 0,
            warnings: 0,
        }
    }
    fn push(&mut self, level: Level, msg: impl AsRef<str>) {
        let message = msg.as_ref().to_string();
        if self.format == OutputFormat::Text {
            let tag = match level {
                Level::Ok => "ok      ",
                Level::Note => "note    ",
                Level::Warning => "WARNING ",
                Level::Error => "ERROR   ",
            };
            match &self.pair {
                Some(pair) => println!("{tag} [{pair}] {message}"),
                None => println!("{tag} {message}"),
            }
        }
        self.findings.push(Finding { level, message });
    }
    fn ok(&mut self, msg: impl AsRef<str>) {
        self.push(Level::Ok, msg);
    }
    fn note(&mut self, msg: impl AsRef<str>) {
        self.push(Level::Note, msg);
    }
    fn warning(&mut self, msg: impl AsRef<str>) {
        self.warnings += 1;
        self.push(Level::Warning, msg);
    }
    fn error(&mut self, kind: Problem, msg: impl AsRef<str>) {
        match kind {
            Problem::Config => self.config_errors += 1,
            Problem::Transient => self.transient_errors += 1,
        }
        self.push(Level::Error, msg);
    }
    fn code(&self) -> u8 {
        if self.config_errors > 0 {
            EXIT_CONFIG
        } else if self.transient_errors > 0 {
            EXIT_FAILURE
        } else {
            EXIT_OK
        }
    }
    fn summary_line(&self) -> String {
        let errors = self.config_errors + self.transient_errors;
        format!(
            "{errors} error{}, {} warning{}",
            if errors == 1 { "" } else { "s" },
            self.warnings,
            if self.warnings == 1 { "" } else { "s" }
        )
    }
    fn json(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "findings": self.findings,
            "errors": self.config_errors + self.transient_errors,
            "warnings": self.warnings,
            "exit_code": self.code(),
        });
        if let Some(pair) = &self.pair {
            doc["pair"] = pair.clone().into();
        }
        doc
    }
    fn finish(&self) -> anyhow::Result<u8> {
        match self.format {
            OutputFormat::Text => println!("check: {}", self.summary_line()),
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&self.json())?),
        }
        Ok(self.code())
    }
}

fn http_problem(e: &HttpError) -> Problem {
    match e.class() {
        Some(ErrorClass::Transient | ErrorClass::RateLimited) => Problem::Transient,
        _ => Problem::Config,
    }
}

fn ghl_problem(e: &GhlError) -> Problem {
    match e {
        GhlError::Http(h) => http_problem(h),
        _ => Problem::Config,
    }
}

/// A 401 that is not a scope denial: the token itself is refused (or could not be refreshed).
fn is_token_rejection(e: &GhlError) -> bool {
    matches!(e, GhlError::Auth(_))
        || matches!(e, GhlError::Http(HttpError::Api(a)) if a.status == Some(401))
}

/// `check` on the pairs selected: in the single form as before the pairs existed; with
/// `[[pairs]]` every pair (or the one `--pair` names), each finding prefixed with its pair, then
/// one summary line per pair (JSON: `{"pairs": [...], "exit_code": worst}`).
pub async fn run_pairs(
    inst: &Installation,
    selected: &[&Pair],
    args: &CheckArgs,
) -> anyhow::Result<u8> {
    if let (Form::Single, [pair]) = (inst.form, selected) {
        let mut r = Report::new(args.format, None);
        check_pair(&pair.config, &mut r).await?;
        return r.finish();
    }
    let mut reports = Vec::with_capacity(selected.len());
    for pair in selected {
        let mut r = Report::new(args.format, Some(pair.name.clone()));
        check_pair(&pair.config, &mut r).await?;
        reports.push(r);
    }
    let worst = super::worst(reports.iter().map(Report::code));
    match args.format {
        OutputFormat::Text => {
            for r in &reports {
                println!(
                    "check [{}]: {}",
                    r.pair.as_deref().unwrap_or_default(),
                    r.summary_line()
                );
            }
        }
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "pairs": reports.iter().map(Report::json).collect::<Vec<_>>(),
                "exit_code": worst,
            }))?
        ),
    }
    Ok(worst)
}

async fn check_pair(cfg: &Config, r: &mut Report) -> anyhow::Result<()> {
    r.ok(format!(
        "configuration {} is valid",
        cfg.source_path.display()
    ));
    check_webhooks(cfg, r);
    let timeout = cfg.hotspot_http().timeout;
    match reachable(&cfg.hotspot.base_url, timeout).await {
        Ok(()) => check_hotspot(cfg, r).await?,
        Err(why) => r.error(
            Problem::Transient,
            format!("HotspotSystem unreachable: {why}"),
        ),
    }
    let timeout = cfg.ghl_http().timeout;
    match reachable(&cfg.ghl.base_url, timeout).await {
        Ok(()) => check_ghl(cfg, r).await?,
        Err(why) => r.error(Problem::Transient, format!("GHL unreachable: {why}")),
    }
    Ok(())
}

/// `[webhooks]`, when `run` would listen: the keys it would verify with (how many, never what),
/// and the GHL signature it cannot verify yet.
fn check_webhooks(cfg: &Config, r: &mut Report) {
    let w = &cfg.webhooks;
    let Some(listen) = w.listen else { return };
    match w.hotspot_keys.current() {
        Ok(keys) => r.ok(format!(
            "webhooks: `run` receives on {listen} (/hooks/hotspotsystem, /hooks/ghl), {} HotspotSystem key(s)",
            keys.len()
        )),
        Err(e) => r.error(Problem::Config, format!("webhooks: HotspotSystem keys: {e}")),
    }
    if w.ghl_keys.ed25519.is_none() {
        r.warning(
            "webhooks: no ghl_ed25519_public_key_file: GHL webhooks verify only by the legacy x-wh-signature (RSA), which GHL has announced it will retire",
        );
    }
}

/// One TCP connection to the API's host, before any request: a refused connection or a name
/// that does not resolve fails at once and says what was tried, instead of being retried for
/// the whole retry budget as a sync would (an outage during a run is worth waiting out; a
/// check is someone waiting for an answer). The URL is shown without user, password or query.
async fn reachable(base_url: &str, timeout: std::time::Duration) -> Result<(), String> {
    let url = reqwest::Url::parse(base_url).map_err(|e| format!("{base_url}: {e}"))?;
    let shown = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(format!("{shown}: no host or port in the URL"));
    };
    // `host_str` keeps an IPv6 address's brackets, which the resolver does not take.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let tried = format!("tried {shown} (TCP to {host}:{port})");
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{tried}: {e}")),
        Err(_) => Err(format!("{tried}: no connection within {timeout:?}")),
    }
}

async fn check_hotspot(cfg: &Config, r: &mut Report) -> anyhow::Result<()> {
    let client = HotspotClient::with_secret(
        &cfg.hotspot.base_url,
        cfg.hotspot.api_key.clone(),
        hotspot_policy(cfg)?,
    )?;
    match client.me().await {
        Ok(owner) => r.ok(format!(
            "HotspotSystem {} reachable, API key accepted (GET /me: operator {})",
            cfg.hotspot.base_url,
            owner.operator.as_deref().unwrap_or("?")
        )),
        Err(e) if e.class() == Some(ErrorClass::Auth) => r.error(
            Problem::Config,
            format!("HotspotSystem rejected the API key (GET /me): {e}"),
        ),
        Err(e) => r.error(
            http_problem(&e),
            format!("HotspotSystem {} not usable: {e}", cfg.hotspot.base_url),
        ),
    }
    Ok(())
}

/// How the GHL part goes: which probes may run and what they found.
struct GhlCheck<'a> {
    cfg: &'a Config,
    client: GhlClient,
    /// Scopes the OAuth token states; `None` for a Private Integration token.
    granted: Option<BTreeSet<String>>,
    needed: Vec<NeededScope>,
    /// Set once the token was refused: later calls would only repeat it.
    token_dead: bool,
    token_confirmed: bool,
    /// Set when GHL refused the configured location: every later call would be refused too.
    location_refused: bool,
}

impl GhlCheck<'_> {
    /// Whether to call an endpoint needing `scope`: always with a PIT (the call is the probe),
    /// with OAuth only when granted.
    fn may_call(&self, scope: &str) -> bool {
        !self.stopped() && self.granted.as_ref().is_none_or(|g| g.contains(scope))
    }

    /// No further call is worth making.
    fn stopped(&self) -> bool {
        self.token_dead || self.location_refused
    }

    /// Records the outcome of a call; returns the value on success.
    fn outcome<T>(
        &mut self,
        r: &mut Report,
        scope: &str,
        what: &str,
        res: Result<T, GhlError>,
    ) -> Option<T> {
        match res {
            Ok(v) => {
                self.token_confirmed = true;
                if self.granted.is_none() {
                    r.ok(format!("scope {scope}: granted ({what} succeeded)"));
                }
                Some(v)
            }
            Err(e) if e.is_scope_denial() => {
                self.token_confirmed = true;
                let why = self
                    .needed
                    .iter()
                    .find(|n| n.scope == scope)
                    .map(|n| n.why)
                    .unwrap_or("needed");
                r.error(
                    Problem::Config,
                    format!("scope {scope}: MISSING, needed for {why} ({what} answered 401 \"not authorized for this scope\")"),
                );
                None
            }
            Err(e) if is_token_rejection(&e) => {
                self.token_dead = true;
                let hint = match self.cfg.ghl.auth {
                    GhlAuth::PrivateToken { .. } => {
                        "create a new Private Integration token in GHL (Settings → Private Integrations)"
                    }
                    GhlAuth::OAuth { .. } => {
                        "reconnect: `auth ghl url`, then `auth ghl exchange --code CODE`"
                    }
                    GhlAuth::Agency(_) => {
                        "is the app still installed on this sub-account? If so, reconnect the agency: `auth ghl url`, then `auth ghl exchange --code CODE`"
                    }
                };
                r.error(
                    Problem::Config,
                    format!("GHL token refused ({what}): {e}; {hint}"),
                );
                None
            }
            Err(e) => {
                r.error(ghl_problem(&e), format!("GHL {what} failed: {e}"));
                None
            }
        }
    }
}

async fn check_ghl(cfg: &Config, r: &mut Report) -> anyhow::Result<()> {
    let policy = ghl_policy(cfg)?;
    let oauth = matches!(cfg.ghl.auth, GhlAuth::OAuth { .. });
    if oauth && !cfg.state.path.exists() {
        r.error(
            Problem::Config,
            format!(
                "GHL token: no state database at {}: {}",
                cfg.state.path.display(),
                AuthError::NoTokens
            ),
        );
        return Ok(());
    }
    let source = match token_source(cfg, &cfg.state.path, policy.clone()) {
        Ok(s) => s,
        Err(e) => {
            r.error(Problem::Config, format!("GHL token: {e}"));
            return Ok(());
        }
    };
    let client = GhlClient::new(
        &cfg.ghl.base_url,
        &cfg.ghl.location_id,
        source.clone(),
        policy,
    )?;
    let mut g = GhlCheck {
        cfg,
        client,
        granted: None,
        needed: needed_scopes(cfg),
        token_dead: false,
        token_confirmed: false,
        location_refused: false,
    };

    if let TokenSource::OAuth(o) = &source {
        // Refresh first if the stored access token is (nearly) expired, so that the scopes
        // compared below are those of the pair in use.
        if let Err(e) = o.access_token().await {
            r.error(
                Problem::Config,
                format!("GHL OAuth token unusable: {e}; reconnect: `auth ghl url`, then `auth ghl exchange --code CODE`"),
            );
            return Ok(());
        }
        let scope = o.scopes().await.unwrap_or_default().unwrap_or_default();
        g.granted = Some(scope.split_whitespace().map(str::to_string).collect());
        compare_scopes(&g, r);
    } else if let TokenSource::Agency(a) = &source {
        // Mint (or reuse) the location token now: a refusal names the location here rather
        // than in the first probe below.
        match a.scopes().await {
            Ok(scope) => {
                let scope = scope.unwrap_or_default();
                g.granted = Some(scope.split_whitespace().map(str::to_string).collect());
                compare_scopes(&g, r);
            }
            Err(e) => {
                r.error(Problem::Config, format!("GHL location token: {e}"));
                return Ok(());
            }
        }
    } else {
        r.note("GHL auth: Private Integration token; GHL cannot list its scopes, so each read scope is probed with a harmless GET");
    }

    // Location (locations.readonly).
    let loc_scope = "locations.readonly";
    if g.may_call(loc_scope) {
        let res = g.client.get_location().await;
        check_location(&mut g, r, loc_scope, res);
    } else if !g.stopped() {
        r.note(format!(
            "location {} not checked: the token lacks {loc_scope}",
            cfg.ghl.location_id
        ));
    }

    // Contacts read (contacts.readonly): a 1-result search.
    let contacts_scope = "contacts.readonly";
    if g.may_call(contacts_scope) && (g.granted.is_none() || !g.token_confirmed) {
        let mut search = g.client.search_contacts(Vec::new(), Vec::new(), 1);
        let res = search.next_page().await;
        g.outcome(r, contacts_scope, "POST /contacts/search (1 result)", res);
    }

    // The custom fields the sync writes (locations/customFields.readonly), resolved to ids the
    // way a pass does before its first write.
    let wanted = cfg.custom_field_keys();
    if !wanted.is_empty() {
        let cf_scope = "locations/customFields.readonly";
        if g.may_call(cf_scope) {
            let res = g.client.location_custom_fields().await;
            if let Some(fields) = g.outcome(r, cf_scope, "GET /locations/{id}/customFields", res) {
                match CustomFields::resolve(&fields, &wanted) {
                    Ok(_) => {
                        for (at, key) in &wanted {
                            r.ok(format!("custom field {key} exists ({at})"));
                        }
                    }
                    Err(e) => {
                        for (at, key) in &wanted {
                            if !e.missing.iter().any(|(_, k)| k == key) {
                                r.ok(format!("custom field {key} exists ({at})"));
                            }
                        }
                        r.error(
                            Problem::Config,
                            format!("{e} (location {})", cfg.ghl.location_id),
                        );
                    }
                }
            }
        } else if !g.stopped() {
            let keys: Vec<&str> = wanted.iter().map(|(_, k)| k.as_str()).collect();
            r.note(format!(
                "custom field(s) {} not checked: the token lacks {cf_scope}",
                keys.join(", ")
            ));
        }
    }

    // Probes of the remaining read scopes, for a PIT only (OAuth states its scopes).
    if g.granted.is_none() {
        for n in g.needed.clone() {
            match n.scope.as_str() {
                "contacts.readonly" | "locations.readonly" | "locations/customFields.readonly" => {}
                "businesses.readonly" if g.may_call(&n.scope) => {
                    let res = g.client.list_businesses(1, 0).await;
                    g.outcome(r, &n.scope, "GET /businesses/ (1 result)", res);
                }
                "locations/tasks.readonly" if g.may_call(&n.scope) => {
                    let search = TaskSearch {
                        limit: Some(1),
                        ..Default::default()
                    };
                    let res = g.client.search_location_tasks(&search).await;
                    g.outcome(
                        r,
                        &n.scope,
                        "POST /locations/{id}/tasks/search (1 result)",
                        res,
                    );
                }
                _ if g.stopped() => {}
                s => r.note(format!(
                    "scope {s} ({}): not verifiable for a Private Integration token{}",
                    n.why,
                    if s.ends_with(".write") {
                        " (only a write would tell)"
                    } else {
                        ""
                    }
                )),
            }
        }
        if !g.stopped() {
            r.note("extra scopes of a Private Integration token cannot be listed; grant it only the scopes above");
        }
    }

    if let TokenSource::OAuth(o) = &source {
        report_oauth_token(cfg, r, &g, o.refresh_count());
    } else if let TokenSource::Agency(_) = &source {
        if g.token_confirmed && !g.token_dead {
            r.ok("GHL location token minted from the agency's installation accepted");
        }
    } else if g.token_confirmed && !g.token_dead {
        r.ok("GHL Private Integration token accepted");
    }
    Ok(())
}

fn compare_scopes(g: &GhlCheck<'_>, r: &mut Report) {
    let Some(granted) = &g.granted else { return };
    let needed: BTreeSet<&str> = g.needed.iter().map(|n| n.scope.as_str()).collect();
    for n in &g.needed {
        if granted.contains(&n.scope) {
            r.ok(format!("scope {}: granted ({})", n.scope, n.why));
        } else {
            r.error(
                Problem::Config,
                format!(
                    "scope {}: MISSING, needed for {}; add it to the app and reconnect (`auth ghl url`, `auth ghl exchange`)",
                    n.scope, n.why
                ),
            );
        }
    }
    for extra in granted.iter().filter(|s| !needed.contains(s.as_str())) {
        r.warning(format!(
            "scope {extra}: granted but not needed by the enabled features (least privilege: drop it)"
        ));
    }
}

fn check_location(
    g: &mut GhlCheck<'_>,
    r: &mut Report,
    scope: &str,
    res: Result<crate::ghl::wire::GhlLocation, GhlError>,
) {
    let id = g.cfg.ghl.location_id.clone();
    let res = match res {
        // 403 (a location this token may not use) and 400/404/422 mean the location is wrong,
        // not the token: report them as such instead of as a failed probe.
        Err(GhlError::Http(HttpError::Api(a)))
            if matches!(a.status, Some(400 | 403 | 404 | 422)) =>
        {
            g.token_confirmed = true;
            g.location_refused = true;
            if g.granted.is_none() {
                r.ok(format!(
                    "scope {scope}: granted (GET /locations/{{id}} answered)"
                ));
            }
            r.error(
                Problem::Config,
                format!(
                    "location {id} (ghl.location_id) does not exist or is not accessible with this token: GHL answered {}: {}",
                    a.status.unwrap_or_default(),
                    a.message
                ),
            );
            r.note("the other GHL checks are skipped: every one of them is about this location");
            return;
        }
        other => other,
    };
    if let Some(loc) = g.outcome(r, scope, "GET /locations/{id}", res) {
        match loc.id.as_deref() {
            Some(got) if got != id => r.error(
                Problem::Config,
                format!("GET /locations/{id} answered location {got}"),
            ),
            _ => r.ok(format!(
                "location {id} exists ({})",
                loc.name.as_deref().unwrap_or("unnamed")
            )),
        }
    }
}

fn report_oauth_token(cfg: &Config, r: &mut Report, g: &GhlCheck<'_>, refreshes: u64) {
    if g.token_dead {
        return;
    }
    if refreshes > 0 {
        r.note(format!(
            "GHL access token refreshed during the check ({refreshes}x); the rotated pair is saved in {}",
            cfg.state.path.display()
        ));
    }
    let row = SqliteTokenStore::open(&cfg.state.path).and_then(|s| s.stored());
    match row {
        Ok(Some(row)) => {
            if let Some(l) = row.location_id.as_deref()
                && l != cfg.ghl.location_id
            {
                r.error(
                    Problem::Config,
                    format!(
                        "the OAuth token is for location {l}, but ghl.location_id is {}; reconnect for the right sub-account",
                        cfg.ghl.location_id
                    ),
                );
            }
            let expiry = row
                .expires_at
                .map(|t| {
                    let left = t - Utc::now();
                    format!(
                        "access token expires {} (in {}h {:02}m)",
                        t.format("%Y-%m-%d %H:%M:%S UTC"),
                        left.num_hours(),
                        left.num_minutes().rem_euclid(60)
                    )
                })
                .unwrap_or_else(|| "access token expiry unknown".into());
            if g.token_confirmed {
                r.ok(format!("GHL OAuth token valid; {expiry}"));
            } else {
                r.note(format!(
                    "GHL OAuth token not exercised (no granted scope to call with); {expiry}"
                ));
            }
        }
        Ok(None) => r.error(
            Problem::Config,
            format!("GHL token: {}", AuthError::NoTokens),
        ),
        Err(e) => r.error(Problem::Config, format!("GHL token store: {e}")),
    }
}
