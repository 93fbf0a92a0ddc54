//! State store (filled by its owner).
