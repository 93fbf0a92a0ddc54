//! Seeded data generator (filled by its owner).
