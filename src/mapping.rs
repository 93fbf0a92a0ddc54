//! HotspotSystem → canonical mapping (filled by its owner).
