//! Helpers shared by integration tests. Each test binary uses a subset.

#![allow(dead_code)]

pub mod census;
pub mod daemon;
pub mod openapi;

/// A reqwest client for talking to the loopback emulators (installs the rustls provider first).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}
pub mod harness;
