//! Where the GHL client gets its bearer token: a Private Integration Token (fixed or from a
//! file), an OAuth pair refreshed in place, or a location token minted from the agency's.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::agency::LocationTokens;
use super::auth::{AuthError, OAuthTokens};
use crate::secret::Secret;

/// Where the GHL client gets its bearer token.
#[derive(Clone)]
pub enum TokenSource {
    /// Private Integration Token: never expires, never refreshed.
    Static(SecretString),
    /// Private Integration Token kept in a file: read again for each request and after a 401,
    /// so a token rotated in the file replaces the old one at once.
    File(Secret),
    OAuth(Arc<OAuthTokens>),
    /// A location under the agency's OAuth installation: tokens minted from the Company token.
    Agency(Arc<LocationTokens>),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Static(_) => f.write_str("TokenSource::Static([REDACTED])"),
            TokenSource::File(s) => write!(f, "TokenSource::File({s:?})"),
            TokenSource::OAuth(o) => write!(f, "TokenSource::OAuth({o:?})"),
            TokenSource::Agency(a) => write!(f, "TokenSource::Agency({a:?})"),
        }
    }
}

impl TokenSource {
    pub async fn access_token(&self) -> Result<SecretString, AuthError> {
        match self {
            TokenSource::Static(t) => Ok(t.clone()),
            TokenSource::File(s) => Ok(s.current()?),
            TokenSource::OAuth(o) => o.access_token().await,
            TokenSource::Agency(a) => a.access_token().await,
        }
    }

    /// A fresh token after a 401 on `rejected`, or None when this source cannot refresh.
    pub async fn refresh_after_rejection(
        &self,
        rejected: &SecretString,
    ) -> Result<Option<SecretString>, AuthError> {
        match self {
            TokenSource::Static(_) => Ok(None),
            // A new token only if the file changed since the rejected one was read.
            TokenSource::File(s) => {
                let fresh = s.current()?;
                Ok((fresh.expose_secret() != rejected.expose_secret()).then_some(fresh))
            }
            TokenSource::OAuth(o) => o.refresh_after_rejection(rejected).await.map(Some),
            TokenSource::Agency(a) => a.mint_after_rejection(rejected).await.map(Some),
        }
    }
}
