//! Seeded data generator for the HotspotSystem side, and the record types the emulator serves.
//!
//! The record types follow reference §5 (`/work/shared/reference/hotspotsystem-api.md`) field for
//! field, typed as the GO/COMPOSIO sources type them: customer and location ids are strings,
//! transaction `id`/`location_id`/`newsletter` are integers, `amount`/`price_enduser` are numbers,
//! nullable fields are `Option`. [`ApiRecord::to_json`] gives either that strict form or the
//! "lenient types" form in which every number arrives as a string, because the sources disagree
//! and a client must survive both.
//!
//! Generation is deterministic: the same [`SeedSpec`] gives identical [`HotspotData`]. The hard
//! cases a sync must survive sit at fixed customer indexes, listed in [`hard_cases`], so tests can
//! point at them.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// Strict form of `registered_at` (reference §7 leaves the format open; strict mode uses RFC 3339).
const REGISTERED_AT_STRICT: &str = "%Y-%m-%dT%H:%M:%SZ";
/// Lenient form of `registered_at`, the `"2013-05-21 17:53:39"` style the NOTES page documents.
const REGISTERED_AT_LENIENT: &str = "%Y-%m-%d %H:%M:%S";
/// `action_date_gmt` as the live API sends it (TL strips `T` and `.000Z`), in both modes.
const ACTION_DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S.000Z";
/// Fields that are decimals: lenient mode renders them with two decimals (`"4.50"`).
const DECIMAL_FIELDS: &[&str] = &["amount", "price_enduser"];

fn ser_registered_at<S: Serializer>(d: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&d.format(REGISTERED_AT_STRICT))
}

fn ser_action_date<S: Serializer>(d: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&d.format(ACTION_DATE_FORMAT))
}

/// A record the emulator can serve: its strict JSON, its lenient JSON, and its property names
/// (which are what `fields` and `sort` accept).
pub trait ApiRecord: Serialize + Default {
    /// The record as the API would send it. `lenient` turns every number into a string and
    /// writes `registered_at` as `YYYY-MM-DD HH:MM:SS`.
    fn to_json(&self, lenient: bool) -> Value {
        // The record types hold only strings, numbers, options and dates: serializing cannot fail.
        let strict = serde_json::to_value(self).unwrap_or(Value::Null);
        if lenient {
            lenient_form(strict)
        } else {
            strict
        }
    }

    /// Property names of the API form, in serialization order.
    fn field_names() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// Rewrites a strict record into the lenient-types form (numbers as strings, space-separated
/// `registered_at`). Works on any record object; other values are returned unchanged.
pub fn lenient_form(strict: Value) -> Value {
    let Value::Object(map) = strict else {
        return strict;
    };
    let out = map
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Number(n) if DECIMAL_FIELDS.contains(&key.as_str()) => {
                    Value::String(format!("{:.2}", n.as_f64().unwrap_or(0.0)))
                }
                Value::Number(n) => Value::String(n.to_string()),
                Value::String(s) if key == "registered_at" => {
                    match DateTime::parse_from_rfc3339(&s) {
                        Ok(d) => Value::String(
                            d.with_timezone(&Utc)
                                .format(REGISTERED_AT_LENIENT)
                                .to_string(),
                        ),
                        Err(_) => Value::String(s),
                    }
                }
                other => other,
            };
            (key, value)
        })
        .collect();
    Value::Object(out)
}

/// Adds inherent `to_json`/`field_names` so callers need not import [`ApiRecord`].
macro_rules! api_record {
    ($($t:ty),*) => {$(
        impl ApiRecord for $t {}
        impl $t {
            /// See [`ApiRecord::to_json`].
            pub fn to_json(&self, lenient: bool) -> Value {
                <Self as ApiRecord>::to_json(self, lenient)
            }
            /// See [`ApiRecord::field_names`].
            pub fn field_names() -> Vec<String> {
                <Self as ApiRecord>::field_names()
            }
        }
    )*};
}

/// `/me`: the operator account. Note the camelCase `userId` (reference §5).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Owner {
    #[serde(rename = "userId")]
    pub user_id: i64,
    pub operator: String,
}

/// `/locations`: ids are strings holding small integers ("1", "2", "4").
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Location {
    pub id: String,
    pub name: String,
}

/// `/customers` and `/subscribers` (same shape).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub user_name: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub company_name: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country_code: Option<String>,
    pub phone: Option<String>,
    pub social_network: Option<String>,
    pub social_id: Option<String>,
    pub social_username: Option<String>,
    pub social_link: Option<String>,
    pub social_gender: Option<String>,
    pub social_age_range: Option<String>,
    pub social_followers_count: Option<String>,
    #[serde(serialize_with = "ser_registered_at")]
    pub registered_at: DateTime<Utc>,
    /// Location the customer registered at. Real customers carry no location field, so this is
    /// internal (never serialized); the location-scoped routes filter on it.
    #[serde(skip)]
    pub location_id: String,
}

/// `/vouchers`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Voucher {
    pub serial: String,
    pub voucher_code: String,
    pub limit_tl: i64,
    pub limit_dl: i64,
    pub limit_ul: i64,
    pub simultaneous_use: i64,
    pub usage_exp: Option<String>,
    pub validity: i64,
    pub price_enduser: f64,
    pub currency: String,
    /// Location the voucher belongs to; internal (the API shape has no such field).
    #[serde(skip)]
    pub location_id: String,
}

/// `/transactions/mac`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MacTransaction {
    pub id: i64,
    pub operator: String,
    pub location_id: i64,
    pub user_name: String,
    #[serde(serialize_with = "ser_action_date")]
    pub action_date_gmt: DateTime<Utc>,
    pub package_id: String,
    pub user_agent: Option<String>,
    pub customer: Option<String>,
    pub newsletter: i64,
    pub company_name: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country_code: Option<String>,
    pub phone: Option<String>,
    pub q1: Option<String>,
    pub a1: Option<String>,
    pub q2: Option<String>,
    pub a2: Option<String>,
    pub q3: Option<String>,
    pub a3: Option<String>,
    pub q4: Option<String>,
    pub a4: Option<String>,
    pub q5: Option<String>,
    pub a5: Option<String>,
}

/// `/transactions/voucher`; `/transactions/paid` has the identical field set ([`PaidTransaction`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VoucherTransaction {
    pub id: i64,
    pub operator: String,
    pub location_id: i64,
    pub user_name: String,
    pub customer: Option<String>,
    #[serde(serialize_with = "ser_action_date")]
    pub action_date_gmt: DateTime<Utc>,
    pub amount: f64,
    pub currency: Option<String>,
    pub user_agent: Option<String>,
    pub newsletter: i64,
    pub company_name: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country_code: Option<String>,
    pub phone: Option<String>,
    pub language: Option<String>,
    pub smscountry: Option<String>,
}

/// `/transactions/paid`: the same fields as a voucher transaction (reference §5).
pub type PaidTransaction = VoucherTransaction;

/// `/transactions/social`: the mac-transaction fields without q/a, plus the social_* fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SocialTransaction {
    pub id: i64,
    pub operator: String,
    pub location_id: i64,
    pub user_name: String,
    #[serde(serialize_with = "ser_action_date")]
    pub action_date_gmt: DateTime<Utc>,
    pub package_id: String,
    pub user_agent: Option<String>,
    pub customer: Option<String>,
    pub newsletter: i64,
    pub company_name: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country_code: Option<String>,
    pub phone: Option<String>,
    pub social_id: Option<String>,
    pub social_username: Option<String>,
    pub social_link: Option<String>,
    pub social_gender: Option<String>,
    pub social_age_range: Option<String>,
    pub social_followers_count: Option<String>,
    pub social_network: Option<String>,
}

api_record!(
    Owner,
    Location,
    Customer,
    Voucher,
    MacTransaction,
    VoucherTransaction,
    SocialTransaction
);

/// Customer indexes (into [`HotspotData::customers`]) that hold the hard cases. Each is present
/// when `SeedSpec::customers` is larger than its index; regular customers follow from
/// [`HARD_CASE_COUNT`](hard_cases::HARD_CASE_COUNT) on.
pub mod hard_cases {
    /// "Anna Smith", email `Anna.Smith@Example.COM`; subscriber 0 is the same person with the
    /// email lower-cased (when `subscribers_also_customers > 0`).
    pub const MIXED_CASE_EMAIL: usize = 0;
    /// Unicode name with diacritics: "José Müller-Łukasiewicz".
    pub const UNICODE_NAME: usize = 1;
    /// Name with an emoji: "Zoë 🌟 Star".
    pub const EMOJI_NAME: usize = 2;
    /// CJK name: "山田 太郎".
    pub const CJK_NAME: usize = 3;
    /// One-word name: "Madonna".
    pub const ONE_WORD_NAME: usize = 4;
    /// Empty name `""`.
    pub const EMPTY_NAME: usize = 5;
    /// Name `null`.
    pub const NULL_NAME: usize = 6;
    /// No email (phone present).
    pub const MISSING_EMAIL: usize = 7;
    /// No phone (email present).
    pub const MISSING_PHONE: usize = 8;
    /// Neither email nor phone; `user_name` is the MAC `BE-72-B3-40-F9-BE`, name null.
    pub const NO_CONTACT_MAC: usize = 9;
    /// Phone `+1 (555) 010-2000`.
    pub const PHONE_US_PUNCTUATED: usize = 10;
    /// Phone `0044 20 7946 0958` (international prefix written as 00).
    pub const PHONE_00_PREFIX: usize = 11;
    /// Phone in plain national format `020 7946 0959`, country_code `GB`.
    pub const PHONE_NATIONAL_GB: usize = 12;
    /// Phone in plain national format `(555) 010-2001`, country_code `US`.
    pub const PHONE_NATIONAL_US: usize = 13;
    /// Social-login customer (facebook), every social_* field filled.
    pub const SOCIAL_FACEBOOK: usize = 14;
    /// Social-login customer (google), no phone.
    pub const SOCIAL_GOOGLE: usize = 15;
    /// 2,000-character `address` (and a long company name).
    pub const LONG_FIELDS: usize = 16;
    /// Whitespace around name, email and phone: `"  Bob Jones  "`, `" bob.jones@example.com "`.
    pub const WHITESPACE: usize = 17;
    /// Number of hard-case slots; regular customers start at this index.
    pub const HARD_CASE_COUNT: usize = 18;
}

/// Size and seed of a generated data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSpec {
    pub seed: u64,
    pub locations: usize,
    pub customers: usize,
    pub subscribers: usize,
    /// How many of the subscribers are the same person as a customer (same email, lower-cased).
    pub subscribers_also_customers: usize,
    pub transactions: usize,
}

impl Default for SeedSpec {
    fn default() -> Self {
        SeedSpec {
            seed: 42,
            locations: 3,
            customers: 60,
            subscribers: 20,
            subscribers_also_customers: 8,
            transactions: 200,
        }
    }
}

/// Everything the emulator serves. Vectors are in insertion order, which is the natural order
/// of unsorted listings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HotspotData {
    pub owner: Owner,
    pub locations: Vec<Location>,
    pub customers: Vec<Customer>,
    pub subscribers: Vec<Customer>,
    pub vouchers: Vec<Voucher>,
    pub mac_transactions: Vec<MacTransaction>,
    pub voucher_transactions: Vec<VoucherTransaction>,
    pub social_transactions: Vec<SocialTransaction>,
    pub paid_transactions: Vec<PaidTransaction>,
}

const FIRST_NAMES: &[&str] = &[
    "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sofia", "Lucas", "Mia", "Ethan", "Chloe", "Aarav",
    "Priya", "Kenji", "Yuki", "Fatima", "Omar", "Ingrid", "Lars", "Chiara", "Marco",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Garcia",
    "Nguyen",
    "Kowalski",
    "Okafor",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Patel",
    "Dubois",
    "Johansson",
    "Silva",
    "Murphy",
    "Cohen",
    "Novak",
    "Haddad",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
];
const LOCATION_NAMES: &[&str] = &[
    "Cafe Main St",
    "Café Zürich ☕",
    "Harbour Hotel",
    "Pine Ridge Campground",
    "Downtown Mall",
    "Airport Lounge B",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0",
];

/// Start of the customer registration timeline: 08:00 UTC thirty days before today, so the
/// demo's guests and visits fall in the dashboard's recent days. The same seed gives the same
/// data all day long; only the dates move from one day to the next.
fn epoch() -> DateTime<Utc> {
    let day = Utc::now().date_naive() - ChronoDuration::days(30);
    day.and_hms_opt(8, 0, 0).unwrap_or_default().and_utc()
}

/// How generated customers fall on the locations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Spread {
    /// Each at a location drawn at random (a few locations busier than others).
    #[default]
    Random,
    /// In turn, so every location gets the same number (give or take one): an agency's venues
    /// of equal size, where "every guest exactly once in its own sub-account" is easy to count.
    Even,
}

/// Generates a data set. Same spec, same data.
pub fn generate(spec: &SeedSpec) -> HotspotData {
    generate_spread(spec, Spread::Random)
}

/// [`generate`] with the customers spread over the locations as `spread` says.
pub fn generate_spread(spec: &SeedSpec, spread: Spread) -> HotspotData {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let owner = Owner {
        user_id: rng.random_range(10_000..99_999),
        operator: "demo-operator".to_string(),
    };

    // Small integer ids with gaps, so a client cannot assume id == position.
    let mut locations = Vec::with_capacity(spec.locations);
    let mut next_loc_id = 1u32;
    for i in 0..spec.locations {
        let base = LOCATION_NAMES[i % LOCATION_NAMES.len()];
        let name = if i < LOCATION_NAMES.len() {
            base.to_string()
        } else {
            format!("{base} {}", i / LOCATION_NAMES.len() + 1)
        };
        locations.push(Location {
            id: next_loc_id.to_string(),
            name,
        });
        next_loc_id += if i % 2 == 1 { 2 } else { 1 };
    }

    let mut data = HotspotData {
        owner,
        locations,
        ..HotspotData::default()
    };
    if data.locations.is_empty() {
        // Customers, vouchers and transactions all need a location.
        return data;
    }

    let mut at = epoch();
    let mut id = 59_243_583u64;
    for i in 0..spec.customers {
        at += ChronoDuration::seconds(rng.random_range(60..3_600));
        id += rng.random_range(1..50);
        let location_id = match spread {
            Spread::Random => pick_location(&mut rng, &data.locations),
            Spread::Even => data.locations[i % data.locations.len()].id.clone(),
        };
        let c = make_customer(&mut rng, i, id, at, location_id);
        data.customers.push(c);
    }

    generate_subscribers(&mut rng, spec, &mut data);
    generate_vouchers(&mut rng, &mut data);
    data.push_transactions(&mut rng, spec.transactions);
    data
}

fn pick_location(rng: &mut StdRng, locations: &[Location]) -> String {
    locations
        .choose(rng)
        .map(|l| l.id.clone())
        .unwrap_or_default()
}

/// A unique, locally administered MAC derived from `n`, in the `BE-72-B3-40-F9-BE` style.
fn mac_for(n: usize) -> String {
    let b = (n as u32).to_be_bytes();
    format!("02-5E-{:02X}-{:02X}-{:02X}-{:02X}", b[0], b[1], b[2], b[3])
}

/// Builds customer `i`. Indexes below [`hard_cases::HARD_CASE_COUNT`] are the hard cases.
fn make_customer(
    rng: &mut StdRng,
    i: usize,
    id: u64,
    registered_at: DateTime<Utc>,
    location_id: String,
) -> Customer {
    use hard_cases::*;
    let first = *FIRST_NAMES.choose(rng).unwrap_or(&"Alex");
    let last = *LAST_NAMES.choose(rng).unwrap_or(&"Doe");
    let domain = *DOMAINS.choose(rng).unwrap_or(&"example.com");
    // Regular contact data: the index is embedded, so emails and phones are unique.
    let (phone, country, city, zip) = match i % 2 {
        0 => (
            format!("+1 415-{:03}-{:04}", 200 + (i / 10_000) % 800, i % 10_000),
            "US",
            "San Francisco",
            format!("941{:02}", i % 100),
        ),
        _ => (
            format!("+44 7700 {:06}", i % 1_000_000),
            "GB",
            "London",
            format!("EC1A {}BB", i % 10),
        ),
    };
    let mut c = Customer {
        id: id.to_string(),
        user_name: match i % 3 {
            0 => format!("{}{}_{}", first.to_lowercase(), i, location_id),
            1 => mac_for(i),
            _ => format!("{}.{}{}@{}", first, last, i, domain).to_lowercase(),
        },
        name: Some(format!("{first} {last}")),
        email: Some(format!("{first}.{last}{i}@{domain}").to_lowercase()),
        company_name: rng.random_bool(0.3).then(|| format!("{last} & Co {i}")),
        address: Some(format!("{} {} Street", 1 + i % 300, last)),
        city: Some(city.to_string()),
        state: (country == "US").then(|| "CA".to_string()),
        zip: Some(zip),
        country_code: Some(country.to_string()),
        phone: Some(phone),
        registered_at,
        location_id,
        ..Customer::default()
    };

    let set_name = |c: &mut Customer, name: Option<&str>| c.name = name.map(str::to_string);
    match i {
        MIXED_CASE_EMAIL => {
            set_name(&mut c, Some("Anna Smith"));
            c.email = Some("Anna.Smith@Example.COM".into());
        }
        UNICODE_NAME => {
            set_name(&mut c, Some("José Müller-Łukasiewicz"));
            c.email = Some("jose.mueller@example.es".into());
        }
        EMOJI_NAME => {
            set_name(&mut c, Some("Zoë 🌟 Star"));
            c.email = Some("zoe.star@example.com".into());
            c.address = Some("Straße 12 🏠".into());
        }
        CJK_NAME => {
            set_name(&mut c, Some("山田 太郎"));
            c.email = Some("taro.yamada@example.jp".into());
            c.city = Some("東京".into());
        }
        ONE_WORD_NAME => {
            set_name(&mut c, Some("Madonna"));
            c.email = Some("madonna@example.com".into());
        }
        EMPTY_NAME => {
            set_name(&mut c, Some(""));
            c.email = Some("no.name@example.com".into());
        }
        NULL_NAME => {
            set_name(&mut c, None);
            c.email = Some("null.name@example.com".into());
        }
        MISSING_EMAIL => {
            set_name(&mut c, Some("Pat NoEmail"));
            c.email = None;
        }
        MISSING_PHONE => {
            set_name(&mut c, Some("Quinn NoPhone"));
            c.email = Some("quinn.nophone@example.com".into());
            c.phone = None;
        }
        NO_CONTACT_MAC => {
            set_name(&mut c, None);
            c.user_name = "BE-72-B3-40-F9-BE".into();
            c.email = None;
            c.phone = None;
            c.address = None;
            c.city = None;
            c.state = None;
            c.zip = None;
            c.country_code = None;
            c.company_name = None;
        }
        PHONE_US_PUNCTUATED => {
            set_name(&mut c, Some("Riley Punctuated"));
            c.email = Some("riley.punct@example.com".into());
            c.phone = Some("+1 (555) 010-2000".into());
            c.country_code = Some("US".into());
        }
        PHONE_00_PREFIX => {
            set_name(&mut c, Some("Sam Doublezero"));
            c.email = Some("sam.doublezero@example.co.uk".into());
            c.phone = Some("0044 20 7946 0958".into());
            c.country_code = Some("GB".into());
        }
        PHONE_NATIONAL_GB => {
            set_name(&mut c, Some("Tess National"));
            c.email = Some("tess.national@example.co.uk".into());
            c.phone = Some("020 7946 0959".into());
            c.country_code = Some("GB".into());
        }
        PHONE_NATIONAL_US => {
            set_name(&mut c, Some("Uma National"));
            c.email = Some("uma.national@example.com".into());
            c.phone = Some("(555) 010-2001".into());
            c.country_code = Some("US".into());
        }
        SOCIAL_FACEBOOK => {
            set_name(&mut c, Some("Victor Social"));
            c.email = Some("victor.social@example.com".into());
            c.social_network = Some("facebook".into());
            c.social_id = Some("100004512345678".into());
            c.social_username = Some("victor.social".into());
            c.social_link = Some("https://www.facebook.com/victor.social".into());
            c.social_gender = Some("male".into());
            c.social_age_range = Some("21-30".into());
            c.social_followers_count = Some("1234".into());
        }
        SOCIAL_GOOGLE => {
            set_name(&mut c, Some("Wendy Google"));
            c.email = Some("wendy.google@example.com".into());
            c.phone = None;
            c.social_network = Some("google".into());
            c.social_id = Some("117654321098765432101".into());
            c.social_username = Some("wendy.google".into());
            c.social_link = Some("https://plus.google.com/117654321098765432101".into());
            c.social_gender = Some("female".into());
            c.social_age_range = Some("31-40".into());
            c.social_followers_count = Some("0".into());
        }
        LONG_FIELDS => {
            set_name(&mut c, Some("Xavier Longfields"));
            c.email = Some("xavier.long@example.com".into());
            let unit = "Apartment 12, Long Road, ";
            let mut address = unit.repeat(2_000 / unit.len() + 1);
            address.truncate(2_000);
            c.address = Some(address);
            c.company_name = Some("L".repeat(2_000));
        }
        WHITESPACE => {
            set_name(&mut c, Some("  Bob Jones  "));
            c.email = Some(" bob.jones@example.com ".into());
            c.phone = Some(" +44 20 7946 0960 ".into());
            c.city = Some(" London ".into());
        }
        _ => {}
    }
    c
}

fn generate_subscribers(rng: &mut StdRng, spec: &SeedSpec, data: &mut HotspotData) {
    // Same-person subscribers copy a customer who has an email, starting with the mixed-case
    // one, so a sync must match them case-insensitively.
    let candidates: Vec<usize> = (0..data.customers.len())
        .filter(|&i| data.customers[i].email.is_some())
        .collect();
    let shared = spec
        .subscribers_also_customers
        .min(spec.subscribers)
        .min(candidates.len());
    let stride = candidates.len().checked_div(shared).unwrap_or(1).max(1);
    let mut at = epoch() + ChronoDuration::minutes(30);
    let mut id = 71_000_000u64;
    for j in 0..spec.subscribers {
        at += ChronoDuration::seconds(rng.random_range(60..7_200));
        id += rng.random_range(1..50);
        let location_id = pick_location(rng, &data.locations);
        let sub = if j < shared {
            let c = &data.customers[candidates[j * stride]];
            Customer {
                id: id.to_string(),
                email: c.email.as_ref().map(|e| e.trim().to_lowercase()),
                registered_at: at,
                location_id,
                ..c.clone()
            }
        } else {
            let first = *FIRST_NAMES.choose(rng).unwrap_or(&"Alex");
            let last = *LAST_NAMES.choose(rng).unwrap_or(&"Doe");
            Customer {
                id: id.to_string(),
                user_name: format!("sub{j}_{location_id}"),
                name: Some(format!("{first} {last}")),
                // "news" prefix and the index keep these apart from every customer email.
                email: Some(format!("news.{first}.{last}{j}@example.de").to_lowercase()),
                phone: Some(format!("+49 30 {:08}", j)),
                country_code: Some("DE".into()),
                city: Some("Berlin".into()),
                registered_at: at,
                location_id,
                ..Customer::default()
            }
        };
        data.subscribers.push(sub);
    }
}

fn generate_vouchers(rng: &mut StdRng, data: &mut HotspotData) {
    let mut serial = 0u32;
    for loc in &data.locations {
        for _ in 0..4 {
            serial += 1;
            let prefix: String = (0..3)
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect();
            let unlimited = rng.random_bool(0.3);
            let limit = |rng: &mut StdRng| {
                if unlimited {
                    -1
                } else {
                    rng.random_range(1..=10) * 104_857_600
                }
            };
            let limit_dl = limit(rng);
            let limit_ul = limit(rng);
            data.vouchers.push(Voucher {
                serial: format!("{}{:06}", loc.id, serial),
                voucher_code: format!("{prefix}-{serial:04}"),
                limit_tl: if unlimited { -1 } else { limit_dl + limit_ul },
                limit_dl,
                limit_ul,
                simultaneous_use: rng.random_range(1..=3),
                usage_exp: Some(format!("{} days", rng.random_range(1..=30))),
                validity: *[60i64, 240, 1_440, 10_080].choose(rng).unwrap_or(&60),
                price_enduser: *[0.0, 2.5, 4.5, 9.99].choose(rng).unwrap_or(&0.0),
                currency: "EUR".into(),
                location_id: loc.id.clone(),
            });
        }
    }
}

/// The customer-identifying part every transaction copies from its customer.
struct Who {
    user_name: String,
    customer: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    company_name: Option<String>,
    address: Option<String>,
    city: Option<String>,
    state: Option<String>,
    zip: Option<String>,
    country_code: Option<String>,
    newsletter: i64,
}

impl HotspotData {
    /// The customer with this id, to edit in tests.
    pub fn customer_mut(&mut self, id: &str) -> Option<&mut Customer> {
        self.customers.iter_mut().find(|c| c.id == id)
    }

    /// The subscriber with this id, to edit in tests.
    pub fn subscriber_mut(&mut self, id: &str) -> Option<&mut Customer> {
        self.subscribers.iter_mut().find(|c| c.id == id)
    }

    /// Highest transaction id across the four kinds (ids are one global sequence).
    pub fn max_transaction_id(&self) -> Option<i64> {
        self.all_transaction_ids().max()
    }

    /// Total number of transactions across the four kinds.
    pub fn transaction_count(&self) -> usize {
        self.mac_transactions.len()
            + self.voucher_transactions.len()
            + self.social_transactions.len()
            + self.paid_transactions.len()
    }

    fn all_transaction_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.mac_transactions
            .iter()
            .map(|t| t.id)
            .chain(self.voucher_transactions.iter().map(|t| t.id))
            .chain(self.social_transactions.iter().map(|t| t.id))
            .chain(self.paid_transactions.iter().map(|t| t.id))
    }

    fn max_action_date(&self) -> Option<DateTime<Utc>> {
        self.mac_transactions
            .iter()
            .map(|t| t.action_date_gmt)
            .chain(self.voucher_transactions.iter().map(|t| t.action_date_gmt))
            .chain(self.social_transactions.iter().map(|t| t.action_date_gmt))
            .chain(self.paid_transactions.iter().map(|t| t.action_date_gmt))
            .max()
    }

    /// Appends `n` new customers (deterministic for a given `rng_seed` and data), registered after
    /// every existing customer and transaction, with fresh unique ids, emails and phones.
    /// Returns their ids. Does nothing without locations.
    pub fn add_customers(&mut self, rng_seed: u64, n: usize) -> Vec<String> {
        if self.locations.is_empty() {
            return Vec::new();
        }
        let mut rng = StdRng::seed_from_u64(rng_seed);
        let mut at = self
            .customers
            .iter()
            .map(|c| c.registered_at)
            .chain(self.max_action_date())
            .max()
            .unwrap_or_else(epoch);
        let mut id = self
            .customers
            .iter()
            .filter_map(|c| c.id.parse::<u64>().ok())
            .max()
            .unwrap_or(59_243_583);
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            at += ChronoDuration::seconds(rng.random_range(60..3_600));
            id += rng.random_range(1..50);
            // The index keeps emails and phones unique; past the hard-case slots it is regular.
            let index = self.customers.len().max(hard_cases::HARD_CASE_COUNT);
            let location_id = pick_location(&mut rng, &self.locations);
            let c = make_customer(&mut rng, index, id, at, location_id);
            ids.push(c.id.clone());
            self.customers.push(c);
        }
        ids
    }

    /// Appends `n` new transactions (deterministic for a given `rng_seed` and data), with ids
    /// and dates after every existing transaction. Does nothing without customers or locations.
    pub fn add_transactions(&mut self, rng_seed: u64, n: usize) {
        let mut rng = StdRng::seed_from_u64(rng_seed);
        self.push_transactions(&mut rng, n);
    }

    fn push_transactions(&mut self, rng: &mut StdRng, n: usize) {
        if self.customers.is_empty() || self.locations.is_empty() {
            return;
        }
        let subscriber_emails: std::collections::HashSet<String> = self
            .subscribers
            .iter()
            .filter_map(|s| s.email.as_ref().map(|e| e.trim().to_lowercase()))
            .collect();
        let mut id = self.max_transaction_id().unwrap_or(1_000);
        // The first transactions follow the last registration, so every customer can have one.
        let last_registration = self
            .customers
            .iter()
            .map(|c| c.registered_at)
            .max()
            .unwrap_or_else(epoch);
        let mut at = self
            .max_action_date()
            .unwrap_or(last_registration + ChronoDuration::hours(1));
        let existing = self.transaction_count();
        for k in 0..n {
            id += rng.random_range(1..5);
            at += ChronoDuration::seconds(rng.random_range(30..1_800));
            // Only customers registered by `at` (all of them, unless a test added later ones).
            let registered = self.customers.partition_point(|c| c.registered_at <= at);
            let pool = if registered == 0 {
                self.customers.len()
            } else {
                registered
            };
            let c = &self.customers[rng.random_range(0..pool)];
            let location_id = if rng.random_bool(0.8) {
                c.location_id.clone()
            } else {
                pick_location(rng, &self.locations)
            };
            let location_id: i64 = location_id.parse().unwrap_or(0);
            let newsletter = c
                .email
                .as_ref()
                .is_some_and(|e| subscriber_emails.contains(&e.trim().to_lowercase()))
                as i64;
            let who = Who {
                user_name: c.user_name.clone(),
                customer: c.name.clone(),
                email: c.email.clone(),
                phone: c.phone.clone(),
                company_name: c.company_name.clone(),
                address: c.address.clone(),
                city: c.city.clone(),
                state: c.state.clone(),
                zip: c.zip.clone(),
                country_code: c.country_code.clone(),
                newsletter,
            };
            let social = (
                c.social_network.clone(),
                c.social_id.clone(),
                c.social_username.clone(),
                c.social_link.clone(),
                c.social_gender.clone(),
                c.social_age_range.clone(),
                c.social_followers_count.clone(),
            );
            let user_agent = USER_AGENTS.choose(rng).map(|s| s.to_string());
            let operator = self.owner.operator.clone();
            // Every kind appears once the data set holds four transactions.
            let kind = if existing + k < 4 {
                existing + k
            } else {
                rng.random_range(0..4)
            };
            match kind {
                0 => {
                    let answered = rng.random_bool(0.5);
                    self.mac_transactions.push(MacTransaction {
                        id,
                        operator,
                        location_id,
                        user_name: who.user_name,
                        action_date_gmt: at,
                        package_id: ["1", "7"].choose(rng).unwrap_or(&"1").to_string(),
                        user_agent,
                        customer: who.customer,
                        newsletter: who.newsletter,
                        company_name: who.company_name,
                        email: who.email,
                        address: who.address,
                        city: who.city,
                        state: who.state,
                        zip: who.zip,
                        country_code: who.country_code,
                        phone: who.phone,
                        q1: answered.then(|| "How did you hear about us?".to_string()),
                        a1: answered.then(|| {
                            ["Friend", "Google", "Walk-in", "Instagram 📸"]
                                .choose(rng)
                                .unwrap_or(&"Friend")
                                .to_string()
                        }),
                        ..MacTransaction::default()
                    });
                }
                1 | 3 => {
                    let paid = kind == 3;
                    let amount = if paid {
                        *[2.5, 4.5, 9.99, 19.0].choose(rng).unwrap_or(&4.5)
                    } else {
                        *[0.0, 4.5].choose(rng).unwrap_or(&0.0)
                    };
                    let t = VoucherTransaction {
                        id,
                        operator,
                        location_id,
                        user_name: who.user_name,
                        customer: who.customer,
                        action_date_gmt: at,
                        amount,
                        currency: Some(["EUR", "USD"].choose(rng).unwrap_or(&"EUR").to_string()),
                        user_agent,
                        newsletter: who.newsletter,
                        company_name: who.company_name,
                        email: who.email,
                        address: who.address,
                        city: who.city,
                        state: who.state,
                        zip: who.zip,
                        country_code: who.country_code.clone(),
                        phone: who.phone,
                        language: Some("en".into()),
                        smscountry: if paid { who.country_code } else { None },
                    };
                    if paid {
                        self.paid_transactions.push(t);
                    } else {
                        self.voucher_transactions.push(t);
                    }
                }
                _ => {
                    let fallback_id = format!("{}", 100_000_000_000u64 + id as u64);
                    self.social_transactions.push(SocialTransaction {
                        id,
                        operator,
                        location_id,
                        user_name: who.user_name,
                        action_date_gmt: at,
                        package_id: "1".into(),
                        user_agent,
                        customer: who.customer,
                        newsletter: who.newsletter,
                        company_name: who.company_name,
                        email: who.email,
                        address: who.address,
                        city: who.city,
                        state: who.state,
                        zip: who.zip,
                        country_code: who.country_code,
                        phone: who.phone,
                        social_network: social.0.or_else(|| Some("facebook".into())),
                        social_id: social.1.or(Some(fallback_id)),
                        social_username: social.2,
                        social_link: social.3,
                        social_gender: social.4,
                        social_age_range: social.5,
                        social_followers_count: social.6,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_lenient_forms() {
        let data = generate(&SeedSpec::default());
        let c = data.customers[0].to_json(false);
        assert!(c.get("location_id").is_none());
        let ra = c["registered_at"].as_str().unwrap_or_default();
        assert!(ra.ends_with('Z') && ra.contains('T'), "{ra}");
        let l = data.customers[0].to_json(true);
        let ra = l["registered_at"].as_str().unwrap_or_default();
        assert_eq!(ra.len(), 19);
        assert_eq!(&ra[10..11], " ");

        let t = &data.paid_transactions[0];
        let s = t.to_json(false);
        assert!(s["id"].is_i64() && s["amount"].is_number() && s["newsletter"].is_i64());
        let l = t.to_json(true);
        assert_eq!(l["id"], Value::String(t.id.to_string()));
        assert_eq!(l["amount"], Value::String(format!("{:.2}", t.amount)));
        assert!(
            l["action_date_gmt"]
                .as_str()
                .unwrap_or_default()
                .ends_with(".000Z")
        );
        let mut owner_fields = Owner::field_names();
        owner_fields.sort();
        assert_eq!(owner_fields, vec!["operator", "userId"]);
        assert!(!Customer::field_names().contains(&"location_id".to_string()));
    }
}
