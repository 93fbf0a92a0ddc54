//! The dashboard's HTML pages. Each takes the open store and returns a full document, rendered
//! through the templates under `templates/`, which escape every value they are given.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use askama::Template;
use chrono::{DateTime, Duration, Utc};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::PAGE_VALUE_CHARS;
use super::health::{self, HealthPolicy, human};
use crate::privacy::PersonalData;
use crate::report::html::{
    Series, badge, bar_chart, card, detail_html, empty, escape, load_recent, run_body, runs_chart,
    table, table_html,
};
use crate::report::{self, RunSummary};
use crate::store::dashboard::{DailyCount, RunItemRow};
use crate::store::{CallFilter, CallPage, GuestHistory, GuestKey, RunRecord, Store, StoreError};

/// The navigation: path and name of each page.
pub const NAV: [(&str, &str); 9] = [
    ("/", "Overview"),
    ("/runs", "Runs"),
    ("/contacts", "Contacts"),
    ("/notes", "Notes"),
    ("/tasks", "Tasks"),
    ("/appointments", "Appointments"),
    ("/guests", "Guests"),
    ("/calls", "API calls"),
    ("/errors", "Errors"),
];

/// Shown in every page's footer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How times are shown in tables.
const TIME: &str = "%Y-%m-%d %H:%M:%S";

/// Why a page could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot render the page: {0}")]
    Render(#[from] askama::Error),
}

/// A page whose body is markup built by the `report::html` helpers.
#[derive(Template)]
#[template(path = "dashboard/raw.html")]
struct RawPage<'a> {
    current: &'a str,
    title: &'a str,
    body: &'a str,
}

/// A page with the dashboard's navigation, `current` highlighted.
pub fn dashboard_page(current: &str, title: &str, body: &str) -> Result<String, Error> {
    Ok(RawPage {
        current,
        title,
        body,
    }
    .render()?)
}

fn run_mode(run: &RunRecord) -> &'static str {
    match (run.dry_run, run.full) {
        (true, _) => "dry run",
        (false, true) => "full",
        (false, false) => "incremental",
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn runs_table(runs: &[RunRecord]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            let s: RunSummary = serde_json::from_value(run.summary.clone()).unwrap_or_default();
            let sum =
                |f: &dyn Fn(&report::KindCounts) -> u64| -> u64 { s.kinds.values().map(f).sum() };
            let kinds: Vec<&str> = run.kinds.iter().map(|k| k.as_str()).collect();
            vec![
                format!("<a href=\"/runs/{0}\">#{0}</a>", run.id),
                escape(&fmt_time(run.started_at)),
                escape(
                    &run.finished_at
                        .map(|f| human((f - run.started_at).num_seconds()))
                        .unwrap_or_else(|| "—".into()),
                ),
                badge(run.status.as_str()),
                escape(run_mode(run)),
                escape(&kinds.join(", ")),
                if run.dry_run {
                    format!("{} planned", sum(&|c| c.writes()))
                } else {
                    sum(&|c| c.writes()).to_string()
                },
                sum(&|c| c.failed).to_string(),
                sum(&|c| c.conflicts).to_string(),
                sum(&|c| c.deferred).to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return empty("No run recorded yet: run `sync` first.");
    }
    table_html(
        &[
            "Run",
            "Started",
            "Took",
            "Status",
            "Mode",
            "Kinds",
            "Writes#",
            "Failed#",
            "Conflicts#",
            "Deferred#",
        ],
        &rows,
    )
}

/// `/`: health, summary cards, the runs chart and the latest runs.
pub fn overview(store: &Store, policy: &HealthPolicy, now: DateTime<Utc>) -> Result<String, Error> {
    let mut body = String::new();
    let h = health::evaluate(store, policy, now)?;
    if h.healthy {
        let _ = write!(
            body,
            "<div class=\"banner ok\" id=\"health\">{} Every scheduled job completed a run within {}.</div>",
            badge("healthy"),
            escape(&human(h.max_age_seconds as i64))
        );
    } else {
        let _ = write!(
            body,
            "<div class=\"banner bad\" id=\"health\">{} <ul>",
            badge("unhealthy")
        );
        for r in h.reasons() {
            let _ = write!(body, "<li>{}</li>", escape(&r));
        }
        body.push_str("</ul></div>");
    }

    let runs = store.runs(20)?;
    body.push_str("<div class=\"cards\">");
    match runs.first() {
        Some(last) => {
            let _ = write!(
                body,
                "<div class=\"card\"><div class=\"label\">Last run</div>\
                 <div class=\"value\"><a href=\"/runs/{0}\">#{0}</a> {1}</div>\
                 <div class=\"sub\">{2} ago</div></div>",
                last.id,
                badge(last.status.as_str()),
                escape(&human((now - last.started_at).num_seconds()))
            );
        }
        None => body.push_str(&card("Last run", "none", "run `sync` first")),
    }
    let last_ok = store.last_successful_run(None, false)?;
    body.push_str(&card(
        "Last successful run",
        &last_ok
            .as_ref()
            .map(|r| format!("#{}", r.id))
            .unwrap_or_else(|| "none".into()),
        &last_ok
            .as_ref()
            .map(|r| {
                format!(
                    "{} ago",
                    human((now - r.finished_at.unwrap_or(r.started_at)).num_seconds())
                )
            })
            .unwrap_or_default(),
    ));
    let mut active: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut parked_links = 0;
    for (kind, status, n) in store.link_counts()? {
        match status.as_str() {
            "active" => *active.entry(kind.as_str()).or_default() += n,
            "parked" => parked_links += n,
            _ => {}
        }
    }
    for (kind, label) in [
        ("contact", "Contacts linked"),
        ("note", "Notes synced"),
        ("task", "Tasks"),
    ] {
        body.push_str(&card(
            label,
            &active.get(kind).copied().unwrap_or(0).to_string(),
            "active links",
        ));
    }
    let parked = store.parked_conflicts()?.len();
    body.push_str(&card(
        "Parked conflicts",
        &parked.to_string(),
        &format!("{parked_links} parked links"),
    ));
    let quota = runs.iter().find_map(|r| {
        serde_json::from_value::<RunSummary>(r.summary.clone())
            .ok()
            .and_then(|s| s.ghl_daily_remaining)
    });
    body.push_str(&card(
        "GHL quota left",
        &quota.map(|q| q.to_string()).unwrap_or_else(|| "—".into()),
        "daily, at end of last run",
    ));
    body.push_str("</div>");

    body.push_str("<h2>Writes, failures and 429s over recent runs</h2>");
    body.push_str(&runs_chart(&load_recent(store, 20)?));
    body.push_str("<h2>Latest runs</h2>");
    body.push_str(&runs_table(&runs[..runs.len().min(10)]));

    body.push_str("<h2>Health checks</h2>");
    let rows: Vec<Vec<String>> = h
        .checks
        .iter()
        .map(|c| {
            vec![
                escape(&c.job),
                badge(if c.ok { "ok" } else { "failed" }),
                c.last_success_run
                    .map(|id| format!("<a href=\"/runs/{id}\">#{id}</a>"))
                    .unwrap_or_else(|| "—".into()),
                escape(c.last_success_at.as_deref().unwrap_or("—")),
                escape(&c.age_seconds.map(human).unwrap_or_else(|| "—".into())),
            ]
        })
        .collect();
    body.push_str(&table_html(
        &["Job", "State", "Last success", "Ended at", "Age"],
        &rows,
    ));
    dashboard_page("/", "Overview", &body)
}

/// `/runs`: the newest 100 runs.
pub fn runs(store: &Store) -> Result<String, Error> {
    let runs = store.runs(100)?;
    let body = format!("<h2>Runs</h2>{}", runs_table(&runs));
    dashboard_page("/runs", "Runs", &body)
}

/// Items of a run listed on its page (the JSON API pages through the rest).
pub const RUN_PAGE_ITEMS: u64 = 2_000;

/// `/runs/{id}`: the run's report; `None` when there is no such run.
pub fn run_detail(store: &Store, id: i64, personal: PersonalData) -> Result<Option<String>, Error> {
    // A page holds at most this many items whatever the size of the run.
    let window = report::ItemWindow {
        offset: 0,
        limit: Some(RUN_PAGE_ITEMS),
    };
    let Some(mut r) = report::load_window(store, id, window)? else {
        return Ok(None);
    };
    personal.report(&mut r);
    for i in &mut r.items {
        clip_text(&mut i.reason);
        clip_value(&mut i.detail);
    }
    let body = format!(
        "<h2>Run #{id} <span class=\"muted\">(<a href=\"/api/runs/{id}\">JSON</a> · \
         <a href=\"/calls?run={id}\">API calls</a>)</span></h2>{}",
        run_body(&r, 500)
    );
    Ok(Some(dashboard_page("/runs", &format!("Run {id}"), &body)?))
}

/// Every day from `since` to `now`, oldest first, so gaps show as empty bars.
fn days(since: DateTime<Utc>, now: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    let mut d = since.date_naive();
    while d <= now.date_naive() {
        out.push(d.format("%Y-%m-%d").to_string());
        d = d.succ_opt().unwrap_or(d);
        if out.len() > 400 {
            break;
        }
    }
    out
}

fn daily_section(
    counts: &[DailyCount],
    labels: &[String],
    group_title: &str,
    what: &str,
) -> String {
    const COLOURS: [&str; 6] = [
        "#2b6cb0", "#2f855a", "#d69e2e", "#805ad5", "#c53030", "#319795",
    ];
    let groups: BTreeSet<&str> = counts.iter().map(|c| c.group.as_str()).collect();
    let mut out = String::new();
    let mut series: Vec<Series<'_>> = Vec::new();
    if groups.len() <= COLOURS.len() {
        for (i, g) in groups.iter().enumerate() {
            series.push(Series {
                name: g,
                colour: COLOURS[i],
                values: labels
                    .iter()
                    .map(|d| {
                        counts
                            .iter()
                            .filter(|c| &c.day == d && c.group == *g)
                            .map(|c| c.count)
                            .sum()
                    })
                    .collect(),
            });
        }
    } else {
        // Too many groups to tell apart by colour: chart the daily total; the table splits it.
        series.push(Series {
            name: "total",
            colour: COLOURS[0],
            values: labels
                .iter()
                .map(|d| counts.iter().filter(|c| &c.day == d).map(|c| c.count).sum())
                .collect(),
        });
    }
    // Month-day labels: the year is in the tables below.
    let short: Vec<String> = labels
        .iter()
        .map(|d| d.get(5..).unwrap_or(d).to_string())
        .collect();
    out.push_str(&bar_chart(&format!("{what} per day"), &short, &series));

    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for c in counts {
        *totals.entry(c.group.as_str()).or_default() += c.count;
    }
    let _ = write!(
        out,
        "<h3>Total per {}</h3>",
        escape(&group_title.to_lowercase())
    );
    if totals.is_empty() {
        out.push_str(&empty("Nothing in this period."));
    } else {
        let rows: Vec<Vec<String>> = totals
            .iter()
            .map(|(g, n)| vec![g.to_string(), n.to_string()])
            .collect();
        out.push_str(&table(&[group_title, "Count#"], &rows));
        out.push_str("<h3>Per day</h3>");
        let rows: Vec<Vec<String>> = counts
            .iter()
            .map(|c| vec![c.day.clone(), c.group.clone(), c.count.to_string()])
            .collect();
        out.push_str(&table(&["Day", group_title, "Count#"], &rows));
    }
    out
}

/// `/contacts`: new contacts per day per location over the last `days` days.
pub fn contacts(store: &Store, now: DateTime<Utc>, n_days: u32) -> Result<String, Error> {
    let since = now - Duration::days(i64::from(n_days.saturating_sub(1)));
    let counts = store.new_contacts_per_day(since)?;
    let total: u64 = counts.iter().map(|c| c.count).sum();
    let mut body = format!(
        "<h2>New contacts per day, last {n_days} days</h2><div class=\"cards\">{}</div>",
        card("New contacts", &total.to_string(), "created or adopted")
    );
    body.push_str(&daily_section(
        &counts,
        &days(since, now),
        "Location",
        "New contacts",
    ));
    dashboard_page("/contacts", "Contacts", &body)
}

/// `/notes`: notes per day by transaction type over the last `days` days.
pub fn notes(store: &Store, now: DateTime<Utc>, n_days: u32) -> Result<String, Error> {
    let since = now - Duration::days(i64::from(n_days.saturating_sub(1)));
    let counts = store.notes_per_day(since)?;
    let total: u64 = counts.iter().map(|c| c.count).sum();
    let mut body = format!(
        "<h2>Notes per day by transaction type, last {n_days} days</h2><div class=\"cards\">{}</div>",
        card("Notes", &total.to_string(), "one per transaction")
    );
    body.push_str(&daily_section(&counts, &days(since, now), "Type", "Notes"));
    dashboard_page("/notes", "Notes", &body)
}

/// `/tasks`: onboarding-task completion per rule and the open tasks.
pub fn tasks(store: &Store, personal: PersonalData) -> Result<String, Error> {
    let progress = store.task_progress()?;
    let mut body = String::from("<h2>Onboarding tasks per rule</h2>");
    if progress.is_empty() {
        body.push_str(&empty("No task created yet."));
    } else {
        let rows: Vec<Vec<String>> = progress
            .iter()
            .map(|p| {
                let pct = if p.total == 0 {
                    0.0
                } else {
                    100.0 * p.completed as f64 / p.total as f64
                };
                vec![
                    p.rule.clone(),
                    p.total.to_string(),
                    p.completed.to_string(),
                    (p.total - p.completed.min(p.total)).to_string(),
                    p.edited.to_string(),
                    format!("{pct:.0}%"),
                ]
            })
            .collect();
        body.push_str(&table(
            &[
                "Rule",
                "Tasks#",
                "Completed#",
                "Open#",
                "Edited in GHL#",
                "Done#",
            ],
            &rows,
        ));
    }
    let mut open = store.open_tasks(200)?;
    personal.open_tasks(&mut open);
    let _ = write!(body, "<h2>Open tasks ({})</h2>", open.len());
    if open.is_empty() {
        body.push_str(&empty("No open task."));
    } else {
        let rows: Vec<Vec<String>> = open
            .iter()
            .map(|t| {
                vec![
                    t.due.clone().unwrap_or_else(|| "—".into()),
                    t.title.clone().unwrap_or_default(),
                    t.rule.clone(),
                    t.source_id.clone(),
                    t.target_id.clone(),
                ]
            })
            .collect();
        body.push_str(&table(
            &["Due", "Title", "Rule", "Source", "GHL task"],
            &rows,
        ));
    }
    dashboard_page("/tasks", "Tasks", &body)
}

/// `/appointments`: upcoming appointments of linked contacts.
pub fn appointments(
    store: &Store,
    now: DateTime<Utc>,
    personal: PersonalData,
) -> Result<String, Error> {
    let mut list = store.upcoming_appointments(now, 200)?;
    personal.appointments(&mut list);
    let mut body = format!("<h2>Upcoming appointments ({})</h2>", list.len());
    if list.is_empty() {
        body.push_str(&empty("No upcoming appointment."));
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|a| {
                vec![
                    a.start.clone().unwrap_or_default(),
                    a.end.clone().unwrap_or_default(),
                    a.title.clone().unwrap_or_default(),
                    a.status.clone().unwrap_or_default(),
                    a.contact_target_id.clone(),
                ]
            })
            .collect();
        body.push_str(&table(
            &["Start", "End", "Title", "Status", "GHL contact"],
            &rows,
        ));
    }
    dashboard_page("/appointments", "Appointments", &body)
}

fn item_rows(rows: &[RunItemRow]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                format!("<a href=\"/runs/{0}\">#{0}</a>", r.run_id),
                escape(r.item.kind.as_str()),
                format!("<span class=\"mono\">{}</span>", escape(&r.item.source_id)),
                format!(
                    "<span class=\"mono\">{}</span>",
                    escape(r.item.target_id.as_deref().unwrap_or("—"))
                ),
                escape(&r.item.action),
                escape(r.item.reason.as_deref().unwrap_or("")),
                detail_html(&r.item.detail),
            ]
        })
        .collect();
    table_html(
        &["Run", "Kind", "Source", "GHL", "Action", "Reason", "Detail"],
        &rows,
    )
}

/// `/errors`: parked conflicts (both values) and failures of the last 20 runs.
pub fn errors(store: &Store, personal: PersonalData) -> Result<String, Error> {
    let mut parked = store.parked_conflicts()?;
    let mut failures = store.recent_failures(20, 500)?;
    for rows in [&mut parked, &mut failures] {
        personal.run_item_rows(rows);
        for r in rows.iter_mut() {
            if let Some(reason) = &mut r.item.reason {
                clip_text(reason);
            }
            clip_value(&mut r.item.detail);
        }
    }
    let mut body = format!("<h2>Parked conflicts ({})</h2>", parked.len());
    if parked.is_empty() {
        body.push_str(&empty("No conflict waiting for a decision."));
    } else {
        body.push_str(&item_rows(&parked));
    }
    let _ = write!(
        body,
        "<h2>Failures in the last 20 runs ({})</h2>",
        failures.len()
    );
    if failures.is_empty() {
        body.push_str(&empty("No failure."));
    } else {
        body.push_str(&item_rows(&failures));
    }
    dashboard_page("/errors", "Errors", &body)
}

/// Cuts `s` to [`PAGE_VALUE_CHARS`] characters, saying how much was left out: a page lists up
/// to hundreds of values, and one huge value must not make every copy of it huge.
fn clip_text(s: &mut String) {
    if let Some((cut, _)) = s.char_indices().nth(PAGE_VALUE_CHARS) {
        let more = s[cut..].chars().count();
        s.truncate(cut);
        let _ = write!(
            s,
            "… ({more} more characters; the JSON API has the whole value)"
        );
    }
}

fn clip_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => clip_text(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(clip_value),
        serde_json::Value::Object(o) => o.values_mut().for_each(clip_value),
        _ => {}
    }
}

/// The 404 page.
pub fn not_found(what: &str) -> Result<String, Error> {
    dashboard_page(
        "",
        "Not found",
        &format!("<h2>Not found</h2>{}", empty(what)),
    )
}

/// Entries per list on the guest page (the JSON twin has the same bound): a guest seen every
/// day for years has thousands of notes, and a page is held whole while it is sent.
pub const GUEST_LIST_LIMIT: usize = 500;

/// The guest a typed value names, with each list cut at [`GUEST_LIST_LIMIT`]. With personal
/// data masked, only ids are looked up: otherwise anyone able to reach the page could test
/// whether an email address or a phone number belongs to a guest.
pub fn find_guest(
    store: &Store,
    typed: &str,
    personal: PersonalData,
    default_country: &str,
) -> Result<Option<GuestHistory>, StoreError> {
    let mut key = GuestKey::parse(typed, default_country);
    if personal == PersonalData::Mask {
        key = GuestKey {
            id: key.id,
            ..GuestKey::default()
        };
    }
    let Some(mut found) = store.guest_history(&key, Some(GUEST_LIST_LIMIT))? else {
        return Ok(None);
    };
    for e in &mut found.events {
        personal.run_item(&mut e.item);
        if let Some(reason) = &mut e.item.reason {
            clip_text(reason);
        }
        clip_value(&mut e.item.detail);
    }
    Ok(Some(found))
}

/// What the guest page answers.
enum GuestAnswer {
    /// Nothing typed yet.
    Ask,
    NotFound,
    Found(GuestHistory),
}

#[derive(Template)]
#[template(path = "dashboard/guest.html")]
struct GuestPage<'a> {
    current: &'a str,
    title: &'a str,
    query: &'a str,
    /// Whether emails and phones are looked up (personal data shown).
    by_personal: bool,
    answer: GuestAnswer,
    limit: usize,
}

/// `/guests?q=…`: the search form and, once something is typed, what the store recorded
/// about that guest (the answer of `explain`).
pub fn guest(
    store: &Store,
    typed: Option<&str>,
    personal: PersonalData,
    default_country: &str,
) -> Result<String, Error> {
    let query = typed.map(str::trim).unwrap_or("");
    let answer = if query.is_empty() {
        GuestAnswer::Ask
    } else {
        match find_guest(store, query, personal, default_country)? {
            Some(h) => GuestAnswer::Found(h),
            None => GuestAnswer::NotFound,
        }
    };
    Ok(GuestPage {
        current: "/guests",
        title: "Guests",
        query,
        by_personal: personal == PersonalData::Show,
        answer,
        limit: GUEST_LIST_LIMIT,
    }
    .render()?)
}

/// The query string that asks for `filter`'s page of `run`'s calls (all runs when `None`).
pub fn calls_query(run: Option<i64>, filter: &CallFilter) -> String {
    let mut q = String::new();
    if let Some(id) = run {
        let _ = write!(q, "run={id}&");
    }
    if filter.failed {
        q.push_str("failed=1&");
    }
    if let Some(s) = filter.status {
        let _ = write!(q, "status={s}&");
    }
    if let Some(p) = &filter.path {
        let _ = write!(q, "path={}&", utf8_percent_encode(p, NON_ALPHANUMERIC));
    }
    let _ = write!(q, "offset={}&limit={}", filter.offset, filter.limit);
    q
}

#[derive(Template)]
#[template(path = "dashboard/calls.html")]
struct CallsPage<'a> {
    current: &'a str,
    title: &'a str,
    run: Option<i64>,
    filter: &'a CallFilter,
    page: &'a CallPage,
    /// 1-based positions of the first and last call shown.
    first: u64,
    last: u64,
    this_query: String,
    prev: Option<String>,
    next: Option<String>,
}

/// `/calls`: one page of the API calls of `run` (every run when `None`) that pass `filter`,
/// with links to the neighbouring pages. The caller bounds `filter.limit`.
pub fn calls(store: &Store, run: Option<i64>, filter: &CallFilter) -> Result<String, Error> {
    let page = store.api_call_page(run, filter)?;
    let shown = page.calls.len() as u64;
    let offset = filter.offset as u64;
    let at = |offset: usize| CallFilter {
        offset,
        ..filter.clone()
    };
    let prev = (filter.offset > 0)
        .then(|| calls_query(run, &at(filter.offset.saturating_sub(filter.limit))));
    let next =
        (offset + shown < page.total).then(|| calls_query(run, &at(filter.offset + filter.limit)));
    Ok(CallsPage {
        current: "/calls",
        title: "API calls",
        run,
        filter,
        page: &page,
        first: if shown == 0 { 0 } else { offset + 1 },
        last: offset + shown,
        this_query: calls_query(run, filter),
        prev,
        next,
    }
    .render()?)
}
