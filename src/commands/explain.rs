//! `explain <hotspot-id|email|phone|ghl-contact-id>`: what the state knows about one guest —
//! its contact links, every recorded item about it with its run, and its notes and tasks.
//! Reads the state only; calls neither API.

use serde_json::{Value, json};

use crate::cli::{ExplainArgs, OutputFormat};
use crate::config::Config;
use crate::model::{Kind, PhoneNormalizer, norm_email};
use crate::store::{GuestEvent, GuestKey, Link, Store};

use super::{EXIT_OK, NotFound};

/// Everything shown about one guest.
struct Explained {
    contacts: Vec<Link>,
    events: Vec<GuestEvent>,
    notes: Vec<Link>,
    tasks: Vec<Link>,
}

pub fn run(cfg: &Config, args: &ExplainArgs) -> anyhow::Result<u8> {
    let store = Store::open_read_only(&cfg.state.path)?;
    let key = guest_key(&args.guest, &cfg.contacts.default_country);
    let Some(mut found) = explain(&store, &key)? else {
        return Err(NotFound::Guest(args.guest.clone()).into());
    };
    let privacy = cfg.report_personal_data();
    for e in &mut found.events {
        privacy.run_item(&mut e.item);
    }
    match args.format {
        OutputFormat::Text => print!("{}", to_text(&found)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&to_json(&found))?),
    }
    Ok(EXIT_OK)
}

/// The key a typed value is looked up by: always as an id, and as an email or a phone when it
/// reads as one, normalised as the sync normalises what it stores.
fn guest_key(typed: &str, default_country: &str) -> GuestKey {
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

fn explain(store: &Store, key: &GuestKey) -> anyhow::Result<Option<Explained>> {
    let contacts = store.find_guest_links(key)?;
    if contacts.is_empty() {
        return Ok(None);
    }
    let sources: Vec<&str> = contacts.iter().map(|l| l.source_id.as_str()).collect();
    let mut targets: Vec<&str> = contacts.iter().map(|l| l.target_id.as_str()).collect();
    targets.sort_unstable();
    targets.dedup();
    let events = store.guest_events(&sources, &targets)?;
    let mut notes = Vec::new();
    let mut tasks = Vec::new();
    for t in &targets {
        notes.extend(store.links_of_contact(Kind::Note, t)?);
        tasks.extend(store.links_of_contact(Kind::Task, t)?);
    }
    Ok(Some(Explained {
        contacts,
        events,
        notes,
        tasks,
    }))
}

const TIME: &str = "%Y-%m-%d %H:%M:%S";

fn to_text(e: &Explained) -> String {
    let mut out = String::new();
    for l in &e.contacts {
        out.push_str(&format!(
            "Guest {} -> GHL contact {}\n  link {}, matched by {}{}, first linked {}, last updated {}\n",
            l.source_id,
            l.target_id,
            l.status.as_str(),
            l.match_method.as_str(),
            if l.created_by_us {
                " (created by the sync)"
            } else {
                ""
            },
            l.first_linked_at.format(TIME),
            l.updated_at.format(TIME),
        ));
    }
    out.push_str(&format!(
        "\nHistory ({} recorded item(s)):\n",
        e.events.len()
    ));
    if e.events.is_empty() {
        out.push_str("  nothing recorded beyond the link (applied writes of notes and tasks are their links below)\n");
    }
    for ev in &e.events {
        let i = &ev.item;
        out.push_str(&format!(
            "  run #{} {}{}  {} {} {} {}: {}\n",
            ev.run_id,
            ev.run_started_at.format(TIME),
            if ev.dry_run { " (dry run)" } else { "" },
            i.kind.as_str(),
            if i.source_id.is_empty() {
                "-"
            } else {
                &i.source_id
            },
            i.action,
            i.outcome.as_str(),
            i.reason.as_deref().unwrap_or("-"),
        ));
    }
    for (title, links) in [("Notes", &e.notes), ("Tasks", &e.tasks)] {
        out.push_str(&format!("\n{title} ({}):\n", links.len()));
        for l in links {
            let completed = match l.extra.get("completed").and_then(Value::as_bool) {
                Some(true) => ", completed",
                Some(false) => ", open",
                None => "",
            };
            out.push_str(&format!(
                "  {} -> {}  {}{completed}, first linked {}\n",
                l.source_id,
                l.target_id,
                l.status.as_str(),
                l.first_linked_at.format(TIME),
            ));
        }
    }
    out
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

fn to_json(e: &Explained) -> Value {
    let child = |l: &Link| {
        let mut v = link_json(l);
        if let Some(done) = l.extra.get("completed").and_then(Value::as_bool) {
            v["completed"] = json!(done);
        }
        v
    };
    json!({
        "contacts": e.contacts.iter().map(link_json).collect::<Vec<_>>(),
        "history": e.events.iter().map(|ev| json!({
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
        "notes": e.notes.iter().map(child).collect::<Vec<_>>(),
        "tasks": e.tasks.iter().map(child).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_are_read_as_id_email_or_phone() {
        let k = guest_key(" Ann@Example.ORG ", "US");
        assert_eq!(k.email.as_deref(), Some("ann@example.org"));
        assert_eq!(k.phone, None);
        let k = guest_key("(415) 555-0100", "US");
        assert_eq!(k.phone.as_deref(), Some("+14155550100"));
        let k = guest_key("c0042", "US");
        assert_eq!((k.email, k.phone), (None, None));
        assert_eq!(k.id, "c0042");
    }
}
