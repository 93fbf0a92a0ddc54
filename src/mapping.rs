//! HotspotSystem → canonical mapping: the configurable field map, the tag rules, the merge of
//! customers and subscribers into one contact, and the reading of GHL contacts through the same
//! field map, so both sides hash the same projection.
//!
//! Pure functions only: no I/O, no clock.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::{
    CanonicalContact, ContactProjection, Digest, Field, NormFlag, PhoneNormalizer, SourceContact,
    SourceKind, StdField, TargetContact, norm_country, norm_email, norm_tag, norm_text, split_name,
};

/// A HotspotSystem customer/subscriber property that can be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceField {
    /// Mapped to `firstName` it is split into first and last name; elsewhere it is kept whole.
    Name,
    Email,
    Phone,
    CompanyName,
    Address,
    City,
    State,
    Zip,
    CountryCode,
    SocialNetwork,
    SocialId,
    SocialUsername,
    SocialLink,
    SocialGender,
    SocialAgeRange,
    SocialFollowersCount,
    UserName,
}

impl SourceField {
    const ALL: [SourceField; 17] = [
        SourceField::Name,
        SourceField::Email,
        SourceField::Phone,
        SourceField::CompanyName,
        SourceField::Address,
        SourceField::City,
        SourceField::State,
        SourceField::Zip,
        SourceField::CountryCode,
        SourceField::SocialNetwork,
        SourceField::SocialId,
        SourceField::SocialUsername,
        SourceField::SocialLink,
        SourceField::SocialGender,
        SourceField::SocialAgeRange,
        SourceField::SocialFollowersCount,
        SourceField::UserName,
    ];

    /// The HotspotSystem wire name (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceField::Name => "name",
            SourceField::Email => "email",
            SourceField::Phone => "phone",
            SourceField::CompanyName => "company_name",
            SourceField::Address => "address",
            SourceField::City => "city",
            SourceField::State => "state",
            SourceField::Zip => "zip",
            SourceField::CountryCode => "country_code",
            SourceField::SocialNetwork => "social_network",
            SourceField::SocialId => "social_id",
            SourceField::SocialUsername => "social_username",
            SourceField::SocialLink => "social_link",
            SourceField::SocialGender => "social_gender",
            SourceField::SocialAgeRange => "social_age_range",
            SourceField::SocialFollowersCount => "social_followers_count",
            SourceField::UserName => "user_name",
        }
    }

    /// The field a wire name names; `None` for a name that is no mappable field.
    pub fn from_wire(name: &str) -> Option<SourceField> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    fn read(self, r: &SourceContact) -> Option<&str> {
        match self {
            SourceField::Name => r.name.as_deref(),
            SourceField::Email => r.email.as_deref(),
            SourceField::Phone => r.phone.as_deref(),
            SourceField::CompanyName => r.company_name.as_deref(),
            SourceField::Address => r.address.as_deref(),
            SourceField::City => r.city.as_deref(),
            SourceField::State => r.state.as_deref(),
            SourceField::Zip => r.zip.as_deref(),
            SourceField::CountryCode => r.country_code.as_deref(),
            SourceField::SocialNetwork => r.social_network.as_deref(),
            SourceField::SocialId => r.social_id.as_deref(),
            SourceField::SocialUsername => r.social_username.as_deref(),
            SourceField::SocialLink => r.social_link.as_deref(),
            SourceField::SocialGender => r.social_gender.as_deref(),
            SourceField::SocialAgeRange => r.social_age_range.as_deref(),
            SourceField::SocialFollowersCount => r.social_followers_count.as_deref(),
            SourceField::UserName => r.user_name.as_deref(),
        }
    }
}

/// Which source property goes to which GHL field. The GHL custom field holding the HotspotSystem
/// id (the identity anchor) is a mapped field too, so it is written on create and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    pub entries: Vec<(SourceField, Field)>,
    pub hotspot_id_field: Option<String>,
}

impl Default for FieldMap {
    fn default() -> Self {
        use SourceField as S;
        use StdField as T;
        Self {
            entries: vec![
                (S::Name, Field::Std(T::FirstName)),
                (S::Email, Field::Std(T::Email)),
                (S::Phone, Field::Std(T::Phone)),
                (S::CompanyName, Field::Std(T::CompanyName)),
                (S::Address, Field::Std(T::Address1)),
                (S::City, Field::Std(T::City)),
                (S::State, Field::Std(T::State)),
                (S::Zip, Field::Std(T::PostalCode)),
                (S::CountryCode, Field::Std(T::Country)),
            ],
            hotspot_id_field: None,
        }
    }
}

impl FieldMap {
    /// Adds a social (or any other) property as a custom field by key.
    pub fn with_custom(mut self, from: SourceField, key: &str) -> Self {
        self.entries.push((from, Field::Custom(key.to_owned())));
        self
    }

    /// The GHL fields this map writes (what is hashed on both sides).
    pub fn target_fields(&self) -> BTreeSet<Field> {
        let mut out = BTreeSet::new();
        for (s, f) in &self.entries {
            if *s == SourceField::Name && *f == Field::Std(StdField::FirstName) {
                out.insert(Field::Std(StdField::LastName));
            }
            out.insert(f.clone());
        }
        if let Some(k) = &self.hotspot_id_field {
            out.insert(Field::Custom(k.clone()));
        }
        out
    }
}

/// Which tags the sync generates. Each rule can be turned off (`None`/`false`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRules {
    pub base: Option<String>,
    /// Template with `{name}` (from `location_names`, else the id) and `{id}` of the location.
    pub location: Option<String>,
    pub location_names: HashMap<String, String>,
    pub newsletter: Option<String>,
    /// Template with `{network}`.
    pub social: Option<String>,
}

impl Default for TagRules {
    fn default() -> Self {
        Self {
            base: Some("hotspotsystem".into()),
            location: Some("location:{name}".into()),
            location_names: HashMap::new(),
            newsletter: Some("newsletter".into()),
            social: Some("social:{network}".into()),
        }
    }
}

impl TagRules {
    fn tags_for(&self, r: &SourceContact, out: &mut BTreeSet<String>) {
        if let Some(t) = self.base.as_deref().and_then(norm_tag) {
            out.insert(t);
        }
        if let Some(template) = &self.location
            && let Some(id) = r
                .location_id
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
        {
            let name = self
                .location_names
                .get(id)
                .map(String::as_str)
                .unwrap_or(id);
            let tag = template.replace("{name}", name).replace("{id}", id);
            if let Some(t) = norm_tag(&tag) {
                out.insert(t);
            }
        }
        if r.kind == Some(SourceKind::Subscriber)
            && let Some(t) = self.newsletter.as_deref().and_then(norm_tag)
        {
            out.insert(t);
        }
        if let Some(template) = &self.social
            && let Some(n) = r.social_network.as_deref().and_then(norm_tag)
            && let Some(t) = norm_tag(&template.replace("{network}", &n))
        {
            out.insert(t);
        }
    }
}

/// Everything the mapping is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingConfig {
    pub fields: FieldMap,
    pub tags: TagRules,
    pub phone: PhoneNormalizer,
    /// Skip records with neither email nor phone (default true): they cannot be matched safely.
    pub skip_without_email_or_phone: bool,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            fields: FieldMap::default(),
            tags: TagRules::default(),
            phone: PhoneNormalizer::default(),
            skip_without_email_or_phone: true,
        }
    }
}

impl MappingConfig {
    /// Whether the contact of a record depends on its wire field `field`: a mapped field, the
    /// email and phone (they merge records and decide which may sync), and the social network
    /// while the social tag rule is on.
    pub fn reads(&self, field: &str) -> bool {
        let Some(source) = SourceField::from_wire(field) else {
            return false;
        };
        matches!(source, SourceField::Email | SourceField::Phone)
            || (source == SourceField::SocialNetwork && self.tags.social.is_some())
            || self.fields.entries.iter().any(|(s, _)| *s == source)
    }

    /// This mapping with the location names of a run, for the `{name}` of the location tag.
    pub fn with_location_names(
        mut self,
        names: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.tags.location_names = names.into_iter().collect();
        self
    }

    /// A digest of the configuration, mixed into raw hashes so a config change defeats the cache.
    pub fn fingerprint(&self) -> Digest {
        let mut locs: Vec<_> = self.tags.location_names.iter().collect();
        locs.sort();
        let s = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}",
            self.fields.entries,
            self.fields.hotspot_id_field,
            self.tags.base,
            self.tags.location,
            locs,
            self.tags.newsletter,
            self.tags.social,
            self.phone,
            self.skip_without_email_or_phone
        );
        Digest::of(s.as_bytes())
    }
}

/// Why a source record was not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    NoEmailOrPhone,
    /// Linked, and a value the mapping reads could not be read this run: held, so that an
    /// empty value never clears what GHL holds.
    UnreadableValue,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoEmailOrPhone => "no_email_or_phone",
            SkipReason::UnreadableValue => "unreadable_value",
        }
    }
}

/// One source contact after merge, mapping and normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedSource {
    /// The id the link is keyed by: the customer's id when a customer is part of the merge.
    pub source_id: String,
    /// Every HotspotSystem record merged into this contact, `(kind, id)`.
    pub members: Vec<(Option<SourceKind>, String)>,
    pub projection: ContactProjection,
    /// Hash of the unnormalised member records plus the config: equal → reuse the projection.
    pub raw_hash: Digest,
    pub flags: BTreeSet<NormFlag>,
    pub registered_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSource {
    pub source_id: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappedSnapshot {
    pub contacts: Vec<MappedSource>,
    pub skipped: Vec<SkippedSource>,
}

fn raw_update(b: &mut Vec<u8>, v: Option<&str>) {
    match v {
        None => b.push(0),
        Some(s) => {
            b.push(1);
            b.extend_from_slice(&(s.len() as u64).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        }
    }
}

/// The normalised email as a grouping key, borrowed when already normal (the common case), so
/// unchanged records on the raw-hash fast path cost no allocation here.
fn email_key(raw: Option<&str>) -> Option<Cow<'_, str>> {
    let t = raw?.trim();
    if t.is_empty() {
        return None;
    }
    if t.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Some(Cow::Borrowed(t))
    } else {
        norm_email(Some(t)).map(Cow::Owned)
    }
}

/// Hash of the unnormalised records of one merge group, plus the config fingerprint.
pub fn raw_hash(members: &[&SourceContact], fingerprint: &Digest) -> Digest {
    // One buffer hashed once: the same bytes (so the same digest) as many small updates, at a
    // fraction of the cost — this runs for every record of every pass.
    let mut h = Vec::with_capacity(512 * members.len());
    h.extend_from_slice(b"hgs.raw\0");
    h.extend_from_slice(&fingerprint.0);
    for r in members {
        raw_update(&mut h, Some(&r.source_id));
        raw_update(
            &mut h,
            r.kind.map(|k| match k {
                SourceKind::Customer => "c",
                SourceKind::Subscriber => "s",
            }),
        );
        for f in [
            &r.name,
            &r.email,
            &r.phone,
            &r.company_name,
            &r.address,
            &r.city,
            &r.state,
            &r.zip,
            &r.country_code,
            &r.social_network,
            &r.social_id,
            &r.social_username,
            &r.social_link,
            &r.social_gender,
            &r.social_age_range,
            &r.social_followers_count,
            &r.user_name,
            &r.registered_at,
            &r.location_id,
        ] {
            raw_update(&mut h, f.as_deref());
        }
    }
    Digest::of(&h)
}

/// Maps one record to canonical fields (no merge, no tags).
pub fn canonical_from_source(
    r: &SourceContact,
    cfg: &MappingConfig,
    flags: &mut BTreeSet<NormFlag>,
) -> CanonicalContact {
    let mut c = CanonicalContact::new();
    for (src, dst) in &cfg.fields.entries {
        let raw = src.read(r);
        match (src, dst) {
            (SourceField::Name, Field::Std(StdField::FirstName)) => {
                let (first, last) = split_name(raw);
                c.set_std(StdField::FirstName, first);
                c.set_std(StdField::LastName, last);
            }
            _ => {
                let v = normalize_for(dst, raw, cfg, flags);
                c.set(dst.clone(), v);
            }
        }
    }
    if let Some(k) = &cfg.fields.hotspot_id_field {
        c.set(Field::Custom(k.clone()), norm_text(Some(&r.source_id)));
    }
    c
}

fn normalize_for(
    dst: &Field,
    raw: Option<&str>,
    cfg: &MappingConfig,
    flags: &mut BTreeSet<NormFlag>,
) -> Option<String> {
    match dst {
        Field::Std(StdField::Email) => norm_email(raw),
        Field::Std(StdField::Phone) => {
            let (v, f) = cfg.phone.normalize(raw);
            flags.extend(f);
            v
        }
        Field::Std(StdField::Country) => {
            let (v, f) = norm_country(raw);
            flags.extend(f);
            v
        }
        _ => norm_text(raw),
    }
}

/// Reads a GHL contact through the same field map and normalisation as the source side.
pub fn canonical_from_target(t: &TargetContact, cfg: &MappingConfig) -> CanonicalContact {
    canonical_from_target_fields(t, cfg, &cfg.fields.target_fields())
}

/// [`canonical_from_target`] with the field list worked out once for a whole listing.
fn canonical_from_target_fields(
    t: &TargetContact,
    cfg: &MappingConfig,
    fields: &BTreeSet<Field>,
) -> CanonicalContact {
    let mut flags = BTreeSet::new();
    let mut c = CanonicalContact::new();
    for f in fields {
        let raw = match &f {
            Field::Std(s) => match s {
                StdField::FirstName => t.first_name.as_deref(),
                StdField::LastName => t.last_name.as_deref(),
                StdField::Email => t.email.as_deref(),
                StdField::Phone => t.phone.as_deref(),
                StdField::CompanyName => t.company_name.as_deref(),
                StdField::Address1 => t.address1.as_deref(),
                StdField::City => t.city.as_deref(),
                StdField::State => t.state.as_deref(),
                StdField::PostalCode => t.postal_code.as_deref(),
                StdField::Country => t.country.as_deref(),
            },
            Field::Custom(k) => t.custom_fields.get(k).map(String::as_str),
        };
        let v = normalize_for(f, raw, cfg, &mut flags);
        c.set(f.clone(), v);
    }
    c
}

/// A GHL contact's projection: mapped fields, their hash, and its tags (lower-cased).
pub fn target_projection(t: &TargetContact, cfg: &MappingConfig) -> ContactProjection {
    target_projection_with(t, cfg, &cfg.fields.target_fields())
}

/// [`target_projection`] for a whole listing: `fields` is `cfg.fields.target_fields()`, worked
/// out once by the caller instead of once per contact.
pub fn target_projection_with(
    t: &TargetContact,
    cfg: &MappingConfig,
    fields: &BTreeSet<Field>,
) -> ContactProjection {
    let tags = t.tags.iter().filter_map(|s| norm_tag(s)).collect();
    ContactProjection::new(canonical_from_target_fields(t, cfg, fields), tags)
}

/// Maps a whole source listing: merges customers and subscribers with the same normalised email
/// (and records sharing an id) into one contact, customer fields winning, and skips records with
/// neither email nor phone. `prior` (keyed by source id, e.g. last run's result) lets unchanged
/// records skip normalisation when their raw hash is equal.
pub fn map_sources(
    records: &[SourceContact],
    cfg: &MappingConfig,
    prior: Option<&HashMap<String, MappedSource>>,
) -> MappedSnapshot {
    let fp = cfg.fingerprint();
    let mut out = MappedSnapshot::default();
    for g in group_sources(records) {
        let rh = raw_hash(&g, &fp);
        if let Some(p) = prior.and_then(|p| p.get(&g[0].source_id))
            && p.raw_hash == rh
        {
            out.contacts.push(p.clone());
            continue;
        }
        map_group(&g, cfg, rh, &mut out);
    }
    out
}

/// The merge groups of a listing, each led by the record whose id the link is keyed by:
/// customers (and kind-less records) first so their id and fields win; records share a group
/// by normalised email or by id. Members keep listing order, so a group's raw hash is stable.
pub fn group_sources(records: &[SourceContact]) -> Vec<Vec<&SourceContact>> {
    let mut order: Vec<&SourceContact> = records.iter().collect();
    order.sort_by_key(|r| r.kind == Some(SourceKind::Subscriber));
    let mut groups: Vec<Vec<&SourceContact>> = Vec::new();
    let mut by_email: HashMap<Cow<'_, str>, usize> = HashMap::new();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for r in order {
        let email = email_key(r.email.as_deref());
        let hit = by_id
            .get(r.source_id.as_str())
            .copied()
            .or_else(|| email.as_ref().and_then(|e| by_email.get(e).copied()));
        let gi = match hit {
            Some(gi) => {
                groups[gi].push(r);
                gi
            }
            None => {
                groups.push(vec![r]);
                groups.len() - 1
            }
        };
        by_id.entry(r.source_id.as_str()).or_insert(gi);
        if let Some(e) = email {
            by_email.entry(e).or_insert(gi);
        }
    }
    groups
}

/// Normalises one merge group (its raw hash `rh` already computed) into `out`: a contact, or
/// its members as skipped when it has neither email nor phone.
pub fn map_group(g: &[&SourceContact], cfg: &MappingConfig, rh: Digest, out: &mut MappedSnapshot) {
    let lead = g[0];
    let mut flags = BTreeSet::new();
    let mut fields = canonical_from_source(lead, cfg, &mut flags);
    let mut tags = BTreeSet::new();
    cfg.tags.tags_for(lead, &mut tags);
    for r in &g[1..] {
        let other = canonical_from_source(r, cfg, &mut flags);
        fields.fill_from(&other);
        cfg.tags.tags_for(r, &mut tags);
    }
    if cfg.skip_without_email_or_phone && fields.email().is_none() && fields.phone().is_none() {
        for r in g {
            out.skipped.push(SkippedSource {
                source_id: r.source_id.clone(),
                reason: SkipReason::NoEmailOrPhone,
            });
        }
        return;
    }
    out.contacts.push(MappedSource {
        source_id: lead.source_id.clone(),
        members: g.iter().map(|r| (r.kind, r.source_id.clone())).collect(),
        projection: ContactProjection::new(fields, tags),
        raw_hash: rh,
        flags,
        registered_at: lead.registered_at.clone(),
    });
}

/// Target tags and mapped fields as a lookup from GHL field name, for reports.
pub fn field_names(c: &CanonicalContact) -> BTreeMap<String, String> {
    c.iter()
        .map(|(f, v)| (f.name().into_owned(), v.to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Note and task templates
// ---------------------------------------------------------------------------------------------

/// Fills `{name}` placeholders from `vars`; a placeholder with no value becomes empty, so a
/// template written for paid transactions still reads well on a mac one.
pub fn render_template(template: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                if let Some(v) = vars.get(&after[..end]) {
                    out.push_str(v);
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The line that identifies the note of one transaction, so the note is found again after a
/// crash (`Ref: hgs:mac:1234`). Matched as a whole line, never as a substring, because
/// `hgs:mac:123` is a prefix of `hgs:mac:1234`.
pub fn note_reference(transaction_type: &str, transaction_id: &str) -> String {
    format!("Ref: hgs:{transaction_type}:{transaction_id}")
}

/// The line that identifies the task of one (rule, source record).
pub fn task_reference(rule_id: &str, source_id: &str) -> String {
    format!("Ref: hgs-task:{rule_id}:{source_id}")
}

/// Whether `body` carries `reference` as one of its lines.
pub fn has_reference(body: &str, reference: &str) -> bool {
    body.lines().any(|l| l.trim() == reference)
}

/// Renders a note or task body and makes sure it ends with its reference line (a template
/// that already produces the line keeps it where it is).
pub fn render_with_reference(
    template: &str,
    vars: &BTreeMap<&str, String>,
    reference: &str,
) -> String {
    let body = render_template(template, vars);
    if has_reference(&body, reference) {
        return body;
    }
    let trimmed = body.trim_end();
    if trimmed.is_empty() {
        reference.to_string()
    } else {
        format!("{trimmed}\n{reference}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, kind: SourceKind) -> SourceContact {
        SourceContact {
            source_id: id.into(),
            kind: Some(kind),
            ..SourceContact::default()
        }
    }

    #[test]
    fn customer_maps_through_the_default_field_map() {
        let mut r = rec("c1", SourceKind::Customer);
        r.name = Some(" Ann  Smith ".into());
        r.email = Some("Ann@Example.com".into());
        r.phone = Some("555-010-2000".into());
        r.zip = Some("10001".into());
        r.country_code = Some("us".into());
        r.location_id = Some("7".into());
        r.social_network = Some("Facebook".into());
        r.registered_at = Some("2024-01-01 10:00:00".into());
        let mut cfg = MappingConfig::default();
        cfg.tags
            .location_names
            .insert("7".into(), "Lobby Bar".into());
        let snap = map_sources(&[r], &cfg, None);
        assert!(snap.skipped.is_empty());
        let c = &snap.contacts[0];
        let f = &c.projection.fields;
        assert_eq!(f.get_std(StdField::FirstName), Some("Ann"));
        assert_eq!(f.get_std(StdField::LastName), Some("Smith"));
        assert_eq!(f.email(), Some("ann@example.com"));
        assert_eq!(f.phone(), Some("+15550102000"));
        assert_eq!(f.get_std(StdField::PostalCode), Some("10001"));
        assert_eq!(f.get_std(StdField::Country), Some("US"));
        let tags: Vec<&str> = c.projection.tags.iter().map(String::as_str).collect();
        assert_eq!(
            tags,
            vec!["hotspotsystem", "location:lobby bar", "social:facebook"]
        );
    }

    #[test]
    fn subscriber_and_customer_with_same_email_are_one_contact() {
        let mut sub = rec("s9", SourceKind::Subscriber);
        sub.email = Some("ANN@example.com ".into());
        sub.city = Some("Paris".into());
        sub.name = Some("Annie".into());
        let mut cust = rec("c1", SourceKind::Customer);
        cust.email = Some("ann@example.com".into());
        cust.name = Some("Ann Smith".into());
        let snap = map_sources(&[sub, cust], &MappingConfig::default(), None);
        assert_eq!(snap.contacts.len(), 1);
        let c = &snap.contacts[0];
        assert_eq!(c.source_id, "c1", "the customer's id keys the link");
        let f = &c.projection.fields;
        assert_eq!(f.get_std(StdField::FirstName), Some("Ann"), "customer wins");
        assert_eq!(f.get_std(StdField::City), Some("Paris"), "gaps filled");
        assert!(c.projection.tags.contains("newsletter"));
        assert_eq!(c.members.len(), 2);
    }

    #[test]
    fn record_without_email_or_phone_is_skipped_with_reason() {
        let mut r = rec("c2", SourceKind::Customer);
        r.user_name = Some("BE-72-B3-40-F9-BE".into());
        let snap = map_sources(&[r.clone()], &MappingConfig::default(), None);
        assert!(snap.contacts.is_empty());
        assert_eq!(snap.skipped[0].reason.as_str(), "no_email_or_phone");
        let cfg = MappingConfig {
            skip_without_email_or_phone: false,
            ..MappingConfig::default()
        };
        assert_eq!(map_sources(&[r], &cfg, None).contacts.len(), 1);
    }

    #[test]
    fn the_fields_a_contact_depends_on() {
        let mut cfg = MappingConfig::default();
        for f in ["city", "email", "phone", "name", "social_network"] {
            assert!(cfg.reads(f), "{f}");
        }
        for f in [
            "registered_at",
            "user_name",
            "id",
            "social_id",
            "no_such_field",
        ] {
            assert!(!cfg.reads(f), "{f}");
        }
        cfg.fields.entries.clear();
        cfg.tags.social = None;
        assert!(cfg.reads("email") && cfg.reads("phone"), "identity keys");
        assert!(!cfg.reads("city") && !cfg.reads("social_network"));
        cfg.fields = cfg
            .fields
            .clone()
            .with_custom(SourceField::UserName, "hs_user");
        assert!(cfg.reads("user_name"));
    }

    #[test]
    fn wire_names_are_the_serialised_names() {
        for f in SourceField::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
            assert_eq!(SourceField::from_wire(f.as_str()), Some(f));
        }
        assert_eq!(SourceField::from_wire("no_such_field"), None);
    }

    #[test]
    fn social_fields_and_anchor_map_to_custom_fields_and_read_back_equal() {
        let cfg = MappingConfig {
            fields: FieldMap {
                hotspot_id_field: Some("contact.hotspot_id".into()),
                ..FieldMap::default()
            }
            .with_custom(SourceField::SocialNetwork, "contact.social_network"),
            ..MappingConfig::default()
        };
        let mut r = rec("c3", SourceKind::Customer);
        r.name = Some("Émile Zola".into());
        r.email = Some("e@z.fr".into());
        r.social_network = Some("google".into());
        let m = &map_sources(&[r], &cfg, None).contacts[0];
        let f = &m.projection.fields;
        assert_eq!(
            f.get(&Field::Custom("contact.hotspot_id".into())),
            Some("c3")
        );
        assert_eq!(
            f.get(&Field::Custom("contact.social_network".into())),
            Some("google")
        );
        // The same contact as GHL returns it hashes the same; server fields are not hashed.
        let t = TargetContact {
            target_id: "g1".into(),
            first_name: Some("Émile".into()),
            last_name: Some("Zola".into()),
            email: Some("E@Z.fr".into()),
            custom_fields: [
                ("contact.hotspot_id".to_owned(), "c3".to_owned()),
                ("contact.social_network".to_owned(), "google".to_owned()),
                ("contact.unmapped".to_owned(), "ignored".to_owned()),
            ]
            .into(),
            tags: ["VIP".to_owned()].into(),
            date_updated: Some(chrono::Utc::now()),
            ..TargetContact::default()
        };
        let tp = target_projection(&t, &cfg);
        assert_eq!(tp.hash, m.projection.hash);
        assert!(tp.tags.contains("vip"));
        let mut t2 = t.clone();
        t2.target_id = "other".into();
        t2.date_updated = None;
        assert_eq!(target_projection(&t2, &cfg).hash, tp.hash);
    }

    /// Every part of the configuration the mapping reads changes the fingerprint, so a raw
    /// hash (and a settled mark) from before a config change never matches after it.
    #[test]
    fn the_fingerprint_covers_every_part_of_the_mapping_configuration() {
        let base = MappingConfig::default();
        let mut variants = Vec::new();
        let mut c = base.clone();
        c.fields = c
            .fields
            .with_custom(SourceField::SocialNetwork, "contact.social");
        variants.push(("field map", c));
        let mut c = base.clone();
        c.fields.hotspot_id_field = Some("contact.hotspot_id".into());
        variants.push(("anchor field", c));
        let mut c = base.clone();
        c.tags.base = None;
        variants.push(("base tag", c));
        let mut c = base.clone();
        c.tags.newsletter = Some("news".into());
        variants.push(("newsletter tag", c));
        variants.push((
            "location names",
            base.clone()
                .with_location_names([("7".to_string(), "Lobby".to_string())]),
        ));
        let mut c = base.clone();
        c.phone = PhoneNormalizer::new("GB").unwrap();
        variants.push(("default country", c));
        let mut c = base.clone();
        c.skip_without_email_or_phone = false;
        variants.push(("skip rule", c));
        let mut r = rec("c1", SourceKind::Customer);
        r.email = Some("a@b.co".into());
        let h = raw_hash(&[&r], &base.fingerprint());
        for (what, c) in variants {
            assert_ne!(c.fingerprint(), base.fingerprint(), "{what}");
            assert_ne!(raw_hash(&[&r], &c.fingerprint()), h, "{what}");
        }
        assert_eq!(base.clone().fingerprint(), base.fingerprint(), "stable");
    }

    /// A merged person (a subscriber merged into a customer) is one group whose raw hash covers
    /// every member, in the order the mapping reads them: a change to the subscriber alone
    /// changes it, and the same listing gives the same hash.
    #[test]
    fn a_merged_persons_raw_hash_covers_every_member() {
        let mut cust = rec("c1", SourceKind::Customer);
        cust.email = Some("ann@example.com".into());
        let mut sub = rec("s9", SourceKind::Subscriber);
        sub.email = Some("ANN@example.com".into());
        let fp = MappingConfig::default().fingerprint();
        let listing = vec![sub.clone(), cust.clone()];
        let groups = group_sources(&listing);
        assert_eq!(groups.len(), 1);
        let ids: Vec<&str> = groups[0].iter().map(|r| r.source_id.as_str()).collect();
        assert_eq!(ids, vec!["c1", "s9"], "the customer leads");
        let h = raw_hash(&groups[0], &fp);
        assert_eq!(raw_hash(&group_sources(&listing)[0], &fp), h);
        assert_ne!(raw_hash(&[&cust], &fp), h, "the subscriber is covered");
        sub.city = Some("Paris".into());
        let changed = vec![sub, cust];
        assert_ne!(raw_hash(&group_sources(&changed)[0], &fp), h);
    }

    #[test]
    fn raw_hash_fast_path_reuses_the_prior_projection() {
        let mut r = rec("c4", SourceKind::Customer);
        r.email = Some("x@y.z".into());
        let cfg = MappingConfig::default();
        let first = map_sources(std::slice::from_ref(&r), &cfg, None);
        let mut prior: HashMap<String, MappedSource> = HashMap::new();
        let mut poisoned = first.contacts[0].clone();
        // A marker only the cache can produce proves the fast path was taken.
        poisoned.flags.insert(NormFlag::CountryInvalid);
        prior.insert("c4".into(), poisoned);
        let again = map_sources(std::slice::from_ref(&r), &cfg, Some(&prior));
        assert!(again.contacts[0].flags.contains(&NormFlag::CountryInvalid));
        r.city = Some("Oslo".into());
        let changed = map_sources(&[r], &cfg, Some(&prior));
        assert!(changed.contacts[0].flags.is_empty());
        assert_ne!(changed.contacts[0].raw_hash, first.contacts[0].raw_hash);
    }

    #[test]
    fn long_and_emoji_values_map_and_hash_stably() {
        let mut r = rec("c5", SourceKind::Customer);
        let long = "ж".repeat(2000);
        r.name = Some(format!("  🦀Ferris {long} "));
        r.email = Some("ferris@rust.example".into());
        r.address = Some("x".repeat(2000));
        let cfg = MappingConfig::default();
        let a = map_sources(std::slice::from_ref(&r), &cfg, None);
        let b = map_sources(std::slice::from_ref(&r), &cfg, None);
        let f = &a.contacts[0].projection.fields;
        assert_eq!(f.get_std(StdField::FirstName), Some("🦀Ferris"));
        assert_eq!(
            f.get_std(StdField::LastName).map(|s| s.chars().count()),
            Some(2000)
        );
        assert_eq!(f.get_std(StdField::Address1).map(str::len), Some(2000));
        assert_eq!(a.contacts[0].projection.hash, b.contacts[0].projection.hash);
    }

    #[test]
    fn tag_rules_can_be_disabled() {
        let mut r = rec("s1", SourceKind::Subscriber);
        r.email = Some("a@b.c".into());
        r.location_id = Some("1".into());
        r.social_network = Some("x".into());
        let cfg = MappingConfig {
            tags: TagRules {
                base: None,
                location: None,
                location_names: HashMap::new(),
                newsletter: None,
                social: None,
            },
            ..MappingConfig::default()
        };
        assert!(
            map_sources(&[r], &cfg, None).contacts[0]
                .projection
                .tags
                .is_empty()
        );
    }

    #[test]
    fn templates_fill_known_placeholders_and_keep_one_reference_line() {
        let mut vars = BTreeMap::new();
        vars.insert("type", "mac".to_string());
        vars.insert("transaction_id", "12".to_string());
        vars.insert("location", "Café ☕".to_string());
        let r = note_reference("mac", "12");
        let body = render_with_reference(
            "WiFi {type} at {location}{details}\nRef: hgs:{type}:{transaction_id}",
            &vars,
            &r,
        );
        assert_eq!(body, "WiFi mac at Café ☕\nRef: hgs:mac:12");
        let appended = render_with_reference("Visit {unknown}", &vars, &r);
        assert_eq!(appended, "Visit\nRef: hgs:mac:12");
        assert!(has_reference(&appended, &r));
        assert!(!has_reference("Ref: hgs:mac:123", &r));
        assert_eq!(render_template("open { brace", &vars), "open { brace");
    }
}
