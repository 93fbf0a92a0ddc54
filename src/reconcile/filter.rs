//! Pilot mode: which of the listed HotspotSystem guests a pass syncs (`[filter]`, `sync --limit`).
//!
//! The filter narrows what is synced, never what is read: every location of
//! `hotspot.locations` is still listed, and a guest kept out is *present*, so it is never taken
//! for deleted, its link and its GHL contact are left as they are, and nothing hangs off it this
//! pass (no note, task, business association or appointment read). Removing the filter later
//! syncs the rest through the same links, so nothing is created twice.
//!
//! The unit is a guest as GHL sees it: a merge group (records sharing an id or an email, see
//! [`group_sources`]), so a filter never splits a contact between a synced and a kept-out record.
//! A group passes when any of its records matches any list (the lists combine with OR: an
//! allow-list of test contacts). `--limit N` then keeps the first N passing groups, ordered by
//! the HotspotSystem id their link is keyed by (customers by number, then subscribers).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::transactions::GuestKeys;
use crate::config::GuestFilter;
use crate::mapping::group_sources;
use crate::model::SourceContact;

/// What a pass syncs: the filter and the limit together.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    pub filter: &'a GuestFilter,
    /// `sync --limit N`: at most N guests.
    pub limit: Option<usize>,
}

impl Selection<'_> {
    /// Neither a filter nor a limit: every listed guest is synced.
    pub fn is_everything(&self) -> bool {
        self.filter.is_empty() && self.limit.is_none()
    }

    /// Splits the listed records into those synced and those kept out.
    pub fn split(&self, records: Vec<SourceContact>) -> (Vec<SourceContact>, KeptOut) {
        if self.is_everything() {
            return (records, KeptOut::default());
        }
        let mut groups = group_sources(&records);
        // Each group's lead is the record its link is keyed by.
        groups.sort_by(|a, b| id_order(&a[0].source_id, &b[0].source_id));
        let mut kept_ids: BTreeSet<&str> = BTreeSet::new();
        let mut kept_out = KeptOut::default();
        let mut passing = 0usize;
        for g in &groups {
            let admitted = g.iter().any(|r| self.filter.admits(r));
            let within_limit = self.limit.is_none_or(|n| passing < n);
            if admitted && within_limit {
                passing += 1;
                kept_ids.extend(g.iter().map(|r| r.source_id.as_str()));
                continue;
            }
            kept_out.guests += 1;
            if admitted {
                kept_out.by_limit += 1;
            }
            if kept_out.sample.len() < KeptOut::SAMPLE {
                kept_out.sample.push(g[0].source_id.clone());
            }
            kept_out
                .source_ids
                .extend(g.iter().map(|r| r.source_id.clone()));
        }
        let kept_ids: BTreeSet<String> = kept_ids.into_iter().map(str::to_owned).collect();
        let (kept, out): (Vec<_>, Vec<_>) = records
            .into_iter()
            .partition(|r| kept_ids.contains(&r.source_id));
        kept_out.keys = out.iter().map(GuestKeys::from).collect();
        (kept, kept_out)
    }
}

/// Customers by number (then by text), then subscribers the same way: the order `--limit`
/// takes guests in, stable from run to run.
fn id_order(a: &str, b: &str) -> Ordering {
    let key = |s: &str| {
        let (sub, id) = match s.strip_prefix("sub:") {
            Some(id) => (true, id),
            None => (false, s),
        };
        (sub, id.parse::<u64>().ok(), id.to_owned())
    };
    let (ka, kb) = (key(a), key(b));
    // Numeric ids before non-numeric ones, each in its own order.
    ka.0.cmp(&kb.0)
        .then_with(|| match (ka.1, kb.1) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| ka.2.cmp(&kb.2))
}

/// The listed guests a pass left out by the operator's choice.
#[derive(Debug, Clone, Default)]
pub struct KeptOut {
    /// Guests (merge groups) kept out.
    pub guests: u64,
    /// Of those, how many passed the filter but fell beyond `--limit`.
    pub by_limit: u64,
    /// The first [`KeptOut::SAMPLE`] of them, by the id their link is keyed by.
    pub sample: Vec<String>,
    /// Every source id kept out (all members of each group): present, never taken for deleted.
    pub source_ids: BTreeSet<String>,
    /// What their transactions are matched by: told apart from transactions of no guest.
    pub keys: Vec<GuestKeys>,
}

impl KeptOut {
    /// How many kept-out guests a report names.
    pub const SAMPLE: usize = 20;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(id: &str, email: Option<&str>, location: &str) -> SourceContact {
        SourceContact {
            source_id: id.into(),
            email: email.map(str::to_owned),
            location_id: Some(location.into()),
            ..Default::default()
        }
    }

    fn ids(v: &[SourceContact]) -> Vec<&str> {
        v.iter().map(|r| r.source_id.as_str()).collect()
    }

    fn listing() -> Vec<SourceContact> {
        vec![
            guest("10", Some("ten@Pilot.example"), "L1"),
            guest("2", Some("two@example.com"), "L1"),
            guest("sub:1", Some("sub@example.com"), "L2"),
            guest("30", Some("Chosen@Example.com"), "L2"),
            guest("4", None, "L3"),
        ]
    }

    #[test]
    fn the_lists_combine_with_or_and_emails_ignore_case() {
        let filter = GuestFilter {
            ids: ["4".to_owned()].into(),
            emails: ["chosen@example.com".to_owned()].into(),
            email_domains: ["pilot.example".to_owned()].into(),
            locations: ["L2".to_owned()].into(),
        };
        let (kept, out) = Selection {
            filter: &filter,
            limit: None,
        }
        .split(listing());
        assert_eq!(ids(&kept), ["10", "sub:1", "30", "4"]);
        assert_eq!(out.guests, 1);
        assert_eq!(out.sample, ["2"]);
    }

    #[test]
    fn the_limit_takes_the_first_guests_by_id_customers_before_subscribers() {
        let all = GuestFilter::default();
        let (kept, out) = Selection {
            filter: &all,
            limit: Some(3),
        }
        .split(listing());
        assert_eq!(ids(&kept), ["10", "2", "4"]);
        assert_eq!((out.guests, out.by_limit), (2, 2));
        assert_eq!(out.sample, ["30", "sub:1"]);
    }

    #[test]
    fn a_guest_is_never_split_between_synced_and_kept_out() {
        // The same customer listed under two locations, and a subscriber sharing its email.
        let records = vec![
            guest("7", Some("same@example.com"), "L1"),
            guest("7", Some("same@example.com"), "L2"),
            guest("sub:9", Some("SAME@example.com"), "L3"),
            guest("8", Some("other@example.com"), "L3"),
        ];
        let filter = GuestFilter {
            locations: ["L2".to_owned()].into(),
            ..Default::default()
        };
        let (kept, out) = Selection {
            filter: &filter,
            limit: None,
        }
        .split(records);
        assert_eq!(ids(&kept), ["7", "7", "sub:9"]);
        assert_eq!(out.source_ids, ["8".to_owned()].into());
    }

    #[test]
    fn no_filter_and_no_limit_keep_everything_as_it_is() {
        let all = GuestFilter::default();
        let (kept, out) = Selection {
            filter: &all,
            limit: None,
        }
        .split(listing());
        assert_eq!(kept, listing());
        assert_eq!(out.guests, 0);
    }
}
