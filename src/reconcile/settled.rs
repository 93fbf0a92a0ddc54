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

use super::plan::{BaseLink, ContactsInput, LinkStatus, Outcome, Plan, SourceEntry, TargetEntry};
use crate::mapping::{MappedSnapshot, MappingConfig, group_sources, map_group, raw_hash};
use crate::model::{Digest, SourceContact, tags_digest};

/// The mark of a settled record: what its last empty plan read.
pub fn mark(raw: &Digest, base: &BaseLink, target: &TargetEntry) -> Digest {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"hgs.settled\0");
    for d in [
        raw,
        &base.source_hash,
        &base.target_hash,
        &target.projection.hash,
        &tags_digest(&target.projection.tags),
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
    marks: &HashMap<String, Digest>,
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

/// Summarises the candidates whose mark still matches as unchanged and maps the rest into
/// `input`. Returns how many records were mapped in all.
pub fn settle(
    input: &mut ContactsInput,
    candidates: Vec<Candidate<'_>>,
    marks: &HashMap<String, Digest>,
    cfg: &MappingConfig,
    mapped_before: usize,
) -> usize {
    let mut late = MappedSnapshot::default();
    for c in candidates {
        let lead = &c.members[0].source_id;
        let settled = input.base.get(lead).is_some_and(|b| {
            b.status == LinkStatus::Active
                && input.target.get(&b.target_id).is_some_and(|t| {
                    t.projection.hash == b.target_hash
                        && marks.get(lead) == Some(&mark(&c.raw, b, t))
                })
        });
        if settled {
            let merged = c.members[1..]
                .iter()
                .map(|r| r.source_id.clone())
                .filter(|id| id != lead)
                .collect();
            input.unchanged.insert(lead.clone(), merged);
        } else {
            map_group(&c.members, cfg, c.raw, &mut late);
        }
    }
    let mapped = mapped_before + late.contacts.len() + late.skipped.len();
    for m in late.contacts {
        input
            .source
            .insert(m.source_id.clone(), SourceEntry::from(m));
    }
    input.skipped.extend(late.skipped);
    mapped
}

/// The marks to record after a pass: every mapped record whose plan was `Unchanged` with no
/// action and no failure, whose mark is not stored yet.
pub fn new_marks(
    plan: &Plan,
    failed: &dyn Fn(&str) -> bool,
    input: &ContactsInput,
    raw: &HashMap<String, Digest>,
    marks: &HashMap<String, Digest>,
) -> Vec<(String, Digest)> {
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
            let m = mark(raw.get(sid)?, b, t);
            (marks.get(sid) != Some(&m)).then(|| (sid.clone(), m))
        })
        .collect()
}
