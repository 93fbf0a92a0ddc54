//! GHL contact ids by identity key (HotspotSystem-id anchor, email, phone), and how a plan's
//! own updates re-key them.

use super::*;

/// GHL contact ids by identity key, for the first match of new source records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityIndex {
    /// The custom field (id or key) holding the HotspotSystem id, as in the field map.
    pub hotspot_field: Option<String>,
    pub by_hotspot_id: HashMap<String, Vec<String>>,
    pub by_email: HashMap<String, Vec<String>>,
    pub by_phone: HashMap<String, Vec<String>>,
}

impl IdentityIndex {
    pub fn new(hotspot_field: Option<String>) -> Self {
        Self {
            hotspot_field,
            ..Self::default()
        }
    }

    /// Index of every target in a snapshot, ids sorted for deterministic plans.
    pub fn build<'a>(
        hotspot_field: Option<String>,
        targets: impl IntoIterator<Item = (&'a String, &'a TargetEntry)>,
    ) -> Self {
        let mut idx = Self::new(hotspot_field);
        for (id, t) in targets {
            idx.insert(id, &t.projection.fields);
        }
        for v in idx
            .by_hotspot_id
            .values_mut()
            .chain(idx.by_email.values_mut())
            .chain(idx.by_phone.values_mut())
        {
            v.sort();
        }
        idx
    }

    pub fn insert(&mut self, target_id: &str, f: &CanonicalContact) {
        if let Some(k) = &self.hotspot_field
            && let Some(v) = f.get_custom(k)
        {
            push_unique(
                self.by_hotspot_id.entry(v.to_owned()).or_default(),
                target_id,
            );
        }
        if let Some(e) = f.email() {
            push_unique(self.by_email.entry(e.to_owned()).or_default(), target_id);
        }
        if let Some(p) = f.phone() {
            push_unique(self.by_phone.entry(p.to_owned()).or_default(), target_id);
        }
    }

    /// Removes `target_id` from the keys of `f` only (cheap, unlike [`Self::remove`]).
    pub fn remove_keys(&mut self, target_id: &str, f: &CanonicalContact) {
        fn drop(m: &mut HashMap<String, Vec<String>>, key: Option<&str>, id: &str) {
            if let Some(k) = key
                && let Some(v) = m.get_mut(k)
            {
                v.retain(|t| t != id);
                if v.is_empty() {
                    m.remove(k);
                }
            }
        }
        let anchor = self.hotspot_value(f);
        drop(&mut self.by_hotspot_id, anchor, target_id);
        drop(&mut self.by_email, f.email(), target_id);
        drop(&mut self.by_phone, f.phone(), target_id);
    }

    pub fn remove(&mut self, target_id: &str) {
        for m in [
            &mut self.by_hotspot_id,
            &mut self.by_email,
            &mut self.by_phone,
        ] {
            m.retain(|_, v| {
                v.retain(|t| t != target_id);
                !v.is_empty()
            });
        }
    }

    fn hotspot_value<'a>(&self, f: &'a CanonicalContact) -> Option<&'a str> {
        self.hotspot_field.as_deref().and_then(|k| f.get_custom(k))
    }
}

/// Keeps each id list sorted, so plans do not depend on insertion order.
fn push_unique(v: &mut Vec<String>, id: &str) {
    if let Err(i) = v.binary_search_by(|x| x.as_str().cmp(id)) {
        v.insert(i, id.to_owned());
    }
}

impl Planner<'_> {
    /// Re-keys the identity index for targets whose email, phone or anchor this plan updates.
    pub(super) fn index_after_updates(&mut self) {
        let anchor = self.index.hotspot_field.clone().map(Field::Custom);
        for a in &self.plan.actions {
            let Action::UpdateContact {
                target_id, fields, ..
            } = a
            else {
                continue;
            };
            let keyed = fields.keys().any(|f| {
                matches!(f, Field::Std(StdField::Email | StdField::Phone))
                    || Some(f) == anchor.as_ref()
            });
            let Some(t) = self.input.target.get(target_id) else {
                continue;
            };
            if keyed {
                let old = &t.projection.fields;
                let mut new = old.clone();
                for (f, v) in fields {
                    new.set(f.clone(), v.clone());
                }
                let idx = self.index.to_mut();
                idx.remove_keys(target_id, old);
                idx.insert(target_id, &new);
            }
        }
    }
}
