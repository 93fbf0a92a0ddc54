//! Fault knobs (filled by its owner).
