//! Records without an active link: a merged record's link taken over, first matches, creates.

use super::*;

impl<'a> Planner<'a> {
    /// A source record without an active link: take over a merged record's link, match, or create.
    pub(super) fn plan_new(&mut self, sid: &'a str, s: &'a SourceEntry, create_outcome: Outcome) {
        let idx = self.index.as_ref();
        let f = &s.projection.fields;
        // 1. A link of a record merged into this one.
        for m in &s.merged_ids {
            if self.released.contains(m.as_str())
                && let Some(b) = self.input.base.get(m)
            {
                let tid = b.target_id.as_str();
                self.claimed().insert(Cow::Borrowed(tid));
                if self.link(sid, s, tid, MatchMethod::MergedRecord) {
                    self.push(Action::ForgetLink {
                        source_id: m.clone(),
                        target_id: tid.to_owned(),
                    });
                }
                return;
            }
        }
        // 2. Identity order: anchor field, email, phone. The first key that finds anything decides.
        let hits_of = |m: &HashMap<String, Vec<String>>, k: Option<&str>| -> Vec<String> {
            k.and_then(|k| m.get(k)).cloned().unwrap_or_default()
        };
        let keys: [(MatchMethod, Vec<String>); 3] = [
            (
                MatchMethod::HotspotId,
                hits_of(&idx.by_hotspot_id, Some(sid)),
            ),
            (MatchMethod::Email, hits_of(&idx.by_email, f.email())),
            (MatchMethod::Phone, hits_of(&idx.by_phone, f.phone())),
        ];
        for (method, hits) in keys {
            let live: Vec<&String> = hits
                .iter()
                .filter(|t| !self.target_gone(t) && !self.doomed.contains(t.as_str()))
                .collect();
            if live.is_empty() {
                continue;
            }
            if live.len() > 1 {
                let candidates: Vec<String> = live.iter().map(|t| (*t).clone()).collect();
                let reason = format!(
                    "{} GHL contacts match by {:?}: {}",
                    candidates.len(),
                    method,
                    candidates.join(", ")
                );
                let item = PlanItem::new(sid, None, Outcome::Parked, reason);
                self.park(
                    sid,
                    s,
                    None,
                    ParkReason::AmbiguousMatch { method, candidates },
                    item,
                );
                return;
            }
            let tid = live[0].as_str();
            if self.claimed().contains(tid) {
                let item = PlanItem::new(
                    sid,
                    Some(tid),
                    Outcome::Parked,
                    format!("matching GHL contact {tid} is already linked to another record"),
                );
                self.park(
                    sid,
                    s,
                    Some(tid),
                    ParkReason::TargetAlreadyLinked {
                        target_id: tid.to_owned(),
                    },
                    item,
                );
                return;
            }
            self.link(sid, s, tid, method);
            return;
        }
        // 3. No match: decided after every match of this plan is known (see `plan_unmatched`).
        self.unmatched.push((sid, s, create_outcome));
    }

    /// Creates (or defers) records no GHL contact matched, unless a contact this plan creates
    /// or links will carry the same email or phone: then the record waits (parked) instead of
    /// becoming a duplicate.
    pub(super) fn plan_unmatched(
        &mut self,
        sid: &'a str,
        s: &'a SourceEntry,
        create_outcome: Outcome,
    ) {
        let f = &s.projection.fields;
        for (method, key) in [
            (MatchMethod::Email, f.email()),
            (MatchMethod::Phone, f.phone()),
        ] {
            let Some(key) = key else { continue };
            if let Some(other) = self.pending.get(&(method, key.to_owned())) {
                let other = (*other).to_owned();
                let item = PlanItem::new(
                    sid,
                    None,
                    Outcome::Parked,
                    format!(
                        "another record ({other}) creates or links a contact with the same \
                         {method:?} in this run"
                    ),
                );
                self.park(
                    sid,
                    s,
                    None,
                    ParkReason::PendingDuplicate {
                        method,
                        other_source: other,
                    },
                    item,
                );
                return;
            }
        }
        if self.policy.create_requires_complete_target
            && self.input.target_coverage == TargetCoverage::Incomplete
        {
            self.plan.items.push(PlanItem::new(
                sid,
                None,
                Outcome::Deferred(DeferReason::TargetIncomplete),
                "no match, but the GHL listing is incomplete: create deferred",
            ));
            return;
        }
        self.add_pending(sid, f.email(), f.phone());
        self.unpark_if_parked(sid);
        self.push(Action::CreateContact {
            source_id: sid.to_owned(),
            fields: Box::new(s.projection.fields.clone()),
            tags: s.projection.tags.clone(),
        });
        let mut item = PlanItem::new(
            sid,
            None,
            create_outcome,
            if create_outcome == Outcome::Recreate {
                "GHL contact was deleted; recreated (on_target_delete = recreate)"
            } else {
                "no matching GHL contact: create"
            },
        );
        item.written = s.projection.fields.iter().map(|(f, _)| f).collect();
        self.plan.items.push(item);
    }

    /// First match: adopt the GHL contact and write only differing fields, as the policy allows.
    /// Returns whether the link was planned (false: parked).
    pub(super) fn link(
        &mut self,
        sid: &'a str,
        s: &'a SourceEntry,
        tid: &str,
        method: MatchMethod,
    ) -> bool {
        let sf = &s.projection.fields;
        // The anchor names the record a contact belongs to: never adopt another record's contact
        // (nor rewrite its anchor, which others match on).
        if let Some(t) = self.input.target.get(tid)
            && let Some(k) = &self.index.hotspot_field
            && let Some(other) = t.projection.fields.get(&Field::Custom(k.clone()))
            && other != sid
            && !(method == MatchMethod::MergedRecord && s.merged_ids.iter().any(|m| m == other))
        {
            let item = PlanItem::new(
                sid,
                Some(tid),
                Outcome::Parked,
                format!("matching GHL contact {tid} carries HotspotSystem id {other}"),
            );
            self.park(
                sid,
                s,
                Some(tid),
                ParkReason::TargetCarriesOtherId {
                    target_id: tid.to_owned(),
                    other: other.to_owned(),
                },
                item,
            );
            return false;
        }
        let Some(t) = self.input.target.get(tid) else {
            // Matched through the index only (not listed): write every source value.
            let fields: FieldChanges = sf.iter().map(|(f, v)| (f, Some(v.to_owned()))).collect();
            self.add_pending(sid, sf.email(), sf.phone());
            self.unpark_if_parked(sid);
            let mut item = PlanItem::new(sid, Some(tid), Outcome::Link, "matched; not listed");
            item.written = fields.keys().cloned().collect();
            self.claimed().insert(Cow::Owned(tid.to_owned()));
            self.push(Action::LinkExisting {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                method,
                fields,
            });
            if !s.projection.tags.is_empty() {
                self.push(Action::AddTags {
                    source_id: sid.to_owned(),
                    target_id: tid.to_owned(),
                    tags: s.projection.tags.clone(),
                });
            }
            self.plan.items.push(item);
            return true;
        };
        let tf = &t.projection.fields;
        let anchor = self.index.hotspot_field.clone().map(Field::Custom);
        let mut fields = FieldChanges::new();
        let mut conflicts = Vec::new();
        for f in sf.diff(tf) {
            let (Some(sv), tv) = (sf.get(&f), tf.get(&f)) else {
                continue; // never blank a GHL field on first match
            };
            if tv.is_none() || Some(&f) == anchor.as_ref() {
                fields.insert(f, Some(sv.to_owned()));
                continue;
            }
            // An existing contact's email and phone are identity keys other records match on:
            // a first match fills them but never replaces them.
            let identity_key = matches!(f, Field::Std(StdField::Email | StdField::Phone));
            let winner = match self.policy.conflict {
                ConflictPolicy::Report => Winner::None,
                _ if identity_key => Winner::Ghl,
                ConflictPolicy::HotspotWins => Winner::Hotspot,
                ConflictPolicy::GhlWins => Winner::Ghl,
                ConflictPolicy::NewestWins => self.newest(s, t, true),
            };
            if winner == Winner::Hotspot {
                fields.insert(f.clone(), Some(sv.to_owned()));
            }
            conflicts.push(FieldConflict {
                field: f,
                source: Some(sv.to_owned()),
                target: tv.map(str::to_owned),
                winner,
            });
        }
        if conflicts.iter().any(|c| c.winner == Winner::None) {
            let mut item = PlanItem::new(
                sid,
                Some(tid),
                Outcome::Parked,
                format!("first match by {method:?}: values differ on both sides (policy report)"),
            );
            item.conflicts = conflicts;
            self.park(sid, s, Some(tid), ParkReason::FirstMatchDiffers, item);
            return false;
        }
        let after = |f: StdField| match fields.get(&Field::Std(f)) {
            Some(v) => v.clone(),
            None => tf.get_std(f).map(str::to_owned),
        };
        let (email, phone) = (after(StdField::Email), after(StdField::Phone));
        self.add_pending(sid, email.as_deref(), phone.as_deref());
        self.unpark_if_parked(sid);
        let mut item = PlanItem::new(
            sid,
            Some(tid),
            Outcome::Link,
            match method {
                MatchMethod::HotspotId => "linked by the HotspotSystem id field",
                MatchMethod::Email => "linked by email",
                MatchMethod::Phone => "linked by phone",
                MatchMethod::MergedRecord => "took over the link of a record merged into this one",
            },
        );
        item.written = fields.keys().cloned().collect();
        item.conflicts = conflicts;
        self.claimed().insert(Cow::Owned(tid.to_owned()));
        self.push(Action::LinkExisting {
            source_id: sid.to_owned(),
            target_id: tid.to_owned(),
            method,
            fields,
        });
        let add: BTreeSet<String> = s
            .projection
            .tags
            .difference(&t.projection.tags)
            .cloned()
            .collect();
        if !add.is_empty() {
            self.push(Action::AddTags {
                source_id: sid.to_owned(),
                target_id: tid.to_owned(),
                tags: add,
            });
        }
        self.plan.items.push(item);
        true
    }

    pub(super) fn add_pending(&mut self, sid: &'a str, email: Option<&str>, phone: Option<&str>) {
        if let Some(e) = email {
            self.pending.insert((MatchMethod::Email, e.to_owned()), sid);
        }
        if let Some(p) = phone {
            self.pending.insert((MatchMethod::Phone, p.to_owned()), sid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;
    use crate::model::ContactProjection;
    use crate::model::StdField::*;

    #[test]
    fn new_source_with_email_match_links_and_writes_only_differing_fields() {
        let mut w = world();
        src(
            &mut w,
            "c1",
            proj(
                &[(Email, "a@x.io"), (FirstName, "Ann"), (City, "Oslo")],
                &["hotspotsystem"],
            ),
        );
        tgt(
            &mut w,
            "g1",
            proj(
                &[
                    (Email, "a@x.io"),
                    (FirstName, "Anna"),
                    (Phone, "+4712345678"),
                ],
                &["vip"],
            ),
        );
        let p = plan_contacts(&w, &policy());
        assert_eq!(
            p.actions,
            vec![
                Action::LinkExisting {
                    source_id: "c1".into(),
                    target_id: "g1".into(),
                    method: MatchMethod::Email,
                    // The GHL phone the source lacks is not blanked.
                    fields: changes(&[(FirstName, Some("Ann")), (City, Some("Oslo"))]),
                },
                Action::AddTags {
                    source_id: "c1".into(),
                    target_id: "g1".into(),
                    tags: ["hotspotsystem".to_owned()].into(),
                },
            ]
        );
        assert_eq!(item(&p, "c1").outcome, Outcome::Link);
        settles(&w, &policy());
    }

    #[test]
    fn identity_order_is_anchor_then_email_then_phone() {
        let mut w = world();
        w.identity = IdentityIndex::new(Some("hs_id".into()));
        src(
            &mut w,
            "c1",
            proj(&[(Email, "a@x.io"), (Phone, "+15550102000")], &[]),
        );
        let mut anchored = fields(&[(Email, "old@x.io")]);
        anchored.set(Field::Custom("hs_id".into()), Some("c1".into()));
        tgt(
            &mut w,
            "g-anchor",
            ContactProjection::new(anchored, BTreeSet::new()),
        );
        tgt(&mut w, "g-email", proj(&[(Email, "a@x.io")], &[]));
        tgt(&mut w, "g-phone", proj(&[(Phone, "+15550102000")], &[]));
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[0],
            Action::LinkExisting { target_id, method: MatchMethod::HotspotId, .. } if target_id == "g-anchor"));

        w.identity.by_hotspot_id.clear();
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[0],
            Action::LinkExisting { target_id, method: MatchMethod::Email, .. } if target_id == "g-email"));

        w.identity.by_email.clear();
        let p = plan_contacts(&w, &policy());
        assert!(matches!(&p.actions[0],
            Action::LinkExisting { target_id, method: MatchMethod::Phone, .. } if target_id == "g-phone"));
    }

    #[test]
    fn never_two_sources_onto_one_target() {
        let mut w = world();
        src(&mut w, "c1", proj(&[(Email, "a@x.io")], &[]));
        src(
            &mut w,
            "c2",
            proj(&[(Email, "b@x.io"), (Phone, "+15550102000")], &[]),
        );
        tgt(
            &mut w,
            "g1",
            proj(&[(Email, "a@x.io"), (Phone, "+15550102000")], &[]),
        );
        let p = plan_contacts(&w, &policy());
        assert_eq!(item(&p, "c1").outcome, Outcome::Link);
        let c2 = item(&p, "c2");
        assert_eq!(c2.outcome, Outcome::Parked);
        assert!(p.actions.iter().any(|a| matches!(a, Action::Park {
            source_id, reason: ParkReason::TargetAlreadyLinked { .. }, .. } if source_id == "c2")));
        let next = settles(&w, &policy());
        assert_eq!(
            item(&plan_contacts(&next, &policy()), "c2").outcome,
            Outcome::StillParked
        );
    }

    #[test]
    fn ambiguous_match_is_parked_not_created() {
        let mut w = world();
        src(&mut w, "c1", proj(&[(Email, "a@x.io")], &[]));
        tgt(&mut w, "g1", proj(&[(Email, "a@x.io")], &[]));
        tgt(
            &mut w,
            "g2",
            proj(&[(Email, "a@x.io"), (City, "Rome")], &[]),
        );
        let p = plan_contacts(&w, &policy());
        assert_eq!(p.actions.len(), 1);
        assert!(matches!(&p.actions[0], Action::Park {
            reason: ParkReason::AmbiguousMatch { candidates, .. }, .. } if candidates.len() == 2));
        settles(&w, &policy());
    }

    #[test]
    fn new_source_without_match_is_created_unless_target_listing_incomplete() {
        let mut w = world();
        src(&mut w, "c1", proj(&[(Email, "a@x.io")], &["hotspotsystem"]));
        let p = plan_contacts(&w, &policy());
        assert!(
            matches!(&p.actions[..], [Action::CreateContact { source_id, tags, .. }]
            if source_id == "c1" && tags.contains("hotspotsystem"))
        );
        settles(&w, &policy());

        w.target_coverage = TargetCoverage::Incomplete;
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.is_empty());
        assert_eq!(
            item(&p, "c1").outcome,
            Outcome::Deferred(DeferReason::TargetIncomplete)
        );
    }

    #[test]
    fn two_new_sources_with_one_email_make_one_create() {
        let mut w = world();
        src(&mut w, "c1", proj(&[(Email, "a@x.io")], &[]));
        src(
            &mut w,
            "c2",
            proj(&[(Email, "a@x.io"), (City, "Oslo")], &[]),
        );
        let p = plan_contacts(&w, &policy());
        let creates = p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::CreateContact { .. }))
            .count();
        assert_eq!(creates, 1);
        assert_eq!(item(&p, "c2").outcome, Outcome::Parked);
        settles(&w, &policy());
    }

    // --- merge and skip --------------------------------------------------------------------

    #[test]
    fn merged_record_hands_its_link_over() {
        let mut w = world();
        src(&mut w, "s9", proj(&[(Email, "a@x.io")], &["newsletter"]));
        tgt(&mut w, "g1", proj(&[(Email, "a@x.io")], &["newsletter"]));
        link(&mut w, "s9", "g1", &["newsletter"]);
        // The customer with the same email now exists: s9 is merged into c1.
        w.source.remove("s9");
        let mut e = SourceEntry::new(proj(
            &[(Email, "a@x.io"), (FirstName, "Ann")],
            &["newsletter"],
        ));
        e.merged_ids = vec!["s9".into()];
        w.source.insert("c1".into(), e);
        let p = plan_contacts(&w, &policy());
        assert!(p.actions.iter().any(|a| matches!(a, Action::LinkExisting {
            source_id, target_id, method: MatchMethod::MergedRecord, .. } if source_id == "c1" && target_id == "g1")));
        assert!(
            p.actions
                .iter()
                .any(|a| matches!(a, Action::ForgetLink { source_id, .. } if source_id == "s9"))
        );
        assert_eq!(item(&p, "s9").outcome, Outcome::Merged);
        settles(&w, &policy());
    }

    #[test]
    fn first_match_newest_wins_uses_registration_time() {
        let mut w = world();
        src(
            &mut w,
            "c1",
            proj(&[(Email, "a@x.io"), (FirstName, "Ann")], &[]),
        );
        tgt(
            &mut w,
            "g1",
            proj(&[(Email, "a@x.io"), (FirstName, "Anna")], &[]),
        );
        w.source.get_mut("c1").unwrap().registered_at = Some(now() - chrono::Duration::days(9));
        w.target.get_mut("g1").unwrap().date_updated = Some(now() - chrono::Duration::days(1));
        let mut pol = policy();
        pol.conflict = ConflictPolicy::NewestWins;
        let p = plan_contacts(&w, &pol);
        assert!(
            matches!(&p.actions[..], [Action::LinkExisting { fields, .. }] if fields.is_empty())
        );
        assert_eq!(item(&p, "c1").conflicts[0].winner, Winner::Ghl);
        w.source.get_mut("c1").unwrap().registered_at = Some(now());
        let p = plan_contacts(&w, &pol);
        assert_eq!(item(&p, "c1").conflicts[0].winner, Winner::Hotspot);
        settles(&w, &pol);
    }
}
