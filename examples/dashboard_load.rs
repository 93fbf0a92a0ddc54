//! Measures the dashboard under the two loads of issue 14, against any build of the binary:
//!
//! 1. **Half-open connections** under a descriptor limit (`ulimit -n`, 1024 by default): opens
//!    `--half-open` connections that each send the start of a request and never finish it,
//!    then asks `/healthz`. Prints how many the server still holds and whether (and how fast)
//!    `/healthz` answered.
//! 2. **Peak memory**: a fresh `serve` over a state whose one failed item carries a `--value-mb`
//!    value, then `--parallel` concurrent GETs of `--path`. Prints the serve process's peak RSS
//!    (`VmHWM`, what `/usr/bin/time -v` calls "Maximum resident set size") and its RSS after.
//!
//! ```sh
//! cargo build --release && cargo run --release --example dashboard_load -- --bin target/release/hotspot-ghl-sync
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::store::{ItemOutcome, RunItem, RunStatus, Store};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

struct Args {
    bin: PathBuf,
    nofile: u64,
    half_open: usize,
    parallel: usize,
    value_mb: usize,
    path: String,
    /// `[dashboard] max_connections` (builds that know the key only).
    max_connections: Option<usize>,
}

fn args() -> Args {
    let mut a = Args {
        bin: PathBuf::from("target/release/hotspot-ghl-sync"),
        nofile: 1024,
        half_open: 1100,
        parallel: 300,
        value_mb: 1,
        path: "/errors".into(),
        max_connections: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--bin" => a.bin = value().into(),
            "--nofile" => a.nofile = value().parse().unwrap(),
            "--half-open" => a.half_open = value().parse().unwrap(),
            "--parallel" => a.parallel = value().parse().unwrap(),
            "--value-mb" => a.value_mb = value().parse().unwrap(),
            "--path" => a.path = value(),
            "--max-connections" => a.max_connections = Some(value().parse().unwrap()),
            _ => {
                eprintln!(
                    "usage: dashboard_load [--bin PATH] [--nofile 1024] [--half-open 1100] \
                     [--parallel 300] [--value-mb 1] [--path /errors] [--max-connections N]"
                );
                std::process::exit(2);
            }
        }
    }
    a
}

fn state(dir: &Path, value_mb: usize, max_connections: Option<usize>) -> PathBuf {
    let db = dir.join("state.db");
    let s = Store::open(&db).unwrap();
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
            detail: json!({"status": 422, "body": "<".repeat(value_mb << 20)}),
        }],
    )
    .unwrap();
    s.finish_run(run, RunStatus::Partial, &json!({})).unwrap();
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\npath = {:?}\n\n[hotspot]\napi_key_env = \"UNSET_HS\"\n\n[ghl]\n\
             location_id = \"loc\"\ntoken_env = \"UNSET_GHL\"\n\n[schedule]\n\
             contacts = \"*/5 * * * *\"\nnotes = \"off\"\ntasks = \"off\"\nfull = \"off\"\n",
            db.display().to_string()
        ) + &max_connections
            .map(|n| format!("\n[dashboard]\nmax_connections = {n}\n"))
            .unwrap_or_default(),
    )
    .unwrap();
    config
}

struct Served {
    child: tokio::process::Child,
    port: u16,
}

async fn serve(bin: &Path, config: &Path, nofile: u64) -> Served {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: nofile as libc::rlim_t,
                rlim_max: nofile as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("the binary starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("serve printed its address");
        if let Some(rest) = line.split("Dashboard on http://").nth(1) {
            let addr = rest.split('/').next().unwrap();
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            if std::env::var_os("HGS_LOAD_LOG").is_some() {
                eprintln!("serve: {l}");
            }
        }
    });
    Served { child, port }
}

async fn get(port: u16, path: &str, within: Duration) -> Option<u16> {
    let fut = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        if std::env::var_os("HGS_LOAD_LOG").is_some() && !buf.starts_with(b"HTTP/1.1 200") {
            eprintln!("{path}: {}", String::from_utf8_lossy(&buf));
        }
        String::from_utf8_lossy(&buf)
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    tokio::time::timeout(within, fut).await.ok().flatten()
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = std::env::temp_dir().join(format!("hgs-dashboard-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = state(&dir, a.value_mb, a.max_connections);
    println!("binary: {}", a.bin.display());

    // 1. Half-open connections.
    let s = serve(&a.bin, &config, a.nofile).await;
    let mut held = Vec::new();
    for _ in 0..a.half_open {
        // 5 s: a SYN dropped while the accept queue is full is sent again after 1 s.
        let c = tokio::time::timeout(
            Duration::from_secs(5),
            TcpStream::connect(("127.0.0.1", s.port)),
        )
        .await;
        let Ok(Ok(mut c)) = c else {
            continue;
        };
        if c.write_all(b"GET /errors HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .is_ok()
        {
            held.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = held
        .iter()
        .filter(|c| {
            let mut b = [0u8; 1];
            matches!(c.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    let t0 = Instant::now();
    let health = get(s.port, "/healthz", Duration::from_secs(10)).await;
    println!(
        "half-open: ulimit -n {}; {} sent, {} connected, {} still open (accepted or queued); /healthz: {}",
        a.nofile,
        a.half_open,
        held.len(),
        open,
        match health {
            Some(code) => format!("{code} in {} ms", t0.elapsed().as_millis()),
            None => "no answer within 10 s".into(),
        }
    );
    drop(held);
    drop(s);

    // 2. Peak memory under parallel heavy requests.
    let s = serve(&a.bin, &config, a.nofile).await;
    let pid = s.child.id().unwrap();
    let warm = get(s.port, &a.path, Duration::from_secs(60)).await;
    let base = status_kb(pid, "VmHWM:");
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.parallel {
        let (port, path) = (s.port, a.path.clone());
        tasks.push(tokio::spawn(async move {
            get(port, &path, Duration::from_secs(120)).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == Some(200) {
            ok += 1;
        }
    }
    let took = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "memory: {} parallel GET {} ({} MB value; warm-up {:?}): {} answered 200 in {:.1} s; \
         peak RSS {} MB (before the burst {} MB), RSS 1 s after {} MB",
        a.parallel,
        a.path,
        a.value_mb,
        warm,
        ok,
        took.as_secs_f64(),
        status_kb(pid, "VmHWM:") / 1024,
        base / 1024,
        status_kb(pid, "VmRSS:") / 1024,
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
