//! HotspotSystem v2.0 (read-only source): wire types and the client.

pub mod client;
pub mod shared;
pub mod wire;

pub use client::{DEFAULT_PAGE_SIZE, HotspotClient, Pager};
pub use shared::{ReadRound, RoundLimits, RoundStats, SharedReads, Wants};
pub use wire::{
    Customer, Location, MacTransaction, Owner, PaidTransaction, Pong, SocialTransaction,
    TransactionCommon, Voucher, VoucherTransaction,
};
