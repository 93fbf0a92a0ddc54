//! In-process emulators of both APIs, used by `demo`, `sandbox` and the tests.
//!
//! [`Sandbox`] starts both on loopback with seeded data. It can also put contacts into the GHL
//! location before the first sync, the way a CRM that already knows some guests looks: same people,
//! written differently (upper-case email, national phone format), with the sales team's own tags.

pub mod faults;
pub mod ghl;
pub mod hotspot;
pub mod hotspot_webhooks;
pub mod seed;

use std::net::SocketAddr;

use chrono::Utc;

use self::ghl::{Contact, GhlEmulator, GhlOptions};
use self::hotspot::{HotspotEmulator, HotspotOptions};
use self::seed::{Customer, SeedSpec, Spread};

/// How to start a sandbox.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    pub seed: SeedSpec,
    /// How the seeded customers fall on the HotspotSystem locations.
    pub spread: Spread,
    pub hotspot: HotspotOptions,
    pub ghl: GhlOptions,
    /// Fixed addresses (the `sandbox` command); `None` picks free ports.
    pub hotspot_addr: Option<SocketAddr>,
    pub ghl_addr: Option<SocketAddr>,
}

/// Both emulators, running.
pub struct Sandbox {
    pub hotspot: HotspotEmulator,
    pub ghl: GhlEmulator,
    hotspot_key: String,
    ghl_token: String,
}

/// The tag the sales team put on pre-existing contacts in [`Sandbox::seed_existing_contacts`].
pub const CRM_OWN_TAG: &str = "vip-from-sales";

impl Sandbox {
    pub async fn start(opts: SandboxOptions) -> std::io::Result<Sandbox> {
        let data = seed::generate_spread(&opts.seed, opts.spread);
        let hotspot_key = opts.hotspot.api_key.clone();
        let ghl_token = opts
            .ghl
            .tokens
            .first()
            .map(|(t, _)| t.clone())
            .unwrap_or_default();
        let hotspot = match opts.hotspot_addr {
            Some(addr) => HotspotEmulator::start_on(addr, data, opts.hotspot).await?,
            None => HotspotEmulator::start(data, opts.hotspot).await?,
        };
        let ghl = match opts.ghl_addr {
            Some(addr) => GhlEmulator::start_on(addr, opts.ghl).await?,
            None => GhlEmulator::start(opts.ghl).await?,
        };
        Ok(Sandbox {
            hotspot,
            ghl,
            hotspot_key,
            ghl_token,
        })
    }

    /// The API key the HotspotSystem emulator accepts.
    pub fn hotspot_api_key(&self) -> &str {
        &self.hotspot_key
    }

    /// The Private Integration Token the GHL emulator accepts.
    pub fn ghl_token(&self) -> &str {
        &self.ghl_token
    }

    /// Creates GHL contacts for `n` customers that have an email or a phone, as a CRM user would
    /// have typed them: every other one matched by email written in upper case, the rest by phone
    /// in a national format with no email. Each carries [`CRM_OWN_TAG`], which the sync must keep.
    /// Returns `(customer id, GHL contact id)` pairs.
    pub fn seed_existing_contacts(&self, n: usize) -> Vec<(String, String)> {
        let customers: Vec<Customer> = self.hotspot.with_data(|d| d.customers.clone());
        let now = Utc::now();
        let mut out = Vec::new();
        self.ghl.with_state(|state| {
            let mut by_email = true;
            for c in customers.iter().skip(seed::hard_cases::HARD_CASE_COUNT) {
                if out.len() >= n {
                    break;
                }
                let email = c.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
                let phone = c.phone.as_deref().map(str::trim).filter(|p| !p.is_empty());
                let id = state.new_id();
                let mut contact = Contact::new(id, now);
                contact.first_name = c
                    .name
                    .as_deref()
                    .and_then(|n| n.split_whitespace().next())
                    .map(str::to_string);
                contact.tags = vec![CRM_OWN_TAG.to_string()];
                match (by_email, email, phone) {
                    (true, Some(e), _) => contact.email = Some(e.to_uppercase()),
                    (false, _, Some(p)) => contact.phone = ghl::normalize_phone(p),
                    (_, Some(e), _) => contact.email = Some(e.to_uppercase()),
                    _ => continue,
                }
                by_email = !by_email;
                let ghl_id = state.insert_contact(contact);
                out.push((c.id.clone(), ghl_id));
            }
        });
        out
    }
}
