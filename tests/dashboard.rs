//! The read-only dashboard over HTTP on loopback: pages, JSON, Prometheus metrics, `/healthz`
//! turning 503 when the last run is too old, escaping, read-only-ness and the listen guard.

mod support;

use std::time::Duration;

use chrono::Duration as ChronoDuration;
use hotspot_ghl_sync::config::{Config, ScheduleJob};
use hotspot_ghl_sync::dashboard::{self, HealthPolicy};
use serde_json::Value;
use support::dashboard::{HOSTILE, TempDir, age_runs, populate, populate_guest, spawn};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(base: &str, path: &str) -> (u16, String, String) {
    let res = client().get(format!("{base}{path}")).send().await.unwrap();
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, res.text().await.unwrap())
}

async fn json(base: &str, path: &str) -> Value {
    let (status, ctype, body) = get(base, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
    serde_json::from_str(&body).unwrap()
}

/// Every job allowed `hours`.
fn policy(jobs: Vec<ScheduleJob>, hours: u64) -> HealthPolicy {
    let max_age = Duration::from_secs(hours * 3600);
    HealthPolicy {
        max_age,
        jobs: jobs.into_iter().map(|j| (j, max_age)).collect(),
    }
}

/// No raw hostile markup anywhere, and the escaped form is shown where the value appears.
fn assert_escaped(page: &str, body: &str) {
    assert!(!body.contains("<script"), "{page} contains a raw <script>");
    assert!(
        !body.contains("alert('"),
        "{page} contains an unescaped quote"
    );
}

#[tokio::test]
async fn every_page_renders_the_stored_activity() {
    let dir = TempDir::new("pages");
    let db = dir.path("state.db");
    let f = populate(&db);
    let (base, _stop) = spawn(&db, policy(vec![], 26)).await;

    let (status, ctype, home) = get(&base, "/").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(home.contains("id=\"health\""));
    assert!(home.contains("b-healthy"), "fresh runs are healthy");
    assert!(home.contains(&format!("href=\"/runs/{}\"", f.dry_run)));
    assert!(home.contains("<svg"), "the runs chart is inline SVG");
    assert!(
        home.contains("180500"),
        "quota of the newest run reporting it"
    );

    let (_, _, runs) = get(&base, "/runs").await;
    for id in [f.ok_run, f.partial_run, f.dry_run] {
        assert!(runs.contains(&format!(">#{id}</a>")), "run {id} listed");
    }
    assert!(runs.contains("b-partial"));
    assert!(runs.contains("dry run"));

    let (status, _, detail) = get(&base, &format!("/runs/{}", f.partial_run)).await;
    assert_eq!(status, 200);
    assert!(detail.contains("Failures (1)"));
    assert!(detail.contains("Conflicts (1)"));
    assert!(detail.contains("Drift (CRM-side edits) (1)"));
    assert!(detail.contains("Skipped records (1)"));
    assert!(detail.contains("Deferred work (1)"));
    assert!(detail.contains("no email or phone"));
    assert!(
        detail.contains("Alice &amp; Bob"),
        "both conflict values shown"
    );
    assert!(detail.contains("Deletion guard held"));
    assert_escaped("run detail", &detail);

    let (_, _, contacts) = get(&base, "/contacts").await;
    assert!(contacts.contains("Downtown Café"));
    assert!(
        contacts.contains("loc-3"),
        "location id when the name is unknown"
    );
    // 5 contacts in the last 30 days (the one 60 days ago is outside).
    assert!(
        contacts.contains("<div class=\"value\">5</div>"),
        "{contacts}"
    );
    assert_escaped("contacts", &contacts);
    let (_, _, wide) = get(&base, "/contacts?days=90").await;
    assert!(wide.contains("<div class=\"value\">6</div>"));

    let (_, _, notes) = get(&base, "/notes").await;
    for ty in ["mac", "voucher", "paid"] {
        assert!(notes.contains(&format!("<td>{ty}</td>")), "type {ty}");
    }
    assert!(
        !notes.contains("<td>social</td>"),
        "45 days ago is outside 30 days"
    );

    let (_, _, tasks) = get(&base, "/tasks").await;
    assert!(tasks.contains("welcome-call"));
    assert!(tasks.contains("67%"), "2 of 3 welcome calls completed");
    assert!(tasks.contains("Open tasks (3)"));
    assert_escaped("tasks", &tasks);

    let (_, _, appts) = get(&base, "/appointments").await;
    assert!(appts.contains("Upcoming appointments (2)"));
    assert!(appts.contains("Site survey"));
    assert!(!appts.contains("Past visit"));
    assert_escaped("appointments", &appts);

    let (_, _, errors) = get(&base, "/errors").await;
    assert!(errors.contains("Parked conflicts (1)"));
    assert!(errors.contains("Failures in the last 20 runs (1)"));
    assert!(errors.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"));
    assert_escaped("errors", &errors);
}

#[tokio::test]
async fn json_api_matches_the_store() {
    let dir = TempDir::new("api");
    let db = dir.path("state.db");
    let f = populate(&db);
    let (base, _stop) = spawn(&db, policy(vec![], 26)).await;

    let runs = json(&base, "/api/runs").await;
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["id"], f.dry_run, "newest first");
    assert_eq!(runs[1]["status"], "partial");

    let run = json(&base, &format!("/api/runs/{}", f.partial_run)).await;
    assert_eq!(run["api"]["ghl"]["rate_limited"], 1);
    assert_eq!(run["api"]["ghl"]["retries"], 1);
    assert_eq!(run["api"]["ghl"]["daily_remaining"], 180_500);
    // The items come in pages; the total counts them all.
    let listed = run["items_total"].as_u64().unwrap();
    assert!(listed >= 2, "{run}");
    assert_eq!(run["items"].as_array().unwrap().len() as u64, listed);
    let page = json(
        &base,
        &format!("/api/runs/{}?offset=1&limit=1", f.partial_run),
    )
    .await;
    assert_eq!(page["items_total"].as_u64(), Some(listed));
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0], run["items"][1]);

    let contacts = json(&base, "/api/contacts/daily?days=7").await;
    let total: u64 = contacts["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 5);
    let downtown_yesterday = contacts["counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["group"] == "Downtown Café" && c["count"] == 2);
    assert!(downtown_yesterday.is_some(), "{contacts}");

    let notes = json(&base, "/api/notes/daily?days=366").await;
    let types: Vec<&str> = notes["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["group"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"social") && types.contains(&"paid"));

    let tasks = json(&base, "/api/tasks").await;
    let welcome = tasks["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "welcome-call")
        .unwrap()
        .clone();
    assert_eq!(welcome["total"], 3);
    assert_eq!(welcome["completed"], 2);
    assert_eq!(welcome["edited"], 1);
    assert_eq!(tasks["open"].as_array().unwrap().len(), 3);

    let appts = json(&base, "/api/appointments").await;
    let ids: Vec<&str> = appts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ev-soon", "ev-later"]);

    let errors = json(&base, "/api/errors").await;
    assert_eq!(errors["parked_conflicts"].as_array().unwrap().len(), 1);
    assert_eq!(
        errors["parked_conflicts"][0]["detail"]["fields"][0]["source"],
        HOSTILE
    );
    assert_eq!(errors["failures"][0]["source_id"], "cust-7");

    let (status, ctype, body) = get(&base, "/api/runs/999").await;
    assert_eq!(status, 404);
    assert!(ctype.starts_with("application/json"));
    assert!(body.contains("no run #999"));
    let (status, _, _) = get(&base, "/runs/nope").await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&base, "/no/such/page").await;
    assert_eq!(status, 404);
}

/// Parses every sample line into (name with labels, value), failing on malformed lines.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
            let bare = name.split('{').next().unwrap();
            assert!(
                bare.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "metric name {bare:?}"
            );
            assert!(
                text.contains(&format!("# TYPE {bare} gauge")),
                "{bare} has a TYPE line"
            );
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn sample(all: &[(String, f64)], name: &str) -> Option<f64> {
    all.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let dir = TempDir::new("metrics");
    let db = dir.path("state.db");
    let f = populate(&db);
    {
        let store = hotspot_ghl_sync::store::Store::open(&db).unwrap();
        let now = chrono::Utc::now();
        for id in ["1", "2"] {
            store
                .insert_webhook_event(&hotspot_ghl_sync::store::NewWebhookEvent {
                    source: "hotspotsystem",
                    event_type: "customer.create",
                    location_id: Some("1"),
                    record_id: id,
                    body: b"{}",
                    received_at: now,
                })
                .unwrap();
        }
        store.mark_webhook_events_done(&[1], now, 30).unwrap();
    }
    let (base, _stop) = spawn(&db, policy(vec![ScheduleJob::Contacts], 26)).await;
    let (status, ctype, text) = get(&base, "/metrics").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let all = samples(&text);
    assert_eq!(
        sample(&all, "hgs_webhook_events_pending{source=\"hotspotsystem\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &all,
            "hgs_webhook_events_received_last_day{source=\"hotspotsystem\"}"
        ),
        Some(2.0)
    );
    assert_eq!(sample(&all, "hgs_runs{status=\"succeeded\"}"), Some(2.0));
    assert_eq!(sample(&all, "hgs_runs{status=\"partial\"}"), Some(1.0));
    assert_eq!(sample(&all, "hgs_runs{status=\"failed\"}"), Some(0.0));
    // Contacts: 2 created + 1 updated, then 1 created; the dry run's 50 businesses do not count.
    assert_eq!(sample(&all, "hgs_writes{kind=\"contact\"}"), Some(4.0));
    assert_eq!(sample(&all, "hgs_writes{kind=\"business\"}"), Some(0.0));
    assert_eq!(sample(&all, "hgs_failures{kind=\"contact\"}"), Some(1.0));
    assert_eq!(
        sample(&all, "hgs_ghl_daily_quota_remaining"),
        Some(180_500.0)
    );
    assert_eq!(sample(&all, "hgs_last_run_id"), Some(f.dry_run as f64));
    assert_eq!(sample(&all, "hgs_parked_conflicts"), Some(1.0));
    assert_eq!(
        sample(&all, "hgs_links{kind=\"contact\",status=\"active\"}"),
        Some(6.0)
    );
    let last_ok = sample(&all, "hgs_last_success_timestamp_seconds{kind=\"contact\"}").unwrap();
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - last_ok).abs() < 120.0, "{last_ok} vs {now}");
    assert_eq!(
        sample(
            &all,
            "hgs_last_success_timestamp_seconds{kind=\"business\"}"
        ),
        None,
        "only a dry run covered businesses"
    );
    assert_eq!(sample(&all, "hgs_healthy"), Some(1.0));
    assert_eq!(
        sample(&all, "hgs_health_max_age_seconds"),
        Some(26.0 * 3600.0)
    );
}

#[tokio::test]
async fn healthz_turns_503_when_the_last_successful_run_is_too_old() {
    let dir = TempDir::new("healthz");
    let db = dir.path("state.db");
    populate(&db);
    let jobs = vec![ScheduleJob::Contacts, ScheduleJob::Full];
    let (base, _stop) = spawn(&db, policy(jobs.clone(), 26)).await;

    let (status, ctype, body) = get(&base, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(ctype.starts_with("text/plain"));

    // 27 hours later, nothing ran: both jobs are stale.
    age_runs(&db, ChronoDuration::hours(27));
    let (status, _, body) = get(&base, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("unhealthy\n"));
    assert!(
        body.contains("contacts: last successful run #2 ended 1d 3h"),
        "{body}"
    );
    assert!(body.contains("full: last successful run #1"), "{body}");
    let health = client()
        .get(format!("{base}/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["healthy"], false);
    assert_eq!(health["checks"][0]["job"], "contacts");
    assert_eq!(health["checks"][0]["ok"], false);
    let (_, _, home) = get(&base, "/").await;
    assert!(home.contains("b-unhealthy"));
    let (_, _, metrics) = get(&base, "/metrics").await;
    assert!(metrics.contains("\nhgs_healthy 0\n"));

    // A longer allowance makes the same data healthy again.
    let (base2, _stop2) = spawn(&db, policy(jobs, 48)).await;
    let (status, _, _) = get(&base2, "/healthz").await;
    assert_eq!(status, 200);

    // A scheduled job that never completed a real run (businesses: only a dry run) is unhealthy.
    let (base3, _stop3) = spawn(&db, policy(vec![ScheduleJob::Businesses], 1000)).await;
    let (status, _, body) = get(&base3, "/healthz").await;
    assert_eq!(status, 503);
    assert!(
        body.contains("businesses: no successful run recorded"),
        "{body}"
    );
}

#[tokio::test]
async fn a_missing_state_file_is_reported_and_never_created() {
    let dir = TempDir::new("missing");
    let db = dir.path("state.db");
    let (base, _stop) = spawn(&db, policy(vec![], 26)).await;
    let (status, _, body) = get(&base, "/healthz").await;
    assert_eq!(status, 503);
    assert!(body.contains("run `sync` first"), "{body}");
    let (status, _, body) = get(&base, "/").await;
    assert_eq!(status, 503);
    assert!(body.contains("run `sync` first"));
    let (status, _, _) = get(&base, "/api/runs").await;
    assert_eq!(status, 503);
    assert!(!db.exists(), "the dashboard must not create the state file");
}

#[tokio::test]
async fn the_dashboard_is_read_only_and_sends_protective_headers() {
    let dir = TempDir::new("readonly");
    let db = dir.path("state.db");
    populate(&db);
    let (base, _stop) = spawn(&db, policy(vec![], 26)).await;
    for path in ["/", "/runs", "/api/runs", "/healthz"] {
        let res = client()
            .post(format!("{base}{path}"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 405, "POST {path}");
        let res = client()
            .delete(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 405, "DELETE {path}");
    }
    let res = client().get(format!("{base}/")).send().await.unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn serve_listens_on_loopback_unless_remote_is_allowed() {
    assert!(dashboard::check_listen("127.0.0.1:8686".parse().unwrap(), false).is_ok());
    assert!(dashboard::check_listen("[::1]:8686".parse().unwrap(), false).is_ok());
    let err = dashboard::check_listen("0.0.0.0:8686".parse().unwrap(), false).unwrap_err();
    assert!(err.to_string().contains("--allow-remote"), "{err}");
    assert!(dashboard::check_listen("0.0.0.0:8686".parse().unwrap(), true).is_ok());

    let dir = TempDir::new("serve");
    let db = dir.path("state.db");
    populate(&db);
    let text = format!(
        "[state]\npath = {:?}\n\n[hotspot]\nbase_url = \"https://api.hotspotsystem.com/v2.0\"\napi_key_env = \"HS_KEY\"\n\n\
         [ghl]\nbase_url = \"https://services.leadconnectorhq.com\"\nlocation_id = \"loc123\"\ntoken_env = \"GHL_TOKEN\"\n\n\
         [schedule]\ncontacts = \"*/5 * * * *\"\nnotes = \"off\"\ntasks = \"off\"\nfull = \"off\"\n",
        db.display().to_string()
    );
    let cfg = Config::from_str_with_env(&text, dir.path("sync.toml"), &|k| {
        matches!(k, "HS_KEY" | "GHL_TOKEN").then(|| "secret".to_string())
    })
    .unwrap();
    // The default allowance is twice the longest schedule interval.
    assert_eq!(
        HealthPolicy::from_config(&cfg, None).max_age,
        Duration::from_secs(600)
    );
    let err = dashboard::serve(&cfg, "0.0.0.0:0".parse().unwrap(), false, None, async {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");

    // A real serve on loopback answers and stops when asked.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let cfg2 = cfg.clone();
    let server = tokio::spawn(async move {
        dashboard::serve(
            &cfg2,
            format!("127.0.0.1:{port}").parse().unwrap(),
            false,
            Some(Duration::from_secs(3600)),
            async move {
                let _ = rx.await;
            },
        )
        .await
    });
    let base = format!("http://127.0.0.1:{port}");
    let mut status = 0;
    for _ in 0..50 {
        if let Ok(res) = client().get(format!("{base}/healthz")).send().await {
            status = res.status().as_u16();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_guest_page_answers_what_explain_answers() {
    let dir = TempDir::new("guests");
    let db = dir.path("state.db");
    populate(&db);
    let g = populate_guest(&db);
    let (base, _stop) = spawn(&db, policy(vec![], 26)).await;

    let (status, _, form) = get(&base, "/guests").await;
    assert_eq!(status, 200);
    assert!(
        form.contains("<form") && form.contains("name=\"q\""),
        "{form}"
    );
    assert!(
        form.contains("href=\"/guests\" class=\"on\""),
        "nav marks the page"
    );
    assert!(!form.contains("Contact links"), "nothing looked up yet");

    // By HotspotSystem id, GHL id, email (any case) and phone (as typed, national format).
    for q in [
        "cust-20",
        "ghl-cust-20",
        "Zoe%40Example.ORG",
        "%28415%29%20555-0100",
    ] {
        let (status, _, page) = get(&base, &format!("/guests?q={q}")).await;
        assert_eq!(status, 200, "{q}");
        assert!(page.contains("Contact links (1)"), "{q}: {page}");
        assert!(
            page.contains(">cust-20<") && page.contains(">ghl-cust-20<"),
            "{q}"
        );
        assert!(
            page.contains("History (2)"),
            "{q}: the conflict and the note"
        );
        assert!(page.contains(&format!("href=\"/runs/{}\"", g.run)), "{q}");
        assert!(
            page.contains(">conflict<") && page.contains(">mac:tx-20<"),
            "{q}"
        );
        assert!(
            page.contains("Zoë &amp; Co"),
            "{q}: both values of the conflict: {page}"
        );
        assert!(
            page.contains("Notes (1)") && page.contains(">note-tx-20<"),
            "{q}"
        );
        assert!(
            page.contains("Tasks (1)") && page.contains(">task-20<"),
            "{q}"
        );
        assert!(
            page.contains("<td>open</td>"),
            "{q}: the task is not completed"
        );
        assert_escaped(q, &page);
    }
    // A guest known only from run items (no link) and an unknown value.
    for q in ["cust-9", "nobody%40example.org"] {
        let (status, _, page) = get(&base, &format!("/guests?q={q}")).await;
        assert_eq!(status, 200);
        assert!(page.contains("No synced guest matches"), "{q}: {page}");
    }
    let (_, _, page) = get(&base, "/guests?q=%3Cscript%3Ealert(%27x%27)").await;
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)"), "{page}");
    assert_escaped("hostile query", &page);

    let v = json(&base, "/api/guests?q=zoe%40example.org").await;
    assert_eq!(v["contacts"][0]["source_id"], "cust-20");
    assert_eq!(v["contacts"][0]["match_method"], "email");
    assert_eq!(v["history"].as_array().unwrap().len(), 2);
    assert_eq!(v["history"][0]["run_id"], g.run);
    assert_eq!(v["notes"][0]["target_id"], "note-tx-20");
    assert_eq!(v["tasks"][0]["completed"], false);
    assert_eq!(v["truncated"], false);
    let res = client()
        .get(format!("{base}/api/guests?q=nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn the_calls_page_filters_and_pages_every_runs_calls() {
    let dir = TempDir::new("calls");
    let db = dir.path("state.db");
    let f = populate(&db);
    let g = populate_guest(&db);
    let (base, _stop) = spawn(&db, policy(vec![], 26)).await;

    // 5 + 4 + 3 calls recorded in three runs; every run, newest first.
    let (status, _, all) = get(&base, "/calls").await;
    assert_eq!(status, 200);
    assert!(all.contains("Calls 1–12 of 12, newest first."), "{all}");
    assert!(all.contains("href=\"/calls\" class=\"on\""));
    let newest = all.find("/contacts/{id}/notes").unwrap();
    assert!(newest < all.find(">hotspot<").unwrap(), "newest first");

    let (_, _, failed) = get(&base, &format!("/calls?run={}&failed=1", f.partial_run)).await;
    assert!(failed.contains("Calls 1–2 of 2."), "{failed}");
    assert!(
        failed.contains(">429<") && failed.contains(">422<"),
        "{failed}"
    );
    assert!(!failed.contains(">201<"), "{failed}");
    assert!(failed.contains("name=\"failed\" value=\"1\" checked"));

    // An empty form field is no filter (a browser sends every field).
    let (_, _, blank) = get(&base, "/calls?run=&status=&path=&limit=100").await;
    assert!(blank.contains("of 12"), "{blank}");

    let v = json(
        &base,
        &format!("/api/calls?run={}&status=201", f.partial_run),
    )
    .await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["calls"][0]["attempt"], 2);
    let v = json(&base, "/api/calls?path=%2Fnotes").await;
    assert_eq!(v["total"], 2);
    assert!(
        v["calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["run_id"] == g.run)
    );
    let v = json(&base, "/api/calls?failed=1&path=notes").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["calls"][0]["error_class"], "transient");

    // Pages of 2 over run 1's 5 calls.
    let (_, _, first) = get(&base, &format!("/calls?run={}&limit=2", f.ok_run)).await;
    assert!(first.contains("Calls 1–2 of 5."), "{first}");
    assert!(first.contains(&format!(
        "href=\"/calls?run={}&amp;offset=2&amp;limit=2\"",
        f.ok_run
    )));
    assert!(!first.contains("previous"));
    let (_, _, last) = get(&base, &format!("/calls?run={}&limit=2&offset=4", f.ok_run)).await;
    assert!(last.contains("Calls 5–5 of 5."), "{last}");
    assert!(
        last.contains("previous") && !last.contains("next →"),
        "{last}"
    );

    // Page sizes are bounded whatever is asked.
    let (_, _, huge) = get(&base, "/calls?limit=99999999").await;
    assert!(huge.contains("name=\"limit\" value=\"1000\""), "{huge}");
    assert_eq!(
        json(&base, "/api/calls?limit=99999999").await["limit"],
        5000
    );

    for (path, code) in [
        ("/calls?run=999", 404),
        ("/api/calls?run=999", 404),
        ("/calls?status=abc", 400),
        ("/api/calls?run=x", 400),
    ] {
        let res = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), code, "{path}");
    }
    // Run pages link to their calls.
    let (_, _, run) = get(&base, &format!("/runs/{}", f.ok_run)).await;
    assert!(run.contains(&format!("href=\"/calls?run={}\"", f.ok_run)));
}
