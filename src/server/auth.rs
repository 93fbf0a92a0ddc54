//! Credentials for a server reachable beyond loopback: HTTP Basic with an Argon2 password hash
//! (a PHC string, so the file on disk is not the password) and/or a bearer token, read once at
//! start from an environment variable or a file.
//!
//! Comparisons run in constant time (BLAKE3 digests compare in constant time; Argon2 verifies
//! in constant time). An Argon2 check costs tens of milliseconds of CPU on purpose, so a flood of
//! wrong passwords could take the CPU: checks run one at a time, and an `Authorization` value
//! that passed once is remembered (as a digest) so a browser's repeated requests cost nothing.
//! Failures are logged with the peer address and the scheme tried, never the credential.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordVerifier as _;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::secret::{InsecureFiles, Secret};

/// Where a secret is read from: an environment variable or a file (first line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("environment variable {0} ({1}) is not set or empty")]
    EnvMissing(String, &'static str),
    #[error(transparent)]
    SecretFile(#[from] crate::secret::SecretError),
    #[error(
        "the password hash from {0} is not an Argon2 PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash)"
    )]
    NotPhc(String),
}

impl SecretSource {
    fn describe(&self) -> String {
        match self {
            SecretSource::Env(v) => format!("environment variable {v}"),
            SecretSource::File(p) => format!("file {}", p.display()),
        }
    }

    /// The secret; `what` names it in errors (which never contain the value).
    pub fn read(
        &self,
        what: &'static str,
        insecure: InsecureFiles,
    ) -> Result<SecretString, AuthError> {
        let value = match self {
            SecretSource::Env(var) => std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| AuthError::EnvMissing(var.clone(), what))?,
            SecretSource::File(p) => {
                // The same rule as every other secret file: private to its owner unless the
                // operator allows otherwise.
                // `from_file` has read it; `serve` reads its credentials once, at start.
                let secret = Secret::from_file(what, p, insecure)?;
                secret
                    .expose_secret()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            }
        };
        Ok(SecretString::from(value.trim().to_string()))
    }
}

/// Whether an endpoint that holds no personal data (`/healthz`, `/metrics`) needs credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Open,
    Protected,
}

struct Basic {
    user: blake3::Hash,
    phc: SecretString,
}

/// The configured credentials, ready to check requests.
pub struct Credentials {
    basic: Option<Basic>,
    bearer: Option<blake3::Hash>,
    /// Digests of `Authorization` values that passed the Argon2 check.
    verified: Mutex<Vec<blake3::Hash>>,
    argon_lane: Semaphore,
}

/// Most remembered `Authorization` values (a few browsers and a scraper).
const REMEMBERED: usize = 16;

impl Credentials {
    /// Reads the sources; `None` when neither Basic nor a token is configured.
    pub fn load(
        basic: Option<(&str, &SecretSource)>,
        token: Option<&SecretSource>,
        insecure: InsecureFiles,
    ) -> Result<Option<Credentials>, AuthError> {
        let basic = match basic {
            None => None,
            Some((user, src)) => {
                let phc = src.read("password hash", insecure)?;
                argon2::password_hash::phc::PasswordHash::new(phc.expose_secret())
                    .map_err(|_| AuthError::NotPhc(src.describe()))?;
                Some(Basic {
                    user: blake3::hash(user.as_bytes()),
                    phc,
                })
            }
        };
        let bearer = match token {
            None => None,
            Some(src) => Some(blake3::hash(
                src.read("token", insecure)?.expose_secret().as_bytes(),
            )),
        };
        Ok((basic.is_some() || bearer.is_some()).then(|| Credentials {
            basic,
            bearer,
            verified: Mutex::new(Vec::new()),
            argon_lane: Semaphore::new(1),
        }))
    }

    /// Whether `authorization` (the header's value) carries valid credentials, and which
    /// scheme it tried (for the log).
    pub async fn check(&self, authorization: Option<&str>) -> (bool, &'static str) {
        let Some(value) = authorization.map(str::trim) else {
            return (false, "none");
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            // blake3::Hash's == is constant-time.
            let ok = self
                .bearer
                .is_some_and(|h| h == blake3::hash(rest.as_bytes()));
            return (ok, "bearer");
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return (false, "unsupported");
        }
        let Some(basic) = &self.basic else {
            return (false, "basic");
        };
        let key = blake3::hash(rest.as_bytes());
        if self.remembered(&key) {
            return (true, "basic");
        }
        use base64ct::Encoding as _;
        let Ok(decoded) = base64ct::Base64::decode_vec(rest) else {
            return (false, "basic");
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return (false, "basic");
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return (false, "basic");
        };
        let user_ok = basic.user == blake3::hash(user.as_bytes());
        let password = SecretString::from(password.to_string());
        let phc = basic.phc.clone();
        let Ok(_permit) = self.argon_lane.acquire().await else {
            return (false, "basic");
        };
        // The hash is checked even for a wrong user, so both fail in the same time.
        let password_ok = tokio::task::spawn_blocking(move || {
            argon2::Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), phc.expose_secret())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        let ok = user_ok && password_ok;
        if ok {
            let mut v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if v.len() >= REMEMBERED {
                v.remove(0);
            }
            v.push(key);
        }
        (ok, "basic")
    }

    fn remembered(&self, key: &blake3::Hash) -> bool {
        let v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        // Every entry is compared (constant-time each), not only up to the first match.
        v.iter().fold(false, |hit, h| hit | (h == key))
    }

    fn challenge(&self) -> &'static str {
        if self.basic.is_some() {
            "Basic realm=\"hotspot-ghl-sync\", charset=\"UTF-8\""
        } else {
            "Bearer realm=\"hotspot-ghl-sync\""
        }
    }
}

/// Who may call what.
pub struct AuthPolicy {
    /// `None`: no credential configured (only allowed on loopback; see `dashboard::serve`).
    pub credentials: Option<Credentials>,
    pub healthz: Access,
    pub metrics: Access,
}

impl AuthPolicy {
    /// No credentials: every endpoint open (loopback only).
    pub fn open() -> Self {
        AuthPolicy {
            credentials: None,
            healthz: Access::Open,
            metrics: Access::Open,
        }
    }

    fn access(&self, path: &str) -> Access {
        match path {
            "/healthz" => self.healthz,
            "/metrics" => self.metrics,
            _ => Access::Protected,
        }
    }
}

/// Middleware: 401 with a challenge unless the request carries valid credentials (or the
/// endpoint is open, or no credentials are configured).
pub async fn require(State(policy): State<Arc<AuthPolicy>>, req: Request, next: Next) -> Response {
    let Some(creds) = &policy.credentials else {
        return next.run(req).await;
    };
    if policy.access(req.uri().path()) == Access::Open {
        return next.run(req).await;
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (ok, scheme) = creds.check(authorization).await;
    if ok {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".into());
    if scheme != "none" {
        tracing::warn!(%peer, scheme, path = %req.uri().path(), "authentication failed");
    }
    let mut res = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(creds.challenge()),
    );
    res
}
