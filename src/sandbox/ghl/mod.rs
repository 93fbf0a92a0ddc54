//! GHL emulator (filled by its owner).
