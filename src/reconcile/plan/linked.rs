//! Records with a link: the three-way decision per field (merge, drift, conflict) and tags.

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn plan_present(
        &mut self,
        sid: &'a str,
        s: &'a SourceEntry,
        base: Option<&'a BaseLink>,
    ) {
        match base {
            None => self.new_records.push((sid, s, Outcome::Create)),
            Some(b) if b.status == LinkStatus::Tombstoned => match self.policy.on_target_delete {
                TargetDeletePolicy::Respect => {
                    self.unpark_if_parked(sid);
                    self.plan.items.push(PlanItem::new(
                        sid,
                        Some(&b.target_id),
                        Outcome::TargetDeleteRespected,
                        "GHL contact was deleted; not recreated (on_target_delete = respect)",
                    ))
                }
                TargetDeletePolicy::Recreate => self.new_records.push((sid, s, Outcome::Recreate)),
            },
            Some(b) => match self.input.target.get(&b.target_id) {
                Some(t) => self.plan_linked(sid, s, b, t),
                None if self.target_gone(&b.target_id) => match self.policy.on_target_delete {
                    TargetDeletePolicy::Respect => {
                        self.unpark_if_parked(sid);
                        self.push(Action::Tombstone {
                            source_id: sid.to_owned(),
                            target_id: b.target_id.clone(),
                        });
                        self.plan.items.push(PlanItem::new(
                            sid,
                            Some(&b.target_id),
                            Outcome::TargetDeleteRespected,
                            "GHL contact deleted: link tombstoned, not recreated",
                        ));
                    }
                    TargetDeletePolicy::Recreate => {
                        self.new_records.push((sid, s, Outcome::Recreate))
                    }
                },
                // Not updated in GHL since the incremental listing's bound, and nothing to
                // write from HotspotSystem: unchanged on both sides. (A record whose source
                // changed has its contact fetched by id before planning.)
                None if self.input.target_coverage == TargetCoverage::Incremental
                    && s.projection.hash == b.source_hash =>
                {
                    self.plan.items.push(PlanItem::new(
                        sid,
                        Some(&b.target_id),
                        Outcome::Unchanged,
                        "unchanged (not updated in GHL since the last pass)",
                    ))
                }
                None => self.plan.items.push(PlanItem::new(
                    sid,
                    Some(&b.target_id),
                    Outcome::Deferred(DeferReason::TargetNotListed),
                    "linked GHL contact not in this run's listing (incomplete or guarded): \
                     nothing inferred",
                )),
            },
        }
    }
    pub(super) fn newest(&self, s: &SourceEntry, t: &TargetEntry, first_match: bool) -> Winner {
        let s_time = s
            .changed_at
            .or(if first_match { s.registered_at } else { None })
            .unwrap_or(self.policy.now);
        match t.date_updated {
            Some(tt) if tt > s_time => Winner::Ghl,
            _ => Winner::Hotspot,
        }
    }

    /// The three-way decision for a linked record whose GHL contact is listed.
    pub(super) fn plan_linked(
        &mut self,
        sid: &'a str,
        s: &'a SourceEntry,
        b: &'a BaseLink,
        t: &'a TargetEntry,
    ) {
        let sp = &s.projection;
        let tp = &t.projection;
        let s_changed = sp.hash != b.source_hash;
        let t_changed = tp.hash != b.target_hash;
        let tid = b.target_id.as_str();

        let mut item = PlanItem::new(sid, Some(tid), Outcome::Unchanged, "unchanged");
        let mut writes = FieldChanges::new();
        if s_changed || t_changed {
            if sp.hash == tp.hash {
                item.outcome = Outcome::RecordBase;
                item.reason = "both sides changed to the same content: base recorded".into();
            } else {
                let per_field = b.source_fields.as_ref().zip(b.target_fields.as_ref());
                let fields: Vec<Field> = match per_field {
                    Some((bs, bt)) => {
                        let mut set: BTreeSet<Field> =
                            sp.fields.diff(&tp.fields).into_iter().collect();
                        if s_changed {
                            set.extend(sp.fields.diff(bs));
                        }
                        if t_changed {
                            set.extend(tp.fields.diff(bt));
                        }
                        set.into_iter().collect()
                    }
                    None => sp.fields.diff(&tp.fields),
                };
                for f in fields {
                    let sv = sp.fields.get(&f);
                    let tv = tp.fields.get(&f);
                    let (s_ch, t_ch) = match per_field {
                        Some((bs, bt)) => {
                            (s_changed && sv != bs.get(&f), t_changed && tv != bt.get(&f))
                        }
                        None => (s_changed, t_changed),
                    };
                    // Without per-field bases a clear cannot be told from "never had it".
                    let may_clear = per_field.is_some();
                    if sv == tv {
                        continue;
                    }
                    match (s_ch, t_ch) {
                        (true, false) => {
                            if sv.is_some() || may_clear {
                                writes.insert(f, sv.map(str::to_owned));
                            }
                        }
                        (false, true) => {
                            if self.policy.drift == DriftPolicy::Reassert && sv.is_some() {
                                writes.insert(f.clone(), sv.map(str::to_owned));
                            }
                            item.drift.push(f);
                        }
                        (true, true) => {
                            let winner = match self.policy.conflict {
                                ConflictPolicy::HotspotWins => Winner::Hotspot,
                                ConflictPolicy::GhlWins => Winner::Ghl,
                                ConflictPolicy::NewestWins => self.newest(s, t, false),
                                ConflictPolicy::Report => Winner::None,
                            };
                            if winner == Winner::Hotspot && (sv.is_some() || may_clear) {
                                writes.insert(f.clone(), sv.map(str::to_owned));
                            }
                            item.conflicts.push(FieldConflict {
                                field: f,
                                source: sv.map(str::to_owned),
                                target: tv.map(str::to_owned),
                                winner,
                            });
                        }
                        (false, false) => {}
                    }
                }
                if item.conflicts.iter().any(|c| c.winner == Winner::None) {
                    item.reason =
                        "both sides changed the same fields (policy report): parked".into();
                    self.park(sid, s, Some(tid), ParkReason::Conflict, item);
                    return;
                }
                item.outcome = if writes.is_empty() {
                    Outcome::RecordBase
                } else {
                    Outcome::Update
                };
                item.reason = match (
                    !writes.is_empty(),
                    !item.drift.is_empty(),
                    !item.conflicts.is_empty(),
                ) {
                    (_, _, true) => "conflict resolved by policy; losing values in the item".into(),
                    (true, true, false) => {
                        "HotspotSystem changes written; CRM edits (drift) handled per drift policy"
                            .into()
                    }
                    (true, false, false) => "HotspotSystem changed: changed fields written".into(),
                    (false, true, false) => "CRM user edited synced fields: kept (drift)".into(),
                    (false, false, false) => {
                        "content differs only where neither side changed: base recorded".into()
                    }
                };
            }
        } else if sp.hash != tp.hash {
            item.reason = "unchanged since the base; differences kept from earlier drift".into();
        }

        self.unpark_if_parked(sid);
        if !writes.is_empty() {
            item.written = writes.keys().cloned().collect();
            self.push(Action::UpdateContact {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                fields: writes,
            });
        } else if s_changed || t_changed {
            self.push(Action::RecordBase {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                source_hash: sp.hash,
                target_hash: tp.hash,
                source_fields: Box::new(sp.fields.clone()),
                target_fields: Box::new(tp.fields.clone()),
            });
        }
        self.plan_tags(sid, tid, &sp.tags, &tp.tags, &b.owned_tags, &mut item);
        self.plan.items.push(item);
    }

    /// A record summarised as unchanged: the item `plan_linked` gives a record whose source and
    /// GHL hashes both equal the base and whose tags need nothing.
    pub(super) fn plan_unchanged(&mut self, sid: &'a str, b: &'a BaseLink) {
        debug_assert!(
            b.status == LinkStatus::Active
                && (self.input.target.contains_key(&b.target_id)
                    || self.input.target_coverage == super::TargetCoverage::Incremental),
            "an unchanged summary needs an active link to a listed contact, or one an incremental listing left out"
        );
        // Both sides equal their base, so they differ from each other exactly when the bases do.
        let reason = if b.source_hash != b.target_hash {
            "unchanged since the base; differences kept from earlier drift"
        } else {
            "unchanged"
        };
        self.plan.items.push(PlanItem::new(
            sid,
            Some(&b.target_id),
            Outcome::Unchanged,
            reason,
        ));
    }

    /// Owned-set tag semantics: add generated tags the contact lacks; remove only owned tags no
    /// longer generated; forget ownership of owned tags already gone. Others are never touched.
    pub(super) fn plan_tags(
        &mut self,
        sid: &str,
        tid: &str,
        desired: &BTreeSet<String>,
        current: &BTreeSet<String>,
        owned: &BTreeSet<String>,
        item: &mut PlanItem,
    ) {
        let add: BTreeSet<String> = desired.difference(current).cloned().collect();
        let mut remove = BTreeSet::new();
        let mut forget = BTreeSet::new();
        for t in owned.difference(desired) {
            if current.contains(t) {
                remove.insert(t.clone());
            } else {
                forget.insert(t.clone());
            }
        }
        let touched = !add.is_empty() || !remove.is_empty();
        if !add.is_empty() {
            self.push(Action::AddTags {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                tags: add,
            });
        }
        if !remove.is_empty() {
            self.push(Action::RemoveTags {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                tags: remove,
            });
        }
        if !forget.is_empty() {
            self.push(Action::ForgetOwnedTags {
                source_id: sid.to_owned(),
                tags: forget,
            });
        }
        if touched && item.outcome == Outcome::Unchanged {
            item.outcome = Outcome::Update;
            item.reason = "generated tags changed".into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;
    use crate::model::ContactProjection;
    use crate::model::StdField::*;

    // --- linked ----------------------------------------------------------------------------

    #[test]
    fn unchanged_on_both_sides_plans_nothing() {
        let w = linked_world();
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty());
        assert_eq!(item(&p, "c1").outcome, Outcome::Unchanged);
    }

    #[test]
    fn source_changed_updates_only_changed_fields() {
        let mut w = linked_world();
        set_src(&mut w, "c1", City, "Bergen");
        let p = plan_contacts(&w, &policy());
        assert_eq!(
            p.actions,
            vec![Action::UpdateContact {
                source_id: "c1".into(),
                target_id: "g1".into(),
                fields: changes(&[(City, Some("Bergen"))]),
            }]
        );
        settles(&w, &policy());
    }

    #[test]
    fn source_clear_propagates_with_field_bases() {
        let mut w = linked_world();
        let e = w.source.get_mut("c1").unwrap();
        let mut c = e.projection.fields.clone();
        c.set_std(City, None);
        e.projection = ContactProjection::new(c, BTreeSet::new());
        let p = plan_contacts(&w, &policy());
        assert!(
            matches!(&p.actions[..], [Action::UpdateContact { fields, .. }]
            if *fields == changes(&[(City, None)]))
        );
        settles(&w, &policy());
    }

    #[test]
    fn target_edit_is_drift_kept_or_reasserted() {
        let mut w = linked_world();
        set_tgt(&mut w, "g1", City, "Paris");
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[..], [Action::RecordBase { .. }]));
        let it = item(&p, "c1");
        assert_eq!(it.drift, vec![Field::Std(City)]);
        assert_eq!(it.outcome, Outcome::RecordBase);
        settles(&w, &policy());

        let mut pol = policy();
        pol.drift = DriftPolicy::Reassert;
        let p = plan_contacts(&w, &pol);
        assert!(
            matches!(&p.actions[..], [Action::UpdateContact { fields, .. }]
            if *fields == changes(&[(City, Some("Oslo"))]))
        );
        settles(&w, &pol);
    }

    #[test]
    fn edits_to_different_fields_merge() {
        let mut w = linked_world();
        set_src(&mut w, "c1", FirstName, "Annie");
        set_tgt(&mut w, "g1", City, "Paris");
        let p = plan_contacts(&w, &policy());
        assert!(
            matches!(&p.actions[..], [Action::UpdateContact { fields, .. }]
            if *fields == changes(&[(FirstName, Some("Annie"))]))
        );
        assert!(item(&p, "c1").conflicts.is_empty());
        let next = settles(&w, &policy());
        let t = &next.target["g1"].projection.fields;
        assert_eq!(t.get_std(FirstName), Some("Annie"));
        assert_eq!(t.get_std(City), Some("Paris"));
    }

    #[test]
    fn conflict_hotspot_wins_writes_and_records_the_loser() {
        let w = conflict_world();
        let p = plan_contacts(&w, &policy());
        assert!(
            matches!(&p.actions[..], [Action::UpdateContact { fields, .. }]
            if *fields == changes(&[(City, Some("Bergen"))]))
        );
        let c = &item(&p, "c1").conflicts[0];
        assert_eq!(
            (c.winner, c.target.as_deref()),
            (Winner::Hotspot, Some("Paris"))
        );
        settles(&w, &policy());
    }

    #[test]
    fn conflict_ghl_wins_keeps_target_and_records_base() {
        let w = conflict_world();
        let mut pol = policy();
        pol.conflict = ConflictPolicy::GhlWins;
        let p = plan_contacts(&w, &pol);
        assert!(matches!(&p.actions[..], [Action::RecordBase { .. }]));
        let c = &item(&p, "c1").conflicts[0];
        assert_eq!(
            (c.winner, c.source.as_deref()),
            (Winner::Ghl, Some("Bergen"))
        );
        settles(&w, &pol);
    }

    #[test]
    fn conflict_newest_wins_compares_timestamps() {
        let mut w = conflict_world();
        let mut pol = policy();
        pol.conflict = ConflictPolicy::NewestWins;
        w.source.get_mut("c1").unwrap().changed_at = Some(now() - chrono::Duration::hours(2));
        w.target.get_mut("g1").unwrap().date_updated = Some(now() - chrono::Duration::hours(1));
        let p = plan_contacts(&w, &pol);
        assert_eq!(item(&p, "c1").conflicts[0].winner, Winner::Ghl);
        w.target.get_mut("g1").unwrap().date_updated = Some(now() - chrono::Duration::hours(3));
        let p = plan_contacts(&w, &pol);
        assert_eq!(item(&p, "c1").conflicts[0].winner, Winner::Hotspot);
        settles(&w, &pol);
    }

    #[test]
    fn conflict_report_parks_once() {
        let w = conflict_world();
        let mut pol = policy();
        pol.conflict = ConflictPolicy::Report;
        let p = plan_contacts(&w, &pol);
        assert!(matches!(
            &p.actions[..],
            [Action::Park {
                reason: ParkReason::Conflict,
                ..
            }]
        ));
        assert_eq!(item(&p, "c1").conflicts[0].winner, Winner::None);
        let next = settles(&w, &pol);
        // Resolving it in GHL (same value as HotspotSystem) unparks and records the base.
        let mut fixed = next.clone();
        set_tgt(&mut fixed, "g1", City, "Bergen");
        let p = plan_contacts(&fixed, &pol);
        assert!(p.actions.contains(&Action::Unpark {
            source_id: "c1".into()
        }));
        assert!(
            p.actions
                .iter()
                .any(|a| matches!(a, Action::RecordBase { .. }))
        );
        settles(&fixed, &pol);
    }

    #[test]
    fn both_changed_to_equal_content_only_records_the_base() {
        let mut w = linked_world();
        set_src(&mut w, "c1", City, "Bergen");
        set_tgt(&mut w, "g1", City, "Bergen");
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[..], [Action::RecordBase { .. }]));
        assert_eq!(p.remote_writes(), 0);
        settles(&w, &policy());
    }

    // --- tags ------------------------------------------------------------------------------

    #[test]
    fn owned_tags_are_added_and_removed_foreign_tags_untouched() {
        let mut w = world();
        src(
            &mut w,
            "c1",
            proj(&[(Email, "a@x.io")], &["hotspotsystem", "location:b"]),
        );
        tgt(
            &mut w,
            "g1",
            proj(
                &[(Email, "a@x.io")],
                &["hotspotsystem", "location:a", "vip", "newsletter"],
            ),
        );
        link(
            &mut w,
            "c1",
            "g1",
            &["hotspotsystem", "location:a", "social:x"],
        );
        let p = plan_contacts(&w, &policy());
        assert_eq!(
            p.actions,
            vec![
                Action::AddTags {
                    source_id: "c1".into(),
                    target_id: "g1".into(),
                    tags: ["location:b".to_owned()].into()
                },
                Action::RemoveTags {
                    source_id: "c1".into(),
                    target_id: "g1".into(),
                    tags: ["location:a".to_owned()].into()
                },
                Action::ForgetOwnedTags {
                    source_id: "c1".into(),
                    tags: ["social:x".to_owned()].into()
                },
            ]
        );
        let next = settles(&w, &policy());
        let tags = &next.target["g1"].projection.tags;
        assert!(tags.contains("vip") && tags.contains("newsletter"));
    }
}
