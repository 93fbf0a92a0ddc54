//! Configuration (filled by its owner).
