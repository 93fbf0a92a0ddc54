//! GHL token sources (DESIGN.md §7): a static Private Integration Token, or OAuth 2.0 with
//! rotating refresh tokens.
//!
//! OAuth refresh is single-flight: the current pair sits behind a tokio `Mutex`; whoever holds
//! it re-checks whether another caller already replaced the token before refreshing, so any
//! number of concurrent callers over an expired token cause exactly one refresh. A refresh
//! token dies when used, so the new pair is handed to the [`TokenStore`] before the new access
//! token is returned to anyone: a crash right after a refresh cannot lose the only valid pair.
//!
//! The stored pair is the truth, shared by every process on the same state (a daemon, and a
//! `check` run beside it). A refresh happens under the store's cross-process refresh lock and
//! starts by reading the stored pair again: when another process already renewed it, that pair
//! is adopted and nothing is refreshed; otherwise the stored refresh token (not the one this
//! process remembers) is the one used. A refresh token GHL refuses is read back once more
//! before authentication is declared lost, for a writer that does not take the lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::wire::TokenResponse;
use crate::http::{HttpError, HttpPolicy, Method, Request, check_base_url};
use crate::secret::{Secret, SecretError};

/// The marketplace page where a sub-account admin approves the app.
pub const AUTHORIZE_BASE: &str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";

/// An access/refresh pair and when the access token expires. Debug never shows the secrets.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// When GHL issued the pair: with `expires_at`, the token's lifetime, which bounds the
    /// proactive refresh margin.
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub scope: Option<String>,
    pub user_type: Option<String>,
    pub location_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no OAuth tokens stored; run `auth ghl url` then `auth ghl exchange --code CODE`")]
    NoTokens,
    #[error("token refresh failed: {0}")]
    Refresh(HttpError),
    /// GHL refused the stored refresh token, read again after the refusal: only a new consent
    /// brings the connection back.
    #[error(
        "GHL refused the stored refresh token ({0}); connect again with `auth ghl url` then `auth ghl exchange --code CODE`"
    )]
    RefreshRefused(HttpError),
    #[error("token endpoint answered without {0}")]
    BadTokenResponse(&'static str),
    #[error("token store: {0}")]
    Store(String),
    #[error("invalid OAuth configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Secret(#[from] SecretError),
    /// `auth = "agency"` and the agency's token store holds no Company token.
    #[error(
        "no agency (Company) OAuth token stored in {store}; as an agency admin run `auth ghl url`, approve the app for the agency, then `auth ghl exchange --code CODE`"
    )]
    NoCompanyToken { store: String },
    /// GHL refused to mint a token for this location with the agency's token: the app is not
    /// (or no longer) installed there, or the agency lost access to it.
    #[error(
        "GHL refused a token for location {location_id} ({answer}); is the app still installed on that sub-account? (`auth ghl locations` lists where it is)"
    )]
    LocationRefused {
        location_id: String,
        answer: HttpError,
    },
    /// Minting failed without a refusal (the network, a 5xx after retries, a malformed answer):
    /// the next pass tries again.
    #[error("cannot mint a token for location {location_id}: {failure}")]
    Mint {
        location_id: String,
        failure: HttpError,
    },
    /// An agency-level call other than the mint failed (listing the installed sub-accounts).
    #[error("the agency's request failed: {0}")]
    AgencyCall(HttpError),
    /// The agency's own token could not be used to mint this location's token.
    #[error("location {location_id}: the agency's token is unusable: {cause}")]
    Company {
        location_id: String,
        cause: Box<AuthError>,
    },
}

impl AuthError {
    /// The token endpoint answered a refresh with a client error (`invalid_grant` in OAuth's
    /// words, or a NestJS-style 400/401: GHL's exact body is not documented): the refresh token
    /// was used or revoked. A 5xx or a dropped connection is not a refusal.
    fn is_refused(&self) -> bool {
        matches!(self, AuthError::Refresh(e) if AuthError::is_refused_http(e))
    }

    fn into_refused(self) -> AuthError {
        match self {
            AuthError::Refresh(e) if AuthError::is_refused_http(&e) => AuthError::RefreshRefused(e),
            other => other,
        }
    }

    fn is_refused_http(e: &HttpError) -> bool {
        matches!(e, HttpError::Api(a) if matches!(a.status, Some(400 | 401)))
    }

    /// How a pass treats this error: lost authentication, except a mint that failed for a
    /// reason a later attempt may not meet (its HTTP class, e.g. transient).
    pub fn class(&self) -> Option<crate::http::ErrorClass> {
        match self {
            AuthError::Mint { failure, .. } => failure.class(),
            _ => Some(crate::http::ErrorClass::Auth),
        }
    }
}

/// How long before `expires_at` a token issued at `issued_at` is renewed: `configured`, but at
/// most a tenth of the token's lifetime. A margin as long as the lifetime would renew before
/// every call (20-second tokens once made 1,199 refreshes for 1,200 requests); a tenth keeps
/// short tokens at about one renewal per lifetime, as the 5 minutes do for GHL's day-long ones.
pub(crate) fn renewal_margin(
    configured: Duration,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> chrono::Duration {
    let configured = chrono::Duration::from_std(configured).unwrap_or(chrono::Duration::zero());
    let lifetime = (expires_at - issued_at).max(chrono::Duration::zero());
    configured.min(lifetime / MARGIN_FRACTION_OF_LIFETIME)
}

/// Held while a refresh runs: no other process on the same store refreshes meanwhile.
pub struct RefreshGuard {
    _lock: Option<crate::store::RefreshLock>,
}

impl RefreshGuard {
    /// For a store only this process sees: the in-process `Mutex` already serialises refreshes.
    pub fn in_process() -> Self {
        RefreshGuard { _lock: None }
    }
}

impl From<crate::store::RefreshLock> for RefreshGuard {
    fn from(lock: crate::store::RefreshLock) -> Self {
        RefreshGuard { _lock: Some(lock) }
    }
}

/// Where OAuth pairs persist (the SQLite store implements it; [`MemoryTokenStore`] for tests).
pub trait TokenStore: Send + Sync {
    fn load(&self) -> Result<Option<TokenPair>, AuthError>;
    fn save(&self, pair: &TokenPair) -> Result<(), AuthError>;
    /// The right to refresh, or `None` while another process holds it.
    fn try_lock_refresh(&self) -> Result<Option<RefreshGuard>, AuthError> {
        Ok(Some(RefreshGuard::in_process()))
    }
}

/// In-memory store; counts saves so tests can check ordering.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    pair: std::sync::Mutex<Option<TokenPair>>,
    saves: AtomicU64,
}

impl MemoryTokenStore {
    pub fn new(initial: Option<TokenPair>) -> Self {
        MemoryTokenStore {
            pair: std::sync::Mutex::new(initial),
            saves: AtomicU64::new(0),
        }
    }

    pub fn saves(&self) -> u64 {
        self.saves.load(Ordering::SeqCst)
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<Option<TokenPair>, AuthError> {
        Ok(self.pair.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn save(&self, pair: &TokenPair) -> Result<(), AuthError> {
        *self.pair.lock().unwrap_or_else(|p| p.into_inner()) = Some(pair.clone());
        self.saves.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// OAuth app credentials and behaviour.
#[derive(Clone)]
pub struct OAuthConfig {
    /// GHL base URL; the token endpoint is `{base}/oauth/token`.
    pub base_url: String,
    pub client_id: String,
    /// Read again for each token call: a rotated client secret file takes effect at once.
    pub client_secret: Secret,
    /// Refresh this long before expiry (the official SDK uses 30 s).
    pub refresh_margin: Duration,
    /// `Location` for a sub-account token.
    pub user_type: String,
}

impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("refresh_margin", &self.refresh_margin)
            .finish()
    }
}

impl OAuthConfig {
    pub fn new(base_url: &str, client_id: &str, client_secret: SecretString) -> Self {
        OAuthConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret: Secret::from(client_secret),
            refresh_margin: Duration::from_secs(300),
            user_type: "Location".to_string(),
        }
    }

    /// The client secret as configured (possibly a file read again at each use).
    pub fn with_client_secret(mut self, client_secret: Secret) -> Self {
        self.client_secret = client_secret;
        self
    }
}

/// The proactive refresh margin is at most this fraction of the token's lifetime.
const MARGIN_FRACTION_OF_LIFETIME: i32 = 10;
/// How long a refresh waits for another process's refresh to finish.
const REFRESH_LOCK_WAIT: Duration = Duration::from_secs(120);
const REFRESH_LOCK_POLL: Duration = Duration::from_millis(20);

/// Refreshing OAuth token source.
pub struct OAuthTokens {
    cfg: OAuthConfig,
    policy: HttpPolicy,
    store: Arc<dyn TokenStore>,
    current: tokio::sync::Mutex<Option<TokenPair>>,
    refreshes: AtomicU64,
}

impl std::fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("cfg", &self.cfg)
            .field("refreshes", &self.refreshes.load(Ordering::Relaxed))
            .finish()
    }
}

impl OAuthTokens {
    pub fn new(
        cfg: OAuthConfig,
        store: Arc<dyn TokenStore>,
        policy: HttpPolicy,
    ) -> Result<Self, AuthError> {
        check_base_url(&cfg.base_url).map_err(|e| AuthError::Config(e.to_string()))?;
        Ok(OAuthTokens {
            cfg,
            policy,
            store,
            current: tokio::sync::Mutex::new(None),
            refreshes: AtomicU64::new(0),
        })
    }

    /// Refreshes performed by this source (the single-flight guarantee is observable).
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// Scopes granted with the current pair (for `check`).
    pub async fn scopes(&self) -> Result<Option<String>, AuthError> {
        let mut cur = self.current.lock().await;
        self.ensure_loaded(&mut cur)?;
        Ok(cur.as_ref().and_then(|p| p.scope.clone()))
    }

    fn ensure_loaded(&self, cur: &mut Option<TokenPair>) -> Result<(), AuthError> {
        if cur.is_none() {
            *cur = self.store.load()?;
        }
        Ok(())
    }

    /// How long before expiry `pair` is refreshed (see [`renewal_margin`]).
    fn margin(&self, pair: &TokenPair) -> chrono::Duration {
        renewal_margin(self.cfg.refresh_margin, pair.issued_at, pair.expires_at)
    }

    /// Valid beyond the refresh margin.
    fn fresh(&self, pair: &TokenPair) -> bool {
        pair.expires_at - self.margin(pair) > Utc::now()
    }

    /// A valid access token, refreshing first when it expires within the margin.
    pub async fn access_token(&self) -> Result<SecretString, AuthError> {
        let mut cur = self.current.lock().await;
        self.ensure_loaded(&mut cur)?;
        let pair = cur.as_ref().ok_or(AuthError::NoTokens)?;
        if self.fresh(pair) {
            return Ok(pair.access_token.clone());
        }
        let new = self.renew(None).await?;
        let token = new.access_token.clone();
        *cur = Some(new);
        Ok(token)
    }

    /// After a 401 with `rejected`: refresh unless another caller already replaced it.
    pub async fn refresh_after_rejection(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, AuthError> {
        let mut cur = self.current.lock().await;
        self.ensure_loaded(&mut cur)?;
        let pair = cur.as_ref().ok_or(AuthError::NoTokens)?;
        if pair.access_token.expose_secret() != rejected.expose_secret() {
            return Ok(pair.access_token.clone());
        }
        let new = self.renew(Some(rejected)).await?;
        let token = new.access_token.clone();
        *cur = Some(new);
        Ok(token)
    }

    /// A pair to use instead of the one in memory (expiring, or `rejected` by GHL), under the
    /// cross-process refresh lock: the stored pair when another process already renewed it,
    /// else a refresh with the stored refresh token. The caller holds the `current` lock.
    async fn renew(&self, rejected: Option<&SecretString>) -> Result<TokenPair, AuthError> {
        let _guard = self.refresh_lock().await?;
        let stored = self.store.load()?.ok_or(AuthError::NoTokens)?;
        if self.adoptable(&stored, rejected) {
            tracing::info!("GHL access token renewed by another process; using the stored pair");
            return Ok(stored);
        }
        match self.refresh_locked(&stored.refresh_token).await {
            Err(e) if e.is_refused() => {
                // A writer that does not take the lock (another version of this program, a
                // restored copy of the state) may have rotated the pair after it was read.
                let again = self.store.load()?.ok_or(AuthError::NoTokens)?;
                if again.refresh_token.expose_secret() == stored.refresh_token.expose_secret() {
                    return Err(e.into_refused());
                }
                tracing::warn!(
                    "GHL refused the refresh token, but the stored pair has changed meanwhile; retrying with it"
                );
                if self.adoptable(&again, rejected) {
                    return Ok(again);
                }
                self.refresh_locked(&again.refresh_token)
                    .await
                    .map_err(AuthError::into_refused)
            }
            other => other,
        }
    }

    /// The stored pair can be used as it is: fresh, and not the access token GHL just rejected.
    fn adoptable(&self, stored: &TokenPair, rejected: Option<&SecretString>) -> bool {
        self.fresh(stored)
            && rejected.is_none_or(|r| r.expose_secret() != stored.access_token.expose_secret())
    }

    /// Waits for the store's refresh lock. Its holder makes one token call, bounded by the HTTP
    /// policy's timeouts, so a wait past [`REFRESH_LOCK_WAIT`] means something is stuck.
    async fn refresh_lock(&self) -> Result<RefreshGuard, AuthError> {
        let deadline = tokio::time::Instant::now() + REFRESH_LOCK_WAIT;
        loop {
            if let Some(guard) = self.store.try_lock_refresh()? {
                return Ok(guard);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AuthError::Store(format!(
                    "another process has been refreshing the GHL token for over {} s; is one stuck?",
                    REFRESH_LOCK_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(REFRESH_LOCK_POLL).await;
        }
    }

    /// Runs the refresh grant; the caller holds the `current` lock. Saves before returning.
    async fn refresh_locked(&self, refresh_token: &SecretString) -> Result<TokenPair, AuthError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let form = vec![
            ("client_id".to_string(), self.cfg.client_id.clone()),
            (
                "client_secret".to_string(),
                self.cfg
                    .client_secret
                    .current()?
                    .expose_secret()
                    .to_string(),
            ),
            ("grant_type".to_string(), "refresh_token".to_string()),
            (
                "refresh_token".to_string(),
                refresh_token.expose_secret().to_string(),
            ),
            ("user_type".to_string(), self.cfg.user_type.clone()),
        ];
        let pair = self.token_call(form, Some(refresh_token)).await?;
        tracing::info!("GHL access token refreshed");
        Ok(pair)
    }

    /// Authorization-code grant (`auth ghl exchange --code CODE`); the pair is saved.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: Option<&str>,
    ) -> Result<TokenPair, AuthError> {
        let mut cur = self.current.lock().await;
        let mut form = vec![
            ("client_id".to_string(), self.cfg.client_id.clone()),
            (
                "client_secret".to_string(),
                self.cfg
                    .client_secret
                    .current()?
                    .expose_secret()
                    .to_string(),
            ),
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.to_string()),
            ("user_type".to_string(), self.cfg.user_type.clone()),
        ];
        if let Some(r) = redirect_uri {
            form.push(("redirect_uri".to_string(), r.to_string()));
        }
        let pair = self.token_call(form, None).await?;
        *cur = Some(pair.clone());
        Ok(pair)
    }

    async fn token_call(
        &self,
        form: Vec<(String, String)>,
        old_refresh: Option<&SecretString>,
    ) -> Result<TokenPair, AuthError> {
        let url = format!("{}/oauth/token", self.cfg.base_url);
        let req = Request::new(Method::POST, url, "/oauth/token")
            .header("accept", "application/json")
            .map_err(AuthError::Refresh)?
            .form(form);
        let resp = self.policy.send(&req).await.map_err(AuthError::Refresh)?;
        let tr: TokenResponse = resp
            .json(self.policy.api(), "/oauth/token")
            .map_err(AuthError::Refresh)?;
        if tr.access_token.is_empty() {
            return Err(AuthError::BadTokenResponse("access_token"));
        }
        let refresh = match (tr.refresh_token.filter(|r| !r.is_empty()), old_refresh) {
            (Some(r), _) => SecretString::from(r),
            // No rotation in this answer: keep using the one we have.
            (None, Some(old)) => old.clone(),
            (None, None) => return Err(AuthError::BadTokenResponse("refresh_token")),
        };
        let issued_at = Utc::now();
        let pair = TokenPair {
            access_token: SecretString::from(tr.access_token),
            refresh_token: refresh,
            issued_at,
            expires_at: issued_at + chrono::Duration::seconds(tr.expires_in.unwrap_or(86_399)),
            scope: tr.scope,
            user_type: tr.user_type,
            location_id: tr.location_id,
        };
        // Persist before anyone uses the new access token: the old refresh token is dead now.
        self.store.save(&pair)?;
        Ok(pair)
    }
}

/// The URL an admin opens to install the app on a sub-account.
pub fn authorize_url(
    client_id: &str,
    redirect_uri: &str,
    scopes: &[&str],
) -> Result<String, AuthError> {
    authorize_url_at(AUTHORIZE_BASE, client_id, redirect_uri, scopes)
}

/// As [`authorize_url`] with another base (white-label marketplace, tests).
pub fn authorize_url_at(
    base: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[&str],
) -> Result<String, AuthError> {
    let url = reqwest::Url::parse_with_params(
        base,
        &[
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("scope", &scopes.join(" ")),
        ],
    )
    .map_err(|e| AuthError::Config(format!("authorize URL: {e}")))?;
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ghl::token_source::TokenSource;

    #[test]
    fn authorize_url_encodes_scopes() {
        let u = authorize_url(
            "cid",
            "http://127.0.0.1:8080/cb",
            &["contacts.readonly", "contacts.write"],
        )
        .unwrap();
        assert!(u.starts_with(AUTHORIZE_BASE));
        assert!(u.contains("response_type=code"));
        assert!(u.contains("client_id=cid"));
        assert!(u.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb"));
        assert!(u.contains("scope=contacts.readonly+contacts.write"));
    }

    #[tokio::test]
    async fn a_token_file_gives_a_new_token_after_a_401_only_when_it_changed() {
        use crate::secret::InsecureFiles;
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("hgs-ghl-token-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let write = |v: &str| {
            std::fs::write(&path, v).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        write("pit-one");
        let source = TokenSource::File(
            Secret::from_file("ghl.token_file", &path, InsecureFiles::Refuse).unwrap(),
        );
        let sent = source.access_token().await.unwrap();
        assert_eq!(sent.expose_secret(), "pit-one");
        // Refused, and the file still holds the refused token: nothing new to try.
        assert!(
            source
                .refresh_after_rejection(&sent)
                .await
                .unwrap()
                .is_none()
        );
        write("pit-two");
        let fresh = source.refresh_after_rejection(&sent).await.unwrap();
        assert_eq!(fresh.unwrap().expose_secret(), "pit-two");
        assert!(!format!("{source:?}").contains("pit-"), "{source:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_hides_secrets() {
        let pair = TokenPair {
            access_token: "at-secret-123".into(),
            refresh_token: "rt-secret-456".into(),
            issued_at: Utc::now(),
            expires_at: Utc::now(),
            scope: None,
            user_type: None,
            location_id: None,
        };
        let s = format!("{pair:?} {:?}", TokenSource::Static("pit-abc".into()));
        assert!(!s.contains("secret-123") && !s.contains("secret-456") && !s.contains("pit-abc"));
        let cfg = OAuthConfig::new("https://x", "id", "cs-789".into());
        assert!(!format!("{cfg:?}").contains("cs-789"));
    }

    #[test]
    fn the_refresh_margin_is_at_most_a_tenth_of_the_lifetime() {
        let tokens = OAuthTokens::new(
            OAuthConfig::new("http://127.0.0.1:9", "id", "cs".into()),
            Arc::new(MemoryTokenStore::new(None)),
            HttpPolicy::new(
                crate::http::PolicyConfig::ghl(),
                crate::http::AuditSink::new(),
            )
            .unwrap(),
        )
        .unwrap();
        let issued = Utc::now();
        let pair = |lifetime_s: i64| TokenPair {
            access_token: "at".into(),
            refresh_token: "rt".into(),
            issued_at: issued,
            expires_at: issued + chrono::Duration::seconds(lifetime_s),
            scope: None,
            user_type: None,
            location_id: None,
        };
        // GHL's day-long tokens: the configured 5 minutes.
        assert_eq!(tokens.margin(&pair(86_399)), chrono::Duration::seconds(300));
        // 20-second tokens: 2 seconds, not 5 minutes (which refreshed before every call).
        assert_eq!(tokens.margin(&pair(20)), chrono::Duration::seconds(2));
        assert!(tokens.fresh(&pair(20)));
        // An unknown expiry (stored as the epoch) is never fresh.
        let mut unknown = pair(20);
        unknown.expires_at = DateTime::<Utc>::UNIX_EPOCH;
        assert!(!tokens.fresh(&unknown));
    }
}
