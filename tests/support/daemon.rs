//! A `run` daemon as a child process of a test: its stderr goes to a file, and it is killed
//! (SIGKILL) if the test fails before it exits.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// `kill -<name> <pid>`, e.g. `TERM` or `INT`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the exit; `None` if it has not exited within `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// SIGTERM, then the exit code (`None` if it did not exit within 15 s).
    pub async fn stop(&mut self) -> Option<i32> {
        self.terminate();
        self.wait_exit(Duration::from_secs(15))
            .await
            .and_then(|s| s.code())
    }
}

impl Daemon {
    /// Starts `cmd` (a `run` of the binary) with its stderr in `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Daemon {
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the daemon log"))
            .spawn()
            .expect("spawn the daemon");
        Daemon { child, log }
    }

    /// Waits until the log has a line containing every one of `needles`; returns that line.
    /// Panics with the whole log after `limit`, or if the daemon exits first.
    pub async fn wait_for_line(&mut self, needles: &[&str], limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the daemon exited ({status}) before logging {needles:?}; log:\n{log}");
            }
            assert!(
                start.elapsed() < limit,
                "no line with {needles:?} within {limit:?}; log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many log lines contain every one of `needles`.
    pub fn count_lines(&self, needles: &[&str]) -> usize {
        self.log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }
}
