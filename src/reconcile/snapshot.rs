//! Reading both sides into the planner's domain records.
//!
//! HotspotSystem customers carry no location, so they are listed per location: that costs at
//! most one extra page per location and tells each guest's registration location (for tags and
//! businesses). GHL contacts are listed once per run through the search endpoint, 500 a page.
//! A listing is `complete` only when every page arrived and nothing in them says a record may
//! be missing (see `crate::listing`): deletion is never inferred from anything less.

use std::collections::{BTreeMap, HashMap};

use crate::ghl::wire::{Contact, CustomField, SearchContact};
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
    /// Records dropped because they had no id (reported, never synced).
    pub without_id: usize,
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
    Ok(out)
}

fn source_contact(c: Customer, kind: SourceKind, location_id: &str) -> Option<SourceContact> {
    let source_id = c.id.filter(|s| !s.trim().is_empty())?;
    Some(SourceContact {
        // Subscribers have ids of their own; prefix them so a subscriber can never collide
        // with a customer that happens to share the number.
        source_id: match kind {
            SourceKind::Customer => source_id,
            SourceKind::Subscriber => format!("sub:{source_id}"),
        },
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
#[derive(Debug, Clone, Default)]
pub struct CustomFields {
    key_by_id: HashMap<String, String>,
    id_by_key: HashMap<String, String>,
}

impl CustomFields {
    pub fn new(fields: Vec<CustomField>) -> Self {
        let mut cf = CustomFields::default();
        for f in fields {
            if let (Some(id), Some(key)) = (f.id, f.field_key) {
                cf.key_by_id.insert(id.clone(), key.clone());
                cf.id_by_key.insert(key, id);
            }
        }
        cf
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
}

/// Every contact of the location, 500 per request.
pub async fn read_target(
    ghl: &GhlClient,
    fields: &CustomFields,
) -> Result<TargetListing, GhlError> {
    let mut search = ghl.search_contacts(Vec::new(), Vec::new(), 500);
    let mut contacts = Vec::new();
    while let Some(page) = search.next_page().await? {
        contacts.extend(
            page.into_iter()
                .filter_map(|c| target_from_search(c, fields)),
        );
    }
    Ok(TargetListing {
        contacts,
        complete: search.complete(),
        incomplete: search.incomplete(),
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
