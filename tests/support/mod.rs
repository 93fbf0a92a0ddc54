//! Helpers shared by integration tests, one module per concern. Each test binary compiles all
//! of them and uses a subset.

#![allow(dead_code, unused_imports)]

pub mod agency;
pub mod census;
pub mod daemon;
pub mod dashboard;
pub mod fast_lane;
pub mod ghl_webhooks;
pub mod harness;
pub mod openapi;
pub mod receiver;
pub mod reliability;
pub mod webhooks;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The binary under test: every end-to-end test runs the real thing as a child process.
pub const BIN: &str = env!("CARGO_BIN_EXE_hotspot-ghl-sync");
/// The OAuth client the GHL emulator accepts.
pub const CLIENT_ID: &str = "emu-client-id";
pub const CLIENT_SECRET: &str = "emu-client-secret";
/// The GHL custom field holding the HotspotSystem id, as the test configs name it.
pub const ANCHOR: &str = "contact.hotspot_customer_id";

/// The body of a `[schedule]` section: each of `jobs` with its cron from `schedule`, or `off`.
pub fn schedule_lines(jobs: &[&str], schedule: &[(&str, &str)]) -> String {
    jobs.iter()
        .map(|job| {
            let cron = schedule
                .iter()
                .find(|(j, _)| j == job)
                .map_or("off", |(_, c)| *c);
            format!("{job} = \"{cron}\"\n")
        })
        .collect()
}

/// A fresh, empty directory unique to this process and call.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hgs-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A [`temp_dir`] removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        TempDir(temp_dir(name))
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a run of the binary gave.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn from_output(out: std::process::Output) -> Out {
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Exit code, stdout and stderr, for an assertion message.
    pub fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A reqwest client for talking to the loopback emulators (installs the rustls provider first).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}
