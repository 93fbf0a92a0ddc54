//! Read-only history of one guest and of one run's API calls: what `explain` and `calls` show.
//!
//! Nothing here writes. A guest is found by its contact link; everything recorded about it is
//! keyed either by its HotspotSystem id (contact run items) or by its GHL contact id (note and
//! task links and items carry it as `contact_id`).

use chrono::{DateTime, Utc};

use super::links::{COLUMNS as LINK_COLUMNS, from_row as link_from_row};
use super::runs::{CALL_COLUMNS, ITEM_COLUMNS, call_from_row, item_from_row};
use super::{ApiCall, Link, Result, RunItem, Store, parse_ts};
use crate::model::Kind;

/// What a guest is looked up by. The email and phone are already normalised the way the sync
/// stores them (lower-case email, E.164 phone), so that they compare equal to the stored values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestKey {
    /// As typed: a HotspotSystem id or a GHL contact id.
    pub id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// One recorded item about a guest, with the run it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestEvent {
    pub run_id: i64,
    pub run_started_at: DateTime<Utc>,
    pub dry_run: bool,
    pub item: RunItem,
}

/// Which of a run's API calls to list, and which page of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Only attempts that ended with an error class (including retried ones).
    pub failed: bool,
    pub status: Option<u16>,
    /// Case-sensitive substring of the (id-elided) path.
    pub path: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// A page of API calls and how many matched the filter in all.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPage {
    pub calls: Vec<ApiCall>,
    pub total: u64,
}

impl Store {
    /// Contact links (any status) whose HotspotSystem id or GHL id is `key.id`, or whose stored
    /// source email or phone equals the key's. One guest can have several (a customer and a
    /// subscriber sharing an email are one GHL contact with two links).
    pub fn find_guest_links(&self, key: &GuestKey) -> Result<Vec<Link>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM links
             WHERE kind = ?1 AND (source_id = ?2 OR target_id = ?2
                 OR (?3 IS NOT NULL AND json_extract(extra, '$.source_fields.email') = ?3)
                 OR (?4 IS NOT NULL AND json_extract(extra, '$.source_fields.phone') = ?4))
             ORDER BY source_id"
        ))?;
        let mut rows = stmt.query((Kind::Contact.as_str(), &key.id, &key.email, &key.phone))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(link_from_row(row)?);
        }
        Ok(out)
    }

    /// Links of `kind` (notes, tasks) attached to the GHL contact `contact_id`.
    pub fn links_of_contact(&self, kind: Kind, contact_id: &str) -> Result<Vec<Link>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM links
             WHERE kind = ?1 AND json_extract(extra, '$.contact_id') = ?2
             ORDER BY first_linked_at, source_id"
        ))?;
        let mut rows = stmt.query((kind.as_str(), contact_id))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(link_from_row(row)?);
        }
        Ok(out)
    }

    /// Every run item about the guest, oldest first: contact items by its HotspotSystem ids or
    /// GHL ids, and note or task items naming one of its GHL ids as `contact_id`.
    pub fn guest_events(
        &self,
        source_ids: &[&str],
        target_ids: &[&str],
    ) -> Result<Vec<GuestEvent>> {
        let sources = serde_json::to_string(source_ids)?;
        let targets = serde_json::to_string(target_ids)?;
        let item_columns: String = ITEM_COLUMNS
            .split(", ")
            .map(|c| format!("i.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {item_columns}, r.id, r.started_at, r.dry_run
             FROM run_items i JOIN runs r ON r.id = i.run_id
             WHERE (i.kind = ?1 AND (i.source_id IN (SELECT value FROM json_each(?2))
                                     OR i.target_id IN (SELECT value FROM json_each(?3))))
                OR (i.kind <> ?1 AND json_valid(i.detail)
                    AND json_extract(i.detail, '$.contact_id') IN (SELECT value FROM json_each(?3)))
             ORDER BY i.run_id, i.id"
        ))?;
        let mut rows = stmt.query((Kind::Contact.as_str(), sources, targets))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let started: String = row.get(8)?;
            out.push(GuestEvent {
                item: item_from_row(row)?,
                run_id: row.get(7)?,
                run_started_at: parse_ts("runs.started_at", &started)?,
                dry_run: row.get(9)?,
            });
        }
        Ok(out)
    }

    /// The API calls of run `run_id` that pass `filter`, in the order they were recorded.
    pub fn api_call_page(&self, run_id: i64, filter: &CallFilter) -> Result<CallPage> {
        const WHERE: &str = "run_id = ?1
             AND (?2 = 0 OR error_class IS NOT NULL)
             AND (?3 IS NULL OR status = ?3)
             AND (?4 IS NULL OR instr(path, ?4) > 0)";
        let params = (run_id, filter.failed, filter.status, filter.path.as_deref());
        let total: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM api_calls WHERE {WHERE}"),
            params,
            |r| r.get(0),
        )?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CALL_COLUMNS} FROM api_calls WHERE {WHERE} ORDER BY id LIMIT ?5 OFFSET ?6"
        ))?;
        let mut rows = stmt.query((
            run_id,
            filter.failed,
            filter.status,
            filter.path.as_deref(),
            filter.limit as i64,
            filter.offset as i64,
        ))?;
        let mut calls = Vec::new();
        while let Some(row) = rows.next()? {
            calls.push(call_from_row(row)?);
        }
        Ok(CallPage {
            calls,
            total: total as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{AuditRecord, ErrorClass};
    use crate::store::{ItemOutcome, MatchMethod};
    use serde_json::json;

    fn item(kind: Kind, source: &str, target: Option<&str>, detail: serde_json::Value) -> RunItem {
        RunItem {
            kind,
            source_id: source.into(),
            target_id: target.map(str::to_string),
            action: "update".into(),
            outcome: ItemOutcome::Applied,
            reason: Some("r".into()),
            detail,
        }
    }

    #[test]
    fn a_guest_is_found_by_id_email_or_phone_and_only_its_items_are_listed() {
        let store = Store::open_in_memory().unwrap();
        let mut l = Link::new(Kind::Contact, "c1", "G1", MatchMethod::Created);
        l.extra = json!({"source_fields": {"email": "ann@x.org", "phone": "+14155550100"}});
        store.upsert_link(&l).unwrap();
        let mut other = Link::new(Kind::Contact, "c2", "G2", MatchMethod::Email);
        other.extra = json!({"source_fields": {"email": "bob@x.org"}});
        store.upsert_link(&other).unwrap();
        let mut note = Link::new(Kind::Note, "tx:1", "N1", MatchMethod::Created);
        note.extra = json!({"contact_id": "G1"});
        store.upsert_link(&note).unwrap();

        let by = |id: &str, email: Option<&str>, phone: Option<&str>| {
            let key = GuestKey {
                id: id.into(),
                email: email.map(str::to_string),
                phone: phone.map(str::to_string),
            };
            store
                .find_guest_links(&key)
                .unwrap()
                .into_iter()
                .map(|l| l.source_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(by("c1", None, None), ["c1"]);
        assert_eq!(by("G1", None, None), ["c1"]);
        assert_eq!(by("x", Some("ann@x.org"), None), ["c1"]);
        assert_eq!(by("x", None, Some("+14155550100")), ["c1"]);
        assert!(by("x", Some("nobody@x.org"), None).is_empty());
        assert_eq!(store.links_of_contact(Kind::Note, "G1").unwrap().len(), 1);
        assert!(store.links_of_contact(Kind::Note, "G2").unwrap().is_empty());

        let run = store.start_run(&Kind::ALL, false, false).unwrap();
        store
            .insert_run_items(
                run,
                &[
                    item(Kind::Contact, "c1", Some("G1"), serde_json::Value::Null),
                    item(Kind::Contact, "c2", Some("G2"), serde_json::Value::Null),
                    item(Kind::Note, "tx:1", None, json!({"contact_id": "G1"})),
                    item(Kind::Note, "tx:2", None, json!({"contact_id": "G2"})),
                ],
            )
            .unwrap();
        let events = store.guest_events(&["c1"], &["G1"]).unwrap();
        let ids: Vec<&str> = events.iter().map(|e| e.item.source_id.as_str()).collect();
        assert_eq!(ids, ["c1", "tx:1"]);
        assert!(events.iter().all(|e| e.run_id == run));
    }

    #[test]
    fn api_calls_filter_by_failure_status_and_path_and_page() {
        let store = Store::open_in_memory().unwrap();
        let run = store.start_run(&Kind::ALL, false, false).unwrap();
        let rec = |path: &str, status: Option<u16>, class: Option<ErrorClass>| AuditRecord {
            api: "ghl".into(),
            method: "POST".into(),
            path: path.into(),
            status,
            attempt: 1,
            latency_ms: 3,
            error_class: class,
        };
        store
            .insert_api_calls(
                Some(run),
                &[
                    rec("/contacts/", Some(201), None),
                    rec(
                        "/contacts/{id}/notes",
                        Some(500),
                        Some(ErrorClass::Transient),
                    ),
                    rec("/contacts/{id}/notes", Some(201), None),
                    rec(
                        "/contacts/{id}/tasks",
                        Some(422),
                        Some(ErrorClass::Permanent),
                    ),
                ],
                Utc::now(),
            )
            .unwrap();
        let page = |f: CallFilter| {
            let p = store
                .api_call_page(run, &CallFilter { limit: 10, ..f })
                .unwrap();
            (
                p.total,
                p.calls
                    .iter()
                    .map(|c| c.record.status.unwrap())
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(page(CallFilter::default()), (4, vec![201, 500, 201, 422]));
        let failed = CallFilter {
            failed: true,
            ..CallFilter::default()
        };
        assert_eq!(page(failed), (2, vec![500, 422]));
        let status = CallFilter {
            status: Some(201),
            ..CallFilter::default()
        };
        assert_eq!(page(status), (2, vec![201, 201]));
        let path = CallFilter {
            path: Some("notes".into()),
            ..CallFilter::default()
        };
        assert_eq!(page(path), (2, vec![500, 201]));
        let second = store
            .api_call_page(
                run,
                &CallFilter {
                    limit: 2,
                    offset: 2,
                    ..CallFilter::default()
                },
            )
            .unwrap();
        assert_eq!(second.total, 4);
        assert_eq!(second.calls.len(), 2);
        assert_eq!(second.calls[1].record.status, Some(422));
    }
}
