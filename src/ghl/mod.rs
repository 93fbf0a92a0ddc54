//! GoHighLevel (LeadConnector v2) client: wire types, token sources and the typed client.

pub mod agency;
pub mod auth;
pub mod client;
pub mod token_source;
pub mod token_store;
pub mod wire;

pub use auth::{
    AuthError, MemoryTokenStore, OAuthConfig, OAuthTokens, TokenPair, TokenStore, authorize_url,
};
pub use client::{ContactSearch, GhlClient, GhlError};
pub use token_source::TokenSource;
pub use wire::API_VERSION;
