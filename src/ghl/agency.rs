//! Location tokens under the agency's OAuth installation (`ghl.auth = "agency"`).
//!
//! The agency installs the app once, at Company level; its token pair (refreshed like any OAuth
//! pair, by [`OAuthTokens`] over the agency's own token store) mints a token for each
//! sub-account with `POST /oauth/locationToken`. A location token has no refresh token: when it
//! nears its expiry, or GHL rejects it, a new one is minted.
//!
//! [`LocationTokens`] is the token source of one location. The token it holds sits behind a
//! tokio `Mutex` and is checked again by whoever gets the lock, so concurrent callers that find
//! it expiring (or rejected) cause one mint. A minted token is also kept in the pair's own state
//! (a [`LocationTokenStore`]), so a restart reuses it instead of minting again. Unlike a
//! rotating refresh token, a kept location token that is lost costs one mint, nothing more.
//!
//! A refusal to mint (400/401/403/404 for this location, or an agency token GHL no longer
//! accepts) is an authentication error of this location only, named by its id.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::auth::{AuthError, OAuthTokens, renewal_margin};
use super::wire::API_VERSION;
use super::wire::TokenResponse;
use crate::http::{HttpError, HttpPolicy, Method, Request, check_base_url};

/// The request template of the mint, as the audit and the errors name it.
const MINT_PATH: &str = "/oauth/locationToken";

/// A token minted for one location. Debug never shows the token.
#[derive(Debug, Clone)]
pub struct LocationToken {
    pub access_token: SecretString,
    pub location_id: String,
    /// When it was minted: with `expires_at`, its lifetime, which bounds the renewal margin.
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub scope: Option<String>,
}

/// Where a location's minted token is kept between processes (the pair's state database).
pub trait LocationTokenStore: Send + Sync {
    fn load(&self) -> Result<Option<LocationToken>, AuthError>;
    fn save(&self, token: &LocationToken) -> Result<(), AuthError>;
}

/// The agency's installation as every location under it uses it: the Company token and the
/// HTTP policy of the agency's own calls (GHL counts them against the company, not a location).
pub struct Agency {
    base_url: String,
    company_id: String,
    company: Arc<OAuthTokens>,
    policy: HttpPolicy,
}

impl std::fmt::Debug for Agency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agency")
            .field("base_url", &self.base_url)
            .field("company_id", &self.company_id)
            .field("company", &self.company)
            .finish()
    }
}

/// How a mint ended when it did not give a token.
enum MintFailure {
    /// GHL answered with a client error: retrying the same request gets the same answer.
    Refused(HttpError),
    /// Anything else (network, 5xx after the policy's retries, an answer of the wrong shape).
    Failed(HttpError),
}

impl Agency {
    pub fn new(
        base_url: &str,
        company_id: &str,
        company: Arc<OAuthTokens>,
        policy: HttpPolicy,
    ) -> Result<Self, AuthError> {
        let base_url = base_url.trim_end_matches('/').to_string();
        check_base_url(&base_url).map_err(|e| AuthError::Config(e.to_string()))?;
        Ok(Agency {
            base_url,
            company_id: company_id.to_string(),
            company,
            policy,
        })
    }

    /// The Company token source (for `auth ghl status` and `check`).
    pub fn company(&self) -> &Arc<OAuthTokens> {
        &self.company
    }

    pub fn company_id(&self) -> &str {
        &self.company_id
    }

    /// A request to an agency-level endpoint, sent with the Company token `company`.
    fn company_request(
        &self,
        method: Method,
        path: &'static str,
        company: &SecretString,
    ) -> Result<Request, HttpError> {
        Request::new(method, format!("{}{path}", self.base_url), path)
            .header("accept", "application/json")
            .and_then(|r| r.header("version", API_VERSION))
            .and_then(|r| {
                r.secret_header(
                    "authorization",
                    &format!("Bearer {}", company.expose_secret()),
                )
            })
    }

    /// One `POST /oauth/locationToken` with the Company token `company`.
    async fn mint_with(
        &self,
        company: &SecretString,
        location_id: &str,
    ) -> Result<LocationToken, MintFailure> {
        let req = self
            .company_request(Method::POST, MINT_PATH, company)
            .map_err(MintFailure::Failed)?
            .form(vec![
                ("companyId".to_string(), self.company_id.clone()),
                ("locationId".to_string(), location_id.to_string()),
            ]);
        let resp = match self.policy.send(&req).await {
            Ok(r) => r,
            Err(e) if is_refusal(&e) => return Err(MintFailure::Refused(e)),
            Err(e) => return Err(MintFailure::Failed(e)),
        };
        let answer: TokenResponse = resp
            .json(self.policy.api(), MINT_PATH)
            .map_err(MintFailure::Failed)?;
        let wrong_shape =
            |m: &str| MintFailure::Failed(HttpError::decode(self.policy.api(), MINT_PATH, m));
        if answer.access_token.is_empty() {
            return Err(wrong_shape("no access_token"));
        }
        if let Some(other) = answer.location_id.as_deref()
            && other != location_id
        {
            return Err(wrong_shape(&format!(
                "a token for location {other}, not {location_id}"
            )));
        }
        let issued_at = Utc::now();
        Ok(LocationToken {
            access_token: SecretString::from(answer.access_token),
            location_id: location_id.to_string(),
            issued_at,
            expires_at: issued_at + chrono::Duration::seconds(answer.expires_in.unwrap_or(86_399)),
            scope: answer.scope,
        })
    }

    /// A new token for `location_id`. A 401 on the mint may mean only that the Company access
    /// token died before its stated expiry: the Company token is renewed once and the mint
    /// tried again.
    async fn mint(&self, location_id: &str) -> Result<LocationToken, AuthError> {
        let company_err = |e: AuthError| AuthError::Company {
            location_id: location_id.to_string(),
            cause: Box::new(e),
        };
        let company = self.company.access_token().await.map_err(company_err)?;
        let first = self.mint_with(&company, location_id).await;
        let answer = match first {
            Err(MintFailure::Refused(e)) if e.status() == Some(401) => {
                tracing::info!(
                    location = location_id,
                    "GHL rejected the agency token while minting; renewing it once"
                );
                let renewed = self
                    .company
                    .refresh_after_rejection(&company)
                    .await
                    .map_err(company_err)?;
                self.mint_with(&renewed, location_id).await
            }
            other => other,
        };
        answer.map_err(|failure| match failure {
            MintFailure::Refused(answer) => AuthError::LocationRefused {
                location_id: location_id.to_string(),
                answer,
            },
            MintFailure::Failed(failure) => AuthError::Mint {
                location_id: location_id.to_string(),
                failure,
            },
        })
    }
}

/// One of the agency's sub-accounts as `GET /oauth/installedLocations` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct InstalledLocation {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "isInstalled", default)]
    pub installed: bool,
}

#[derive(serde::Deserialize)]
struct InstalledPage {
    #[serde(default)]
    locations: Vec<InstalledLocation>,
    count: Option<usize>,
}

const INSTALLED_PATH: &str = "/oauth/installedLocations";
/// The page size asked for; GHL may answer with fewer, so paging follows what came back.
const INSTALLED_PAGE: usize = 100;

impl Agency {
    /// Every sub-account of the agency with the app `app_id`, installed or not.
    pub async fn installed_locations(
        &self,
        app_id: &str,
    ) -> Result<Vec<InstalledLocation>, AuthError> {
        let mut company = self.company.access_token().await?;
        let mut renewed = false;
        let mut out: Vec<InstalledLocation> = Vec::new();
        loop {
            let req = self
                .company_request(Method::GET, INSTALLED_PATH, &company)
                .map_err(AuthError::AgencyCall)?
                .query("companyId", &self.company_id)
                .query("appId", app_id)
                .query("skip", out.len())
                .query("limit", INSTALLED_PAGE);
            let page: InstalledPage = match self.policy.send(&req).await {
                Err(e) if e.status() == Some(401) && !renewed => {
                    renewed = true;
                    company = self.company.refresh_after_rejection(&company).await?;
                    continue;
                }
                Err(e) => return Err(AuthError::AgencyCall(e)),
                Ok(resp) => resp
                    .json(self.policy.api(), INSTALLED_PATH)
                    .map_err(AuthError::AgencyCall)?,
            };
            let got = page.locations.len();
            out.extend(page.locations);
            if got == 0 || page.count.is_some_and(|n| out.len() >= n) {
                return Ok(out);
            }
        }
    }
}

/// A client error on the mint: the app is not installed there (400), the agency's token or its
/// access to the location is refused (401, 403), or the location is unknown (404).
fn is_refusal(e: &HttpError) -> bool {
    matches!(e.status(), Some(400 | 401 | 403 | 404))
}

/// The token source of one location under the agency.
pub struct LocationTokens {
    agency: Arc<Agency>,
    location_id: String,
    store: Arc<dyn LocationTokenStore>,
    current: tokio::sync::Mutex<Option<LocationToken>>,
    /// Renew this long before expiry (at most a tenth of the lifetime; see [`renewal_margin`]).
    margin: Duration,
    mints: AtomicU64,
}

impl std::fmt::Debug for LocationTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocationTokens")
            .field("location_id", &self.location_id)
            .field("agency", &self.agency)
            .field("mints", &self.mints.load(Ordering::Relaxed))
            .finish()
    }
}

impl LocationTokens {
    pub fn new(agency: Arc<Agency>, location_id: &str, store: Arc<dyn LocationTokenStore>) -> Self {
        LocationTokens {
            agency,
            location_id: location_id.to_string(),
            store,
            current: tokio::sync::Mutex::new(None),
            margin: Duration::from_secs(300),
            mints: AtomicU64::new(0),
        }
    }

    pub fn agency(&self) -> &Arc<Agency> {
        &self.agency
    }

    pub fn location_id(&self) -> &str {
        &self.location_id
    }

    /// Mints made by this source (coalescing is observable).
    pub fn mint_count(&self) -> u64 {
        self.mints.load(Ordering::SeqCst)
    }

    /// Valid beyond the renewal margin.
    fn fresh(&self, token: &LocationToken) -> bool {
        token.expires_at - renewal_margin(self.margin, token.issued_at, token.expires_at)
            > Utc::now()
    }

    /// The kept token, read from the pair's state the first time; one for another location
    /// (the configuration changed since) is not used.
    fn ensure_loaded(&self, cur: &mut Option<LocationToken>) -> Result<(), AuthError> {
        if cur.is_none() {
            *cur = self
                .store
                .load()?
                .filter(|t| t.location_id == self.location_id);
        }
        Ok(())
    }

    /// A valid token for the location, minting one when none is kept or it nears its expiry.
    pub async fn access_token(&self) -> Result<SecretString, AuthError> {
        let mut cur = self.current.lock().await;
        self.ensure_loaded(&mut cur)?;
        if let Some(t) = cur.as_ref().filter(|t| self.fresh(t)) {
            return Ok(t.access_token.clone());
        }
        self.mint_into(&mut cur).await
    }

    /// After GHL rejected `rejected`: a new token, unless another caller already replaced it.
    pub async fn mint_after_rejection(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, AuthError> {
        let mut cur = self.current.lock().await;
        self.ensure_loaded(&mut cur)?;
        if let Some(t) = cur.as_ref()
            && t.access_token.expose_secret() != rejected.expose_secret()
        {
            return Ok(t.access_token.clone());
        }
        self.mint_into(&mut cur).await
    }

    /// Scopes of the token in use, minting one first when needed (for `check`).
    pub async fn scopes(&self) -> Result<Option<String>, AuthError> {
        self.access_token().await?;
        Ok(self
            .current
            .lock()
            .await
            .as_ref()
            .and_then(|t| t.scope.clone()))
    }

    /// Mints, keeps the token in memory and in the pair's state; the caller holds the lock.
    async fn mint_into(&self, cur: &mut Option<LocationToken>) -> Result<SecretString, AuthError> {
        self.mints.fetch_add(1, Ordering::SeqCst);
        let token = self.agency.mint(&self.location_id).await?;
        tracing::info!(
            location = %self.location_id,
            expires_at = %token.expires_at,
            "minted a GHL location token from the agency's installation"
        );
        // Losing it costs one mint on the next start, so a failed save does not fail the call.
        if let Err(e) = self.store.save(&token) {
            tracing::warn!(location = %self.location_id, "cannot keep the location token: {e}");
        }
        let access = token.access_token.clone();
        *cur = Some(token);
        Ok(access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ghl::auth::{MemoryTokenStore, OAuthConfig};
    use crate::http::{AuditSink, PolicyConfig};

    #[derive(Default)]
    struct Kept(std::sync::Mutex<Option<LocationToken>>);

    impl LocationTokenStore for Kept {
        fn load(&self) -> Result<Option<LocationToken>, AuthError> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn save(&self, token: &LocationToken) -> Result<(), AuthError> {
            *self.0.lock().unwrap() = Some(token.clone());
            Ok(())
        }
    }

    fn tokens(kept: Arc<Kept>) -> LocationTokens {
        let policy = HttpPolicy::new(PolicyConfig::ghl(), AuditSink::new()).unwrap();
        let company = OAuthTokens::new(
            OAuthConfig::new("http://127.0.0.1:9", "id", "cs".into()),
            Arc::new(MemoryTokenStore::new(None)),
            policy.clone(),
        )
        .unwrap();
        let agency = Agency::new("http://127.0.0.1:9", "co", Arc::new(company), policy).unwrap();
        LocationTokens::new(Arc::new(agency), "loc-a", kept)
    }

    fn kept_token(location: &str, lifetime_s: i64) -> LocationToken {
        let issued_at = Utc::now();
        LocationToken {
            access_token: "lt-secret-1".into(),
            location_id: location.into(),
            issued_at,
            expires_at: issued_at + chrono::Duration::seconds(lifetime_s),
            scope: Some("contacts.readonly".into()),
        }
    }

    /// An agency connected to a running emulator, and the token source of its second location.
    async fn against_emulator() -> (crate::sandbox::ghl::GhlEmulator, LocationTokens) {
        use crate::sandbox::ghl::{GhlEmulator, GhlOptions, PRODUCT_SCOPES};
        let emu = GhlEmulator::start(GhlOptions::default().with_locations(2))
            .await
            .unwrap();
        let policy = HttpPolicy::new(PolicyConfig::ghl(), AuditSink::new()).unwrap();
        let mut cfg =
            OAuthConfig::new(&emu.base_url(), "emu-client-id", "emu-client-secret".into());
        cfg.user_type = "Company".into();
        let company =
            OAuthTokens::new(cfg, Arc::new(MemoryTokenStore::new(None)), policy.clone()).unwrap();
        let mut scopes = PRODUCT_SCOPES.to_vec();
        scopes.push("oauth.write");
        company
            .exchange_code(&emu.issue_auth_code(&scopes), None)
            .await
            .unwrap();
        let agency = Agency::new(
            &emu.base_url(),
            &emu.company_id(),
            Arc::new(company),
            policy,
        )
        .unwrap();
        let location = emu.location_ids()[1].clone();
        let tokens = LocationTokens::new(Arc::new(agency), &location, Arc::new(Kept::default()));
        (emu, tokens)
    }

    fn mints_seen(emu: &crate::sandbox::ghl::GhlEmulator) -> usize {
        emu.requests()
            .iter()
            .filter(|r| r.path == MINT_PATH)
            .count()
    }

    #[tokio::test]
    async fn concurrent_callers_coalesce_into_one_mint() {
        let (emu, tokens) = against_emulator().await;
        let tokens = Arc::new(tokens);
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let t = tokens.clone();
                tokio::spawn(async move { t.access_token().await.unwrap() })
            })
            .collect();
        let mut got = std::collections::BTreeSet::new();
        for c in calls {
            got.insert(c.await.unwrap().expose_secret().to_string());
        }
        assert_eq!(got.len(), 1, "every caller got the same token");
        assert_eq!((tokens.mint_count(), mints_seen(&emu)), (1, 1));

        // Sixteen callers rejected with that token: one new mint, which all of them get.
        let rejected = SecretString::from(got.into_iter().next().unwrap());
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let (t, r) = (tokens.clone(), rejected.clone());
                tokio::spawn(async move { t.mint_after_rejection(&r).await.unwrap() })
            })
            .collect();
        let mut fresh = std::collections::BTreeSet::new();
        for c in calls {
            fresh.insert(c.await.unwrap().expose_secret().to_string());
        }
        assert_eq!(fresh.len(), 1);
        assert!(!fresh.contains(rejected.expose_secret()));
        assert_eq!((tokens.mint_count(), mints_seen(&emu)), (2, 2));
    }

    #[tokio::test]
    async fn a_kept_fresh_token_is_used_without_minting() {
        let kept = Arc::new(Kept::default());
        kept.save(&kept_token("loc-a", 3600)).unwrap();
        let t = tokens(kept);
        assert_eq!(
            t.access_token().await.unwrap().expose_secret(),
            "lt-secret-1"
        );
        assert_eq!(t.mint_count(), 0);
        assert!(!format!("{t:?}").contains("lt-secret"));
    }

    #[tokio::test]
    async fn a_token_kept_for_another_location_or_expiring_is_not_used() {
        for kept_one in [kept_token("loc-b", 3600), kept_token("loc-a", 0)] {
            let kept = Arc::new(Kept::default());
            kept.save(&kept_one).unwrap();
            let t = tokens(kept);
            // Nothing listens on port 9: the mint it attempts fails, naming the location.
            let err = t.access_token().await.unwrap_err().to_string();
            assert!(err.contains("loc-a"), "{err}");
            assert!(!err.contains("lt-secret"), "{err}");
            assert_eq!(t.mint_count(), 1);
        }
    }
}
