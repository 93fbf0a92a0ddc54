//! Appointments of linked contacts, read from GHL into the state for reports; nothing is written
//! to GHL. Only contacts GHL shows as updated since the last read are asked (all with `--full`):
//! `GET /contacts/{id}/appointments` is one call per contact.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::context::{PassContext, lock};
use super::outcome::KindOutcome;
use super::snapshot::TargetStamps;
use crate::ghl::wire::Appointment as WireAppointment;
use crate::model::Kind;
use crate::store::{Appointment, LinkStatus};

/// Pure: the linked contacts to read — those updated after `since` (or with no update time),
/// every linked one when `since` is `None` (first run, `--full`). `linked` maps each linked
/// contact to the time the sync last recorded it: a contact whose latest update is the sync's
/// own write is not "changed" (otherwise every run after a big first run would read them all).
pub fn contacts_to_read(
    targets: &[(String, Option<DateTime<Utc>>)],
    linked: &HashMap<String, DateTime<Utc>>,
    since: Option<DateTime<Utc>>,
) -> Vec<String> {
    let mut out: Vec<String> = targets
        .iter()
        .filter(|(id, _)| linked.contains_key(id))
        .filter(|(id, updated)| match (since, *updated) {
            (Some(s), Some(u)) => u >= s && linked.get(id).is_none_or(|own| u > *own),
            _ => true,
        })
        .map(|(id, _)| id.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The stored form of one appointment.
pub fn to_stored(contact_id: &str, a: &WireAppointment) -> Option<Appointment> {
    Some(Appointment {
        contact_target_id: contact_id.to_string(),
        event_id: a.id.clone()?,
        start: a.start_time.map(|t| t.to_rfc3339()),
        end: a.end_time.map(|t| t.to_rfc3339()),
        status: a.appointment_status.clone().or_else(|| a.status.clone()),
        title: a.title.clone(),
    })
}

/// (upcoming, past) relative to `now`.
pub fn split_upcoming(list: &[Appointment], now: DateTime<Utc>) -> (u64, u64) {
    let mut up = 0;
    let mut past = 0;
    for a in list {
        let start = a
            .start
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        match start {
            Some(s) if s >= now => up += 1,
            Some(_) => past += 1,
            None => {}
        }
    }
    (up, past)
}

const CURSOR_SCOPE: &str = "contacts";

pub async fn reconcile(cx: &PassContext<'_>) -> anyhow::Result<KindOutcome> {
    let mut out = KindOutcome::default();
    let started = cx.started;
    let since = if cx.opts.full {
        None
    } else {
        lock(cx.store)
            .cursor(Kind::Appointment, CURSOR_SCOPE)?
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let kept_out = cx.kept_out().await?;
    let mut linked: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut link = |target: String, at: DateTime<Utc>| {
        let e = linked.entry(target).or_insert(at);
        *e = (*e).max(at);
    };
    // In a dry run, the links the contacts plan writes stand in for the state's, written now.
    let planned = cx.dry.contacts();
    lock(cx.store).each_link_head(Kind::Contact, &[], |l, _| {
        if l.status == LinkStatus::Active
            && !l.target_id.is_empty()
            && !planned.contains_key(&l.source_id)
            && !kept_out.contains(&l.source_id)
        {
            link(l.target_id, l.updated_at);
        }
        Ok(())
    })?;
    for p in planned.values().flatten() {
        link(p.target_id.clone(), Utc::now());
    }
    let target = cx.target().await?;
    // An incremental listing holds only the contacts updated since its bound: enough when
    // this kind's own cursor is no older; otherwise every contact is listed for it.
    let full;
    let target = match (target.since, since) {
        (Some(bound), Some(s)) if s >= bound => target,
        (None, _) => target,
        _ => {
            let listing = crate::reconcile::snapshot::read_target(
                cx.ghl,
                &crate::reconcile::snapshot::CustomFields::default(),
            )
            .await?;
            full = TargetStamps::from(&listing);
            &full
        }
    };
    let ids = contacts_to_read(&target.contacts, &linked, since);
    out.counts.unchanged = (linked.len() - ids.len().min(linked.len())) as u64;
    if cx.opts.dry_run {
        out.counts.deferred = ids.len() as u64;
        out.skipped_reads = ids.len() as u64;
        out.notes.push(format!(
            "Would read the appointments of {} contact(s).",
            ids.len()
        ));
        return Ok(out);
    }
    let results: Vec<(String, Result<Vec<WireAppointment>, crate::ghl::GhlError>)> =
        futures_util::stream::iter(ids.into_iter().map(|id| async move {
            let r = cx.ghl.contact_appointments(&id).await;
            (id, r)
        }))
        .buffer_unordered(cx.cfg.ghl.max_concurrency.max(1))
        .collect()
        .await;
    let mut stored = 0u64;
    {
        let s = lock(cx.store);
        for (id, r) in results {
            match r {
                Ok(list) => {
                    let list: Vec<Appointment> =
                        list.iter().filter_map(|a| to_stored(&id, a)).collect();
                    stored += list.len() as u64;
                    s.replace_appointments(&id, &list)?;
                    out.counts.updated += 1;
                }
                Err(e) => {
                    out.counts.failed += 1;
                    out.unfinished.insert(id.clone());
                    out.notes.push(format!(
                        "Appointments of contact {id} could not be read: {e}"
                    ));
                }
            }
        }
        if out.counts.failed == 0 {
            s.set_cursor(Kind::Appointment, CURSOR_SCOPE, &started.to_rfc3339())?;
        }
        let (up, past) = split_upcoming(&s.appointments()?, Utc::now());
        out.notes.push(format!(
            "Appointments: {} contact(s) read (counted as updated), {stored} appointment(s) found; {up} upcoming and {past} past on record.",
            out.counts.updated
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(id: &str, updated: Option<DateTime<Utc>>) -> (String, Option<DateTime<Utc>>) {
        (id.into(), updated)
    }

    #[test]
    fn only_linked_contacts_updated_since_the_last_read() {
        let d = |h| Utc.with_ymd_and_hms(2025, 1, 1, h, 0, 0).unwrap();
        let targets = [
            t("a", Some(d(1))),
            t("b", Some(d(5))),
            t("c", None),
            t("x", Some(d(9))),
        ];
        let mut linked: HashMap<String, DateTime<Utc>> =
            ["a", "b", "c"].map(|k| (k.to_string(), d(0))).into();
        assert_eq!(contacts_to_read(&targets, &linked, Some(d(3))), ["b", "c"]);
        assert_eq!(contacts_to_read(&targets, &linked, None), ["a", "b", "c"]);
        // b's latest update is the sync's own write: not a change.
        linked.insert("b".into(), d(6));
        assert_eq!(contacts_to_read(&targets, &linked, Some(d(3))), ["c"]);
    }

    #[test]
    fn upcoming_and_past() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let a = |start: &str| Appointment {
            contact_target_id: "c".into(),
            event_id: start.into(),
            start: Some(start.into()),
            end: None,
            status: None,
            title: None,
        };
        let list = [
            a("2025-02-01T00:00:00+00:00"),
            a("2024-02-01T00:00:00+00:00"),
        ];
        assert_eq!(split_upcoming(&list, now), (1, 1));
    }
}
