//! Shared HotspotSystem reads: in agency mode the passes of the pairs that one scheduler tick
//! starts (a *round*) list the same HotspotSystem account; the same GET is sent once for all of
//! them, and its answer is fanned out to every pair that asks.
//!
//! # Use
//!
//! ```no_run
//! # use hotspot_ghl_sync::hotspot::{HotspotClient, shared::{ReadRound, RoundLimits, Wants}};
//! # async fn tick(clients: Vec<(HotspotClient, Vec<String>)>) {
//! let round = ReadRound::new(RoundLimits::default());
//! // Every pair of the tick gets its reader *before* any pass starts: an answer is kept only
//! // for the readers that exist when it arrives.
//! let clients: Vec<HotspotClient> = clients
//!     .into_iter()
//!     .map(|(client, locations)| client.with_shared_reads(round.reader(Wants::from_config(&locations))))
//!     .collect();
//! // ... run the passes with these clients, concurrently; each client (and its clones) is
//! // dropped when its pass ends, which releases what was kept for it ...
//! drop(clients);
//! drop(round); // the round ends: whatever is still kept is dropped
//! # }
//! ```
//!
//! # What is shared
//!
//! Two GETs are the same read when they go to the same URL with the same query (in order) and
//! the same credential. The credential is known by a keyed hash (a random key per round) of the
//! base URL and the API key; the key itself is never kept. Clients with different keys, base
//! URLs or page sizes therefore never share an answer.
//!
//! - *Single flight:* while a read is in flight, the same read from another pair waits for it.
//! - *Kept answers:* a successful answer is kept for the readers of the round that are expected
//!   to ask for it and have not yet: every reader of the same account for account-wide paths
//!   (`/locations` pages), and the readers whose [`Wants`] include the location for
//!   `/locations/{id}/...`. An answer leaves memory as soon as the last of them has taken it or
//!   has ended (its client dropped), and everything leaves when the [`ReadRound`] is dropped.
//!   A reader asking again for an answer it already had gets it while it is still kept for the
//!   others, and reads it anew once it is not.
//! - *Errors* reach only the callers waiting at that moment; the next caller sends the request
//!   again.
//!
//! # What each pair still does itself
//!
//! Paging (completeness, offset probing, `Link` checks), decoding and the decode log work on
//! each pair's own copy of the answer, so a pair's report is what it would be alone. The rate
//! limiter, retries and the audit of calls are those of the pair whose request went out: an
//! answer a pair took from the round is **not** recorded among its calls (it sent none), so the
//! calls of all pairs of a round add up to what HotspotSystem really served.
//!
//! # Memory
//!
//! A round holds at most one copy of each answer some reader still expects, capped by
//! [`RoundLimits::max_held_bytes`]: an answer that would go over the cap is handed to the
//! callers waiting for it and not kept (a later caller reads it again). Passes that start
//! together read HotspotSystem first and at the same pace, so what is kept is typically the
//! few pages the slowest pair has not reached yet; the worst case is one pair running a whole
//! shared listing ahead of another. [`ReadRound::stats`] tells what a round holds and held at
//! most. Measured with the emulator (tests/shared_reads.rs, 250 guests per location, pages of
//! 100): two passes started together over three locations, one shared, held at most one answer
//! (49 KB) at a time; a second pass run after the first found the shared location's 3 pages and
//! the `/locations` page kept for it, 118 KB, all gone once it had read them. A page of 100
//! customers is 35 to 50 KB, so the default cap holds some 1,500 pages.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::http::{ApiError, HttpError, Request, Response};

/// What a round may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundLimits {
    /// Bodies of kept answers, in bytes, at most.
    pub max_held_bytes: usize,
}

impl Default for RoundLimits {
    /// 64 MiB: thousands of pages, far more than passes that start together leave behind.
    fn default() -> Self {
        RoundLimits {
            max_held_bytes: 64 << 20,
        }
    }
}

/// Which HotspotSystem locations a reader's pass lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wants {
    /// Every location of the account (`hotspot.locations = []`).
    All,
    /// Only these location ids.
    Locations(BTreeSet<String>),
}

impl Wants {
    /// From a pair's `hotspot.locations`: empty means all of them.
    pub fn from_config(locations: &[String]) -> Wants {
        if locations.is_empty() {
            Wants::All
        } else {
            Wants::Locations(locations.iter().cloned().collect())
        }
    }

    fn covers(&self, location: Option<&str>) -> bool {
        match (self, location) {
            (_, None) | (Wants::All, _) => true,
            (Wants::Locations(ids), Some(id)) => ids.contains(id),
        }
    }
}

/// What a round sent, gave out and holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Requests that went to HotspotSystem through the round.
    pub sent: u64,
    /// Answers handed to a caller that sent no request (it waited for, or took, another's).
    pub shared: u64,
    /// Answers kept now, and their body bytes.
    pub held_answers: usize,
    pub held_bytes: usize,
    /// The most answers, and bytes, held at once.
    pub peak_answers: usize,
    pub peak_bytes: usize,
}

/// The reads of one scheduler tick. Dropping it ends the round: every kept answer is dropped
/// and the readers still alive send their requests on their own.
pub struct ReadRound {
    round: Arc<Round>,
}

impl std::fmt::Debug for ReadRound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadRound")
            .field("stats", &self.stats())
            .finish()
    }
}

impl ReadRound {
    pub fn new(limits: RoundLimits) -> ReadRound {
        ReadRound {
            round: Arc::new(Round {
                salt: rand::random(),
                state: Mutex::new(RoundState {
                    open: true,
                    limits,
                    ..RoundState::default()
                }),
            }),
        }
    }

    /// A reader for one pair's pass: hand it to the pair's client with
    /// [`HotspotClient::with_shared_reads`](super::HotspotClient::with_shared_reads).
    pub fn reader(&self, wants: Wants) -> SharedReads {
        let mut state = self.round.lock();
        let id = ReaderId(state.next_reader);
        state.next_reader += 1;
        state.readers.insert(
            id,
            ReaderPlan {
                wants,
                account: None,
            },
        );
        SharedReads {
            reader: Arc::new(Reader {
                round: self.round.clone(),
                id,
            }),
        }
    }

    pub fn stats(&self) -> RoundStats {
        self.round.lock().stats()
    }
}

impl Drop for ReadRound {
    fn drop(&mut self) {
        let mut state = self.round.lock();
        state.open = false;
        state.slots.clear();
        state.held_bytes = 0;
    }
}

/// One pair's share of a [`ReadRound`]. Clones are the same reader (a client's pagers hold
/// clones); when the last clone is dropped the reader has ended and nothing is kept for it any
/// longer.
#[derive(Clone)]
pub struct SharedReads {
    reader: Arc<Reader>,
}

impl std::fmt::Debug for SharedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReads")
            .field("reader", &self.reader.id.0)
            .finish()
    }
}

impl SharedReads {
    /// Binds the reader to the account its client reads (base URL and API key), which decides
    /// whose answers are kept for it. Called by the client.
    pub(super) fn attach(&self, base: &str, api_key: &[u8]) {
        let round = &self.reader.round;
        let account = round.account(base, api_key);
        if let Some(plan) = round.lock().readers.get_mut(&self.reader.id) {
            plan.account = Some(account);
        }
    }

    /// Sends `req` (a GET of the client at `base`) through the round: `send` runs only when
    /// no answer for the same read is in flight or kept.
    pub(super) async fn get<F, Fut>(
        &self,
        base: &str,
        api_key: &[u8],
        req: &Request,
        send: F,
    ) -> Result<Response, HttpError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Response, HttpError>>,
    {
        let round = &self.reader.round;
        let me = self.reader.id;
        let account = round.account(base, api_key);
        let key = round.read_key(&account, req);
        let location = location_of(base, &req.url);
        loop {
            let flight = {
                let mut state = round.lock();
                match state.slots.get(&key) {
                    _ if !state.open => Waiting::Alone,
                    Some(Slot::Held(_)) => {
                        let answer = state.take(&key, me);
                        state.shared += 1;
                        return Ok(answer);
                    }
                    Some(Slot::Flying(rx)) => Waiting::On(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        state.slots.insert(key, Slot::Flying(rx));
                        Waiting::Leader(tx)
                    }
                }
            };
            match flight {
                Waiting::Alone => return send().await,
                Waiting::On(rx) => match wait(rx).await {
                    // The sender was cancelled before it had an answer: ask again.
                    None => continue,
                    Some(Ok(answer)) => {
                        let mut state = round.lock();
                        state.shared += 1;
                        state.taken(&key, me);
                        return Ok(Response::clone(&answer));
                    }
                    Some(Err(e)) => return Err(copy_error(&e)),
                },
                Waiting::Leader(tx) => {
                    let mut guard = Flight {
                        round,
                        key,
                        done: false,
                    };
                    let outcome = send().await;
                    guard.done = true;
                    let mut state = round.lock();
                    state.sent += 1;
                    return match outcome {
                        Ok(resp) => {
                            let answer = Arc::new(resp);
                            state.settle(key, &answer, me, &account, location.as_deref());
                            drop(state);
                            let _ = tx.send(Some(Ok(answer.clone())));
                            Ok(Arc::unwrap_or_clone(answer))
                        }
                        Err(e) => {
                            state.slots.remove(&key);
                            drop(state);
                            let _ = tx.send(Some(Err(Arc::new(copy_error(&e)))));
                            Err(e)
                        }
                    };
                }
            }
        }
    }
}

/// What a caller does about a read: send it for the round, wait for the one in flight, or
/// (the round has ended) send it for itself.
enum Waiting {
    Alone,
    Leader(watch::Sender<Option<Outcome>>),
    On(watch::Receiver<Option<Outcome>>),
}

type Outcome = Result<Arc<Response>, Arc<HttpError>>;

/// The outcome of the read in flight; `None` when its sender went away without one.
async fn wait(mut rx: watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    loop {
        if let Some(outcome) = rx.borrow_and_update().as_ref() {
            return Some(outcome.clone());
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}

/// A read in flight: when its sender is dropped before the answer (a cancelled pass), the slot
/// is freed so that a waiting caller sends it itself.
struct Flight<'a> {
    round: &'a Round,
    key: ReadKey,
    done: bool,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.round.lock();
            if matches!(state.slots.get(&self.key), Some(Slot::Flying(_))) {
                state.slots.remove(&self.key);
            }
        }
    }
}

/// The identity of a read: a keyed hash of the credential, the URL and the query.
type ReadKey = [u8; 32];

/// The identity of an account: a keyed hash of the base URL and the API key.
type AccountId = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct ReaderId(u64);

struct Reader {
    round: Arc<Round>,
    id: ReaderId,
}

impl Drop for Reader {
    /// The pair's pass has ended: nothing is kept for it any longer.
    fn drop(&mut self) {
        let mut state = self.round.lock();
        state.readers.remove(&self.id);
        let keys: Vec<ReadKey> = state.slots.keys().copied().collect();
        for key in keys {
            state.taken(&key, self.id);
        }
    }
}

struct ReaderPlan {
    wants: Wants,
    /// Unknown until the reader is attached to a client.
    account: Option<AccountId>,
}

struct Round {
    /// Keys the hashes of credentials, so that no kept value can be checked against a guess.
    salt: [u8; 32],
    state: Mutex<RoundState>,
}

impl Round {
    fn lock(&self) -> MutexGuard<'_, RoundState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn account(&self, base: &str, api_key: &[u8]) -> AccountId {
        let mut h = blake3::Hasher::new_keyed(&self.salt);
        framed(&mut h, base.trim_end_matches('/').as_bytes());
        framed(&mut h, api_key);
        *h.finalize().as_bytes()
    }

    fn read_key(&self, account: &AccountId, req: &Request) -> ReadKey {
        let mut h = blake3::Hasher::new_keyed(&self.salt);
        h.update(account);
        framed(&mut h, req.method.as_str().as_bytes());
        framed(&mut h, req.url.as_bytes());
        for (k, v) in &req.query {
            framed(&mut h, k.as_bytes());
            framed(&mut h, v.as_bytes());
        }
        *h.finalize().as_bytes()
    }
}

/// Length-prefixed, so that no two different sequences of parts hash alike.
fn framed(h: &mut blake3::Hasher, part: &[u8]) {
    h.update(&(part.len() as u64).to_le_bytes());
    h.update(part);
}

#[derive(Default)]
struct RoundState {
    open: bool,
    limits: RoundLimits,
    next_reader: u64,
    readers: HashMap<ReaderId, ReaderPlan>,
    slots: HashMap<ReadKey, Slot>,
    held_bytes: usize,
    peak_answers: usize,
    peak_bytes: usize,
    sent: u64,
    shared: u64,
}

enum Slot {
    Flying(watch::Receiver<Option<Outcome>>),
    Held(Kept),
}

struct Kept {
    answer: Arc<Response>,
    /// The readers expected to ask for it that have not yet.
    expected: BTreeSet<ReaderId>,
    bytes: usize,
}

impl RoundState {
    fn stats(&self) -> RoundStats {
        RoundStats {
            sent: self.sent,
            shared: self.shared,
            held_answers: self
                .slots
                .values()
                .filter(|s| matches!(s, Slot::Held(_)))
                .count(),
            held_bytes: self.held_bytes,
            peak_answers: self.peak_answers,
            peak_bytes: self.peak_bytes,
        }
    }

    /// The answer just read by `sender`: kept for the other readers that will ask for it, when
    /// there are any and it fits, else dropped from the round.
    fn settle(
        &mut self,
        key: ReadKey,
        answer: &Arc<Response>,
        sender: ReaderId,
        account: &AccountId,
        location: Option<&str>,
    ) {
        let expected: BTreeSet<ReaderId> = self
            .readers
            .iter()
            .filter(|(id, plan)| {
                **id != sender
                    && plan.account.as_ref() == Some(account)
                    && plan.wants.covers(location)
            })
            .map(|(id, _)| *id)
            .collect();
        let bytes = answer.body.len();
        if expected.is_empty() || self.held_bytes + bytes > self.limits.max_held_bytes {
            self.slots.remove(&key);
            return;
        }
        self.slots.insert(
            key,
            Slot::Held(Kept {
                answer: answer.clone(),
                expected,
                bytes,
            }),
        );
        self.held_bytes += bytes;
        self.peak_bytes = self.peak_bytes.max(self.held_bytes);
        let held = self.stats().held_answers;
        self.peak_answers = self.peak_answers.max(held);
    }

    /// A copy of a kept answer for `reader`, which is then no longer expected.
    fn take(&mut self, key: &ReadKey, reader: ReaderId) -> Response {
        let answer = match self.slots.get(key) {
            Some(Slot::Held(kept)) => Response::clone(&kept.answer),
            _ => unreachable!("take is called on a kept answer"),
        };
        self.taken(key, reader);
        answer
    }

    /// `reader` has what it needed of `key`: the answer is dropped once nobody else expects it.
    fn taken(&mut self, key: &ReadKey, reader: ReaderId) {
        let Some(Slot::Held(kept)) = self.slots.get_mut(key) else {
            return;
        };
        kept.expected.remove(&reader);
        if kept.expected.is_empty() {
            self.held_bytes -= kept.bytes;
            self.slots.remove(key);
        }
    }
}

/// The location of a `/locations/{id}/...` URL under `base`, percent-decoded; `None` for the
/// account-wide paths (`/locations`, `/locations/options`, `/customers`, `/me`).
fn location_of(base: &str, url: &str) -> Option<String> {
    let path = url.strip_prefix(base.trim_end_matches('/'))?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments = path.trim_start_matches('/').split('/');
    if segments.next() != Some("locations") {
        return None;
    }
    let id = segments.next()?;
    segments.next()?;
    Some(
        percent_encoding::percent_decode_str(id)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// The same error for another caller. Every variant is plain data; none carries a secret.
fn copy_error(e: &HttpError) -> HttpError {
    match e {
        HttpError::Api(a) => HttpError::Api(Box::new(ApiError::clone(a))),
        HttpError::QuotaReserveReached {
            api,
            daily_remaining,
            reserve,
        } => HttpError::QuotaReserveReached {
            api,
            daily_remaining: *daily_remaining,
            reserve: *reserve,
        },
        HttpError::Decode { api, path, message } => HttpError::Decode {
            api,
            path: path.clone(),
            message: message.clone(),
        },
        HttpError::Config(m) => HttpError::Config(m.clone()),
        HttpError::TooLarge {
            api,
            method,
            path,
            size,
            limit,
        } => HttpError::TooLarge {
            api,
            method: method.clone(),
            path: path.clone(),
            size: *size,
            limit: *limit,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_location_of_a_url_is_its_second_segment_under_locations() {
        let base = "http://127.0.0.1:9/v2.0";
        assert_eq!(
            location_of(base, "http://127.0.0.1:9/v2.0/locations/12/customers").as_deref(),
            Some("12")
        );
        assert_eq!(
            location_of(
                base,
                "http://127.0.0.1:9/v2.0/locations/a%2Fb/transactions/mac"
            )
            .as_deref(),
            Some("a/b")
        );
        assert_eq!(location_of(base, "http://127.0.0.1:9/v2.0/locations"), None);
        assert_eq!(
            location_of(base, "http://127.0.0.1:9/v2.0/locations/options"),
            None
        );
        assert_eq!(location_of(base, "http://127.0.0.1:9/v2.0/customers"), None);
        assert_eq!(
            location_of(base, "http://elsewhere/v2.0/locations/1/x"),
            None
        );
    }

    #[test]
    fn wants_from_an_empty_list_is_every_location() {
        assert_eq!(Wants::from_config(&[]), Wants::All);
        let some = Wants::from_config(&["1".to_string()]);
        assert!(some.covers(Some("1")));
        assert!(!some.covers(Some("2")));
        assert!(
            some.covers(None),
            "account-wide pages are wanted by every pair"
        );
    }

    #[test]
    fn a_credential_is_known_by_a_keyed_hash_only() {
        let a = ReadRound::new(RoundLimits::default());
        let b = ReadRound::new(RoundLimits::default());
        let key = b"secret-key";
        let id = a.round.account("https://h/v2.0", key);
        assert_ne!(id, a.round.account("https://h/v2.0", b"other-key"));
        assert_ne!(id, a.round.account("https://other/v2.0", key));
        assert_eq!(id, a.round.account("https://h/v2.0/", key));
        assert_ne!(
            id,
            b.round.account("https://h/v2.0", key),
            "keyed per round"
        );
    }
}
