//! Reading both sides into the planner's domain records.
//!
//! HotspotSystem customers carry no location, so they are listed per location: that costs at
//! most one extra page per location and tells each guest's registration location (for tags and
//! businesses). GHL contacts are listed once per run through the search endpoint, 500 a page.
//! A listing is `complete` only when every page arrived and nothing in them says a record may
//! be missing (see `crate::listing`): deletion is never inferred from anything less.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::decode::Listing;
use crate::ghl::wire::{Contact, CustomField, SearchContact};
use chrono::{DateTime, Utc};

use super::filter::KeptOut;
use super::plan::TargetCoverage;
use crate::ghl::client::{ContactSearch, SinceFilter};
use crate::ghl::{GhlClient, GhlError};
use crate::hotspot::HotspotClient;
use crate::hotspot::wire::Customer;
use crate::http::HttpError;
use crate::listing::Incomplete;
use crate::model::{SourceContact, SourceKind, TargetContact};

/// A HotspotSystem location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub id: String,
    pub name: String,
}

/// The HotspotSystem side of one run.
#[derive(Debug, Default)]
pub struct SourceListing {
    pub records: Vec<SourceContact>,
    pub locations: Vec<Location>,
    /// Every page of every listing arrived and none of them may have missed a record.
    pub complete: bool,
    /// Which listing was incomplete, and why (for the report).
    pub incomplete: Vec<(String, Incomplete)>,
    /// Records dropped because they had no id, or it could not be read (reported by the
    /// client's decode log, never synced).
    pub without_id: usize,
    /// Records listed with a value that could not be read (taken as empty), by source id, with
    /// the wire names of those fields.
    pub unreadable: BTreeMap<String, BTreeSet<String>>,
    /// Listed guests the operator's `[filter]` or `--limit` left out of this pass (not in
    /// `records`, yet present).
    pub kept_out: KeptOut,
}

/// Lists the locations to sync (all, or the configured ones), then their customers and, when
/// asked, their subscribers.
pub async fn read_source(
    hs: &HotspotClient,
    only_locations: &[String],
    with_subscribers: bool,
) -> Result<SourceListing, HttpError> {
    let mut out = SourceListing {
        complete: true,
        ..Default::default()
    };
    let mut pager = hs.locations();
    while let Some(page) = pager.next_page().await? {
        for l in page {
            let Some(id) = l.id.filter(|s| !s.trim().is_empty()) else {
                // Its guests go unlisted: none of them may be taken for deleted.
                out.complete = false;
                continue;
            };
            if only_locations.is_empty() || only_locations.contains(&id) {
                let name = l.name.unwrap_or_else(|| id.clone());
                out.locations.push(Location { id, name });
            }
        }
    }
    for loc in out.locations.clone() {
        let mut kinds = vec![SourceKind::Customer];
        if with_subscribers {
            kinds.push(SourceKind::Subscriber);
        }
        for kind in kinds {
            let mut pager = match kind {
                SourceKind::Customer => hs.customers(Some(&loc.id)),
                SourceKind::Subscriber => hs.subscribers(Some(&loc.id)),
            };
            while let Some(page) = pager.next_page().await? {
                for c in page {
                    match source_contact(c, kind, &loc.id) {
                        Some(r) => out.records.push(r),
                        None => out.without_id += 1,
                    }
                }
            }
            out.complete &= pager.complete();
            out.incomplete
                .extend(pager.incomplete().into_iter().map(|why| {
                    (
                        format!(
                            "HotspotSystem {} of location {}",
                            match kind {
                                SourceKind::Customer => "customers",
                                SourceKind::Subscriber => "subscribers",
                            },
                            loc.id
                        ),
                        why,
                    )
                }));
        }
    }
    // A record whose id could not be read may be a linked guest: taking that guest for
    // deleted would be wrong, so nothing is inferred from this listing.
    out.complete &= out.without_id == 0;
    for (listing, kind) in [
        (Listing::Customers, SourceKind::Customer),
        (Listing::Subscribers, SourceKind::Subscriber),
    ] {
        for (id, fields) in hs.decode_log().unreadable_records(listing) {
            out.unreadable.insert(source_id(id, kind), fields);
        }
    }
    Ok(out)
}

/// The id a record is synced (and linked) by: subscribers have ids of their own, prefixed so a
/// subscriber can never collide with a customer that happens to share the number.
fn source_id(id: String, kind: SourceKind) -> String {
    match kind {
        SourceKind::Customer => id,
        SourceKind::Subscriber => format!("sub:{id}"),
    }
}

pub(crate) fn source_contact(
    c: Customer,
    kind: SourceKind,
    location_id: &str,
) -> Option<SourceContact> {
    let id = c.id.filter(|s| !s.trim().is_empty())?;
    Some(SourceContact {
        source_id: source_id(id, kind),
        kind: Some(kind),
        name: c.name,
        email: c.email,
        phone: c.phone,
        company_name: c.company_name,
        address: c.address,
        city: c.city,
        state: c.state,
        zip: c.zip,
        country_code: c.country_code,
        social_network: c.social_network,
        social_id: c.social_id,
        social_username: c.social_username,
        social_link: c.social_link,
        social_gender: c.social_gender,
        social_age_range: c.social_age_range,
        social_followers_count: c.social_followers_count.map(|n| n.to_string()),
        user_name: c.user_name,
        registered_at: c.registered_at.map(|t| t.to_rfc3339()),
        location_id: Some(location_id.to_string()),
    })
}

/// The location's custom fields: id ↔ key, because GHL reads them by id and we configure keys.
/// Writes go by id: the spec's contact write schemas disagree on whether `key` is accepted
/// (one requires `id`), while `id` is accepted under both.
#[derive(Debug, Clone, Default)]
pub struct CustomFields {
    key_by_id: HashMap<String, String>,
    id_by_key: HashMap<String, String>,
}

/// Configured custom field keys the location does not have. Each is `(config key, field key)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} (the GHL location has {available} custom field(s)); create the field in GHL or fix the key",
    missing.iter().map(|(at, key)| format!("custom field `{key}` ({at}) does not exist")).collect::<Vec<_>>().join("; ")
)]
pub struct UnknownCustomFields {
    pub missing: Vec<(String, String)>,
    pub available: usize,
}

impl CustomFields {
    /// Resolves each configured key (`(config key, field key)`) to the id of the location's
    /// field whose `fieldKey` is that key, with or without the `contact.` prefix. Values read
    /// back by id are then keyed as configured. An unknown key is an error naming it.
    pub fn resolve(
        fields: &[CustomField],
        wanted: &[(String, String)],
    ) -> Result<Self, UnknownCustomFields> {
        let bare = |k: &str| k.strip_prefix("contact.").unwrap_or(k).to_string();
        let mut cf = CustomFields::default();
        let mut missing = Vec::new();
        for (at, key) in wanted {
            let found = fields.iter().find_map(|f| {
                let (id, fk) = (f.id.as_deref()?, f.field_key.as_deref()?);
                (fk == key || bare(fk) == bare(key)).then_some(id)
            });
            match found {
                Some(id) => {
                    cf.key_by_id.insert(id.to_string(), key.clone());
                    cf.id_by_key.insert(key.clone(), id.to_string());
                }
                None => missing.push((at.clone(), key.clone())),
            }
        }
        if missing.is_empty() {
            Ok(cf)
        } else {
            Err(UnknownCustomFields {
                missing,
                available: fields.len(),
            })
        }
    }

    pub fn id_of(&self, key: &str) -> Option<&str> {
        self.id_by_key.get(key).map(String::as_str)
    }

    fn key_of<'a>(&'a self, id: &'a str) -> &'a str {
        self.key_by_id.get(id).map(String::as_str).unwrap_or(id)
    }
}

/// The GHL side of one run.
#[derive(Debug, Default)]
pub struct TargetListing {
    pub contacts: Vec<TargetContact>,
    pub complete: bool,
    /// Why the listing is not complete (for the report).
    pub incomplete: Vec<Incomplete>,
    /// The `dateUpdated` bound GHL applied: the listing holds only the contacts updated since
    /// (and those fetched by id). `None`: every contact.
    pub since: Option<DateTime<Utc>>,
    /// What became of the bound asked for (the date form to remember).
    pub since_filter: SinceFilter,
    /// The latest `dateUpdated` the search answered.
    pub latest_update: Option<DateTime<Utc>>,
    /// Linked contacts a GET by id answered "not found" for: deleted in GHL.
    pub deleted: BTreeSet<String>,
}

/// What the kinds after contacts use of the GHL listing: which contacts it held and when each
/// was last updated, and the bound it was read with. Kept for the whole pass instead of the
/// listing, whose contacts are projected (and dropped) as the contacts step reads them.
#[derive(Debug, Clone, Default)]
pub struct TargetStamps {
    /// See [`TargetListing::since`].
    pub since: Option<DateTime<Utc>>,
    /// GHL contact id → its `dateUpdated`.
    pub contacts: Vec<(String, Option<DateTime<Utc>>)>,
}

impl From<&TargetListing> for TargetStamps {
    fn from(listing: &TargetListing) -> Self {
        TargetStamps {
            since: listing.since,
            contacts: listing
                .contacts
                .iter()
                .map(|t| (t.target_id.clone(), t.date_updated))
                .collect(),
        }
    }
}

impl TargetListing {
    /// What the planner may infer from a contact's absence.
    pub fn coverage(&self) -> TargetCoverage {
        match (self.complete, self.since) {
            (false, _) => TargetCoverage::Incomplete,
            (true, Some(_)) => TargetCoverage::Incremental,
            (true, None) => TargetCoverage::Full,
        }
    }
}

/// Every contact of the location, 500 per request.
pub async fn read_target(
    ghl: &GhlClient,
    fields: &CustomFields,
) -> Result<TargetListing, GhlError> {
    read_search(ghl.search_contacts(Vec::new(), Vec::new(), 500), fields).await
}

/// Reads a contact search to its end. The listing is incremental only when GHL applied a
/// `dateUpdated` bound; a bound refused or ignored leaves a listing of every contact.
pub async fn read_search(
    mut search: ContactSearch,
    fields: &CustomFields,
) -> Result<TargetListing, GhlError> {
    let mut contacts = Vec::new();
    let mut without_id = 0;
    while let Some(page) = search.next_page().await? {
        for c in page {
            match target_from_search(c, fields) {
                Some(t) => contacts.push(t),
                None => without_id += 1,
            }
        }
    }
    // A contact whose id could not be read may be one a guest is linked to (it would look
    // deleted) or the match of a new guest (a create would duplicate it).
    Ok(TargetListing {
        contacts,
        complete: search.complete() && without_id == 0,
        incomplete: search.incomplete(),
        since: if search.lists_every_contact() {
            None
        } else {
            search.since_bound()
        },
        since_filter: search.since_filter(),
        latest_update: search.latest_update(),
        deleted: BTreeSet::new(),
    })
}

fn custom_value(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn target_from_search(c: SearchContact, fields: &CustomFields) -> Option<TargetContact> {
    Some(TargetContact {
        target_id: c.id?,
        first_name: c.first_name,
        last_name: c.last_name,
        email: c.email,
        phone: c.phone,
        company_name: c.company_name,
        address1: c.address,
        city: c.city,
        state: c.state,
        postal_code: c.postal_code,
        country: c.country,
        custom_fields: custom_map(
            c.custom_fields.iter().map(|f| (f.id.as_deref(), &f.value)),
            fields,
        ),
        tags: c.tags.into_iter().collect(),
        date_updated: c.date_updated,
    })
}

/// A contact as a write or a GET returned it (create, update and get shapes share these fields).
pub fn target_from_contact(c: &Contact, fields: &CustomFields) -> Option<TargetContact> {
    Some(TargetContact {
        target_id: c.id.clone()?,
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        email: c.email.clone(),
        phone: c.phone.clone(),
        company_name: c.company_name.clone(),
        address1: c.address1.clone(),
        city: c.city.clone(),
        state: c.state.clone(),
        postal_code: c.postal_code.clone(),
        country: c.country.clone(),
        custom_fields: custom_map(
            c.custom_fields.iter().map(|f| (f.id.as_deref(), &f.value)),
            fields,
        ),
        tags: c.tags.iter().cloned().collect(),
        date_updated: c.date_updated,
    })
}

fn custom_map<'a>(
    values: impl Iterator<Item = (Option<&'a str>, &'a serde_json::Value)>,
    fields: &CustomFields,
) -> BTreeMap<String, String> {
    values
        .filter_map(|(id, v)| Some((fields.key_of(id?).to_string(), custom_value(v)?)))
        .collect()
}

/// Locations by id → name, as note and task templates name them.
pub fn location_names(locations: &[Location]) -> HashMap<String, String> {
    locations
        .iter()
        .map(|l| (l.id.clone(), l.name.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(id: &str, key: &str) -> CustomField {
        CustomField {
            id: Some(id.into()),
            field_key: Some(key.into()),
            ..Default::default()
        }
    }

    #[test]
    fn configured_keys_resolve_to_ids_with_or_without_the_prefix_and_read_back_as_configured() {
        let fields = [
            field("F1", "contact.hotspot_customer_id"),
            field("F2", "contact.social_network"),
        ];
        let wanted = [
            (
                "ghl.hotspot_id_field".to_string(),
                "contact.hotspot_customer_id".to_string(),
            ),
            (
                "contacts.fields.social_network".to_string(),
                "social_network".to_string(),
            ),
        ];
        let cf = CustomFields::resolve(&fields, &wanted).unwrap();
        assert_eq!(cf.id_of("contact.hotspot_customer_id"), Some("F1"));
        assert_eq!(cf.id_of("social_network"), Some("F2"));
        assert_eq!(cf.key_of("F2"), "social_network");
    }

    #[test]
    fn an_unknown_key_is_named_with_where_it_is_configured() {
        let wanted = [(
            "contacts.fields.city".to_string(),
            "contact.nope".to_string(),
        )];
        let e = CustomFields::resolve(&[field("F1", "contact.other")], &wanted).unwrap_err();
        assert_eq!(e.missing, wanted);
        let msg = e.to_string();
        assert!(
            msg.contains("`contact.nope` (contacts.fields.city) does not exist"),
            "{msg}"
        );
    }
}
