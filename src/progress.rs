//! Progress bars for a person watching `sync` in a terminal.
//!
//! A pass that creates thousands of contacts, notes and tasks takes minutes against GHL's rate
//! limit; a bar per kind shows it is moving. Bars are drawn only when stderr is a terminal:
//! under cron, systemd, a pipe or a test harness nothing is drawn, so logs and captured output
//! never hold cursor-movement escape codes. The engine sees only [`Progress`] (optional, in
//! `PassOptions`) and the [`Bar`] it hands out, which is a no-op when there is no progress.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of one pass, one per kind that writes. Cloning shares the same bars.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
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
        })
    }

    /// Bars that count but never draw (for tests of the counting).
    pub fn hidden() -> Progress {
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        }
    }

    /// A bar for `total` writes of `label` (e.g. "contacts"), below the earlier ones.
    pub fn bar(&self, label: &str, total: u64) -> Bar {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:40.cyan/blue}] {pos}/{len} ({elapsed}, eta {eta})",
            )
            .expect("the progress template is valid")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        // Redraws on a timer too, so the ETA moves while a rate-limited write waits.
        bar.enable_steady_tick(Duration::from_millis(250));
        Bar(Some(bar))
    }
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
