//! Scheduler (filled by its owner).
