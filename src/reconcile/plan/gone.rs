//! Deletions on either side (GHL contact gone, HotspotSystem record gone) and their guards.

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn target_guard(&mut self) {
        let input = self.input;
        // Only a listing of every contact tells a deletion by an absence; an incremental one
        // lacks every contact not updated since its bound, so no guard weighs its absences.
        if input.target_coverage != TargetCoverage::Full {
            self.infer_target_gone = false;
            return;
        }
        let active: Vec<&BaseLink> = input
            .base
            .values()
            .filter(|b| b.status == LinkStatus::Active)
            .collect();
        let missing = active
            .iter()
            .filter(|b| {
                !input.target.contains_key(&b.target_id)
                    && !input.target_deleted.contains(&b.target_id)
            })
            .count();
        let linked = active.len();
        if missing > 0 && input.target.is_empty() {
            self.plan.guards.push(GuardNote {
                kind: GuardKind::TargetMassMissing,
                affected: missing,
                linked,
                message: "GHL listed no contacts while links exist: no deletion inferred".into(),
            });
        } else if missing as f64 > self.policy.max_delete_ratio * linked as f64 {
            self.plan.guards.push(GuardNote {
                kind: GuardKind::TargetMassMissing,
                affected: missing,
                linked,
                message: format!(
                    "{missing} of {linked} linked GHL contacts missing from the listing, above \
                     max_delete_ratio {}: no deletion inferred",
                    self.policy.max_delete_ratio
                ),
            });
        } else {
            self.infer_target_gone = true;
        }
    }

    /// Links (and parks) whose source record is no longer listed.
    pub(super) fn plan_gone(&mut self, joined: &[Joined<'a>], skipped: &HashSet<&str>) {
        let input = self.input;
        let policy = self.policy;
        // Compared with GHL's tags, which are lower-cased like every tag the sync writes.
        let deleted_tag =
            crate::model::norm_tag(&policy.deleted_tag).unwrap_or_else(|| "hs-deleted".to_owned());
        let mut gone: Vec<(&'a String, &'a BaseLink)> = Vec::new();
        for &(sid, s, b) in joined {
            let Some(b) = b else { continue };
            if s.is_some()
                || input.unchanged.contains_key(sid)
                || (!skipped.is_empty() && skipped.contains(sid.as_str()))
            {
                continue;
            }
            if self.merged_into.contains(sid.as_str()) {
                // A released link is forgotten by the record taking it over, once it does.
                let target_suspect = self
                    .plan
                    .guards
                    .iter()
                    .any(|g| g.kind == GuardKind::TargetMassMissing);
                let reason = if self.released.contains(sid.as_str()) {
                    "merged into another record with the same email; its link moves there"
                } else if target_suspect {
                    "merged into another record; link kept while the GHL listing is suspect"
                } else {
                    self.push(Action::ForgetLink {
                        source_id: sid.clone(),
                        target_id: b.target_id.clone(),
                    });
                    self.claimed().remove(b.target_id.as_str());
                    "merged into another record with the same email; link released"
                };
                self.plan.items.push(PlanItem::new(
                    sid,
                    Some(&b.target_id),
                    Outcome::Merged,
                    reason,
                ));
                continue;
            }
            gone.push((sid, b));
        }
        // Parks of records no longer listed.
        for sid in input.parked.keys() {
            if !input.source.contains_key(sid)
                && !input.unchanged.contains_key(sid)
                && !skipped.contains(sid.as_str())
                && input.source_complete
            {
                self.push(Action::Unpark {
                    source_id: sid.clone(),
                });
            }
        }
        if gone.is_empty() {
            return;
        }
        if !input.source_complete {
            self.plan.guards.push(GuardNote {
                kind: GuardKind::SourceIncomplete,
                affected: gone.len(),
                linked: input.base.len(),
                message: "HotspotSystem listing incomplete: no deletion inferred".into(),
            });
            for (sid, b) in gone {
                self.plan.items.push(PlanItem::new(
                    sid,
                    Some(&b.target_id),
                    Outcome::Deferred(DeferReason::SourceIncomplete),
                    "not listed, but the HotspotSystem listing is incomplete: nothing inferred",
                ));
            }
            return;
        }
        let linked = input
            .base
            .values()
            .filter(|b| b.status == LinkStatus::Active)
            .count();
        // Decide per link what a source deletion would do, before the guard.
        enum Would {
            Forget,
            Ignore,
            AlreadyTagged,
            Unlisted,
            Tag,
            Delete,
        }
        let decided: Vec<(&String, &BaseLink, Would)> = gone
            .into_iter()
            .map(|(sid, b)| {
                let would = if b.status == LinkStatus::Tombstoned || self.target_gone(&b.target_id)
                {
                    Would::Forget
                } else {
                    match policy.on_source_delete {
                        SourceDeletePolicy::Ignore => Would::Ignore,
                        SourceDeletePolicy::Tag => match input.target.get(&b.target_id) {
                            None => Would::Unlisted,
                            Some(t) if t.projection.tags.contains(&deleted_tag) => {
                                Would::AlreadyTagged
                            }
                            Some(_) => Would::Tag,
                        },
                        SourceDeletePolicy::Delete => Would::Delete,
                    }
                };
                (sid, b, would)
            })
            .collect();
        let deleting = decided
            .iter()
            .filter(|(_, _, w)| matches!(w, Would::Tag | Would::Delete))
            .count();
        let target_suspect = self
            .plan
            .guards
            .iter()
            .any(|g| g.kind == GuardKind::TargetMassMissing);
        let withheld = if deleting == 0 {
            None
        } else if target_suspect {
            Some((
                GuardKind::TargetMassMissing,
                "the GHL listing is missing many linked contacts: deletions withheld".to_owned(),
            ))
        } else if input.source.is_empty()
            && input.unchanged.is_empty()
            && input.skipped.is_empty()
            && input.kept_out.is_empty()
        {
            Some((
                GuardKind::SourceEmpty,
                "HotspotSystem listed no records while links exist: deletions withheld".to_owned(),
            ))
        } else if deleting as f64 > policy.max_delete_ratio * linked as f64 {
            Some((
                GuardKind::DeleteRatio,
                format!(
                    "{deleting} of {linked} linked records would be deleted, above \
                     max_delete_ratio {}: deletions withheld",
                    policy.max_delete_ratio
                ),
            ))
        } else {
            None
        };
        if let Some((kind, message)) = &withheld {
            self.plan.guards.push(GuardNote {
                kind: *kind,
                affected: deleting,
                linked,
                message: message.clone(),
            });
        }
        for (sid, b, would) in decided {
            let tid = Some(b.target_id.as_str());
            let item = match would {
                Would::Forget => {
                    self.push(Action::ForgetLink {
                        source_id: sid.clone(),
                        target_id: b.target_id.clone(),
                    });
                    PlanItem::new(
                        sid,
                        tid,
                        Outcome::Forgotten,
                        "deleted on both sides: base cleared",
                    )
                }
                Would::Ignore => PlanItem::new(
                    sid,
                    tid,
                    Outcome::SourceDeleteIgnored,
                    "deleted in HotspotSystem; GHL contact kept (on_source_delete = ignore)",
                ),
                Would::AlreadyTagged => PlanItem::new(
                    sid,
                    tid,
                    Outcome::SourceDeleteTagged,
                    "deleted in HotspotSystem; GHL contact already tagged",
                ),
                Would::Unlisted => PlanItem::new(
                    sid,
                    tid,
                    Outcome::Deferred(DeferReason::SourceGoneTargetNotListed),
                    "deleted in HotspotSystem; GHL contact not in this run's listing: tag deferred",
                ),
                _ if withheld.is_some() => PlanItem::new(
                    sid,
                    tid,
                    Outcome::SourceDeleteWithheld,
                    withheld
                        .as_ref()
                        .map(|(_, m)| m.clone())
                        .unwrap_or_default(),
                ),
                Would::Tag => {
                    self.push(Action::TagDeleted {
                        source_id: sid.clone(),
                        target_id: b.target_id.clone(),
                        tag: deleted_tag.clone(),
                    });
                    PlanItem::new(
                        sid,
                        tid,
                        Outcome::SourceDeleteTagged,
                        "deleted in HotspotSystem; GHL contact tagged (on_source_delete = tag)",
                    )
                }
                Would::Delete => {
                    self.doomed.insert(b.target_id.as_str());
                    self.push(Action::DeleteContact {
                        source_id: sid.clone(),
                        target_id: b.target_id.clone(),
                    });
                    PlanItem::new(
                        sid,
                        tid,
                        Outcome::SourceDeleted,
                        "deleted in HotspotSystem; GHL contact deleted (on_source_delete = delete)",
                    )
                }
            };
            self.plan.items.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    // --- source deleted --------------------------------------------------------------------

    #[test]
    fn source_deletion_ignore_tag_delete() {
        let w = deletion_world(20, 1);
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty());
        assert_eq!(item(&p, "c0").outcome, Outcome::SourceDeleteIgnored);

        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Tag;
        let p = plan_contacts(&w, &pol);
        assert_eq!(
            p.actions,
            vec![Action::TagDeleted {
                source_id: "c0".into(),
                target_id: "g0".into(),
                tag: "hs-deleted".into()
            }]
        );
        settles(&w, &pol);

        pol.on_source_delete = SourceDeletePolicy::Delete;
        let p = plan_contacts(&w, &pol);
        assert_eq!(
            p.actions,
            vec![Action::DeleteContact {
                source_id: "c0".into(),
                target_id: "g0".into()
            }]
        );
        assert_eq!(item(&p, "c0").outcome, Outcome::SourceDeleted);
        assert_eq!(p.outcome_counts()[&Outcome::Unchanged], 19);
        settles(&w, &pol);
    }

    #[test]
    fn mass_source_deletion_is_withheld() {
        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Delete;
        let w = deletion_world(20, 3); // 15% > 10%
        let p = plan_contacts(&w, &pol);
        assert!(p.actions.is_empty());
        assert_eq!(p.guards[0].kind, GuardKind::DeleteRatio);
        assert_eq!(item(&p, "c1").outcome, Outcome::SourceDeleteWithheld);
        assert!(item(&p, "c1").reason.contains("max_delete_ratio"));

        pol.max_delete_ratio = 1.0;
        let w = deletion_world(5, 5);
        let p = plan_contacts(&w, &pol);
        assert!(p.actions.is_empty());
        assert_eq!(p.guards[0].kind, GuardKind::SourceEmpty);
    }

    #[test]
    fn incomplete_source_listing_never_infers_deletion() {
        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Delete;
        let mut w = deletion_world(20, 1);
        w.source_complete = false;
        let p = plan_contacts(&w, &pol);
        assert!(p.actions.is_empty());
        assert!(matches!(item(&p, "c0").outcome, Outcome::Deferred(_)));
        assert_eq!(p.guards[0].kind, GuardKind::SourceIncomplete);
    }

    #[test]
    fn deleted_on_both_sides_forgets_the_link() {
        let mut w = deletion_world(20, 1);
        w.target.remove("g0");
        let p = plan_contacts(&w, &policy());
        assert!(
            matches!(&p.actions[..], [Action::ForgetLink { source_id, .. }] if source_id == "c0")
        );
        settles(&w, &policy());
    }

    // --- target deleted --------------------------------------------------------------------

    #[test]
    fn target_deletion_is_respected_or_recreated() {
        let mut w = deletion_world(20, 0);
        w.target.remove("g0");
        let p = plan_contacts(&w, &policy());
        assert_eq!(
            p.actions,
            vec![Action::Tombstone {
                source_id: "c0".into(),
                target_id: "g0".into()
            }]
        );
        let next = settles(&w, &policy());
        assert_eq!(next.base["c0"].status, LinkStatus::Tombstoned);

        let mut pol = policy();
        pol.on_target_delete = TargetDeletePolicy::Recreate;
        let p = plan_contacts(&w, &pol);
        assert!(
            matches!(&p.actions[..], [Action::CreateContact { source_id, .. }] if source_id == "c0")
        );
        assert_eq!(item(&p, "c0").outcome, Outcome::Recreate);
        settles(&w, &pol);
    }

    #[test]
    fn target_missing_from_incomplete_or_empty_listing_is_not_deleted() {
        let mut w = deletion_world(20, 0);
        w.target.remove("g0");
        w.target_coverage = TargetCoverage::Incomplete;
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty());
        assert!(matches!(item(&p, "c0").outcome, Outcome::Deferred(_)));

        let mut w = deletion_world(5, 0);
        w.target.clear();
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty());
        assert_eq!(p.guards[0].kind, GuardKind::TargetMassMissing);

        // A known deletion (GET said "Contact not found") needs no listing.
        let mut w = deletion_world(20, 0);
        w.target.remove("g0");
        w.target_coverage = TargetCoverage::Incomplete;
        w.target_deleted.insert("g0".into());
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[..], [Action::Tombstone { .. }]));
    }

    #[test]
    fn an_incremental_listing_takes_absent_contacts_as_unchanged_and_infers_no_deletion() {
        // Most linked contacts absent: not updated since the bound, not deleted.
        let mut w = deletion_world(20, 0);
        for i in 0..15 {
            w.target.remove(&format!("g{i}"));
        }
        w.target_coverage = TargetCoverage::Incremental;
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert!(p.guards.is_empty(), "no guard weighs the absences");
        assert_eq!(item(&p, "c0").outcome, Outcome::Unchanged);
        // A changed source whose contact was not fetched is never planned blind.
        w.source.insert("c1".into(), w.source["c19"].clone());
        let p = plan_contacts(&w, &policy());
        assert!(matches!(
            item(&p, "c1").outcome,
            Outcome::Deferred(DeferReason::TargetNotListed)
        ));
    }

    #[test]
    fn deleted_tag_is_compared_lower_cased() {
        let mut pol = policy();
        pol.on_source_delete = SourceDeletePolicy::Tag;
        pol.deleted_tag = " HS-Deleted ".into();
        let w = deletion_world(20, 1);
        let p = plan_contacts(&w, &pol);
        assert!(matches!(&p.actions[..], [Action::TagDeleted { tag, .. }] if tag == "hs-deleted"));
        settles(&w, &pol);
    }
}
