//! The dashboard under attack, through the real binary's `serve`: half-sent requests and
//! connection floods (with a small descriptor limit, as a service manager sets), oversized
//! bodies, concurrent heavy pages, foreign `Host` names (DNS rebinding), listening beyond
//! loopback without and with credentials, and personal data masked on pages, in the JSON API
//! and in HTML reports.

mod support;

use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher as _;
use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::store::{ItemOutcome, RunItem, RunStatus, Store};
use serde_json::json;
use support::dashboard::{
    HOSTILE, Served, TempDir, get_as, populate, populate_guest, raw_request, serve_binary,
    serve_config,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// What the fixture holds that identifies a person: a task title and a conflicting value.
const TASK_TITLE: &str = "Thank Alice";
const CONFLICT_VALUE: &str = "Alice & Bob";

async fn serve(dir: &TempDir, dashboard: &str) -> Served {
    let db = dir.path("state.db");
    if !db.exists() {
        populate(&db);
    }
    let config = serve_config(dir, &db, dashboard);
    match serve_binary(&config, "127.0.0.1:0", &[], &[], None).await {
        Ok(s) => s,
        Err(r) => panic!("serve exited {}: {}", r.code, r.stderr),
    }
}

/// Opens `n` connections that each send the start of a request and never finish it.
async fn half_open(port: u16, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"GET /runs HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        held.push(s);
    }
    held
}

/// Whether the server closed `s` within `within` (a read returns end of file or an error).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(within, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn half_sent_requests_are_dropped_after_the_header_timeout() {
    let dir = TempDir::new("sec-slow");
    let d = serve(&dir, "header_read_timeout_secs = 1").await;
    let mut held = half_open(d.port, 5).await;
    // An idle connection that sends nothing at all is dropped as well.
    let mut silent = TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
    let t0 = Instant::now();
    for s in &mut held {
        assert!(
            closed_within(s, Duration::from_secs(5)).await,
            "a half-sent request is still open after {:?}",
            t0.elapsed()
        );
    }
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    let (status, _) = get_as(d.port, "localhost", "/healthz", "").await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn healthz_answers_while_half_open_connections_exceed_the_descriptor_limit() {
    let dir = TempDir::new("sec-flood");
    let db = dir.path("state.db");
    populate(&db);
    // Headers may take a minute here: only the connection cap can keep /healthz answering.
    let config = serve_config(&dir, &db, "header_read_timeout_secs = 60");
    let d = match serve_binary(&config, "127.0.0.1:0", &[], &[], Some(128)).await {
        Ok(s) => s,
        Err(r) => panic!("serve exited {}: {}", r.code, r.stderr),
    };
    let _held = half_open(d.port, 300).await;
    for _ in 0..3 {
        let t0 = Instant::now();
        let answer = get_as(d.port, "localhost", "/healthz", "").await;
        let (status, body) = answer.unwrap_or_else(|| {
            panic!(
                "/healthz did not answer with 300 half-open connections held:\n{}",
                d.log()
            )
        });
        assert_eq!(status, 200, "{body}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }
    assert!(
        !d.log().contains("Too many open files"),
        "the server ran out of descriptors:\n{}",
        d.log()
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_idle_timeout() {
    let dir = TempDir::new("sec-idle");
    let db = dir.path("state.db");
    populate(&db);
    // An answer larger than what the socket buffers absorb, to a client that reads none of it.
    add_failure_of(&db, 12);
    let d = serve(&dir, "idle_timeout_secs = 1\nheader_read_timeout_secs = 60").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket
        .connect(([127, 0, 0, 1], d.port).into())
        .await
        .unwrap();
    s.write_all(b"GET /api/errors HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // Wait for the answer to start (building it may take seconds on a loaded machine), then
    // stop reading for longer than the idle timeout.
    let mut got = vec![0u8; 1];
    tokio::time::timeout(Duration::from_secs(60), s.read_exact(&mut got))
        .await
        .expect("the answer never started")
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the stalled connection is still open ({} bytes read)",
        got.len()
    );
    assert!(
        got.len() < 12 << 20,
        "the whole answer was sent: {} bytes",
        got.len()
    );
    let (status, _) = get_as(d.port, "localhost", "/healthz", "").await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let dir = TempDir::new("sec-body");
    let d = serve(&dir, "max_body_bytes = 1024").await;
    let t0 = Instant::now();
    let (status, _) = raw_request(
        d.port,
        "POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 104857600\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("an answer without sending the body");
    assert_eq!(status, 413);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

/// Resident memory high-water mark of a process, in kB.
fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Adds a failed run whose item carries a 1 MB value, as a hostile or broken API answer would.
fn add_megabyte_failure(db: &std::path::Path) {
    add_failure_of(db, 1);
}

fn add_failure_of(db: &std::path::Path, mb: usize) {
    let s = Store::open(db).unwrap();
    let run = s.start_run(&[Kind::Contact], false, false).unwrap();
    s.insert_run_items(
        run,
        &[RunItem {
            kind: Kind::Contact,
            source_id: "cust-big".into(),
            target_id: None,
            action: "update".into(),
            outcome: ItemOutcome::Failed,
            reason: Some("GHL refused the update: 422".into()),
            detail: json!({"status": 422, "body": "<".repeat(mb << 20)}),
        }],
    )
    .unwrap();
    s.finish_run(run, RunStatus::Partial, &json!({})).unwrap();
}

#[tokio::test]
async fn concurrent_heavy_pages_take_bounded_memory() {
    let dir = TempDir::new("sec-mem");
    let db = dir.path("state.db");
    populate(&db);
    add_megabyte_failure(&db);
    let d = serve(&dir, "").await;
    let pid = d.child.id().unwrap();
    let (status, page) = get_as(d.port, "localhost", "/errors", "").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("more characters"),
        "the 1 MB value is cut on the page"
    );
    let before = vm_hwm_kb(pid);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let port = d.port;
        let path = if i % 2 == 0 { "/errors" } else { "/api/errors" };
        tasks.push(tokio::spawn(async move {
            get_as(port, "localhost", path, "").await
        }));
    }
    for t in tasks {
        let (status, _) = t.await.unwrap().expect("every request is answered");
        assert_eq!(status, 200);
    }
    let grown_mb = vm_hwm_kb(pid).saturating_sub(before) / 1024;
    assert!(
        grown_mb < 100,
        "100 concurrent requests of a page holding a 1 MB value grew the server by {grown_mb} MB"
    );
}

#[tokio::test]
async fn a_foreign_host_name_gets_421_and_no_data() {
    let dir = TempDir::new("sec-host");
    let d = serve(&dir, "allowed_hosts = [\"dash.example.com\"]").await;
    let port = d.port;
    for host in [
        format!("evil.example:{port}"),
        "rebind.attacker.test".into(),
        format!("127.0.0.1.attacker.test:{port}"),
    ] {
        for path in ["/api/tasks", "/api/errors", "/tasks", "/healthz"] {
            let (status, text) = get_as(port, &host, path, "").await.unwrap();
            assert_eq!(status, 421, "{host} {path}: {text}");
            assert!(
                !text.contains(TASK_TITLE) && !text.contains("cust-9"),
                "{text}"
            );
        }
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "dash.example.com".into(),
        "DASH.EXAMPLE.COM:443".into(),
    ] {
        let (status, text) = get_as(port, &host, "/api/tasks", "").await.unwrap();
        assert_eq!(status, 200, "{host}: {text}");
        assert!(text.contains(TASK_TITLE), "{text}");
    }
}

#[tokio::test]
async fn listening_beyond_loopback_without_credentials_is_refused_at_start() {
    let dir = TempDir::new("sec-nocreds");
    let db = dir.path("state.db");
    populate(&db);
    let config = serve_config(&dir, &db, "");
    let refused = match serve_binary(&config, "0.0.0.0:0", &["--allow-remote"], &[], None).await {
        Ok(mut s) => {
            let _ = s.child.start_kill();
            panic!(
                "serve listened on 0.0.0.0 without credentials:\n{}",
                s.log()
            );
        }
        Err(r) => r,
    };
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("requires credentials"),
        "{}",
        refused.stderr
    );
}

/// A cheap Argon2id PHC string for `password` (the parameters travel in the string).
fn phc(password: &str) -> String {
    let a = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(256, 1, 1, None).unwrap(),
    );
    a.hash_password_with_salt(password.as_bytes(), b"saltsaltsaltsalt")
        .unwrap()
        .to_string()
}

fn basic(user: &str, password: &str) -> String {
    use base64ct::Encoding as _;
    format!(
        "Authorization: Basic {}\r\n",
        base64ct::Base64::encode_string(format!("{user}:{password}").as_bytes())
    )
}

const PASSWORD: &str = "correct horse battery";
const WRONG_PASSWORD: &str = "wrong-pass-7f3a";
const TOKEN: &str = "tok-4c1d9e0b7a";
const WRONG_TOKEN: &str = "tok-bad-91aa";

/// Writes a credential file private to its owner, as every secret file must be.
fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `[dashboard]` lines naming the user `ops`, its password hash file and a token file.
fn credentials(dir: &TempDir) -> String {
    let hash = dir.path("dashboard.hash");
    write_private(&hash, &format!("{}\n", phc(PASSWORD)));
    let token = dir.path("dashboard.token");
    write_private(&token, &format!("{TOKEN}\n"));
    format!(
        "user = \"ops\"\npassword_hash_file = {:?}\ntoken_file = {:?}\n",
        hash.display().to_string(),
        token.display().to_string()
    )
}

#[tokio::test]
async fn an_exposed_dashboard_requires_credentials_and_hides_personal_data() {
    let dir = TempDir::new("sec-auth");
    let db = dir.path("state.db");
    populate(&db);
    let config = serve_config(&dir, &db, &credentials(&dir));
    let d = match serve_binary(&config, "0.0.0.0:0", &["--allow-remote"], &[], None).await {
        Ok(s) => s,
        Err(r) => panic!("serve exited {}: {}", r.code, r.stderr),
    };
    let port = d.port;
    let host = format!("127.0.0.1:{port}");
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");

    for (headers, what) in [
        (String::new(), "no credentials"),
        (basic("ops", WRONG_PASSWORD), "a wrong password"),
        (basic("root", PASSWORD), "a wrong user"),
        (bearer(WRONG_TOKEN), "a wrong token"),
        ("Authorization: Digest x\r\n".into(), "another scheme"),
    ] {
        for path in ["/", "/api/tasks", "/api/errors", "/metrics"] {
            let (status, text) = get_as(port, &host, path, &headers).await.unwrap();
            assert_eq!(status, 401, "{what} {path}: {text}");
            assert!(!text.contains(TASK_TITLE), "{text}");
            assert!(
                text.to_ascii_lowercase()
                    .contains("www-authenticate: basic"),
                "{text}"
            );
        }
    }
    // /healthz is open by default (an uptime checker needs no password); it shows no record.
    let (status, _) = get_as(port, &host, "/healthz", "").await.unwrap();
    assert_eq!(status, 200);

    for headers in [basic("ops", PASSWORD), bearer(TOKEN)] {
        for path in [
            "/",
            "/tasks",
            "/errors",
            "/api/tasks",
            "/api/errors",
            "/metrics",
        ] {
            let (status, text) = get_as(port, &host, path, &headers).await.unwrap();
            assert_eq!(status, 200, "{path}: {text}");
            // Exposed, personal data is masked unless show_personal_data says otherwise.
            let hostile_value = format!("\"source\":\"{HOSTILE}\"");
            for personal in [
                TASK_TITLE,
                CONFLICT_VALUE,
                "Alice &amp; Bob",
                &hostile_value,
            ] {
                assert!(!text.contains(personal), "{path} shows {personal}:\n{text}");
            }
        }
    }
    let (_, errors) = get_as(port, &host, "/api/errors", &bearer(TOKEN))
        .await
        .unwrap();
    assert!(
        errors.contains("cust-9") && errors.contains("•••"),
        "{errors}"
    );

    let log = d.log();
    assert!(log.contains("authentication failed"), "{log}");
    for secret in [PASSWORD, WRONG_PASSWORD, TOKEN, WRONG_TOKEN] {
        assert!(!log.contains(secret), "the log shows a credential:\n{log}");
    }
}

#[tokio::test]
async fn healthz_and_metrics_can_be_protected_or_open() {
    let dir = TempDir::new("sec-open");
    let d = serve(
        &dir,
        &format!(
            "{}healthz = \"protected\"\nmetrics = \"open\"\n",
            credentials(&dir)
        ),
    )
    .await;
    let (status, _) = get_as(d.port, "localhost", "/healthz", "").await.unwrap();
    assert_eq!(status, 401);
    let (status, text) = get_as(d.port, "localhost", "/metrics", "").await.unwrap();
    assert_eq!(status, 200, "{text}");
    // Credentials, once configured, are required on loopback too.
    let (status, _) = get_as(d.port, "localhost", "/api/runs", "").await.unwrap();
    assert_eq!(status, 401);
    let (status, _) = get_as(d.port, "localhost", "/healthz", &basic("ops", PASSWORD))
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn show_personal_data_false_masks_pages_json_and_html_reports() {
    let dir = TempDir::new("sec-mask");
    let db = dir.path("state.db");
    populate(&db);
    // A run whose summary holds an email in a note and an unreadable phone.
    {
        let s = Store::open(&db).unwrap();
        let run = s.start_run(&[Kind::Contact], false, false).unwrap();
        s.finish_run(
            run,
            RunStatus::Succeeded,
            &json!({"kinds": {}, "notes": ["mail to bob@example.com bounced"],
                    "unreadable": {"customers.phone": {"count": 1, "sample": "555-CALL-ME"}}}),
        )
        .unwrap();
    }
    let shown = serve(&dir, "").await;
    let (_, text) = get_as(shown.port, "localhost", "/api/tasks", "")
        .await
        .unwrap();
    assert!(
        text.contains(TASK_TITLE),
        "shown on loopback by default: {text}"
    );
    let (_, text) = get_as(shown.port, "localhost", "/api/runs", "")
        .await
        .unwrap();
    assert!(
        text.contains("bob@example.com") && text.contains("555-CALL-ME"),
        "{text}"
    );
    drop(shown);

    let d = serve(&dir, "show_personal_data = false").await;
    for path in [
        "/tasks",
        "/errors",
        "/runs/2",
        "/runs/4",
        "/api/tasks",
        "/api/errors",
        "/api/runs",
        "/api/runs/2",
        "/api/runs/4",
    ] {
        let (status, text) = get_as(d.port, "localhost", path, "").await.unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        for personal in [
            TASK_TITLE,
            CONFLICT_VALUE,
            "Alice &amp; Bob",
            "Alice \\u0026 Bob",
            "bob@example.com",
            "555-CALL-ME",
        ] {
            assert!(!text.contains(personal), "{path} shows {personal}");
        }
    }

    let report = |config: &std::path::Path| {
        let out = std::process::Command::new(support::BIN)
            .arg("--config")
            .arg(config)
            .args(["report", "2", "--format", "html"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let db = dir.path("state.db");
    let html = report(&serve_config(&dir, &db, "show_personal_data = false"));
    assert!(html.contains("cust-9") && html.contains("•••"), "{html}");
    assert!(!html.contains("Alice &amp; Bob"), "{html}");
    let html = report(&serve_config(&dir, &db, ""));
    assert!(
        html.contains("Alice &amp; Bob"),
        "reports show it by default"
    );
}

#[tokio::test]
async fn dashboard_keys_and_credentials_are_checked_before_listening() {
    let dir = TempDir::new("sec-keys");
    let db = dir.path("state.db");
    populate(&db);
    let not_a_hash = dir.path("not-a-hash");
    write_private(&not_a_hash, "hunter2-plain-password\n");
    let open_token = dir.path("open-token");
    std::fs::write(&open_token, "hunter2-token\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open_token, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let cases = [
        ("alowed_hosts = []".to_string(), "unknown field"),
        ("user = \"ops\"".to_string(), "password_hash_file"),
        (
            "allowed_hosts = [\"https://dash.example.com/\"]".to_string(),
            "not a host name",
        ),
        ("header_read_timeout_secs = 0".to_string(), "greater than 0"),
        ("healthz = \"sometimes\"".to_string(), "unknown variant"),
        (
            format!(
                "user = \"ops\"\npassword_hash_file = {:?}",
                dir.path("missing").display().to_string()
            ),
            "cannot read secret file",
        ),
        (
            format!("token_file = {:?}", open_token.display().to_string()),
            "has mode 0644",
        ),
        (
            format!(
                "user = \"ops\"\npassword_hash_file = {:?}",
                not_a_hash.display().to_string()
            ),
            "not an Argon2 PHC string",
        ),
        (
            "token_env = \"HGS_TEST_UNSET_DASH_TOKEN\"".to_string(),
            "HGS_TEST_UNSET_DASH_TOKEN",
        ),
    ];
    for (lines, expected) in cases {
        let config = serve_config(&dir, &db, &lines);
        match serve_binary(&config, "127.0.0.1:0", &[], &[], None).await {
            Ok(mut s) => {
                let _ = s.child.start_kill();
                panic!("serve started with {lines}:\n{}", s.log());
            }
            Err(r) => {
                assert_eq!(r.code, 2, "{lines}: {}", r.stderr);
                assert!(r.stderr.contains(expected), "{lines}: {}", r.stderr);
                assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
            }
        }
    }
}

#[tokio::test]
async fn with_personal_data_masked_the_guest_search_looks_up_ids_only() {
    let dir = TempDir::new("sec-guest");
    let db = dir.path("state.db");
    populate(&db);
    let g = populate_guest(&db);
    let email = g.email.replace('@', "%40");
    let phone = g.phone.replace('+', "%2B");
    let conflict = g.conflict_value.replace('&', "&amp;");

    let shown = serve(&dir, "").await;
    for q in [email.as_str(), phone.as_str()] {
        let (status, text) = get_as(shown.port, "localhost", &format!("/guests?q={q}"), "")
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert!(text.contains(&conflict), "shown on loopback: {text}");
    }
    drop(shown);

    // Masked: an email or a phone finds nothing (the page is no oracle of who is a guest),
    // an id still finds the guest, with its personal values hidden.
    let d = serve(&dir, "show_personal_data = false").await;
    for q in [email.as_str(), phone.as_str()] {
        let (status, text) = get_as(d.port, "localhost", &format!("/guests?q={q}"), "")
            .await
            .unwrap();
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("No synced guest matches"), "{q}: {text}");
        assert!(text.contains("looked up by id only"), "{text}");
        let (status, _) = get_as(d.port, "localhost", &format!("/api/guests?q={q}"), "")
            .await
            .unwrap();
        assert_eq!(status, 404, "{q}");
    }
    for path in ["/guests?q=cust-20", "/api/guests?q=ghl-cust-20"] {
        let (status, text) = get_as(d.port, "localhost", path, "").await.unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        assert!(
            text.contains("cust-20") && text.contains("•••"),
            "{path}: {text}"
        );
        for personal in [
            conflict.as_str(),
            g.conflict_value,
            "Zo\\u00eb",
            "&lt;script&gt;",
            g.email,
            g.phone,
        ] {
            assert!(!text.contains(personal), "{path} shows {personal}:\n{text}");
        }
    }
}
