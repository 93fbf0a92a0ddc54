//! OAuth token pairs persisted in SQLite, and the constructor that turns a [`Config`] into the
//! right [`TokenSource`]. An `oauth` pair lives in the state database; with `auth = "agency"`
//! the Company pair lives in the agency's own token store (`ghl.agency_state`) and each pair's
//! state keeps only the token minted for its location.
//!
//! The store keeps its own connection to the state file (behind a `Mutex`, since `Store` is not
//! `Sync`). Its own connection matters: a save must be committed at once, and a connection shared
//! with a sync run could be inside that run's transaction, where a crash would roll the rotated
//! refresh token back and leave only the dead one on disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::agency::{Agency, LocationToken, LocationTokenStore, LocationTokens};
use super::auth::{AuthError, OAuthConfig, OAuthTokens, RefreshGuard, TokenPair, TokenStore};
use super::token_source::TokenSource;
use crate::config::{AgencyAuth, Config, GhlAuth};
use crate::http::{AuditSink, HttpPolicy};
use crate::store::{Store, StoredToken};

/// The `tokens.provider` row GHL pairs live in.
pub const GHL_PROVIDER: &str = "ghl";
/// The row of the agency's Company pair, in the agency's token store.
pub const AGENCY_PROVIDER: &str = "ghl-agency";
/// The row of the token minted for a pair's location, in that pair's state.
pub const LOCATION_PROVIDER: &str = "ghl-location";

/// [`TokenStore`] over the `tokens` table of a SQLite database (the state database, or the
/// agency's token store).
pub struct SqliteTokenStore {
    store: Mutex<Store>,
    path: PathBuf,
    provider: &'static str,
}

impl std::fmt::Debug for SqliteTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTokenStore")
            .field("path", &self.path)
            .finish()
    }
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> AuthError {
    AuthError::Store(format!("{}: {e}", path.display()))
}

impl SqliteTokenStore {
    /// Opens (creating and migrating if needed) the state database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuthError> {
        let path = path.as_ref().to_path_buf();
        let store = Store::open(&path).map_err(|e| store_err(&path, e))?;
        Ok(SqliteTokenStore {
            store: Mutex::new(store),
            path,
            provider: GHL_PROVIDER,
        })
    }

    /// Opens (creating if needed) the agency's token store at `path`: its Company pair.
    pub fn open_agency(path: impl AsRef<Path>) -> Result<Self, AuthError> {
        let mut store = SqliteTokenStore::open(path)?;
        store.provider = AGENCY_PROVIDER;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wraps an already open store (give it a connection of its own; see the module doc).
    pub fn new(store: Store) -> Self {
        let path = store.path().to_path_buf();
        SqliteTokenStore {
            store: Mutex::new(store),
            path,
            provider: GHL_PROVIDER,
        }
    }

    /// The stored row as it is, for `auth ghl status` and `check` (expiry, scope, location).
    pub fn stored(&self) -> Result<Option<StoredToken>, AuthError> {
        self.lock()
            .token(self.provider)
            .map_err(|e| store_err(&self.path, e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TokenStore for SqliteTokenStore {
    fn load(&self) -> Result<Option<TokenPair>, AuthError> {
        let Some(row) = self.stored()? else {
            return Ok(None);
        };
        let Some(refresh_token) = row.refresh_token else {
            return Err(AuthError::Store(format!(
                "{}: the stored GHL token has no refresh token; reconnect with `auth ghl url` then `auth ghl exchange --code CODE`",
                self.path.display()
            )));
        };
        Ok(Some(TokenPair {
            access_token: row.access_token,
            refresh_token,
            // The row is written right after GHL issues the pair.
            issued_at: row.updated_at,
            // Unknown expiry: treat the access token as expired so the first use refreshes it.
            expires_at: row.expires_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            scope: row.scope,
            user_type: row.user_type,
            location_id: row.location_id,
        }))
    }

    fn save(&self, pair: &TokenPair) -> Result<(), AuthError> {
        let row = StoredToken {
            provider: self.provider.to_string(),
            access_token: pair.access_token.expose_secret().into(),
            refresh_token: Some(pair.refresh_token.clone()),
            expires_at: Some(pair.expires_at),
            scope: pair.scope.clone(),
            location_id: pair.location_id.clone(),
            user_type: pair.user_type.clone(),
            updated_at: Utc::now(),
        };
        self.lock()
            .save_token(&row)
            .map_err(|e| store_err(&self.path, e))
    }

    fn try_lock_refresh(&self) -> Result<Option<RefreshGuard>, AuthError> {
        crate::store::try_lock_refresh(&self.path)
            .map(|held| held.map(RefreshGuard::from))
            .map_err(|e| store_err(&self.path, e))
    }
}

/// [`LocationTokenStore`] over the `tokens` table of a pair's state database. It never creates
/// that database: a command that reads no state (`check` before the first sync) mints without
/// keeping the token rather than leave a state file behind.
pub struct SqliteLocationTokenStore {
    store: Mutex<Option<Store>>,
    path: PathBuf,
}

impl SqliteLocationTokenStore {
    /// The pair's state database at `path`, opened when first used and only if it exists.
    pub fn new(path: impl AsRef<Path>) -> Self {
        SqliteLocationTokenStore {
            store: Mutex::new(None),
            path: path.as_ref().to_path_buf(),
        }
    }

    /// Runs `f` on the state database, or gives `None` when there is none yet.
    fn with_store<T>(
        &self,
        f: impl FnOnce(&Store) -> crate::store::Result<T>,
    ) -> Result<Option<T>, AuthError> {
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if !self.path.exists() {
                return Ok(None);
            }
            *guard = Some(Store::open(&self.path).map_err(|e| store_err(&self.path, e))?);
        }
        let store = guard.as_ref().expect("opened above");
        f(store).map(Some).map_err(|e| store_err(&self.path, e))
    }

    /// The stored row as it is, for `auth ghl status`.
    pub fn stored(&self) -> Result<Option<StoredToken>, AuthError> {
        Ok(self.with_store(|s| s.token(LOCATION_PROVIDER))?.flatten())
    }
}

impl LocationTokenStore for SqliteLocationTokenStore {
    fn load(&self) -> Result<Option<LocationToken>, AuthError> {
        let Some(row) = self.stored()? else {
            return Ok(None);
        };
        // A row without a location or an expiry is of no use: a new token is minted.
        let (Some(location_id), Some(expires_at)) = (row.location_id, row.expires_at) else {
            return Ok(None);
        };
        Ok(Some(LocationToken {
            access_token: row.access_token,
            location_id,
            issued_at: row.updated_at,
            expires_at,
            scope: row.scope,
        }))
    }

    fn save(&self, token: &LocationToken) -> Result<(), AuthError> {
        let row = StoredToken {
            provider: LOCATION_PROVIDER.to_string(),
            access_token: token.access_token.expose_secret().into(),
            refresh_token: None,
            expires_at: Some(token.expires_at),
            scope: token.scope.clone(),
            location_id: Some(token.location_id.clone()),
            user_type: Some("Location".to_string()),
            updated_at: token.issued_at,
        };
        self.with_store(|s| s.save_token(&row)).map(|_| ())
    }
}

/// The OAuth app settings of `cfg`, or an error when `cfg` uses a Private Integration token.
/// With `auth = "agency"` they ask for the agency's (Company) token.
pub fn oauth_config(cfg: &Config) -> Result<OAuthConfig, AuthError> {
    let app = |client_id: &str, secret: &crate::secret::Secret| {
        OAuthConfig::new(
            &cfg.ghl.base_url,
            client_id,
            secrecy::SecretString::from(String::new()),
        )
        .with_client_secret(secret.clone())
    };
    match &cfg.ghl.auth {
        GhlAuth::OAuth {
            client_id,
            client_secret,
            ..
        } => Ok(app(client_id, client_secret)),
        GhlAuth::Agency(a) => {
            let mut oauth = app(&a.client_id, &a.client_secret);
            oauth.user_type = "Company".to_string();
            Ok(oauth)
        }
        GhlAuth::PrivateToken { .. } => Err(AuthError::Config(format!(
            "{}: ghl.auth is \"private_token\"; OAuth set-up needs auth = \"oauth\" (one sub-account) or \"agency\" (the agency's installation) with client_id_env and client_secret_env",
            cfg.source_path.display()
        ))),
    }
}

/// Where `cfg`'s OAuth pair is kept: the state database, or the agency's token store.
pub fn oauth_store_path(cfg: &Config) -> &Path {
    match &cfg.ghl.auth {
        GhlAuth::Agency(a) => &a.token_store,
        GhlAuth::OAuth { .. } | GhlAuth::PrivateToken { .. } => &cfg.state.path,
    }
}

/// The OAuth pair's token source over its store ([`oauth_store_path`]), without requiring a
/// stored pair (`auth ghl exchange` creates it).
pub fn oauth_tokens(
    cfg: &Config,
    policy: HttpPolicy,
) -> Result<(Arc<OAuthTokens>, Arc<SqliteTokenStore>), AuthError> {
    let oauth = oauth_config(cfg)?;
    let path = oauth_store_path(cfg);
    let store = Arc::new(match cfg.ghl.auth {
        GhlAuth::Agency(_) => SqliteTokenStore::open_agency(path)?,
        _ => SqliteTokenStore::open(path)?,
    });
    let tokens = OAuthTokens::new(oauth, store.clone(), policy)?;
    Ok((Arc::new(tokens), store))
}

/// The agencies this process uses, by what identifies one: every pair of a file (and every pass
/// of a daemon) shares one [`Agency`], so the Company token is held, and refreshed, once per
/// process rather than once per pair. Weak: an agency no pair uses any more (its pairs removed
/// by a reload) is dropped.
type AgencyKey = (PathBuf, String, String, String);
static AGENCIES: std::sync::LazyLock<
    Mutex<std::collections::HashMap<AgencyKey, std::sync::Weak<Agency>>>,
> = std::sync::LazyLock::new(Default::default);

/// The agency of `cfg`, shared with every other pair of this process on the same agency store,
/// company, GHL base URL and app (see [`agency`]).
pub fn shared_agency(
    cfg: &Config,
    auth: &AgencyAuth,
    policy: &HttpPolicy,
) -> Result<Arc<Agency>, AuthError> {
    let key = (
        auth.token_store.clone(),
        auth.company_id.clone(),
        cfg.ghl.base_url.clone(),
        auth.client_id.clone(),
    );
    let mut agencies = AGENCIES.lock().unwrap_or_else(|p| p.into_inner());
    agencies.retain(|_, a| a.strong_count() > 0);
    if let Some(a) = agencies.get(&key).and_then(std::sync::Weak::upgrade) {
        return Ok(a);
    }
    let a = Arc::new(agency(cfg, auth, policy)?);
    agencies.insert(key, Arc::downgrade(&a));
    Ok(a)
}

/// The agency's installation of `cfg`: its Company token from the agency's token store, which
/// must hold one. The agency's calls get an HTTP policy of their own, built like `policy`: GHL
/// counts them against the company, not against a location.
pub fn agency(cfg: &Config, auth: &AgencyAuth, policy: &HttpPolicy) -> Result<Agency, AuthError> {
    let missing = || AuthError::NoCompanyToken {
        store: auth.token_store.display().to_string(),
    };
    if !auth.token_store.exists() {
        return Err(missing());
    }
    let agency_policy = HttpPolicy::new(policy.config().clone(), AuditSink::new())
        .map_err(|e| AuthError::Config(e.to_string()))?;
    let (company, store) = oauth_tokens(cfg, agency_policy.clone())?;
    if store.load()?.is_none() {
        return Err(missing());
    }
    Agency::new(&cfg.ghl.base_url, &auth.company_id, company, agency_policy)
}

/// The token source `cfg` asks for: a static Private Integration token, OAuth tokens over the
/// state database at `store_path`, or (agency) tokens minted for `cfg`'s location and kept in
/// the state database at `store_path`. Without a stored OAuth or Company pair this fails with
/// [`AuthError::NoTokens`] or [`AuthError::NoCompanyToken`], whose messages say what to run.
pub fn token_source(
    cfg: &Config,
    store_path: &Path,
    policy: HttpPolicy,
) -> Result<TokenSource, AuthError> {
    match &cfg.ghl.auth {
        GhlAuth::PrivateToken { token } if token.is_file() => Ok(TokenSource::File(token.clone())),
        GhlAuth::PrivateToken { token } => Ok(TokenSource::Static(
            token.current().map_err(AuthError::Secret)?,
        )),
        GhlAuth::OAuth { .. } => {
            let oauth = oauth_config(cfg)?;
            let store = Arc::new(SqliteTokenStore::open(store_path)?);
            if store.load()?.is_none() {
                return Err(AuthError::NoTokens);
            }
            Ok(TokenSource::OAuth(Arc::new(OAuthTokens::new(
                oauth, store, policy,
            )?)))
        }
        GhlAuth::Agency(auth) => {
            let agency = shared_agency(cfg, auth, &policy)?;
            let kept = SqliteLocationTokenStore::new(store_path);
            Ok(TokenSource::Agency(Arc::new(LocationTokens::new(
                agency,
                &cfg.ghl.location_id,
                Arc::new(kept),
            ))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hgs-token-store-{name}-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state.db")
    }

    #[test]
    fn save_then_load_round_trips_and_survives_reopen() {
        let path = temp_db("roundtrip");
        let store = SqliteTokenStore::open(&path).unwrap();
        assert!(store.load().unwrap().is_none());
        let expires = Utc::now() + chrono::Duration::hours(1);
        store
            .save(&TokenPair {
                access_token: "at-1".into(),
                refresh_token: "rt-1".into(),
                issued_at: Utc::now(),
                expires_at: expires,
                scope: Some("contacts.readonly contacts.write".into()),
                user_type: Some("Location".into()),
                location_id: Some("loc".into()),
            })
            .unwrap();
        store
            .save(&TokenPair {
                access_token: "at-2".into(),
                refresh_token: "rt-2".into(),
                issued_at: Utc::now(),
                expires_at: expires,
                scope: Some("contacts.readonly".into()),
                user_type: None,
                location_id: Some("loc".into()),
            })
            .unwrap();
        drop(store);
        // A new connection sees the last pair: it was committed, not left in a transaction.
        let again = SqliteTokenStore::open(&path).unwrap();
        let pair = again.load().unwrap().unwrap();
        assert_eq!(pair.access_token.expose_secret(), "at-2");
        assert_eq!(pair.refresh_token.expose_secret(), "rt-2");
        assert_eq!(pair.scope.as_deref(), Some("contacts.readonly"));
        assert_eq!(pair.location_id.as_deref(), Some("loc"));
        assert_eq!(pair.expires_at.timestamp(), expires.timestamp());
        assert!(!format!("{again:?}").contains("at-2"));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn pairs_of_one_agency_share_its_company_token_source() {
        let agency_db = temp_db("agency");
        let dir = agency_db.parent().unwrap().to_path_buf();
        SqliteTokenStore::open_agency(&agency_db)
            .unwrap()
            .save(&TokenPair {
                access_token: "at-co".into(),
                refresh_token: "rt-co".into(),
                issued_at: Utc::now(),
                expires_at: Utc::now() + chrono::Duration::hours(1),
                scope: None,
                user_type: Some("Company".into()),
                location_id: None,
            })
            .unwrap();
        let config = |location: &str| {
            let text = format!(
                "[state]\npath = \"{dir}/{location}.db\"\n[hotspot]\napi_key_env = \"K\"\n[ghl]\nbase_url = \"http://127.0.0.1:9\"\nlocation_id = \"{location}\"\nauth = \"agency\"\ncompany_id = \"co\"\nclient_id_env = \"K\"\nclient_secret_env = \"K\"\nagency_state = \"{agency}\"\n",
                dir = dir.display(),
                agency = agency_db.display()
            );
            Config::from_str_with_env(&text, "/nonexistent/hgs.toml", &|_| Some("v".into()))
                .unwrap()
        };
        let policy = || {
            HttpPolicy::new(
                crate::http::PolicyConfig::ghl(),
                crate::http::AuditSink::new(),
            )
            .unwrap()
        };
        let source = |cfg: &Config| match token_source(cfg, &cfg.state.path, policy()).unwrap() {
            TokenSource::Agency(t) => t,
            other => panic!("{other:?}"),
        };
        let (a, b) = (config("loc-a"), config("loc-b"));
        let (ta, tb) = (source(&a), source(&b));
        assert!(Arc::ptr_eq(ta.agency(), tb.agency()));
        assert_eq!((ta.location_id(), tb.location_id()), ("loc-a", "loc-b"));
        // No state file is created by building the sources.
        assert!(!a.state.path.exists() && !b.state.path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_row_without_refresh_token_is_an_error_naming_the_fix() {
        let path = temp_db("norefresh");
        let store = Store::open(&path).unwrap();
        store
            .save_token(&StoredToken {
                provider: GHL_PROVIDER.into(),
                access_token: "at".into(),
                refresh_token: None,
                expires_at: None,
                scope: None,
                location_id: None,
                user_type: None,
                updated_at: Utc::now(),
            })
            .unwrap();
        let err = SqliteTokenStore::new(store).load().unwrap_err().to_string();
        assert!(err.contains("auth ghl exchange"), "{err}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
