//! OAuth tokens: the only table that holds secrets. Accessors take and return `SecretString`
//! so the values never reach a `Debug` or a log; the file itself is mode 0600.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use secrecy::{ExposeSecret, SecretString};

use super::{Result, Store, parse_opt_ts, parse_ts, ts};

#[derive(Debug, Clone)]
pub struct StoredToken {
    /// e.g. `ghl`.
    pub provider: String,
    pub access_token: SecretString,
    /// Rotates on every refresh: the new one must be saved before the new access token is used.
    pub refresh_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scope: Option<String>,
    pub location_id: Option<String>,
    pub user_type: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    pub fn token(&self, provider: &str) -> Result<Option<StoredToken>> {
        let row = self
            .conn
            .query_row(
                "SELECT provider, access_token, refresh_token, expires_at, scope, location_id,
                        user_type, updated_at
                 FROM tokens WHERE provider = ?1",
                [provider],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                },
            )
            .optional()?;
        let Some((provider, access, refresh, expires, scope, location_id, user_type, updated)) =
            row
        else {
            return Ok(None);
        };
        Ok(Some(StoredToken {
            provider,
            access_token: SecretString::from(access),
            refresh_token: refresh.map(SecretString::from),
            expires_at: parse_opt_ts("tokens.expires_at", expires)?,
            scope,
            location_id,
            user_type,
            updated_at: parse_ts("tokens.updated_at", &updated)?,
        }))
    }

    /// Inserts or replaces the token of `token.provider` (committed before returning, unless
    /// inside a transaction).
    pub fn save_token(&self, token: &StoredToken) -> Result<()> {
        self.conn.execute(
            "INSERT INTO tokens (provider, access_token, refresh_token, expires_at, scope,
                                 location_id, user_type, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (provider) DO UPDATE SET
                access_token = excluded.access_token, refresh_token = excluded.refresh_token,
                expires_at = excluded.expires_at, scope = excluded.scope,
                location_id = excluded.location_id, user_type = excluded.user_type,
                updated_at = excluded.updated_at",
            (
                &token.provider,
                token.access_token.expose_secret(),
                token.refresh_token.as_ref().map(|t| t.expose_secret()),
                token.expires_at.map(ts),
                &token.scope,
                &token.location_id,
                &token.user_type,
                ts(token.updated_at),
            ),
        )?;
        Ok(())
    }

    pub fn delete_token(&self, provider: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM tokens WHERE provider = ?1", [provider])?
            > 0)
    }
}
