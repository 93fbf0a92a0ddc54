//! `check` and `auth ghl url|exchange|status`, run as the real binary against the emulators
//! started in this process, with a config file in a temporary directory and secrets passed as
//! environment variables of the child process.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hotspot_ghl_sync::sandbox::ghl::PRODUCT_SCOPES;
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::Store;
use secrecy::ExposeSecret;
use support::{BIN, CLIENT_ID, CLIENT_SECRET, TempDir};

/// Scopes `auth ghl url` must ask for with [`Setup::default`] (custom field set, tasks on,
/// businesses off).
const NEEDED: &[&str] = &[
    "contacts.readonly",
    "contacts.write",
    "locations.readonly",
    "locations/customFields.readonly",
    "locations/tasks.readonly",
];

/// What the config file says.
struct Setup {
    oauth: bool,
    hotspot_id_field: Option<&'static str>,
    businesses: bool,
    tasks: bool,
    scopes: Option<&'static [&'static str]>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            oauth: false,
            hotspot_id_field: Some("contact.hotspot_customer_id"),
            businesses: false,
            tasks: true,
            scopes: None,
        }
    }
}

struct Env {
    sandbox: Sandbox,
    dir: TempDir,
    config: PathBuf,
    /// Every secret the children know; none may appear in their output.
    secrets: Vec<String>,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn sandbox(pits: Vec<(String, Vec<String>)>) -> Sandbox {
    let mut opts = SandboxOptions {
        seed: SeedSpec {
            seed: 7,
            locations: 1,
            customers: 3,
            subscribers: 1,
            subscribers_also_customers: 0,
            transactions: 2,
        },
        ..SandboxOptions::default()
    };
    if !pits.is_empty() {
        opts.ghl.tokens = pits;
    }
    Sandbox::start(opts).await.expect("sandbox")
}

fn all_scopes() -> Vec<String> {
    PRODUCT_SCOPES.iter().map(|s| s.to_string()).collect()
}

impl Env {
    async fn new(name: &str, setup: Setup) -> Env {
        Env::with_sandbox(name, setup, sandbox(Vec::new()).await)
    }

    fn with_sandbox(name: &str, setup: Setup, sandbox: Sandbox) -> Env {
        let dir = TempDir::new(name);
        let config = dir.0.join("config.toml");
        let env = Env {
            secrets: vec![
                sandbox.ghl_token().to_string(),
                sandbox.hotspot_api_key().to_string(),
                CLIENT_SECRET.to_string(),
            ],
            sandbox,
            dir,
            config,
        };
        env.write_config(&setup);
        env
    }

    fn write_config(&self, s: &Setup) {
        let auth = if s.oauth {
            "auth = \"oauth\"\nclient_id_env = \"HGS_T_CLIENT_ID\"\nclient_secret_env = \"HGS_T_CLIENT_SECRET\"\nredirect_uri = \"http://127.0.0.1:8910/oauth/callback\"\n".to_string()
        } else {
            "auth = \"private_token\"\ntoken_env = \"HGS_T_GHL_TOKEN\"\n".to_string()
        };
        let field = s
            .hotspot_id_field
            .map(|f| format!("hotspot_id_field = \"{f}\"\n"))
            .unwrap_or_default();
        let scopes = s
            .scopes
            .map(|l| {
                let q: Vec<String> = l.iter().map(|s| format!("\"{s}\"")).collect();
                format!("scopes = [{}]\n", q.join(", "))
            })
            .unwrap_or_default();
        let text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_T_HOTSPOT_KEY"

[ghl]
base_url = "{ghl}"
location_id = "{loc}"
{auth}{field}{scopes}
[http]
timeout_secs = 5
max_attempts = 2
max_elapsed_secs = 5

[tasks]
enabled = {tasks}

[businesses]
enabled = {businesses}
"#,
            state = self.state_path().display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
            loc = self.sandbox.ghl.location_id(),
            tasks = s.tasks,
            businesses = s.businesses,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn state_path(&self) -> PathBuf {
        self.dir.0.join("state.db")
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("HGS_CONFIG")
            .env_remove("RUST_LOG")
            .env("HGS_T_HOTSPOT_KEY", self.sandbox.hotspot_api_key())
            .env("HGS_T_GHL_TOKEN", self.sandbox.ghl_token())
            .env("HGS_T_CLIENT_ID", CLIENT_ID)
            .env("HGS_T_CLIENT_SECRET", CLIENT_SECRET)
            .output()
            .await
            .expect("run the binary");
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.assert_no_secret(&out, args);
        out
    }

    /// No known secret and no stored token in the child's output.
    fn assert_no_secret(&self, out: &Out, args: &[&str]) {
        let mut secrets = self.secrets.clone();
        if let Some((a, r)) = stored_pair(&self.state_path()) {
            secrets.push(a);
            secrets.extend(r);
        }
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            assert!(
                !out.stdout.contains(s.as_str()) && !out.stderr.contains(s.as_str()),
                "a secret leaked in the output of {args:?}:\n{}\n{}",
                out.stdout,
                out.stderr
            );
        }
    }

    /// `auth ghl exchange` with a code the consent screen would give for `scopes`.
    async fn connect(&mut self, scopes: &[&str]) -> Out {
        let code = self.sandbox.ghl.issue_auth_code(scopes);
        self.secrets.push(code.clone());
        self.run(&["auth", "ghl", "exchange", "--code", &code])
            .await
    }
}

/// (access token, refresh token) in the state database, if any.
fn stored_pair(path: &Path) -> Option<(String, Option<String>)> {
    if !path.exists() {
        return None;
    }
    let store = Store::open(path).ok()?;
    let t = store.token("ghl").ok()??;
    Some((
        t.access_token.expose_secret().to_string(),
        t.refresh_token.map(|r| r.expose_secret().to_string()),
    ))
}

fn refresh_token(path: &Path) -> String {
    stored_pair(path)
        .and_then(|(_, r)| r)
        .expect("a stored refresh token")
}

fn line_with<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.lines().find(|l| l.contains(needle))
}

fn show(o: &Out) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        o.code, o.stdout, o.stderr
    )
}

/// The `scope` parameter of the URL `auth ghl url` printed.
fn url_scopes(stdout: &str) -> BTreeSet<String> {
    let line = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http"))
        .expect("a URL line");
    let url = reqwest::Url::parse(line).expect("URL");
    let scope = url
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .expect("scope parameter");
    scope.split_whitespace().map(str::to_string).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_with_a_full_scope_private_token() {
    let env = Env::new(
        "pit-ok",
        Setup {
            businesses: true,
            ..Setup::default()
        },
    )
    .await;
    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(
        o.stdout
            .contains("custom field contact.hotspot_customer_id exists"),
        "{}",
        show(&o)
    );
    let loc = format!("location {}", env.sandbox.ghl.location_id());
    assert!(
        line_with(&o.stdout, &loc).is_some_and(|l| l.starts_with("ok") && l.contains("exists")),
        "{}",
        show(&o)
    );
    assert!(
        line_with(&o.stdout, "HotspotSystem").is_some_and(|l| l.starts_with("ok")),
        "{}",
        show(&o)
    );
    let write = line_with(&o.stdout, "scope contacts.write").expect("contacts.write reported");
    assert!(
        write.contains("not verifiable for a Private Integration token"),
        "{write}"
    );
    assert!(!o.stdout.contains("ERROR"), "{}", show(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probes_a_private_token_and_names_a_missing_read_scope() {
    let scopes: Vec<String> = all_scopes()
        .into_iter()
        .filter(|s| s != "businesses.readonly")
        .collect();
    let sb = sandbox(vec![("pit-no-business-read".into(), scopes)]).await;
    let env = Env::with_sandbox(
        "pit-missing",
        Setup {
            businesses: true,
            ..Setup::default()
        },
        sb,
    );
    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 2, "{}", show(&o));
    let line = line_with(&o.stdout, "scope businesses.readonly").expect("named");
    assert!(
        line.starts_with("ERROR") && line.contains("MISSING"),
        "{line}"
    );
    // The other probes still pass.
    assert!(line_with(&o.stdout, "scope contacts.readonly").is_some_and(|l| l.starts_with("ok")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_missing_custom_field_as_an_error() {
    let env = Env::new(
        "no-field",
        Setup {
            hotspot_id_field: Some("contact.no_such_field"),
            ..Setup::default()
        },
    )
    .await;
    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 2, "{}", show(&o));
    let line = line_with(&o.stdout, "contact.no_such_field").expect("field named");
    assert!(
        line.starts_with("ERROR") && line.contains("does not exist"),
        "{line}"
    );
}

/// `check` resolves every custom field the sync writes, `[contacts.fields]` ones too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_missing_mapped_custom_field_as_an_error() {
    let env = Env::new("no-mapped-field", Setup::default()).await;
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str("\n[contacts.fields]\nsocial_network = \"customField:contact.no_such_social\"\n");
    std::fs::write(&env.config, text).unwrap();
    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 2, "{}", show(&o));
    let line = line_with(&o.stdout, "contact.no_such_social").expect("field named");
    assert!(
        line.starts_with("ERROR")
            && line.contains("does not exist")
            && line.contains("contacts.fields.social_network"),
        "{line}"
    );
    let ok = line_with(&o.stdout, "custom field contact.hotspot_customer_id exists")
        .expect("the anchor field is found");
    assert!(ok.starts_with("ok"), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_location_the_token_cannot_use() {
    let env = Env::new("bad-location", Setup::default()).await;
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace(&env.sandbox.ghl.location_id(), "OtherLocation0000001");
    std::fs::write(&env.config, text).unwrap();
    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 2, "{}", show(&o));
    let line = line_with(&o.stdout, "location OtherLocation0000001").expect("named");
    assert!(line.starts_with("ERROR"), "{line}");
    // One clear error, not one per endpoint.
    assert_eq!(o.stdout.matches("ERROR").count(), 1, "{}", show(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_lists_only_the_scopes_the_enabled_features_need() {
    let sb = sandbox(Vec::new()).await;
    let env = Env::with_sandbox(
        "url",
        Setup {
            oauth: true,
            ..Setup::default()
        },
        sb,
    );
    let o = env.run(&["auth", "ghl", "url"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert_eq!(url_scopes(&o.stdout), set(NEEDED), "{}", show(&o));
    assert!(o.stdout.contains("client_id=emu-client-id"), "{}", show(&o));

    // Businesses on, tasks off, no custom field.
    env.write_config(&Setup {
        oauth: true,
        hotspot_id_field: None,
        businesses: true,
        tasks: false,
        scopes: None,
    });
    let o = env.run(&["auth", "ghl", "url"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert_eq!(
        url_scopes(&o.stdout),
        set(&[
            "contacts.readonly",
            "contacts.write",
            "locations.readonly",
            "businesses.readonly",
            "businesses.write"
        ])
    );

    // Explicit ghl.scopes override.
    env.write_config(&Setup {
        oauth: true,
        scopes: Some(&["contacts.readonly", "contacts.write", "users.readonly"]),
        ..Setup::default()
    });
    let o = env.run(&["auth", "ghl", "url"]).await;
    assert_eq!(
        url_scopes(&o.stdout),
        set(&["contacts.readonly", "contacts.write", "users.readonly"])
    );

    // A private token has no OAuth set-up: a configuration error.
    env.write_config(&Setup::default());
    let o = env.run(&["auth", "ghl", "url"]).await;
    assert_eq!(o.code, 2, "{}", show(&o));
    assert!(o.stderr.contains("oauth"), "{}", show(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_exchange_status_check_and_rotation_persisted_across_processes() {
    let mut env = Env::new(
        "oauth",
        Setup {
            oauth: true,
            ..Setup::default()
        },
    )
    .await;
    let state = env.state_path();

    // Nothing stored yet: check and status say how to connect.
    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 2, "{}", show(&o));
    assert!(
        o.stdout.contains("auth ghl url") && o.stdout.contains("auth ghl exchange"),
        "{}",
        show(&o)
    );
    let o = env.run(&["auth", "ghl", "status"]).await;
    assert_eq!(o.code, 2, "{}", show(&o));
    assert!(o.stderr.contains("auth ghl exchange"), "{}", show(&o));

    // A wrong code is an authentication error and stores nothing.
    let o = env
        .run(&["auth", "ghl", "exchange", "--code", "not-a-code"])
        .await;
    assert_eq!(o.code, 2, "{}", show(&o));
    assert!(
        o.stderr.contains("exchanging the authorization code"),
        "{}",
        show(&o)
    );
    assert!(stored_pair(&state).is_none());

    // Exchange stores the pair.
    let o = env.connect(NEEDED).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    let r1 = refresh_token(&state);
    let o = env.run(&["auth", "ghl", "status"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(
        line_with(&o.stdout, "Access expires").is_some_and(|l| l.contains("UTC")),
        "{}",
        show(&o)
    );
    for s in NEEDED {
        assert!(
            line_with(&o.stdout, "Scopes").unwrap().contains(s),
            "{}",
            show(&o)
        );
    }
    assert!(
        line_with(&o.stdout, "Location (token)")
            .unwrap()
            .contains(&env.sandbox.ghl.location_id()),
        "{}",
        show(&o)
    );

    // A fresh pair: check passes without refreshing.
    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert_eq!(env.sandbox.ghl.token_refreshes(), 0);
    assert!(!o.stdout.contains("WARNING"), "{}", show(&o));

    // Access token dies at GHL: check refreshes exactly once, and the rotated pair is stored.
    env.sandbox.ghl.expire_access_tokens();
    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert_eq!(env.sandbox.ghl.token_refreshes(), 1, "{}", show(&o));
    let r2 = refresh_token(&state);
    assert_ne!(
        r1, r2,
        "the rotated refresh token must replace the used one"
    );

    // Another process, another expiry: it can refresh only with the rotated token (the first
    // one died when used), so success proves the new pair was persisted.
    env.sandbox.ghl.expire_access_tokens();
    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert_eq!(env.sandbox.ghl.token_refreshes(), 2, "{}", show(&o));
    assert_ne!(refresh_token(&state), r2);

    // And a plain second run uses the stored, still valid access token.
    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert_eq!(env.sandbox.ghl.token_refreshes(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_check_errors_on_a_missing_write_scope_and_warns_on_an_extra_one() {
    let mut env = Env::new(
        "oauth-scopes",
        Setup {
            oauth: true,
            ..Setup::default()
        },
    )
    .await;
    let mut granted: Vec<&str> = NEEDED
        .iter()
        .copied()
        .filter(|s| *s != "contacts.write")
        .collect();
    granted.push("users.readonly");
    let o = env.connect(&granted).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(
        line_with(&o.stdout, "WARNING").is_some_and(|l| l.contains("contacts.write")),
        "exchange warns at once: {}",
        show(&o)
    );

    let o = env.run(&["check"]).await;
    assert_eq!(o.code, 2, "{}", show(&o));
    let missing = line_with(&o.stdout, "scope contacts.write").expect("named");
    assert!(
        missing.starts_with("ERROR") && missing.contains("MISSING"),
        "{missing}"
    );
    let extra = line_with(&o.stdout, "scope users.readonly").expect("named");
    assert!(extra.starts_with("WARNING"), "{extra}");
    // The rest was still checked.
    assert!(
        o.stdout
            .contains("custom field contact.hotspot_customer_id exists"),
        "{}",
        show(&o)
    );
    assert_eq!(env.sandbox.ghl.token_refreshes(), 0);
}
