//! Task rules → GHL tasks: `[[tasks.onboarding]]` once per new contact, and an optional rule
//! once per paid transaction. Each (rule, source record) is one task link
//! (`source_id = "<rule id>:<source id>"`); a task is created once and never written again, so a
//! CRM user's edit or completion is never overwritten. The tasks are read back each run to record
//! completion, edits and deletion in the link's `extra` (`completed`, `edited`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::context::{PassContext, lock};
use super::dry_run::{PlannedLinks, writes_of};
use super::journaled::{
    CreateError, abandon_if_refused, is_not_found, resolve_pending_attached, run_creates,
};
use super::outcome::KindOutcome;
use super::snapshot::location_names;
use super::transactions::{StreamRead, read_stream};
use crate::config::TaskRule;
use crate::ghl::GhlClient;
use crate::ghl::wire::{Task, TaskCreate, TaskSearch};
use crate::mapping::{render_template, render_with_reference, task_reference};
use crate::model::Kind;
use crate::report::dry_run::WriteOp;
use crate::store::{Link, LinkHead, LinkStatus, MatchMethod, NewIntent, Store};

/// The record a rule fires on: a new contact or a paid transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSource {
    /// Contact source id, or `paid:<transaction id>`.
    pub source_id: String,
    pub contact_id: String,
    pub vars: BTreeMap<&'static str, String>,
}

/// One task to create.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlanItem {
    pub link_source_id: String,
    pub rule_id: String,
    pub contact_id: String,
    pub title: String,
    pub body: String,
    pub reference: String,
    pub due: DateTime<Utc>,
    pub assignee: Option<String>,
}

/// A task link as the read-back and the completion figure use it: its ids and the few values of
/// its `extra` they look at, read by SQLite without decoding the rest (title, body, due).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLinkView {
    pub source_id: String,
    pub target_id: String,
    pub status: LinkStatus,
    pub rule: String,
    pub contact_id: Option<String>,
    pub completed: bool,
    /// RFC 3339 in UTC, when the task was last read back; `None` when never.
    pub checked_at: Option<String>,
}

/// Every task link as a [`TaskLinkView`], ordered by source id.
pub fn task_views(store: &Store) -> Result<Vec<TaskLinkView>, crate::store::StoreError> {
    let mut out = Vec::new();
    let paths = ["$.rule", "$.contact_id", "$.completed", "$.checked_at"];
    store.each_link_head(Kind::Task, &paths, |head, extra| {
        let [rule, contact_id, completed, checked_at] =
            <[Option<String>; 4]>::try_from(extra).expect("one value per path asked for");
        out.push(TaskLinkView {
            source_id: head.source_id,
            target_id: head.target_id,
            status: head.status,
            rule: rule.unwrap_or_default(),
            contact_id,
            // SQLite reads a JSON `true` as 1.
            completed: completed.as_deref() == Some("1"),
            checked_at,
        });
        Ok(())
    })?;
    Ok(out)
}

/// Pure planning: each (rule, source) without a task link yields one task.
pub fn plan_tasks(
    rules: &[&TaskRule],
    sources: &[TaskSource],
    linked: &HashSet<String>,
    now: DateTime<Utc>,
) -> Vec<TaskPlanItem> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for rule in rules {
        for s in sources {
            let sid = format!("{}:{}", rule.id, s.source_id);
            if linked.contains(&sid) || !seen.insert(sid.clone()) {
                continue;
            }
            let reference = task_reference(&rule.id, &s.source_id);
            // GHL refuses an empty title; a template of placeholders only may render empty.
            let title = render_template(&rule.title, &s.vars).trim().to_string();
            out.push(TaskPlanItem {
                title: if title.is_empty() {
                    rule.id.clone()
                } else {
                    title
                },
                body: render_with_reference(&rule.body, &s.vars, &reference),
                reference,
                link_source_id: sid,
                rule_id: rule.id.clone(),
                contact_id: s.contact_id.clone(),
                due: now + Duration::days(i64::from(rule.due_in_days)),
                assignee: rule.assignee.clone(),
            });
        }
    }
    out
}

/// Onboarding sources: one per GHL contact (a customer and a subscriber merged into one contact
/// get one set of tasks), keyed by the smallest source id of that contact. A contact whose
/// every rule already has its task is left out: it would plan nothing, and at 100,000 contacts
/// its template values would be most of what this step holds.
///
/// `planned`: in a dry run, the contact links the contacts plan adds, re-points or ends; they
/// stand in for the state's links of the same records.
pub fn onboarding_sources(
    store: &Store,
    rules: &[&TaskRule],
    linked: &HashSet<String>,
    location_names: &HashMap<String, String>,
    planned: &PlannedLinks,
) -> Result<Vec<TaskSource>, crate::store::StoreError> {
    let paths = [
        "$.location_id",
        "$.location_name",
        "$.source_fields.firstName",
        "$.source_fields.lastName",
        "$.source_fields.email",
        "$.source_fields.phone",
    ];
    let mut targets: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    // Ordered by source id: the first link of a contact is the one its tasks are keyed by.
    store.each_link_head(Kind::Contact, &paths, |head, extra| {
        if planned.contains_key(&head.source_id)
            || head.status != LinkStatus::Active
            || head.target_id.is_empty()
            || !targets.insert(head.target_id.clone())
        {
            return Ok(());
        }
        if rules
            .iter()
            .all(|r| linked.contains(&format!("{}:{}", r.id, head.source_id)))
        {
            return Ok(());
        }
        let values = <[Option<String>; 6]>::try_from(extra).expect("one value per path asked for");
        out.push(onboarding_source(head, values, location_names));
        Ok(())
    })?;
    for (sid, link) in planned {
        let Some(p) = link else { continue };
        if !targets.insert(p.target_id.clone())
            || rules
                .iter()
                .all(|r| linked.contains(&format!("{}:{sid}", r.id)))
        {
            continue;
        }
        let head = LinkHead {
            source_id: sid.clone(),
            target_id: p.target_id.clone(),
            source_hash: None,
            target_hash: None,
            owned_tags: Default::default(),
            status: LinkStatus::Active,
            // Linked by the run the dry run stands for.
            first_linked_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let values = [
            p.location_id.clone(),
            p.location_name.clone(),
            p.first_name.clone(),
            p.last_name.clone(),
            p.email.clone(),
            p.phone.clone(),
        ];
        out.push(onboarding_source(head, values, location_names));
    }
    Ok(out)
}

/// The template values of one contact's onboarding tasks.
fn onboarding_source(
    head: LinkHead,
    [location_id, location_name, first, last, email, phone]: [Option<String>; 6],
    location_names: &HashMap<String, String>,
) -> TaskSource {
    let loc = location_id.unwrap_or_default();
    let location = location_name
        .or_else(|| location_names.get(&loc).cloned())
        .unwrap_or(loc);
    let name = [first, last]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut vars = BTreeMap::new();
    vars.insert("name", name);
    vars.insert("email", email.unwrap_or_default());
    vars.insert("phone", phone.unwrap_or_default());
    vars.insert("location", location);
    vars.insert("date", head.first_linked_at.format("%Y-%m-%d").to_string());
    TaskSource {
        source_id: head.source_id,
        contact_id: head.target_id,
        vars,
    }
}

/// What a read-back found for one task link.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    Present(Task),
    Deleted,
}

/// Pure: the new `extra` of a task link given what GHL shows, or `None` when nothing changed.
/// `edited` is sticky: once a CRM user changed the title, body or due date it stays true.
pub fn observe(extra: &Value, state: &TaskState) -> Option<(Value, bool)> {
    let mut next = extra.clone();
    if !next.is_object() {
        next = json!({});
    }
    let deleted = matches!(state, TaskState::Deleted);
    match state {
        TaskState::Deleted => {
            next["deleted"] = json!(true);
        }
        TaskState::Present(t) => {
            next["completed"] = json!(t.completed.unwrap_or(false));
            let title_changed = t
                .title
                .as_deref()
                .is_some_and(|x| Some(x) != extra.get("title").and_then(Value::as_str));
            let body_changed = t.body.as_deref().is_some_and(|x| {
                extra
                    .get("body")
                    .and_then(Value::as_str)
                    .is_some_and(|b| b.trim() != x.trim())
            });
            let due_changed = t.due_date.is_some_and(|d| {
                extra
                    .get("due")
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .is_some_and(|was| was.timestamp() != d.timestamp())
            });
            let was_edited = extra
                .get("edited")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            next["edited"] = json!(was_edited || title_changed || body_changed || due_changed);
        }
    }
    (next != *extra).then_some((next, deleted))
}

/// Completed and total onboarding tasks that still exist in GHL.
pub fn onboarding_completion(
    links: &[TaskLinkView],
    onboarding_rules: &HashSet<&str>,
) -> (u64, u64) {
    let mut done = 0;
    let mut total = 0;
    for l in links {
        if l.status != LinkStatus::Active || !onboarding_rules.contains(l.rule.as_str()) {
            continue;
        }
        total += 1;
        if l.completed {
            done += 1;
        }
    }
    (done, total)
}

/// Contacts whose tasks are worth reading back: those with a task of ours still open (a
/// completed or deleted task needs no further look, so the reads shrink as work gets done),
/// the ones checked longest ago first.
pub fn contacts_to_watch(task_links: &[TaskLinkView]) -> Vec<String> {
    let mut oldest: HashMap<&str, &str> = HashMap::new();
    for l in task_links {
        let Some(cid) = l.contact_id.as_deref() else {
            continue;
        };
        if l.status != LinkStatus::Active || l.completed {
            continue;
        }
        // RFC 3339 in UTC sorts as text; never checked ("") sorts first.
        let checked = l.checked_at.as_deref().unwrap_or("");
        oldest
            .entry(cid)
            .and_modify(|c| *c = (*c).min(checked))
            .or_insert(checked);
    }
    let mut out: Vec<(&str, &str)> = oldest.into_iter().map(|(c, t)| (t, c)).collect();
    out.sort_unstable();
    out.into_iter().map(|(_, c)| c.to_string()).collect()
}

/// Contacts read back per pass, except on a `--full` pass, which reads them all: ten location
/// task searches. Tasks are never written again, so the read-back only feeds the report
/// (completion, edits, deletions); reading every open task on every pass would spend
/// ceil(open / 50) calls of the daily quota each time (200 at 10,000 contacts) to learn
/// nothing new for most of them.
pub const READ_BACK_CONTACTS: usize = 10 * SEARCH_CONTACTS;
/// The same bound in calls when the token cannot search tasks and each contact is listed alone.
const READ_BACK_LISTINGS: usize = 10;
/// Deletions confirmed by GET per pass, except on a `--full` pass (a contact deleted in GHL
/// takes its tasks with it; the rest are confirmed on later passes).
const READ_BACK_CONFIRMS: usize = 50;

/// Contact ids per location task search call.
const SEARCH_CONTACTS: usize = 50;
/// Tasks per search page.
const SEARCH_PAGE: u32 = 100;

/// What a read-back learned about our open tasks.
#[derive(Debug, Default)]
pub struct ReadBack {
    /// Task id → the task as GHL shows it (live tasks only).
    pub found: HashMap<String, Task>,
    /// Tasks GHL confirmed gone: a GET by id answered not found, or served the task flagged
    /// `deleted`.
    pub deleted: HashSet<String>,
    pub notes: Vec<String>,
    /// Contacts whose open tasks were all accounted for (found or confirmed deleted).
    pub read: usize,
}

/// Why a pass cannot take a task missing from a listing for deleted: the search may answer
/// pending tasks only unless `completed` is given (the spec's `completed` is one boolean,
/// "Task Completed Or Pending", with no default), and a deleted task may be served as a row
/// flagged `deleted`. So the read-back asks for pending tasks explicitly, then for completed
/// tasks of the contacts whose open task was not among them, and records a task as deleted
/// only when a GET by id says so.
pub async fn read_back(
    ghl: &GhlClient,
    open: &HashMap<String, Vec<String>>,
    watch: &[String],
    full: bool,
) -> ReadBack {
    let mut rows: HashMap<String, Task> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    let mut out = ReadBack::default();
    let searched = search_all(ghl, watch, Some(false), &mut rows, &mut listed).await;
    match searched {
        Ok(()) => {
            // Contacts with an open task of ours the pending search did not show live.
            let unexplained: Vec<String> = watch
                .iter()
                .filter(|c| listed.contains(*c) && has_unseen(open, c, &rows))
                .cloned()
                .collect();
            let mut done = HashSet::new();
            if let Err(e) = search_all(ghl, &unexplained, Some(true), &mut rows, &mut done).await {
                tracing::warn!(error = %e, "completed tasks could not be searched");
            }
            // A contact is read only once both of its searches finished.
            for c in &unexplained {
                if !done.contains(c) {
                    listed.remove(c);
                }
            }
            if unexplained.len() > done.len() {
                out.notes.push(format!(
                    "The completed tasks of {} contact(s) could not be searched; checked again next run.",
                    unexplained.len() - done.len()
                ));
            }
        }
        Err(e) => {
            tracing::info!(error = %e, "location task search unavailable; listing per contact");
            // Chunks the search finished before it failed stay as read; one call per contact
            // here, so fewer of them per pass (the oldest checked first).
            let cap = if full { usize::MAX } else { READ_BACK_LISTINGS };
            let rest: Vec<&String> = watch
                .iter()
                .filter(|c| !listed.contains(*c))
                .take(cap)
                .collect();
            let mut failed = 0;
            for cid in rest {
                match ghl.list_tasks(cid).await {
                    Ok(ts) => {
                        listed.insert(cid.clone());
                        for t in ts {
                            if let Some(id) = t.id.clone() {
                                rows.insert(id, t);
                            }
                        }
                    }
                    // The contact is gone; its tasks are confirmed one by one below.
                    Err(e) if is_not_found(&e) => {
                        listed.insert(cid.clone());
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(contact_id = %cid, error = %e, "tasks could not be read back");
                    }
                }
            }
            if failed > 0 {
                out.notes.push(format!(
                    "The tasks of {failed} contact(s) could not be read back; checked again next run."
                ));
            }
        }
    }
    let (found, deleted, unconfirmed) = confirm(ghl, open, &listed, rows, full).await;
    out.found = found;
    out.deleted = deleted;
    out.read = listed
        .iter()
        .filter(|c| !unconfirmed.contains(c.as_str()))
        .count();
    let left = unconfirmed.len();
    if left > 0 {
        out.notes.push(format!(
            "{left} contact(s) have tasks missing from GHL's task search that a GET could not confirm deleted yet; checked again next run."
        ));
    }
    out
}

/// Whether `contact` has an open task of ours that `rows` does not show live.
fn has_unseen(
    open: &HashMap<String, Vec<String>>,
    contact: &str,
    rows: &HashMap<String, Task>,
) -> bool {
    open.get(contact).is_some_and(|ids| {
        ids.iter()
            .any(|id| rows.get(id).is_none_or(Task::is_deleted))
    })
}

/// Every page of the location task search for `contacts` (50 per call) with `completed` as
/// given; adds the rows to `rows` and each contact whose listing finished to `listed`.
async fn search_all(
    ghl: &GhlClient,
    contacts: &[String],
    completed: Option<bool>,
    rows: &mut HashMap<String, Task>,
    listed: &mut HashSet<String>,
) -> Result<(), crate::ghl::GhlError> {
    for chunk in contacts.chunks(SEARCH_CONTACTS) {
        let mut skip = 0;
        loop {
            let tasks = ghl
                .search_location_tasks(&TaskSearch {
                    contact_id: Some(chunk.to_vec()),
                    completed,
                    limit: Some(SEARCH_PAGE),
                    skip: Some(skip),
                    ..Default::default()
                })
                .await?;
            let n = tasks.len() as u32;
            for t in tasks {
                if let Some(id) = t.id.clone() {
                    // A live row wins over a flagged copy of the same task.
                    match rows.get(&id) {
                        Some(have) if !have.is_deleted() && t.is_deleted() => {}
                        _ => {
                            rows.insert(id, t);
                        }
                    }
                }
            }
            if n < SEARCH_PAGE {
                listed.extend(chunk.iter().cloned());
                break;
            }
            skip += n;
        }
    }
    Ok(())
}

/// The open tasks of the listed contacts that no listing showed live are confirmed one by one
/// with a GET by id: present (a lagging or partial search), or deleted. Returns the live tasks,
/// the confirmed deletions and the contacts with a task left unconfirmed.
async fn confirm(
    ghl: &GhlClient,
    open: &HashMap<String, Vec<String>>,
    listed: &HashSet<String>,
    rows: HashMap<String, Task>,
    full: bool,
) -> (HashMap<String, Task>, HashSet<String>, HashSet<String>) {
    let mut deleted = HashSet::new();
    let mut unconfirmed = HashSet::new();
    let mut candidates: Vec<(&str, &str)> = Vec::new();
    for cid in listed {
        for tid in open.get(cid).into_iter().flatten() {
            if rows.get(tid).is_none_or(Task::is_deleted) {
                candidates.push((cid, tid));
            }
        }
    }
    candidates.sort_unstable();
    let mut found: HashMap<String, Task> =
        rows.into_iter().filter(|(_, t)| !t.is_deleted()).collect();
    let cap = if full { usize::MAX } else { READ_BACK_CONFIRMS };
    for (i, (cid, tid)) in candidates.into_iter().enumerate() {
        if i >= cap {
            unconfirmed.insert(cid.to_string());
            continue;
        }
        match ghl.get_task(cid, tid).await {
            Ok(t) if t.is_deleted() => {
                deleted.insert(tid.to_string());
            }
            Ok(t) => {
                found.insert(tid.to_string(), t);
            }
            // The task, or its contact, is gone.
            Err(e) if is_not_found(&e) => {
                deleted.insert(tid.to_string());
            }
            Err(e) => {
                tracing::warn!(task_id = %tid, error = %e, "a task missing from the search could not be confirmed");
                unconfirmed.insert(cid.to_string());
            }
        }
    }
    (found, deleted, unconfirmed)
}

/// Our open tasks by contact, as [`read_back`] takes them.
pub fn open_tasks(task_links: &[TaskLinkView]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for l in task_links {
        if l.status != LinkStatus::Active || l.completed {
            continue;
        }
        if let Some(cid) = &l.contact_id {
            out.entry(cid.clone())
                .or_default()
                .push(l.target_id.clone());
        }
    }
    out
}

/// Records what the read-back saw, and when (`checked_at`, which orders the next passes'
/// reads); returns (completed now, edited, deleted) counts of changes. A task is deleted only
/// when the read-back confirmed it; one it neither found nor confirmed is left as it was.
pub fn record_read_back(
    store: &Store,
    task_links: &[TaskLinkView],
    seen: &ReadBack,
    now: DateTime<Utc>,
) -> Result<(u64, u64, u64), crate::store::StoreError> {
    let checked_at = json!(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let (mut completed, mut edited, mut deleted) = (0, 0, 0);
    store.transaction(|s| {
        for v in task_links.iter().filter(|l| l.status == LinkStatus::Active) {
            let state = match seen.found.get(&v.target_id) {
                Some(t) => TaskState::Present(t.clone()),
                None if seen.deleted.contains(&v.target_id) => TaskState::Deleted,
                None => continue,
            };
            // Only the links read back are decoded whole.
            let Some(l) = s.link(Kind::Task, &v.source_id)? else {
                continue;
            };
            let (mut extra, gone) = observe(&l.extra, &state).unwrap_or((l.extra.clone(), false));
            extra["checked_at"] = checked_at.clone();
            if extra["completed"] == json!(true) && l.extra["completed"] != json!(true) {
                completed += 1;
            }
            if extra["edited"] == json!(true) && l.extra["edited"] != json!(true) {
                edited += 1;
            }
            s.set_link_extra(Kind::Task, &l.source_id, &extra)?;
            if gone {
                deleted += 1;
                s.tombstone(Kind::Task, &l.source_id)?;
            }
        }
        Ok(())
    })?;
    Ok((completed, edited, deleted))
}

/// Creates the planned tasks, journaled like notes.
pub async fn apply_tasks(
    ghl: &GhlClient,
    store: &Mutex<Store>,
    items: &[TaskPlanItem],
    run_id: i64,
    concurrency: usize,
    stop: &AtomicBool,
    progress: Option<&crate::progress::Progress>,
) -> KindOutcome {
    run_creates(
        Kind::Task,
        items,
        |it| (it.link_source_id.as_str(), it.contact_id.as_str()),
        concurrency,
        stop,
        progress,
        |it| create_one(ghl, store, it, run_id),
    )
    .await
}

async fn create_one(
    ghl: &GhlClient,
    store: &Mutex<Store>,
    it: &TaskPlanItem,
    run_id: i64,
) -> Result<(), CreateError> {
    let intent = lock(store).journal_intent(&NewIntent {
        kind: Kind::Task,
        source_id: it.link_source_id.clone(),
        op: format!("create_task:{}", it.contact_id),
        marker: it.reference.clone(),
        payload_hash: None,
        run_id: Some(run_id),
    })?;
    let task = ghl
        .create_task(
            &it.contact_id,
            &TaskCreate {
                title: it.title.clone(),
                body: Some(it.body.clone()),
                due_date: it.due,
                completed: false,
                assigned_to: it.assignee.clone(),
            },
            false,
        )
        .await
        .map_err(|e| abandon_if_refused(store, intent, e))?;
    let id = task.id.clone().ok_or(CreateError::NoId)?;
    let mut link = Link::new(
        Kind::Task,
        it.link_source_id.clone(),
        id,
        MatchMethod::Created,
    );
    link.extra = json!({
        "rule": it.rule_id,
        "completed": task.completed.unwrap_or(false),
        "edited": false,
        "title": task.title.clone().unwrap_or_else(|| it.title.clone()),
        "body": task.body.clone().unwrap_or_else(|| it.body.clone()),
        "due": task.due_date.unwrap_or(it.due).to_rfc3339(),
        "contact_id": it.contact_id,
    });
    lock(store).complete_create(intent, &link)?;
    Ok(())
}

/// Runs the tasks step of a pass: read back, resolve interrupted creates, create what is new.
pub async fn reconcile(cx: &PassContext<'_>) -> anyhow::Result<KindOutcome> {
    let cfg = &cx.cfg.tasks;
    let mut out = KindOutcome::default();
    let task_links = task_views(&lock(cx.store))?;
    let scoped = cx.opts.scope.scoped();
    // A scoped pass reads nothing back from GHL: completion is the regular passes' report.
    if scoped.is_none() && task_links.iter().any(|l| l.status == LinkStatus::Active) {
        let mut watch = contacts_to_watch(&task_links);
        let open = watch.len();
        if !cx.opts.full {
            watch.truncate(READ_BACK_CONTACTS);
        }
        let seen = read_back(cx.ghl, &open_tasks(&task_links), &watch, cx.opts.full).await;
        out.notes.extend(seen.notes.iter().cloned());
        if !cx.opts.full && seen.read < open {
            out.notes.push(format!(
                "Task completion read back for {} of {open} contacts with open tasks (those checked longest ago); the rest on later runs, all on a --full pass.",
                seen.read
            ));
        }
        if !cx.opts.dry_run {
            let (completed, edited, deleted) =
                record_read_back(&lock(cx.store), &task_links, &seen, Utc::now())?;
            if completed + edited + deleted > 0 {
                out.notes.push(format!(
                    "Tasks changed in GHL since the last run: {completed} completed, {edited} edited, {deleted} deleted (left as the CRM users made them)."
                ));
            }
        }
    }
    drop(task_links);
    if !cx.opts.dry_run {
        let n = resolve_pending_attached(cx.ghl, cx.store, Kind::Task, &HashMap::new()).await?;
        if n > 0 {
            out.notes.push(format!(
                "{n} task(s) of an interrupted run were found in GHL and linked."
            ));
        }
    }
    let linked: HashSet<String> = task_views(&lock(cx.store))?
        .into_iter()
        .map(|l| l.source_id)
        .collect();
    let now = Utc::now();
    let names = cx
        .locations()
        .await
        .map(|l| location_names(&l))
        .unwrap_or_default();
    let onboarding: Vec<&TaskRule> = cfg.onboarding.iter().collect();
    let mut sources = onboarding_sources(
        &lock(cx.store),
        &onboarding,
        &linked,
        &names,
        cx.dry.contacts(),
    )?;
    let kept_out = cx.kept_out().await?;
    sources.retain(|s| !kept_out.contains(&s.source_id));
    if let Some(scoped) = scoped {
        // The onboarding tasks of the guests this pass wrote; the others' are the tasks pass's.
        let ids = scoped.guest_ids();
        sources.retain(|s| ids.contains(s.source_id.as_str()));
    }
    let mut plan = plan_tasks(&onboarding, &sources, &linked, now);
    drop(sources);
    let mut streams = Vec::new();
    if let Some(rule) = &cfg.paid_followup {
        let index = cx.contact_index().await?;
        let mut sources = Vec::new();
        let (mut unmatched, mut held) = (0, 0);
        for loc in cx.locations().await? {
            let scope = format!("paid:{}", loc.id);
            let r = match scoped {
                // The scoped pass's own paid transactions; the tasks pass's cursor stays put.
                Some(s) => StreamRead {
                    txns: s
                        .txns
                        .iter()
                        .filter(|t| {
                            t.kind == crate::config::TransactionType::Paid.wire_name()
                                && t.location_id == loc.id
                        })
                        .cloned()
                        .collect(),
                    max_id: None,
                },
                None => {
                    let after = if cx.opts.full {
                        None
                    } else {
                        lock(cx.store)
                            .cursor(Kind::Task, &scope)?
                            .and_then(|c| c.parse().ok())
                    };
                    read_stream(cx.hs, crate::config::TransactionType::Paid, &loc.id, after).await?
                }
            };
            let mut sids = Vec::new();
            for t in &r.txns {
                match index.find(
                    t.email.as_deref(),
                    t.phone.as_deref(),
                    t.user_name.as_deref(),
                ) {
                    Some(cid) => {
                        let sid = t.source_id();
                        sids.push(format!("{}:{sid}", rule.id));
                        sources.push(TaskSource {
                            source_id: sid,
                            contact_id: cid.to_string(),
                            vars: t.vars(&names),
                        });
                    }
                    None if index.kept_out(
                        t.email.as_deref(),
                        t.phone.as_deref(),
                        t.user_name.as_deref(),
                    ) =>
                    {
                        held += 1
                    }
                    None => unmatched += 1,
                }
            }
            streams.push((scope, r.max_id, sids));
        }
        if unmatched > 0 && scoped.is_none() {
            out.notes.push(format!(
                "{unmatched} paid transaction(s) have no GHL contact: no follow-up task for them."
            ));
        }
        if held > 0 {
            out.notes.push(format!(
                "{held} paid transaction(s) of guests kept out by the filter or --limit: no follow-up task for them this pass (a `--full` pass after the filter is removed reads them again)."
            ));
        }
        plan.extend(plan_tasks(&[rule], &sources, &linked, now));
    }
    out.counts.unchanged = linked.len() as u64;
    if cx.opts.dry_run {
        out.counts.deferred = plan.len() as u64;
        out.planned = writes_of(WriteOp::Create, plan.len() as u64);
        out.notes
            .push(format!("Would create {} task(s).", plan.len()));
        return Ok(out);
    }
    let applied = apply_tasks(
        cx.ghl,
        cx.store,
        &plan,
        cx.run_id,
        cx.cfg.ghl.max_concurrency,
        cx.stop,
        cx.opts.progress.as_ref(),
    )
    .await;
    let s = lock(cx.store);
    out.absorb_creates(applied, &s, Kind::Task, streams)?;
    let ids: HashSet<&str> = cfg.onboarding.iter().map(|r| r.id.as_str()).collect();
    let (done, total) = onboarding_completion(&task_views(&s)?, &ids);
    if total > 0 {
        out.notes.push(completion_line(done, total));
    }
    Ok(out)
}

/// The completion figure as `status` and reports show it.
pub fn completion_line(done: u64, total: u64) -> String {
    format!(
        "Onboarding tasks: {done} of {total} completed ({:.0}%).",
        done as f64 * 100.0 / total.max(1) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rule(id: &str) -> TaskRule {
        TaskRule {
            id: id.into(),
            title: "Welcome {name}".into(),
            body: "At {location}".into(),
            due_in_days: 2,
            assignee: None,
        }
    }

    fn src(sid: &str, cid: &str) -> TaskSource {
        let mut vars = BTreeMap::new();
        vars.insert("name", "Ann".to_string());
        vars.insert("location", "Cafe".to_string());
        TaskSource {
            source_id: sid.into(),
            contact_id: cid.into(),
            vars,
        }
    }

    #[test]
    fn each_rule_and_source_yields_one_task_until_linked() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let (a, b, c) = (rule("a"), rule("b"), rule("c"));
        let rules = [&a, &b, &c];
        let sources = [src("1", "G1"), src("2", "G2")];
        let plan = plan_tasks(&rules, &sources, &HashSet::new(), now);
        assert_eq!(plan.len(), 6);
        assert_eq!(plan[0].title, "Welcome Ann");
        assert_eq!(plan[0].body, "At Cafe\nRef: hgs-task:a:1");
        assert_eq!(plan[0].due, now + Duration::days(2));
        let linked: HashSet<String> = plan.iter().map(|p| p.link_source_id.clone()).collect();
        assert!(plan_tasks(&rules, &sources, &linked, now).is_empty());
    }

    #[test]
    fn merged_contacts_get_one_set_of_onboarding_tasks() {
        let store = Store::open_in_memory().unwrap();
        for (sid, cid) in [("sub:7", "G1"), ("100", "G1"), ("200", "G2")] {
            let mut l = Link::new(Kind::Contact, sid, cid, MatchMethod::Created);
            l.extra = json!({"location_id": "L1", "source_fields": {"firstName": "Ann", "email": "a@b.co"}});
            store.upsert_link(&l).unwrap();
        }
        let a = rule("a");
        let s = onboarding_sources(
            &store,
            &[&a],
            &HashSet::new(),
            &HashMap::new(),
            &PlannedLinks::new(),
        )
        .unwrap();
        let ids: Vec<&str> = s.iter().map(|x| x.source_id.as_str()).collect();
        assert_eq!(ids, ["100", "200"]);
        assert_eq!(s[0].vars["name"], "Ann");
        assert_eq!(s[0].vars["email"], "a@b.co");
        assert_eq!(s[0].vars["location"], "L1");
        // A contact whose task exists plans nothing and is not held; its merged twin is not
        // taken in its place.
        let linked: HashSet<String> = ["a:100".to_string()].into();
        let s = onboarding_sources(
            &store,
            &[&a],
            &linked,
            &HashMap::new(),
            &PlannedLinks::new(),
        )
        .unwrap();
        let ids: Vec<&str> = s.iter().map(|x| x.source_id.as_str()).collect();
        assert_eq!(ids, ["200"]);
    }

    #[test]
    fn read_back_records_completion_and_sticky_edits_never_overwrites() {
        let extra = json!({"rule":"a","completed":false,"edited":false,"title":"T","body":"B","due":"2025-01-03T00:00:00+00:00"});
        let mut t = Task {
            id: Some("t1".into()),
            title: Some("T".into()),
            body: Some("B".into()),
            due_date: Some(Utc.with_ymd_and_hms(2025, 1, 3, 0, 0, 0).unwrap()),
            completed: Some(false),
            ..Default::default()
        };
        assert_eq!(observe(&extra, &TaskState::Present(t.clone())), None);
        t.completed = Some(true);
        let (done, _) = observe(&extra, &TaskState::Present(t.clone())).unwrap();
        assert_eq!(done["completed"], json!(true));
        assert_eq!(done["edited"], json!(false));
        t.title = Some("Call back".into());
        let (edited, _) = observe(&done, &TaskState::Present(t.clone())).unwrap();
        assert_eq!(edited["edited"], json!(true));
        t.title = Some("T".into());
        assert_eq!(
            observe(&edited, &TaskState::Present(t)),
            None,
            "edited stays true"
        );
        let (_, gone) = observe(&edited, &TaskState::Deleted).unwrap();
        assert!(gone);
    }

    /// The links as the store hands them to the read-back: through SQLite's JSON reading.
    fn views(links: &[Link]) -> Vec<TaskLinkView> {
        let store = Store::open_in_memory().unwrap();
        for l in links {
            store.upsert_link(l).unwrap();
        }
        task_views(&store).unwrap()
    }

    fn task_link(i: usize, extra: Value) -> Link {
        let mut l = Link::new(
            Kind::Task,
            format!("a:{i}"),
            format!("t{i}"),
            MatchMethod::Created,
        );
        l.extra = extra;
        l
    }

    #[test]
    fn only_contacts_with_open_tasks_are_watched() {
        let mut links = Vec::new();
        for (i, (cid, completed, status)) in [
            ("G1", true, LinkStatus::Active),
            ("G2", false, LinkStatus::Active),
            ("G2", false, LinkStatus::Active),
            ("G3", false, LinkStatus::Tombstoned),
        ]
        .into_iter()
        .enumerate()
        {
            let mut l = task_link(i, json!({"contact_id": cid, "completed": completed}));
            l.status = status;
            links.push(l);
        }
        assert_eq!(contacts_to_watch(&views(&links)), ["G2"]);
    }

    #[test]
    fn the_contacts_checked_longest_ago_are_read_first() {
        let mut links = Vec::new();
        for (i, (cid, checked)) in [
            ("G1", Some("2026-11-02T00:00:00.000Z")),
            ("G2", None),
            ("G3", Some("2026-11-01T00:00:00.000Z")),
            ("G3", Some("2026-11-03T00:00:00.000Z")),
            ("G4", Some("2026-11-01T12:00:00.000Z")),
        ]
        .into_iter()
        .enumerate()
        {
            let mut l = task_link(i, json!({"contact_id": cid, "completed": false}));
            if let Some(c) = checked {
                l.extra["checked_at"] = json!(c);
            }
            links.push(l);
        }
        // Never checked first; a contact counts from its least recently checked task.
        assert_eq!(contacts_to_watch(&views(&links)), ["G2", "G3", "G4", "G1"]);
    }

    #[test]
    fn completion_counts_only_live_onboarding_tasks() {
        let mut links = Vec::new();
        for (i, (rule, completed, status)) in [
            ("a", true, LinkStatus::Active),
            ("a", false, LinkStatus::Active),
            ("paid", true, LinkStatus::Active),
            ("a", true, LinkStatus::Tombstoned),
        ]
        .into_iter()
        .enumerate()
        {
            let mut l = Link::new(
                Kind::Task,
                format!("{rule}:{i}"),
                format!("t{i}"),
                MatchMethod::Created,
            );
            l.status = status;
            l.extra = json!({"rule": rule, "completed": completed});
            links.push(l);
        }
        let rules: HashSet<&str> = ["a"].into();
        assert_eq!(onboarding_completion(&views(&links), &rules), (1, 2));
    }
}
