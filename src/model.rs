//! Canonical records shared by the planner, the store and the mapping.

use serde::{Deserialize, Serialize};

/// The kinds of record the sync handles. Used as a key in the store, the schedule and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Contact,
    Note,
    Task,
    Business,
    Appointment,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Contact,
        Kind::Note,
        Kind::Task,
        Kind::Business,
        Kind::Appointment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Contact => "contact",
            Kind::Note => "note",
            Kind::Task => "task",
            Kind::Business => "business",
            Kind::Appointment => "appointment",
        }
    }
}

/// What to do when both sides changed the same record since the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    #[default]
    HotspotWins,
    GhlWins,
    NewestWins,
    /// Park the record and report both values; write nothing.
    Report,
}

/// What to do when a CRM user edited a synced field and HotspotSystem did not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftPolicy {
    /// Keep the CRM user's value (reported as drift).
    #[default]
    Keep,
    /// Write HotspotSystem's value back.
    Reassert,
}

/// What to do in GHL when a record disappears from a complete HotspotSystem listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceDeletePolicy {
    #[default]
    Ignore,
    Tag,
    Delete,
}

/// What to do when a linked record was deleted in GHL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetDeletePolicy {
    /// Do not recreate; tombstone the link.
    #[default]
    Respect,
    Recreate,
}

/// blake3 digest of a canonical encoding of mapped fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| Digest(*h.as_bytes()))
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical contact: the GHL-side projection both sides are reduced to before hashing.
// ---------------------------------------------------------------------------------------------

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Version of the canonical projection. Bump it when the encoding or the normalisation changes,
/// so stored hashes are rebased in a controlled way instead of showing up as a storm of changes.
pub const PROJECTION_VERSION: u32 = 1;

/// The standard GHL contact fields the sync can write, in the fixed order used by the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StdField {
    FirstName,
    LastName,
    Email,
    Phone,
    CompanyName,
    Address1,
    City,
    State,
    PostalCode,
    Country,
}

impl StdField {
    pub const ALL: [StdField; 10] = [
        StdField::FirstName,
        StdField::LastName,
        StdField::Email,
        StdField::Phone,
        StdField::CompanyName,
        StdField::Address1,
        StdField::City,
        StdField::State,
        StdField::PostalCode,
        StdField::Country,
    ];

    /// The GHL API property name.
    pub fn as_str(self) -> &'static str {
        match self {
            StdField::FirstName => "firstName",
            StdField::LastName => "lastName",
            StdField::Email => "email",
            StdField::Phone => "phone",
            StdField::CompanyName => "companyName",
            StdField::Address1 => "address1",
            StdField::City => "city",
            StdField::State => "state",
            StdField::PostalCode => "postalCode",
            StdField::Country => "country",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One mapped GHL field: a standard property or a custom field (by id or key, as configured).
/// Serialised as its name (`firstName`, `customFields.{key}`), so it can key JSON maps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Std(StdField),
    Custom(String),
}

impl Field {
    pub fn name(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Field::Std(f) => f.as_str().into(),
            Field::Custom(k) => format!("customFields.{k}").into(),
        }
    }
}

impl std::str::FromStr for Field {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(k) = s.strip_prefix("customFields.") {
            return Ok(Field::Custom(k.to_owned()));
        }
        StdField::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .map(Field::Std)
            .ok_or_else(|| format!("unknown GHL contact field `{s}`"))
    }
}

impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// The mapped GHL-side fields of one contact, normalised. Absent, null and empty are one value
/// (`None`): `set` turns empty strings into absence, so the hash cannot tell them apart.
/// Serialised as a map from GHL field name to value (`{"email": "...", "customFields.k": "..."}`),
/// so stored bases survive reordering of the fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanonicalContact {
    std: [Option<String>; 10],
    custom: CustomValues,
}

/// Custom field values, sorted by key. A contact carries one or two; a `BTreeMap` allocates a
/// node for eleven pairs even for one, which at 100,000 contacts × four copies (source, GHL and
/// both bases) is hundreds of megabytes. A sorted `Vec` holds just what is there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CustomValues(Vec<(String, String)>);

impl CustomValues {
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    fn get(&self, key: &str) -> Option<&String> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    fn insert(&mut self, key: String, value: String) {
        match self.find(&key) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    fn remove(&mut self, key: &str) {
        if let Ok(i) = self.find(key) {
            self.0.remove(i);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In key order.
    fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }
}

impl CanonicalContact {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get_std(&self, f: StdField) -> Option<&str> {
        self.std[f.index()].as_deref()
    }

    /// A custom field by key, without building a [`Field`].
    pub fn get_custom(&self, key: &str) -> Option<&str> {
        self.custom.get(key).map(String::as_str)
    }

    pub fn get(&self, f: &Field) -> Option<&str> {
        match f {
            Field::Std(s) => self.get_std(*s),
            Field::Custom(k) => self.custom.get(k).map(String::as_str),
        }
    }

    /// Sets a field; an empty value removes it.
    pub fn set(&mut self, f: Field, v: Option<String>) {
        let v = v.filter(|s| !s.is_empty());
        match f {
            Field::Std(s) => self.std[s.index()] = v,
            Field::Custom(k) => match v {
                Some(v) => {
                    self.custom.insert(k, v);
                }
                None => {
                    self.custom.remove(&k);
                }
            },
        }
    }

    pub fn set_std(&mut self, f: StdField, v: Option<String>) {
        self.std[f.index()] = v.filter(|s| !s.is_empty());
    }

    pub fn email(&self) -> Option<&str> {
        self.get_std(StdField::Email)
    }

    pub fn phone(&self) -> Option<&str> {
        self.get_std(StdField::Phone)
    }

    pub fn is_empty(&self) -> bool {
        self.std.iter().all(Option::is_none) && self.custom.is_empty()
    }

    /// All present fields, standard first in hash order, then custom by key.
    pub fn iter(&self) -> impl Iterator<Item = (Field, &str)> {
        StdField::ALL
            .iter()
            .filter_map(|f| self.get_std(*f).map(|v| (Field::Std(*f), v)))
            .chain(
                self.custom
                    .iter()
                    .map(|(k, v)| (Field::Custom(k.clone()), v.as_str())),
            )
    }

    /// Fields whose values differ between `self` and `other` (absence counts as a value).
    pub fn diff(&self, other: &CanonicalContact) -> Vec<Field> {
        let mut out = Vec::new();
        for f in StdField::ALL {
            if self.std[f.index()] != other.std[f.index()] {
                out.push(Field::Std(f));
            }
        }
        let keys: BTreeSet<&String> = self.custom.keys().chain(other.custom.keys()).collect();
        for k in keys {
            if self.custom.get(k) != other.custom.get(k) {
                out.push(Field::Custom(k.clone()));
            }
        }
        out
    }

    /// Fills every field absent here from `other` (used when merging a subscriber into a customer).
    pub fn fill_from(&mut self, other: &CanonicalContact) {
        for f in StdField::ALL {
            if self.std[f.index()].is_none() {
                self.std[f.index()].clone_from(&other.std[f.index()]);
            }
        }
        for (k, v) in other.custom.iter() {
            if self.custom.get(k).is_none() {
                self.custom.insert(k.clone(), v.clone());
            }
        }
    }

    /// blake3 over an unambiguous encoding: projection version, then each present field as
    /// (tag, length-prefixed value); custom fields sorted by key, key length-prefixed too.
    /// Tags and server-managed fields are not part of a `CanonicalContact`, so never hashed.
    pub fn digest(&self) -> Digest {
        // The encoding is built in one buffer and hashed once: the same bytes (so the same
        // digest) as feeding them piece by piece, without the cost of dozens of tiny updates.
        let mut b = Vec::with_capacity(256);
        b.extend_from_slice(b"hgs.contact\0");
        b.extend_from_slice(&PROJECTION_VERSION.to_le_bytes());
        for (i, v) in self.std.iter().enumerate() {
            if let Some(v) = v {
                b.push(i as u8);
                b.extend_from_slice(&(v.len() as u64).to_le_bytes());
                b.extend_from_slice(v.as_bytes());
            }
        }
        for (k, v) in self.custom.iter() {
            b.push(0xff);
            b.extend_from_slice(&(k.len() as u64).to_le_bytes());
            b.extend_from_slice(k.as_bytes());
            b.extend_from_slice(&(v.len() as u64).to_le_bytes());
            b.extend_from_slice(v.as_bytes());
        }
        Digest::of(&b)
    }
}

impl Serialize for CanonicalContact {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (f, v) in self.iter() {
            m.serialize_entry(&f.name(), v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for CanonicalContact {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<Field, Option<String>>::deserialize(d)?;
        let mut c = CanonicalContact::new();
        for (f, v) in raw {
            c.set(f, v);
        }
        Ok(c)
    }
}

/// Hash of a tag set, separate from the field hash (tags are handled as set deltas).
pub fn tags_digest(tags: &BTreeSet<String>) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(b"hgs.tags\0");
    for t in tags {
        h.update(&(t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }
    Digest(*h.finalize().as_bytes())
}

/// A canonical contact with its field hash and the tags that belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactProjection {
    pub fields: CanonicalContact,
    pub hash: Digest,
    pub tags: BTreeSet<String>,
}

impl ContactProjection {
    pub fn new(fields: CanonicalContact, tags: BTreeSet<String>) -> Self {
        let hash = fields.digest();
        Self { fields, hash, tags }
    }
}

/// Whether a HotspotSystem record came from the customer or the subscriber listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Customer,
    Subscriber,
}

/// A HotspotSystem customer or subscriber, as a plain domain struct (wire types convert into it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceContact {
    pub source_id: String,
    pub kind: Option<SourceKind>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company_name: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country_code: Option<String>,
    pub social_network: Option<String>,
    pub social_id: Option<String>,
    pub social_username: Option<String>,
    pub social_link: Option<String>,
    pub social_gender: Option<String>,
    pub social_age_range: Option<String>,
    pub social_followers_count: Option<String>,
    pub user_name: Option<String>,
    pub registered_at: Option<String>,
    pub location_id: Option<String>,
}

/// A GHL contact as read this run, as a plain domain struct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetContact {
    pub target_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company_name: Option<String>,
    pub address1: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    /// By custom field id or key, whichever the field map names.
    pub custom_fields: BTreeMap<String, String>,
    pub tags: BTreeSet<String>,
    pub date_updated: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------------

/// Something normalisation had to guess at; reported with the record, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormFlag {
    /// The phone did not parse; it is kept as its digits.
    PhoneUnparsed,
    /// The country was not two ASCII letters; it is kept upper-cased.
    CountryInvalid,
}

/// Trims and NFC-normalises; empty becomes `None`. Allocates only when the value is kept.
pub fn norm_text(s: Option<&str>) -> Option<String> {
    let t = s?.trim();
    if t.is_empty() {
        return None;
    }
    if t.is_ascii() || is_nfc_quick(t.chars()) == IsNormalized::Yes {
        Some(t.to_owned())
    } else {
        let n: String = t.nfc().collect();
        let n = n.trim();
        (!n.is_empty()).then(|| n.to_owned())
    }
}

/// Email: trimmed, NFC, lower-cased; an address that cannot be one (GHL answers 422 "email must
/// be an email") is no email at all, so the record matches and syncs by phone, or is skipped.
pub fn norm_email(s: Option<&str>) -> Option<String> {
    let t = norm_text(s)?;
    if !plausible_email(&t) {
        return None;
    }
    if t.bytes().any(|b| b.is_ascii_uppercase()) || !t.is_ascii() {
        Some(t.to_lowercase())
    } else {
        Some(t)
    }
}

/// One `@`, a non-empty local part of at most 64 characters, a dotted domain, no blanks or empty
/// labels, at most 254 characters in all (RFC 5321 limits). Deliberately not a full RFC 5322 parser.
fn plausible_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    let dotted = |part: &str| !part.is_empty() && part.split('.').all(|label| !label.is_empty());
    e.len() <= 254
        && local.len() <= 64
        && !domain.contains('@')
        && dotted(local)
        && dotted(domain)
        && domain.contains('.')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Country: upper-cased; anything but two ASCII letters is flagged.
pub fn norm_country(s: Option<&str>) -> (Option<String>, Option<NormFlag>) {
    match norm_text(s) {
        None => (None, None),
        Some(t) => {
            let up = t.to_uppercase();
            let ok = up.len() == 2 && up.bytes().all(|b| b.is_ascii_uppercase());
            (Some(up), (!ok).then_some(NormFlag::CountryInvalid))
        }
    }
}

/// Splits a full name at the last whitespace run: one word → first name only.
pub fn split_name(full: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(n) = norm_text(full) else {
        return (None, None);
    };
    let mut words = n.split_whitespace();
    let Some(first) = words.next() else {
        return (None, None);
    };
    let rest: Vec<&str> = words.collect();
    if rest.is_empty() {
        (Some(first.to_owned()), None)
    } else {
        (Some(first.to_owned()), Some(rest.join(" ")))
    }
}

/// Phone normaliser with a configurable default country for numbers without a country code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneNormalizer {
    default_country: phonenumber::country::Id,
}

impl Default for PhoneNormalizer {
    fn default() -> Self {
        Self {
            default_country: phonenumber::country::Id::US,
        }
    }
}

impl PhoneNormalizer {
    /// `country` is an ISO 3166 alpha-2 code; `None` if unknown.
    pub fn new(country: &str) -> Option<Self> {
        country
            .trim()
            .to_ascii_uppercase()
            .parse()
            .ok()
            .map(|default_country| Self { default_country })
    }

    /// E.164 when it parses; otherwise the trimmed digits (with a leading `+` if given) and a flag.
    /// `00` is read as the international prefix, as most of the world writes it.
    pub fn normalize(&self, raw: Option<&str>) -> (Option<String>, Option<NormFlag>) {
        let Some(t) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
            return (None, None);
        };
        // Fast path: already E.164.
        if let Some(rest) = t.strip_prefix('+')
            && (8..=15).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_digit())
            && !rest.starts_with('0')
        {
            return (Some(t.to_owned()), None);
        }
        let plus = t.starts_with('+');
        let digits: String = t.chars().filter(char::is_ascii_digit).collect();
        let candidate = if plus {
            format!("+{digits}")
        } else if let Some(intl) = digits.strip_prefix("00") {
            format!("+{intl}")
        } else {
            digits.clone()
        };
        let parsed = if digits.len() >= 4 && digits.len() <= 17 {
            phonenumber::parse(Some(self.default_country), &candidate).ok()
        } else {
            None
        };
        match parsed {
            Some(n) => {
                let e164 = n.format().mode(phonenumber::Mode::E164).to_string();
                (Some(e164), None)
            }
            None if digits.is_empty() => (None, Some(NormFlag::PhoneUnparsed)),
            None => {
                let kept = if plus { format!("+{digits}") } else { digits };
                (Some(kept), Some(NormFlag::PhoneUnparsed))
            }
        }
    }
}

/// Tags as GHL shows them: trimmed, NFC, lower-cased; empty tags dropped.
pub fn norm_tag(s: &str) -> Option<String> {
    let t = s.trim();
    // Most tags are already trimmed lower-case ASCII: one allocation instead of two.
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        return Some(t.to_owned());
    }
    norm_text(Some(t)).map(|t| t.to_lowercase())
}

/// Digests travel as hex in plans, reports and JSON.
impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::from_hex(&s).ok_or_else(|| serde::de::Error::custom("invalid blake3 hex digest"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_fields_keep_key_order_whatever_the_insert_order() {
        let keys = ["m.key", "a.key", "z.key", "b.key"];
        let mut forward = CanonicalContact::new();
        let mut backward = CanonicalContact::new();
        for k in keys {
            forward.set(Field::Custom(k.into()), Some(format!("v-{k}")));
        }
        for k in keys.iter().rev() {
            backward.set(Field::Custom((*k).into()), Some(format!("v-{k}")));
        }
        assert_eq!(forward, backward);
        assert_eq!(forward.digest(), backward.digest());
        let order: Vec<String> = forward.iter().map(|(f, _)| f.name().into_owned()).collect();
        assert_eq!(
            order,
            [
                "customFields.a.key",
                "customFields.b.key",
                "customFields.m.key",
                "customFields.z.key"
            ]
        );
        forward.set(Field::Custom("b.key".into()), Some("new".into()));
        assert_eq!(forward.get_custom("b.key"), Some("new"));
        forward.set(Field::Custom("a.key".into()), None);
        assert_eq!(forward.get_custom("a.key"), None);
        assert_eq!(forward.diff(&backward).len(), 2);
    }

    fn phone(raw: &str) -> (Option<String>, Option<NormFlag>) {
        PhoneNormalizer::default().normalize(Some(raw))
    }

    #[test]
    fn phone_formats_become_e164() {
        assert_eq!(
            phone("+1 (555) 010-2000"),
            (Some("+15550102000".into()), None)
        );
        assert_eq!(
            phone("0044 20 7946 0958"),
            (Some("+442079460958".into()), None)
        );
        assert_eq!(phone("555-010-2000"), (Some("+15550102000".into()), None));
        assert_eq!(phone(" +15550102000 "), (Some("+15550102000".into()), None));
        let uk = PhoneNormalizer::new("gb").unwrap();
        assert_eq!(
            uk.normalize(Some("020 7946 0958")),
            (Some("+442079460958".into()), None)
        );
        assert!(PhoneNormalizer::new("XX").is_none());
    }

    #[test]
    fn unparseable_phone_is_kept_as_digits_and_flagged() {
        assert_eq!(
            phone("12"),
            (Some("12".into()), Some(NormFlag::PhoneUnparsed))
        );
        assert_eq!(phone("call me"), (None, Some(NormFlag::PhoneUnparsed)));
        assert_eq!(phone("   "), (None, None));
        let long = "9".repeat(2000);
        assert_eq!(phone(&long).1, Some(NormFlag::PhoneUnparsed));
        // Never panics on odd input.
        for s in [
            "+",
            "00",
            "+0",
            "++1",
            "0000000000000000000000",
            "+999999999999",
        ] {
            let _ = phone(s);
        }
    }

    #[test]
    fn emails_differing_only_by_case_and_space_are_equal() {
        assert_eq!(
            norm_email(Some("  Ann@Example.COM ")),
            Some("ann@example.com".into())
        );
        assert_eq!(
            norm_email(Some("ann@example.com")),
            norm_email(Some("ANN@EXAMPLE.COM"))
        );
        assert_eq!(norm_email(Some("   ")), None);
        for bad in [
            "not-an-email",
            "two@@example..org",
            "a@b",
            "a b@c.org",
            "@c.org",
            "a@.org",
            "a.@c.org",
        ] {
            assert_eq!(norm_email(Some(bad)), None, "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(2000));
        assert_eq!(norm_email(Some(&long)), None);
        assert_eq!(
            norm_email(Some("Ann.Lee+wifi@Mail.Example.co.uk")).as_deref(),
            Some("ann.lee+wifi@mail.example.co.uk")
        );
        assert_eq!(norm_email(None), None);
    }

    #[test]
    fn text_is_trimmed_nfc_and_empty_is_none() {
        // "e" + combining acute → precomposed é.
        assert_eq!(norm_text(Some(" Cafe\u{301} ")), Some("Caf\u{e9}".into()));
        assert_eq!(norm_text(Some("")), None);
        let long = "x".repeat(2000);
        assert_eq!(norm_text(Some(&long)).map(|s| s.len()), Some(2000));
    }

    #[test]
    fn names_split_into_first_and_last() {
        assert_eq!(split_name(Some("Ann")), (Some("Ann".into()), None));
        assert_eq!(
            split_name(Some("  Ann  Maria   Smith ")),
            (Some("Ann".into()), Some("Maria Smith".into()))
        );
        assert_eq!(split_name(Some("  ")), (None, None));
        assert_eq!(
            split_name(Some("🦀 Ferris 🎉")),
            (Some("🦀".into()), Some("Ferris 🎉".into()))
        );
    }

    #[test]
    fn country_is_upper_case_two_letters() {
        assert_eq!(norm_country(Some(" us ")), (Some("US".into()), None));
        assert_eq!(
            norm_country(Some("USA")),
            (Some("USA".into()), Some(NormFlag::CountryInvalid))
        );
    }

    #[test]
    fn tags_are_lower_case() {
        assert_eq!(norm_tag(" Location:Lobby "), Some("location:lobby".into()));
        assert_eq!(norm_tag(" "), None);
    }

    /// Digest of `{email: a@b.c, custom k: v}` under projection version 1.
    const GOLDEN_A: &str = "9d74ac452de5b5c3b7c9e9c298876924dbe302ec5bf399bf4e89120e26c8107d";

    #[test]
    fn hash_is_stable_and_treats_empty_as_absent() {
        let mut a = CanonicalContact::new();
        a.set_std(StdField::Email, Some("a@b.c".into()));
        a.set(Field::Custom("k".into()), Some("v".into()));
        let mut b = CanonicalContact::new();
        b.set(Field::Custom("k".into()), Some("v".into()));
        b.set_std(StdField::Email, Some("a@b.c".into()));
        b.set_std(StdField::City, Some(String::new()));
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a, b);
        // Moving a value between fields changes the hash (no ambiguity from concatenation).
        let mut c = CanonicalContact::new();
        c.set_std(StdField::City, Some("a@b.c".into()));
        c.set(Field::Custom("k".into()), Some("v".into()));
        assert_ne!(a.digest(), c.digest());
        let mut d = CanonicalContact::new();
        d.set(Field::Custom("kv".into()), Some("".into()));
        d.set(Field::Custom("k".into()), Some("v".into()));
        assert_eq!(d.digest(), {
            let mut e = CanonicalContact::new();
            e.set(Field::Custom("k".into()), Some("v".into()));
            e.digest()
        });
        // Known value: the encoding must not drift silently (bump PROJECTION_VERSION instead).
        assert_eq!(a.digest().to_hex(), GOLDEN_A);
        assert_eq!(Digest::from_hex(&a.digest().to_hex()), Some(a.digest()));
    }

    #[test]
    fn canonical_contact_round_trips_through_json_by_field_name() {
        let mut a = CanonicalContact::new();
        a.set_std(StdField::PostalCode, Some("0150".into()));
        a.set(
            Field::Custom("contact.hotspot_id".into()),
            Some("42".into()),
        );
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"postalCode":"0150","customFields.contact.hotspot_id":"42"}"#
        );
        let back: CanonicalContact = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.digest(), a.digest());
        assert!(serde_json::from_str::<CanonicalContact>(r#"{"nope":"x"}"#).is_err());
        assert_eq!("email".parse::<Field>(), Ok(Field::Std(StdField::Email)));
    }

    #[test]
    fn diff_lists_differing_fields() {
        let mut a = CanonicalContact::new();
        a.set_std(StdField::FirstName, Some("Ann".into()));
        a.set(Field::Custom("x".into()), Some("1".into()));
        let mut b = a.clone();
        b.set_std(StdField::FirstName, Some("Anna".into()));
        b.set(Field::Custom("x".into()), None);
        b.set(Field::Custom("y".into()), Some("2".into()));
        assert_eq!(
            a.diff(&b),
            vec![
                Field::Std(StdField::FirstName),
                Field::Custom("x".into()),
                Field::Custom("y".into())
            ]
        );
        assert!(a.diff(&a).is_empty());
    }
}
