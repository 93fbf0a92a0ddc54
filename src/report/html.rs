//! Self-contained HTML rendering of run reports, shared with the dashboard (`crate::dashboard`).
//!
//! One page, no external assets and no JavaScript, so a report mailed from cron or opened from
//! an archive years later still renders offline. Pages are askama templates (`templates/`);
//! this module computes what they show. Every value a template prints is escaped by [`Html`]:
//! CRM data is user-typed and must never become markup.

use askama::Template;

use super::{KindCounts, ReportItem, RunReport, load};
use crate::store::{Store, StoreError};

/// Items listed per section when the caller does not choose (`report.max_items` in the config).
pub const DEFAULT_MAX_ITEMS: usize = 200;

/// The stylesheet of every page (reports and dashboard), inlined.
pub const CSS: &str = r#"
:root{--fg:#1f2933;--muted:#616e7c;--line:#d9e2ec;--bg:#f5f7fa;--card:#fff;--ok:#2f855a;--warn:#b7791f;--bad:#c53030;--acc:#2b6cb0}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#102a43;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center;flex-wrap:wrap}
header h1{font-size:17px;margin:0;font-weight:600}
header nav a{color:#bcccdc;text-decoration:none;margin-right:16px}
header nav a:hover,header nav a.on{color:#fff}
main{max-width:1200px;margin:0 auto;padding:20px 24px 48px}
h2{font-size:18px;margin:28px 0 10px}
h3{font-size:15px;margin:20px 0 8px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:12px;margin-bottom:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:22px;font-weight:600;margin-top:2px;word-break:break-word}
.card .sub{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden;margin-bottom:8px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef2f7;font-weight:600;font-size:12px;color:#334e68}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr:last-child td{border-bottom:0}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--muted)}
.b-succeeded,.b-ok,.b-healthy{background:var(--ok)}.b-partial,.b-running{background:var(--warn)}
.b-failed,.b-aborted,.b-interrupted,.b-unhealthy{background:var(--bad)}
.b-applied,.b-active{background:var(--ok)}.b-parked,.b-deferred,.b-transient,.b-ratelimited{background:var(--warn)}.b-permanent,.b-auth{background:var(--bad)}
form.search{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:0 0 12px}
form.search input,form.search button{font:inherit;padding:3px 8px}
.muted{color:var(--muted)}.empty{color:var(--muted);font-style:italic;margin:4px 0 12px}
.banner{padding:10px 14px;border-radius:8px;margin:0 0 16px;border:1px solid}
.banner.ok{background:#f0fff4;border-color:#9ae6b4}.banner.bad{background:#fff5f5;border-color:#feb2b2}
.chart{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px}
.chart svg{display:block;width:100%;height:auto}
ul.notes{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 8px 8px 28px}
footer{color:var(--muted);font-size:12px;margin-top:32px}
a{color:var(--acc)}
"#;

/// The escaper of every `.html` template (`askama.toml`): text safe in element content and in
/// quoted attribute values, with the usual entity names.
#[derive(Debug, Clone, Copy)]
pub struct Html;

impl askama::filters::Escaper for Html {
    fn write_escaped_str<W: std::fmt::Write>(&self, mut dest: W, s: &str) -> std::fmt::Result {
        let mut last = 0;
        for (i, b) in s.bytes().enumerate() {
            let entity = match b {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                b'\'' => "&#39;",
                _ => continue,
            };
            dest.write_str(&s[last..i])?;
            dest.write_str(entity)?;
            last = i + 1;
        }
        dest.write_str(&s[last..])
    }
}

/// Escapes text for HTML element content and quoted attribute values, as templates do.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    // Writing into a String cannot fail.
    let _ = askama::filters::Escaper::write_escaped_str(&Html, &mut out, s);
    out
}

/// The CSS class suffix of a status pill: the status's letters and digits.
pub fn badge_class(status: &str) -> String {
    status
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// One series of a bar chart.
pub struct Series<'a> {
    pub name: &'a str,
    /// CSS colour (a constant chosen by the caller, never record data).
    pub colour: &'a str,
    pub values: Vec<u64>,
}

/// A horizontal grid line with its value.
pub struct GridLine {
    pub y: String,
    pub label_y: String,
    pub value: u64,
}

/// One bar, with its tooltip.
pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub colour: String,
    pub tooltip: String,
}

/// A label under the bars, or a legend entry's text.
pub struct ChartText {
    pub x: String,
    pub text: String,
}

/// A legend entry: its swatch and its name.
pub struct LegendEntry {
    pub x: String,
    pub colour: String,
    pub name: ChartText,
}

/// An inline SVG grouped bar chart, laid out: one group per label, one bar per series, with a
/// legend and a tooltip per bar (`macros.html`, `chart`).
pub struct Chart {
    pub title: String,
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right_x: String,
    pub grid_label_x: String,
    pub label_y: String,
    pub grid: Vec<GridLine>,
    pub bars: Vec<Bar>,
    pub labels: Vec<ChartText>,
    pub legend: Vec<LegendEntry>,
}

/// Lays out a bar chart; `None` when there is nothing to chart.
pub fn bar_chart(title: &str, labels: &[String], series: &[Series<'_>]) -> Option<Chart> {
    if labels.is_empty() || series.is_empty() {
        return None;
    }
    let (width, height) = (1000.0_f64, 260.0_f64);
    let (left, right, top, bottom) = (44.0, 10.0, 30.0, 40.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let group_w = plot_w / labels.len() as f64;
    let bar_w = (group_w * 0.8 / series.len() as f64).max(1.0);
    // Grid lines and y labels at 0, 1/2 and max.
    let grid = [0.0, 0.5, 1.0]
        .into_iter()
        .map(|frac| {
            let y = top + plot_h * (1.0 - frac);
            GridLine {
                y: format!("{y:.1}"),
                label_y: format!("{:.1}", y + 4.0),
                value: (max as f64 * frac).round() as u64,
            }
        })
        .collect();
    // Skip labels so that neighbours never overlap (about 6.5 px per character at 11 px).
    let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
    let label_every = ((widest * 6.5 + 8.0) / group_w).ceil().max(1.0) as usize;
    let mut bars = Vec::new();
    let mut axis = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let gx = left + group_w * i as f64 + group_w * 0.1;
        for (j, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0);
            let h = plot_h * v as f64 / max as f64;
            bars.push(Bar {
                x: format!("{:.1}", gx + bar_w * j as f64),
                y: format!("{:.1}", top + plot_h - h),
                width: format!("{:.1}", (bar_w - 1.0).max(0.5)),
                height: format!("{h:.1}"),
                colour: s.colour.to_string(),
                tooltip: format!("{label}: {} {v}", s.name),
            });
        }
        if i % label_every == 0 {
            axis.push(ChartText {
                x: format!("{:.1}", left + group_w * (i as f64 + 0.5)),
                text: label.clone(),
            });
        }
    }
    let mut legend = Vec::new();
    let mut lx = left;
    for s in series {
        legend.push(LegendEntry {
            x: format!("{lx:.1}"),
            colour: s.colour.to_string(),
            name: ChartText {
                x: format!("{:.1}", lx + 16.0),
                text: s.name.to_string(),
            },
        });
        lx += 24.0 + 7.0 * s.name.chars().count() as f64;
    }
    Some(Chart {
        title: title.to_string(),
        width,
        height,
        left,
        right_x: format!("{:.1}", width - right),
        grid_label_x: format!("{:.1}", left - 6.0),
        label_y: format!("{:.1}", height - bottom + 16.0),
        grid,
        bars,
        labels: axis,
        legend,
    })
}

/// Writes, failures and 429 answers per run, oldest first (the chart of reports and dashboard).
pub fn runs_chart(history: &[RunReport]) -> Option<Chart> {
    let mut runs: Vec<&RunReport> = history.iter().collect();
    runs.sort_by_key(|r| r.run_id);
    runs.dedup_by_key(|r| r.run_id);
    let labels: Vec<String> = runs
        .iter()
        .map(|r| {
            if r.dry_run {
                format!("#{} dry", r.run_id)
            } else {
                format!("#{}", r.run_id)
            }
        })
        .collect();
    bar_chart(
        "Writes, failures and 429 answers per run",
        &labels,
        &[
            Series {
                name: "writes",
                colour: "#2b6cb0",
                // A dry run planned its writes and sent none.
                values: runs
                    .iter()
                    .map(|r| {
                        if r.dry_run {
                            0
                        } else {
                            total(r, |c| c.writes())
                        }
                    })
                    .collect(),
            },
            Series {
                name: "failures",
                colour: "#c53030",
                values: runs.iter().map(|r| total(r, |c| c.failed)).collect(),
            },
            Series {
                name: "429s",
                colour: "#d69e2e",
                values: runs
                    .iter()
                    .map(|r| r.api.values().map(|u| u.rate_limited).sum())
                    .collect(),
            },
        ],
    )
}

fn total(r: &RunReport, f: impl Fn(&KindCounts) -> u64) -> u64 {
    r.kinds.values().map(f).sum()
}

/// How a run ran, in words.
pub fn run_mode(dry_run: bool, full: bool) -> &'static str {
    match (dry_run, full) {
        (true, true) => "dry run, full",
        (true, false) => "dry run",
        (false, true) => "full",
        (false, false) => "incremental",
    }
}

/// One API's usage row.
pub struct ApiRow<'a> {
    pub api: &'a str,
    pub requests: u64,
    pub by_method: String,
    pub retries: u64,
    pub rate_limited: u64,
    pub failed: u64,
    pub quota: Option<u64>,
}

/// One section of listed items (failures, conflicts, ...), cut at the page's limit.
pub struct ItemSection<'a> {
    pub title: &'static str,
    pub count: usize,
    pub items: Vec<&'a ReportItem>,
    pub more: usize,
}

/// What the body of one run's report shows (`macros.html`, `run_body`).
pub struct RunView<'a> {
    pub r: &'a RunReport,
    pub mode: &'static str,
    /// "Writes", or "Planned writes" for a dry run.
    pub writes_label: &'static str,
    pub writes: u64,
    /// The writes GHL really received, in words.
    pub sent: String,
    pub created: u64,
    pub updated: u64,
    pub failed: u64,
    pub conflicts: u64,
    pub drift: u64,
    pub conflicts_drift: String,
    pub deferred: u64,
    pub api: Vec<ApiRow<'a>>,
    pub unreadable: Vec<String>,
    pub unsynced: Vec<String>,
    pub unsynced_more: usize,
    /// The items listed are a page of the run's: where the rest are.
    pub items_cut: Option<String>,
    pub sections: Vec<ItemSection<'a>>,
}

impl<'a> RunView<'a> {
    /// The view of `r`, listing at most `max_items` per section.
    pub fn new(r: &'a RunReport, max_items: usize) -> Self {
        let api = r
            .api
            .iter()
            .map(|(api, u)| ApiRow {
                api,
                requests: u.requests,
                by_method: u
                    .requests_by_method
                    .iter()
                    .map(|(m, n)| format!("{m} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                retries: u.retries,
                rate_limited: u.rate_limited,
                failed: u.failed,
                quota: u.daily_remaining,
            })
            .collect();
        let sections = [
            ("Failures", "failed"),
            ("Conflicts", "conflict"),
            ("Drift (CRM-side edits)", "drift"),
            ("Skipped records", "skipped"),
            ("Deferred work", "deferred"),
            ("Deletions", "deleted"),
        ]
        .into_iter()
        .map(|(title, outcome)| {
            let all: Vec<&ReportItem> = r.items.iter().filter(|i| i.outcome == outcome).collect();
            let count = all.len();
            ItemSection {
                title,
                count,
                items: all.into_iter().take(max_items).collect(),
                more: count.saturating_sub(max_items),
            }
        })
        .collect();
        let items_cut = ((r.items.len() as u64) < r.items_total).then(|| {
            format!(
                "The first {} of the run's {} listed items are shown below; all of them: `report {} --format json`, or pages of /api/runs/{}?offset=N&limit=M.",
                r.items.len(),
                r.items_total,
                r.run_id,
                r.run_id
            )
        });
        RunView {
            r,
            mode: run_mode(r.dry_run, r.full),
            writes_label: if r.dry_run {
                "Planned writes"
            } else {
                "Writes"
            },
            writes: total(r, |c| c.writes()),
            sent: format!("{} requests sent to GHL", r.ghl_writes()),
            created: total(r, |c| c.created),
            updated: total(r, |c| c.updated),
            failed: total(r, |c| c.failed),
            conflicts: total(r, |c| c.conflicts),
            drift: total(r, |c| c.drift),
            conflicts_drift: format!("{} / {}", total(r, |c| c.conflicts), total(r, |c| c.drift)),
            deferred: total(r, |c| c.deferred),
            api,
            unreadable: super::unreadable_lines(&r.unreadable),
            unsynced: r
                .unsynced
                .iter()
                .take(max_items)
                .map(|u| u.line())
                .collect(),
            unsynced_more: r.unsynced.len().saturating_sub(max_items),
            items_cut,
            sections,
        }
    }

    /// GHL's daily quota left at the end of the run, or a dash.
    pub fn quota(&self) -> String {
        self.r
            .api
            .get("ghl")
            .and_then(|u| u.daily_remaining)
            .map(|q| q.to_string())
            .unwrap_or_else(|| "—".into())
    }
}

/// One field of a conflict or drift: both values and the one kept.
pub struct FieldValues {
    pub field: String,
    pub source: String,
    pub target: String,
    pub winner: String,
}

/// What an item's detail shows as (`macros.html`, `detail`).
pub enum Detail {
    Nothing,
    /// A `fields` list: a small table of both values.
    Fields(Vec<FieldValues>),
    /// Anything else: compact JSON text.
    Json(String),
}

impl Detail {
    pub fn of(detail: &serde_json::Value) -> Detail {
        if detail.is_null() {
            return Detail::Nothing;
        }
        match detail.get("fields").and_then(|f| f.as_array()) {
            Some(fields) => Detail::Fields(
                fields
                    .iter()
                    .map(|f| FieldValues {
                        field: value_text(f.get("field")),
                        source: value_text(f.get("source")),
                        target: value_text(f.get("target")),
                        winner: value_text(f.get("winner")),
                    })
                    .collect(),
            ),
            None => Detail::Json(detail.to_string()),
        }
    }
}

fn value_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "—".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn generated() -> String {
    format!(
        "Generated by hotspot-ghl-sync {} at {}.",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    )
}

#[derive(Template)]
#[template(path = "report/run.html")]
struct RunPage<'a> {
    run: RunView<'a>,
    chart: Option<Chart>,
    generated: String,
}

/// The report page of one run, with a chart over `history` (other recent runs; the run itself
/// is added when missing). Lists at most [`DEFAULT_MAX_ITEMS`] per section.
pub fn render_run(report: &RunReport, history: &[RunReport]) -> askama::Result<String> {
    render_run_with(report, history, DEFAULT_MAX_ITEMS)
}

/// [`render_run`] with the per-section item limit chosen by the caller.
pub fn render_run_with(
    report: &RunReport,
    history: &[RunReport],
    max_items: usize,
) -> askama::Result<String> {
    let mut all: Vec<RunReport> = history.to_vec();
    if !all.iter().any(|r| r.run_id == report.run_id) {
        all.push(report.clone());
    }
    RunPage {
        run: RunView::new(report, max_items),
        chart: runs_chart(&all),
        generated: generated(),
    }
    .render()
}

#[derive(Template)]
#[template(path = "report/runs.html")]
struct RunsPage<'a> {
    runs: Vec<RunView<'a>>,
    not_ok: usize,
    writes: u64,
    failed: u64,
    rate_limited: u64,
    chart: Option<Chart>,
    generated: String,
}

/// One page for several runs (`report --last N`): totals, the chart, a table of the runs, then
/// each run's report, newest first.
pub fn render_runs(reports: &[RunReport], max_items: usize) -> askama::Result<String> {
    let mut runs: Vec<&RunReport> = reports.iter().collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.run_id));
    let sum = |f: &dyn Fn(&KindCounts) -> u64| -> u64 {
        runs.iter()
            .map(|r| r.kinds.values().map(f).sum::<u64>())
            .sum()
    };
    RunsPage {
        not_ok: runs
            .iter()
            .filter(|r| r.status != "succeeded" && r.status != "ok")
            .count(),
        writes: sum(&|c| c.writes()),
        failed: sum(&|c| c.failed),
        rate_limited: runs
            .iter()
            .map(|r| r.api.values().map(|u| u.rate_limited).sum::<u64>())
            .sum(),
        chart: runs_chart(reports),
        runs: runs.iter().map(|r| RunView::new(r, max_items)).collect(),
        generated: generated(),
    }
    .render()
}

/// Reports of the newest `n` runs, newest first: the history of [`render_run`] or the input of
/// [`render_runs`].
pub fn load_recent(store: &Store, n: usize) -> Result<Vec<RunReport>, StoreError> {
    let mut out = Vec::new();
    for run in store.runs(n)? {
        if let Some(r) = load(store, run.id)? {
            out.push(r);
        }
    }
    Ok(out)
}
