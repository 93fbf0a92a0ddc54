//! Handing an alert to its targets: the webhook (`POST {"text": ...}`) and the command. Each is
//! bounded by `notify.timeout_secs`; a failure is returned for the caller to log, never raised.
//! No error names the webhook's URL (it carries its token): only its scheme, host and port.

use std::process::Stdio;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;

use super::message::Message;
use crate::config::webhook_url_problem;
use crate::secret::Secret;

/// Variables of this process a command still gets; everything else (the API secrets among it)
/// is withheld.
const KEPT_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ"];

/// Most bytes of a failing command's stderr quoted in the warning.
const STDERR_QUOTED: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the webhook URL {0}")]
    BadUrl(&'static str),
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    #[error("{0}")]
    Http(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("cannot start it: {0}")]
    Spawn(std::io::Error),
    #[error("exited with {status}{}", if stderr.is_empty() { String::new() } else { format!("; stderr: {stderr}") })]
    Exit { status: String, stderr: String },
    #[error("no answer within {0} s (notify.timeout_secs)")]
    Timeout(u64),
}

/// Where an alert went, as logs may name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Scheme, host and port of the webhook; `None` when its URL could not be read.
    Webhook(Option<String>),
    /// The program's path or name.
    Command(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Webhook(Some(origin)) => write!(f, "webhook {origin}"),
            Target::Webhook(None) => f.write_str("webhook"),
            Target::Command(program) => write!(f, "command {program}"),
        }
    }
}

/// POSTs `{"text": ...}`: the body Slack's incoming webhooks take, and with them Mattermost,
/// Rocket.Chat, Discord's `/slack` endpoint and Teams workflows.
pub async fn webhook(
    url: &Secret,
    message: &Message,
    timeout: Duration,
) -> (Target, Result<(), DeliveryError>) {
    // A file is read again, so a rotated URL is used at once.
    let url = match url.current() {
        Ok(u) => u,
        Err(e) => return (Target::Webhook(None), Err(e.into())),
    };
    let url = url.expose_secret().trim().to_string();
    if let Some(problem) = webhook_url_problem(&url) {
        return (Target::Webhook(None), Err(DeliveryError::BadUrl(problem)));
    }
    let Ok(parsed) = reqwest::Url::parse(&url) else {
        return (
            Target::Webhook(None),
            Err(DeliveryError::BadUrl("is not a URL")),
        );
    };
    let target = Target::Webhook(Some(parsed.origin().ascii_serialization()));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirect would carry the alert to a host nobody configured.
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return (
                target,
                Err(DeliveryError::Http(e.without_url().to_string())),
            );
        }
    };
    let body = serde_json::json!({ "text": message.text });
    let result = match client.post(parsed).json(&body).send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(DeliveryError::Status(resp.status().as_u16())),
        Err(e) if e.is_timeout() => Err(DeliveryError::Timeout(timeout.as_secs())),
        // Without the URL: its path holds the token.
        Err(e) => Err(DeliveryError::Http(error_chain(&e.without_url()))),
    };
    (target, result)
}

/// Runs `argv` with the alert as JSON on stdin and in `HGS_ALERT_*` variables; only an exit
/// status of 0 counts as delivered. Killed when it outlives the timeout.
pub async fn command(
    argv: &[String],
    message: &Message,
    timeout: Duration,
) -> (Target, Result<(), DeliveryError>) {
    let program = argv.first().cloned().unwrap_or_default();
    let target = Target::Command(program.clone());
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(
            KEPT_ENV
                .iter()
                .filter_map(|k| Some((*k, std::env::var_os(k)?))),
        )
        .envs(message.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so that a timeout ends what it started too (`sh -c` and its
    // children), not only the program itself.
    cmd.process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (target, Err(DeliveryError::Spawn(e))),
    };
    let group = child.id();
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            let body = serde_json::to_vec_pretty(&message.json).unwrap_or_default();
            // A command that does not read its input closes the pipe: that is its business.
            let _ = stdin.write_all(&body).await;
            let _ = stdin.write_all(b"\n").await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(DeliveryError::Spawn)?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr = stderr.trim();
            let tail = stderr
                .char_indices()
                .rev()
                .nth(STDERR_QUOTED)
                .map_or(stderr, |(i, _)| &stderr[i..]);
            Err(DeliveryError::Exit {
                status: out.status.to_string(),
                stderr: crate::http::clean_text(tail),
            })
        }
    };
    let result = match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => {
            if let Some(pid) = group.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) with a negative pid signals that process group; the group is
                // the one made for this child, and a group already gone is a harmless ESRCH.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            Err(DeliveryError::Timeout(timeout.as_secs()))
        }
    };
    (target, result)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}
