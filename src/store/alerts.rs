//! Alert conditions: since when each holds and when it was last alerted, so that every process
//! on the state (a daemon's passes, or one `sync` per timer tick) keeps to one alert an hour.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use super::{Result, Store, parse_opt_ts, ts};

/// What the state remembers of one condition. `Default`: a condition never seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertState {
    /// When the condition was first seen in its current spell; `None` while it does not hold.
    pub active_since: Option<DateTime<Utc>>,
    /// When an alert that it holds was last delivered (kept across spells).
    pub last_alerted_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The stored state of `condition` (its key, e.g. `auth_lost`); default when never stored.
    pub fn alert_state(&self, condition: &str) -> Result<AlertState> {
        let row: Option<(Option<String>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT active_since, last_alerted_at FROM alert_conditions WHERE condition = ?1",
                [condition],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((since, alerted)) = row else {
            return Ok(AlertState::default());
        };
        Ok(AlertState {
            active_since: parse_opt_ts("alert_conditions.active_since", since)?,
            last_alerted_at: parse_opt_ts("alert_conditions.last_alerted_at", alerted)?,
        })
    }

    pub fn set_alert_state(
        &self,
        condition: &str,
        state: AlertState,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO alert_conditions (condition, active_since, last_alerted_at, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (condition) DO UPDATE SET active_since = excluded.active_since,
                 last_alerted_at = excluded.last_alerted_at, updated_at = excluded.updated_at",
            (
                condition,
                state.active_since.map(ts),
                state.last_alerted_at.map(ts),
                ts(now),
            ),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_round_trips_and_defaults_to_never_seen() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.alert_state("auth_lost").unwrap(), AlertState::default());
        let t = DateTime::parse_from_rfc3339("2026-12-02T05:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let state = AlertState {
            active_since: Some(t),
            last_alerted_at: Some(t + chrono::Duration::minutes(5)),
        };
        s.set_alert_state("auth_lost", state, t).unwrap();
        assert_eq!(s.alert_state("auth_lost").unwrap(), state);
        let cleared = AlertState {
            active_since: None,
            ..state
        };
        s.set_alert_state("auth_lost", cleared, t).unwrap();
        assert_eq!(s.alert_state("auth_lost").unwrap(), cleared);
        assert_eq!(
            s.alert_state("quota_reserve").unwrap(),
            AlertState::default()
        );
    }
}
