//! Settled records: the HotspotSystem records a pass need not map at all.
//!
//! A record is settled when the last pass planned nothing for it (an `Unchanged` item, no
//! action) and none of what that plan read has moved since. Its link then keeps a mark: a
//! digest of the record's raw hash (its unnormalised members plus the mapping configuration's
//! fingerprint), the base's two hashes, the GHL contact's field hash and tags, and the owned
//! tags. When this run computes the same mark, planning the record again would read the same
//! source projection (the mapping is a function of the raw records and the configuration),
//! the same GHL fields and tags, and the same base, so it would again give `Unchanged` with no
//! action: in particular the tag plan (desired vs current vs owned) is again empty. Such a
//! record is handed to the planner as a summary in `ContactsInput::unchanged` and is neither
//! normalised nor hashed beyond its raw hash. Parked records and records with a value that
//! could not be read are always mapped: their plans depend on more than the mark covers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::plan::{
    BaseLink, ContactsInput, LinkStatus, Outcome, Plan, SourceEntry, TargetCoverage,
};
use crate::mapping::{MappedSnapshot, MappingConfig, group_sources, map_group, raw_hash};
use crate::model::{Digest, SourceContact, tags_digest};

/// What a settled link keeps: the mark, and the digest of the GHL contact's tags the mark
/// covers, so that the mark can be checked against a contact an incremental listing did not
/// return (unchanged since it was last read, so its tags are the ones recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub mark: Digest,
    pub target_tags: Digest,
}

/// The mark of a settled record: what its last empty plan read.
pub fn mark(raw: &Digest, base: &BaseLink, target_hash: &Digest, target_tags: &Digest) -> Digest {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"hgs.settled\0");
    for d in [
        raw,
        &base.source_hash,
        &base.target_hash,
        target_hash,
        target_tags,
        &tags_digest(&base.owned_tags),
    ] {
        buf.extend_from_slice(&d.0);
    }
    buf.extend_from_slice(base.target_id.as_bytes());
    Digest::of(&buf)
}

/// A merge group whose link carries a mark: mapped only if the mark no longer matches.
pub struct Candidate<'r> {
    members: Vec<&'r SourceContact>,
    raw: Digest,
}

/// This run's source listing, split into the mapped records and the candidates.
pub struct Split<'r> {
    pub mapped: MappedSnapshot,
    pub candidates: Vec<Candidate<'r>>,
    /// Raw hash of every record mapped or summarised, by the id its link is keyed by.
    pub raw: HashMap<String, Digest>,
    /// Records in the listing (merge groups).
    pub groups: usize,
}

/// Groups and raw-hashes every record; maps at once those whose link has no mark, is parked
/// or carries an unreadable value; keeps the others as candidates for [`settle`].
pub fn split<'r>(
    records: &'r [SourceContact],
    cfg: &MappingConfig,
    marks: &HashMap<String, Settled>,
    parked: &BTreeMap<String, super::plan::ParkedMark>,
    unreadable: &BTreeMap<String, BTreeSet<String>>,
) -> Split<'r> {
    let fp = cfg.fingerprint();
    let groups = group_sources(records);
    let mut out = Split {
        mapped: MappedSnapshot::default(),
        candidates: Vec::new(),
        raw: HashMap::with_capacity(groups.len()),
        groups: groups.len(),
    };
    for g in groups {
        let raw = raw_hash(&g, &fp);
        let lead = g[0].source_id.as_str();
        out.raw.insert(lead.to_owned(), raw);
        let may_settle = marks.contains_key(lead)
            && !parked.contains_key(lead)
            && !g.iter().any(|r| unreadable.contains_key(&r.source_id));
        if may_settle {
            out.candidates.push(Candidate { members: g, raw });
        } else {
            map_group(&g, cfg, raw, &mut out.mapped);
        }
    }
    out
}

/// First half of settling, before GHL is read: a candidate whose mark no longer matches its
/// own raw hash and base (the record or its link moved) is mapped into `input` now, so that the
/// GHL read sees it as changed; the others are provisionally summarised in `input.unchanged`
/// and returned for [`settle`]. Returns how many records were mapped.
pub fn presettle<'r>(
    input: &mut ContactsInput,
    candidates: Vec<Candidate<'r>>,
    marks: &HashMap<String, Settled>,
    cfg: &MappingConfig,
) -> (Vec<Candidate<'r>>, usize) {
    let mut kept = Vec::new();
    let mut late = MappedSnapshot::default();
    for c in candidates {
        let lead = &c.members[0].source_id;
        let holds = match (input.base.get(lead), marks.get(lead)) {
            (Some(b), Some(m)) => {
                b.status == LinkStatus::Active
                    && m.mark == mark(&c.raw, b, &b.target_hash, &m.target_tags)
            }
            _ => false,
        };
        if holds {
            input.unchanged.insert(lead.clone(), merged_ids(&c));
            kept.push(c);
        } else {
            map_group(&c.members, cfg, c.raw, &mut late);
        }
    }
    (kept, absorb(input, late))
}

/// Second half, once the GHL side is in `input`: a provisional summary stays one when its
/// contact was listed with the hash and tags the mark recorded, or was left out of an
/// incremental listing (unchanged since it was last read); any other is mapped. Returns how
/// many records were mapped.
pub fn settle(
    input: &mut ContactsInput,
    kept: Vec<Candidate<'_>>,
    marks: &HashMap<String, Settled>,
    cfg: &MappingConfig,
) -> usize {
    let mut late = MappedSnapshot::default();
    for c in kept {
        let lead = &c.members[0].source_id;
        let settled = match (input.base.get(lead), marks.get(lead)) {
            (Some(b), Some(m)) => match input.target.get(&b.target_id) {
                Some(t) => {
                    t.projection.hash == b.target_hash
                        && tags_digest(&t.projection.tags) == m.target_tags
                }
                None => {
                    input.target_coverage == TargetCoverage::Incremental
                        && !input.target_deleted.contains(&b.target_id)
                }
            },
            _ => false,
        };
        if !settled {
            input.unchanged.remove(lead);
            map_group(&c.members, cfg, c.raw, &mut late);
        }
    }
    absorb(input, late)
}

fn merged_ids(c: &Candidate<'_>) -> Vec<String> {
    let lead = &c.members[0].source_id;
    c.members[1..]
        .iter()
        .map(|r| r.source_id.clone())
        .filter(|id| id != lead)
        .collect()
}

/// Moves records mapped late into the planner input; returns how many.
fn absorb(input: &mut ContactsInput, late: MappedSnapshot) -> usize {
    let n = late.contacts.len() + late.skipped.len();
    for m in late.contacts {
        input
            .source
            .insert(m.source_id.clone(), SourceEntry::from(m));
    }
    input.skipped.extend(late.skipped);
    n
}

/// The marks to record after a pass: every mapped record whose plan was `Unchanged` with no
/// action and no failure, whose mark is not stored yet.
pub fn new_marks(
    plan: &Plan,
    failed: &dyn Fn(&str) -> bool,
    input: &ContactsInput,
    raw: &HashMap<String, Digest>,
    marks: &HashMap<String, Settled>,
) -> Vec<(String, Settled)> {
    let acted: HashSet<&str> = plan.actions.iter().map(|a| a.source_id()).collect();
    plan.items
        .iter()
        .filter(|it| it.outcome == Outcome::Unchanged)
        .filter(|it| input.source.contains_key(&it.source_id))
        .filter(|it| !acted.contains(it.source_id.as_str()) && !failed(&it.source_id))
        .filter_map(|it| {
            let sid = &it.source_id;
            let b = input.base.get(sid)?;
            let t = input.target.get(&b.target_id)?;
            let target_tags = tags_digest(&t.projection.tags);
            let m = Settled {
                mark: mark(raw.get(sid)?, b, &t.projection.hash, &target_tags),
                target_tags,
            };
            (marks.get(sid) != Some(&m)).then(|| (sid.clone(), m))
        })
        .collect()
}
