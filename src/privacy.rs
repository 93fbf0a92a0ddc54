//! Whether guests' names, emails and phone numbers are shown (`[dashboard] show_personal_data`).
//!
//! Masking works on the data, before any rendering, so that the HTML pages, the JSON API and
//! the reports cannot disagree: a value masked here is absent from every output. What is
//! masked: the values of personal fields in conflict and drift details, task and appointment
//! titles (their templates name the guest), anything shaped like an email address or an
//! international phone number in free text, and each masked field value wherever it recurs
//! in the item's reason. Record ids, location names, counts and dates stay.

use serde_json::Value;

use crate::report::{ReportItem, RunReport};
use crate::store::dashboard::{OpenTask, RunItemRow};
use crate::store::{Appointment, RunItem};

/// What replaces a masked value.
pub const MASK: &str = "•••";

/// The choice, made once per process (serve: from the config and the listen address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalData {
    Show,
    Mask,
}

/// Field names (GHL and HotspotSystem spellings) whose values identify a person.
const PERSONAL_FIELDS: &[&str] = &[
    "name",
    "firstname",
    "lastname",
    "fullname",
    "email",
    "phone",
    "address",
    "address1",
    "postalcode",
    "zip",
    "dateofbirth",
    "social_id",
    "social_username",
    "social_link",
];

fn is_personal_field(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let bare = lower.rsplit([':', '.']).next().unwrap_or(&lower);
    PERSONAL_FIELDS.contains(&bare)
}

impl PersonalData {
    /// Shown unless `show` says otherwise; when unset, shown only to a loopback listener.
    pub fn decide(show: Option<bool>, loopback: bool) -> Self {
        if show.unwrap_or(loopback) {
            PersonalData::Show
        } else {
            PersonalData::Mask
        }
    }

    fn masks(self) -> bool {
        self == PersonalData::Mask
    }

    pub fn run_item(self, item: &mut RunItem) {
        if self.masks() {
            let hidden = mask_detail(&mut item.detail);
            if let Some(r) = &mut item.reason {
                *r = mask_text(r, &hidden);
            }
        }
    }

    pub fn run_item_rows(self, rows: &mut [RunItemRow]) {
        for r in rows {
            self.run_item(&mut r.item);
        }
    }

    pub fn report_item(self, item: &mut ReportItem) {
        if self.masks() {
            let hidden = mask_detail(&mut item.detail);
            item.reason = mask_text(&item.reason, &hidden);
        }
    }

    pub fn report(self, report: &mut RunReport) {
        if self.masks() {
            for i in &mut report.items {
                self.report_item(i);
            }
            for n in &mut report.notes {
                *n = mask_text(n, &[]);
            }
            // Keyed `list.field`: an unreadable value of a personal field is hidden whole.
            for (key, tally) in &mut report.unreadable {
                tally.sample = if is_personal_field(key) {
                    MASK.into()
                } else {
                    mask_text(&tally.sample, &[])
                };
            }
        }
    }

    /// A run's stored summary as `/api/runs` serves it: its notes and unreadable-value samples.
    pub fn summary_json(self, summary: &mut Value) {
        if !self.masks() {
            return;
        }
        if let Some(notes) = summary.get_mut("notes").and_then(Value::as_array_mut) {
            for n in notes {
                if let Some(t) = n.as_str() {
                    *n = Value::String(mask_text(t, &[]));
                }
            }
        }
        if let Some(u) = summary.get_mut("unreadable").and_then(Value::as_object_mut) {
            for (key, tally) in u.iter_mut() {
                if let Some(sample) = tally.get_mut("sample") {
                    let masked = match sample.as_str() {
                        _ if is_personal_field(key) => MASK.to_string(),
                        Some(t) => mask_text(t, &[]),
                        None => continue,
                    };
                    *sample = Value::String(masked);
                }
            }
        }
    }

    pub fn open_tasks(self, tasks: &mut [OpenTask]) {
        if self.masks() {
            for t in tasks {
                if t.title.is_some() {
                    t.title = Some(MASK.into());
                }
            }
        }
    }

    pub fn appointments(self, list: &mut [Appointment]) {
        if self.masks() {
            for a in list {
                if a.title.is_some() {
                    a.title = Some(MASK.into());
                }
            }
        }
    }
}

/// Masks `detail` in place and returns the personal values it hid (to hide them in the reason
/// too): values of personal fields in a `fields` list, pattern masking for every other string.
fn mask_detail(detail: &mut Value) -> Vec<String> {
    let mut hidden = Vec::new();
    if let Some(fields) = detail.get_mut("fields").and_then(Value::as_array_mut) {
        for f in fields {
            let personal = f
                .get("field")
                .and_then(Value::as_str)
                .is_some_and(is_personal_field);
            if let Some(obj) = f.as_object_mut() {
                for (k, v) in obj.iter_mut() {
                    if k == "field" {
                        continue;
                    }
                    if personal && k != "winner" {
                        if let Some(s) = v.as_str() {
                            hidden.extend(
                                s.split_whitespace()
                                    .filter(|w| w.chars().count() >= 2)
                                    .map(str::to_string),
                            );
                            hidden.push(s.to_string());
                        }
                        if !v.is_null() {
                            *v = Value::String(MASK.into());
                        }
                    }
                }
            }
        }
    }
    hidden.sort_by_key(|s| std::cmp::Reverse(s.len()));
    mask_strings(detail, &hidden);
    hidden
}

fn mask_strings(v: &mut Value, hidden: &[String]) {
    match v {
        Value::String(s) if s != MASK => *s = mask_text(s, hidden),
        Value::Array(a) => a.iter_mut().for_each(|x| mask_strings(x, hidden)),
        Value::Object(o) => o.values_mut().for_each(|x| mask_strings(x, hidden)),
        _ => {}
    }
}

/// `text` with each of `hidden` (longest first), every email address and every phone number
/// replaced by [`MASK`].
pub fn mask_text(text: &str, hidden: &[String]) -> String {
    let mut out = text.to_string();
    for h in hidden {
        if !h.trim().is_empty() && h != MASK {
            out = out.replace(h.as_str(), MASK);
        }
    }
    mask_phones(&mask_emails(&out))
}

/// Each whitespace-delimited word holding `x@y.z` is replaced, surrounding punctuation kept.
fn mask_emails(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let is_part = |c: char| c.is_alphanumeric() || "._%+-'".contains(c);
        let start = rest[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_part(*c))
            .last()
            .map_or(at, |(i, _)| i);
        let after = &rest[at + 1..];
        let dom_len = after
            .char_indices()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '.' || *c == '-')
            .last()
            .map_or(0, |(i, c)| i + c.len_utf8());
        let domain = after[..dom_len].trim_end_matches('.');
        if start < at && domain.contains('.') {
            out.push_str(&rest[..start]);
            out.push_str(MASK);
            rest = &after[domain.len()..];
        } else {
            out.push_str(&rest[..=at]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Phone numbers: a `+` followed by at least 7 digits, or a bare run of at least 9 digits,
/// with spaces, dots, dashes and parentheses between them, not glued to a word (ids such as
/// `tx-123456789` and ISO dates stay).
fn mask_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let glued = i > 0 && {
            let p = chars[i - 1];
            p.is_alphanumeric() || matches!(p, '-' | '_' | ':' | '/' | '#' | '.')
        };
        if (c == '+' || c == '(' || c.is_ascii_digit()) && !glued {
            let mut j = i;
            let mut digits = 0;
            let mut last_digit = i;
            while j < chars.len() {
                let d = chars[j];
                if d.is_ascii_digit() {
                    digits += 1;
                    last_digit = j;
                } else if !(matches!(d, ' ' | '-' | '.' | '(' | ')') || (j == i && d == '+')) {
                    break;
                }
                j += 1;
            }
            let end = last_digit + 1;
            let glued_after = chars.get(end).is_some_and(|n| n.is_alphanumeric());
            let phone = !glued_after
                && if c == '+' {
                    digits >= 7
                } else {
                    digits >= 9 && !looks_like_date(&chars[i..end])
                };
            if phone {
                out.push_str(MASK);
                i = end;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn looks_like_date(run: &[char]) -> bool {
    let s: String = run.iter().collect();
    let b = s.as_bytes();
    b.len() >= 10 && b[4] == b'-' && b[7] == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_and_phones_are_masked_in_text() {
        assert_eq!(
            mask_text("mail alice.b+x@example.co.uk, then", &[]),
            "mail •••, then"
        );
        assert_eq!(mask_text("call +1 (555) 000-1234 now", &[]), "call ••• now");
        assert_eq!(mask_text("call 0612345678.", &[]), "call •••.");
        assert_eq!(
            mask_text("run 2026-12-02 12:00 tx-123456789 id 4242", &[]),
            "run 2026-12-02 12:00 tx-123456789 id 4242"
        );
        assert_eq!(
            mask_text("user@localhost is fine", &[]),
            "user@localhost is fine"
        );
    }

    #[test]
    fn personal_field_values_are_masked_and_hidden_in_the_reason() {
        let mut item = ReportItem {
            kind: "contact".into(),
            outcome: "conflict".into(),
            source_id: Some("cust-9".into()),
            target_id: None,
            reason: "both sides changed firstName of Alice Smith".into(),
            detail: json!({"fields": [
                {"field": "firstName", "source": "Alice Smith", "target": "Alicia", "winner": null},
                {"field": "city", "source": "Paris", "target": "Lyon", "winner": "target"},
            ]}),
        };
        PersonalData::Mask.report_item(&mut item);
        assert_eq!(item.reason, "both sides changed firstName of •••");
        assert_eq!(item.detail["fields"][0]["source"], MASK);
        assert_eq!(item.detail["fields"][0]["target"], MASK);
        assert_eq!(item.detail["fields"][1]["source"], "Paris");
        let before = item.clone();
        PersonalData::Show.report_item(&mut item);
        assert_eq!(item, before);
    }

    #[test]
    fn unreadable_samples_of_personal_fields_are_hidden() {
        let mut r = RunReport {
            run_id: 1,
            started_at: String::new(),
            finished_at: None,
            status: "partial".into(),
            dry_run: false,
            full: false,
            kinds: Default::default(),
            api: Default::default(),
            notes: vec!["write to bob@example.com failed".into()],
            unreadable: Default::default(),
            items: Vec::new(),
            items_total: 0,
            unsynced: Vec::new(),
            kept_out: None,
        };
        for (key, sample) in [
            ("customers.phone", "555-CALL-ME"),
            ("customers.city", "Par1s"),
        ] {
            r.unreadable.insert(
                key.into(),
                crate::decode::FieldTally {
                    count: 1,
                    sample: sample.into(),
                    ids: vec![],
                },
            );
        }
        let mut summary = json!({"notes": r.notes.clone(), "unreadable": r.unreadable.clone()});
        PersonalData::Mask.report(&mut r);
        assert_eq!(r.unreadable["customers.phone"].sample, MASK);
        assert_eq!(r.unreadable["customers.city"].sample, "Par1s");
        assert_eq!(r.notes[0], "write to ••• failed");
        PersonalData::Mask.summary_json(&mut summary);
        assert_eq!(summary["unreadable"]["customers.phone"]["sample"], MASK);
        assert_eq!(summary["unreadable"]["customers.city"]["sample"], "Par1s");
        assert_eq!(summary["notes"][0], "write to ••• failed");
    }

    #[test]
    fn the_default_follows_the_listener() {
        assert_eq!(PersonalData::decide(None, true), PersonalData::Show);
        assert_eq!(PersonalData::decide(None, false), PersonalData::Mask);
        assert_eq!(PersonalData::decide(Some(true), false), PersonalData::Show);
        assert_eq!(PersonalData::decide(Some(false), true), PersonalData::Mask);
    }
}
