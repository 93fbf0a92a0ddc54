//! Self-contained HTML rendering of run reports, shared with the dashboard (`crate::dashboard`).
//!
//! One page, no external assets and no JavaScript, so a report mailed from cron or opened from
//! an archive years later still renders offline. Every value that came from a record (names,
//! reasons, field values) goes through [`escape`]: CRM data is user-typed and must never become
//! markup.

use std::fmt::Write as _;

use super::{RunReport, load};
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

/// A complete HTML document: `nav` and `body` are already-escaped markup.
pub fn page(title: &str, nav: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head>\n<body><header><h1>hotspot-ghl-sync</h1>\
         <nav>{nav}</nav></header>\n<main>{body}</main></body></html>\n",
        escape(title)
    )
}

/// The CSS class suffix of a status pill: the status's letters and digits.
pub fn badge_class(status: &str) -> String {
    status
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// A coloured status pill.
pub fn badge(status: &str) -> String {
    format!(
        "<span class=\"badge b-{}\">{}</span>",
        badge_class(status),
        escape(status)
    )
}

/// One summary card.
pub fn card(label: &str, value: &str, sub: &str) -> String {
    let sub = if sub.is_empty() {
        String::new()
    } else {
        format!("<div class=\"sub\">{}</div>", escape(sub))
    };
    format!(
        "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{}</div>{sub}</div>",
        escape(label),
        escape(value)
    )
}

/// A table from escaped-on-entry cells: `header` names ending in `#` are right-aligned numbers.
/// Cells are plain text (escaped here); use [`table_html`] for cells that carry markup.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape(c)).collect())
        .collect();
    table_html(header, &rows)
}

/// Like [`table`], but cells are markup the caller already escaped.
pub fn table_html(header: &[&str], rows: &[Vec<String>]) -> String {
    let numeric: Vec<bool> = header.iter().map(|h| h.ends_with('#')).collect();
    let mut out = String::from("<table><thead><tr>");
    for (h, n) in header.iter().zip(&numeric) {
        let name = h.trim_end_matches('#');
        if *n {
            let _ = write!(out, "<th class=\"n\">{}</th>", escape(name));
        } else {
            let _ = write!(out, "<th>{}</th>", escape(name));
        }
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            if numeric.get(i).copied().unwrap_or(false) {
                let _ = write!(out, "<td class=\"n\">{cell}</td>");
            } else {
                let _ = write!(out, "<td>{cell}</td>");
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A paragraph saying a section has nothing to show.
pub fn empty(text: &str) -> String {
    format!("<p class=\"empty\">{}</p>", escape(text))
}

/// One series of a bar chart.
pub struct Series<'a> {
    pub name: &'a str,
    /// CSS colour (a constant chosen by the caller, never record data).
    pub colour: &'a str,
    pub values: Vec<u64>,
}

/// An inline SVG grouped bar chart: one group per label, one bar per series, with a legend and
/// a `<title>` tooltip per bar. Labels and names are escaped.
pub fn bar_chart(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    if labels.is_empty() || series.is_empty() {
        return empty("No data to chart yet.");
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
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<div class=\"chart\"><svg viewBox=\"0 0 {width} {height}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\" font-family=\"sans-serif\" font-size=\"11\">\
         <title>{}</title>",
        escape(title)
    );
    // Grid lines and y labels at 0, 1/2 and max.
    for frac in [0.0, 0.5, 1.0] {
        let y = top + plot_h * (1.0 - frac);
        let v = (max as f64 * frac).round() as u64;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#d9e2ec\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#616e7c\">{v}</text>",
            width - right,
            left - 6.0,
            y + 4.0
        );
    }
    // Skip labels so that neighbours never overlap (about 6.5 px per character at 11 px).
    let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
    let label_every = ((widest * 6.5 + 8.0) / group_w).ceil().max(1.0) as usize;
    for (i, label) in labels.iter().enumerate() {
        let gx = left + group_w * i as f64 + group_w * 0.1;
        for (j, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0);
            let h = plot_h * v as f64 / max as f64;
            let x = gx + bar_w * j as f64;
            let y = top + plot_h - h;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\">\
                 <title>{}: {} {v}</title></rect>",
                (bar_w - 1.0).max(0.5),
                escape(s.colour),
                escape(label),
                escape(s.name)
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#616e7c\">{}</text>",
                left + group_w * (i as f64 + 0.5),
                height - bottom + 16.0,
                escape(label)
            );
        }
    }
    let mut lx = left;
    for s in series {
        let _ = write!(
            svg,
            "<rect x=\"{lx:.1}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"18\" fill=\"#1f2933\">{}</text>",
            escape(s.colour),
            lx + 16.0,
            escape(s.name)
        );
        lx += 24.0 + 7.0 * s.name.chars().count() as f64;
    }
    svg.push_str("</svg></div>");
    svg
}

/// Writes, failures and 429 answers per run, oldest first (the chart of reports and dashboard).
pub fn runs_chart(history: &[RunReport]) -> String {
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

fn total(r: &RunReport, f: impl Fn(&super::KindCounts) -> u64) -> u64 {
    r.kinds.values().map(f).sum()
}

fn run_mode(r: &RunReport) -> &'static str {
    match (r.dry_run, r.full) {
        (true, true) => "dry run, full",
        (true, false) => "dry run",
        (false, true) => "full",
        (false, false) => "incremental",
    }
}

/// Summary cards of one run.
pub fn run_cards(r: &RunReport) -> String {
    let ghl = r.api.get("ghl");
    let quota = ghl
        .and_then(|u| u.daily_remaining)
        .map(|q| q.to_string())
        .unwrap_or_else(|| "—".into());
    let mut out = String::from("<div class=\"cards\">");
    out.push_str(&format!(
        "<div class=\"card\"><div class=\"label\">Status</div><div class=\"value\">{}</div>\
         <div class=\"sub\">{}</div></div>",
        badge(&r.status),
        escape(run_mode(r))
    ));
    out.push_str(&card(
        if r.dry_run {
            "Planned writes"
        } else {
            "Writes"
        },
        &total(r, |c| c.writes()).to_string(),
        &format!("{} requests sent to GHL", r.ghl_writes()),
    ));
    out.push_str(&card("Created", &total(r, |c| c.created).to_string(), ""));
    out.push_str(&card("Updated", &total(r, |c| c.updated).to_string(), ""));
    out.push_str(&card("Failed", &total(r, |c| c.failed).to_string(), ""));
    out.push_str(&card(
        "Conflicts / drift",
        &format!("{} / {}", total(r, |c| c.conflicts), total(r, |c| c.drift)),
        "",
    ));
    out.push_str(&card("Deferred", &total(r, |c| c.deferred).to_string(), ""));
    out.push_str(&card("GHL quota left", &quota, "daily, at end of run"));
    out.push_str("</div>");
    out
}

/// The body of one run's report (no page chrome): cards, counts, API usage, notes, item tables.
pub fn run_body(r: &RunReport, max_items: usize) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<p class=\"muted\">Started {} · finished {}</p>",
        escape(&r.started_at),
        escape(r.finished_at.as_deref().unwrap_or("—"))
    );
    out.push_str(&run_cards(r));
    if r.dry_run {
        out.push_str(
            "<p class=\"muted\">Dry run: the actions below were planned and not sent.</p>",
        );
    }

    out.push_str("<h2>Counts per kind and action</h2>");
    let rows: Vec<Vec<String>> = r
        .kinds
        .iter()
        .map(|(k, c)| {
            vec![
                k.clone(),
                c.created.to_string(),
                c.adopted.to_string(),
                c.updated.to_string(),
                c.unchanged.to_string(),
                c.skipped.to_string(),
                c.failed.to_string(),
                c.deleted.to_string(),
                c.conflicts.to_string(),
                c.drift.to_string(),
                c.deferred.to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str(&empty("No record was processed in this run."));
    } else {
        out.push_str(&table(
            &[
                "Kind",
                "Created#",
                "Adopted#",
                "Updated#",
                "Unchanged#",
                "Skipped#",
                "Failed#",
                "Deleted#",
                "Conflicts#",
                "Drift#",
                "Deferred#",
            ],
            &rows,
        ));
    }

    out.push_str("<h2>API usage</h2>");
    let rows: Vec<Vec<String>> = r
        .api
        .iter()
        .map(|(api, u)| {
            let methods: Vec<String> = u
                .requests_by_method
                .iter()
                .map(|(m, n)| format!("{m} {n}"))
                .collect();
            vec![
                api.clone(),
                u.requests.to_string(),
                methods.join(", "),
                u.retries.to_string(),
                u.rate_limited.to_string(),
                u.failed.to_string(),
                u.daily_remaining
                    .map(|q| q.to_string())
                    .unwrap_or_else(|| "—".into()),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str(&empty("No API request was recorded for this run."));
    } else {
        out.push_str(&table(
            &[
                "API",
                "Requests#",
                "By method",
                "Retries#",
                "429s#",
                "Errors#",
                "Quota left#",
            ],
            &rows,
        ));
    }

    if !r.notes.is_empty() {
        out.push_str("<h2>Notes</h2><ul class=\"notes\">");
        for n in &r.notes {
            let _ = write!(out, "<li>{}</li>", escape(n));
        }
        out.push_str("</ul>");
    }

    if !r.unreadable.is_empty() {
        out.push_str("<h2>Values that could not be read</h2><ul class=\"notes\">");
        for line in super::unreadable_lines(&r.unreadable) {
            let _ = write!(out, "<li>{}</li>", escape(&line));
        }
        out.push_str("</ul>");
    }

    if !r.unsynced.is_empty() {
        let _ = write!(
            out,
            "<h2>Left unsynced ({})</h2><ul class=\"notes\">",
            r.unsynced.len()
        );
        for u in r.unsynced.iter().take(max_items) {
            let _ = write!(out, "<li>{}</li>", escape(&u.line()));
        }
        out.push_str("</ul>");
        if r.unsynced.len() > max_items {
            out.push_str(&empty(&format!(
                "… and {} more (see `report --format json`).",
                r.unsynced.len() - max_items
            )));
        }
    }

    if (r.items.len() as u64) < r.items_total {
        out.push_str(&empty(&format!(
            "The first {} of the run's {} listed items are shown below; all of them: `report {} --format json`, or pages of /api/runs/{}?offset=N&limit=M.",
            r.items.len(),
            r.items_total,
            r.run_id,
            r.run_id
        )));
    }

    for (title, outcome) in [
        ("Failures", "failed"),
        ("Conflicts", "conflict"),
        ("Drift (CRM-side edits)", "drift"),
        ("Skipped records", "skipped"),
        ("Deferred work", "deferred"),
        ("Deletions", "deleted"),
    ] {
        let items: Vec<&super::ReportItem> =
            r.items.iter().filter(|i| i.outcome == outcome).collect();
        let _ = write!(out, "<h2>{} ({})</h2>", escape(title), items.len());
        if items.is_empty() {
            out.push_str(&empty("None."));
            continue;
        }
        out.push_str(&items_table(&items[..items.len().min(max_items)]));
        if items.len() > max_items {
            out.push_str(&empty(&format!(
                "… and {} more (see `report --format json`).",
                items.len() - max_items
            )));
        }
    }
    out
}

/// A table of report items; conflicts and drift show each field with both values.
pub fn items_table(items: &[&super::ReportItem]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                escape(&i.kind),
                format!(
                    "<span class=\"mono\">{}</span>",
                    escape(i.source_id.as_deref().unwrap_or("—"))
                ),
                format!(
                    "<span class=\"mono\">{}</span>",
                    escape(i.target_id.as_deref().unwrap_or("—"))
                ),
                escape(&i.reason),
                detail_html(&i.detail),
            ]
        })
        .collect();
    table_html(&["Kind", "Source", "GHL", "Reason", "Detail"], &rows)
}

/// One field of a conflict or drift: both values and the one kept.
pub struct FieldValues {
    pub field: String,
    pub source: String,
    pub target: String,
    pub winner: String,
}

/// What an item's detail shows as.
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

/// Field-level detail: a `fields` list becomes a small table of both values; anything else is
/// shown as compact JSON text.
pub fn detail_html(detail: &serde_json::Value) -> String {
    match Detail::of(detail) {
        Detail::Nothing => String::new(),
        Detail::Fields(fields) => {
            let rows: Vec<Vec<String>> = fields
                .into_iter()
                .map(|f| vec![f.field, f.source, f.target, f.winner])
                .collect();
            table(&["Field", "HotspotSystem", "GHL", "Kept"], &rows)
        }
        Detail::Json(text) => format!("<code>{}</code>", escape(&text)),
    }
}

fn value_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "—".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn report_nav() -> String {
    String::from("<a class=\"on\" href=\"#\">Report</a>")
}

/// The report page of one run, with a chart over `history` (other recent runs; the run itself
/// is added when missing). Lists at most [`DEFAULT_MAX_ITEMS`] per section.
pub fn render_run(report: &RunReport, history: &[RunReport]) -> String {
    render_run_with(report, history, DEFAULT_MAX_ITEMS)
}

/// [`render_run`] with the per-section item limit chosen by the caller.
pub fn render_run_with(report: &RunReport, history: &[RunReport], max_items: usize) -> String {
    let mut all: Vec<RunReport> = history.to_vec();
    if !all.iter().any(|r| r.run_id == report.run_id) {
        all.push(report.clone());
    }
    let mut body = format!("<h2>Run #{}</h2>", report.run_id);
    body.push_str(&run_body(report, max_items));
    body.push_str("<h2>Recent runs</h2>");
    body.push_str(&runs_chart(&all));
    body.push_str(&footer());
    page(
        &format!("Run {} report", report.run_id),
        &report_nav(),
        &body,
    )
}

/// One page for several runs (`report --last N`): totals, the chart, a table of the runs, then
/// each run's report, newest first.
pub fn render_runs(reports: &[RunReport], max_items: usize) -> String {
    let mut runs: Vec<&RunReport> = reports.iter().collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.run_id));
    let mut body = format!("<h2>Last {} runs</h2>", runs.len());
    if runs.is_empty() {
        body.push_str(&empty("No run recorded yet."));
        return page("Runs report", &report_nav(), &body);
    }
    let sum = |f: &dyn Fn(&super::KindCounts) -> u64| -> u64 {
        runs.iter()
            .map(|r| r.kinds.values().map(f).sum::<u64>())
            .sum()
    };
    let bad = runs
        .iter()
        .filter(|r| r.status != "succeeded" && r.status != "ok")
        .count();
    body.push_str("<div class=\"cards\">");
    body.push_str(&card("Runs", &runs.len().to_string(), ""));
    body.push_str(&card("Not fully successful", &bad.to_string(), ""));
    body.push_str(&card("Writes", &sum(&|c| c.writes()).to_string(), ""));
    body.push_str(&card("Failed", &sum(&|c| c.failed).to_string(), ""));
    body.push_str(&card(
        "429 answers",
        &runs
            .iter()
            .map(|r| r.api.values().map(|u| u.rate_limited).sum::<u64>())
            .sum::<u64>()
            .to_string(),
        "",
    ));
    body.push_str("</div><h2>Writes, failures and 429s</h2>");
    body.push_str(&runs_chart(reports));
    body.push_str("<h2>Runs</h2>");
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                format!("<a href=\"#run-{0}\">#{0}</a>", r.run_id),
                escape(&r.started_at),
                badge(&r.status),
                escape(run_mode(r)),
                total(r, |c| c.writes()).to_string(),
                total(r, |c| c.failed).to_string(),
            ]
        })
        .collect();
    body.push_str(&table_html(
        &["Run", "Started", "Status", "Mode", "Writes#", "Failed#"],
        &rows,
    ));
    for r in &runs {
        let _ = write!(body, "<h2 id=\"run-{0}\">Run #{0}</h2>", r.run_id);
        body.push_str(&run_body(r, max_items));
    }
    body.push_str(&footer());
    page("Runs report", &report_nav(), &body)
}

fn footer() -> String {
    format!(
        "<footer>Generated by hotspot-ghl-sync {} at {}.</footer>",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    )
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
