//! What a new user sees, in a real headless browser (Debian's `chromium`): the REAL binary runs
//! `demo --state-dir <tmp>`, then `serve` over the demo's database with a config that names no
//! secret it can read (as right after the demo), and the main pages must load and show the
//! numbers the demo printed; the guest page must show a synced guest found by email, and the
//! API-call page the demo's calls. Screenshots are saved under the test target directory; set
//! `HGS_UPDATE_DASHBOARD_PNG=1` to refresh `docs/dashboard.png` (overview),
//! `docs/dashboard-guest.png` and `docs/dashboard-calls.png` from them.
//! (Hostile values and every page's details are checked over a fixture in `tests/dashboard.rs`.)
//!
//! Chromium is installed by `scripts/install-chromium.sh` when missing; the test is skipped,
//! with a message on stderr, only when that install fails (no network, no root).

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt as _;
use support::{BIN, TempDir};

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The chromium binary, installing it when missing; `Err` carries the installer's output.
fn ensure_chromium() -> Result<PathBuf, String> {
    if let Some(p) = find_chromium() {
        return Ok(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-chromium.sh");
    let out = std::process::Command::new("sh")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    find_chromium().ok_or_else(|| {
        format!(
            "{} exited with {}:\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

struct Browser {
    bin: PathBuf,
    profiles: PathBuf,
    n: std::sync::atomic::AtomicUsize,
}

impl Browser {
    /// Runs headless chromium with `args` then `url` and a fresh profile; returns stdout.
    async fn run(&self, args: &[String], url: &str) -> String {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let profile = self.profiles.join(format!("profile-{n}"));
        std::fs::create_dir_all(&profile).unwrap();
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("chromium did not finish on {url} within 90 s"))
            .expect("chromium starts");
        assert!(
            out.status.success(),
            "chromium failed on {url}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn dom(&self, url: String) -> String {
        self.run(&["--dump-dom".to_string()], &url).await
    }

    async fn screenshot(&self, url: String, file: PathBuf) {
        let _ = std::fs::remove_file(&file);
        self.run(
            &[
                format!("--screenshot={}", file.display()),
                "--window-size=1280,900".to_string(),
                // Without these the capture can happen mid-paint (half-drawn tables).
                "--run-all-compositor-stages-before-draw".to_string(),
                "--virtual-time-budget=2000".to_string(),
            ],
            &url,
        )
        .await;
    }
}

/// At most two browsers at a time: the machine is small and shared.
const PARALLEL: usize = 2;

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 24, "PNG too short");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// The demo's per-kind table (`kind created adopted updated …`), by kind and column.
fn demo_counts(stdout: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("kind "));
    let header: Vec<&str> = lines
        .next()
        .expect("the demo prints its per-kind table")
        .split_whitespace()
        .skip(1)
        .collect();
    let mut out = BTreeMap::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() != header.len() + 1 {
            break;
        }
        let row = header
            .iter()
            .zip(&words[1..])
            .map(|(h, n)| (h.to_string(), n.parse().expect("a count")))
            .collect();
        out.insert(words[0].to_string(), row);
    }
    out
}

/// The page's text as a reader sees it: no style, no markup, whitespace collapsed.
fn visible_text(dom: &str) -> String {
    let mut out = String::new();
    let mut rest = dom;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        out.push(' ');
        let after = &rest[i..];
        let skip_to = if after.starts_with("<style") {
            after.find("</style>").map(|e| e + "</style>".len())
        } else {
            after.find('>').map(|e| e + 1)
        };
        rest = &after[skip_to.unwrap_or(after.len())..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The number right after `label` in `text`.
fn number_after(text: &str, label: &str) -> Option<u64> {
    let i = text.find(label)? + label.len();
    text[i..].split_whitespace().next()?.parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The progress bars' cursor movements (erase line, cursor up); colour codes are not these.
fn has_progress_codes(s: &str) -> bool {
    s.contains("\x1b[2K") || s.contains("\x1b[1A") || s.contains('\r')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_after_a_demo_sync_in_headless_chromium() {
    let bin = match tokio::task::spawn_blocking(ensure_chromium).await.unwrap() {
        Ok(bin) => bin,
        Err(why) => {
            // Written to the real stderr (not captured) so a skip is never silent.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED browser test: chromium is not installed and could not be installed.\n{why}\n"
            );
            return;
        }
    };
    let dir = TempDir::new("demo");
    let state_dir = dir.path("state");

    // 1. The demo, as a new user runs it (small data: a browser test, not a load test).
    let demo = tokio::process::Command::new(BIN)
        .args([
            "demo",
            "--customers",
            "60",
            "--subscribers",
            "15",
            "--transactions",
            "150",
            "--state-dir",
        ])
        .arg(&state_dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&demo.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&demo.stderr).into_owned();
    assert!(demo.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        !has_progress_codes(&stderr),
        "no terminal, yet progress was drawn: {stderr:?}"
    );
    let db = state_dir.join("demo.db");
    assert!(db.is_file(), "the demo kept no state at {}", db.display());
    assert!(
        stdout.contains("hotspot-ghl-sync demo --state-dir state")
            && stdout.contains("[state] path"),
        "the demo's last lines say how to serve its state:\n{stdout}"
    );
    let counts = demo_counts(&stdout);
    let n = |kind: &str, col: &str| counts[kind][col];
    let contacts = n("contact", "created") + n("contact", "adopted");
    let notes = n("note", "created");
    let tasks = n("task", "created");
    let created: u64 = counts.values().map(|c| c["created"]).sum();
    assert!(
        contacts > 0 && notes > 0 && tasks > 0,
        "the demo synced nothing:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("GHL now holds {contacts} contacts.")),
        "every GHL contact is linked after the demo:\n{stdout}"
    );

    // 2. `serve` over it: the demo's config with the state path pointed at the demo's db, and
    //    the secrets it names unset (read-only commands need none).
    let demo_toml =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml"))
            .unwrap();
    let config = dir.path("demo.toml");
    std::fs::write(
        &config,
        demo_toml.replace(
            "path = \"state/demo.db\"",
            &format!("path = {:?}", db.display().to_string()),
        ),
    )
    .unwrap();
    let port = free_port();
    let mut serve = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("HGS_DEMO_HOTSPOT_KEY")
        .env_remove("HGS_DEMO_GHL_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Some(status) = serve.try_wait().unwrap() {
            let mut err = String::new();
            use tokio::io::AsyncReadExt as _;
            serve
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .await
                .unwrap();
            panic!("serve exited with {status}: {err}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not listen on {base}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The guest the guest page looks up: the one with the most notes among those with an
    // email, and what the state holds about it; and run 1's API calls on contacts.
    let (guest, ghl_id, email, links, notes_of_guest, tasks_of_guest, calls): (
        String,
        String,
        String,
        i64,
        i64,
        i64,
        i64,
    ) = {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let children = |kind: &str| {
            format!(
                "(SELECT count(*) FROM links c WHERE c.kind = '{kind}' \
                 AND json_extract(c.extra, '$.contact_id') = l.target_id)"
            )
        };
        let (guest, ghl_id, email, notes, tasks) = conn
            .query_row(
                &format!(
                    "SELECT source_id, target_id, json_extract(extra, '$.source_fields.email'), \
                     {}, {} FROM links l WHERE kind = 'contact' \
                     AND json_extract(extra, '$.source_fields.email') IS NOT NULL \
                     ORDER BY 4 DESC, source_id LIMIT 1",
                    children("note"),
                    children("task")
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        let links = conn
            .query_row(
                "SELECT count(*) FROM links WHERE kind = 'contact' \
                 AND json_extract(extra, '$.source_fields.email') = ?1",
                [&email],
                |r| r.get(0),
            )
            .unwrap();
        let calls = conn
            .query_row(
                "SELECT count(*) FROM api_calls WHERE run_id = 1 AND instr(path, '/contacts') > 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (guest, ghl_id, email, links, notes, tasks, calls)
    };
    assert!(
        notes_of_guest > 0 && calls > 100,
        "the demo recorded too little"
    );
    let guest_path = format!("/guests?q={}", email.replace('@', "%40"));
    let calls_path = "/calls?run=1&path=%2Fcontacts";

    // 3. The pages in the browser, with the demo's numbers.
    let browser = Browser {
        bin,
        profiles: dir.path("profiles"),
        n: Default::default(),
    };
    let pages: Vec<(&str, Vec<String>)> = vec![
        (
            "/",
            vec![
                "Latest runs".into(),
                "#1 succeeded".into(),
                format!("Contacts linked {contacts}"),
                format!("Notes synced {notes}"),
                format!("Tasks {tasks}"),
            ],
        ),
        ("/runs", vec!["#1".into(), "succeeded".into()]),
        (
            "/runs/1",
            vec![
                "Run #1".into(),
                format!("Created {created}"),
                "Counts per kind and action".into(),
            ],
        ),
        ("/contacts", vec![format!("New contacts {contacts}")]),
        // Notes are counted per day of their transaction; the seeded ones are older than
        // the page's window, so only the page itself is checked here (the count is on "/").
        ("/notes", vec!["Notes per day by transaction type".into()]),
        (
            "/tasks",
            vec!["Onboarding tasks per rule".into(), "welcome".into()],
        ),
        (
            guest_path.as_str(),
            vec![
                format!("Contact links ({links})"),
                guest.clone(),
                ghl_id.clone(),
                "History (".into(),
                format!("Notes ({notes_of_guest})"),
                format!("Tasks ({tasks_of_guest})"),
            ],
        ),
        (
            calls_path,
            vec![
                "API calls of run #1".into(),
                format!("Calls 1–100 of {calls}."),
                "ghl PUT /contacts/{id} 200".into(),
                "ghl POST /contacts/ 201".into(),
            ],
        ),
    ];
    let doms: Vec<String> = futures_util::stream::iter(
        pages
            .iter()
            .map(|(path, _)| browser.dom(format!("{base}{path}"))),
    )
    .buffered(PARALLEL)
    .collect()
    .await;
    for ((path, expected), dom) in pages.iter().zip(&doms) {
        assert!(dom.contains("<html"), "{path}: no document: {dom}");
        assert!(
            !dom.to_ascii_lowercase().contains("<script"),
            "{path}: a script element exists in the parsed DOM"
        );
        assert!(dom.contains("<nav>"), "{path}: navigation");
        let text = visible_text(dom);
        for e in expected {
            assert!(
                text.contains(e.as_str()),
                "{path}: missing {e:?} in\n{text}"
            );
        }
    }
    // The tasks page's per-rule counts add up to the tasks the demo created.
    let tasks_text = visible_text(&doms[5]);
    let per_rule: u64 = ["paid-followup", "welcome"]
        .iter()
        .filter_map(|rule| number_after(&tasks_text, &format!("{rule} ")))
        .sum();
    assert_eq!(per_rule, tasks, "tasks per rule:\n{tasks_text}");

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screens");
    std::fs::create_dir_all(&shots).unwrap();
    let targets = [
        ("/", "overview.png"),
        ("/runs", "runs.png"),
        ("/runs/1", "run.png"),
        ("/contacts", "contacts.png"),
        ("/notes", "notes.png"),
        ("/tasks", "tasks.png"),
        (guest_path.as_str(), "guest.png"),
        (calls_path, "calls.png"),
    ];
    futures_util::stream::iter(
        targets
            .iter()
            .map(|(path, file)| browser.screenshot(format!("{base}{path}"), shots.join(file))),
    )
    .buffered(PARALLEL)
    .collect::<Vec<()>>()
    .await;
    for (path, file) in targets {
        let bytes = std::fs::read(shots.join(file))
            .unwrap_or_else(|e| panic!("{path}: no screenshot {file}: {e}"));
        assert_eq!(png_size(&bytes), (1280, 900), "{file}");
        // A blank page compresses to a few KB; a rendered dashboard is much larger.
        assert!(
            bytes.len() > 15_000,
            "{file} looks blank ({} bytes)",
            bytes.len()
        );
    }
    let _ = serve.start_kill();
    let _ = writeln!(
        std::io::stderr(),
        "browser test: screenshots in {}",
        shots.display()
    );
    if std::env::var_os("HGS_UPDATE_DASHBOARD_PNG").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        for (shot, doc) in [
            ("overview.png", "dashboard.png"),
            ("guest.png", "dashboard-guest.png"),
            ("calls.png", "dashboard-calls.png"),
        ] {
            std::fs::copy(shots.join(shot), docs.join(doc)).unwrap();
        }
    }
}
