//! The self-contained HTML report: hostile record values render as text, the page loads nothing
//! from outside, and it shows counts, API usage, the runs chart and every item section.

mod support;

use std::collections::BTreeMap;

use hotspot_ghl_sync::report::html::{self, escape, render_run, render_runs};
use hotspot_ghl_sync::report::{self, ApiUsage, KindCounts, ReportItem, RunReport};
use hotspot_ghl_sync::store::Store;
use serde_json::json;
use support::dashboard::{HOSTILE, TempDir, populate};

fn hostile_report(run_id: i64) -> RunReport {
    let mut kinds = BTreeMap::new();
    kinds.insert(
        "contact".to_string(),
        KindCounts {
            created: 3,
            updated: 2,
            failed: 1,
            conflicts: 1,
            ..Default::default()
        },
    );
    let mut api = BTreeMap::new();
    api.insert(
        "ghl".to_string(),
        ApiUsage {
            requests: 9,
            requests_by_method: BTreeMap::from([("GET".into(), 4), ("POST".into(), 5)]),
            retries: 2,
            rate_limited: 3,
            failed: 1,
            writes: 5,
            daily_remaining: Some(123_456),
        },
    );
    let item = |outcome: &str, reason: &str, detail: serde_json::Value| ReportItem {
        kind: "contact".into(),
        outcome: outcome.into(),
        source_id: Some(format!("cust-\"{outcome}\"")),
        target_id: Some("<b>ghl</b>".into()),
        reason: reason.into(),
        detail,
    };
    RunReport {
        run_id,
        started_at: "2026-11-26T10:00:00Z".into(),
        finished_at: Some("2026-11-26T10:01:00Z".into()),
        status: "partial".into(),
        dry_run: false,
        full: false,
        kinds,
        api,
        notes: vec!["</style><style>body{display:none}</style>".into()],
        unreadable: Default::default(),
        items: vec![
            item(
                "failed",
                &format!("GHL refused contact {HOSTILE}"),
                json!({"body": "<img src=x onerror=alert(1)>"}),
            ),
            item(
                "conflict",
                "both sides changed",
                json!({"fields": [{"field": "firstName", "source": HOSTILE, "target": "Zoë & Co", "winner": "source"}]}),
            ),
            item("skipped", "no email or phone", serde_json::Value::Null),
            item(
                "deferred",
                "daily quota reserve reached",
                serde_json::Value::Null,
            ),
            item(
                "drift",
                "CRM edit kept",
                json!({"fields": [{"field": "phone", "source": "+1", "target": "+2", "winner": "target"}]}),
            ),
        ],
        items_total: 5,
        unsynced: Vec::new(),
        kept_out: None,
    }
}

#[test]
fn escape_covers_markup_and_quotes() {
    assert_eq!(
        escape(r#"<a href="x" title='y'>&amp;</a>"#),
        "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
    );
    assert_eq!(escape("Zoë plain"), "Zoë plain");
}

#[test]
fn hostile_record_values_render_as_text() {
    let page = render_run(&hostile_report(7), &[]).unwrap();
    assert!(!page.contains("<script"), "a raw <script> element");
    assert!(!page.contains("<img"), "a raw <img> element");
    assert!(!page.contains("<b>ghl</b>"));
    assert_eq!(
        page.matches("</style>").count(),
        1,
        "only the page's own stylesheet closes a style element"
    );
    assert!(
        page.contains("GHL refused contact &lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;")
    );
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(page.contains("cust-&quot;failed&quot;"));
    // Conflicts show both values and the winner.
    assert!(page.contains("<td>&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;</td><td>Zoë &amp; Co</td><td>source</td>"));
}

#[test]
fn the_page_is_self_contained() {
    let page = render_run(&hostile_report(7), &[hostile_report(5), hostile_report(6)]).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    for forbidden in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(",
    ] {
        assert!(!page.contains(forbidden), "page contains {forbidden:?}");
    }
    // The only URL is the SVG namespace, which is an identifier, not a fetch.
    let urls = page.matches("http://").count() + page.matches("https://").count();
    assert_eq!(
        urls,
        page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    assert!(page.contains("<style>"));
}

#[test]
fn the_report_shows_counts_usage_chart_and_sections() {
    let r = hostile_report(7);
    let page = render_run(&r, &[hostile_report(5), hostile_report(6)]).unwrap();
    assert!(page.contains("<title>Run 7 report</title>"));
    assert!(page.contains("b-partial"));
    assert!(page.contains("123456"), "quota left");
    assert!(page.contains("GET 4, POST 5"));
    for section in [
        "Failures (1)",
        "Conflicts (1)",
        "Drift (CRM-side edits) (1)",
        "Skipped records (1)",
        "Deferred work (1)",
        "Deletions (0)",
    ] {
        assert!(page.contains(section), "section {section}");
    }
    // Chart: 3 runs × 3 series bars + 3 legend swatches; the run itself is in the history.
    let svg = &page[page.find("<svg").unwrap()..page.find("</svg>").unwrap()];
    assert_eq!(svg.matches("<rect").count(), 3 * 3 + 3);
    for label in ["#5", "#6", "#7"] {
        assert!(svg.contains(&format!(">{label}</text>")), "{label}");
    }
    assert!(svg.contains("<title>#7: 429s 3</title>"));
    assert!(svg.contains("<title>#7: writes 5</title>"));
    assert!(svg.contains("<title>#7: failures 1</title>"));
}

#[test]
fn item_lists_are_capped() {
    let mut r = hostile_report(1);
    r.items = (0..30)
        .map(|i| ReportItem {
            kind: "note".into(),
            outcome: "skipped".into(),
            source_id: Some(format!("tx-{i}")),
            target_id: None,
            reason: "duplicate".into(),
            detail: serde_json::Value::Null,
        })
        .collect();
    let page = html::render_run_with(&r, &[], 10).unwrap();
    assert!(page.contains("Skipped records (30)"));
    assert!(page.contains("… and 20 more"));
    assert!(page.contains(">tx-9<"));
    assert!(!page.contains(">tx-10<"));
}

#[test]
fn reports_load_from_the_store_and_render_several_runs() {
    let dir = TempDir::new("report-html");
    let db = dir.path("state.db");
    let f = populate(&db);
    let store = Store::open(&db).unwrap();
    let recent = html::load_recent(&store, 10).unwrap();
    assert_eq!(
        recent.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        [f.dry_run, f.partial_run, f.ok_run]
    );
    let one = report::load(&store, f.partial_run).unwrap().unwrap();
    let page = render_run(&one, &recent).unwrap();
    assert!(page.contains("Alice &amp; Bob"));
    assert!(!page.contains("<script"));

    let page = render_runs(&recent, 50).unwrap();
    assert!(page.contains("Last 3 runs"));
    for id in [f.ok_run, f.partial_run, f.dry_run] {
        assert!(page.contains(&format!("id=\"run-{id}\"")));
        assert!(page.contains(&format!("href=\"#run-{id}\"")));
    }
    assert!(page.contains("Dry run: the actions below were planned and not sent."));
    // The dry run planned 50 writes and sent none: the chart shows none.
    let dry = f.dry_run;
    assert!(page.contains(&format!("<title>#{dry} dry: writes 0</title>")));
    assert!(page.contains("Planned writes"));
    assert!(!page.contains("<script"));
}
