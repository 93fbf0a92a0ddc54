//! What GHL should end up holding, worked out from the emulators' data independently of the
//! product's own mapping. Shared by the end-to-end and reliability helpers.

use std::collections::BTreeSet;

use hotspot_ghl_sync::sandbox::hotspot::HotspotEmulator;

/// People HotspotSystem lists who can be synced: a customer or subscriber with an email or a
/// phone; a subscriber whose email is a customer's is the same person.
pub fn eligible_people(hotspot: &HotspotEmulator) -> usize {
    hotspot.with_data(|d| {
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let mut emails = BTreeSet::new();
        let mut n = 0;
        for c in &d.customers {
            if has(&c.email) || has(&c.phone) {
                n += 1;
            }
            if let Some(e) = &c.email {
                emails.insert(e.trim().to_lowercase());
            }
        }
        for s in &d.subscribers {
            let email = s.email.as_deref().map(|e| e.trim().to_lowercase());
            if email.as_ref().is_some_and(|e| emails.contains(e)) {
                continue;
            }
            if has(&s.email) || has(&s.phone) {
                n += 1;
            }
        }
        n
    })
}
