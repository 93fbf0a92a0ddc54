//! `explain <hotspot-id|email|phone|ghl-contact-id>`: what the state knows about one guest —
//! its contact links, every recorded item about it with its run, and its notes and tasks.
//! Reads the state only; calls neither API.

use crate::cli::{ExplainArgs, OutputFormat};
use crate::config::Config;
use crate::store::{GuestHistory, GuestKey, Store};

use super::{EXIT_OK, NotFound};

pub fn run(cfg: &Config, args: &ExplainArgs) -> anyhow::Result<u8> {
    let store = Store::open_read_only(&cfg.state.path)?;
    let key = GuestKey::parse(&args.guest, &cfg.contacts.default_country);
    let Some(mut found) = store.guest_history(&key, None)? else {
        return Err(NotFound::Guest(args.guest.clone()).into());
    };
    let privacy = cfg.report_personal_data();
    for e in &mut found.events {
        privacy.run_item(&mut e.item);
    }
    match args.format {
        OutputFormat::Text => print!("{}", to_text(&found)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&found.to_json())?),
    }
    Ok(EXIT_OK)
}

const TIME: &str = "%Y-%m-%d %H:%M:%S";

fn to_text(e: &GuestHistory) -> String {
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
            let completed = match GuestHistory::completed(l) {
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
