//! Reconcile (filled by its owner).
