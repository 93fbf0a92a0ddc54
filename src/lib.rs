//! hotspot-ghl-sync: a polling reconciler that keeps a GoHighLevel sub-account in step with a
//! HotspotSystem operator account. See `README.md` for use and `../shared/DESIGN.md` for the design.
//!
//! The file tree mirrors the data flow: clients (`hotspot`, `ghl`) over one HTTP policy (`http`)
//! produce snapshots; `mapping`/`model` normalise and hash them; `reconcile::plan` (pure) decides;
//! `reconcile::apply` writes; `store` is the only module that speaks SQL; `report` tells the user.

pub mod cli;
pub mod commands;
pub mod config;
pub mod connect;
pub mod dashboard;
pub mod decode;
pub mod ghl;
pub mod hotspot;
pub mod http;
pub mod listing;
pub mod mapping;
pub mod model;
pub mod notify;
pub mod privacy;
pub mod progress;
pub mod reconcile;
pub mod report;
pub mod sandbox;
pub mod schedule;
pub mod secret;
pub mod server;
pub mod store;
pub mod webhooks;
