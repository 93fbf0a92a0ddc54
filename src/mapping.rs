//! HotspotSystem → canonical mapping: the configurable field map, the tag rules, the merge of
//! customers and subscribers into one contact, and the reading of GHL contacts through the same
//! field map, so both sides hash the same projection.
//!
//! Pure functions only: no I/O, no clock.

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
    /// `location:{name}`, with the name from `location_names`, else the location id.
    pub location: bool,
    pub location_names: HashMap<String, String>,
    pub newsletter: Option<String>,
    /// `social:{network}`.
    pub social: bool,
}

impl Default for TagRules {
    fn default() -> Self {
        Self {
            base: Some("hotspotsystem".into()),
            location: true,
            location_names: HashMap::new(),
            newsletter: Some("newsletter".into()),
            social: true,
        }
    }
}

impl TagRules {
    fn tags_for(&self, r: &SourceContact, out: &mut BTreeSet<String>) {
        if let Some(t) = self.base.as_deref().and_then(norm_tag) {
            out.insert(t);
        }
        if self.location
            && let Some(id) = r.location_id.as_deref().map(str::trim).filter(|s| !s.is_empty())
        {
            let name = self.location_names.get(id).map(String::as_str).unwrap_or(id);
            if let Some(t) = norm_tag(&format!("location:{name}")) {
                out.insert(t);
            }
        }
        if r.kind == Some(SourceKind::Subscriber)
            && let Some(t) = self.newsletter.as_deref().and_then(norm_tag)
        {
            out.insert(t);
        }
        if self.social
            && let Some(n) = r.social_network.as_deref().and_then(norm_tag)
        {
            out.insert(format!("social:{n}"));
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
    /// A digest of the configuration, mixed into raw hashes so a config change defeats the cache.
    pub fn fingerprint(&self) -> Digest {
        let mut locs: Vec<_> = self.tags.location_names.iter().collect();
        locs.sort();
        let s = format!(
            "{:?}|{:?}|{:?}|{}|{:?}|{:?}|{}|{:?}|{}",
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
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoEmailOrPhone => "no_email_or_phone",
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

fn raw_update(h: &mut blake3::Hasher, v: Option<&str>) {
    match v {
        None => {
            h.update(&[0]);
        }
        Some(s) => {
            h.update(&[1]);
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
    }
}

/// Hash of the unnormalised records of one merge group, plus the config fingerprint.
pub fn raw_hash(members: &[&SourceContact], fingerprint: &Digest) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(b"hgs.raw\0");
    h.update(&fingerprint.0);
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
    Digest(*h.finalize().as_bytes())
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
    let mut flags = BTreeSet::new();
    let mut c = CanonicalContact::new();
    for f in cfg.fields.target_fields() {
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
        let v = normalize_for(&f, raw, cfg, &mut flags);
        c.set(f, v);
    }
    c
}

/// A GHL contact's projection: mapped fields, their hash, and its tags (lower-cased).
pub fn target_projection(t: &TargetContact, cfg: &MappingConfig) -> ContactProjection {
    let tags = t.tags.iter().filter_map(|s| norm_tag(s)).collect();
    ContactProjection::new(canonical_from_target(t, cfg), tags)
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
    // Group: customers (and kind-less) first so their id and fields win.
    let mut order: Vec<&SourceContact> = records.iter().collect();
    order.sort_by_key(|r| r.kind == Some(SourceKind::Subscriber));
    let mut groups: Vec<Vec<&SourceContact>> = Vec::new();
    let mut by_email: HashMap<String, usize> = HashMap::new();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for r in order {
        let email = norm_email(r.email.as_deref());
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

    let mut out = MappedSnapshot::default();
    for g in groups {
        let lead = g[0];
        let rh = raw_hash(&g, &fp);
        if let Some(p) = prior.and_then(|p| p.get(&lead.source_id))
            && p.raw_hash == rh
        {
            out.contacts.push(p.clone());
            continue;
        }
        let mut flags = BTreeSet::new();
        let mut fields = canonical_from_source(lead, cfg, &mut flags);
        let mut tags = BTreeSet::new();
        cfg.tags.tags_for(lead, &mut tags);
        for r in &g[1..] {
            let other = canonical_from_source(r, cfg, &mut flags);
            fields.fill_from(&other);
            cfg.tags.tags_for(r, &mut tags);
        }
        if cfg.skip_without_email_or_phone && fields.email().is_none() && fields.phone().is_none()
        {
            for r in &g {
                out.skipped.push(SkippedSource {
                    source_id: r.source_id.clone(),
                    reason: SkipReason::NoEmailOrPhone,
                });
            }
            continue;
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
    out
}

/// Target tags and mapped fields as a lookup from GHL field name, for reports.
pub fn field_names(c: &CanonicalContact) -> BTreeMap<String, String> {
    c.iter()
        .map(|(f, v)| (f.name().into_owned(), v.to_owned()))
        .collect()
}
