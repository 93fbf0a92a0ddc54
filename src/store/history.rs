//! Read-only history of one guest and of one run's API calls: what `explain` and `calls` show.
//!
//! Nothing here writes. A guest is found by its contact link; everything recorded about it is
//! keyed either by its HotspotSystem id (contact run items) or by its GHL contact id (note and
//! task links and items carry it as `contact_id`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::links::{COLUMNS as LINK_COLUMNS, from_row as link_from_row};
use super::runs::{CALL_COLUMNS, ITEM_COLUMNS, call_from_row, item_from_row};
use super::{ApiCall, Link, Result, RunItem, Store, parse_ts};
use crate::model::{Kind, PhoneNormalizer, norm_email};

/// What a guest is looked up by. The email and phone are already normalised the way the sync
/// stores them (lower-case email, E.164 phone), so that they compare equal to the stored values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestKey {
    /// As typed: a HotspotSystem id or a GHL contact id.
    pub id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl GuestKey {
    /// The key a typed value is looked up by: always as an id, and as an email or a phone when
    /// it reads as one, normalised as the sync normalises what it stores.
    pub fn parse(typed: &str, default_country: &str) -> GuestKey {
        let typed = typed.trim();
        let email = if typed.contains('@') {
            norm_email(Some(typed))
        } else {
            None
        };
        let looks_like_phone = email.is_none()
            && typed.bytes().filter(u8::is_ascii_digit).count() >= 6
            && typed
                .bytes()
                .all(|b| b.is_ascii_digit() || b" +-().".contains(&b));
        let phone = if looks_like_phone {
            PhoneNormalizer::new(default_country)
                .unwrap_or_default()
                .normalize(Some(typed))
                .0
        } else {
            None
        };
        GuestKey {
            id: typed.to_string(),
            email,
            phone,
        }
    }

    /// Whether the key would also match by a personal value (email or phone), not only by id.
    pub fn is_personal(&self) -> bool {
        self.email.is_some() || self.phone.is_some()
    }
}

/// Everything recorded about one guest: what `explain` and the dashboard's guest page show.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestHistory {
    pub contacts: Vec<Link>,
    /// Oldest first; when `truncated`, the newest ones.
    pub events: Vec<GuestEvent>,
    pub notes: Vec<Link>,
    pub tasks: Vec<Link>,
    /// Some list was cut at the limit the caller gave.
    pub truncated: bool,
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
    /// At most `limit` of them (`None`: all).
    pub fn find_guest_links(&self, key: &GuestKey, limit: Option<usize>) -> Result<Vec<Link>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM links
             WHERE kind = ?1 AND (source_id = ?2 OR target_id = ?2
                 OR (?3 IS NOT NULL AND json_extract(extra, '$.source_fields.email') = ?3)
                 OR (?4 IS NOT NULL AND json_extract(extra, '$.source_fields.phone') = ?4))
             ORDER BY source_id LIMIT ?5"
        ))?;
        let mut rows = stmt.query((
            Kind::Contact.as_str(),
            &key.id,
            &key.email,
            &key.phone,
            sql_limit(limit),
        ))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(link_from_row(row)?);
        }
        Ok(out)
    }

    /// Links of `kind` (notes, tasks) attached to the GHL contact `contact_id`, at most
    /// `limit` of them (`None`: all).
    pub fn links_of_contact(
        &self,
        kind: Kind,
        contact_id: &str,
        limit: Option<usize>,
    ) -> Result<Vec<Link>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM links
             WHERE kind = ?1 AND json_extract(extra, '$.contact_id') = ?2
             ORDER BY first_linked_at, source_id LIMIT ?3"
        ))?;
        let mut rows = stmt.query((kind.as_str(), contact_id, sql_limit(limit)))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(link_from_row(row)?);
        }
        Ok(out)
    }

    /// Every run item about the guest, oldest first: contact items by its HotspotSystem ids or
    /// GHL ids, and note or task items naming one of its GHL ids as `contact_id`. With a
    /// `limit`, the newest `limit` of them (still oldest first).
    pub fn guest_events(
        &self,
        source_ids: &[&str],
        target_ids: &[&str],
        limit: Option<usize>,
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
             ORDER BY i.run_id DESC, i.id DESC LIMIT ?4"
        ))?;
        let mut rows = stmt.query((Kind::Contact.as_str(), sources, targets, sql_limit(limit)))?;
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
        out.reverse();
        Ok(out)
    }

    /// Everything recorded about the guest `key` names, each list cut at `limit` (`None`: all);
    /// `None` when no contact link matches.
    pub fn guest_history(
        &self,
        key: &GuestKey,
        limit: Option<usize>,
    ) -> Result<Option<GuestHistory>> {
        // One more than shown tells whether a list was cut.
        let probe = limit.map(|n| n + 1);
        let mut truncated = false;
        let mut cut = |v: &mut Vec<_>| {
            if let Some(n) = limit
                && v.len() > n
            {
                v.truncate(n);
                truncated = true;
            }
        };
        let mut contacts = self.find_guest_links(key, probe)?;
        if contacts.is_empty() {
            return Ok(None);
        }
        cut(&mut contacts);
        let sources: Vec<&str> = contacts.iter().map(|l| l.source_id.as_str()).collect();
        let mut targets: Vec<&str> = contacts.iter().map(|l| l.target_id.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        let mut events = self.guest_events(&sources, &targets, probe)?;
        if let Some(n) = limit
            && events.len() > n
        {
            // The newest `n`: drop from the old end.
            events.drain(..events.len() - n);
            truncated = true;
        }
        let mut notes = Vec::new();
        let mut tasks = Vec::new();
        for t in &targets {
            notes.extend(self.links_of_contact(Kind::Note, t, probe)?);
            tasks.extend(self.links_of_contact(Kind::Task, t, probe)?);
        }
        let mut cut = |v: &mut Vec<_>| {
            if let Some(n) = limit
                && v.len() > n
            {
                v.truncate(n);
                truncated = true;
            }
        };
        cut(&mut notes);
        cut(&mut tasks);
        Ok(Some(GuestHistory {
            contacts,
            events,
            notes,
            tasks,
            truncated,
        }))
    }

    /// The API calls of run `run` that pass `filter`, in the order they were recorded; of all
    /// runs (`None`), newest first.
    pub fn api_call_page(&self, run: Option<i64>, filter: &CallFilter) -> Result<CallPage> {
        // Two statements rather than `?1 IS NULL OR ...`, which would keep SQLite from using
        // the run's index, or from walking the ids backwards for the newest page.
        let (by_run, order) = match run {
            Some(_) => ("run_id = ?1", "id"),
            None => ("?1 IS NULL", "id DESC"),
        };
        let filters = format!(
            "{by_run}
             AND (?2 = 0 OR error_class IS NOT NULL)
             AND (?3 IS NULL OR status = ?3)
             AND (?4 IS NULL OR instr(path, ?4) > 0)"
        );
        let params = (run, filter.failed, filter.status, filter.path.as_deref());
        let total: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM api_calls WHERE {filters}"),
            params,
            |r| r.get(0),
        )?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CALL_COLUMNS} FROM api_calls WHERE {filters}
             ORDER BY {order} LIMIT ?5 OFFSET ?6"
        ))?;
        let mut rows = stmt.query((
            run,
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

/// SQLite's LIMIT: -1 is none.
fn sql_limit(limit: Option<usize>) -> i64 {
    limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// One API call attempt as `calls --format json` and `/api/calls` give it.
pub fn call_json(c: &ApiCall) -> Value {
    let r = &c.record;
    json!({
        "at": c.at.to_rfc3339(),
        "run_id": c.run_id,
        "api": r.api,
        "method": r.method,
        "path": r.path,
        "status": r.status,
        "attempt": r.attempt,
        "latency_ms": r.latency_ms,
        "error_class": r.error_class,
        "message": r.message,
    })
}

fn link_json(l: &Link) -> Value {
    json!({
        "source_id": l.source_id,
        "target_id": l.target_id,
        "status": l.status.as_str(),
        "match_method": l.match_method.as_str(),
        "created_by_us": l.created_by_us,
        "first_linked_at": l.first_linked_at.to_rfc3339(),
        "updated_at": l.updated_at.to_rfc3339(),
    })
}

impl GuestHistory {
    /// Whether a note's or task's link says it is completed (`None`: not recorded).
    pub fn completed(l: &Link) -> Option<bool> {
        l.extra.get("completed").and_then(Value::as_bool)
    }

    /// The JSON of `explain --format json` and `/api/guests`.
    pub fn to_json(&self) -> Value {
        let child = |l: &Link| {
            let mut v = link_json(l);
            if let Some(done) = Self::completed(l) {
                v["completed"] = json!(done);
            }
            v
        };
        json!({
            "contacts": self.contacts.iter().map(link_json).collect::<Vec<_>>(),
            "history": self.events.iter().map(|ev| json!({
                "run_id": ev.run_id,
                "run_started_at": ev.run_started_at.to_rfc3339(),
                "dry_run": ev.dry_run,
                "kind": ev.item.kind.as_str(),
                "source_id": ev.item.source_id,
                "target_id": ev.item.target_id,
                "action": ev.item.action,
                "outcome": ev.item.outcome.as_str(),
                "reason": ev.item.reason,
                "detail": ev.item.detail,
            })).collect::<Vec<_>>(),
            "notes": self.notes.iter().map(child).collect::<Vec<_>>(),
            "tasks": self.tasks.iter().map(child).collect::<Vec<_>>(),
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
                .find_guest_links(&key, None)
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
        assert_eq!(
            store
                .links_of_contact(Kind::Note, "G1", None)
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .links_of_contact(Kind::Note, "G2", None)
                .unwrap()
                .is_empty()
        );

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
        let events = store.guest_events(&["c1"], &["G1"], None).unwrap();
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
            message: None,
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
                .api_call_page(Some(run), &CallFilter { limit: 10, ..f })
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
                Some(run),
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
        // Every run: newest first.
        let every = store
            .api_call_page(
                None,
                &CallFilter {
                    limit: 10,
                    ..CallFilter::default()
                },
            )
            .unwrap();
        let statuses: Vec<_> = every
            .calls
            .iter()
            .map(|c| c.record.status.unwrap())
            .collect();
        assert_eq!((every.total, statuses), (4, vec![422, 201, 500, 201]));
    }

    #[test]
    fn typed_values_are_read_as_id_email_or_phone() {
        let k = GuestKey::parse(" Ann@Example.ORG ", "US");
        assert_eq!(k.email.as_deref(), Some("ann@example.org"));
        assert_eq!(k.phone, None);
        let k = GuestKey::parse("(415) 555-0100", "US");
        assert_eq!(k.phone.as_deref(), Some("+14155550100"));
        let k = GuestKey::parse("c0042", "US");
        assert_eq!((k.email, k.phone), (None, None));
        assert_eq!(k.id, "c0042");
    }

    #[test]
    fn a_guest_history_is_cut_at_the_limit_keeping_the_newest_items() {
        let store = Store::open_in_memory().unwrap();
        store
            .upsert_link(&Link::new(Kind::Contact, "c1", "G1", MatchMethod::Created))
            .unwrap();
        for n in 0..3 {
            let mut note = Link::new(
                Kind::Note,
                format!("tx:{n}"),
                format!("N{n}"),
                MatchMethod::Created,
            );
            note.extra = json!({"contact_id": "G1"});
            store.upsert_link(&note).unwrap();
        }
        let mut runs = Vec::new();
        for _ in 0..3 {
            let run = store.start_run(&Kind::ALL, false, false).unwrap();
            store
                .insert_run_items(
                    run,
                    &[item(
                        Kind::Contact,
                        "c1",
                        Some("G1"),
                        serde_json::Value::Null,
                    )],
                )
                .unwrap();
            runs.push(run);
        }
        let key = GuestKey {
            id: "c1".into(),
            ..GuestKey::default()
        };
        let all = store.guest_history(&key, None).unwrap().unwrap();
        assert_eq!(
            (all.events.len(), all.notes.len(), all.truncated),
            (3, 3, false)
        );
        let cut = store.guest_history(&key, Some(2)).unwrap().unwrap();
        let event_runs: Vec<i64> = cut.events.iter().map(|e| e.run_id).collect();
        assert_eq!(event_runs, runs[1..], "the newest two, oldest first");
        assert_eq!(cut.notes.len(), 2);
        assert!(cut.truncated);
        let exact = store.guest_history(&key, Some(3)).unwrap().unwrap();
        assert!(!exact.truncated, "a list of exactly the limit is whole");
        assert!(
            store
                .guest_history(
                    &GuestKey {
                        id: "nobody".into(),
                        ..GuestKey::default()
                    },
                    Some(2)
                )
                .unwrap()
                .is_none()
        );
    }
}
