//! Reconcile: `plan` is pure (snapshots + base state + policy → actions as data, like pimsync's
//! `plan.rs` and atuin's `operations()`); `simulate` applies a plan to the snapshots in memory so
//! the planner's properties (idempotence above all) can be tested without I/O. `apply` (written
//! separately) executes a plan against GHL and the store.

pub mod apply;
pub mod appointments;
pub mod base;
pub mod businesses;
pub mod contacts;
pub mod context;
pub mod journaled;
pub mod notes;
pub mod outcome;
pub mod pass;
pub mod plan;
pub mod simulate;
pub mod snapshot;
pub mod tasks;
pub mod transactions;

pub use plan::{
    Action, BaseLink, ContactPolicy, ContactsInput, FieldChanges, FieldConflict, GuardKind,
    GuardNote, IdentityIndex, LinkStatus, MatchMethod, Outcome, ParkReason, ParkedMark, Plan,
    PlanItem, SourceEntry, TargetEntry, Winner, plan_contacts,
};
pub use simulate::apply_to_snapshots;
