//! The send times of each API's last rate window, handed from one process to the next: a
//! process started right after another one's burst must count that burst against its first
//! window, as the server does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::OptionalExtension;

use super::{Result, Store};

fn key(api: &str) -> String {
    format!("rate_window.{api}")
}

impl Store {
    /// The send times last stored for `api` (empty when none, or unreadable: a lost window
    /// only costs the caution it was for).
    pub fn rate_window(&self, api: &str) -> Result<Vec<SystemTime>> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM hgs_meta WHERE key = ?1",
                [key(api)],
                |r| r.get(0),
            )
            .optional()?;
        let millis: Vec<u64> = text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Ok(millis
            .into_iter()
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
            .collect())
    }

    /// Replaces the stored send times of `api` (milliseconds since the Unix epoch).
    pub fn set_rate_window(&self, api: &str, sends: &[SystemTime]) -> Result<()> {
        let millis: Vec<u64> = sends
            .iter()
            .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .collect();
        let value = serde_json::to_string(&millis).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "INSERT INTO hgs_meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key(api), value),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_round_trips_per_api() {
        let s = Store::open_in_memory().unwrap();
        assert!(s.rate_window("ghl").unwrap().is_empty());
        let t = UNIX_EPOCH + Duration::from_millis(1_764_600_000_123);
        s.set_rate_window("ghl", &[t, t + Duration::from_millis(5)])
            .unwrap();
        s.set_rate_window("hotspot", &[t]).unwrap();
        assert_eq!(
            s.rate_window("ghl").unwrap(),
            vec![t, t + Duration::from_millis(5)]
        );
        assert_eq!(s.rate_window("hotspot").unwrap(), vec![t]);
    }
}
