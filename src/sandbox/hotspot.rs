//! HotspotSystem emulator (filled by its owner).
