//! A state database filled through the `Store` API with the reconciler's conventions, shared by
//! `tests/dashboard.rs` and `tests/report_html.rs` (and a server on loopback to drive).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use hotspot_ghl_sync::dashboard::{self, HealthPolicy};
use hotspot_ghl_sync::http::{AuditRecord, ErrorClass};
use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::report::{KindCounts, RunSummary};
use hotspot_ghl_sync::store::{
    Appointment, ItemOutcome, Link, MatchMethod, RunItem, RunStatus, Store,
};
use serde_json::json;

/// The hostile contact name planted in conflicts, task titles and locations.
pub const HOSTILE: &str = "<script>alert('pwned')</script>";

pub use super::TempDir;

fn call(api: &str, method: &str, status: Option<u16>, attempt: u32) -> AuditRecord {
    AuditRecord {
        api: api.into(),
        method: method.into(),
        path: "/contacts/{id}".into(),
        status,
        attempt,
        latency_ms: 40,
        error_class: match status {
            Some(429) => Some(ErrorClass::RateLimited),
            Some(s) if s >= 500 => Some(ErrorClass::Transient),
            Some(s) if s >= 400 => Some(ErrorClass::Permanent),
            _ => None,
        },
        message: status
            .filter(|s| *s >= 400)
            .map(|s| format!("the server answered {s}")),
    }
}

fn summary(kinds: &[(&str, KindCounts)], quota: Option<u64>, notes: &[&str]) -> serde_json::Value {
    serde_json::to_value(RunSummary {
        kinds: kinds
            .iter()
            .map(|(k, c)| (k.to_string(), c.clone()))
            .collect(),
        notes: notes.iter().map(|n| n.to_string()).collect(),
        ghl_daily_remaining: quota,
        unreadable: Default::default(),
        unsynced: Vec::new(),
        planned: None,
        kept_out: None,
    })
    .unwrap()
}

fn item(
    kind: Kind,
    source: &str,
    action: &str,
    outcome: ItemOutcome,
    reason: &str,
    detail: serde_json::Value,
) -> RunItem {
    RunItem {
        kind,
        source_id: source.into(),
        target_id: Some(format!("ghl-{source}")),
        action: action.into(),
        outcome,
        reason: Some(reason.into()),
        detail,
    }
}

/// Day `n` days before now, at noon UTC.
pub fn day(now: DateTime<Utc>, n: i64) -> DateTime<Utc> {
    (now - Duration::days(n))
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
}

/// What the fixture contains, for assertions.
pub struct Fixture {
    pub ok_run: i64,
    pub partial_run: i64,
    pub dry_run: i64,
}

/// Fills `path`: three runs (succeeded full, partial incremental with failures, parked conflict,
/// drift, skips and deferrals, then a dry run), 5 contacts in two locations over three days,
/// 6 notes of three types, 5 tasks of two rules, one past and two future appointments.
pub fn populate(path: &Path) -> Fixture {
    let s = Store::open(path).unwrap();
    let now = Utc::now();

    // Run 1: a full pass over contacts, notes and tasks that succeeded (businesses and
    // appointments are not enabled).
    let ok_run = s
        .start_run(&[Kind::Contact, Kind::Note, Kind::Task], true, false)
        .unwrap();
    s.insert_api_calls(
        Some(ok_run),
        &[
            call("hotspot", "GET", Some(200), 1),
            call("ghl", "GET", Some(200), 1),
            call("ghl", "POST", Some(201), 1),
            call("ghl", "POST", Some(201), 1),
            call("ghl", "PUT", Some(200), 1),
        ],
        now,
    )
    .unwrap();
    s.finish_run(
        ok_run,
        RunStatus::Succeeded,
        &summary(
            &[
                (
                    "contact",
                    KindCounts {
                        created: 2,
                        updated: 1,
                        unchanged: 10,
                        ..Default::default()
                    },
                ),
                (
                    "note",
                    KindCounts {
                        created: 3,
                        ..Default::default()
                    },
                ),
            ],
            Some(190_000),
            &[],
        ),
    )
    .unwrap();

    // Run 2: contacts and notes, some records failed, one conflict parked.
    let partial_run = s
        .start_run(&[Kind::Contact, Kind::Note], false, false)
        .unwrap();
    s.insert_api_calls(
        Some(partial_run),
        &[
            call("ghl", "GET", Some(200), 1),
            call("ghl", "POST", Some(429), 1),
            call("ghl", "POST", Some(201), 2),
            call("ghl", "PUT", Some(422), 1),
        ],
        now,
    )
    .unwrap();
    s.insert_run_items(
        partial_run,
        &[
            item(
                Kind::Contact,
                "cust-7",
                "update",
                ItemOutcome::Failed,
                &format!("GHL refused the update of {HOSTILE}: 422"),
                json!({"status": 422, "body": "<b>bad email</b>"}),
            ),
            item(
                Kind::Contact,
                "cust-9",
                "conflict",
                ItemOutcome::Parked,
                "both sides changed firstName",
                json!({"fields": [{"field": "firstName", "source": HOSTILE, "target": "Alice & Bob", "winner": null}]}),
            ),
            item(
                Kind::Contact,
                "cust-11",
                "drift",
                ItemOutcome::Skipped,
                "CRM user edited phone; kept",
                json!({"fields": [{"field": "phone", "source": "+15550001", "target": "+15550002", "winner": "target"}]}),
            ),
            item(
                Kind::Contact,
                "sub-3",
                "create",
                ItemOutcome::Skipped,
                "no email or phone",
                serde_json::Value::Null,
            ),
            item(
                Kind::Note,
                "mac:tx-99",
                "create",
                ItemOutcome::Deferred,
                "daily quota reserve reached",
                serde_json::Value::Null,
            ),
        ],
    )
    .unwrap();
    s.finish_run(
        partial_run,
        RunStatus::Partial,
        &summary(
            &[
                (
                    "contact",
                    KindCounts {
                        created: 1,
                        failed: 1,
                        conflicts: 1,
                        drift: 1,
                        skipped: 1,
                        ..Default::default()
                    },
                ),
                (
                    "note",
                    KindCounts {
                        created: 2,
                        deferred: 1,
                        ..Default::default()
                    },
                ),
            ],
            Some(180_500),
            &["Deletion guard held: 40% of contacts missing from the listing"],
        ),
    )
    .unwrap();

    // Run 3: a dry run of businesses (never counts as a success, never counts writes).
    let dry_run = s.start_run(&[Kind::Business], false, true).unwrap();
    s.finish_run(
        dry_run,
        RunStatus::Succeeded,
        &summary(
            &[(
                "business",
                KindCounts {
                    created: 50,
                    ..Default::default()
                },
            )],
            None,
            &[],
        ),
    )
    .unwrap();

    // Contacts: 3 in "Downtown Café" (today, 1 day ago twice), 1 in a hostile-named location,
    // 1 with only a location id, and one 60 days ago (outside the default 30 days).
    let contacts = [
        ("cust-1", 0, Some("Downtown Café"), "loc-1"),
        ("cust-2", 1, Some("Downtown Café"), "loc-1"),
        ("cust-3", 1, Some("Downtown Café"), "loc-1"),
        ("cust-4", 2, Some(HOSTILE), "loc-2"),
        ("cust-5", 2, None, "loc-3"),
        ("cust-6", 60, Some("Downtown Café"), "loc-1"),
    ];
    for (id, ago, name, loc) in contacts {
        let mut l = Link::new(Kind::Contact, id, format!("ghl-{id}"), MatchMethod::Created);
        l.first_linked_at = day(now, ago);
        l.extra = match name {
            Some(n) => json!({"location_id": loc, "location_name": n}),
            None => json!({"location_id": loc}),
        };
        s.upsert_link(&l).unwrap();
    }

    // Notes: type and transaction time in extra.
    let notes = [
        ("mac", "tx-1", 0),
        ("mac", "tx-2", 0),
        ("voucher", "tx-3", 0),
        ("voucher", "tx-4", 3),
        ("paid", "tx-5", 3),
        ("social", "tx-6", 45),
    ];
    for (ty, tx, ago) in notes {
        let mut l = Link::new(
            Kind::Note,
            format!("{ty}:{tx}"),
            format!("note-{tx}"),
            MatchMethod::Created,
        );
        l.extra = json!({"type": ty, "location_id": "loc-1", "at": day(now, ago).to_rfc3339()});
        s.upsert_link(&l).unwrap();
    }

    // Tasks: "welcome-call" 3 tasks (2 completed, 1 edited), "first-purchase" 2 open.
    let tasks = [
        ("welcome-call", "cust-1", true, false, "Call Alice"),
        ("welcome-call", "cust-2", true, true, "Call Bob"),
        ("welcome-call", "cust-3", false, false, HOSTILE),
        ("first-purchase", "cust-1", false, false, "Thank Alice"),
        ("first-purchase", "cust-4", false, false, "Thank Carol"),
    ];
    for (i, (rule, src, done, edited, title)) in tasks.into_iter().enumerate() {
        let mut l = Link::new(
            Kind::Task,
            format!("{rule}:{src}"),
            format!("task-{i}"),
            MatchMethod::Created,
        );
        l.extra = json!({"rule": rule, "completed": done, "edited": edited, "title": title,
                         "due": day(now, -(i as i64) - 1).to_rfc3339()});
        s.upsert_link(&l).unwrap();
    }

    for (event, start, title) in [
        ("ev-past", now - Duration::days(2), "Past visit"),
        ("ev-soon", now + Duration::hours(5), "Site survey"),
        ("ev-later", now + Duration::days(3), HOSTILE),
    ] {
        s.upsert_appointment(&Appointment {
            contact_target_id: "ghl-cust-1".into(),
            event_id: event.into(),
            start: Some(start.to_rfc3339()),
            end: Some((start + Duration::hours(1)).to_rfc3339()),
            status: Some("confirmed".into()),
            title: Some(title.into()),
        })
        .unwrap();
    }

    Fixture {
        ok_run,
        partial_run,
        dry_run,
    }
}

/// Moves the end (and start) of every run `age` into the past: the store API stamps `now`,
/// and only a backdated run can show `/healthz` turning unhealthy.
pub fn age_runs(path: &Path, age: Duration) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let runs: Vec<(i64, String, Option<String>)> = {
        let mut stmt = conn
            .prepare("SELECT id, started_at, finished_at FROM runs")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    for (id, started, finished) in runs {
        conn.execute(
            "UPDATE runs SET started_at = ?2, finished_at = ?3 WHERE id = ?1",
            (
                id,
                stamp(parse(&started) - age),
                finished.map(|f| stamp(parse(&f) - age)),
            ),
        )
        .unwrap();
    }
}

/// A dashboard for `path` served on an ephemeral loopback port until the sender is dropped.
pub async fn spawn(
    path: &Path,
    policy: HealthPolicy,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = dashboard::router(path.to_path_buf(), policy);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (format!("http://{addr}"), tx)
}

/// A config over the state file `db` whose API secrets are left unset (`serve` needs none),
/// followed by `dashboard` (TOML lines of the `[dashboard]` table, may be empty).
pub fn serve_config(dir: &TempDir, db: &Path, dashboard: &str) -> PathBuf {
    let text = format!(
        "[state]\npath = {:?}\n\n[hotspot]\napi_key_env = \"HGS_TEST_UNSET_HS_KEY\"\n\n\
         [ghl]\nlocation_id = \"loc123\"\ntoken_env = \"HGS_TEST_UNSET_GHL_TOKEN\"\n\n\
         [dashboard]\n{dashboard}\n",
        db.display().to_string()
    );
    let path = dir.path("serve.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `serve` run by the real binary, killed on drop; its stderr is collected in `log`.
pub struct Served {
    pub child: tokio::process::Child,
    pub port: u16,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// How a `serve` start ended when it did not listen.
pub struct Refused {
    pub code: i32,
    pub stderr: String,
}

/// Starts `serve --listen <listen>` with `config` (plus `args`, `env`), the child's descriptor
/// limit set to `nofile` when given (as `ulimit -n` would), and waits for its "Dashboard on"
/// line. `Err` when it exits first.
pub async fn serve_binary(
    config: &Path,
    listen: &str,
    args: &[&str],
    env: &[(&str, &str)],
    nofile: Option<u64>,
) -> Result<Served, Refused> {
    use tokio::io::AsyncBufReadExt as _;
    let mut cmd = tokio::process::Command::new(super::BIN);
    cmd.arg("--config")
        .arg(config)
        .args(["serve", "--listen", listen])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(n) = nofile {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n as libc::rlim_t,
                    rlim_max: n as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("serve starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let port = loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("serve printed its address within 20 s")
            .unwrap();
        let Some(line) = line else {
            let status = child.wait().await.unwrap();
            return Err(Refused {
                code: status.code().unwrap_or(-1),
                stderr: log.lock().unwrap().clone(),
            });
        };
        log.lock().unwrap().push_str(&format!("{line}\n"));
        if let Some(rest) = line.split("Dashboard on http://").nth(1) {
            let addr = rest.split('/').next().unwrap();
            break addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        }
    };
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    Ok(Served { child, port, log })
}

/// One HTTP/1.1 request written by hand (so the `Host` and `Authorization` headers are exactly
/// these), answered with `(status, head and body)`. `None` when the server closed or did not
/// answer within 10 s.
pub async fn raw_request(port: u16, request: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, text))
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), fut)
        .await
        .ok()
        .flatten()
}

/// `GET path` with `Host: host` and the extra header lines `headers` (each ending in `\r\n`).
pub async fn get_as(port: u16, host: &str, path: &str, headers: &str) -> Option<(u16, String)> {
    raw_request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"),
    )
    .await
}

/// The guest [`populate_guest`] adds, and the run that recorded its items.
pub struct Guest {
    pub run: i64,
    pub source_id: &'static str,
    pub target_id: &'static str,
    pub email: &'static str,
    pub phone: &'static str,
    /// A personal value of its conflict (shown only with personal data on).
    pub conflict_value: &'static str,
}

/// Adds to a [`populate`]d file one guest with everything `explain` reads: a contact link
/// with its source email and phone, a note and a task attached to its GHL contact, and a run
/// that recorded a conflict about it, its note's creation and API calls on several paths.
pub fn populate_guest(path: &Path) -> Guest {
    let g = Guest {
        run: 0,
        source_id: "cust-20",
        target_id: "ghl-cust-20",
        email: "zoe@example.org",
        phone: "+14155550100",
        conflict_value: "Zoë & Co",
    };
    let s = Store::open(path).unwrap();
    let now = Utc::now();
    let mut l = Link::new(Kind::Contact, g.source_id, g.target_id, MatchMethod::Email);
    l.first_linked_at = day(now, 90);
    l.extra = json!({"location_id": "loc-1",
                     "source_fields": {"email": g.email, "phone": g.phone}});
    s.upsert_link(&l).unwrap();
    let mut note = Link::new(Kind::Note, "mac:tx-20", "note-tx-20", MatchMethod::Created);
    note.extra = json!({"type": "mac", "contact_id": g.target_id, "at": day(now, 90).to_rfc3339()});
    s.upsert_link(&note).unwrap();
    let mut task = Link::new(
        Kind::Task,
        "welcome-call:cust-20",
        "task-20",
        MatchMethod::Created,
    );
    task.extra = json!({"rule": "welcome-call", "contact_id": g.target_id, "completed": false,
                        "title": "Call Zoë"});
    s.upsert_link(&task).unwrap();

    let run = s
        .start_run(&[Kind::Contact, Kind::Note], false, false)
        .unwrap();
    let at = |path: &str, status: u16, class: Option<ErrorClass>| AuditRecord {
        path: path.into(),
        error_class: class,
        ..call("ghl", "POST", Some(status), 1)
    };
    s.insert_api_calls(
        Some(run),
        &[
            at("/contacts/{id}", 200, None),
            at("/contacts/{id}/notes", 500, Some(ErrorClass::Transient)),
            at("/contacts/{id}/notes", 201, None),
        ],
        now,
    )
    .unwrap();
    s.insert_run_items(
        run,
        &[
            item(
                Kind::Contact,
                g.source_id,
                "conflict",
                ItemOutcome::Applied,
                &format!("both sides changed firstName ({HOSTILE})"),
                json!({"fields": [{"field": "firstName", "source": HOSTILE,
                                   "target": g.conflict_value, "winner": "source"}]}),
            ),
            RunItem {
                target_id: None,
                ..item(
                    Kind::Note,
                    "mac:tx-20",
                    "create",
                    ItemOutcome::Applied,
                    "new transaction",
                    json!({"contact_id": g.target_id}),
                )
            },
        ],
    )
    .unwrap();
    s.finish_run(run, RunStatus::Succeeded, &summary(&[], None, &[]))
        .unwrap();
    Guest { run, ..g }
}
