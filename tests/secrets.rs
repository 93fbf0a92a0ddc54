//! Secrets (issue 6): a full sync at trace level (`-vv` and `RUST_LOG=trace`), in both log
//! formats, with a Private Integration Token and with OAuth. No token, API key, client secret or
//! authorization code may appear in stdout, stderr, any report (text, JSON, HTML), or the state
//! database — except the OAuth pair in its own token table. The PIT is not stored at all.

mod support;

use support::reliability as reliab;

use hotspot_ghl_sync::store::Store;
use reliab::{CLIENT_SECRET, Env, Out, Setup, opts};
use secrecy::ExposeSecret;

/// Runs `args` at trace level in `format`, with `RUST_LOG=trace` too.
async fn traced(env: &Env, format: &str, args: &[&str]) -> Out {
    let mut full = vec!["-vv", "--log-format", format];
    full.extend_from_slice(args);
    let out = env
        .command(&full)
        .env("RUST_LOG", "trace")
        .output()
        .await
        .expect("binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_absent(what: &str, haystack: &[u8], secrets: &[String]) {
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        let found = haystack.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(!found, "a secret ({} chars) appears in {what}", s.len());
    }
}

/// Every output a user or operator sees: the sync's streams and the three report formats.
async fn check_outputs(env: &Env, format: &str, secrets: &[String]) -> usize {
    let mut bytes = 0;
    let sync = traced(env, format, &["sync"]).await;
    assert_eq!(sync.code, 0, "{}", sync.show());
    assert!(
        sync.stderr.lines().count() > 50,
        "trace level really logs ({format}): {} lines",
        sync.stderr.lines().count()
    );
    if format == "json" {
        let first = sync.stderr.lines().next().unwrap_or_default();
        assert!(
            serde_json::from_str::<serde_json::Value>(first).is_ok(),
            "JSON log lines: {first}"
        );
    }
    assert_absent(
        &format!("sync stdout ({format})"),
        sync.stdout.as_bytes(),
        secrets,
    );
    assert_absent(
        &format!("sync stderr ({format})"),
        sync.stderr.as_bytes(),
        secrets,
    );
    bytes += sync.stdout.len() + sync.stderr.len();
    for report in ["text", "json", "html"] {
        let file = env.dir.join(format!("report.{report}"));
        let out = traced(
            env,
            format,
            &[
                "report",
                "latest",
                "--format",
                report,
                "--output",
                file.to_str().unwrap(),
            ],
        )
        .await;
        assert_eq!(out.code, 0, "{}", out.show());
        let body = std::fs::read(&file).expect("report written");
        assert!(!body.is_empty(), "{report} report is empty");
        assert_absent(&format!("the {report} report"), &body, secrets);
        assert_absent(
            &format!("report stderr ({format})"),
            out.stderr.as_bytes(),
            secrets,
        );
        assert_absent(
            &format!("report stdout ({format})"),
            out.stdout.as_bytes(),
            secrets,
        );
        bytes += body.len() + out.stderr.len();
    }
    bytes
}

/// The state file and its WAL, as raw bytes.
fn state_file_bytes(env: &Env) -> Vec<u8> {
    let mut all = std::fs::read(env.state_path()).expect("state exists");
    if let Ok(wal) = std::fs::read(format!("{}-wal", env.state_path().display())) {
        all.extend(wal);
    }
    all
}

/// Every value of every row of every table but `tokens`, as text.
fn rows_outside_token_table(env: &Env) -> Vec<String> {
    let c = rusqlite::Connection::open(env.state_path()).unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'tokens'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::new();
    for t in tables {
        let mut stmt = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n {
                let v: rusqlite::types::Value = row.get(i).unwrap();
                out.push(match v {
                    rusqlite::types::Value::Text(s) => s,
                    rusqlite::types::Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
                    other => format!("{other:?}"),
                });
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_token_never_leaks_at_trace_level() {
    let env = Env::start("secrets-pit", opts(91, 30), Setup::default()).await;
    let secrets = vec![
        env.sandbox.ghl_token().to_string(),
        env.sandbox.hotspot_api_key().to_string(),
    ];
    let mut seen = 0;
    for format in ["text", "json"] {
        seen += check_outputs(&env, format, &secrets).await;
    }
    assert!(env.ghl_census().contacts > 0, "the sync wrote contacts");
    let db = state_file_bytes(&env);
    assert_absent("the state database file", &db, &secrets);
    eprintln!(
        "RESULT secrets PIT: {} secrets, 0 found in {seen} bytes of logs/reports (text+json, trace) and {} bytes of state file",
        secrets.len(),
        db.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_tokens_stay_in_the_token_table() {
    let setup = Setup {
        oauth: true,
        ..Setup::default()
    };
    let env = Env::start("secrets-oauth", opts(92, 30), setup).await;
    let code = env
        .sandbox
        .ghl
        .issue_auth_code(hotspot_ghl_sync::sandbox::ghl::PRODUCT_SCOPES);
    let exchange = traced(&env, "text", &["auth", "ghl", "exchange", "--code", &code]).await;
    assert_eq!(exchange.code, 0, "{}", exchange.show());
    // Rotate once mid-test so both an old and a current pair exist.
    env.sandbox.ghl.expire_access_tokens();

    let mut secrets = vec![
        env.sandbox.hotspot_api_key().to_string(),
        CLIENT_SECRET.to_string(),
        code.clone(),
    ];
    let pair = |env: &Env| {
        let store = Store::open(env.state_path()).unwrap();
        let t = store.token("ghl").unwrap().expect("stored pair");
        let mut v = vec![t.access_token.expose_secret().to_string()];
        v.extend(t.refresh_token.map(|r| r.expose_secret().to_string()));
        v
    };
    secrets.extend(pair(&env));
    let mut seen = exchange.stdout.len() + exchange.stderr.len();
    assert_absent("exchange output", exchange.stdout.as_bytes(), &secrets);
    assert_absent("exchange output", exchange.stderr.as_bytes(), &secrets);
    for format in ["text", "json"] {
        seen += check_outputs(&env, format, &secrets).await;
        secrets.extend(pair(&env));
    }
    assert!(
        env.sandbox.ghl.token_refreshes() >= 1,
        "the expired token was refreshed"
    );
    // Outputs again, now that every pair ever issued is known.
    for format in ["text", "json"] {
        seen += check_outputs(&env, format, &secrets).await;
    }
    let rows = rows_outside_token_table(&env);
    for (i, v) in rows.iter().enumerate() {
        assert_absent(
            &format!("state row value #{i} outside `tokens`"),
            v.as_bytes(),
            &secrets,
        );
    }
    // The file as a whole: never the client secret, the API key or the code.
    let db = state_file_bytes(&env);
    assert_absent("the state database file", &db, &secrets[..3]);
    eprintln!(
        "RESULT secrets OAuth: {} secrets (key, client secret, code, {} tokens), 0 found in {seen} bytes of logs/reports and {} values outside the token table; file bytes free of key/secret/code",
        secrets.len(),
        secrets.len() - 3,
        rows.len()
    );
}
