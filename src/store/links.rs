//! Links: which GHL record a HotspotSystem record became, with the base hashes of the
//! three-way comparison and the tags the sync owns on it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row};

use super::{Result, Store, StoreError, parse_digest, parse_kind, parse_ts, ts};
use crate::model::{Digest, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkStatus {
    Active,
    /// The target was deleted in GHL (or the source gone and deleted); kept so that the record is
    /// not recreated and the last base stays available.
    Tombstoned,
    /// A conflict parked under policy `report`: nothing is written until it is resolved.
    Parked,
}

impl LinkStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Active => "active",
            LinkStatus::Tombstoned => "tombstoned",
            LinkStatus::Parked => "parked",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "active" => LinkStatus::Active,
            "tombstoned" => LinkStatus::Tombstoned,
            "parked" => LinkStatus::Parked,
            _ => {
                return Err(StoreError::BadValue {
                    column: "links.status",
                    value: s.to_string(),
                });
            }
        })
    }
}

/// How the link was established (reported, and used to tell our creations from adoptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchMethod {
    /// We created the target.
    Created,
    /// Matched by the GHL custom field holding the HotspotSystem id.
    HotspotIdField,
    Email,
    Phone,
    /// Configured mapping (e.g. `businesses.location_map`).
    Config,
    /// Matched by name (businesses).
    Name,
    /// A create answered with GHL's duplicate error; the existing record it named was adopted.
    DuplicateAdopted,
    /// Found again by its reference marker while resolving a pending journal intent.
    JournalRecovered,
}

impl MatchMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchMethod::Created => "created",
            MatchMethod::HotspotIdField => "hotspot_id_field",
            MatchMethod::Email => "email",
            MatchMethod::Phone => "phone",
            MatchMethod::Config => "config",
            MatchMethod::Name => "name",
            MatchMethod::DuplicateAdopted => "duplicate_adopted",
            MatchMethod::JournalRecovered => "journal_recovered",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "created" => MatchMethod::Created,
            "hotspot_id_field" => MatchMethod::HotspotIdField,
            "email" => MatchMethod::Email,
            "phone" => MatchMethod::Phone,
            "config" => MatchMethod::Config,
            "name" => MatchMethod::Name,
            "duplicate_adopted" => MatchMethod::DuplicateAdopted,
            "journal_recovered" => MatchMethod::JournalRecovered,
            _ => {
                return Err(StoreError::BadValue {
                    column: "links.match_method",
                    value: s.to_string(),
                });
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub kind: Kind,
    /// HotspotSystem id (for notes `type:transaction_id`, for tasks `rule:source_id`).
    pub source_id: String,
    /// GHL id.
    pub target_id: String,
    /// Base hash of the source's mapped fields after the last successful write or match.
    pub source_hash: Option<Digest>,
    /// Base hash of the target's mapped fields after the last successful write or match.
    pub target_hash: Option<Digest>,
    /// Tags the sync generated on this record; the only ones it may remove.
    pub owned_tags: BTreeSet<String>,
    pub status: LinkStatus,
    pub match_method: MatchMethod,
    pub created_by_us: bool,
    /// Kept from the first insert; later upserts do not change it.
    pub first_linked_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Per-kind extra state (tasks: `completed`, `edited`; businesses: member ids; ...).
    pub extra: serde_json::Value,
}

impl Link {
    /// A new active link with empty tags and extra, timestamps now.
    pub fn new(
        kind: Kind,
        source_id: impl Into<String>,
        target_id: impl Into<String>,
        match_method: MatchMethod,
    ) -> Self {
        let now = Utc::now();
        Link {
            kind,
            source_id: source_id.into(),
            target_id: target_id.into(),
            source_hash: None,
            target_hash: None,
            owned_tags: BTreeSet::new(),
            status: LinkStatus::Active,
            created_by_us: match_method == MatchMethod::Created,
            match_method,
            first_linked_at: now,
            updated_at: now,
            extra: serde_json::Value::Object(Default::default()),
        }
    }
}

/// A link row: the head's columns first, so that [`from_row`] reads the head as
/// [`head_from_row`] does, then the rest.
pub(super) const COLUMNS: &str = "source_id, target_id, source_hash, target_hash, owned_tags, \
                                  status, first_linked_at, updated_at, kind, match_method, \
                                  created_by_us, extra";

pub(super) fn from_row(row: &Row<'_>) -> Result<Link> {
    let head = head_from_row(row)?;
    let kind: String = row.get(8)?;
    let method: String = row.get(9)?;
    let extra: String = row.get(11)?;
    Ok(Link {
        kind: parse_kind(&kind)?,
        source_id: head.source_id,
        target_id: head.target_id,
        source_hash: head.source_hash,
        target_hash: head.target_hash,
        owned_tags: head.owned_tags,
        status: head.status,
        match_method: MatchMethod::parse(&method)?,
        created_by_us: row.get(10)?,
        first_linked_at: head.first_linked_at,
        updated_at: head.updated_at,
        extra: serde_json::from_str(&extra)?,
    })
}

/// A link without its `extra` JSON, for the passes over every link of a kind that need a few
/// values of it: at 100,000 contacts, decoding each row's `extra` (most of it the per-field
/// bases) would hold hundreds of megabytes to read a location id.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkHead {
    pub source_id: String,
    pub target_id: String,
    pub source_hash: Option<Digest>,
    pub target_hash: Option<Digest>,
    pub owned_tags: BTreeSet<String>,
    pub status: LinkStatus,
    pub first_linked_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The values at the `extra` paths asked for, in their order: a string as itself, a number as
/// its decimal text, an object or array as its JSON text, absent or null as `None`.
pub type ExtraValues = Vec<Option<String>>;

const HEAD_COLUMNS: &str = "source_id, target_id, source_hash, target_hash, owned_tags, status, \
                            first_linked_at, updated_at";

fn head_from_row(row: &Row<'_>) -> Result<LinkHead> {
    let owned: String = row.get(4)?;
    let status: String = row.get(5)?;
    let first: String = row.get(6)?;
    let updated: String = row.get(7)?;
    Ok(LinkHead {
        source_id: row.get(0)?,
        target_id: row.get(1)?,
        source_hash: parse_digest("links.source_hash", row.get(2)?)?,
        target_hash: parse_digest("links.target_hash", row.get(3)?)?,
        owned_tags: serde_json::from_str(&owned)?,
        status: LinkStatus::parse(&status)?,
        first_linked_at: parse_ts("links.first_linked_at", &first)?,
        updated_at: parse_ts("links.updated_at", &updated)?,
    })
}

fn extra_value(v: rusqlite::types::ValueRef<'_>) -> Option<String> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

impl Store {
    fn query_links(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Link>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(from_row(row)?);
        }
        Ok(out)
    }

    /// All links of `kind`, any status, ordered by source id.
    pub fn links(&self, kind: Kind) -> Result<Vec<Link>> {
        let mut out = Vec::new();
        self.each_link(kind, |l| {
            out.push(l);
            Ok(())
        })?;
        Ok(out)
    }

    /// Every link of `kind`, ordered by source id, handed to `f` one at a time: for callers
    /// that keep a digest of each, so that 100,000 decoded links are never held at once.
    pub fn each_link(&self, kind: Kind, mut f: impl FnMut(Link) -> Result<()>) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM links WHERE kind = ?1 ORDER BY source_id"
        ))?;
        let mut rows = stmt.query([kind.as_str()])?;
        while let Some(row) = rows.next()? {
            f(from_row(row)?)?;
        }
        Ok(())
    }

    /// Every link of `kind` without its `extra`, ordered by source id, with the values at
    /// `extra_paths` (SQLite JSON paths such as `$.location_id`), handed to `f` one at a time.
    /// SQLite reads the paths, so no link's `extra` is decoded here.
    pub fn each_link_head(
        &self,
        kind: Kind,
        extra_paths: &[&str],
        mut f: impl FnMut(LinkHead, ExtraValues) -> Result<()>,
    ) -> Result<()> {
        let values: String = (0..extra_paths.len())
            .map(|i| format!(", json_extract(extra, ?{})", i + 2))
            .collect();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {HEAD_COLUMNS}{values} FROM links WHERE kind = ?1 ORDER BY source_id"
        ))?;
        let kind_str = kind.as_str();
        let params: Vec<&dyn rusqlite::ToSql> = std::iter::once(&kind_str as &dyn rusqlite::ToSql)
            .chain(extra_paths.iter().map(|p| p as &dyn rusqlite::ToSql))
            .collect();
        let mut rows = stmt.query(params.as_slice())?;
        while let Some(row) = rows.next()? {
            let head = head_from_row(row)?;
            let extra = (0..extra_paths.len())
                .map(|i| row.get_ref(8 + i).map(extra_value))
                .collect::<rusqlite::Result<ExtraValues>>()?;
            f(head, extra)?;
        }
        Ok(())
    }

    /// GHL ids of the links of `kind` first made after `since`.
    pub fn targets_linked_since(
        &self,
        kind: Kind,
        since: DateTime<Utc>,
    ) -> Result<BTreeSet<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT target_id FROM links WHERE kind = ?1 AND first_linked_at > ?2",
        )?;
        let rows = stmt.query_map((kind.as_str(), ts(since)), |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn link(&self, kind: Kind, source_id: &str) -> Result<Option<Link>> {
        Ok(self
            .query_links(
                &format!("SELECT {COLUMNS} FROM links WHERE kind = ?1 AND source_id = ?2"),
                (kind.as_str(), source_id),
            )?
            .pop())
    }

    /// The link pointing at GHL record `target_id` (several sources may share a target, e.g.
    /// a customer and a subscriber with the same email: the first by source id is returned).
    pub fn link_by_target(&self, kind: Kind, target_id: &str) -> Result<Option<Link>> {
        Ok(self
            .query_links(
                &format!(
                    "SELECT {COLUMNS} FROM links WHERE kind = ?1 AND target_id = ?2 \
                     ORDER BY source_id LIMIT 1"
                ),
                (kind.as_str(), target_id),
            )?
            .pop())
    }

    /// Every link pointing at GHL record `target_id`, by source id.
    pub fn links_by_target(&self, kind: Kind, target_id: &str) -> Result<Vec<Link>> {
        self.query_links(
            &format!(
                "SELECT {COLUMNS} FROM links WHERE kind = ?1 AND target_id = ?2 ORDER BY source_id"
            ),
            (kind.as_str(), target_id),
        )
    }

    /// Every link of `kind` whose `extra` records `contact_id` (the GHL contact a note or task
    /// was written on), by source id.
    pub fn links_on_contact(&self, kind: Kind, contact_id: &str) -> Result<Vec<Link>> {
        self.query_links(
            &format!(
                "SELECT {COLUMNS} FROM links \
                 WHERE kind = ?1 AND json_extract(extra, '$.contact_id') = ?2 ORDER BY source_id"
            ),
            (kind.as_str(), contact_id),
        )
    }

    /// GHL ids of the active links of `kind` whose `extra` holds `flag = true`, ordered.
    pub fn targets_flagged(&self, kind: Kind, flag: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT target_id FROM links
             WHERE kind = ?1 AND status = 'active' AND json_extract(extra, '$.' || ?2) = 1
             ORDER BY target_id",
        )?;
        let rows = stmt.query_map((kind.as_str(), flag), |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes `flag` from the `extra` of the links of `kind` to `target_id`.
    pub fn clear_flag(&self, kind: Kind, target_id: &str, flag: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE links SET extra = json_remove(extra, '$.' || ?3)
             WHERE kind = ?1 AND target_id = ?2 AND json_extract(extra, '$.' || ?3) IS NOT NULL",
            (kind.as_str(), target_id, flag),
        )?;
        Ok(())
    }

    /// Inserts or replaces the link of `(kind, source_id)`; `first_linked_at` of an existing
    /// row is kept.
    pub fn upsert_link(&self, link: &Link) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO links ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (kind, source_id) DO UPDATE SET
                    target_id = excluded.target_id, source_hash = excluded.source_hash,
                    target_hash = excluded.target_hash, owned_tags = excluded.owned_tags,
                    status = excluded.status, match_method = excluded.match_method,
                    created_by_us = excluded.created_by_us, updated_at = excluded.updated_at,
                    extra = excluded.extra"
            ))?
            // In the order of COLUMNS.
            .execute((
                &link.source_id,
                &link.target_id,
                link.source_hash.map(|d| d.to_hex()),
                link.target_hash.map(|d| d.to_hex()),
                serde_json::to_string(&link.owned_tags)?,
                link.status.as_str(),
                ts(link.first_linked_at),
                ts(link.updated_at),
                link.kind.as_str(),
                link.match_method.as_str(),
                link.created_by_us,
                serde_json::to_string(&link.extra)?,
            ))?;
        Ok(())
    }

    /// Marks the link tombstoned (base kept). Returns false when there was no such link.
    pub fn tombstone(&self, kind: Kind, source_id: &str) -> Result<bool> {
        self.set_link_status(kind, source_id, LinkStatus::Tombstoned)
    }

    pub fn set_link_status(&self, kind: Kind, source_id: &str, status: LinkStatus) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE links SET status = ?3, updated_at = ?4 WHERE kind = ?1 AND source_id = ?2",
            (kind.as_str(), source_id, status.as_str(), ts(Utc::now())),
        )?;
        Ok(n > 0)
    }

    /// Replaces the per-kind extra state (e.g. a task's `completed`/`edited`).
    pub fn set_link_extra(
        &self,
        kind: Kind,
        source_id: &str,
        extra: &serde_json::Value,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE links SET extra = ?3, updated_at = ?4 WHERE kind = ?1 AND source_id = ?2",
            (
                kind.as_str(),
                source_id,
                serde_json::to_string(extra)?,
                ts(Utc::now()),
            ),
        )?;
        Ok(n > 0)
    }

    /// Removes a link entirely (rare: tombstones are preferred because they keep the base).
    pub fn delete_link(&self, kind: Kind, source_id: &str) -> Result<bool> {
        let n = self.conn.execute(
            "DELETE FROM links WHERE kind = ?1 AND source_id = ?2",
            (kind.as_str(), source_id),
        )?;
        Ok(n > 0)
    }

    /// Link counts per kind and status, for `status`.
    pub fn link_counts(&self) -> Result<Vec<(Kind, LinkStatus, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, status, count(*) FROM links GROUP BY kind, status ORDER BY kind, status",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let kind: String = row.get(0)?;
            let status: String = row.get(1)?;
            let n: i64 = row.get(2)?;
            out.push((parse_kind(&kind)?, LinkStatus::parse(&status)?, n as u64));
        }
        Ok(out)
    }

    /// Whether any link of `kind` exists: a first run (none) never infers deletions.
    pub fn has_links(&self, kind: Kind) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM links WHERE kind = ?1 LIMIT 1",
                [kind.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_head_carries_the_extra_values_asked_for_and_nothing_else() {
        let store = Store::open_in_memory().unwrap();
        let mut l = Link::new(Kind::Contact, "s1", "t1", MatchMethod::Email);
        l.extra = serde_json::json!({
            "location_id": "L1", "n": 7, "done": true, "park": {"reason": "conflict"},
            "source_fields": {"firstName": "Ann", "customFields.k": "v"}
        });
        l.owned_tags.insert("wifi".into());
        store.upsert_link(&l).unwrap();
        store
            .upsert_link(&Link::new(Kind::Note, "n1", "t9", MatchMethod::Created))
            .unwrap();
        let paths = [
            "$.location_id",
            "$.n",
            "$.done",
            "$.park",
            "$.source_fields.firstName",
            "$.source_fields.\"customFields.k\"",
            "$.missing",
        ];
        let mut seen = Vec::new();
        store
            .each_link_head(Kind::Contact, &paths, |head, extra| {
                seen.push((head, extra));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen.len(), 1, "links of the kind asked for only");
        let (head, extra) = &seen[0];
        assert_eq!(
            (head.source_id.as_str(), head.target_id.as_str()),
            ("s1", "t1")
        );
        assert_eq!(head.owned_tags, l.owned_tags);
        assert_eq!(head.status, LinkStatus::Active);
        let text = |i: usize| extra[i].as_deref();
        assert_eq!(text(0), Some("L1"));
        assert_eq!(text(1), Some("7"));
        assert_eq!(text(2), Some("1"), "a JSON true reads as 1");
        assert_eq!(text(3), Some(r#"{"reason":"conflict"}"#));
        assert_eq!(text(4), Some("Ann"));
        assert_eq!(text(5), Some("v"));
        assert_eq!(text(6), None);
    }
}
