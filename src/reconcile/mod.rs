//! Reconcile: `pass` runs one step per kind (contacts, notes, tasks, businesses,
//! appointments) from one table, each `reconcile(&PassContext) -> KindOutcome`, and accounts
//! them into the run. The steps share `context` (clients, state, listings), `outcome` (what a
//! step returns, why writing stopped), `journaled` (creates journaled before they are sent, and
//! their recovery) and `transactions` (the HotspotSystem transaction stream); nothing depends
//! back on `pass` but `new_records`, the fast lane, which reads what is new and then runs a
//! pass `scope`d to it, and `named_records`, which does the same for the records webhooks named. `plan` is pure (snapshots + base state + policy → actions as data);
//! `simulate` applies a plan to the snapshots in memory so the planner's properties
//! (idempotence above all) can be tested without I/O, and a dry run can plan the kinds after
//! contacts on the links its contacts plan would leave (`dry_run`); `apply` executes a contact
//! plan.

pub mod apply;
pub mod appointments;
pub mod base;
pub mod businesses;
pub mod contacts;
pub mod context;
pub mod dry_run;
pub mod filter;
pub mod journaled;
pub mod named_records;
pub mod new_records;
pub mod notes;
pub mod outcome;
pub mod pass;
pub mod plan;
pub mod scope;
pub mod settled;
pub mod simulate;
pub mod snapshot;
pub mod target_read;
pub mod tasks;
pub mod transactions;

pub use plan::{
    Action, BaseLink, ContactPolicy, ContactsInput, FieldChanges, FieldConflict, GuardKind,
    GuardNote, IdentityIndex, LinkStatus, MatchMethod, Outcome, ParkReason, ParkedMark, Plan,
    PlanItem, SourceEntry, TargetCoverage, TargetEntry, Winner, plan_contacts,
};
pub use simulate::apply_to_snapshots;
