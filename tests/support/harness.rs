//! End-to-end harness: emulators in this process, the REAL binary as a child process with a
//! config file in a temporary directory and the secrets in its environment.

use std::path::PathBuf;

use hotspot_ghl_sync::sandbox::ghl::GhlRequest;
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};

pub use super::{BIN, Out};

pub struct TestEnv {
    pub sandbox: Sandbox,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestEnv {
    /// Moves every GHL contact's `dateAdded` and `dateUpdated` an hour into the past: as if
    /// the next pass ran an hour later with nothing touched in between, so a plain sync's
    /// incremental read (which re-reads the last minutes, its overlap) returns none of them.
    pub fn an_hour_passes(&self) {
        self.sandbox.ghl.with_state(|s| {
            for c in s.contacts.values_mut() {
                c.date_updated -= chrono::Duration::hours(1);
                c.date_added -= chrono::Duration::hours(1);
            }
        });
    }

    /// Starts the emulators (rate limits raised: limits are not what these tests are about)
    /// and writes a config whose `[contacts]` section is `contacts_toml`.
    pub async fn start(name: &str, mut opts: SandboxOptions, contacts_toml: &str) -> TestEnv {
        opts.ghl.rate_limit = opts.ghl.rate_limit.max(100_000);
        let sandbox = Sandbox::start(opts).await.expect("sandbox starts");
        let dir = super::temp_dir(name);
        let config = dir.join("config.toml");
        let env = TestEnv {
            sandbox,
            dir,
            config,
        };
        env.write_config(contacts_toml);
        env
    }

    pub fn write_config(&self, contacts_toml: &str) {
        let text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_TEST_HS_KEY"
page_size = 100
rate_limit = 10000

[ghl]
base_url = "{ghl}"
location_id = "{loc}"
auth = "private_token"
token_env = "HGS_TEST_GHL_TOKEN"
hotspot_id_field = "contact.hotspot_customer_id"
rate_limit = 50000
max_concurrency = 8

[http]
timeout_secs = 5
max_attempts = 3
max_elapsed_secs = 20

[contacts]
{contacts_toml}
"#,
            state = self.state_path().display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
            loc = self.sandbox.ghl.location_id(),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join("sync.db")
    }

    /// Runs the binary with `args` after `--config`.
    pub async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("HGS_TEST_HS_KEY", self.sandbox.hotspot_api_key())
            .env("HGS_TEST_GHL_TOKEN", self.sandbox.ghl_token())
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("binary runs");
        Out::from_output(out)
    }

    /// `sync` that must succeed; returns its output.
    pub async fn sync(&self, extra: &[&str]) -> Out {
        let mut args = vec!["sync"];
        args.extend_from_slice(extra);
        let out = self.run(&args).await;
        assert_eq!(
            out.code, 0,
            "sync failed:\nstdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
        out
    }

    /// The JSON report of the latest run.
    pub async fn report_json(&self) -> serde_json::Value {
        let out = self.run(&["report", "latest", "--format", "json"]).await;
        assert_eq!(out.code, 0, "report failed: {}", out.stderr);
        serde_json::from_str(&out.stdout).expect("report is JSON")
    }

    /// The HotspotSystem id each GHL contact carries in the anchor custom field, one entry per
    /// contact, sorted (a guest with two contacts shows twice).
    pub fn anchors(&self) -> Vec<String> {
        self.sandbox.ghl.with_state(|s| {
            let field = s
                .custom_field(super::ANCHOR)
                .map(|f| f.id.clone())
                .expect("field exists");
            let mut v: Vec<String> = s
                .contacts
                .values()
                .filter_map(|c| c.custom_fields.iter().find(|(id, _)| *id == field))
                .filter_map(|(_, v)| v.as_str().map(str::to_string))
                .collect();
            v.sort();
            v
        })
    }

    /// Requests that change something in GHL (search is a POST that reads).
    pub fn ghl_writes(&self) -> Vec<GhlRequest> {
        self.sandbox
            .ghl
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
            .collect()
    }
}
