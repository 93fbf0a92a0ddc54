//! Which GHL contacts a pass reads. Every one where deletions must be inferred (`--full`, a
//! first pass, the daily full pass, a date filter GHL refused); otherwise only those updated
//! since the last pass, plus, fetched by id, the few the plan needs that the answer lacks: the
//! contact of a linked guest whose HotspotSystem record changed, and a GHL contact a new guest
//! may match. And what a listing leaves for the next pass: the cursor and the identity of
//! every contact seen.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::context::{PassContext, lock};
use super::plan::{ContactsInput, LinkStatus, TargetCoverage};
use super::snapshot::{CustomFields, TargetListing, read_search, read_target, target_from_contact};
use crate::ghl::client::SinceFilter;
use crate::ghl::wire::DateForm;
use crate::model::Kind;
use crate::store::{
    ContactCursor, ContactIdentity, ContactListing, DateFilter, IdentityKey, IntentState,
};

/// How far before the high-water mark an incremental listing starts: GHL's search lags its
/// writes by seconds, and the mark is GHL's own `dateUpdated`, so the margin covers the lag
/// and any skew between GHL's clocks, not ours.
pub fn overlap() -> Duration {
    Duration::minutes(10)
}

/// How old the last full listing may be before a pass lists every contact again: the daily
/// pass that infers deletions and catches a CRM edit that left `dateUpdated` alone.
pub fn full_every() -> Duration {
    Duration::hours(24)
}

/// A flag in a contact link's `extra`: GHL said (a `ContactUpdate` webhook) that the contact
/// changed since a pass last read it. An incremental pass fetches such a contact by id when its
/// listing lacks it (an edit that left `dateUpdated` alone), and any pass that reads it clears
/// the flag.
pub const CHANGED_IN_GHL: &str = "ghl_changed";

/// Contacts a page of the search answers: the unit a full listing costs.
const PAGE: usize = 500;

/// What a pass asks GHL for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Every contact.
    Full,
    /// The contacts updated since this bound, the date written in this form first.
    Since(DateTime<Utc>, Option<DateForm>),
}

/// Pure: what to read, from the user's `--full`, the location's cursor, whether a create may
/// be in flight from an earlier run (its contact is found by a full listing, as before),
/// whether this pass takes the daily full listing when it is due (a scoped pass leaves it to
/// the regular passes: it infers nothing from absences), and the time now.
pub fn reading(
    full: bool,
    cursor: &ContactCursor,
    pending_creates: bool,
    daily_full: bool,
    now: DateTime<Utc>,
) -> Reading {
    let (Some(high_water), Some(last_full)) = (cursor.high_water, cursor.last_full_at) else {
        return Reading::Full;
    };
    if full || pending_creates {
        return Reading::Full;
    }
    let since = high_water - overlap();
    let form = |f: Option<DateFilter>| match f {
        Some(DateFilter::Millis) => Some(DateForm::Millis),
        Some(DateFilter::Iso) => Some(DateForm::Iso),
        _ => None,
    };
    let due = daily_full && now - last_full >= full_every();
    match cursor.date_filter {
        // The daily pass asks again with a bound: refused again, the search lists every
        // contact anyway (a full listing); taken, the next pass runs the full listing.
        Some(DateFilter::Refused) if due => Reading::Since(since, None),
        Some(DateFilter::Refused) => Reading::Full,
        _ if due => Reading::Full,
        f => Reading::Since(since, form(f)),
    }
}

/// Reads the GHL side of the contacts step. `input` holds the source side and the base: they
/// tell which contacts an incremental answer must be completed with.
pub async fn read(
    cx: &PassContext<'_>,
    fields: &CustomFields,
    input: &ContactsInput,
) -> anyhow::Result<TargetListing> {
    let location = cx.ghl.location_id();
    let (cursor, pending) = {
        let s = lock(cx.store);
        let pending = s
            .pending_intents()?
            .iter()
            .any(|i| i.kind == Kind::Contact && i.state == IntentState::Pending);
        (s.contact_cursor(location)?, pending)
    };
    let daily_full = cx.opts.scope.scoped().is_none();
    let (since, form) = match reading(cx.opts.full, &cursor, pending, daily_full, Utc::now()) {
        Reading::Full => return Ok(read_target(cx.ghl, fields).await?),
        Reading::Since(since, form) => (since, form),
    };
    let search = cx
        .ghl
        .search_contacts_updated_since(since, form, PAGE as u32);
    let mut listing = read_search(search, fields).await?;
    if listing.coverage() != TargetCoverage::Incremental {
        return Ok(listing);
    }
    let wanted = to_fetch(cx, input, &listing)?;
    let linked = input
        .base
        .values()
        .filter(|b| b.status == LinkStatus::Active)
        .count();
    let known = lock(cx.store).contact_identity_count(location)? as usize;
    // Incremental must never cost more requests than the full listing it replaces.
    let full_pages = linked.max(known) / PAGE + 1;
    if wanted.len() > full_pages {
        tracing::info!(
            fetches = wanted.len(),
            full_pages,
            "more contacts to fetch by id than a full listing has pages; listing every contact"
        );
        let mut full = read_target(cx.ghl, fields).await?;
        full.since_filter = listing.since_filter;
        return Ok(full);
    }
    for (id, why) in wanted {
        match cx.ghl.get_contact(&id).await {
            Ok(Some(c)) => {
                if let Some(t) = target_from_contact(&c, fields) {
                    listing.contacts.push(t);
                }
            }
            Ok(None) => match why {
                Fetch::Linked => {
                    listing.deleted.insert(id);
                }
                Fetch::Candidate => {
                    lock(cx.store).remove_contact_identity(location, &id)?;
                }
            },
            Err(e) => {
                tracing::warn!(target_id = %id, error = %e, "could not read a contact the plan needs; the GHL listing is incomplete this run");
                listing.complete = false;
                listing.incomplete.push(crate::listing::Incomplete::Failed);
                break;
            }
        }
    }
    Ok(listing)
}

/// Why a contact is fetched by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// The contact of a linked guest whose HotspotSystem record changed (or is gone): the
    /// three-way merge needs its current values.
    Linked,
    /// A contact whose stored identity a new guest matches.
    Candidate,
}

/// The contacts the plan needs that an incremental answer lacks, by id.
fn to_fetch(
    cx: &PassContext<'_>,
    input: &ContactsInput,
    listing: &TargetListing,
) -> anyhow::Result<BTreeMap<String, Fetch>> {
    let listed: HashSet<&str> = listing
        .contacts
        .iter()
        .map(|t| t.target_id.as_str())
        .collect();
    // Held or kept out of this pass: nothing is planned for them, so nothing is needed.
    let skipped = input.not_planned();
    let mut out = BTreeMap::new();
    for (sid, b) in &input.base {
        if b.status != LinkStatus::Active
            || listed.contains(b.target_id.as_str())
            || skipped.contains(sid.as_str())
        {
            continue;
        }
        // A settled summary is unchanged on both sides as of its mark (`reconcile::settled`).
        let unchanged = input.unchanged.contains_key(sid)
            || input
                .source
                .get(sid)
                .is_some_and(|s| s.projection.hash == b.source_hash);
        if !unchanged {
            out.insert(b.target_id.clone(), Fetch::Linked);
        }
    }
    let location = cx.ghl.location_id();
    let anchor_field = cx.cfg.mapping().fields.hotspot_id_field.clone();
    let store = lock(cx.store);
    // Contacts GHL's webhooks said changed: a whole pass plans their guests and reads them.
    // A scoped pass plans only its own records and leaves the flags to it (and skips the scan).
    let flagged = match cx.opts.scope.scoped() {
        None => store.targets_flagged(Kind::Contact, CHANGED_IN_GHL)?,
        Some(_) => Vec::new(),
    };
    for id in flagged {
        if !listed.contains(id.as_str()) {
            out.insert(id, Fetch::Linked);
        }
    }
    for (sid, s) in &input.source {
        if input
            .base
            .get(sid)
            .is_some_and(|b| b.status == LinkStatus::Active)
        {
            continue;
        }
        let f = &s.projection.fields;
        let keys = [
            anchor_field
                .as_deref()
                .and_then(|k| f.get_custom(k))
                .map(IdentityKey::Anchor),
            f.email().map(IdentityKey::Email),
            f.phone().map(IdentityKey::Phone),
        ];
        for key in keys.into_iter().flatten() {
            for id in store.contacts_by_identity(location, key)? {
                if !listed.contains(id.as_str()) {
                    out.entry(id).or_insert(Fetch::Candidate);
                }
            }
        }
    }
    Ok(out)
}

/// What a listing leaves for the next pass (nothing on a dry run): the identity of every
/// contact it read (a complete full listing replaces them all), and, when it was read to its
/// end, the high-water mark and the date form GHL took.
pub fn remember(
    cx: &PassContext<'_>,
    input: &ContactsInput,
    listing: &TargetListing,
) -> anyhow::Result<()> {
    if cx.opts.dry_run {
        return Ok(());
    }
    let location = cx.ghl.location_id();
    let anchor_field = cx.cfg.mapping().fields.hotspot_id_field.clone();
    // `input.target` is what this listing answered, projected.
    let rows: Vec<ContactIdentity> = input
        .target
        .iter()
        .map(|(id, e)| {
            let f = &e.projection.fields;
            ContactIdentity {
                target_id: id.clone(),
                email: f.email().map(str::to_owned),
                phone: f.phone().map(str::to_owned),
                anchor: anchor_field
                    .as_deref()
                    .and_then(|k| f.get_custom(k))
                    .map(str::to_owned),
                date_updated: e.date_updated,
            }
        })
        .collect();
    let date_filter = match listing.since_filter {
        SinceFilter::Applied(f) | SinceFilter::Ignored(f) => Some(match f {
            DateForm::Iso => DateFilter::Iso,
            DateForm::Millis => DateFilter::Millis,
        }),
        SinceFilter::Refused => Some(DateFilter::Refused),
        SinceFilter::NotAsked | SinceFilter::Pending => None,
    };
    let s = lock(cx.store);
    let kind = match listing.coverage() {
        TargetCoverage::Full => {
            s.replace_contact_identities(location, &rows)?;
            ContactListing::Full
        }
        TargetCoverage::Incremental => {
            s.upsert_contact_identities(location, &rows)?;
            ContactListing::Incremental
        }
        TargetCoverage::Incomplete => {
            s.upsert_contact_identities(location, &rows)?;
            return Ok(());
        }
    };
    s.record_contact_listing(
        location,
        kind,
        listing.latest_update,
        date_filter,
        cx.started,
    )?;
    for id in &listing.deleted {
        s.remove_contact_identity(location, id)?;
    }
    let flagged = match cx.opts.scope.scoped() {
        None => s.targets_flagged(Kind::Contact, CHANGED_IN_GHL)?,
        Some(_) => Vec::new(),
    };
    for id in flagged {
        if input.target.contains_key(&id) || listing.deleted.contains(&id) {
            s.clear_flag(Kind::Contact, &id, CHANGED_IN_GHL)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn cursor(filter: Option<DateFilter>, full_h: u32) -> ContactCursor {
        ContactCursor {
            high_water: Some(at(10)),
            last_full_at: Some(at(full_h)),
            date_filter: filter,
        }
    }

    #[test]
    fn a_pass_lists_every_contact_only_where_it_must() {
        let now = at(12);
        let since = at(10) - overlap();
        assert_eq!(
            reading(false, &ContactCursor::default(), false, true, now),
            Reading::Full,
            "no cursor yet"
        );
        let c = cursor(Some(DateFilter::Millis), 1);
        assert_eq!(
            reading(false, &c, false, true, now),
            Reading::Since(since, Some(DateForm::Millis))
        );
        assert_eq!(reading(true, &c, false, true, now), Reading::Full, "--full");
        assert_eq!(
            reading(false, &c, true, true, now),
            Reading::Full,
            "a create may be in flight"
        );
        assert_eq!(
            reading(false, &c, false, true, at(1) + full_every()),
            Reading::Full,
            "the daily full pass"
        );
        assert_eq!(
            reading(false, &cursor(None, 1), false, true, now),
            Reading::Since(since, None)
        );
        let refused = cursor(Some(DateFilter::Refused), 1);
        assert_eq!(reading(false, &refused, false, true, now), Reading::Full);
        assert_eq!(
            reading(false, &refused, false, true, at(1) + full_every()),
            Reading::Since(since, None),
            "asked again on the daily pass"
        );
        assert_eq!(
            reading(false, &c, false, false, at(1) + full_every()),
            Reading::Since(since, Some(DateForm::Millis)),
            "a scoped pass leaves the daily full listing to the regular passes"
        );
    }
}
