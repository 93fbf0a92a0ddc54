//! In-process emulators of both APIs, used by `demo`, `sandbox` and the tests.

pub mod faults;
pub mod ghl;
pub mod hotspot;
pub mod seed;
