//! What every kind's step of a pass shares: the configuration, both clients, the state, the
//! options, the pass's stop flag, and the listings of both sides, read once and kept for the
//! kinds after the one that read them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use chrono::Utc;

use super::dry_run::DryRunState;
use super::filter::{KeptOut, Selection};
use super::scope::SourceScope;
use super::snapshot::{
    CustomFields, Location, SourceListing, TargetStamps, read_source, read_target,
};
use super::transactions::{ContactIndex, GuestKeys};
use crate::config::Config;
use crate::ghl::GhlClient;
use crate::hotspot::HotspotClient;
use crate::http::HttpError;
use crate::model::Kind;
use crate::store::Store;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct PassOptions {
    pub kinds: BTreeSet<Kind>,
    pub dry_run: bool,
    pub full: bool,
    /// `sync --limit N`: at most N guests (see `reconcile::filter`).
    pub limit: Option<usize>,
    /// Bars for a person at a terminal; `None` draws nothing (daemon, cron, pipes, tests).
    pub progress: Option<crate::progress::Progress>,
    /// Which HotspotSystem records the pass covers: all, or a subset (the fast lane's new
    /// records, the records webhooks named), which never infers a deletion and leaves every
    /// other guest as it is.
    pub scope: SourceScope,
}

impl PassOptions {
    /// A pass over the records of `scope` only: their contacts, notes and onboarding tasks.
    pub fn scoped(scope: SourceScope) -> PassOptions {
        PassOptions {
            kinds: [Kind::Contact, Kind::Note, Kind::Task].into(),
            dry_run: false,
            full: false,
            limit: None,
            progress: None,
            scope,
        }
    }
}

pub(crate) fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    // A panic while holding the lock leaves a consistent SQLite connection (every change is
    // its own transaction), so a poisoned lock is safe to take over.
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the steps after contacts keep of the HotspotSystem listing: the locations, what each
/// synced guest's transactions are matched by, and the guests kept out of this pass. The
/// records themselves are dropped with the contacts step.
#[derive(Debug, Default)]
pub struct SourceSummary {
    pub locations: Vec<Location>,
    pub guests: Vec<GuestKeys>,
    pub kept_out: KeptOut,
}

impl From<&SourceListing> for SourceSummary {
    fn from(s: &SourceListing) -> Self {
        SourceSummary {
            locations: s.locations.clone(),
            guests: s.records.iter().map(GuestKeys::from).collect(),
            kept_out: s.kept_out.clone(),
        }
    }
}

/// What the steps of a pass share: clients, state, options, and the listings of both sides
/// (taken from the contacts step when it ran, read on first use otherwise).
pub struct PassContext<'a> {
    pub cfg: &'a Config,
    pub store: &'a Mutex<Store>,
    pub hs: &'a HotspotClient,
    pub ghl: &'a GhlClient,
    pub opts: &'a PassOptions,
    pub run_id: i64,
    pub stop: &'a AtomicBool,
    /// Taken before either side is listed: a change GHL records after it is seen next run.
    pub started: chrono::DateTime<Utc>,
    /// What a dry run takes its planned writes to have done (empty in a real run).
    pub dry: DryRunState,
    source: tokio::sync::OnceCell<SourceSummary>,
    target: tokio::sync::OnceCell<TargetStamps>,
    index: tokio::sync::OnceCell<ContactIndex>,
}

impl<'a> PassContext<'a> {
    pub fn new(
        cfg: &'a Config,
        store: &'a Mutex<Store>,
        hs: &'a HotspotClient,
        ghl: &'a GhlClient,
        opts: &'a PassOptions,
        run_id: i64,
        stop: &'a AtomicBool,
    ) -> Self {
        PassContext {
            cfg,
            store,
            hs,
            ghl,
            opts,
            run_id,
            stop,
            started: Utc::now(),
            dry: DryRunState::default(),
            source: tokio::sync::OnceCell::new(),
            target: tokio::sync::OnceCell::new(),
            index: tokio::sync::OnceCell::new(),
        }
    }

    /// Keeps what the kinds after contacts need of the listings the contacts step read.
    pub fn keep_listings(&self, source: &SourceListing, target: TargetStamps) {
        let _ = self.source.set(SourceSummary::from(source));
        let _ = self.target.set(target);
    }

    /// Reads this run's HotspotSystem listing and sets the guests the operator kept out
    /// (`[filter]`, `--limit`) apart: the one place pilot mode narrows a pass.
    pub async fn read_source(&self) -> Result<SourceListing, HttpError> {
        let mut listing = match self.opts.scope.scoped() {
            // Read before the pass started: the records in scope, never a complete listing.
            Some(scoped) => scoped.listing(self.hs.decode_log()),
            None => {
                read_source(
                    self.hs,
                    &self.cfg.hotspot.locations,
                    self.cfg.contacts.sync_subscribers,
                )
                .await?
            }
        };
        let (kept, kept_out) = self.selection().split(std::mem::take(&mut listing.records));
        listing.records = kept;
        listing.kept_out = kept_out;
        Ok(listing)
    }

    fn selection(&self) -> Selection<'_> {
        Selection {
            filter: &self.cfg.filter,
            limit: self.opts.limit,
        }
    }

    /// The locations and guests of this run's HotspotSystem listing.
    pub async fn source(&self) -> anyhow::Result<&SourceSummary> {
        self.source
            .get_or_try_init(|| async { Ok(SourceSummary::from(&self.read_source().await?)) })
            .await
    }

    /// The source ids of the listed guests kept out of this pass: their links, contacts and
    /// everything hanging off them are left as they are. Without a filter or a limit nothing
    /// is kept out, and nothing is read to tell it.
    pub async fn kept_out(&self) -> anyhow::Result<&BTreeSet<String>> {
        static NONE: BTreeSet<String> = BTreeSet::new();
        if self.selection().is_everything() {
            return Ok(&NONE);
        }
        Ok(&self.source().await?.kept_out.source_ids)
    }

    /// What the report says was kept out, once the listing was read.
    pub fn kept_out_read(&self) -> Option<&KeptOut> {
        self.source.get().map(|s| &s.kept_out)
    }

    /// The GHL contacts of this run: their ids and update times.
    pub async fn target(&self) -> anyhow::Result<&TargetStamps> {
        self.target
            .get_or_try_init(|| async {
                let listing = read_target(self.ghl, &CustomFields::default()).await?;
                Ok(TargetStamps::from(&listing))
            })
            .await
    }

    /// The locations to sync; only the location listing when the customers are not needed.
    pub async fn locations(&self) -> anyhow::Result<Vec<Location>> {
        if let Some(s) = self.source.get() {
            return Ok(s.locations.clone());
        }
        let mut out = Vec::new();
        for l in self.hs.locations().collect_all().await? {
            let Some(id) = l.id.filter(|s| !s.trim().is_empty()) else {
                continue;
            };
            if self.cfg.hotspot.locations.is_empty() || self.cfg.hotspot.locations.contains(&id) {
                let name = l.name.unwrap_or_else(|| id.clone());
                out.push(Location { id, name });
            }
        }
        Ok(out)
    }

    /// Guest → GHL contact, through the contact links of this state.
    pub async fn contact_index(&self) -> anyhow::Result<&ContactIndex> {
        self.index
            .get_or_try_init(|| async {
                let source = self.source().await?;
                let mut linked: HashMap<String, String> = HashMap::new();
                lock(self.store).each_link_head(Kind::Contact, &[], |l, _| {
                    if l.status == crate::store::LinkStatus::Active && !l.target_id.is_empty() {
                        linked.insert(l.source_id, l.target_id);
                    }
                    Ok(())
                })?;
                for (sid, planned) in self.dry.contacts() {
                    match planned {
                        Some(p) => linked.insert(sid.clone(), p.target_id.clone()),
                        None => linked.remove(sid),
                    };
                }
                let phone = self.cfg.mapping().phone;
                Ok(ContactIndex::build(&source.guests, &linked, phone)
                    .keeping_out(&source.kept_out.keys))
            })
            .await
    }
}
