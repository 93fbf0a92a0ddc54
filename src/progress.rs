//! Progress bars for a person watching `sync` in a terminal.
//!
//! A pass that creates thousands of contacts, notes and tasks takes minutes against GHL's rate
//! limit; a bar per kind shows it is moving. Bars are drawn only when stderr is a terminal:
//! under cron, systemd, a pipe or a test harness nothing is drawn, so logs and captured output
//! never hold cursor-movement escape codes. The engine sees only [`Progress`] (optional, in
//! `PassOptions`) and the [`Bar`] it hands out, which is a no-op when there is no progress.

use std::fmt;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::http::HttpPolicy;

/// The bars of one pass, one per kind that writes. Cloning shares the same bars.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    /// The APIs whose rate limiter may hold writes back: while one does, every bar says so,
    /// or a bar that stops moving with a growing ETA looks like a hang.
    limited: Arc<Mutex<Vec<HttpPolicy>>>,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("hidden", &self.multi.is_hidden())
            .finish()
    }
}

impl Progress {
    /// Bars on stderr when it is a terminal, `None` otherwise.
    pub fn for_stderr() -> Option<Progress> {
        Self::when_terminal(std::io::stderr().is_terminal())
    }

    /// Bars on stderr if `is_terminal`, `None` otherwise (split out so the decision is testable
    /// whatever the test runner's stderr is).
    pub fn when_terminal(is_terminal: bool) -> Option<Progress> {
        is_terminal.then(|| Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            limited: Arc::default(),
        })
    }

    /// Bars that count but never draw (for tests of the counting).
    pub fn hidden() -> Progress {
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            limited: Arc::default(),
        }
    }

    /// Shows, on every bar, when `policy`'s rate limiter holds requests back.
    pub fn watch_rate_limit(&self, policy: &HttpPolicy) {
        self.limited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(policy.clone());
    }

    /// A bar for `total` writes of `label` (e.g. "contacts"), below the earlier ones.
    pub fn bar(&self, label: &str, total: u64) -> Bar {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:40.cyan/blue}] {pos}/{len} ({elapsed}, eta {eta}){hold}",
            )
            .expect("the progress template is valid")
            .with_key("hold", {
                // The APIs only, not `self`: the bar must not own the bars that own it.
                let limited = self.limited.clone();
                move |_: &ProgressState, w: &mut dyn fmt::Write| {
                    let _ = w.write_str(&hold_note(&limited));
                }
            })
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        // Redraws on a timer too, so the ETA moves while a rate-limited write waits.
        bar.enable_steady_tick(Duration::from_millis(250));
        Bar(Some(bar))
    }
}

/// What holds writes back now, in words; empty when nothing does.
fn hold_note(limited: &Mutex<Vec<HttpPolicy>>) -> String {
    let limited = limited.lock().unwrap_or_else(|p| p.into_inner());
    let longest = limited
        .iter()
        .filter_map(|p| Some((p.api(), p.rate_limit_hold()?)))
        .max_by_key(|(_, left)| *left);
    longest.map_or_else(String::new, |(api, left)| hold_text(api, left))
}

/// The bar's suffix while `api`'s rate limiter holds requests for `left` more.
fn hold_text(api: &str, left: Duration) -> String {
    let api = match api {
        "ghl" => "GHL",
        "hotspot" => "HotspotSystem",
        other => other,
    };
    format!(
        " waiting {}s for the {api} rate limit",
        left.as_secs_f64().ceil() as u64
    )
}

/// One kind's bar; `Bar::none()` (no progress asked for) does nothing.
#[derive(Debug)]
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar from `progress` when there is one, a no-op otherwise.
    pub fn new(progress: Option<&Progress>, label: &str, total: u64) -> Bar {
        match progress {
            Some(p) if total > 0 => p.bar(label, total),
            _ => Bar::none(),
        }
    }

    pub fn none() -> Bar {
        Bar(None)
    }

    /// One record written (or failed, or deferred): it is no longer pending.
    pub fn inc(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }

    /// Records counted so far; `None` for a no-op bar.
    pub fn position(&self) -> Option<u64> {
        self.0.as_ref().map(ProgressBar::position)
    }
}

impl Drop for Bar {
    /// Stops the timer and leaves the bar at its final count on screen.
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_terminal_means_no_progress() {
        assert!(Progress::when_terminal(false).is_none());
        assert!(Progress::when_terminal(true).is_some());
    }

    #[test]
    fn without_progress_a_bar_counts_nothing() {
        let bar = Bar::new(None, "contacts", 10);
        bar.inc();
        assert_eq!(bar.position(), None);
    }

    #[test]
    fn a_rate_limit_hold_is_said_in_words() {
        assert_eq!(
            hold_text("ghl", Duration::from_millis(6_200)),
            " waiting 7s for the GHL rate limit"
        );
        assert_eq!(
            hold_note(&Progress::hidden().limited),
            "",
            "nothing watched, nothing said"
        );
    }

    #[test]
    fn a_bar_counts_its_records() {
        let p = Progress::hidden();
        let bar = Bar::new(Some(&p), "notes", 3);
        bar.inc();
        bar.inc();
        assert_eq!(bar.position(), Some(2));
        // Nothing to write: no bar at all rather than an empty one.
        assert_eq!(Bar::new(Some(&p), "tasks", 0).position(), None);
    }
}
