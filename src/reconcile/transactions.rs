//! The HotspotSystem transaction stream that notes and tasks read: each transaction type at
//! each location, newest first, stopped at the stored id cursor; and the guest → GHL contact
//! lookup its records are matched through.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::TransactionType;
use crate::hotspot::HotspotClient;
use crate::hotspot::wire::TransactionCommon;
use crate::http::HttpError;
use crate::model::{PhoneNormalizer, SourceContact, norm_email};

/// The wire name of a transaction type (`mac`, `voucher`, `social`, `paid`).
pub fn type_name(t: TransactionType) -> &'static str {
    t.wire_name()
}

/// One transaction, reduced to what notes and tasks need. Serialised into a parked link while
/// its guest has no contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Txn {
    pub kind: String,
    pub id: i64,
    pub location_id: String,
    pub at: Option<DateTime<Utc>>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub user_name: Option<String>,
    pub customer: Option<String>,
    pub amount: Option<f64>,
    pub currency: Option<String>,
    pub package: Option<String>,
    /// Data-capture questions and answers of mac transactions.
    #[serde(default)]
    pub answers: Vec<(String, String)>,
}

impl Txn {
    /// `"<type>:<transaction id>"`, the note link's source id.
    pub fn source_id(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }

    fn from_common(kind: &str, c: &TransactionCommon, location: &str) -> Option<Txn> {
        Some(Txn {
            kind: kind.to_string(),
            id: c.id?,
            location_id: c
                .location_id
                .clone()
                .unwrap_or_else(|| location.to_string()),
            at: c.action_date_gmt,
            email: c.email.clone(),
            phone: c.phone.clone(),
            user_name: c.user_name.clone(),
            customer: c.customer.clone(),
            amount: None,
            currency: None,
            package: None,
            answers: Vec::new(),
        })
    }

    /// Template values: type, transaction_id, location, amount, currency, package, date, name,
    /// email, answers, details.
    pub fn vars(&self, location_names: &HashMap<String, String>) -> BTreeMap<&'static str, String> {
        let mut v = BTreeMap::new();
        v.insert("type", self.kind.clone());
        v.insert("transaction_id", self.id.to_string());
        v.insert(
            "location",
            location_names
                .get(&self.location_id)
                .cloned()
                .unwrap_or_else(|| self.location_id.clone()),
        );
        v.insert("location_id", self.location_id.clone());
        let amount = self.amount.map(|a| format!("{a:.2}")).unwrap_or_default();
        v.insert("amount", amount.clone());
        v.insert("currency", self.currency.clone().unwrap_or_default());
        v.insert("package", self.package.clone().unwrap_or_default());
        v.insert(
            "date",
            self.at
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
        );
        v.insert("name", self.customer.clone().unwrap_or_default());
        v.insert("email", self.email.clone().unwrap_or_default());
        let answers: Vec<String> = self
            .answers
            .iter()
            .map(|(q, a)| format!("{q}: {a}"))
            .collect();
        v.insert("answers", answers.join("\n"));
        let mut details = String::new();
        if !amount.is_empty() {
            details.push_str(&format!(
                " ({amount} {})",
                self.currency.as_deref().unwrap_or_default()
            ));
        }
        if let Some(p) = self.package.as_deref().filter(|p| !p.is_empty()) {
            details.push_str(&format!(", package {p}"));
        }
        for a in &answers {
            details.push('\n');
            details.push_str(a);
        }
        v.insert("details", details);
        v
    }
}

fn answers(pairs: [(&Option<String>, &Option<String>); 5]) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .filter_map(|(q, a)| Some((q.clone()?, a.clone()?)))
        .collect()
}

/// What one stream (type, location) read.
#[derive(Debug, Default)]
pub struct StreamRead {
    pub txns: Vec<Txn>,
    /// Highest id seen, the next cursor.
    pub max_id: Option<i64>,
}

/// How much of a stream with no cursor yet is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncursored {
    /// Every transaction (the notes pass's first run writes the history).
    Everything,
    /// Only enough to know the newest id (the fast lane's first tick leaves the history to the
    /// notes pass): `txns` stays empty and `max_id` is the newest id.
    NewestOnly,
}

/// Reads the transactions of one type at one location newer than `after`, newest first,
/// stopping at the first page that reaches the cursor.
pub async fn read_stream(
    hs: &HotspotClient,
    t: TransactionType,
    location: &str,
    after: Option<i64>,
) -> Result<StreamRead, HttpError> {
    read_stream_from(hs, t, location, after, Uncursored::Everything).await
}

/// [`read_stream`], saying how much of a stream with no cursor (`after = None`) is read.
pub async fn read_stream_from(
    hs: &HotspotClient,
    t: TransactionType,
    location: &str,
    after: Option<i64>,
    uncursored: Uncursored,
) -> Result<StreamRead, HttpError> {
    let kind = type_name(t);
    let mut out = StreamRead::default();
    let newest_only = after.is_none() && uncursored == Uncursored::NewestOnly;
    // Stopping at the cursor is only safe while the server really sorts newest first; a page
    // that is not in descending order (within it, or after the page before) means the sort was
    // ignored, and the rest is read in full.
    let mut sorted = true;
    let mut last: Option<i64> = None;
    macro_rules! drain {
        ($pager:expr, $conv:expr) => {{
            let mut pager = $pager.sort("-id");
            while let Some(page) = pager.next_page().await? {
                let page: Vec<Txn> = page.into_iter().filter_map($conv).collect();
                sorted &= page.windows(2).all(|w| w[0].id >= w[1].id)
                    && match (last, page.first()) {
                        (Some(l), Some(f)) => f.id <= l,
                        _ => true,
                    };
                last = page.last().map(|t| t.id).or(last);
                let mut reached = page.is_empty() || newest_only;
                for txn in page {
                    if newest_only {
                        out.max_id = out.max_id.max(Some(txn.id));
                        continue;
                    }
                    if after.is_some_and(|a| txn.id <= a) {
                        reached = true;
                        continue;
                    }
                    out.max_id = out.max_id.max(Some(txn.id));
                    out.txns.push(txn);
                }
                if reached && sorted {
                    break;
                }
            }
        }};
    }
    match t {
        TransactionType::Mac => drain!(
            hs.mac_transactions(Some(location)),
            |m: crate::hotspot::wire::MacTransaction| {
                let mut x = Txn::from_common(kind, &m.common, location)?;
                x.package = m.package_id.clone();
                x.answers = answers([
                    (&m.q1, &m.a1),
                    (&m.q2, &m.a2),
                    (&m.q3, &m.a3),
                    (&m.q4, &m.a4),
                    (&m.q5, &m.a5),
                ]);
                Some(x)
            }
        ),
        TransactionType::Voucher => drain!(
            hs.voucher_transactions(Some(location)),
            |p: crate::hotspot::wire::PaidTransaction| {
                let mut x = Txn::from_common(kind, &p.common, location)?;
                x.amount = p.amount;
                x.currency = p.currency.clone();
                Some(x)
            }
        ),
        TransactionType::Paid => drain!(
            hs.paid_transactions(Some(location)),
            |p: crate::hotspot::wire::PaidTransaction| {
                let mut x = Txn::from_common(kind, &p.common, location)?;
                x.amount = p.amount;
                x.currency = p.currency.clone();
                Some(x)
            }
        ),
        TransactionType::Social => drain!(
            hs.social_transactions(Some(location)),
            |s: crate::hotspot::wire::SocialTransaction| {
                let mut x = Txn::from_common(kind, &s.common, location)?;
                x.package = s.package_id.clone();
                Some(x)
            }
        ),
    }
    Ok(out)
}

/// Finds the GHL contact of a guest by email, phone or HotspotSystem user name, through the
/// contact links of the source records that carry them.
#[derive(Debug, Default)]
pub struct ContactIndex {
    by_email: HashMap<String, String>,
    by_phone: HashMap<String, String>,
    by_user: HashMap<String, String>,
    phone: PhoneNormalizer,
    /// The emails, phones and user names of guests kept out of this pass (`[filter]`,
    /// `--limit`), each prefixed by what it is.
    kept_out: HashSet<String>,
}

/// What the transaction stream matches a guest by: all the later kinds keep of a HotspotSystem
/// record (a `SourceContact` is twenty-one fields; at 100,000 guests the difference is tens of
/// megabytes held for the whole pass).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestKeys {
    pub source_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub user_name: Option<String>,
}

impl From<&SourceContact> for GuestKeys {
    fn from(r: &SourceContact) -> Self {
        GuestKeys {
            source_id: r.source_id.clone(),
            email: r.email.clone(),
            phone: r.phone.clone(),
            user_name: r.user_name.clone(),
        }
    }
}

impl ContactIndex {
    /// `linked`: contact source id → GHL contact id (active links only).
    pub fn build(
        records: &[GuestKeys],
        linked: &HashMap<String, String>,
        phone: PhoneNormalizer,
    ) -> ContactIndex {
        let mut ix = ContactIndex {
            phone,
            ..Default::default()
        };
        let mut unlinked = Vec::new();
        for r in records {
            match linked.get(&r.source_id) {
                Some(tid) => ix.add(r, tid),
                None => unlinked.push(r),
            }
        }
        // Records sharing an email are merged into one contact (see `map_sources`), whose link
        // is keyed by one of them only. The others' phones and user names lead there too: their
        // transactions carry those, and often no email.
        for r in unlinked {
            let merged_into = norm_email(r.email.as_deref()).and_then(|e| ix.by_email.get(&e));
            if let Some(tid) = merged_into.cloned() {
                ix.add(r, &tid);
            }
        }
        ix
    }

    /// Makes the keys of guests kept out of this pass known as such: their transactions are
    /// told apart from those of no known guest ([`ContactIndex::kept_out`]).
    pub fn keeping_out(mut self, guests: &[GuestKeys]) -> ContactIndex {
        for g in guests {
            let keys = self.keys(
                g.email.as_deref(),
                g.phone.as_deref(),
                g.user_name.as_deref(),
            );
            self.kept_out.extend(keys);
        }
        self
    }

    /// Whether a transaction whose contact [`ContactIndex::find`] did not find belongs to a
    /// guest kept out of this pass.
    pub fn kept_out(&self, email: Option<&str>, phone: Option<&str>, user: Option<&str>) -> bool {
        !self.kept_out.is_empty()
            && self
                .keys(email, phone, user)
                .iter()
                .any(|k| self.kept_out.contains(k))
    }

    fn keys(&self, email: Option<&str>, phone: Option<&str>, user: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = norm_email(email) {
            out.push(format!("e:{e}"));
        }
        if let (Some(p), _) = self.phone.normalize(phone) {
            out.push(format!("p:{p}"));
        }
        if let Some(u) = user.map(str::trim).filter(|u| !u.is_empty()) {
            out.push(format!("u:{u}"));
        }
        out
    }

    /// Makes the record's email, phone and user name lead to `tid`, unless they already lead to
    /// a contact.
    fn add(&mut self, r: &GuestKeys, tid: &str) {
        if let Some(e) = norm_email(r.email.as_deref()) {
            self.by_email.entry(e).or_insert_with(|| tid.to_string());
        }
        if let (Some(p), _) = self.phone.normalize(r.phone.as_deref()) {
            self.by_phone.entry(p).or_insert_with(|| tid.to_string());
        }
        if let Some(u) = r
            .user_name
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            self.by_user
                .entry(u.to_string())
                .or_insert_with(|| tid.to_string());
        }
    }

    pub fn find(
        &self,
        email: Option<&str>,
        phone: Option<&str>,
        user: Option<&str>,
    ) -> Option<&str> {
        norm_email(email)
            .and_then(|e| self.by_email.get(&e))
            .or_else(|| {
                self.phone
                    .normalize(phone)
                    .0
                    .and_then(|p| self.by_phone.get(&p))
            })
            .or_else(|| user.map(str::trim).and_then(|u| self.by_user.get(u)))
            .map(String::as_str)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn contact(sid: &str, email: Option<&str>, phone: Option<&str>, user: &str) -> GuestKeys {
        GuestKeys {
            source_id: sid.into(),
            email: email.map(str::to_string),
            phone: phone.map(str::to_string),
            user_name: Some(user.into()),
        }
    }

    /// Four guests, three of them linked to G1, G2 and G3 by email, phone and user name.
    pub(crate) fn index() -> ContactIndex {
        let records = vec![
            contact("c1", Some("Ann@Example.com"), None, "u1"),
            contact("c2", None, Some("+44 20 7946 0958"), "u2"),
            contact("c3", None, None, "AA-BB"),
            contact("c4", Some("unlinked@example.com"), None, "u4"),
        ];
        let linked: HashMap<String, String> = [("c1", "G1"), ("c2", "G2"), ("c3", "G3")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        ContactIndex::build(&records, &linked, PhoneNormalizer::new("GB").unwrap())
    }

    #[test]
    fn transactions_find_their_contact_by_email_phone_or_user_name() {
        let ix = index();
        assert_eq!(ix.find(Some(" ann@example.COM "), None, None), Some("G1"));
        assert_eq!(ix.find(None, Some("0044 20 7946 0958"), None), Some("G2"));
        assert_eq!(ix.find(None, None, Some("AA-BB")), Some("G3"));
        assert_eq!(
            ix.find(Some("unlinked@example.com"), None, Some("u4")),
            None
        );
    }

    #[test]
    fn a_customer_merged_by_email_is_found_by_its_own_phone_and_user_name() {
        let records = vec![
            contact(
                "c1",
                Some("couple@example.com"),
                Some("+44 20 7946 0100"),
                "u1",
            ),
            contact(
                "c2",
                Some(" Couple@Example.com"),
                Some("+44 20 7946 0111"),
                "u2",
            ),
        ];
        let linked: HashMap<String, String> = [("c1".to_string(), "G1".to_string())].into();
        let ix = ContactIndex::build(&records, &linked, PhoneNormalizer::new("GB").unwrap());
        assert_eq!(ix.find(None, Some("020 7946 0111"), Some("u2")), Some("G1"));
        assert_eq!(ix.find(None, None, Some("u2")), Some("G1"));
        assert_eq!(ix.find(None, Some("+44 20 7946 0100"), None), Some("G1"));
    }
}
