//! The fast lane's cursors: per HotspotSystem location and listing, the highest record id the
//! `new` job has written and accounted, and the location list it reads them at. Kept in the
//! generic `cursors` table and `hgs_meta`, apart from the regular passes' cursors (their
//! scopes never start with `fast:`), so the two lanes never move each other's marks.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use super::{Result, Store};
use crate::config::TransactionType;
use crate::model::Kind;

/// One HotspotSystem listing the fast lane follows at each location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FastListing {
    Customers,
    Subscribers,
    /// Transactions of one type.
    Transactions(TransactionType),
}

impl FastListing {
    /// The wire name of the listing, as the cursor's scope spells it.
    pub fn name(self) -> &'static str {
        match self {
            FastListing::Customers => "customers",
            FastListing::Subscribers => "subscribers",
            FastListing::Transactions(t) => t.wire_name(),
        }
    }

    /// The kind whose records the listing feeds: the cursor is filed under it.
    fn kind(self) -> Kind {
        match self {
            FastListing::Customers | FastListing::Subscribers => Kind::Contact,
            FastListing::Transactions(_) => Kind::Note,
        }
    }

    fn scope(self, location: &str) -> String {
        format!("fast:{}:{location}", self.name())
    }
}

/// The location list the fast lane reads at, with when it was listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastLocations {
    pub listed_at: DateTime<Utc>,
    /// (id, name), in the order HotspotSystem listed them.
    pub locations: Vec<(String, String)>,
}

const LOCATIONS_KEY: &str = "fast_lane.locations";

impl Store {
    /// The high-water mark of `listing` at `location`; `None` before the first tick set it.
    pub fn fast_cursor(&self, location: &str, listing: FastListing) -> Result<Option<u64>> {
        // Written only by `set_fast_cursor`; a value that does not read as a number is taken
        // as no cursor, so the next tick sets it again from the newest record.
        Ok(self
            .cursor(listing.kind(), &listing.scope(location))?
            .and_then(|t| t.parse().ok()))
    }

    pub fn set_fast_cursor(&self, location: &str, listing: FastListing, high: u64) -> Result<()> {
        self.set_cursor(listing.kind(), &listing.scope(location), &high.to_string())
    }

    /// The location list last stored by the fast lane, if any (an unreadable value reads as
    /// none: it is listed again).
    pub fn fast_locations(&self) -> Result<Option<FastLocations>> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM hgs_meta WHERE key = ?1",
                [LOCATIONS_KEY],
                |r| r.get(0),
            )
            .optional()?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    pub fn set_fast_locations(&self, locations: &FastLocations) -> Result<()> {
        let value = serde_json::to_string(locations).unwrap_or_else(|_| "{}".into());
        self.conn.execute(
            "INSERT INTO hgs_meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (LOCATIONS_KEY, value),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_per_location_and_listing_and_apart_from_the_regular_ones() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.fast_cursor("1", FastListing::Customers).unwrap(), None);
        s.set_fast_cursor("1", FastListing::Customers, 59_243_600)
            .unwrap();
        s.set_fast_cursor("1", FastListing::Transactions(TransactionType::Paid), 1_200)
            .unwrap();
        assert_eq!(
            s.fast_cursor("1", FastListing::Customers).unwrap(),
            Some(59_243_600)
        );
        assert_eq!(s.fast_cursor("2", FastListing::Customers).unwrap(), None);
        assert_eq!(
            s.fast_cursor("1", FastListing::Transactions(TransactionType::Paid))
                .unwrap(),
            Some(1_200)
        );
        // The notes pass's own cursor of the same stream is untouched.
        assert_eq!(s.cursor(Kind::Note, "paid:1").unwrap(), None);
        let l = FastLocations {
            listed_at: Utc::now(),
            locations: vec![("1".into(), "Cafe".into())],
        };
        s.set_fast_locations(&l).unwrap();
        assert_eq!(s.fast_locations().unwrap(), Some(l));
    }
}
