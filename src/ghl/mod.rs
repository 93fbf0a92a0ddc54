//! GoHighLevel (LeadConnector v2) client: wire types, token sources and the typed client.

pub mod agency;
pub mod auth;
pub mod client;
pub mod token_store;
pub mod wire;

pub use auth::{
    AuthError, MemoryTokenStore, OAuthConfig, OAuthTokens, TokenPair, TokenSource, TokenStore,
    authorize_url,
};
pub use client::{API_VERSION, ContactSearch, GhlClient, GhlError};
