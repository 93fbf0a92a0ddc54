//! The `Host` allow-list. A page in the operator's browser can make its own name resolve to
//! 127.0.0.1 (DNS rebinding) and then read the dashboard as same-origin; the name it uses is
//! not one the dashboard knows, so such a request gets 421 and no data. Allowed: the loopback
//! names (`localhost`, `127.0.0.1`, `[::1]`, any port), the address the server listens on when
//! it is a specific one, and the names configured for remote use.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Host names (lowercase, without port) a request may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// Loopback names, `listen`'s address unless it is unspecified, and `extra`.
    pub fn new(listen: Option<SocketAddr>, extra: &[String]) -> Self {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .collect();
        if let Some(addr) = listen
            && !addr.ip().is_unspecified()
        {
            names.push(addr.ip().to_string());
        }
        names.extend(extra.iter().map(|h| h.trim().to_ascii_lowercase()));
        names.sort();
        names.dedup();
        AllowedHosts(names)
    }

    /// Whether a `Host` header value (`name`, `name:port`, `[v6]:port`) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = if let Some(v6) = host.strip_prefix('[') {
            match v6.split_once(']') {
                Some((ip, rest)) if rest.is_empty() || port_ok(rest) => ip.to_string(),
                _ => return false,
            }
        } else {
            match host.rsplit_once(':') {
                Some((name, port)) if port_ok(&format!(":{port}")) => name.to_string(),
                Some(_) => return false,
                None => host.clone(),
            }
        };
        let name = name.trim_end_matches('.');
        if let Ok(ip) = name.parse::<IpAddr>() {
            return self.0.iter().any(|n| n.parse::<IpAddr>().ok() == Some(ip));
        }
        self.0.iter().any(|n| n == name)
    }
}

fn port_ok(rest: &str) -> bool {
    rest.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

/// Middleware: 421 for a request whose `Host` (or absolute URI authority) is not allowed, 400
/// for one with neither.
pub async fn check(State(allowed): State<Arc<AllowedHosts>>, req: Request, next: Next) -> Response {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    match host {
        None => (StatusCode::BAD_REQUEST, "a Host header is required\n").into_response(),
        Some(h) if allowed.allows(&h) => next.run(req).await,
        Some(_) => {
            tracing::warn!(path = %req.uri().path(), "request for a host name this server does not serve refused (421)");
            (
                StatusCode::MISDIRECTED_REQUEST,
                "this server does not serve that host name; add it to [dashboard] allowed_hosts\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_or_without_port() {
        let a = AllowedHosts::new(None, &["Dash.Example.com".into()]);
        for ok in [
            "localhost",
            "localhost:8686",
            "127.0.0.1:1",
            "[::1]:8686",
            "[::1]",
            "dash.example.com",
            "DASH.example.com:443",
            "dash.example.com.",
        ] {
            assert!(a.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost:notaport",
            "localhost.evil:80",
            "[::1]x",
            "",
            "10.0.0.1",
        ] {
            assert!(!a.allows(bad), "{bad}");
        }
    }

    #[test]
    fn a_specific_listen_address_is_allowed() {
        let a = AllowedHosts::new(Some("10.0.0.5:8686".parse().unwrap()), &[]);
        assert!(a.allows("10.0.0.5:8686"));
        let any = AllowedHosts::new(Some("0.0.0.0:8686".parse().unwrap()), &[]);
        assert!(!any.allows("0.0.0.0"));
        assert!(!any.allows("10.0.0.5"));
    }
}
