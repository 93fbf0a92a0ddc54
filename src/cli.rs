//! Command-line arguments (DESIGN.md §8). Parsing only: `main.rs` dispatches, `commands` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::sandbox::hotspot::{LinkHeader, OffsetReading};

#[derive(Debug, Parser)]
#[command(
    name = "hotspot-ghl-sync",
    version,
    about = "Keeps a GoHighLevel sub-account in step with a HotspotSystem account"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "HGS_CONFIG",
        default_value = "config/hotspot-ghl-sync.toml"
    )]
    pub config: PathBuf,

    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less logging (errors only).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// The pair of a configuration with `[[pairs]]` to act on (its `name`). `sync`, `status`,
    /// `check` and `run` act on every pair without it, `serve` shows them all; `report`,
    /// `explain`, `calls` and `auth` need it in that form.
    #[arg(long, global = true, value_name = "NAME")]
    pub pair: Option<String>,

    /// Use secret files that group or others may read, with a warning, instead of refusing
    /// them (as ssh refuses such keys).
    #[arg(long, global = true)]
    pub allow_insecure_secret_files: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One reconcile pass; prints the run summary.
    Sync(SyncArgs),
    /// The daemon: each kind on its own cron schedule.
    Run(RunArgs),
    /// Reconciliation reports: `report [RUN|latest]`, `report list`.
    Report(ReportArgs),
    /// Links per kind, last run per kind, quota seen, parked conflicts and errors.
    Status(StatusArgs),
    /// What happened to one guest: its links, every recorded create, update, skip, conflict
    /// and drift with its run, and its notes and tasks.
    Explain(ExplainArgs),
    /// The API calls of a run: attempt, latency, status and error class of each.
    Calls(CallsArgs),
    /// Validates the configuration and reaches both APIs.
    Check(CheckArgs),
    /// Authentication set-up.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Read-only web dashboard over the state database, with /metrics and /healthz.
    Serve(ServeArgs),
    /// Serves both emulators on loopback with seeded data and fault knobs.
    Sandbox(Box<SandboxArgs>),
    /// Emulators + a temporary config + one sync + its report, with no account.
    Demo(DemoArgs),
    /// Shell completions or the man pages, generated from these very arguments.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to generate: `man`, or the completions of a shell.
    pub what: Generated,
    /// Write every file into this directory (for `man`: one page per command) instead of
    /// printing to standard output.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generated {
    Man,
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Comma-separated kinds: contacts, notes, tasks, businesses, appointments.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print the plan and send no write.
    #[arg(long)]
    pub dry_run: bool,
    /// Rescan everything (ignore incremental cursors).
    #[arg(long)]
    pub full: bool,
    /// `json`: the run's writes (with `--dry-run`: per kind, and the estimated requests and
    /// time) and its report, as one JSON document.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Pilot: sync only the first N guests that pass `[filter]` (by HotspotSystem id), with
    /// their notes and tasks; the others are left as they are and the report names them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// The fast lane, once: write only the guests HotspotSystem registered since the last
    /// `--new` (or `[schedule] new` tick), with their notes and onboarding tasks. The first one
    /// only sets its cursors; the backlog is the regular passes' work.
    #[arg(long, conflicts_with_all = ["only", "dry_run", "full", "limit"])]
    pub new: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Html,
}

/// Output of the commands a script may read: text for people, JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run id, `latest` (default), or `list`.
    pub run: Option<String>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Report on the last N runs instead of one (HTML and JSON).
    #[arg(long)]
    pub last: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A HotspotSystem id, an email, a phone number or a GHL contact id.
    pub guest: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CallsArgs {
    /// A run id or `latest` (default).
    pub run: Option<String>,
    /// Only attempts that failed (retried ones included).
    #[arg(long)]
    pub failed: bool,
    /// Only answers with this HTTP status.
    #[arg(long)]
    pub status: Option<u16>,
    /// Only paths containing this text (paths are stored with ids elided, e.g. `/contacts/{id}`).
    #[arg(long)]
    pub path: Option<String>,
    /// At most this many calls, oldest first.
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; loopback unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1:8686")]
    pub listen: std::net::SocketAddr,
    /// Allow listening on a non-loopback address. Credentials must also be configured
    /// ([dashboard] user and password_hash_file, or token_file): without them `serve` refuses.
    #[arg(long)]
    pub allow_remote: bool,
    /// /healthz answers 503 when a scheduled job's last successful run is older than this
    /// (default: twice that job's own interval, or 26 h when nothing is scheduled).
    #[arg(long)]
    pub health_max_age_secs: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Also serve the dashboard (and /healthz, /metrics) from the daemon, on this address;
    /// loopback unless --allow-remote. Without it the daemon listens on nothing.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Allow --listen on a non-loopback address. Credentials must also be configured
    /// ([dashboard] user and password_hash_file, or token_file): without them `run` refuses.
    #[arg(long, requires = "listen")]
    pub allow_remote: bool,
    /// As `serve --health-max-age-secs`.
    #[arg(long, requires = "listen")]
    pub health_max_age_secs: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// GHL OAuth.
    #[command(subcommand)]
    Ghl(GhlAuthCommand),
}

#[derive(Debug, Subcommand)]
pub enum GhlAuthCommand {
    /// Print the authorization URL with the scopes the enabled features need.
    Url,
    /// Exchange an authorization code for a token pair and store it.
    Exchange {
        #[arg(long)]
        code: String,
    },
    /// Expiry, scopes and location of the stored token (never the token).
    Status,
    /// The agency's sub-accounts and whether the app is installed there (`auth = "agency"`).
    Locations,
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Seed of the data generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 5)]
    pub locations: usize,
    #[arg(long, default_value_t = 500)]
    pub customers: usize,
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// How many subscribers share an email with a customer.
    #[arg(long, default_value_t = 60)]
    pub subscribers_also_customers: usize,
    #[arg(long, default_value_t = 1000)]
    pub transactions: usize,
}

/// `sandbox --forbidden-body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForbiddenBodyArg {
    /// NestJS's full error: `statusCode`, `message`, `error`.
    Nest,
    /// `{"message": ...}` alone.
    MessageOnly,
    /// `{}`.
    Empty,
}

/// `sandbox --search-date-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DateRangeArg {
    /// ISO-8601 strings only.
    Iso,
    /// Epoch milliseconds only.
    Millis,
    /// Either form.
    Both,
    /// Neither form: no range filter on dates.
    Neither,
    /// Either form, then ignored: every contact is answered.
    Ignored,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(flatten)]
    pub seed: SeedArgs,
    /// Port of the HotspotSystem emulator (0 = any).
    #[arg(long, default_value_t = 8701)]
    pub hotspot_port: u16,
    /// Port of the GHL emulator (0 = any).
    #[arg(long, default_value_t = 8702)]
    pub ghl_port: u16,
    /// GHL requests allowed per window.
    #[arg(long, default_value_t = 100)]
    pub rate_limit: u32,
    /// GHL rate window in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub rate_window_ms: u64,
    /// GHL daily quota.
    #[arg(long, default_value_t = 200_000)]
    pub daily_quota: u64,
    /// Length of GHL's day in seconds, after which the daily quota is back (default: the UTC
    /// day, which only sets the reset header).
    #[arg(long)]
    pub daily_period_secs: Option<u64>,
    /// GHL answers without the undocumented `X-RateLimit-Daily-Reset` header.
    #[arg(long)]
    pub no_daily_reset_header: bool,
    /// Added latency of every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Probability of a 500 answer (0..1); likewise 502, 503.
    #[arg(long, default_value_t = 0.0)]
    pub p500: f64,
    #[arg(long, default_value_t = 0.0)]
    pub p502: f64,
    #[arg(long, default_value_t = 0.0)]
    pub p503: f64,
    /// Probability that a write is applied and its connection then dropped.
    #[arg(long, default_value_t = 0.0)]
    pub p_drop_after_write: f64,
    /// Probability of a 429 with Retry-After, and without.
    #[arg(long, default_value_t = 0.0)]
    pub p429_retry_after: f64,
    #[arg(long, default_value_t = 0.0)]
    pub p429_no_retry_after: f64,
    /// Lifetime of OAuth access tokens, in seconds.
    #[arg(long, default_value_t = 86_399)]
    pub token_ttl_secs: u64,
    /// A token refresh ends the access token of the old pair at once (GHL does not say).
    #[arg(long)]
    pub revoke_access_on_refresh: bool,
    /// A scope denial's body is `{"message": ...}` alone, not NestJS's full error.
    #[arg(long)]
    pub scope_denial_message_only: bool,
    /// Let the GHL location accept duplicate contacts.
    #[arg(long)]
    pub allow_duplicates: bool,
    /// How long GHL search results lag writes, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub search_lag_ms: u64,
    /// GHL's duplicate matching (create check, upsert) lags writes like search does.
    #[arg(long)]
    pub dedup_lags: bool,
    /// GHL answers without the `X-RateLimit-*` headers.
    #[arg(long)]
    pub no_rate_limit_headers: bool,
    /// GHL's location task search answers pending tasks only when `completed` is not given.
    #[arg(long)]
    pub task_search_pending_by_default: bool,
    /// GHL keeps deleted tasks readable, flagged `deleted: true` (task search, GET by id).
    #[arg(long)]
    pub deleted_task_rows: bool,
    /// GHL's bulk business association handles and lists at most this many ids per call.
    #[arg(long)]
    pub bulk_business_limit: Option<usize>,
    /// GHL contact writes take custom field values by `id` only (refuse `key`).
    #[arg(long)]
    pub custom_fields_by_id_only: bool,
    /// The date form GHL's contact search takes in a `dateUpdated`/`dateAdded` range filter;
    /// the other form is refused with 422.
    #[arg(long, value_enum, default_value_t = DateRangeArg::Both)]
    pub search_date_format: DateRangeArg,
    /// A CRM user's edit in GHL leaves the contact's `dateUpdated` alone.
    #[arg(long)]
    pub edits_keep_date_updated: bool,
    /// GHL sub-accounts under the emulated agency, each with its own records, Private
    /// Integration Token, burst window and daily quota.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub ghl_locations: u16,
    /// Send HotspotSystem webhooks (`customer.create`, every location) to this callback URL,
    /// on loopback only, e.g. `http://127.0.0.1:8787/hooks/hotspotsystem?event=customer.create`.
    /// Only guests added while the sandbox runs send one (see --new-guest-every-secs).
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// The key the webhooks are signed with (put it in `[webhooks] hotspot_keys_env`).
    #[arg(long, default_value = "sandbox-webhook-key")]
    pub webhook_key: String,
    /// The header the signature travels in.
    #[arg(long, value_enum, default_value_t = crate::sandbox::hotspot_webhooks::SignatureHeader::Standard)]
    pub webhook_header: crate::sandbox::hotspot_webhooks::SignatureHeader,
    /// How the signature's digest is written: base64 (the reference), base64 of the hex digest,
    /// or the hex digest.
    #[arg(long, value_enum, default_value_t = crate::sandbox::hotspot_webhooks::SignatureEncoding::Base64)]
    pub webhook_signature: crate::sandbox::hotspot_webhooks::SignatureEncoding,
    /// How the webhook body spells the record's keys.
    #[arg(long, value_enum, default_value_t = crate::sandbox::hotspot_webhooks::BodyKeys::Example)]
    pub webhook_keys: crate::sandbox::hotspot_webhooks::BodyKeys,
    /// One POST per record, or one per batch with an array of records.
    #[arg(long, value_enum, default_value_t = crate::sandbox::hotspot_webhooks::Batching::PerRecord)]
    pub webhook_batching: crate::sandbox::hotspot_webhooks::Batching,
    /// How often queued webhooks go out, in milliseconds (HotspotSystem: about a minute).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_batch_ms: u64,
    /// Add a new guest at the first location every this many seconds (with --webhook-url, each
    /// sends its webhook).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub new_guest_every_secs: Option<u64>,
    /// The body of GHL's 403 for a token used on another location.
    #[arg(long, value_enum, default_value_t = ForbiddenBodyArg::Nest)]
    pub forbidden_body: ForbiddenBodyArg,
    /// GHL's `GET /oauth/installedLocations` lowers a larger `limit` to this.
    #[arg(long, default_value_t = 100)]
    pub installed_locations_max_limit: u16,
    /// Spread the HotspotSystem customers evenly over the locations (the same number each)
    /// instead of at random.
    #[arg(long)]
    pub even_spread: bool,
    /// HotspotSystem numbers as strings and `YYYY-MM-DD HH:MM:SS` dates.
    #[arg(long)]
    pub lenient_types: bool,
    /// HotspotSystem sends MySQL zero dates (`0000-00-00 00:00:00`) on every 100th record.
    #[arg(long)]
    pub zero_dates: bool,
    /// HotspotSystem sends dates that are no date (`2023-02-30 25:61:00`) on every 100th record.
    #[arg(long)]
    pub malformed_dates: bool,
    /// HotspotSystem sends digit-only text (ids, zip codes) as JSON numbers.
    #[arg(long)]
    pub text_as_numbers: bool,
    /// HotspotSystem sends nulls for every field of some records, and some records as `null`.
    #[arg(long)]
    pub unexpected_nulls: bool,
    /// HotspotSystem sends `city` as a JSON object on every 100th customer or subscriber.
    #[arg(long)]
    pub object_cities: bool,
    /// A header set on every GHL answer over the emulator's own, `NAME:VALUE` (repeatable), e.g.
    /// `x-ratelimit-interval-milliseconds:86400000`.
    #[arg(long = "ghl-header", value_name = "NAME:VALUE")]
    pub ghl_headers: Vec<String>,
    /// Precede every successful GHL answer with this many bytes of JSON whitespace.
    #[arg(long, default_value_t = 0)]
    pub pad_body_bytes: u64,
    /// Send padded bodies chunked, without `Content-Length`.
    #[arg(long)]
    pub pad_body_unannounced: bool,
    /// Answer every GHL write with 422 and this message (e.g. one carrying a newline).
    #[arg(long)]
    pub write_error_message: Option<String>,
    /// How HotspotSystem reads `offset`: a record offset, a zero-based page index (the
    /// reference's wording), or not at all (hostile).
    #[arg(long, value_enum, default_value_t = OffsetReading::Records)]
    pub hotspot_offset: OffsetReading,
    /// HotspotSystem's `Link` header: standard, absent, or a `next` alternating between two
    /// pages (hostile).
    #[arg(long, value_enum, default_value_t = LinkHeader::Standard)]
    pub hotspot_link: LinkHeader,
    /// GHL contact search reports `total` as at most this many while the pages go on.
    #[arg(long)]
    pub search_total_cap: Option<u64>,
    /// GHL contact search orders each answer anew when the request has no `sort`.
    #[arg(long)]
    pub search_unstable_order: bool,
    /// Hostile GHL contact search: the same full page, the same `searchAfter` and a total of a
    /// billion, whatever is asked.
    #[arg(long)]
    pub search_stuck: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub seed: SeedArgs,
    /// Keep the demo's state here instead of a temporary directory (to explore it with `report`/`status`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}
