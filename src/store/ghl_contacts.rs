//! What the listings of a location's GHL contacts leave behind for the next pass: the
//! incremental cursor (the `dateUpdated` high-water mark, when the last full listing ran, the
//! date form GHL's range filter took) and the identity of every contact seen (email, phone,
//! HotspotSystem anchor), so that a pass reading only the contacts updated since the last one
//! still finds the GHL contact a new guest must be linked to instead of duplicated.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row};

use super::{Result, Store, StoreError, parse_ts, ts};

/// How GHL's contact search took a `dateUpdated` range bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateFilter {
    /// An ISO-8601 string.
    Iso,
    /// Epoch milliseconds.
    Millis,
    /// Neither form: every pass lists every contact.
    Refused,
}

impl DateFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            DateFilter::Iso => "iso",
            DateFilter::Millis => "millis",
            DateFilter::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "iso" => DateFilter::Iso,
            "millis" => DateFilter::Millis,
            "refused" => DateFilter::Refused,
            _ => {
                return Err(StoreError::BadValue {
                    column: "ghl_contact_cursor.date_filter",
                    value: s.to_string(),
                });
            }
        })
    }
}

/// Which listing of GHL contacts a pass read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactListing {
    /// Every contact, read to its end without a gap: deletions may be inferred from it.
    Full,
    /// The contacts updated since a bound.
    Incremental,
}

/// The incremental cursor of one location (all `None` before its first listing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactCursor {
    /// The latest `dateUpdated` any listing saw.
    pub high_water: Option<DateTime<Utc>>,
    /// When the last full listing was read.
    pub last_full_at: Option<DateTime<Utc>>,
    pub date_filter: Option<DateFilter>,
}

/// The identity of one GHL contact. Email and phone are stored as the caller normalised them:
/// lookups must normalise the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactIdentity {
    pub target_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The value of the custom field that holds the HotspotSystem id.
    pub anchor: Option<String>,
    pub date_updated: Option<DateTime<Utc>>,
}

/// A key a new guest is matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKey<'a> {
    Email(&'a str),
    Phone(&'a str),
    Anchor(&'a str),
}

fn identity_from_row(row: &Row<'_>) -> Result<ContactIdentity> {
    let date: Option<String> = row.get(4)?;
    Ok(ContactIdentity {
        target_id: row.get(0)?,
        email: row.get(1)?,
        phone: row.get(2)?,
        anchor: row.get(3)?,
        date_updated: date
            .map(|d| parse_ts("ghl_contact_identity.date_updated", &d))
            .transpose()?,
    })
}

fn opt_ts(column: &'static str, s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.map(|s| parse_ts(column, &s)).transpose()
}

impl Store {
    /// The incremental cursor of `location_id`.
    pub fn contact_cursor(&self, location_id: &str) -> Result<ContactCursor> {
        let row = self
            .conn
            .query_row(
                "SELECT high_water, last_full_at, date_filter FROM ghl_contact_cursor
                 WHERE location_id = ?1",
                [location_id],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        let Some((high, full, filter)) = row else {
            return Ok(ContactCursor::default());
        };
        Ok(ContactCursor {
            high_water: opt_ts("ghl_contact_cursor.high_water", high)?,
            last_full_at: opt_ts("ghl_contact_cursor.last_full_at", full)?,
            date_filter: filter.as_deref().map(DateFilter::parse).transpose()?,
        })
    }

    /// Records a listing read to its end at `at`: the high-water mark moves to `latest` (a full
    /// listing sets it, an incremental one only raises it), a full listing sets `last_full_at`,
    /// and `date_filter`, when given, replaces the form remembered.
    pub fn record_contact_listing(
        &self,
        location_id: &str,
        listing: ContactListing,
        latest: Option<DateTime<Utc>>,
        date_filter: Option<DateFilter>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.transaction(|s| {
            let old = s.contact_cursor(location_id)?;
            let high_water = match listing {
                ContactListing::Full => latest.or(old.high_water),
                ContactListing::Incremental => latest.max(old.high_water),
            };
            let last_full_at = match listing {
                ContactListing::Full => Some(at),
                ContactListing::Incremental => old.last_full_at,
            };
            s.conn.execute(
                "INSERT INTO ghl_contact_cursor
                    (location_id, high_water, last_full_at, date_filter, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (location_id) DO UPDATE SET
                    high_water = excluded.high_water, last_full_at = excluded.last_full_at,
                    date_filter = excluded.date_filter, updated_at = excluded.updated_at",
                (
                    location_id,
                    high_water.map(ts),
                    last_full_at.map(ts),
                    date_filter.or(old.date_filter).map(DateFilter::as_str),
                    ts(Utc::now()),
                ),
            )?;
            Ok(())
        })
    }

    /// Inserts or replaces the identities of one page of a listing (or of contacts a pass just
    /// wrote).
    pub fn upsert_contact_identities(
        &self,
        location_id: &str,
        rows: &[ContactIdentity],
    ) -> Result<()> {
        self.transaction(|s| {
            let mut stmt = s.conn.prepare_cached(
                "INSERT INTO ghl_contact_identity
                    (location_id, target_id, email, phone, anchor, date_updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (location_id, target_id) DO UPDATE SET
                    email = excluded.email, phone = excluded.phone, anchor = excluded.anchor,
                    date_updated = excluded.date_updated",
            )?;
            for r in rows {
                stmt.execute((
                    location_id,
                    &r.target_id,
                    &r.email,
                    &r.phone,
                    &r.anchor,
                    r.date_updated.map(ts),
                ))?;
            }
            Ok(())
        })
    }

    /// Replaces every identity of `location_id` with `rows`: what a complete full listing read.
    /// A pass that streams the listing page by page upserts each page instead and ends with
    /// [`Store::retain_contact_identities`].
    pub fn replace_contact_identities(
        &self,
        location_id: &str,
        rows: &[ContactIdentity],
    ) -> Result<()> {
        self.transaction(|s| {
            s.conn.execute(
                "DELETE FROM ghl_contact_identity WHERE location_id = ?1",
                [location_id],
            )?;
            s.upsert_contact_identities(location_id, rows)
        })
    }

    /// Keeps only the identities of `location_id` whose contact is in `listed` (the ids of a
    /// complete full listing); returns how many were removed.
    pub fn retain_contact_identities<'a>(
        &self,
        location_id: &str,
        listed: impl IntoIterator<Item = &'a str>,
    ) -> Result<usize> {
        self.transaction(|s| {
            s.conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS hgs_listed_ids (id TEXT PRIMARY KEY) WITHOUT ROWID;
                 DELETE FROM temp.hgs_listed_ids;",
            )?;
            {
                let mut ins = s
                    .conn
                    .prepare_cached("INSERT OR IGNORE INTO temp.hgs_listed_ids (id) VALUES (?1)")?;
                for id in listed {
                    ins.execute([id])?;
                }
            }
            let n = s.conn.execute(
                "DELETE FROM ghl_contact_identity WHERE location_id = ?1
                 AND target_id NOT IN (SELECT id FROM temp.hgs_listed_ids)",
                [location_id],
            )?;
            s.conn.execute_batch("DELETE FROM temp.hgs_listed_ids;")?;
            Ok(n)
        })
    }

    /// Forgets one contact (deleted in GHL, or found gone).
    pub fn remove_contact_identity(&self, location_id: &str, target_id: &str) -> Result<bool> {
        let n = self.conn.execute(
            "DELETE FROM ghl_contact_identity WHERE location_id = ?1 AND target_id = ?2",
            (location_id, target_id),
        )?;
        Ok(n > 0)
    }

    pub fn contact_identity(
        &self,
        location_id: &str,
        target_id: &str,
    ) -> Result<Option<ContactIdentity>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT target_id, email, phone, anchor, date_updated
             FROM ghl_contact_identity WHERE location_id = ?1 AND target_id = ?2",
        )?;
        let mut rows = stmt.query((location_id, target_id))?;
        rows.next()?.map(identity_from_row).transpose()
    }

    /// GHL ids of the contacts whose identity has `key`, ordered by id.
    pub fn contacts_by_identity(
        &self,
        location_id: &str,
        key: IdentityKey<'_>,
    ) -> Result<Vec<String>> {
        let (sql, value) = match key {
            IdentityKey::Email(v) => (
                "SELECT target_id FROM ghl_contact_identity
                 WHERE location_id = ?1 AND email = ?2 ORDER BY target_id",
                v,
            ),
            IdentityKey::Phone(v) => (
                "SELECT target_id FROM ghl_contact_identity
                 WHERE location_id = ?1 AND phone = ?2 ORDER BY target_id",
                v,
            ),
            IdentityKey::Anchor(v) => (
                "SELECT target_id FROM ghl_contact_identity
                 WHERE location_id = ?1 AND anchor = ?2 ORDER BY target_id",
                v,
            ),
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map((location_id, value), |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many identities `location_id` holds.
    pub fn contact_identity_count(&self, location_id: &str) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM ghl_contact_identity WHERE location_id = ?1",
            [location_id],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn ident(
        id: &str,
        email: Option<&str>,
        phone: Option<&str>,
        anchor: Option<&str>,
    ) -> ContactIdentity {
        ContactIdentity {
            target_id: id.into(),
            email: email.map(str::to_string),
            phone: phone.map(str::to_string),
            anchor: anchor.map(str::to_string),
            date_updated: Some(at(1)),
        }
    }

    #[test]
    fn the_cursor_starts_empty_and_follows_full_and_incremental_listings() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.contact_cursor("L").unwrap(), ContactCursor::default());
        s.record_contact_listing("L", ContactListing::Full, Some(at(5)), None, at(6))
            .unwrap();
        let c = s.contact_cursor("L").unwrap();
        assert_eq!(
            (c.high_water, c.last_full_at, c.date_filter),
            (Some(at(5)), Some(at(6)), None)
        );
        // An incremental listing raises the mark, never lowers it, and keeps the full time.
        s.record_contact_listing(
            "L",
            ContactListing::Incremental,
            Some(at(4)),
            Some(DateFilter::Millis),
            at(7),
        )
        .unwrap();
        let c = s.contact_cursor("L").unwrap();
        assert_eq!((c.high_water, c.last_full_at), (Some(at(5)), Some(at(6))));
        assert_eq!(c.date_filter, Some(DateFilter::Millis));
        s.record_contact_listing("L", ContactListing::Incremental, Some(at(8)), None, at(9))
            .unwrap();
        let c = s.contact_cursor("L").unwrap();
        assert_eq!(c.high_water, Some(at(8)));
        assert_eq!(
            c.date_filter,
            Some(DateFilter::Millis),
            "kept when not told"
        );
        // An empty incremental answer keeps the mark.
        s.record_contact_listing("L", ContactListing::Incremental, None, None, at(10))
            .unwrap();
        assert_eq!(s.contact_cursor("L").unwrap().high_water, Some(at(8)));
        // A full listing sets the mark to what it saw, and a refusal is remembered.
        s.record_contact_listing(
            "L",
            ContactListing::Full,
            Some(at(3)),
            Some(DateFilter::Refused),
            at(11),
        )
        .unwrap();
        let c = s.contact_cursor("L").unwrap();
        assert_eq!(c.high_water, Some(at(3)));
        assert_eq!(c.last_full_at, Some(at(11)));
        assert_eq!(c.date_filter, Some(DateFilter::Refused));
        assert_eq!(s.contact_cursor("other").unwrap(), ContactCursor::default());
    }

    #[test]
    fn identities_are_found_by_email_phone_and_anchor() {
        let s = Store::open_in_memory().unwrap();
        s.replace_contact_identities(
            "L",
            &[
                ident("c1", Some("ann@x.org"), Some("+3611"), Some("59")),
                ident("c2", Some("ann@x.org"), None, None),
                ident("c3", None, Some("+3622"), Some("60")),
            ],
        )
        .unwrap();
        s.upsert_contact_identities("M", &[ident("m1", Some("ann@x.org"), None, None)])
            .unwrap();
        let by = |k| s.contacts_by_identity("L", k).unwrap();
        assert_eq!(by(IdentityKey::Email("ann@x.org")), vec!["c1", "c2"]);
        assert_eq!(by(IdentityKey::Phone("+3622")), vec!["c3"]);
        assert_eq!(by(IdentityKey::Anchor("59")), vec!["c1"]);
        assert!(by(IdentityKey::Anchor("61")).is_empty());
        assert_eq!(
            s.contact_identity("L", "c3").unwrap(),
            Some(ident("c3", None, Some("+3622"), Some("60")))
        );

        // An incremental listing upserts: c1's email changed, c4 is new.
        s.upsert_contact_identities(
            "L",
            &[
                ident("c1", Some("ann@y.org"), Some("+3611"), Some("59")),
                ident("c4", None, None, Some("61")),
            ],
        )
        .unwrap();
        assert_eq!(by(IdentityKey::Email("ann@x.org")), vec!["c2"]);
        assert_eq!(by(IdentityKey::Email("ann@y.org")), vec!["c1"]);
        assert_eq!(by(IdentityKey::Anchor("61")), vec!["c4"]);
        assert!(s.remove_contact_identity("L", "c4").unwrap());
        assert!(!s.remove_contact_identity("L", "c4").unwrap());

        // A full listing replaces: what it did not list is gone, other locations untouched.
        assert_eq!(s.retain_contact_identities("L", ["c1", "c3"]).unwrap(), 1);
        assert_eq!(s.contact_identity_count("L").unwrap(), 2);
        assert!(by(IdentityKey::Email("ann@x.org")).is_empty());
        s.replace_contact_identities("L", &[ident("c9", None, None, Some("59"))])
            .unwrap();
        assert_eq!(by(IdentityKey::Anchor("59")), vec!["c9"]);
        assert_eq!(s.contact_identity_count("L").unwrap(), 1);
        assert_eq!(s.contact_identity_count("M").unwrap(), 1);
    }

    #[test]
    fn the_lookups_use_the_indexes() {
        let s = Store::open_in_memory().unwrap();
        for (col, ix) in [
            ("email", "ghl_identity_by_email"),
            ("phone", "ghl_identity_by_phone"),
            ("anchor", "ghl_identity_by_anchor"),
        ] {
            let plan: String = s
                .conn
                .query_row(
                    &format!(
                        "EXPLAIN QUERY PLAN SELECT target_id FROM ghl_contact_identity
                         WHERE location_id = 'L' AND {col} = 'x' ORDER BY target_id"
                    ),
                    [],
                    |r| r.get(3),
                )
                .unwrap();
            assert!(plan.contains(ix), "{col}: {plan}");
        }
    }
}
