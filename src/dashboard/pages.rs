//! The dashboard's HTML pages. Each takes the open store and returns a full document, rendered
//! through the templates under `templates/dashboard/`, which escape every value they print.
//! The functions here gather and shape what a page shows; the markup is in the templates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use askama::Template;
use chrono::{DateTime, Duration, Utc};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::PAGE_VALUE_CHARS;
use super::health::{self, HealthCheck, HealthPolicy, human};
use crate::privacy::PersonalData;
use crate::report::html::{Chart, RunView, Series, bar_chart, load_recent, run_mode, runs_chart};
use crate::report::{self, RunSummary};
use crate::store::dashboard::{DailyCount, OpenTask, RunItemRow, TaskProgress};
use crate::store::{
    Appointment, CallFilter, CallPage, GuestHistory, GuestKey, RunRecord, Store, StoreError,
};

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

/// How a message page shows its text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// A plain paragraph (an error to read).
    Plain,
    /// A muted line (nothing to show).
    Quiet,
}

#[derive(Template)]
#[template(path = "dashboard/message.html")]
struct MessagePage<'a> {
    current: &'a str,
    title: &'a str,
    heading: &'a str,
    text: &'a str,
    tone: Tone,
}

/// A page that only says something: `heading`, then `text`.
pub fn message(title: &str, heading: &str, text: &str, tone: Tone) -> Result<String, Error> {
    Ok(MessagePage {
        current: "",
        title,
        heading,
        text,
        tone,
    }
    .render()?)
}

/// The 404 page.
pub fn not_found(what: &str) -> Result<String, Error> {
    message("Not found", "Not found", what, Tone::Quiet)
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// One line of a runs table.
struct RunRow {
    id: i64,
    started: String,
    took: String,
    status: &'static str,
    mode: &'static str,
    kinds: String,
    writes: String,
    failed: u64,
    conflicts: u64,
    deferred: u64,
}

impl RunRow {
    fn new(run: &RunRecord) -> Self {
        let s: RunSummary = serde_json::from_value(run.summary.clone()).unwrap_or_default();
        let sum = |f: &dyn Fn(&report::KindCounts) -> u64| -> u64 { s.kinds.values().map(f).sum() };
        let kinds: Vec<&str> = run.kinds.iter().map(|k| k.as_str()).collect();
        let writes = sum(&|c| c.writes());
        RunRow {
            id: run.id,
            started: fmt_time(run.started_at),
            took: run
                .finished_at
                .map(|f| human((f - run.started_at).num_seconds()))
                .unwrap_or_else(|| "—".into()),
            status: run.status.as_str(),
            // The runs table says "dry run" whether or not the dry run was full.
            mode: if run.dry_run {
                "dry run"
            } else {
                run_mode(false, run.full)
            },
            kinds: kinds.join(", "),
            writes: if run.dry_run {
                format!("{writes} planned")
            } else {
                writes.to_string()
            },
            failed: sum(&|c| c.failed),
            conflicts: sum(&|c| c.conflicts),
            deferred: sum(&|c| c.deferred),
        }
    }
}

/// The overview's "Last run" card.
struct LastRun {
    id: i64,
    status: &'static str,
    ago: String,
}

/// One line of the health checks table.
struct CheckRow {
    check: HealthCheck,
    age: String,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage<'a> {
    current: &'a str,
    title: &'a str,
    healthy: bool,
    max_age: String,
    reasons: Vec<String>,
    last: Option<LastRun>,
    last_ok: String,
    last_ok_ago: String,
    linked: Vec<(&'static str, String)>,
    parked: String,
    parked_links: String,
    quota: String,
    chart: Option<Chart>,
    runs: Vec<RunRow>,
    checks: Vec<CheckRow>,
}

/// `/`: health, summary cards, the runs chart and the latest runs.
pub fn overview(store: &Store, policy: &HealthPolicy, now: DateTime<Utc>) -> Result<String, Error> {
    let h = health::evaluate(store, policy, now)?;
    let runs = store.runs(20)?;
    let last_ok = store.last_successful_run(None, false)?;
    let mut active: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut parked_links = 0;
    for (kind, status, n) in store.link_counts()? {
        match status.as_str() {
            "active" => *active.entry(kind.as_str()).or_default() += n,
            "parked" => parked_links += n,
            _ => {}
        }
    }
    let linked = [
        ("contact", "Contacts linked"),
        ("note", "Notes synced"),
        ("task", "Tasks"),
    ]
    .into_iter()
    .map(|(kind, label)| (label, active.get(kind).copied().unwrap_or(0).to_string()))
    .collect();
    let quota = runs.iter().find_map(|r| {
        serde_json::from_value::<RunSummary>(r.summary.clone())
            .ok()
            .and_then(|s| s.ghl_daily_remaining)
    });
    Ok(OverviewPage {
        current: "/",
        title: "Overview",
        healthy: h.healthy,
        max_age: human(h.max_age_seconds as i64),
        reasons: h.reasons(),
        last: runs.first().map(|r| LastRun {
            id: r.id,
            status: r.status.as_str(),
            ago: human((now - r.started_at).num_seconds()),
        }),
        last_ok: last_ok
            .as_ref()
            .map(|r| format!("#{}", r.id))
            .unwrap_or_else(|| "none".into()),
        last_ok_ago: last_ok
            .as_ref()
            .map(|r| {
                format!(
                    "{} ago",
                    human((now - r.finished_at.unwrap_or(r.started_at)).num_seconds())
                )
            })
            .unwrap_or_default(),
        linked,
        parked: store.parked_conflicts()?.len().to_string(),
        parked_links: format!("{parked_links} parked links"),
        quota: quota.map(|q| q.to_string()).unwrap_or_else(|| "—".into()),
        chart: runs_chart(&load_recent(store, 20)?),
        runs: runs.iter().take(10).map(RunRow::new).collect(),
        checks: h
            .checks
            .iter()
            .map(|c| CheckRow {
                check: c.clone(),
                age: c.age_seconds.map(human).unwrap_or_else(|| "—".into()),
            })
            .collect(),
    }
    .render()?)
}

#[derive(Template)]
#[template(path = "dashboard/runs.html")]
struct RunsPage<'a> {
    current: &'a str,
    title: &'a str,
    runs: Vec<RunRow>,
}

/// `/runs`: the newest 100 runs.
pub fn runs(store: &Store) -> Result<String, Error> {
    Ok(RunsPage {
        current: "/runs",
        title: "Runs",
        runs: store.runs(100)?.iter().map(RunRow::new).collect(),
    }
    .render()?)
}

/// Items of a run listed on its page (the JSON API pages through the rest).
pub const RUN_PAGE_ITEMS: u64 = 2_000;

/// Items per section of a run's page.
const RUN_PAGE_SECTION_ITEMS: usize = 500;

#[derive(Template)]
#[template(path = "dashboard/run.html")]
struct RunPage<'a> {
    current: &'a str,
    title: &'a str,
    run: RunView<'a>,
}

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
    let title = format!("Run {id}");
    Ok(Some(
        RunPage {
            current: "/runs",
            title: &title,
            run: RunView::new(&r, RUN_PAGE_SECTION_ITEMS),
        }
        .render()?,
    ))
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

/// A chart of `counts` per day over `labels`, one series per group (or the daily total when
/// there are too many groups to tell apart by colour).
fn daily_chart(counts: &[DailyCount], labels: &[String], what: &str) -> Option<Chart> {
    const COLOURS: [&str; 6] = [
        "#2b6cb0", "#2f855a", "#d69e2e", "#805ad5", "#c53030", "#319795",
    ];
    let groups: BTreeSet<&str> = counts.iter().map(|c| c.group.as_str()).collect();
    let series: Vec<Series<'_>> = if groups.len() <= COLOURS.len() {
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| Series {
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
            })
            .collect()
    } else {
        vec![Series {
            name: "total",
            colour: COLOURS[0],
            values: labels
                .iter()
                .map(|d| counts.iter().filter(|c| &c.day == d).map(|c| c.count).sum())
                .collect(),
        }]
    };
    // Month-day labels: the year is in the tables below.
    let short: Vec<String> = labels
        .iter()
        .map(|d| d.get(5..).unwrap_or(d).to_string())
        .collect();
    bar_chart(&format!("{what} per day"), &short, &series)
}

#[derive(Template)]
#[template(path = "dashboard/daily.html")]
struct DailyPage<'a> {
    current: &'a str,
    title: &'a str,
    heading: String,
    card_label: &'a str,
    card_sub: &'a str,
    total: u64,
    chart: Option<Chart>,
    group_title: &'a str,
    totals: BTreeMap<&'a str, u64>,
    counts: &'a [DailyCount],
}

/// What differs between the per-day pages.
struct Daily<'a> {
    current: &'a str,
    title: &'a str,
    heading: String,
    card_label: &'a str,
    card_sub: &'a str,
    group_title: &'a str,
    what: &'a str,
}

fn daily_page(d: Daily<'_>, counts: &[DailyCount], labels: &[String]) -> Result<String, Error> {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for c in counts {
        *totals.entry(c.group.as_str()).or_default() += c.count;
    }
    Ok(DailyPage {
        current: d.current,
        title: d.title,
        heading: d.heading,
        card_label: d.card_label,
        card_sub: d.card_sub,
        total: counts.iter().map(|c| c.count).sum(),
        chart: daily_chart(counts, labels, d.what),
        group_title: d.group_title,
        totals,
        counts,
    }
    .render()?)
}

/// `/contacts`: new contacts per day per location over the last `days` days.
pub fn contacts(store: &Store, now: DateTime<Utc>, n_days: u32) -> Result<String, Error> {
    let since = now - Duration::days(i64::from(n_days.saturating_sub(1)));
    let counts = store.new_contacts_per_day(since)?;
    daily_page(
        Daily {
            current: "/contacts",
            title: "Contacts",
            heading: format!("New contacts per day, last {n_days} days"),
            card_label: "New contacts",
            card_sub: "created or adopted",
            group_title: "Location",
            what: "New contacts",
        },
        &counts,
        &days(since, now),
    )
}

/// `/notes`: notes per day by transaction type over the last `days` days.
pub fn notes(store: &Store, now: DateTime<Utc>, n_days: u32) -> Result<String, Error> {
    let since = now - Duration::days(i64::from(n_days.saturating_sub(1)));
    let counts = store.notes_per_day(since)?;
    daily_page(
        Daily {
            current: "/notes",
            title: "Notes",
            heading: format!("Notes per day by transaction type, last {n_days} days"),
            card_label: "Notes",
            card_sub: "one per transaction",
            group_title: "Type",
            what: "Notes",
        },
        &counts,
        &days(since, now),
    )
}

#[derive(Template)]
#[template(path = "dashboard/tasks.html")]
struct TasksPage<'a> {
    current: &'a str,
    title: &'a str,
    progress: Vec<TaskProgress>,
    open: Vec<OpenTask>,
}

impl TasksPage<'_> {
    fn open_count(p: &TaskProgress) -> u64 {
        p.total - p.completed.min(p.total)
    }

    /// The share of `p`'s tasks completed, as shown.
    fn done(p: &TaskProgress) -> String {
        let pct = if p.total == 0 {
            0.0
        } else {
            100.0 * p.completed as f64 / p.total as f64
        };
        format!("{pct:.0}%")
    }
}

/// `/tasks`: onboarding-task completion per rule and the open tasks.
pub fn tasks(store: &Store, personal: PersonalData) -> Result<String, Error> {
    let mut open = store.open_tasks(200)?;
    personal.open_tasks(&mut open);
    Ok(TasksPage {
        current: "/tasks",
        title: "Tasks",
        progress: store.task_progress()?,
        open,
    }
    .render()?)
}

#[derive(Template)]
#[template(path = "dashboard/appointments.html")]
struct AppointmentsPage<'a> {
    current: &'a str,
    title: &'a str,
    list: Vec<Appointment>,
}

/// `/appointments`: upcoming appointments of linked contacts.
pub fn appointments(
    store: &Store,
    now: DateTime<Utc>,
    personal: PersonalData,
) -> Result<String, Error> {
    let mut list = store.upcoming_appointments(now, 200)?;
    personal.appointments(&mut list);
    Ok(AppointmentsPage {
        current: "/appointments",
        title: "Appointments",
        list,
    }
    .render()?)
}

#[derive(Template)]
#[template(path = "dashboard/errors.html")]
struct ErrorsPage<'a> {
    current: &'a str,
    title: &'a str,
    parked: Vec<RunItemRow>,
    failures: Vec<RunItemRow>,
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
    Ok(ErrorsPage {
        current: "/errors",
        title: "Errors",
        parked,
        failures,
    }
    .render()?)
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
