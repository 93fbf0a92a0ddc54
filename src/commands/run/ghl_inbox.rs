//! GHL's webhook events reach the daemon's pairs: each goes to the pairs whose
//! `ghl.location_id` is the event's `locationId`, is recorded in their states at once
//! ([`crate::webhooks::ghl::apply`]), and wakes a pair only when its next pass has something
//! to do for it (a contact changed in GHL, a deleted contact to recreate).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::pair::PairDaemon;
use super::wake::{PairInboxes, in_state};
use crate::webhooks::ghl::{self, GhlEvent};
use crate::webhooks::{GhlAccepted, GhlInbox, InboxError};

impl GhlInbox for PairInboxes {
    fn apply(&self, event: &GhlEvent, at: DateTime<Utc>) -> Result<GhlAccepted, InboxError> {
        let pairs: Vec<Arc<PairDaemon>> = self
            .current()
            .into_iter()
            .filter(|p| p.config().ghl.location_id == event.location_id)
            .collect();
        if pairs.is_empty() {
            return Ok(GhlAccepted::NoPair);
        }
        let mut effects = Vec::with_capacity(pairs.len());
        for pair in &pairs {
            let location = pair.config().ghl.location_id.as_str();
            let effect = in_state(pair, |s| ghl::apply::apply(s, location, event, at))?;
            if effect.wakes(pair.config().contacts.on_target_delete)
                && let Some(wake) = pair.wake()
            {
                wake.wake_whole();
            }
            effects.push((pair.name().to_string(), effect));
        }
        Ok(GhlAccepted::Applied(effects))
    }
}
