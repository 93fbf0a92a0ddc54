//! Canonical records shared by the planner, the store and the mapping.

use serde::{Deserialize, Serialize};

/// The kinds of record the sync handles. Used as a key in the store, the schedule and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Contact,
    Note,
    Task,
    Business,
    Appointment,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Contact,
        Kind::Note,
        Kind::Task,
        Kind::Business,
        Kind::Appointment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Contact => "contact",
            Kind::Note => "note",
            Kind::Task => "task",
            Kind::Business => "business",
            Kind::Appointment => "appointment",
        }
    }
}

/// What to do when both sides changed the same record since the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    #[default]
    HotspotWins,
    GhlWins,
    NewestWins,
    /// Park the record and report both values; write nothing.
    Report,
}

/// What to do when a CRM user edited a synced field and HotspotSystem did not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftPolicy {
    /// Keep the CRM user's value (reported as drift).
    #[default]
    Keep,
    /// Write HotspotSystem's value back.
    Reassert,
}

/// What to do in GHL when a record disappears from a complete HotspotSystem listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceDeletePolicy {
    #[default]
    Ignore,
    Tag,
    Delete,
}

/// What to do when a linked record was deleted in GHL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetDeletePolicy {
    /// Do not recreate; tombstone the link.
    #[default]
    Respect,
    Recreate,
}

/// blake3 digest of a canonical encoding of mapped fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| Digest(*h.as_bytes()))
    }
}
