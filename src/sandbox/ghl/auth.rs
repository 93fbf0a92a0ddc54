//! Tokens (static Private Integration Tokens and rotating OAuth tokens), `POST /oauth/token`,
//! the agency's `POST /oauth/locationToken` and `GET /oauth/installedLocations`, and the
//! per-resource (location or company) burst/daily rate limiter.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use chrono::Timelike;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::validate::{ApiError, ApiResult};

/// Whom a token speaks for: one sub-account, or the agency above them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    Location(String),
    Company(String),
}

/// What a bearer token grants.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub scopes: Vec<String>,
    /// `None` for PITs (they never expire).
    pub expires_at: Option<Instant>,
    pub principal: Principal,
}

/// One sub-account as `GET /oauth/installedLocations` lists it.
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    pub id: String,
    pub name: String,
    /// Whether the marketplace app is installed there.
    pub installed: bool,
}

/// What the agency endpoints check a request against.
pub(crate) struct Agency<'a> {
    pub company_id: &'a str,
    pub app_id: &'a str,
    pub locations: Vec<Installed>,
    /// `limit` above this is silently lowered (see `GhlOptions::installed_locations_max_limit`).
    pub max_limit: usize,
}

/// A pair the emulator issued to "another process" (see [`Auth::race_next_refresh`]).
/// Deliberately not `Debug`: it holds secrets.
pub struct RotatedPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub scope: String,
    pub location_id: String,
}

/// What a test does with a pair rotated out of band: store it where that process would.
pub type RotationSink = Box<dyn FnOnce(RotatedPair) + Send>;

/// Token store. Deliberately not `Debug`: it holds secrets.
pub(crate) struct Auth {
    pub access: HashMap<String, Grant>,
    /// Live refresh token → (scopes, the access token issued with it, whom both speak for). Used
    /// ones are removed at once (rotation).
    pub refresh: HashMap<String, (Vec<String>, String, Principal)>,
    /// Unused authorization codes → scopes (single use).
    pub codes: HashMap<String, Vec<String>>,
    pub client_id: String,
    pub client_secret: String,
    pub access_lifetime: Duration,
    /// GHL does not say whether a refresh ends the access token issued with the old pair;
    /// `true` reads it as ending it at once, `false` (the default) lets it live to its expiry.
    pub revoke_access_on_refresh: bool,
    pub location_token_answer: LocationTokenAnswer,
    /// Successful `refresh_token` grants.
    pub refreshes: usize,
    /// `refresh_token` grants answered `invalid_grant` (a used or unknown refresh token).
    pub refused_refreshes: usize,
    /// Set by a test: the next refresh grant finds its refresh token already used by another
    /// process, which got the pair handed to this sink.
    race: Option<RotationSink>,
    rng: StdRng,
}

/// What `POST /oauth/locationToken` says of the token it mints. The documentation lists
/// `expires_in` and `scope` in the answer but says neither that they are always there nor which
/// scopes a location token carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LocationTokenAnswer {
    /// `expires_in` (the access-token lifetime) and the agency token's own scopes.
    #[default]
    Documented,
    /// No `expires_in`: the token still dies after the access-token lifetime, which the client
    /// then learns from a 401.
    WithoutExpiry,
    /// Only the sub-account's scopes: the agency-level ones (`oauth.*`, `companies.*`,
    /// `locations.write`) are not granted to the location token, nor listed in `scope`.
    LocationScopes,
}

impl LocationTokenAnswer {
    /// The scopes a location token minted by a caller with `agency` scopes carries.
    fn scopes(self, agency: &[String]) -> Vec<String> {
        match self {
            LocationTokenAnswer::LocationScopes => agency
                .iter()
                .filter(|s| {
                    !s.starts_with("oauth.")
                        && !s.starts_with("companies.")
                        && s.as_str() != "locations.write"
                })
                .cloned()
                .collect(),
            LocationTokenAnswer::Documented | LocationTokenAnswer::WithoutExpiry => agency.to_vec(),
        }
    }
}

/// What rotating a Private Integration Token does to the old one: GHL's UI offers to expire it
/// at once or after a grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PitRotation {
    ExpireOldNow,
    KeepOldForNow,
}

impl Auth {
    /// `pits`: static tokens, their scopes and the location each belongs to.
    pub fn new(
        pits: &[(String, Vec<String>, String)],
        client_id: String,
        client_secret: String,
        access_lifetime: Duration,
        seed: u64,
    ) -> Self {
        let access = pits
            .iter()
            .map(|(t, s, loc)| {
                (
                    t.clone(),
                    Grant {
                        scopes: s.clone(),
                        expires_at: None,
                        principal: Principal::Location(loc.clone()),
                    },
                )
            })
            .collect();
        Self {
            access,
            refresh: HashMap::new(),
            codes: HashMap::new(),
            client_id,
            client_secret,
            access_lifetime,
            revoke_access_on_refresh: false,
            location_token_answer: LocationTokenAnswer::default(),
            refreshes: 0,
            refused_refreshes: 0,
            race: None,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_0a07),
        }
    }

    fn token(&mut self, prefix: &str, len: usize) -> String {
        const CH: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let body: String = (0..len)
            .map(|_| CH[self.rng.random_range(0..CH.len())] as char)
            .collect();
        format!("{prefix}{body}")
    }

    /// A new single-use authorization code for `scopes`.
    pub fn issue_code(&mut self, scopes: &[&str]) -> String {
        let code = self.token("", 40);
        self.codes
            .insert(code.clone(), scopes.iter().map(|s| s.to_string()).collect());
        code
    }

    /// Check a bearer token: `Ok(grant)` or the 401.
    pub fn check(&self, token: &str) -> Result<Grant, ApiError> {
        match self.access.get(token) {
            Some(g) if g.expires_at.is_none_or(|t| t > Instant::now()) => Ok(g.clone()),
            _ => Err(ApiError::invalid_token()),
        }
    }

    /// Every token (static or OAuth, and the refresh tokens) that speaks for `location`
    /// stops working: the sub-account revoked its integration.
    pub fn revoke_location(&mut self, location: &str) {
        let mine = |p: &Principal| matches!(p, Principal::Location(l) if l == location);
        self.access.retain(|_, g| !mine(&g.principal));
        self.refresh.retain(|_, (_, _, p)| !mine(p));
    }

    /// Every OAuth token (access and refresh, not the static PITs) that speaks for `location`
    /// stops working: the agency uninstalled the app there.
    pub fn revoke_oauth_of(&mut self, location: &str) {
        let mine = |p: &Principal| matches!(p, Principal::Location(l) if l == location);
        self.access
            .retain(|_, g| g.expires_at.is_none() || !mine(&g.principal));
        self.refresh.retain(|_, (_, _, p)| !mine(p));
    }

    /// The static tokens of `location`, in no particular order.
    pub fn pits_of(&self, location: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .access
            .iter()
            .filter(|(_, g)| {
                g.expires_at.is_none()
                    && matches!(&g.principal, Principal::Location(l) if l == location)
            })
            .map(|(t, _)| t.clone())
            .collect();
        out.sort();
        out
    }

    /// A new OAuth client secret (regenerated in the marketplace): the old one is refused.
    pub fn rotate_client_secret(&mut self, new: &str) {
        self.client_secret = new.to_string();
    }

    /// Accept `new` with the scopes of the Private Integration Token `old`.
    pub fn rotate_pit(&mut self, old: &str, new: &str, old_token: PitRotation) {
        let Some(grant) = self.access.get(old).cloned() else {
            return;
        };
        if old_token == PitRotation::ExpireOldNow {
            self.access.remove(old);
        }
        self.access.insert(new.to_string(), grant);
    }

    /// Make every OAuth access token (not PITs) expired now.
    pub fn expire_all(&mut self) {
        let now = Instant::now();
        for g in self.access.values_mut() {
            if g.expires_at.is_some() {
                g.expires_at = Some(now);
            }
        }
    }

    /// Arms the race of [`RotationSink`]: the next `refresh_token` grant is answered
    /// `invalid_grant` because another process used that refresh token a moment before; the pair
    /// it got goes to `sink`.
    pub fn race_next_refresh(&mut self, sink: RotationSink) {
        self.race = Some(sink);
    }

    /// Uses `rt` as a refresh grant would: `None` when it is not live.
    fn redeem(&mut self, rt: &str) -> Option<(Vec<String>, Principal)> {
        let (scopes, access, principal) = self.refresh.remove(rt)?;
        if self.revoke_access_on_refresh {
            self.access.remove(&access);
        }
        Some((scopes, principal))
    }

    /// A new access token (JWT-looking: three dot-separated parts, as OAuth access tokens are).
    fn new_access(&mut self, scopes: Vec<String>, principal: Principal) -> String {
        let access = format!(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
            self.token("", 64),
            self.token("", 43)
        );
        self.access.insert(
            access.clone(),
            Grant {
                scopes,
                expires_at: Some(Instant::now() + self.access_lifetime),
                principal,
            },
        );
        access
    }

    fn expires_in(&self) -> u64 {
        self.access_lifetime.as_secs().saturating_sub(1).max(1)
    }

    fn mint(&mut self, scopes: Vec<String>, principal: Principal, company_id: &str) -> Value {
        let access = self.new_access(scopes.clone(), principal.clone());
        let refresh = format!(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
            self.token("", 48),
            self.token("", 43)
        );
        self.refresh.insert(
            refresh.clone(),
            (scopes.clone(), access.clone(), principal.clone()),
        );
        let mut out = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in(),
            "refresh_token": refresh,
            "scope": scopes.join(" "),
            "companyId": company_id,
            "userId": "EmuUser0000000000001",
            "planId": "EmuPlan0000000000001",
        });
        match principal {
            Principal::Location(loc) => {
                out["userType"] = json!("Location");
                out["locationId"] = json!(loc);
                out["approvedLocations"] = json!([loc]);
                out["isBulkInstallation"] = json!(false);
            }
            Principal::Company(_) => {
                out["userType"] = json!("Company");
                out["isBulkInstallation"] = json!(true);
            }
        }
        out
    }

    /// `POST /oauth/token` with already-decoded form fields. `user_type=Company` gets the
    /// agency's token; otherwise the token speaks for `location_id`.
    pub fn token_endpoint(
        &mut self,
        form: &[(String, String)],
        location_id: &str,
        company_id: &str,
    ) -> ApiResult {
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        const ALLOWED: &[&str] = &[
            "client_id",
            "client_secret",
            "grant_type",
            "code",
            "refresh_token",
            "user_type",
            "redirect_uri",
        ];
        let mut msgs: Vec<String> = form
            .iter()
            .filter(|(k, _)| !ALLOWED.contains(&k.as_str()))
            .map(|(k, _)| format!("property {k} should not exist"))
            .collect();
        for req in ["client_id", "client_secret", "grant_type"] {
            if get(req).is_none_or(str::is_empty) {
                msgs.push(format!("{req} should not be empty"));
            }
        }
        let grant = get("grant_type").unwrap_or_default();
        if !grant.is_empty()
            && !matches!(
                grant,
                "authorization_code" | "refresh_token" | "client_credentials"
            )
        {
            msgs.push(
                "grant_type must be one of the following values: authorization_code, refresh_token, client_credentials".into(),
            );
        }
        if let Some(ut) = get("user_type")
            && !matches!(ut, "Company" | "Location")
        {
            msgs.push("user_type must be one of the following values: Company, Location".into());
        }
        if !msgs.is_empty() {
            return Err(ApiError::unprocessable(msgs));
        }
        if get("client_id") != Some(self.client_id.as_str())
            || get("client_secret") != Some(self.client_secret.as_str())
        {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed",
            ));
        }
        let (scopes, principal) = match grant {
            "authorization_code" => {
                let code = get("code").unwrap_or_default();
                let scopes = self.codes.remove(code).ok_or_else(|| {
                    oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Invalid grant: authorization code is invalid",
                    )
                })?;
                let principal = if get("user_type") == Some("Company") {
                    Principal::Company(company_id.to_string())
                } else {
                    Principal::Location(location_id.to_string())
                };
                (scopes, principal)
            }
            "refresh_token" => {
                let rt = get("refresh_token").unwrap_or_default();
                if let Some(sink) = self.race.take()
                    && let Some((scopes, principal)) = self.redeem(rt)
                {
                    self.refreshes += 1;
                    let other = self.mint(scopes, principal, company_id);
                    let text = |k: &str| other[k].as_str().unwrap_or_default().to_string();
                    sink(RotatedPair {
                        access_token: text("access_token"),
                        refresh_token: text("refresh_token"),
                        expires_in: other["expires_in"].as_u64().unwrap_or_default(),
                        scope: text("scope"),
                        location_id: text("locationId"),
                    });
                }
                let Some(redeemed) = self.redeem(rt) else {
                    self.refused_refreshes += 1;
                    return Err(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Invalid grant: refresh token is invalid",
                    ));
                };
                self.refreshes += 1;
                redeemed
            }
            _ => {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "client_credentials is not enabled for this app",
                ));
            }
        };
        Ok((StatusCode::OK, self.mint(scopes, principal, company_id)))
    }

    /// `POST /oauth/locationToken` (form fields `companyId`, `locationId`) with the agency's
    /// token: a token for one of its sub-accounts, without a refresh token (the agency mints a
    /// new one when it expires).
    pub fn location_token(
        &mut self,
        caller: &Grant,
        form: &[(String, String)],
        agency: &Agency<'_>,
    ) -> ApiResult {
        agency_caller(caller, "oauth.write", agency)?;
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let mut msgs = unknown_fields(form, &["companyId", "locationId"]);
        for req in ["companyId", "locationId"] {
            if get(req).is_none_or(str::is_empty) {
                msgs.push(format!("{req} should not be empty"));
            }
        }
        if !msgs.is_empty() {
            return Err(ApiError::unprocessable(msgs));
        }
        if get("companyId") != Some(agency.company_id) {
            return Err(ApiError::forbidden_location());
        }
        let location = get("locationId").unwrap_or_default();
        match agency.locations.iter().find(|l| l.id == location) {
            Some(l) if l.installed => {}
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "The app is not installed on location {location}"
                )));
            }
            None => return Err(ApiError::bad_request("Location not found")),
        }
        let scopes = self.location_token_answer.scopes(&caller.scopes);
        let scope = scopes.join(" ");
        let access = self.new_access(scopes, Principal::Location(location.to_string()));
        let mut answer = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in(),
            "scope": scope,
            "userType": "Location",
            "locationId": location,
            "companyId": agency.company_id,
            "planId": "EmuPlan0000000000001",
            "userId": "EmuUser0000000000001",
            "appId": agency.app_id,
            "versionId": agency.app_id,
        });
        if self.location_token_answer == LocationTokenAnswer::WithoutExpiry
            && let Some(fields) = answer.as_object_mut()
        {
            fields.remove("expires_in");
        }
        Ok((StatusCode::OK, answer))
    }

    /// `GET /oauth/installedLocations`: the agency's sub-accounts the app is installed on,
    /// a page at a time (`skip`, `limit`; 20 when absent, an emulator choice), filtered by
    /// `query` (name contains), `locationId` and `isInstalled`.
    pub fn installed_locations(
        &self,
        caller: &Grant,
        query: &[(String, String)],
        agency: &Agency<'_>,
    ) -> ApiResult {
        agency_caller(caller, "oauth.readonly", agency)?;
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let mut msgs = unknown_fields(
            query,
            &[
                "companyId",
                "appId",
                "skip",
                "limit",
                "query",
                "isInstalled",
                "versionId",
                "onTrial",
                "planId",
                "locationId",
            ],
        );
        for req in ["companyId", "appId"] {
            if get(req).is_none_or(str::is_empty) {
                msgs.push(format!("{req} should not be empty"));
            }
        }
        let number = |k: &str, default: usize, msgs: &mut Vec<String>| match get(k) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                msgs.push(format!("{k} must be a number string"));
                default
            }),
        };
        let skip = number("skip", 0, &mut msgs);
        let limit = number("limit", 20, &mut msgs).min(agency.max_limit);
        if !msgs.is_empty() {
            return Err(ApiError::unprocessable(msgs));
        }
        if get("companyId") != Some(agency.company_id) {
            return Err(ApiError::forbidden_location());
        }
        if get("appId") != Some(agency.app_id) {
            return Err(ApiError::bad_request("App not found"));
        }
        let needle = get("query").map(str::to_lowercase);
        let installed = match get("isInstalled") {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => {
                return Err(ApiError::unprocessable(vec![
                    "isInstalled must be a boolean value".into(),
                ]));
            }
        };
        let matching: Vec<&Installed> = agency
            .locations
            .iter()
            .filter(|l| installed.is_none_or(|want| l.installed == want))
            .filter(|l| get("locationId").is_none_or(|id| id == l.id))
            .filter(|l| {
                needle
                    .as_deref()
                    .is_none_or(|n| l.name.to_lowercase().contains(n))
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(skip)
            .take(limit)
            .map(|l| {
                json!({
                    "_id": l.id,
                    "name": l.name,
                    "address": "1 Emulator Way, Testville",
                    "isInstalled": l.installed,
                    "versionId": agency.app_id,
                    "installedAt": "2026-01-05T09:30:00.000Z",
                })
            })
            .collect();
        Ok((
            StatusCode::OK,
            json!({
                "locations": page,
                "count": matching.len(),
                "installToFutureLocations": false,
            }),
        ))
    }
}

/// The agency endpoints take the agency's token with `scope`: a sub-account's token is
/// refused as a token without that scope (GHL answers a location PIT there with 401).
fn agency_caller(caller: &Grant, scope: &str, agency: &Agency<'_>) -> Result<(), ApiError> {
    match &caller.principal {
        Principal::Company(c) if c == agency.company_id => {
            if caller.scopes.iter().any(|s| s == scope) {
                Ok(())
            } else {
                Err(ApiError::scope())
            }
        }
        Principal::Company(_) => Err(ApiError::forbidden_location()),
        Principal::Location(_) => Err(ApiError::scope()),
    }
}

fn unknown_fields(pairs: &[(String, String)], allowed: &[&str]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| !allowed.contains(&k.as_str()))
        .map(|(k, _)| format!("property {k} should not exist"))
        .collect()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> ApiError {
    ApiError {
        status,
        body: json!({"error": error, "error_description": description}),
    }
}

/// Per-location limits: a fixed burst window plus a daily budget.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub max: u32,
    pub window: Duration,
    pub daily_limit: u64,
    pub daily_remaining: u64,
    pub retry_after: bool,
    /// Put the `X-RateLimit-*` headers on answers.
    pub send_headers: bool,
    /// Put `X-RateLimit-Daily-Reset` among them (observed, undocumented).
    pub send_daily_reset: bool,
    /// Length of the emulated day, from start; `None` is the UTC day, whose end only sets the
    /// reset header (the quota comes back through [`Limiter::reset_day`]).
    pub day: Option<Duration>,
    day_start: Instant,
    window_start: Instant,
    used: u32,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limited {
    Burst,
    Daily,
}

impl Limiter {
    pub fn new(max: u32, window: Duration, daily: u64, retry_after: bool) -> Self {
        Self {
            max,
            window,
            daily_limit: daily,
            daily_remaining: daily,
            retry_after,
            send_headers: true,
            send_daily_reset: true,
            day: None,
            day_start: Instant::now(),
            window_start: Instant::now(),
            used: 0,
        }
    }

    fn roll_window(&mut self) {
        if self.window_start.elapsed() >= self.window {
            self.window_start = Instant::now();
            self.used = 0;
        }
    }

    /// A new burst limit, starting a fresh window; the day and its quota go on as they were.
    pub fn set_burst(&mut self, max: u32, window: Duration) {
        self.max = max;
        self.window = window;
        self.window_start = Instant::now();
        self.used = 0;
    }

    /// A new day: the whole daily quota is back.
    pub fn reset_day(&mut self) {
        self.day_start = Instant::now();
        self.daily_remaining = self.daily_limit;
    }

    fn roll_day(&mut self) {
        if self.day.is_some_and(|d| self.day_start.elapsed() >= d) {
            self.reset_day();
        }
    }

    /// Milliseconds until the day resets (at least 1).
    fn daily_reset_ms(&self) -> u64 {
        let ms = match self.day {
            Some(d) => d.saturating_sub(self.day_start.elapsed()).as_millis() as u64,
            None => {
                let now = chrono::Utc::now();
                let since_midnight_ms = u64::from(now.num_seconds_from_midnight()) * 1000
                    + u64::from(now.timestamp_subsec_millis());
                86_400_000u64.saturating_sub(since_midnight_ms)
            }
        };
        ms.max(1)
    }

    /// Count one request, or say which limit refuses it (refused requests are not counted).
    pub fn take(&mut self) -> Result<(), Limited> {
        self.roll_window();
        self.roll_day();
        if self.daily_remaining == 0 {
            return Err(Limited::Daily);
        }
        if self.used >= self.max {
            return Err(Limited::Burst);
        }
        self.used += 1;
        self.daily_remaining -= 1;
        Ok(())
    }

    /// Whole seconds until the burst window reopens (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let left = self.window.saturating_sub(self.window_start.elapsed());
        (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)
    }

    /// The `X-RateLimit-*` headers, put on every answer; a value already there (set by a fault
    /// knob) is left as it is.
    pub fn headers(&mut self, h: &mut HeaderMap) {
        self.roll_window();
        self.roll_day();
        let reset = self.daily_reset_ms();
        let pairs: [(&str, u64); 6] = [
            ("x-ratelimit-max", u64::from(self.max)),
            (
                "x-ratelimit-remaining",
                u64::from(self.max.saturating_sub(self.used)),
            ),
            (
                "x-ratelimit-interval-milliseconds",
                self.window.as_millis() as u64,
            ),
            ("x-ratelimit-limit-daily", self.daily_limit),
            ("x-ratelimit-daily-remaining", self.daily_remaining),
            ("x-ratelimit-daily-reset", reset),
        ];
        for (k, v) in pairs {
            if k == "x-ratelimit-daily-reset" && !self.send_daily_reset {
                continue;
            }
            h.entry(k).or_insert(HeaderValue::from(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_daily() {
        let mut l = Limiter::new(2, Duration::from_secs(60), 3, true);
        assert!(l.take().is_ok());
        assert!(l.take().is_ok());
        assert_eq!(l.take(), Err(Limited::Burst));
        assert!(l.retry_after_secs() >= 59);
        l.daily_remaining = 0;
        assert_eq!(l.take(), Err(Limited::Daily));
        l.reset_day();
        assert_eq!(l.daily_remaining, 3);
    }

    #[test]
    fn a_short_day_refills_the_quota_and_counts_its_reset_down() {
        let mut l = Limiter::new(100, Duration::from_secs(60), 2, true);
        l.day = Some(Duration::from_millis(200));
        l.daily_remaining = 0;
        let mut h = HeaderMap::new();
        l.headers(&mut h);
        let reset: u64 = h["x-ratelimit-daily-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=200).contains(&reset), "{reset}");
        assert_eq!(l.take(), Err(Limited::Daily));
        std::thread::sleep(Duration::from_millis(220));
        assert!(l.take().is_ok());
        l.send_daily_reset = false;
        let mut h = HeaderMap::new();
        l.headers(&mut h);
        assert!(h.get("x-ratelimit-daily-reset").is_none());
        assert!(h.get("x-ratelimit-daily-remaining").is_some());
    }
}
