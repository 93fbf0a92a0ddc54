//! An agency at scale: `pairs` GHL sub-accounts, each fed by its own `locations_per_pair`
//! HotspotSystem locations of `guests_per_location` guests, one `[[pairs]]` each (pair `i`
//! reads locations `i*k .. i*k+k-1` into sub-account `i`, with its own token variable), and a
//! census of where every guest ended up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use hotspot_ghl_sync::sandbox::ghl::GhlOptions;
use hotspot_ghl_sync::sandbox::hotspot::HotspotRequest;
use hotspot_ghl_sync::sandbox::seed::{SeedSpec, Spread};
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};

use super::{ANCHOR, BIN, Out, TempDir};

/// The shape of the agency.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub pairs: usize,
    pub locations_per_pair: usize,
    pub guests_per_location: usize,
}

pub struct AgencyScale {
    pub sandbox: Sandbox,
    pub dir: TempDir,
    pub config: PathBuf,
    pub pairs: Vec<PairSpec>,
}

/// One pair as written in the config, and what it should end up holding.
pub struct PairSpec {
    pub name: String,
    pub hotspot_locations: Vec<String>,
    pub ghl_location: String,
    /// The environment variable its token is read from, and the token given at the start
    /// (kept after a revocation: revoking is GHL's decision, not a missing variable).
    pub token_env: String,
    pub token: String,
}

/// What one sub-account holds, compared with what its pair should have put there.
#[derive(Debug, Default)]
pub struct Census {
    /// Contacts carrying a HotspotSystem id.
    pub contacts: usize,
    /// Eligible guests of the pair's locations with no contact.
    pub missing: BTreeSet<String>,
    /// HotspotSystem ids with more than one contact.
    pub duplicate_ids: BTreeSet<String>,
    /// Emails (lower-cased) on more than one contact.
    pub duplicate_emails: BTreeSet<String>,
    /// Contacts of guests of another pair's locations (or of no location).
    pub foreign: BTreeSet<String>,
}

impl Census {
    /// Every guest once, none from elsewhere.
    pub fn exact(&self) -> bool {
        self.missing.is_empty()
            && self.duplicate_ids.is_empty()
            && self.duplicate_emails.is_empty()
            && self.foreign.is_empty()
    }
}

impl AgencyScale {
    /// Starts the emulators (GHL limits raised: the limit is not what this measures) and
    /// writes the config.
    pub async fn start(name: &str, shape: Shape) -> AgencyScale {
        let mut ghl = GhlOptions::default().with_locations(shape.pairs);
        ghl.rate_limit = 100_000;
        let hotspot_locations = shape.pairs * shape.locations_per_pair;
        let sandbox = Sandbox::start(SandboxOptions {
            seed: SeedSpec {
                seed: 16,
                locations: hotspot_locations,
                customers: hotspot_locations * shape.guests_per_location,
                subscribers: 0,
                subscribers_also_customers: 0,
                transactions: 0,
            },
            spread: Spread::Even,
            ghl,
            ..SandboxOptions::default()
        })
        .await
        .expect("sandbox starts");
        let hs: Vec<String> = sandbox
            .hotspot
            .with_data(|d| d.locations.iter().map(|l| l.id.clone()).collect());
        let pairs = sandbox
            .ghl
            .location_ids()
            .into_iter()
            .enumerate()
            .map(|(i, ghl_location)| PairSpec {
                name: format!("p{i:02}"),
                hotspot_locations: hs
                    [i * shape.locations_per_pair..(i + 1) * shape.locations_per_pair]
                    .to_vec(),
                token_env: format!("HGS_TEST_GHL_TOKEN_P{i:02}"),
                token: sandbox
                    .ghl
                    .token_for(&ghl_location)
                    .expect("every sub-account has a PIT"),
                ghl_location,
            })
            .collect();
        let dir = TempDir::new(name);
        let config = dir.path("config.toml");
        let agency = AgencyScale {
            sandbox,
            dir,
            config,
            pairs,
        };
        agency.write_config();
        agency
    }

    fn write_config(&self) {
        let mut text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_TEST_HS_KEY"
rate_limit = 100000

[ghl]
base_url = "{ghl}"
hotspot_id_field = "{ANCHOR}"
rate_limit = 50000
max_concurrency = 8

[http]
timeout_secs = 5
max_attempts = 2
max_elapsed_secs = 10
"#,
            state = self.dir.path("state/sync.db").display(),
            hs = self.sandbox.hotspot.base_url(),
            ghl = self.sandbox.ghl.base_url(),
        );
        for p in &self.pairs {
            let locations: Vec<String> = p
                .hotspot_locations
                .iter()
                .map(|l| format!("\"{l}\""))
                .collect();
            text.push_str(&format!(
                "\n[[pairs]]\nname = \"{}\"\nhotspot_locations = [{}]\n[pairs.ghl]\nlocation_id = \"{}\"\ntoken_env = \"{}\"\n",
                p.name,
                locations.join(", "),
                p.ghl_location,
                p.token_env,
            ));
        }
        std::fs::write(&self.config, text).unwrap();
    }

    /// Runs the binary with every pair's token in its environment.
    pub async fn run(&self, args: &[&str]) -> Out {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("HGS_TEST_HS_KEY", self.sandbox.hotspot_api_key())
            .env_remove("RUST_LOG")
            .env_remove("HGS_CONFIG");
        for p in &self.pairs {
            cmd.env(&p.token_env, &p.token);
        }
        Out::from_output(cmd.output().await.expect("binary runs"))
    }

    /// Guests of `locations` that can be synced (an email or a phone), by HotspotSystem id.
    pub fn eligible_at(&self, locations: &[String]) -> BTreeSet<String> {
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        self.sandbox.hotspot.with_data(|d| {
            d.customers
                .iter()
                .filter(|c| locations.contains(&c.location_id))
                .filter(|c| has(&c.email) || has(&c.phone))
                .map(|c| c.id.clone())
                .collect()
        })
    }

    /// Where pair `i`'s sub-account stands against its own guests.
    pub fn census(&self, i: usize) -> Census {
        let pair = &self.pairs[i];
        let own = self.eligible_at(&pair.hotspot_locations);
        let (anchors, emails) = self
            .sandbox
            .ghl
            .location(&pair.ghl_location)
            .with_state(|s| {
                let field = s.custom_field(ANCHOR).map(|f| f.id.clone());
                let mut anchors = Vec::new();
                let mut emails = Vec::new();
                for c in s.contacts.values() {
                    let anchor = field.as_ref().and_then(|f| {
                        c.custom_fields
                            .iter()
                            .find(|(id, _)| id == f)
                            .and_then(|(_, v)| v.as_str().map(str::to_string))
                    });
                    anchors.push(anchor.unwrap_or_default());
                    if let Some(e) = &c.email {
                        emails.push(e.trim().to_lowercase());
                    }
                }
                (anchors, emails)
            });
        let twice = |v: &[String]| -> BTreeSet<String> {
            let mut n: BTreeMap<&String, usize> = BTreeMap::new();
            for x in v {
                *n.entry(x).or_default() += 1;
            }
            n.into_iter()
                .filter(|(_, k)| *k > 1)
                .map(|(x, _)| x.clone())
                .collect()
        };
        let held: BTreeSet<String> = anchors.iter().cloned().collect();
        Census {
            contacts: anchors.len(),
            missing: own.difference(&held).cloned().collect(),
            duplicate_ids: twice(&anchors),
            duplicate_emails: twice(&emails),
            foreign: held.difference(&own).cloned().collect(),
        }
    }

    /// HotspotSystem requests of each location's own routes, by location id.
    pub fn hotspot_reads(&self) -> BTreeMap<String, Vec<HotspotRequest>> {
        let mut out: BTreeMap<String, Vec<HotspotRequest>> = BTreeMap::new();
        for r in self.sandbox.hotspot.requests() {
            let mut seg = r.path.split('/').skip_while(|s| *s != "locations").skip(1);
            if let (Some(loc), Some(_listing)) = (seg.next(), seg.next()) {
                out.entry(loc.to_string()).or_default().push(r);
            }
        }
        out
    }
}
