//! HotspotSystem v2.0 client: read-only, paging streamed page by page.

use std::collections::HashSet;
use std::marker::PhantomData;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::shared::SharedReads;
use super::wire::{
    Customer, ListEnvelope, Location, MacTransaction, Owner, PaidTransaction, Pong,
    SocialTransaction, Voucher, VoucherTransaction,
};
use crate::decode::{DecodeLog, Item, Listing, Record};
use crate::http::{HttpError, HttpPolicy, Method, Request, Response, check_base_url};
use crate::listing::{Incomplete, SeenIds, verdict};
use crate::secret::Secret;

pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// HotspotSystem's API key header.
const API_KEY_HEADER: &str = "sn-apikey";

#[derive(Clone)]
pub struct HotspotClient {
    base: String,
    api_key: Secret,
    policy: HttpPolicy,
    page_size: u32,
    /// What list items could not be read, for the run report.
    decode: DecodeLog,
    /// The round of passes this client's GETs are shared with, if any.
    shared: Option<SharedReads>,
}

impl std::fmt::Debug for HotspotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotspotClient")
            .field("base", &self.base)
            .field("api_key", &"[REDACTED]")
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl HotspotClient {
    /// `base_url` like `https://api.hotspotsystem.com/v2.0`; http is refused except on loopback.
    pub fn new(
        base_url: &str,
        api_key: SecretString,
        policy: HttpPolicy,
    ) -> Result<Self, HttpError> {
        Self::with_secret(base_url, Secret::from(api_key), policy)
    }

    /// As [`HotspotClient::new`] with the key as configured: one kept in a file is read again
    /// for each request (see [`Secret::current`]).
    pub fn with_secret(
        base_url: &str,
        api_key: Secret,
        policy: HttpPolicy,
    ) -> Result<Self, HttpError> {
        check_base_url(base_url)?;
        Ok(HotspotClient {
            base: base_url.trim_end_matches('/').to_string(),
            api_key,
            policy,
            page_size: DEFAULT_PAGE_SIZE,
            decode: DecodeLog::default(),
            shared: None,
        })
    }

    /// Page size (`limit`) used by every pager; at least 1.
    pub fn with_page_size(mut self, limit: u32) -> Self {
        self.page_size = limit.max(1);
        self
    }

    /// Sends this client's GETs through a round of passes that read the same account together
    /// (see [`super::shared`]): a read another pair of the round sent, or is sending, is not
    /// sent again.
    pub fn with_shared_reads(mut self, reads: SharedReads) -> Self {
        if let Ok(key) = self.key() {
            reads.attach(&self.base, key.expose_secret().as_bytes());
        }
        self.shared = Some(reads);
        self
    }

    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    /// Values and records the pages of this client could not read.
    pub fn decode_log(&self) -> &DecodeLog {
        &self.decode
    }

    fn key(&self) -> Result<SecretString, HttpError> {
        self.api_key
            .current()
            .map_err(|e| HttpError::Config(e.to_string()))
    }

    fn request(&self, url: String, template: &str) -> Result<Request, HttpError> {
        Request::new(Method::GET, url, template)
            .header("accept", "application/json")?
            .secret_header(API_KEY_HEADER, self.key()?.expose_secret())
    }

    /// Sends `req`, through the round of shared reads when there is one.
    async fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let key = req.headers.get(API_KEY_HEADER).map(|v| v.as_bytes());
        match (&self.shared, key) {
            (Some(shared), Some(key)) if req.method == Method::GET => {
                shared
                    .get(&self.base, key, req, || self.send_own(req))
                    .await
            }
            _ => self.send_own(req).await,
        }
    }

    /// Sends `req` under this client's policy. After a 401, a key kept in a file is read
    /// again: when it changed (rotated while the request was in flight) the request is sent
    /// once more with the new key.
    async fn send_own(&self, req: &Request) -> Result<Response, HttpError> {
        match self.policy.send(req).await {
            Err(HttpError::Api(e)) if e.status == Some(401) && self.api_key.is_file() => {
                let fresh = self.key()?;
                let sent = req.headers.get(API_KEY_HEADER).map(|v| v.as_bytes());
                if sent == Some(fresh.expose_secret().as_bytes()) {
                    return Err(HttpError::Api(e));
                }
                let again = req
                    .clone()
                    .secret_header(API_KEY_HEADER, fresh.expose_secret())?;
                self.policy.send(&again).await
            }
            other => other,
        }
    }

    async fn get_one<T: DeserializeOwned>(&self, path: &str) -> Result<T, HttpError> {
        let req = self.request(format!("{}{}", self.base, path), path)?;
        let resp = self.send(&req).await?;
        resp.json(self.policy.api(), path)
    }

    /// Verifies the key: `GET /me`.
    pub async fn me(&self) -> Result<Owner, HttpError> {
        self.get_one("/me").await
    }

    pub async fn ping(&self) -> Result<Pong, HttpError> {
        self.get_one("/ping").await
    }

    /// `GET /locations/options`: `{items:[{id,name}]}`, unpaged.
    pub async fn location_options(&self) -> Result<Vec<Location>, HttpError> {
        let env: ListEnvelope<Item<Location>> = self.get_one("/locations/options").await?;
        Ok(self.decode.keep(Listing::Locations, env.items))
    }

    fn pager<T>(&self, location: Option<&str>, listing: Listing) -> Pager<T> {
        let resource = listing.name();
        let (path, template) = match location {
            Some(loc) => (
                format!("/locations/{}/{resource}", encode_segment(loc)),
                format!("/locations/{{id}}/{resource}"),
            ),
            None => (format!("/{resource}"), format!("/{resource}")),
        };
        Pager {
            client: self.clone(),
            first_url: format!("{}{}", self.base, path),
            template,
            listing,
            sort: None,
            fields: None,
            next: Some(Next::Offset(0)),
            received: 0,
            pages: 0,
            total_count: None,
            seen: SeenIds::default(),
            first_ids: Vec::new(),
            reading: OffsetReading::Unknown,
            visited: HashSet::new(),
            finished: false,
            failed: false,
            _t: PhantomData,
        }
    }

    pub fn locations(&self) -> Pager<Location> {
        self.pager(None, Listing::Locations)
    }

    /// Customers of all locations (`None`) or of one.
    pub fn customers(&self, location: Option<&str>) -> Pager<Customer> {
        self.pager(location, Listing::Customers)
    }

    pub fn subscribers(&self, location: Option<&str>) -> Pager<Customer> {
        self.pager(location, Listing::Subscribers)
    }

    pub fn mac_transactions(&self, location: Option<&str>) -> Pager<MacTransaction> {
        self.pager(location, Listing::MacTransactions)
    }

    pub fn voucher_transactions(&self, location: Option<&str>) -> Pager<VoucherTransaction> {
        self.pager(location, Listing::VoucherTransactions)
    }

    pub fn paid_transactions(&self, location: Option<&str>) -> Pager<PaidTransaction> {
        self.pager(location, Listing::PaidTransactions)
    }

    pub fn social_transactions(&self, location: Option<&str>) -> Pager<SocialTransaction> {
        self.pager(location, Listing::SocialTransactions)
    }

    pub fn vouchers(&self, location: Option<&str>) -> Pager<Voucher> {
        self.pager(location, Listing::Vouchers)
    }
}

fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Next {
    /// Build the URL ourselves with this record offset.
    Offset(u64),
    /// Build the URL ourselves with `offset` as this page index (a server found to read it so).
    PageIndex(u64),
    /// Follow the server's `Link: rel="next"` URL as given.
    Url(String),
}

/// How the server reads `offset`. The reference's wording says a page index, its Link example
/// and every known client a record offset; without a `Link` header to follow, the pager asks
/// once, before its first request at a non-zero offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OffsetReading {
    Unknown,
    Records,
    /// Pages by index; `first` is the index of the first page (0, or 1 for a server that
    /// reads 0 as 1).
    PageIndex {
        first: u64,
    },
}

/// Streams one list endpoint page by page; memory holds one page at a time.
///
/// The listing ends on a short or empty page, or where `Link` has no `rel="next"`;
/// `total_count` is a hint. `complete()` is what deletion inference relies on: true only when
/// every page arrived, no record came twice, `offset` was read as documented and no fewer
/// records arrived than `total_count` says. A listing that makes no progress (a `Link` cycle,
/// an ignored `offset`) ends with an error.
pub struct Pager<T> {
    client: HotspotClient,
    first_url: String,
    template: String,
    listing: Listing,
    sort: Option<String>,
    fields: Option<String>,
    next: Option<Next>,
    received: u64,
    pages: u64,
    total_count: Option<u64>,
    seen: SeenIds,
    /// The first two ids of the first page, to tell how the server reads `offset`.
    first_ids: Vec<String>,
    reading: OffsetReading,
    /// `Link` URLs followed so far: one coming back is a cycle.
    visited: HashSet<String>,
    finished: bool,
    failed: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Pager<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("path", &self.template)
            .field("received", &self.received)
            .field("total_count", &self.total_count)
            .field("finished", &self.finished)
            .finish()
    }
}

impl<T: DeserializeOwned + Record + Default> Pager<T> {
    /// One property, `-` prefix for descending (e.g. `-registered_at`).
    pub fn sort(mut self, sort: &str) -> Self {
        self.sort = Some(sort.to_string());
        self
    }

    /// Comma-separated projection.
    pub fn fields(mut self, fields: &str) -> Self {
        self.fields = Some(fields.to_string());
        self
    }

    pub fn total_count(&self) -> Option<u64> {
        self.total_count
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn complete(&self) -> bool {
        self.finished && self.incomplete().is_empty()
    }

    /// Why the listing is not complete (empty while it is, or while it is still being read).
    pub fn incomplete(&self) -> Vec<Incomplete> {
        let mut out = verdict(self.failed, &self.seen, self.total_count);
        if matches!(self.reading, OffsetReading::PageIndex { .. }) {
            out.push(Incomplete::OffsetIsPageIndex);
        }
        out
    }

    /// The next page, `Ok(None)` once the listing is exhausted. After an error the pager is
    /// finished and never `complete()`.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, HttpError> {
        let Some(next) = self.next.take() else {
            return Ok(None);
        };
        match self.fetch(next).await {
            Ok(page) => Ok(page),
            Err(e) => {
                self.failed = true;
                self.finished = true;
                self.next = None;
                Err(e)
            }
        }
    }

    /// Drains the pager; for small listings only (locations).
    pub async fn collect_all(mut self) -> Result<Vec<T>, HttpError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    fn no_progress(&self, why: impl std::fmt::Display) -> HttpError {
        crate::listing::no_progress(self.client.policy.api(), &self.template, why)
    }

    /// A request we build ourselves: `offset` with `limit`, the sort and the projection.
    fn built(&self, limit: u64, offset: u64) -> Result<Request, HttpError> {
        let mut r = self
            .client
            .request(self.first_url.clone(), &self.template)?
            .query("limit", limit)
            .query("offset", offset);
        if let Some(s) = &self.sort {
            r = r.query("sort", s);
        }
        if let Some(f) = &self.fields {
            r = r.query("fields", f);
        }
        Ok(r)
    }

    async fn get(&self, req: &Request) -> Result<(Response, ListEnvelope<Item<T>>), HttpError> {
        let resp = self.client.send(req).await?;
        // Items are decoded one by one: a value that cannot be read never fails the page.
        let env: ListEnvelope<Item<T>> = resp.json(self.client.policy.api(), &self.template)?;
        Ok((resp, env))
    }

    /// Asks for 2 records at `offset=1`. Read as a record offset that is the first page's
    /// second and third record; read as a page index, the second page of 2 (the first page's
    /// third and fourth) or, counting pages from 1 (or ignoring `offset`), the first page again.
    async fn probe_reading(&mut self) -> Result<OffsetReading, HttpError> {
        let (_, env) = self.get(&self.built(2, 1)?).await?;
        let first = env
            .items
            .first()
            .and_then(Item::record)
            .and_then(Record::record_id);
        let reading = match first {
            Some(id) if id == self.first_ids[1] => OffsetReading::Records,
            Some(id) if id == self.first_ids[0] => OffsetReading::PageIndex { first: 1 },
            _ => OffsetReading::PageIndex { first: 0 },
        };
        if let OffsetReading::PageIndex { first } = reading {
            tracing::warn!(
                api = self.client.policy.api(),
                path = %self.template,
                first_page = first,
                "HotspotSystem reads `offset` as a page index here, not as a record offset: \
                 reading the pages by index; the listing is marked incomplete"
            );
        }
        Ok(reading)
    }

    async fn fetch(&mut self, next: Next) -> Result<Option<Vec<T>>, HttpError> {
        let limit = self.client.page_size as u64;
        let mut next = next;
        if let Next::Offset(off) = next
            && off > 0
            && self.reading == OffsetReading::Unknown
        {
            // With a page size of 1 both readings ask for the same records.
            self.reading = if limit >= 2 && self.first_ids.len() == 2 {
                self.probe_reading().await?
            } else {
                OffsetReading::Records
            };
            if let OffsetReading::PageIndex { first } = self.reading {
                next = Next::PageIndex(first + self.pages);
            }
        }
        let req = match &next {
            Next::Offset(off) => self.built(limit, *off)?,
            Next::PageIndex(page) => self.built(limit, *page)?,
            Next::Url(u) => self.client.request(u.clone(), &self.template)?,
        };
        let (resp, env) = self.get(&req).await?;
        if let Some(tc) = env.metadata.as_ref().and_then(|m| m.total_count) {
            self.total_count = Some(tc.max(0) as u64);
        }
        let n = env.items.len() as u64;
        let ids: Vec<Option<String>> = env
            .items
            .iter()
            .map(|i| i.record().and_then(Record::record_id))
            .collect();
        if self.pages == 0 {
            self.first_ids = ids.iter().take(2).flatten().cloned().collect();
        }
        let progress = self.seen.add(ids.iter().flatten().map(String::as_str));
        self.received += n;
        self.pages += 1;
        if progress.stalled() {
            return Err(self.no_progress(match &next {
                Next::Url(_) => "Link rel=\"next\" led to a page of records already read".into(),
                Next::Offset(o) => format!(
                    "offset={o} returned only records already read: the server ignores `offset`"
                ),
                Next::PageIndex(p) => format!(
                    "offset={p} (read as a page index) returned only records already read: the server ignores `offset`"
                ),
            }));
        }
        if let Next::PageIndex(p) = next
            && progress.repeated > 0
        {
            // Pages by index never overlap; an overlap means the probe was misled (records
            // moved between the first page and the probe), and going on would bring one new
            // record per request.
            return Err(self.no_progress(format!(
                "offset={p} read as a page index repeated {} record(s) already read: `offset` \
                 reads as neither a record offset nor a page index, or the records moved while \
                 they were read",
                progress.repeated
            )));
        }
        if progress.repeated > 0 {
            tracing::warn!(
                api = self.client.policy.api(),
                path = %self.template,
                repeated = progress.repeated,
                "records came back twice: the listing is incomplete"
            );
        }
        self.next = self.next_from(&resp, &next, n, limit)?;
        if self.next.is_none() {
            self.finished = true;
        }
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(self.client.decode.keep(self.listing, env.items)))
    }

    fn next_from(
        &mut self,
        resp: &Response,
        current: &Next,
        n: u64,
        limit: u64,
    ) -> Result<Option<Next>, HttpError> {
        if n == 0 {
            return Ok(None);
        }
        if let Some(link) = resp.header_str("link") {
            return match link_next(link) {
                Some(url) => {
                    // Never send the key to another host than the configured one.
                    if !same_origin(&url, &self.client.base) {
                        return Err(HttpError::decode(
                            self.client.policy.api(),
                            &self.template,
                            "Link rel=\"next\" points outside the configured base URL",
                        ));
                    }
                    // Every followed URL is in `visited`, the current one included.
                    if !self.visited.insert(url.clone()) {
                        return Err(self.no_progress(
                            "Link rel=\"next\" leads back to a page already read (a cycle of next links)",
                        ));
                    }
                    Ok(Some(Next::Url(url)))
                }
                None => Ok(None),
            };
        }
        // No Link header: the listing goes on while pages come back full. A short page while
        // the server counts more records is asked past once: a server may cap `limit` below
        // ours; an empty answer then ends the listing (incomplete, below its count).
        let more_counted = self.total_count.is_some_and(|tc| self.seen.distinct() < tc);
        if n < limit && !more_counted {
            return Ok(None);
        }
        Ok(Some(match current {
            Next::Offset(o) => Next::Offset(o + n),
            Next::PageIndex(p) => Next::PageIndex(p + 1),
            // We followed links before but this answer has none: count what we have.
            Next::Url(_) => Next::Offset(self.received),
        }))
    }
}

/// The URL of `rel="next"` in an RFC 8288 `Link` header.
pub fn link_next(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let url = pieces.next()?.trim();
        let url = url.strip_prefix('<')?.strip_suffix('>')?;
        let is_next = pieces.any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .map(|v| v.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        is_next.then(|| url.to_string())
    })
}

fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_header() {
        let h = r#"<https://api.hotspotsystem.com/v2.0/locations?limit=10&offset=0>; rel="self", <https://api.hotspotsystem.com/v2.0/locations?limit=10&offset=10>; rel="next""#;
        assert_eq!(
            link_next(h).as_deref(),
            Some("https://api.hotspotsystem.com/v2.0/locations?limit=10&offset=10")
        );
        assert_eq!(link_next(r#"<https://x/a>; rel="prev""#), None);
    }

    #[test]
    fn origin_check() {
        assert!(same_origin(
            "https://a.com/v2.0/x?offset=1",
            "https://a.com/v2.0"
        ));
        assert!(!same_origin(
            "https://evil.com/v2.0/x",
            "https://a.com/v2.0"
        ));
        assert!(!same_origin("http://a.com/v2.0/x", "https://a.com/v2.0"));
    }

    #[test]
    fn refuses_plain_http_off_loopback() {
        let policy = HttpPolicy::new(
            crate::http::PolicyConfig::hotspot(),
            crate::http::AuditSink::new(),
        )
        .unwrap();
        let err = HotspotClient::new(
            "http://api.hotspotsystem.com/v2.0",
            SecretString::from("k"),
            policy,
        )
        .unwrap_err();
        assert!(err.to_string().contains("https"));
    }
}
