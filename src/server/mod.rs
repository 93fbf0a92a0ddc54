//! The one HTTP server of the product: the dashboard uses it now, the webhook receivers will.
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no connection cap, so a few
//! hundred half-sent requests exhaust the descriptors and the server stops answering (even
//! `/healthz`). This accept loop bounds every resource a client can hold:
//!
//! - **Headers** must arrive within [`Limits::header_read_timeout`] (hyper's timer), also while a
//!   kept-alive connection waits for its next request.
//! - **Idle**: a connection that serves no request and moves no byte for
//!   [`Limits::idle_timeout`] is closed (a client that stops reading a response).
//! - **Connections** are capped at [`Limits::max_connections`], itself kept below the
//!   descriptor limit. At the cap, a new connection evicts the oldest one that is not serving a
//!   request (a half-sent request holds a slot but is never "serving"), so a flood of
//!   half-open connections delays `/healthz` by one eviction, never blocks it. Only when every
//!   slot is serving a request is the new connection closed at once.
//! - **Requests** take at most [`Limits::request_timeout`] and bodies at most
//!   [`Limits::max_body_bytes`] ([`guard`]).
//! - Accept errors (`EMFILE` included) pause the loop briefly instead of spinning on them.

pub mod auth;
pub mod guard;
pub mod host;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tower::ServiceExt as _;

/// Descriptors kept free of connections: the state database (3 per open: file, WAL, shared
/// memory) for each request being answered, logs, and the listener itself.
pub const RESERVED_FDS: usize = 64;

/// What one client may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    /// Upper bound; [`Limits::effective_max_connections`] lowers it to fit the fd limit.
    pub max_connections: usize,
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_body_bytes: 64 * 1024,
        }
    }
}

impl Limits {
    /// The cap actually used: the configured one, lowered to leave [`RESERVED_FDS`] descriptors
    /// of the process's soft limit free (at least 8 connections).
    pub fn effective_max_connections(&self) -> usize {
        match fd_soft_limit() {
            Some(n) => self
                .max_connections
                .min(n.saturating_sub(RESERVED_FDS).max(8)),
            None => self.max_connections,
        }
    }
}

#[cfg(unix)]
fn fd_soft_limit() -> Option<usize> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur as usize)
}

#[cfg(not(unix))]
fn fd_soft_limit() -> Option<usize> {
    None
}

/// One open connection as the accept loop sees it.
struct Slot {
    /// Requests this connection is serving now (0 while it reads headers or idles).
    busy: Arc<AtomicUsize>,
    evict: Arc<Notify>,
}

#[derive(Default)]
struct Slots {
    next: u64,
    open: BTreeMap<u64, Slot>,
}

impl Slots {
    /// Evicts the oldest connection serving no request; `false` when every connection is
    /// serving one.
    fn evict_oldest_idle(&mut self) -> bool {
        let idle = self
            .open
            .iter()
            .find(|(_, s)| s.busy.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| self.open.remove(&id)) {
            Some(slot) => {
                slot.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` completes, then lets requests in
/// progress finish (at most `limits.request_timeout`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let cap = limits.effective_max_connections();
    let app = guard::layer(app, &limits);
    let slots = Arc::new(Mutex::new(Slots::default()));
    // One permit per open connection, released once its socket is closed: the accept loop
    // never holds more than `cap` connections' descriptors, even while evicted ones close.
    let permits = Arc::new(tokio::sync::Semaphore::new(cap));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; all dropped = all connections closed.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut shed: u64 = 0;
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE/ENFILE and friends: the pending connection stays in the backlog;
                    // retrying at once would spin. Log once a second at most.
                    if last_accept_error.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        last_accept_error = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                let evicted = slots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .evict_oldest_idle();
                if evicted {
                    tokio::time::timeout(Duration::from_secs(1), permits.clone().acquire_owned())
                        .await
                        .ok()
                        .and_then(Result::ok)
                } else {
                    None
                }
            }
        };
        let Some(permit) = permit else {
            shed += 1;
            if shed.is_power_of_two() {
                tracing::warn!(
                    connections = cap,
                    shed,
                    "every connection is serving a request; closing new ones"
                );
            }
            drop(stream);
            continue;
        };
        let (id, busy, evict) = {
            let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
            let id = s.next;
            s.next += 1;
            let slot = Slot {
                busy: Arc::new(AtomicUsize::new(0)),
                evict: Arc::new(Notify::new()),
            };
            let handles = (id, slot.busy.clone(), slot.evict.clone());
            s.open.insert(id, slot);
            handles
        };
        let conn = Connection {
            app: app.clone(),
            limits: limits.clone(),
            peer,
            busy,
            evict,
            stop: stop_rx.clone(),
        };
        let slots = slots.clone();
        let alive = alive_tx.clone();
        tokio::spawn(async move {
            conn.run(stream).await;
            drop(permit);
            slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .open
                .remove(&id);
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = tokio::time::timeout(limits.request_timeout, alive_rx.recv()).await;
    Ok(())
}

struct Connection {
    app: Router,
    peer: std::net::SocketAddr,
    limits: Limits,
    busy: Arc<AtomicUsize>,
    evict: Arc<Notify>,
    stop: watch::Receiver<bool>,
}

/// Decrements the busy count when a request's handling ends, however it ends.
struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let started = Instant::now();
        let activity = Arc::new(AtomicU64::new(0));
        let io = Tracked {
            inner: stream,
            started,
            last: activity.clone(),
        };
        let app = self.app.clone();
        let busy = self.busy.clone();
        let peer = self.peer;
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            busy.fetch_add(1, Ordering::AcqRel);
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let guard = Busy(busy.clone());
            let fut = app.clone().oneshot(req.map(axum::body::Body::new));
            async move {
                let res = fut.await;
                drop(guard);
                res
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), svc);
        let mut conn = std::pin::pin!(conn);
        let idle = self.limits.idle_timeout;
        let mut tick = tokio::time::interval((idle / 4).max(Duration::from_millis(50)));
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = self.evict.notified() => return,
                _ = tick.tick() => {
                    let since = started.elapsed()
                        .saturating_sub(Duration::from_millis(activity.load(Ordering::Acquire)));
                    if self.busy.load(Ordering::Acquire) == 0 && since >= idle {
                        return;
                    }
                }
                changed = self.stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_err() || *self.stop.borrow() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// A stream that records when it last moved a byte (milliseconds since `started`).
struct Tracked {
    inner: TcpStream,
    started: Instant,
    last: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        self.last
            .store(self.started.elapsed().as_millis() as u64, Ordering::Release);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(busy: usize) -> Slot {
        Slot {
            busy: Arc::new(AtomicUsize::new(busy)),
            evict: Arc::new(Notify::new()),
        }
    }

    #[test]
    fn the_oldest_idle_connection_is_evicted() {
        let mut s = Slots::default();
        s.open.insert(1, slot(1));
        s.open.insert(2, slot(0));
        s.open.insert(3, slot(0));
        assert!(s.evict_oldest_idle());
        assert_eq!(s.open.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn when_every_connection_is_serving_none_is_evicted() {
        let mut s = Slots::default();
        s.open.insert(1, slot(1));
        s.open.insert(2, slot(2));
        assert!(!s.evict_oldest_idle());
        assert_eq!(s.open.len(), 2);
    }
}
