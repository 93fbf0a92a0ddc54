//! The state file under a careless operator (issue 14): read-only commands (`report`, `status`,
//! `serve`) that create and change nothing and say exactly why they cannot open a file, one lock
//! per database whatever the path, and private files for what the program writes.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::daemon::Daemon;
use support::reliability::{Env, Out, Setup, opts};

/// The user the read-only commands run as when the tests run as root (root ignores file modes,
/// so a permission test needs an ordinary user): `nobody`.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // A new file belongs to the effective user.
    let dir = support::TempDir::new("whoami");
    let probe = dir.path("me");
    std::fs::write(&probe, b"").unwrap();
    std::fs::metadata(&probe).unwrap().uid() == 0
}

/// Every file of `dir`: name, size, mode and content hash, to prove nothing was created or
/// changed.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, u32, u64)> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            let mut h = DefaultHasher::new();
            std::fs::read(e.path()).unwrap_or_default().hash(&mut h);
            (
                e.file_name().to_string_lossy().into_owned(),
                (meta.len(), meta.permissions().mode() & 0o7777, h.finish()),
            )
        })
        .collect()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

/// `args` run as the reader: `nobody` when the tests run as root, else the current user.
async fn as_reader(env: &Env, args: &[&str]) -> Out {
    let mut cmd = env.command(args);
    if is_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    Out::from_output(cmd.output().await.expect("binary runs"))
}

/// A state written by a real sync, then closed (no `-wal`/`-shm` beside it).
async fn synced_env(name: &str) -> Env {
    let env = Env::start(name, opts(14, 12), Setup::default()).await;
    env.sync_ok().await;
    // The folder and config are readable by the unprivileged reader.
    chmod(&env.dir, 0o755);
    chmod(&env.config, 0o644);
    env
}

/// `serve` as the reader on a free port: the dashboard's answers to `paths`, then it is stopped.
async fn served(env: &Env, paths: &[&str]) -> Vec<(u16, String)> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let log = env.dir.parent().unwrap().join(format!(
        "{}-serve.log",
        env.dir.file_name().unwrap().to_string_lossy()
    ));
    let mut cmd = std::process::Command::new(support::BIN);
    cmd.arg("--config")
        .arg(&env.config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if is_root() {
        use std::os::unix::process::CommandExt;
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let daemon = Daemon {
        child: cmd.spawn().expect("serve starts"),
        log: log.clone(),
    };
    let client = support::http_client();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "serve never answered; log:\n{}", daemon.log());
    let mut out = Vec::new();
    for p in paths {
        let res = client.get(format!("{base}{p}")).send().await.unwrap();
        out.push((res.status().as_u16(), res.text().await.unwrap()));
    }
    drop(daemon);
    let _ = std::fs::remove_file(log);
    out
}

/// The three read-only commands on a state the reader may read but not write (a 0400 file in
/// a folder it cannot write): they answer, and nothing on disk changes.
async fn assert_read_only_commands_answer(env: &Env, what: &str) {
    let before = snapshot(&env.dir);
    let report = as_reader(env, &["report", "latest", "--format", "json"]).await;
    assert_eq!(report.code, 0, "{what}: report\n{}", report.show());
    let json: serde_json::Value = serde_json::from_str(&report.stdout).expect("report is JSON");
    assert_eq!(json["status"], "succeeded", "{what}: {json}");
    let list = as_reader(env, &["report", "list"]).await;
    assert_eq!(list.code, 0, "{what}: report list\n{}", list.show());
    assert!(list.stdout.contains("normal"), "{what}: {}", list.stdout);
    let status = as_reader(env, &["status"]).await;
    assert_eq!(status.code, 0, "{what}: status\n{}", status.show());
    assert!(
        status.stdout.contains("contact"),
        "{what}: {}",
        status.stdout
    );
    let pages = served(env, &["/api/runs", "/"]).await;
    for (code, body) in &pages {
        assert_eq!(*code, 200, "{what}: serve answered {code}: {body}");
    }
    assert!(pages[0].1.contains("succeeded"), "{what}: {}", pages[0].1);
    assert_eq!(
        snapshot(&env.dir),
        before,
        "{what}: nothing created or changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_work_on_a_read_only_file_in_a_read_only_folder() {
    let env = synced_env("ro-file").await;
    let state = env.state_path();
    if is_root() {
        chown(&state, NOBODY);
    }
    chmod(&state, 0o400);
    // Not writable by the reader: root's folder for `nobody`, or no write bit for its owner.
    chmod(&env.dir, 0o555);
    assert_read_only_commands_answer(&env, "0400 file, read-only folder").await;
    chmod(&env.dir, 0o755);
}

/// A bind mount made read-only: the case where SQLite cannot create the shared index at all.
/// Needs the right to mount (root with CAP_SYS_ADMIN); skipped with the reason otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_read_a_healthy_file_on_a_read_only_mount() {
    let env = synced_env("ro-mount").await;
    let real = env.dir.join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::rename(env.state_path(), real.join("sync.db")).unwrap();
    std::fs::create_dir(env.dir.join("mnt")).unwrap();
    let mnt = env.dir.join("mnt");
    let mount = |args: &[&str]| {
        std::process::Command::new("mount")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !is_root() || !mount(&["--bind", real.to_str().unwrap(), mnt.to_str().unwrap()]) {
        eprintln!("SKIPPED: cannot bind-mount here (needs root with CAP_SYS_ADMIN)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    assert!(
        mount(&["-o", "remount,ro,bind", mnt.to_str().unwrap()]),
        "remount read-only"
    );
    assert!(
        std::fs::write(mnt.join("probe"), b"x").is_err(),
        "the mount is read-only"
    );
    // The state is read through the read-only mount, as root (the mount refuses writes to all).
    let text = env.config_text().replace(
        &env.state_path().display().to_string(),
        &mnt.join("sync.db").display().to_string(),
    );
    std::fs::write(&env.config, text).unwrap();
    let before = snapshot(&real);
    for args in [&["report", "latest"][..], &["status"][..]] {
        let out = env.run(args).await;
        assert_eq!(
            out.code,
            0,
            "{args:?} on a read-only mount:\n{}",
            out.show()
        );
        assert!(!out.stderr.contains("corrupt"), "{}", out.show());
    }
    // A writer is told the truth too: the file is fine, the mount is read-only.
    let sync = env.run(&["sync"]).await;
    assert_eq!(sync.code, 4, "{}", sync.show());
    assert!(
        sync.stderr.contains("Read-only file system"),
        "{}",
        sync.show()
    );
    assert!(!sync.stderr.contains("corrupt"), "{}", sync.show());
    assert_eq!(snapshot(&real), before, "nothing changed behind the mount");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unopenable_state_is_named_for_what_it_is_and_left_as_it_was() {
    let env = synced_env("ro-refused").await;
    let state = env.state_path();

    // Permission denied: another user's private file (root's, for `nobody`), or no read bit.
    chmod(&state, if is_root() { 0o600 } else { 0o000 });
    let before = snapshot(&env.dir);
    for args in [&["report", "latest"][..], &["status"][..]] {
        let out = as_reader(&env, args).await;
        assert_eq!(out.code, 4, "{args:?}\n{}", out.show());
        assert!(out.stderr.contains("permission denied"), "{}", out.show());
        assert!(out.stderr.contains("sync.db"), "{}", out.show());
        assert!(!out.stderr.contains("corrupt"), "{}", out.show());
    }
    assert_eq!(
        snapshot(&env.dir),
        before,
        "a refused open leaves nothing behind"
    );
    chmod(&state, 0o600);

    // Missing.
    let saved = env.dir.join("saved.db");
    std::fs::rename(&state, &saved).unwrap();
    let out = env.run(&["report", "latest"]).await;
    assert_eq!(out.code, 4, "{}", out.show());
    assert!(out.stderr.contains("does not exist"), "{}", out.show());
    assert!(!state.exists(), "report created no state");

    // Empty: an empty state, and still empty afterwards (no schema written into it).
    std::fs::write(&state, b"").unwrap();
    let out = env.run(&["report", "latest"]).await;
    assert!(out.stderr.contains("no run recorded yet"), "{}", out.show());
    let out = env.run(&["status"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    assert_eq!(
        std::fs::metadata(&state).unwrap().len(),
        0,
        "the empty file stays empty"
    );

    // Corrupt or not SQLite.
    std::fs::write(
        &state,
        b"this is not a database, just some text\n".repeat(200),
    )
    .unwrap();
    let before = snapshot(&env.dir);
    let out = env.run(&["report", "latest"]).await;
    assert_eq!(out.code, 4, "{}", out.show());
    assert!(
        out.stderr.contains("not a hotspot-ghl-sync database"),
        "{}",
        out.show()
    );
    assert_eq!(snapshot(&env.dir), before);

    // Newer schema.
    std::fs::rename(&saved, &state).unwrap();
    {
        let c = rusqlite::Connection::open(&state).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        c.execute_batch(&format!("PRAGMA user_version = {}", v + 3))
            .unwrap();
    }
    let before = snapshot(&env.dir);
    let out = env.run(&["status"]).await;
    assert_eq!(out.code, 4, "{}", out.show());
    assert!(out.stderr.contains("newer version"), "{}", out.show());
    assert_eq!(snapshot(&env.dir), before);

    // Older schema: read-only commands do not migrate.
    {
        let c = rusqlite::Connection::open(&state).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        c.execute_batch(&format!("PRAGMA user_version = {}", v - 4))
            .unwrap();
    }
    let before = snapshot(&env.dir);
    let out = env.run(&["report", "list"]).await;
    assert_eq!(out.code, 4, "{}", out.show());
    assert!(out.stderr.contains("run `sync` once"), "{}", out.show());
    assert_eq!(snapshot(&env.dir), before);
}

/// `args` under `config` instead of the env's own, with the env's secrets.
async fn run_with_config(env: &Env, config: &Path, args: &[&str]) -> Out {
    let mut cmd = tokio::process::Command::new(support::BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("HGS_CONFIG")
        .env_remove("RUST_LOG")
        .env("HGS_R_HS_KEY", env.sandbox.hotspot_api_key())
        .env("HGS_R_GHL_TOKEN", env.sandbox.ghl_token())
        .stdin(Stdio::null());
    Out::from_output(cmd.output().await.expect("binary runs"))
}

/// The config of `env` with the state reached through `path` instead.
fn config_through(env: &Env, name: &str, path: &Path) -> PathBuf {
    let text = env.config_text().replace(
        &env.state_path().display().to_string(),
        &path.display().to_string(),
    );
    let config = env.dir.join(name);
    std::fs::write(&config, text).unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_database_has_one_lock_whatever_path_reaches_it() {
    let mut o = opts(14, 12);
    // Slow enough that the first sync is still running while the others try.
    o.hotspot.latency = Duration::from_millis(150);
    let env = Env::start("lock-paths", o, Setup::default()).await;
    env.sync_ok().await;
    let state = env.state_path();
    let other = env.dir.join("other");
    std::fs::create_dir(&other).unwrap();
    let symlink = other.join("via-symlink.db");
    std::os::unix::fs::symlink(&state, &symlink).unwrap();
    let hardlink = other.join("via-hardlink.db");
    std::fs::hard_link(&state, &hardlink).unwrap();
    let dotdot = other.join("..").join("sync.db");

    let first = env
        .command(&["sync", "--full"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("first sync starts");
    let pid = first.id().expect("running");
    let lock = hotspot_ghl_sync::store::lock_path(&state);
    let mut held = false;
    for _ in 0..400 {
        if std::fs::read_to_string(&lock).is_ok_and(|t| t.trim() == pid.to_string()) {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held, "the first sync took the lock");

    for (name, path, names_pid) in [
        ("symlink", &symlink, true),
        ("dotdot", &dotdot, true),
        // Another name of the same file: the lock file beside it is another one, so the
        // holder is not known, but the database is still refused.
        ("hardlink", &hardlink, false),
    ] {
        let config = config_through(&env, &format!("{name}.toml"), path);
        let out = run_with_config(&env, &config, &["sync"]).await;
        assert_eq!(out.code, 3, "{name}: second sync refused\n{}", out.show());
        assert!(
            out.stderr.contains("in use by another"),
            "{name}: {}",
            out.show()
        );
        if names_pid {
            assert!(
                out.stderr.contains(&format!("pid {pid}")),
                "{name}: {}",
                out.show()
            );
        }
    }

    let first = first.wait_with_output().await.unwrap();
    let first = Out::from_output(first);
    assert_eq!(
        first.code,
        0,
        "the first sync is unharmed\n{}",
        first.show()
    );
    let report = env.report_json().await;
    assert_eq!(report["status"], "succeeded", "{report}");
    let list = env.run(&["report", "list"]).await;
    assert!(!list.stdout.contains("aborted"), "{}", list.show());
}

/// A private file holding `value`.
fn write_secret(path: &Path, value: &str) {
    std::fs::write(path, format!("{value}\n")).unwrap();
    chmod(path, 0o600);
}

/// The config of `env` with both credentials in files (`hs.key`, `ghl.token`, written from the
/// emulators' current values) and, when `schedule` is given, a `[schedule]` table of it.
fn config_with_secret_files(env: &Env, schedule: Option<&str>) -> (PathBuf, PathBuf) {
    let hs = env.dir.join("hs.key");
    let ghl = env.dir.join("ghl.token");
    write_secret(&hs, env.sandbox.hotspot_api_key());
    write_secret(&ghl, env.sandbox.ghl_token());
    let mut text = env
        .config_text()
        .replace(
            "api_key_env = \"HGS_R_HS_KEY\"",
            &format!("api_key_file = {:?}", hs.display().to_string()),
        )
        .replace(
            "token_env = \"HGS_R_GHL_TOKEN\"",
            &format!("token_file = {:?}", ghl.display().to_string()),
        );
    if let Some(s) = schedule {
        text.push_str(&format!("\n[schedule]\n{s}"));
    }
    std::fs::write(&env.config, text).unwrap();
    (hs, ghl)
}

/// `run` under `env`'s config, without the secrets in its environment.
fn spawn_daemon(env: &Env) -> Daemon {
    let log = env.dir.join("daemon.log");
    let child = std::process::Command::new(support::BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .env_remove("HGS_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("HGS_R_HS_KEY")
        .env_remove("HGS_R_GHL_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the daemon starts");
    Daemon { child, log }
}

/// Waits for a pass that started after `after` and succeeded; panics with the log after `limit`.
async fn succeeded_pass_after(
    env: &Env,
    daemon: &Daemon,
    after: chrono::DateTime<chrono::Utc>,
    what: &str,
) {
    use hotspot_ghl_sync::store::{RunStatus, Store};
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(store) = Store::open_read_only(env.state_path())
            && let Ok(runs) = store.runs(50)
            && runs
                .iter()
                .any(|r| r.started_at > after && r.status == RunStatus::Succeeded)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: no successful pass; daemon log:\n{}", daemon.log());
}

/// Passes that started after `after`, with their status.
fn passes_after(env: &Env, after: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    hotspot_ghl_sync::store::Store::open_read_only(env.state_path())
        .unwrap()
        .runs(100)
        .unwrap()
        .into_iter()
        .filter(|r| r.started_at > after)
        .map(|r| r.status.as_str().to_string())
        .collect()
}

/// Credentials rotated under a running daemon, under both readings of what GHL does to the old
/// token, are used at once, without a restart, and neither value is ever logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secret_files_are_used_by_a_running_daemon_without_a_restart() {
    use hotspot_ghl_sync::sandbox::ghl::PitRotation;
    for reading in [PitRotation::ExpireOldNow, PitRotation::KeepOldForNow] {
        let env = Env::start("rotate", opts(14, 12), Setup::default()).await;
        let (hs_file, ghl_file) =
            config_with_secret_files(&env, Some("contacts = \"*/1 * * * * *\"\n"));
        let old_token = env.sandbox.ghl_token().to_string();
        let old_key = env.sandbox.hotspot_api_key().to_string();
        let mut daemon = spawn_daemon(&env);
        let pid = daemon.pid();
        succeeded_pass_after(&env, &daemon, chrono::Utc::now(), "before rotation").await;

        // GHL first, as an operator who rotates in the UI and then updates the file.
        let new_token = "pit-rotated-0123456789abcdef";
        env.sandbox
            .ghl
            .rotate_private_token(&old_token, new_token, reading);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let rotated = chrono::Utc::now();
        write_secret(&ghl_file, new_token);
        succeeded_pass_after(
            &env,
            &daemon,
            rotated,
            &format!("{reading:?}: new GHL token"),
        )
        .await;
        if reading == PitRotation::KeepOldForNow {
            // The grace period ends: only the new token works from now on.
            env.sandbox
                .ghl
                .rotate_private_token(&old_token, new_token, PitRotation::ExpireOldNow);
        }

        // HotspotSystem: the file first, then the regenerated key takes effect.
        let new_key = "hs-rotated-key-9876543210";
        write_secret(&hs_file, new_key);
        env.sandbox.hotspot.rotate_api_key(new_key);
        let both = chrono::Utc::now();
        succeeded_pass_after(
            &env,
            &daemon,
            both,
            &format!("{reading:?}: new HotspotSystem key"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let later = passes_after(&env, both + chrono::Duration::milliseconds(500));
        assert!(
            !later.is_empty() && later.iter().all(|s| s == "succeeded" || s == "running"),
            "{reading:?}: every pass after both rotations succeeds: {later:?}\n{}",
            daemon.log()
        );

        assert_eq!(daemon.pid(), pid);
        assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
        let log = daemon.log();
        for secret in [&old_token[..], new_token, &old_key[..], new_key] {
            assert!(
                !log.contains(secret),
                "{reading:?}: a secret value is in the log"
            );
        }
        assert!(log.contains("secret file changed"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_files_readable_by_others_are_refused_unless_allowed() {
    let env = Env::start("secret-modes", opts(14, 12), Setup::default()).await;
    let (hs_file, ghl_file) = config_with_secret_files(&env, None);
    chmod(&hs_file, 0o644);
    chmod(&ghl_file, 0o666);
    let sync = run_with_config(&env, &env.config, &["sync"]).await;
    assert_eq!(sync.code, 2, "{}", sync.show());
    assert!(
        sync.stderr.contains(hs_file.to_str().unwrap()),
        "{}",
        sync.show()
    );
    assert!(sync.stderr.contains("0644"), "{}", sync.show());
    assert!(
        sync.stderr.contains("--allow-insecure-secret-files"),
        "{}",
        sync.show()
    );
    assert_eq!(env.ghl_writes(), 0, "nothing synced");

    chmod(&hs_file, 0o600);
    let sync = run_with_config(&env, &env.config, &["sync"]).await;
    assert_eq!(sync.code, 2, "{}", sync.show());
    assert!(
        sync.stderr.contains(ghl_file.to_str().unwrap()),
        "{}",
        sync.show()
    );
    assert!(sync.stderr.contains("0666"), "{}", sync.show());

    let sync = run_with_config(
        &env,
        &env.config,
        &["--allow-insecure-secret-files", "sync"],
    )
    .await;
    assert_eq!(sync.code, 0, "{}", sync.show());
    assert!(
        sync.stderr.contains("0666"),
        "a warning names the mode: {}",
        sync.show()
    );
    assert!(
        sync.stderr.contains(ghl_file.to_str().unwrap()),
        "{}",
        sync.show()
    );
    assert!(
        !sync.stderr.contains(env.sandbox.ghl_token()),
        "{}",
        sync.show()
    );

    // Reports hold guests' data: written for the owner only, an existing file included.
    for (name, existing) in [("new.html", false), ("old.html", true)] {
        let file = env.dir.join(name);
        if existing {
            std::fs::write(&file, b"old").unwrap();
            chmod(&file, 0o644);
        }
        let out = env
            .run(&[
                "report",
                "latest",
                "--format",
                "html",
                "--output",
                file.to_str().unwrap(),
            ])
            .await;
        assert_eq!(out.code, 0, "{}", out.show());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}: report mode {mode:o}");
        assert!(std::fs::read_to_string(&file).unwrap().contains("<html"));
    }
}

/// A request sent with the old HotspotSystem key while the key is rotated (in its file and at
/// the API) gets a 401; the client reads the file again and sends it once more with the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_mid_rotation_is_sent_again_with_the_new_key() {
    use hotspot_ghl_sync::hotspot::HotspotClient;
    use hotspot_ghl_sync::http::{HttpPolicy, PolicyConfig};
    use hotspot_ghl_sync::sandbox::hotspot::{HotspotEmulator, HotspotOptions};
    use hotspot_ghl_sync::secret::{InsecureFiles, Secret};

    let emu = HotspotEmulator::start(
        hotspot_ghl_sync::sandbox::seed::generate(&opts(14, 3).seed),
        HotspotOptions {
            api_key: "hs-old-key".into(),
            // The key is checked after this delay: the rotation lands while the request waits.
            latency: Duration::from_millis(400),
            ..HotspotOptions::default()
        },
    )
    .await
    .unwrap();
    let dir = support::TempDir::new("mid-rotation");
    let file = dir.path("hs.key");
    write_secret(&file, "hs-old-key");
    let policy = HttpPolicy::new(
        PolicyConfig {
            api: "hotspot",
            rate_max: 1_000,
            rate_window: Duration::from_secs(1),
            max_attempts: 1,
            max_elapsed: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(40),
            daily_reserve: 0,
            daily_recheck: Duration::from_secs(3600),
            max_response_bytes: 1 << 20,
        },
        hotspot_ghl_sync::http::AuditSink::new(),
    )
    .unwrap();
    let key = Secret::from_file("hotspot.api_key_file", &file, InsecureFiles::Refuse).unwrap();
    let client = HotspotClient::with_secret(&emu.base_url(), key, policy).unwrap();
    let call = tokio::spawn(async move { client.me().await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    write_secret(&file, "hs-new-key");
    emu.rotate_api_key("hs-new-key");
    let answer = call.await.unwrap();
    assert!(answer.is_ok(), "{answer:?}");
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 200], "refused once, then accepted");
}

/// The OAuth client secret regenerated in the marketplace and in `client_secret_file` under a
/// running daemon: its next token refresh uses the new secret, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_secret_file_is_used_by_the_next_refresh() {
    let setup = Setup {
        oauth: true,
        ..Setup::default()
    };
    let env = Env::start("rotate-oauth", opts(14, 12), setup).await;
    env.oauth_connect().await;
    let secret_file = env.dir.join("client.secret");
    write_secret(&secret_file, support::CLIENT_SECRET);
    let text = env.config_text().replace(
        "client_secret_env = \"HGS_R_CLIENT_SECRET\"",
        &format!(
            "client_secret_file = {:?}",
            secret_file.display().to_string()
        ),
    ) + "\n[schedule]\ncontacts = \"*/1 * * * * *\"\n";
    std::fs::write(&env.config, text).unwrap();
    let log = env.dir.join("daemon.log");
    let child = std::process::Command::new(support::BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .env_remove("HGS_CONFIG")
        .env_remove("RUST_LOG")
        .env("HGS_R_HS_KEY", env.sandbox.hotspot_api_key())
        .env("HGS_R_CLIENT_ID", support::CLIENT_ID)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the daemon starts");
    let mut daemon = Daemon { child, log };
    succeeded_pass_after(&env, &daemon, chrono::Utc::now(), "before rotation").await;

    let new_secret = "emu-client-secret-rotated";
    write_secret(&secret_file, new_secret);
    env.sandbox.ghl.rotate_client_secret(new_secret);
    let refreshes = env.sandbox.ghl.token_refreshes();
    // The access token ends: the next pass must refresh, with the client secret.
    env.sandbox.ghl.expire_access_tokens();
    let rotated = chrono::Utc::now();
    succeeded_pass_after(&env, &daemon, rotated, "after the client secret rotated").await;
    assert!(
        env.sandbox.ghl.token_refreshes() > refreshes,
        "the pass refreshed its token"
    );
    assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
    assert!(
        !daemon.log().contains(new_secret),
        "the secret is not logged"
    );
}
