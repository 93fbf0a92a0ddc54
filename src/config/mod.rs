//! Configuration: raw serde structs (`deny_unknown_fields`) are deserialized from TOML, then
//! validated into [`Config`] (the ripgrep pattern: raw input → validated values).
//!
//! Every error names the file, the key (dotted path) and the line, because users edit this file by
//! hand and a message without a location sends them hunting. Secrets are never values in the file:
//! the file names an environment variable or a file, and the secret is read at load time into a
//! [`SecretString`] so that no `Debug`, log or error can show it.

mod ghl_keys;
mod pairs;
mod webhooks;

pub use ghl_keys::{GhlKeys, KeyError, PUBLISHED_RSA_KEY_PEM, parse_ed25519, parse_rsa};
pub use pairs::{Form, Installation, Pair, SINGLE_PAIR_NAME, UnknownPair};
pub use webhooks::{DEFAULT_MAX_BODY_BYTES, HotspotKeys, WebhooksConfig};

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::secret::{InsecureFiles, Secret};
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use chrono::{DateTime, Utc};

use crate::http::PolicyConfig;
use crate::mapping::{FieldMap, MappingConfig, SourceField, TagRules};
use crate::model::{
    ConflictPolicy, DriftPolicy, Field, PhoneNormalizer, SourceContact, SourceDeletePolicy,
    StdField, TargetDeletePolicy, norm_email,
};
use crate::reconcile::ContactPolicy;
use crate::server::Limits;
use crate::server::auth::{Access, SecretSource};

/// What went wrong, so that callers and tests can tell error classes apart without parsing text.
/// `[contacts] default_country` when unset: the country of phone numbers written without one.
pub const DEFAULT_COUNTRY: &str = "US";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file is not valid TOML.
    Syntax,
    /// A key this version does not know (often a typo).
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// The value has the wrong TOML type.
    WrongType,
    /// A string that must be one of a fixed set is not.
    EnumValue,
    /// A cron expression that does not parse.
    Cron,
    /// A number outside its allowed range.
    Range,
    /// A base URL that is not HTTPS and not loopback, or not a URL at all.
    Url,
    /// An environment variable or file holding a secret is missing, unreadable or empty.
    Secret,
    /// Any other invalid value (templates, field names, duplicates, conflicting keys).
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: key `{key}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        /// Dotted key path, e.g. `ghl.base_url` or `tasks.onboarding[0].title`.
        key: String,
        /// 1-based line number.
        line: usize,
        kind: ConfigErrorKind,
        message: String,
    },
}

impl ConfigError {
    pub fn kind(&self) -> Option<ConfigErrorKind> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { kind, .. } => Some(*kind),
        }
    }

    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }

    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { line, .. } => Some(*line),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validated configuration
// ---------------------------------------------------------------------------------------------

/// The validated configuration. Fields are public so that the demo can point the base URLs and
/// the state path at its temporary sandbox (prefer [`Config::with_overrides`], which re-checks).
/// The mapping, the contact policy and the HTTP policies are built from them at load: changing
/// one of their keys afterwards changes nothing a pass does.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (for messages).
    pub source_path: PathBuf,
    pub state: StateConfig,
    pub hotspot: HotspotConfig,
    /// `[filter]`: the guests a pass syncs (pilot mode); empty: every guest read.
    pub filter: GuestFilter,
    pub ghl: GhlConfig,
    pub http: HttpConfig,
    pub sync: SyncConfig,
    pub schedule: ScheduleConfig,
    pub contacts: ContactsConfig,
    pub notes: NotesConfig,
    pub tasks: TasksConfig,
    pub businesses: BusinessesConfig,
    pub appointments: AppointmentsConfig,
    pub report: ReportConfig,
    pub dashboard: DashboardConfig,
    /// `[notify]`: where alerts go; `None` when neither a webhook nor a command is set.
    pub notify: Option<NotifyConfig>,
    /// `[webhooks]`: the receiver `run` serves (top level only: one per process).
    pub webhooks: WebhooksConfig,
    /// Built from the keys above when the file loads: a pass only reads these.
    decided: Decided,
}

/// What a pass runs on, decided once from the validated keys, so that no configuration string
/// is read again during a pass and a mistake can only surface when the file loads.
#[derive(Debug, Clone)]
struct Decided {
    /// Without location names: those are run data ([`MappingConfig::with_location_names`]).
    mapping: MappingConfig,
    /// Its `now` is set per pass by [`Config::contact_policy`].
    contact_policy: ContactPolicy,
    ghl_http: PolicyConfig,
    hotspot_http: PolicyConfig,
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    /// SQLite state file; relative paths are relative to the working directory.
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct HotspotConfig {
    /// Without trailing slash.
    pub base_url: String,
    pub api_key: Secret,
    /// Location ids to sync; empty means all locations.
    pub locations: Vec<String>,
    pub page_size: u32,
    /// Requests per `rate_window_secs` (HotspotSystem documents no limit; be polite).
    pub rate_limit: u32,
    pub rate_window_secs: u64,
}

#[derive(Debug, Clone)]
pub enum GhlAuth {
    /// A Private Integration Token (static bearer).
    PrivateToken { token: Secret },
    /// OAuth 2.0 authorization code flow; tokens live in the state store.
    OAuth {
        client_id: String,
        client_secret: Secret,
        redirect_uri: String,
        authorize_url: String,
        scopes: Vec<String>,
    },
    /// The agency's OAuth installation: one Company token, kept in the agency's own token store
    /// and shared by every pair of the file, mints a location token for this pair's location.
    Agency(AgencyAuth),
}

/// `auth = "agency"`: the app installed once at agency (Company) level.
#[derive(Debug, Clone)]
pub struct AgencyAuth {
    /// The agency's company id, sent with each `POST /oauth/locationToken`.
    pub company_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
    pub authorize_url: String,
    /// SQLite file holding the Company token pair (`ghl.agency_state`): never a pair's own state,
    /// so a pair's state file moves alone and mints from the agency store of its new host.
    pub token_store: PathBuf,
    /// The marketplace app's id (`ghl.app_id`): only `auth ghl locations` needs it.
    pub app_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GhlConfig {
    /// Without trailing slash.
    pub base_url: String,
    pub location_id: String,
    pub auth: GhlAuth,
    /// Custom field key (e.g. `contact.hotspot_customer_id`) holding the HotspotSystem id.
    pub hotspot_id_field: Option<String>,
    /// Requests per `rate_window_secs` per location.
    pub rate_limit: u32,
    pub rate_window_secs: u64,
    /// Requests of the daily quota kept unused; writing stops when only this many remain.
    pub daily_reserve: u32,
    /// How long a daily-remaining figure at the reserve is believed when GHL gives no usable
    /// reset time; then one request checks it again.
    pub daily_quota_recheck_secs: u64,
    pub max_concurrency: usize,
    pub lost_create_recovery: LostCreateRecovery,
    /// `ghl.scopes` as the file writes it (`None` when absent): replaces the list `check` and
    /// `auth` compute from the enabled features.
    pub listed_scopes: Option<Vec<String>>,
}

/// How a contact create whose answer was lost (5xx, timeout, dropped connection) is recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostCreateRecovery {
    /// Re-send it at once as `POST /contacts/upsert` keyed by email or phone, so GHL matches the
    /// contact the lost answer may have created. Relies on GHL's duplicate matching seeing a
    /// contact created a moment earlier, which the reference does not confirm (its search
    /// index lags writes): where it lags, this makes duplicates on a location that allows them.
    Upsert,
    /// Leave the journaled intent pending and look for the contact in later runs' listings;
    /// create it again only when it has not shown up within 2 minutes. The default: safe
    /// whether or not GHL's duplicate matching lags. No read could confirm the contact absent
    /// sooner: a lost answer leaves no id to GET, and search and duplicate matching may lag.
    #[default]
    Wait,
}

pub use crate::http::DEFAULT_MAX_RESPONSE_BYTES;

/// 30 minutes: a no-change pass over 100,000 guests took under 3 minutes (BENCHMARKS.md), so this
/// stops only a pass that is stuck (a server that answers slowly for ever, a listing that never
/// ends) and an initial import of a large account, which the next run continues where it stopped.
pub const DEFAULT_PASS_BUDGET_SECS: u64 = 30 * 60;

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub max_elapsed_secs: u64,
    /// Larger answers are refused (a GHL page of 100 contacts is well under 1 MB).
    pub max_response_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// A pass still going after this long stops as if asked to: writes in flight finish, the
    /// rest is deferred, and the run is recorded as aborted.
    pub pass_budget_secs: u64,
}

/// A validated cron expression, always in the 6-field form (seconds first), UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    /// As written in the file.
    pub original: String,
    /// 6 fields: `sec min hour dom month dow`.
    pub expr: String,
}

impl CronSchedule {
    /// Validates a 5- or 6-field expression with the parser the scheduler uses
    /// (tokio-cron-scheduler's croner settings), so that what passes here also runs there.
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let expr = match fields.len() {
            5 => format!("0 {}", fields.join(" ")),
            6 => fields.join(" "),
            n => {
                return Err(format!(
                    "cron expression {text:?} has {n} fields; expected 5 (min hour dom month dow) or 6 (sec min hour dom month dow)"
                ));
            }
        };
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(&expr)
            .map_err(|e| format!("invalid cron expression {text:?}: {e}"))?;
        Ok(CronSchedule {
            original: text.to_string(),
            expr,
        })
    }
}

/// A schedulable job: one kind, or the full pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScheduleJob {
    Contacts,
    Notes,
    Tasks,
    Businesses,
    Appointments,
    Full,
    /// Timer mode's frequent `sync` (every kind): what the outside timer promises.
    Pass,
}

impl ScheduleJob {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleJob::Contacts => "contacts",
            ScheduleJob::Notes => "notes",
            ScheduleJob::Tasks => "tasks",
            ScheduleJob::Businesses => "businesses",
            ScheduleJob::Appointments => "appointments",
            ScheduleJob::Full => "full",
            ScheduleJob::Pass => "pass",
        }
    }
}

/// Who starts the passes: what `/healthz` may expect, and whether `run` has anything to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleMode {
    /// `run` fires each `[schedule]` job itself.
    #[default]
    Daemon,
    /// An outside timer or cron starts `sync` (every kind per pass) and, daily, `sync --full`;
    /// `[schedule] full` says when the latter runs. Per-kind entries do not apply.
    Timer,
}

/// Cron per job; `None` means the job is not scheduled (written as `"off"`). In
/// [`ScheduleMode::Timer`] only `pass` and `full` can be set: they describe the outside timers.
#[derive(Debug, Clone, Default)]
pub struct ScheduleConfig {
    pub mode: ScheduleMode,
    /// Timer mode only: when the outside timer runs a plain `sync`.
    pub pass: Option<CronSchedule>,
    pub contacts: Option<CronSchedule>,
    pub notes: Option<CronSchedule>,
    pub tasks: Option<CronSchedule>,
    pub businesses: Option<CronSchedule>,
    pub appointments: Option<CronSchedule>,
    pub full: Option<CronSchedule>,
    /// The fast lane: reads only what HotspotSystem registered since its last tick and writes
    /// only that (daemon mode; `sync --new` for timers). Not among [`ScheduleConfig::jobs`]: an
    /// idle tick records no run, so no health check may expect one.
    pub new: Option<CronSchedule>,
}

impl ScheduleConfig {
    /// The scheduled jobs, in a stable order.
    pub fn jobs(&self) -> Vec<(ScheduleJob, &CronSchedule)> {
        [
            (ScheduleJob::Contacts, &self.contacts),
            (ScheduleJob::Notes, &self.notes),
            (ScheduleJob::Tasks, &self.tasks),
            (ScheduleJob::Businesses, &self.businesses),
            (ScheduleJob::Appointments, &self.appointments),
            (ScheduleJob::Pass, &self.pass),
            (ScheduleJob::Full, &self.full),
        ]
        .into_iter()
        .filter_map(|(job, c)| c.as_ref().map(|c| (job, c)))
        .collect()
    }
}

/// Where a HotspotSystem field goes in GHL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldTarget {
    /// A standard contact field such as `email` or `postalCode`.
    Standard(String),
    /// A custom field, by key (written `customField:<key>`).
    Custom(String),
}

/// HotspotSystem customer fields the field map may name.
pub const HOTSPOT_FIELDS: &[&str] = &[
    "name",
    "email",
    "phone",
    "company_name",
    "address",
    "city",
    "state",
    "zip",
    "country_code",
    "social_network",
    "social_id",
    "social_username",
    "social_link",
    "social_gender",
    "social_age_range",
    "social_followers_count",
];

/// Standard GHL contact fields the field map may target: those the sync writes (`name` is split
/// into `firstName` and `lastName`).
pub const GHL_CONTACT_FIELDS: &[&str] = &[
    "name",
    "firstName",
    "lastName",
    "email",
    "phone",
    "companyName",
    "address1",
    "city",
    "state",
    "postalCode",
    "country",
];

/// The OAuth app's keys as validated, before they go into [`GhlAuth`].
struct OAuthApp {
    client_id: String,
    client_secret: Secret,
    redirect_uri: String,
    authorize_url: String,
}

/// `ghl.agency_state` when the file does not set it: `agency.db` beside the `[state] path`.
pub fn default_agency_state(state_path: &Path) -> PathBuf {
    state_path
        .parent()
        .map(|dir| dir.join(DEFAULT_AGENCY_STATE_FILE))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_AGENCY_STATE_FILE))
}

/// The file name of the agency's token store when `ghl.agency_state` is not set.
pub const DEFAULT_AGENCY_STATE_FILE: &str = "agency.db";

/// The GHL field a standard target in `[contacts.fields]` names; `None` for one the sync cannot
/// write.
fn standard_target(name: &str) -> Option<Field> {
    if name == "name" {
        return Some(Field::Std(StdField::FirstName));
    }
    StdField::ALL
        .into_iter()
        .find(|f| f.as_str() == name)
        .map(Field::Std)
}

const DEFAULT_FIELD_MAP: &[(&str, &str)] = &[
    ("name", "name"),
    ("email", "email"),
    ("phone", "phone"),
    ("company_name", "companyName"),
    ("address", "address1"),
    ("city", "city"),
    ("state", "state"),
    ("zip", "postalCode"),
    ("country_code", "country"),
];

/// Tag rules; `None` disables that tag.
#[derive(Debug, Clone)]
pub struct TagsConfig {
    /// Put on every synced contact.
    pub base: Option<String>,
    /// Template with `{name}` and/or `{id}` of the location.
    pub location: Option<String>,
    /// Put on newsletter subscribers.
    pub newsletter: Option<String>,
    /// Template with `{network}` for social-login customers.
    pub social: Option<String>,
    /// Put on a contact whose source record disappeared (policy `on_source_delete = "tag"`).
    pub source_deleted: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ContactsConfig {
    pub conflict: ConflictPolicy,
    pub drift: DriftPolicy,
    pub on_source_delete: SourceDeletePolicy,
    pub on_target_delete: TargetDeletePolicy,
    /// Fraction (0..=1) of linked records a run may delete before deletions are aborted.
    pub max_delete_ratio: f64,
    /// ISO 3166 alpha-2, used to read phone numbers without a country prefix.
    pub default_country: String,
    pub sync_subscribers: bool,
    pub skip_without_email_or_phone: bool,
    /// HotspotSystem field → GHL target, after defaults and overrides.
    pub fields: BTreeMap<String, FieldTarget>,
    pub tags: TagsConfig,
}

/// Transaction types that become notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionType {
    Mac,
    Voucher,
    Social,
    Paid,
}

impl TransactionType {
    /// The type as HotspotSystem's paths name it (`/transactions/mac`), and as the
    /// configuration, notes and cursors spell it.
    pub fn wire_name(self) -> &'static str {
        match self {
            TransactionType::Mac => "mac",
            TransactionType::Voucher => "voucher",
            TransactionType::Social => "social",
            TransactionType::Paid => "paid",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NotesConfig {
    pub enabled: bool,
    pub transaction_types: BTreeSet<TransactionType>,
    /// Note body template; placeholders are filled by `mapping`.
    pub template: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRule {
    /// Stable id: part of the task's identity `(rule, source record)`; never reuse for another rule.
    pub id: String,
    pub title: String,
    pub body: String,
    pub due_in_days: u32,
    /// GHL user id.
    pub assignee: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TasksConfig {
    pub enabled: bool,
    /// Created for each new contact.
    pub onboarding: Vec<TaskRule>,
    /// Created for each paid transaction, when set.
    pub paid_followup: Option<TaskRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssociateBy {
    /// The location where the customer registered.
    #[default]
    Registration,
    /// The location of the customer's latest transaction.
    LatestVisit,
}

#[derive(Debug, Clone)]
pub struct BusinessesConfig {
    pub enabled: bool,
    /// HotspotSystem location id → GHL business id; unmapped locations get a business by name.
    pub location_map: BTreeMap<String, String>,
    pub associate_by: AssociateBy,
    pub batch_size: usize,
}

#[derive(Debug, Clone)]
pub struct AppointmentsConfig {
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Days a run is kept in the store (no-op runs thinned to one per hour and job); older
    /// runs' items and audit rows are pruned with them.
    pub keep_days: u32,
    /// Most items listed per section in text/HTML reports.
    pub max_items: usize,
}

/// `[dashboard]`: who may reach `serve`, what it shows, and what one client may hold.
/// Credentials are named here (variable or file) and read when `serve` starts.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Host names served besides the loopback names and the listen address (lowercase).
    pub allowed_hosts: Vec<String>,
    /// HTTP Basic user and where its Argon2 password hash (PHC string) is.
    pub basic: Option<(String, SecretSource)>,
    /// Where the bearer token is.
    pub token: Option<SecretSource>,
    pub healthz: Access,
    pub metrics: Access,
    /// `None`: shown on a loopback listener, masked on any other.
    pub show_personal_data: Option<bool>,
    pub limits: Limits,
    /// What a credential file readable by group or others gets (`--allow-insecure-secret-files`).
    pub secret_files: InsecureFiles,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            allowed_hosts: Vec::new(),
            basic: None,
            token: None,
            healthz: Access::Open,
            metrics: Access::Protected,
            show_personal_data: None,
            limits: Limits::default(),
            secret_files: InsecureFiles::Refuse,
        }
    }
}

/// `[notify]`: where alerts about failed runs, lost authentication and the quota reserve go.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// A Slack-compatible incoming webhook. The URL carries its token, so it is a secret: read
    /// from a variable or a file, never logged (only its host is).
    pub webhook_url: Option<Secret>,
    /// A program and its arguments, run with the alert in its environment and on stdin.
    pub command: Option<Vec<String>>,
    /// How long one delivery (the webhook's POST, the command's run) may take.
    pub timeout: Duration,
}

/// 10 seconds: an alert that takes longer than that to hand over must not hold up the pass.
pub const DEFAULT_NOTIFY_TIMEOUT_SECS: u64 = 10;

/// Why a webhook URL cannot be used, worded without the URL (it is a secret); `None` when it can.
pub fn webhook_url_problem(url: &str) -> Option<&'static str> {
    let Ok(parsed) = reqwest::Url::parse(url.trim()) else {
        return Some("is not an absolute URL (expected https://host/...)");
    };
    let Some(host) = parsed.host_str() else {
        return Some("has no host");
    };
    let loopback = matches!(host, "127.0.0.1" | "[::1]" | "localhost");
    match parsed.scheme() {
        "https" => None,
        "http" if loopback => None,
        "http" => {
            Some("must use https (plain http is allowed only for 127.0.0.1, ::1 and localhost)")
        }
        _ => Some("has an unsupported scheme; use https"),
    }
}

/// Run-time replacements, used by the demo and tests to point at loopback emulators.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub hotspot_base_url: Option<String>,
    pub ghl_base_url: Option<String>,
    pub state_path: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Raw serde structs
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    state: RawState,
    hotspot: RawHotspot,
    #[serde(default)]
    filter: RawFilter,
    ghl: RawGhl,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    sync: RawSync,
    #[serde(default)]
    schedule: RawSchedule,
    #[serde(default)]
    contacts: RawContacts,
    #[serde(default)]
    notes: RawNotes,
    #[serde(default)]
    tasks: RawTasks,
    #[serde(default)]
    businesses: RawBusinesses,
    #[serde(default)]
    appointments: RawAppointments,
    #[serde(default)]
    report: RawReport,
    #[serde(default)]
    dashboard: RawDashboard,
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    webhooks: webhooks::RawWebhooks,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    path: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHotspot {
    base_url: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    #[serde(default)]
    locations: Vec<String>,
    page_size: Option<u32>,
    rate_limit: Option<u32>,
    rate_window_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    email_domains: Vec<String>,
    #[serde(default)]
    locations: Vec<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawAuthMode {
    PrivateToken,
    Oauth,
    Agency,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGhl {
    base_url: Option<String>,
    location_id: String,
    auth: Option<RawAuthMode>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    client_id_env: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    redirect_uri: Option<String>,
    authorize_url: Option<String>,
    company_id: Option<String>,
    agency_state: Option<PathBuf>,
    app_id: Option<String>,
    scopes: Option<Vec<String>>,
    hotspot_id_field: Option<String>,
    rate_limit: Option<u32>,
    rate_window_secs: Option<u64>,
    daily_reserve: Option<u32>,
    daily_quota_recheck_secs: Option<u64>,
    max_concurrency: Option<usize>,
    lost_create_recovery: Option<LostCreateRecovery>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    timeout_secs: Option<u64>,
    max_attempts: Option<u32>,
    max_elapsed_secs: Option<u64>,
    max_response_bytes: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSync {
    pass_budget_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    mode: Option<ScheduleMode>,
    pass: Option<String>,
    contacts: Option<String>,
    notes: Option<String>,
    tasks: Option<String>,
    businesses: Option<String>,
    appointments: Option<String>,
    full: Option<String>,
    new: Option<String>,
}

/// A tag setting: a string sets it, `false` (or `""`) disables it, `true` keeps the default.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawToggle {
    Bool(bool),
    Text(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTags {
    base: Option<RawToggle>,
    location: Option<RawToggle>,
    newsletter: Option<RawToggle>,
    social: Option<RawToggle>,
    source_deleted: Option<RawToggle>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawContacts {
    conflict: Option<ConflictPolicy>,
    drift: Option<DriftPolicy>,
    on_source_delete: Option<SourceDeletePolicy>,
    on_target_delete: Option<TargetDeletePolicy>,
    max_delete_ratio: Option<f64>,
    default_country: Option<String>,
    sync_subscribers: Option<bool>,
    skip_without_email_or_phone: Option<bool>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    #[serde(default)]
    tags: RawTags,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNotes {
    enabled: Option<bool>,
    transaction_types: Option<Vec<TransactionType>>,
    template: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTaskRule {
    id: Option<String>,
    title: String,
    #[serde(default)]
    body: String,
    due_in_days: Option<u32>,
    assignee: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTasks {
    enabled: Option<bool>,
    onboarding: Option<Vec<RawTaskRule>>,
    paid_followup: Option<RawTaskRule>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBusinesses {
    enabled: Option<bool>,
    #[serde(default)]
    location_map: BTreeMap<String, String>,
    associate_by: Option<AssociateBy>,
    batch_size: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAppointments {
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    /// Never used; accepted with a warning for one release so that a config copied from an
    /// older example does not stop the daemon after an upgrade.
    dir: Option<PathBuf>,
    /// Retired for `keep_days`; accepted with a warning for one release.
    keep_runs: Option<u32>,
    keep_days: Option<u32>,
    max_items: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDashboard {
    allowed_hosts: Option<Vec<String>>,
    user: Option<String>,
    password_hash_env: Option<String>,
    password_hash_file: Option<PathBuf>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    healthz: Option<Access>,
    metrics: Option<Access>,
    show_personal_data: Option<bool>,
    max_connections: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_body_bytes: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    webhook_url_env: Option<String>,
    webhook_url_file: Option<PathBuf>,
    command: Option<Vec<String>>,
    timeout_secs: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

pub const DEFAULT_STATE_PATH: &str = "state/sync.db";
pub const DEFAULT_HOTSPOT_BASE_URL: &str = "https://api.hotspotsystem.com/v2.0";
pub const DEFAULT_GHL_BASE_URL: &str = "https://services.leadconnectorhq.com";
pub const DEFAULT_GHL_AUTHORIZE_URL: &str =
    "https://marketplace.gohighlevel.com/oauth/chooselocation";
pub const DEFAULT_NOTE_TEMPLATE: &str = "WiFi {type} access at {location} on {date}{details}\n\
    Ref: hgs:{type}:{transaction_id}";
/// Scopes the full feature set needs (`check` compares the token's scopes with these).
pub const DEFAULT_GHL_SCOPES: &[&str] = &[
    "contacts.readonly",
    "contacts.write",
    "businesses.readonly",
    "businesses.write",
    "locations/tasks.readonly",
    "calendars/events.readonly",
];

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

impl Config {
    /// The contact mapping (field map, tag rules, phone reading) as configured, without location
    /// names: a pass adds those with [`MappingConfig::with_location_names`].
    pub fn mapping(&self) -> &MappingConfig {
        &self.decided.mapping
    }

    /// The contact policy as configured, for a pass that starts at `now`.
    pub fn contact_policy(&self, now: DateTime<Utc>) -> ContactPolicy {
        ContactPolicy {
            now,
            ..self.decided.contact_policy.clone()
        }
    }

    /// Personal data in `report` output: shown unless `[dashboard] show_personal_data = false`
    /// (a report is written on this machine, like a loopback dashboard).
    pub fn report_personal_data(&self) -> crate::privacy::PersonalData {
        crate::privacy::PersonalData::decide(self.dashboard.show_personal_data, true)
    }

    /// The GHL HTTP policy settings from `[ghl]` and `[http]`.
    pub fn ghl_http(&self) -> &PolicyConfig {
        &self.decided.ghl_http
    }

    /// The HotspotSystem HTTP policy settings from `[hotspot]` and `[http]`.
    pub fn hotspot_http(&self) -> &PolicyConfig {
        &self.decided.hotspot_http
    }

    /// The GHL custom field keys the sync writes, each with the config key naming it
    /// (`ghl.hotspot_id_field`, `contacts.fields.<field>`): resolved to ids before a pass writes.
    pub fn custom_field_keys(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(k) = &self.ghl.hotspot_id_field {
            out.push(("ghl.hotspot_id_field".to_string(), k.clone()));
        }
        for (from, to) in &self.contacts.fields {
            if let FieldTarget::Custom(k) = to {
                out.push((format!("contacts.fields.{from}"), k.clone()));
            }
        }
        out
    }

    /// Reads and validates the file; secrets are read from the process environment or their
    /// files, which must be private to their owner.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Self::load_with(path, false, InsecureFiles::Refuse)
    }

    /// As [`Config::load`] (or [`Config::load_read_only`] when `read_only`), with a choice for
    /// secret files readable by group or others (`--allow-insecure-secret-files`).
    pub fn load_with(
        path: impl AsRef<Path>,
        read_only: bool,
        insecure_files: InsecureFiles,
    ) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = read_file(path)?;
        let mut ctx = Ctx::new(&text, path);
        ctx.secrets_optional = read_only;
        ctx.insecure_files = insecure_files;
        let raw: RawConfig = match toml::from_str(&text) {
            Ok(raw) => raw,
            Err(e) => return Err(ctx.toml_error(&e)),
        };
        ctx.validate(raw, &|name| std::env::var(name).ok())
    }

    /// Reads and validates the file for commands that only read the state database (`report`,
    /// `status`, `serve`): they never call an API, so they must work on a machine — or right
    /// after `demo` — where the API secrets are not set. Everything is validated exactly as by
    /// [`Config::load`] (the secret keys must still be well formed), except that an unset or
    /// empty secret variable, or an unreadable or empty secret file, yields an empty
    /// placeholder instead of an error. The result must not be used to build API clients.
    pub fn load_read_only(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Self::load_with(path, true, InsecureFiles::Refuse)
    }

    /// As [`Config::load_read_only`], from text and with the environment as a lookup function.
    pub fn from_str_read_only(
        text: &str,
        path: impl AsRef<Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut ctx = Ctx::new(text, path.as_ref());
        ctx.secrets_optional = true;
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => return Err(ctx.toml_error(&e)),
        };
        ctx.validate(raw, env)
    }

    /// Validates `text`; `path` is used in messages only. Secrets come from the process env.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Self::from_str_with_env(text, path, &|name| std::env::var(name).ok())
    }

    /// As [`Config::from_str`], with the environment given as a lookup function. Lets the demo
    /// and tests supply secrets without mutating the process environment.
    pub fn from_str_with_env(
        text: &str,
        path: impl AsRef<Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let ctx = Ctx::new(text, path.as_ref());
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => return Err(ctx.toml_error(&e)),
        };
        ctx.validate(raw, env)
    }

    /// Replaces base URLs and the state path, re-checking the URL rule (HTTPS unless loopback).
    pub fn with_overrides(mut self, o: &Overrides) -> Result<Config, ConfigError> {
        let err = |key: &str, message: String| ConfigError::Invalid {
            path: self.source_path.clone(),
            key: key.to_string(),
            line: 0,
            kind: ConfigErrorKind::Url,
            message: format!("(override) {message}"),
        };
        if let Some(url) = &o.hotspot_base_url {
            self.hotspot.base_url = check_base_url(url).map_err(|m| err("hotspot.base_url", m))?;
        }
        if let Some(url) = &o.ghl_base_url {
            self.ghl.base_url = check_base_url(url).map_err(|m| err("ghl.base_url", m))?;
        }
        if let Some(p) = &o.state_path {
            self.state.path = p.clone();
        }
        Ok(self)
    }
}

/// The configuration file's text; an error names the file.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Checks the base-URL rule and returns the URL without trailing slash.
pub fn check_base_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not an absolute URL (expected https://host/...)"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let loopback = matches!(
        host.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "::1" | "localhost"
    );
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(trimmed.to_string()),
        "http" if loopback => Ok(trimmed.to_string()),
        "http" => Err(format!(
            "{url:?} must use https (plain http is allowed only for 127.0.0.1, ::1 and localhost)"
        )),
        other => Err(format!(
            "{url:?} has unsupported scheme {other:?}; use https"
        )),
    }
}

/// Error context: the file name, its text and its spanned parse tree, to turn a key path or a
/// byte span into `file:line: key`.
struct Ctx<'a> {
    path: PathBuf,
    text: &'a str,
    tree: Spanned<DeTable<'a>>,
    /// Set by [`Config::load_read_only`]: a secret whose variable is unset or whose file is
    /// missing becomes an empty placeholder instead of an error.
    secrets_optional: bool,
    /// What a secret file readable by group or others gets.
    insecure_files: InsecureFiles,
    /// Set while one pair of the `[[pairs]]` form is validated (its index): an error about a key
    /// the pair sets names `pairs[i].<key>` and its line, one about an inherited key the
    /// top-level key and its line.
    pair: Option<usize>,
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Ctx<'a> {
    fn new(text: &'a str, path: &Path) -> Self {
        let (tree, _) = DeTable::parse_recoverable(text);
        Ctx {
            path: path.to_path_buf(),
            text,
            tree,
            secrets_optional: false,
            insecure_files: InsecureFiles::Refuse,
            pair: None,
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[..offset].bytes().filter(|b| *b == b'\n').count() + 1
    }

    fn error(&self, key: &str, line: usize, kind: ConfigErrorKind, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            key: key.to_string(),
            line,
            kind,
            message,
        }
    }

    /// An error about `key` (dotted, with `[i]` for array elements): the line is that of the
    /// key if present, else of the nearest enclosing table that is present, else 1.
    fn at(&self, key: &str, kind: ConfigErrorKind, message: impl Into<String>) -> ConfigError {
        let key = self.written_key(key);
        let line = self.line_of(self.span_of(&key).start);
        self.error(&key, line, kind, message.into())
    }

    /// Where the file writes `key` of the configuration being validated: itself, or, for a
    /// pair, the pair's own key when the pair sets it (or sets more of its path than the top
    /// level does), else the inherited top-level key.
    fn written_key(&self, key: &str) -> String {
        let Some(index) = self.pair else {
            return key.to_string();
        };
        let own = pairs::key_in_pair(index, key);
        let (own_found, own_total) = self.locate(&own).1;
        if own_found == own_total {
            return own;
        }
        let (top_found, top_total) = self.locate(key).1;
        if top_found == top_total {
            return key.to_string();
        }
        // Neither writes it (a missing key): name the one that writes more of its path. The
        // pair's own path starts with `pairs[i]`, which is always there.
        let own_depth = own_found.saturating_sub(own_total - parse_key_path(key).len());
        if own_depth > 0 && own_depth >= top_found {
            own
        } else {
            key.to_string()
        }
    }

    fn span_of(&self, key: &str) -> Range<usize> {
        self.locate(key).0
    }

    /// The span of the deepest part of `key` present in the file, with how many of the key's
    /// segments were found and how many it has.
    fn locate(&self, key: &str) -> (Range<usize>, (usize, usize)) {
        let segs = parse_key_path(key);
        let mut found = 0;
        let mut best = 0..0;
        let mut table: &DeTable = self.tree.get_ref();
        let mut current: Option<&Spanned<DeValue>> = None;
        for seg in &segs {
            let next = match (seg, current) {
                (Seg::Key(k), None) => table
                    .iter()
                    .find(|(kk, _)| kk.get_ref() == k)
                    .map(|(kk, v)| (kk.span(), v)),
                (Seg::Key(k), Some(v)) => match v.get_ref() {
                    DeValue::Table(t) => {
                        table = t;
                        table
                            .iter()
                            .find(|(kk, _)| kk.get_ref() == k)
                            .map(|(kk, v)| (kk.span(), v))
                    }
                    _ => None,
                },
                (Seg::Index(i), Some(v)) => match v.get_ref() {
                    DeValue::Array(a) => a.get(*i).map(|e| (e.span(), e)),
                    _ => None,
                },
                (Seg::Index(_), None) => None,
            };
            match next {
                Some((span, v)) => {
                    best = span;
                    current = Some(v);
                    found += 1;
                }
                None => break,
            }
        }
        (best, (found, segs.len()))
    }

    /// The dotted key path of the deepest key whose key or value span contains `pos`.
    fn key_at(&self, pos: usize) -> String {
        fn walk(table: &DeTable, pos: usize, out: &mut Vec<String>) {
            for (k, v) in table.iter() {
                let (ks, vs) = (k.span(), v.span());
                if ks.contains(&pos) || vs.contains(&pos) || (vs.start == vs.end && vs.start == pos)
                {
                    out.push(k.get_ref().to_string());
                    walk_value(v, pos, out);
                    return;
                }
            }
            // Standard tables (and arrays of tables, such as `[[pairs]]`) may have a span that
            // covers only their header: fall back to the last one starting before `pos`.
            let mut last: Option<(&Spanned<std::borrow::Cow<str>>, &Spanned<DeValue>)> = None;
            for (k, v) in table.iter() {
                let tables = match v.get_ref() {
                    DeValue::Table(_) => true,
                    DeValue::Array(a) => !a.is_empty() && a.iter().all(|e| e.get_ref().is_table()),
                    _ => false,
                };
                if tables
                    && k.span().start <= pos
                    && last.is_none_or(|(lk, _)| lk.span().start < k.span().start)
                {
                    last = Some((k, v));
                }
            }
            if let Some((k, v)) = last {
                out.push(k.get_ref().to_string());
                walk_value(v, pos, out);
            }
        }
        fn walk_value(v: &Spanned<DeValue>, pos: usize, out: &mut Vec<String>) {
            match v.get_ref() {
                DeValue::Table(t) => walk(t, pos, out),
                DeValue::Array(a) => {
                    let idx = a
                        .iter()
                        .position(|e| e.span().contains(&pos))
                        .or_else(|| a.iter().rposition(|e| e.span().start <= pos));
                    if let Some(i) = idx {
                        if let Some(last) = out.last_mut() {
                            last.push_str(&format!("[{i}]"));
                        }
                        walk_value(&a[i], pos, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(self.tree.get_ref(), pos, &mut out);
        if out.is_empty() {
            "(top level)".to_string()
        } else {
            out.join(".")
        }
    }

    /// The bare key assigned on the line containing `offset`, if the line is `key = ...`.
    fn key_on_line(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.text.len());
        let start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line = self.text[start..].lines().next().unwrap_or("");
        let (name, _) = line.split_once('=')?;
        let name = name.trim();
        let bare = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        bare.then(|| name.to_string())
    }

    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().to_string();
        let span = e.span().unwrap_or(0..0);
        let line = self.line_of(span.start);
        let mut key = self.key_at(span.start);
        let kind = if message.starts_with("unknown field") {
            // The span is the unknown key itself; `key_at` found it.
            ConfigErrorKind::UnknownKey
        } else if let Some(rest) = message.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or("");
            key = if key == "(top level)" {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            ConfigErrorKind::MissingKey
        } else if message.starts_with("unknown variant") {
            ConfigErrorKind::EnumValue
        } else if message.starts_with("invalid type")
            || message.starts_with("invalid value")
            || message.contains("did not match any variant")
        {
            ConfigErrorKind::WrongType
        } else {
            // Recovery may have dropped the broken key from the tree: take it from the line.
            if let Some(name) = self.key_on_line(span.start)
                && !key.ends_with(&format!(".{name}"))
                && key != name
            {
                key = if key == "(top level)" {
                    name
                } else {
                    format!("{key}.{name}")
                };
            }
            ConfigErrorKind::Syntax
        };
        self.error(&key, line, kind, message)
    }

    fn validate(
        &self,
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        use ConfigErrorKind as K;
        let url = |key: &str, value: Option<String>, default: &str| {
            check_base_url(value.as_deref().unwrap_or(default)).map_err(|m| self.at(key, K::Url, m))
        };
        let positive = |key: &str, v: u64| -> Result<(), ConfigError> {
            if v == 0 {
                Err(self.at(key, K::Range, "must be greater than 0"))
            } else {
                Ok(())
            }
        };

        // [state]
        let state = StateConfig {
            path: raw
                .state
                .path
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_PATH)),
        };
        if state.path.as_os_str().is_empty() {
            return Err(self.at("state.path", K::Invalid, "must not be empty"));
        }

        // [hotspot]
        let h = raw.hotspot;
        let hotspot_base = url("hotspot.base_url", h.base_url, DEFAULT_HOTSPOT_BASE_URL)?;
        let api_key = self.secret(
            "hotspot",
            ("api_key_env", h.api_key_env.as_deref()),
            ("api_key_file", h.api_key_file.as_deref()),
            env,
        )?;
        let page_size = h.page_size.unwrap_or(100);
        if !(1..=1000).contains(&page_size) {
            return Err(self.at(
                "hotspot.page_size",
                K::Range,
                format!("{page_size} is outside 1..=1000"),
            ));
        }
        let hotspot = HotspotConfig {
            base_url: hotspot_base,
            api_key,
            locations: h.locations,
            page_size,
            rate_limit: h.rate_limit.unwrap_or(10),
            rate_window_secs: h.rate_window_secs.unwrap_or(1),
        };
        positive("hotspot.rate_limit", hotspot.rate_limit.into())?;
        positive("hotspot.rate_window_secs", hotspot.rate_window_secs)?;
        let filter = self.filter(raw.filter, &hotspot.locations)?;

        // [ghl]
        let g = raw.ghl;
        let ghl_base = url("ghl.base_url", g.base_url.clone(), DEFAULT_GHL_BASE_URL)?;
        if g.location_id.trim().is_empty() {
            return Err(self.at("ghl.location_id", K::Invalid, "must not be empty"));
        }
        let listed_scopes = g.scopes.as_ref().map(|list| {
            list.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        });
        // The agency keys are not refused under another auth: in a `[[pairs]]` file a pair
        // with a token of its own inherits them from the agency's top-level `[ghl]`.
        let auth = match g.auth.unwrap_or(RawAuthMode::PrivateToken) {
            RawAuthMode::PrivateToken => GhlAuth::PrivateToken {
                token: self.secret(
                    "ghl",
                    ("token_env", g.token_env.as_deref()),
                    ("token_file", g.token_file.as_deref()),
                    env,
                )?,
            },
            RawAuthMode::Oauth => {
                let app = self.oauth_app(&g, "oauth", env)?;
                GhlAuth::OAuth {
                    client_id: app.client_id,
                    client_secret: app.client_secret,
                    redirect_uri: app.redirect_uri,
                    authorize_url: app.authorize_url,
                    scopes: g.scopes.clone().unwrap_or_else(|| {
                        DEFAULT_GHL_SCOPES.iter().map(|s| s.to_string()).collect()
                    }),
                }
            }
            RawAuthMode::Agency => {
                let company_id = g.company_id.as_deref().map(str::trim).unwrap_or_default();
                if company_id.is_empty() {
                    return Err(self.at(
                        "ghl.company_id",
                        K::MissingKey,
                        "auth = \"agency\" needs company_id (the agency's company id in GHL)",
                    ));
                }
                let app = self.oauth_app(&g, "agency", env)?;
                let token_store = g
                    .agency_state
                    .clone()
                    .unwrap_or_else(|| default_agency_state(&state.path));
                if token_store.as_os_str().is_empty() {
                    return Err(self.at("ghl.agency_state", K::Invalid, "must not be empty"));
                }
                if token_store == state.path {
                    return Err(self.at(
                        "ghl.agency_state",
                        K::Invalid,
                        "must be a file of its own, not [state] path: a pair's state file moves alone",
                    ));
                }
                GhlAuth::Agency(AgencyAuth {
                    company_id: company_id.to_string(),
                    client_id: app.client_id,
                    client_secret: app.client_secret,
                    redirect_uri: app.redirect_uri,
                    authorize_url: app.authorize_url,
                    token_store,
                    app_id: g
                        .app_id
                        .as_deref()
                        .map(str::trim)
                        .filter(|id| !id.is_empty())
                        .map(str::to_string),
                })
            }
        };
        if let Some(f) = &g.hotspot_id_field
            && f.trim().is_empty()
        {
            return Err(self.at(
                "ghl.hotspot_id_field",
                K::Invalid,
                "must not be empty (omit the key instead)",
            ));
        }
        let ghl = GhlConfig {
            base_url: ghl_base,
            location_id: g.location_id.trim().to_string(),
            auth,
            hotspot_id_field: g.hotspot_id_field,
            rate_limit: g.rate_limit.unwrap_or(100),
            rate_window_secs: g.rate_window_secs.unwrap_or(10),
            daily_reserve: g.daily_reserve.unwrap_or(1000),
            daily_quota_recheck_secs: g
                .daily_quota_recheck_secs
                .unwrap_or(crate::http::DAILY_RECHECK.as_secs()),
            max_concurrency: g.max_concurrency.unwrap_or(8),
            lost_create_recovery: g.lost_create_recovery.unwrap_or_default(),
            listed_scopes,
        };
        positive("ghl.rate_limit", ghl.rate_limit.into())?;
        positive("ghl.rate_window_secs", ghl.rate_window_secs)?;
        if !(1..=86_400).contains(&ghl.daily_quota_recheck_secs) {
            return Err(self.at(
                "ghl.daily_quota_recheck_secs",
                K::Range,
                format!("{} is outside 1..=86400", ghl.daily_quota_recheck_secs),
            ));
        }
        positive("ghl.max_concurrency", ghl.max_concurrency as u64)?;

        // [http]
        let http = HttpConfig {
            timeout_secs: raw.http.timeout_secs.unwrap_or(30),
            max_attempts: raw.http.max_attempts.unwrap_or(5),
            max_elapsed_secs: raw.http.max_elapsed_secs.unwrap_or(120),
            max_response_bytes: raw
                .http
                .max_response_bytes
                .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
        };
        positive("http.timeout_secs", http.timeout_secs)?;
        positive("http.max_attempts", http.max_attempts.into())?;
        positive("http.max_elapsed_secs", http.max_elapsed_secs)?;
        positive("http.max_response_bytes", http.max_response_bytes)?;
        let ghl_http = PolicyConfig {
            rate_max: ghl.rate_limit,
            rate_window: Duration::from_secs(ghl.rate_window_secs),
            max_attempts: http.max_attempts,
            max_elapsed: Duration::from_secs(http.max_elapsed_secs),
            timeout: Duration::from_secs(http.timeout_secs),
            max_response_bytes: http.max_response_bytes,
            daily_reserve: ghl.daily_reserve.into(),
            daily_recheck: Duration::from_secs(ghl.daily_quota_recheck_secs),
            ..PolicyConfig::ghl()
        };
        let hotspot_http = PolicyConfig {
            rate_max: hotspot.rate_limit,
            rate_window: Duration::from_secs(hotspot.rate_window_secs),
            max_attempts: http.max_attempts,
            max_elapsed: Duration::from_secs(http.max_elapsed_secs),
            timeout: Duration::from_secs(http.timeout_secs),
            max_response_bytes: http.max_response_bytes,
            ..PolicyConfig::hotspot()
        };

        // [sync]
        let sync = SyncConfig {
            pass_budget_secs: raw
                .sync
                .pass_budget_secs
                .unwrap_or(DEFAULT_PASS_BUDGET_SECS),
        };
        positive("sync.pass_budget_secs", sync.pass_budget_secs)?;

        // [schedule]
        let s = raw.schedule;
        let cron = |key: &str,
                    v: Option<String>,
                    default: Option<&str>|
         -> Result<Option<CronSchedule>, ConfigError> {
            match v.as_deref().or(default) {
                None => Ok(None),
                Some(t) if t.trim().eq_ignore_ascii_case("off") => Ok(None),
                Some(t) => CronSchedule::parse(t)
                    .map(Some)
                    .map_err(|m| self.at(&format!("schedule.{key}"), K::Cron, m)),
            }
        };
        let mode = s.mode.unwrap_or_default();
        let schedule = match mode {
            ScheduleMode::Daemon => ScheduleConfig {
                mode,
                contacts: cron("contacts", s.contacts, Some("*/5 * * * *"))?,
                notes: cron("notes", s.notes, Some("*/10 * * * *"))?,
                tasks: cron("tasks", s.tasks, Some("*/15 * * * *"))?,
                businesses: cron("businesses", s.businesses, None)?,
                appointments: cron("appointments", s.appointments, None)?,
                full: cron("full", s.full, Some("0 3 * * *"))?,
                new: cron("new", s.new, None)?,
                pass: match s.pass {
                    Some(_) => {
                        return Err(self.at(
                            "schedule.pass",
                            K::Invalid,
                            "schedule.pass applies to mode = \"timer\" only: it says when the outside \
                             timer runs `sync`; the daemon's jobs are the per-kind entries"
                                .to_string(),
                        ));
                    }
                    None => None,
                },
            },
            ScheduleMode::Timer => {
                // Each timer pass covers every kind, so a per-kind entry would promise a
                // schedule nothing runs; refused rather than silently ignored.
                let per_kind = [
                    ("contacts", &s.contacts),
                    ("notes", &s.notes),
                    ("tasks", &s.tasks),
                    ("businesses", &s.businesses),
                    ("appointments", &s.appointments),
                ];
                // `off` says what timer mode means anyway; anything else would never run.
                if s.new
                    .as_deref()
                    .is_some_and(|t| !t.trim().eq_ignore_ascii_case("off"))
                {
                    return Err(self.at(
                        "schedule.new",
                        K::Invalid,
                        "schedule.new applies to mode = \"daemon\" only: with mode = \"timer\" \
                         run `sync --new` from the outside timer as often as the fast lane should tick"
                            .to_string(),
                    ));
                }
                if let Some((key, _)) = per_kind.iter().find(|(_, v)| v.is_some()) {
                    return Err(self.at(
                        &format!("schedule.{key}"),
                        K::Invalid,
                        format!(
                            "schedule.{key} applies to mode = \"daemon\" only: with mode = \"timer\" every \
                             `sync` covers every kind; set the timer's schedule in its unit or crontab"
                        ),
                    ));
                }
                ScheduleConfig {
                    mode,
                    pass: cron("pass", s.pass, Some("*/5 * * * *"))?,
                    full: cron("full", s.full, Some("0 3 * * *"))?,
                    ..Default::default()
                }
            }
        };

        // [contacts]
        let c = raw.contacts;
        let max_delete_ratio = c.max_delete_ratio.unwrap_or(0.1);
        if !(0.0..=1.0).contains(&max_delete_ratio) {
            return Err(self.at(
                "contacts.max_delete_ratio",
                K::Range,
                format!("{max_delete_ratio} is outside 0..=1 (a fraction: 0.1 means 10 %)"),
            ));
        }
        let default_country = c
            .default_country
            .unwrap_or_else(|| DEFAULT_COUNTRY.to_string());
        if default_country.len() != 2 || !default_country.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(self.at(
                "contacts.default_country",
                K::Invalid,
                format!("{default_country:?} is not a two-letter ISO 3166 country code"),
            ));
        }
        let phone = PhoneNormalizer::new(&default_country).ok_or_else(|| {
            self.at(
                "contacts.default_country",
                K::Invalid,
                format!("{default_country:?} is not a known ISO 3166 country code"),
            )
        })?;
        let mut fields: BTreeMap<String, FieldTarget> = DEFAULT_FIELD_MAP
            .iter()
            .map(|(h, g)| (h.to_string(), FieldTarget::Standard(g.to_string())))
            .collect();
        for (hs, target) in c.fields {
            let key = format!("contacts.fields.{hs}");
            if !HOTSPOT_FIELDS.contains(&hs.as_str()) {
                return Err(self.at(
                    &key,
                    K::UnknownKey,
                    format!(
                        "{hs:?} is not a HotspotSystem customer field (known: {})",
                        HOTSPOT_FIELDS.join(", ")
                    ),
                ));
            }
            let target = target.trim();
            if target.is_empty() || target == "none" {
                fields.remove(&hs);
            } else if let Some(custom) = target.strip_prefix("customField:") {
                if custom.trim().is_empty() {
                    return Err(self.at(&key, K::Invalid, "customField: needs a custom field key"));
                }
                fields.insert(hs, FieldTarget::Custom(custom.trim().to_string()));
            } else if standard_target(target).is_some() {
                fields.insert(hs, FieldTarget::Standard(target.to_string()));
            } else {
                return Err(self.at(
                    &key,
                    K::EnumValue,
                    format!(
                        "{target:?} is not a GHL contact field (known: {}; or customField:<key>; or \"\" for none)",
                        GHL_CONTACT_FIELDS.join(", ")
                    ),
                ));
            }
        }
        let tag = |name: &str,
                   v: Option<RawToggle>,
                   default: &str,
                   placeholders: &[&str]|
         -> Result<Option<String>, ConfigError> {
            let value = match v {
                None | Some(RawToggle::Bool(true)) => Some(default.to_string()),
                Some(RawToggle::Bool(false)) => None,
                Some(RawToggle::Text(t)) if t.trim().is_empty() => None,
                Some(RawToggle::Text(t)) => Some(t.trim().to_string()),
            };
            if let Some(t) = &value {
                check_template(t, placeholders)
                    .map_err(|m| self.at(&format!("contacts.tags.{name}"), K::Invalid, m))?;
            }
            Ok(value)
        };
        let t = c.tags;
        let tags = TagsConfig {
            base: tag("base", t.base, "hotspotsystem", &[])?,
            location: tag("location", t.location, "location:{name}", &["name", "id"])?,
            newsletter: tag("newsletter", t.newsletter, "newsletter", &[])?,
            social: tag("social", t.social, "social:{network}", &["network"])?,
            source_deleted: tag("source_deleted", t.source_deleted, "hs-deleted", &[])?,
        };
        let on_source_delete = c.on_source_delete.unwrap_or_default();
        if on_source_delete == SourceDeletePolicy::Tag && tags.source_deleted.is_none() {
            return Err(self.at(
                "contacts.on_source_delete",
                K::Invalid,
                "\"tag\" needs contacts.tags.source_deleted (it is disabled)",
            ));
        }
        let mapping = MappingConfig {
            fields: FieldMap {
                entries: fields
                    .iter()
                    .map(|(hs, target)| {
                        // Both sides were checked above: neither lookup can miss.
                        let source = SourceField::from_wire(hs)
                            .expect("a field in HOTSPOT_FIELDS is a SourceField");
                        let target = match target {
                            FieldTarget::Custom(key) => Field::Custom(key.clone()),
                            FieldTarget::Standard(name) => standard_target(name)
                                .expect("a standard target was checked by standard_target"),
                        };
                        (source, target)
                    })
                    .collect(),
                hotspot_id_field: ghl.hotspot_id_field.clone(),
            },
            tags: TagRules {
                base: tags.base.clone(),
                location: tags.location.clone(),
                location_names: Default::default(),
                newsletter: tags.newsletter.clone(),
                social: tags.social.clone(),
            },
            phone,
            skip_without_email_or_phone: c.skip_without_email_or_phone.unwrap_or(true),
        };
        let contacts = ContactsConfig {
            conflict: c.conflict.unwrap_or_default(),
            drift: c.drift.unwrap_or_default(),
            on_source_delete,
            on_target_delete: c.on_target_delete.unwrap_or_default(),
            max_delete_ratio,
            default_country: default_country.to_ascii_uppercase(),
            sync_subscribers: c.sync_subscribers.unwrap_or(true),
            skip_without_email_or_phone: mapping.skip_without_email_or_phone,
            fields,
            tags,
        };
        let contact_policy = ContactPolicy {
            conflict: contacts.conflict,
            drift: contacts.drift,
            on_source_delete: contacts.on_source_delete,
            on_target_delete: contacts.on_target_delete,
            max_delete_ratio: contacts.max_delete_ratio,
            deleted_tag: contacts
                .tags
                .source_deleted
                .clone()
                .unwrap_or_else(|| "hs-deleted".into()),
            // Replaced per pass by `Config::contact_policy`.
            ..ContactPolicy::new(DateTime::UNIX_EPOCH)
        };

        // [notes]
        let notes = NotesConfig {
            enabled: raw.notes.enabled.unwrap_or(true),
            transaction_types: raw
                .notes
                .transaction_types
                .unwrap_or_else(|| {
                    vec![
                        TransactionType::Mac,
                        TransactionType::Voucher,
                        TransactionType::Social,
                        TransactionType::Paid,
                    ]
                })
                .into_iter()
                .collect(),
            template: raw
                .notes
                .template
                .unwrap_or_else(|| DEFAULT_NOTE_TEMPLATE.to_string()),
        };
        check_braces(&notes.template).map_err(|m| self.at("notes.template", K::Invalid, m))?;

        // [tasks]
        let rule = |key: &str,
                    r: RawTaskRule,
                    default_id: String|
         -> Result<TaskRule, ConfigError> {
            if r.title.trim().is_empty() {
                return Err(self.at(&format!("{key}.title"), K::Invalid, "must not be empty"));
            }
            check_braces(&r.title).map_err(|m| self.at(&format!("{key}.title"), K::Invalid, m))?;
            check_braces(&r.body).map_err(|m| self.at(&format!("{key}.body"), K::Invalid, m))?;
            let id = r.id.unwrap_or(default_id);
            if id.trim().is_empty() {
                return Err(self.at(&format!("{key}.id"), K::Invalid, "must not be empty"));
            }
            Ok(TaskRule {
                id,
                title: r.title,
                body: r.body,
                due_in_days: r.due_in_days.unwrap_or(1),
                assignee: r.assignee.filter(|a| !a.trim().is_empty()),
            })
        };
        let onboarding = match raw.tasks.onboarding {
            None => vec![TaskRule {
                id: "onboarding".to_string(),
                title: "Welcome new WiFi guest {name}".to_string(),
                body: "Registered at {location} on {date}.".to_string(),
                due_in_days: 1,
                assignee: None,
            }],
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                let mut seen = BTreeSet::new();
                for (i, r) in list.into_iter().enumerate() {
                    let key = format!("tasks.onboarding[{i}]");
                    let rule = rule(&key, r, format!("onboarding-{}", i + 1))?;
                    if !seen.insert(rule.id.clone()) {
                        return Err(self.at(
                            &format!("{key}.id"),
                            K::Invalid,
                            format!("duplicate task rule id {:?}", rule.id),
                        ));
                    }
                    out.push(rule);
                }
                out
            }
        };
        let paid_followup = raw
            .tasks
            .paid_followup
            .map(|r| rule("tasks.paid_followup", r, "paid-followup".to_string()))
            .transpose()?;
        if let Some(p) = &paid_followup
            && onboarding.iter().any(|o| o.id == p.id)
        {
            return Err(self.at(
                "tasks.paid_followup.id",
                K::Invalid,
                format!("duplicate task rule id {:?}", p.id),
            ));
        }
        let tasks = TasksConfig {
            enabled: raw.tasks.enabled.unwrap_or(true),
            onboarding,
            paid_followup,
        };

        // [businesses]
        let b = raw.businesses;
        let batch_size = b.batch_size.unwrap_or(100);
        if !(1..=1000).contains(&batch_size) {
            return Err(self.at(
                "businesses.batch_size",
                K::Range,
                format!("{batch_size} is outside 1..=1000"),
            ));
        }
        for (loc, biz) in &b.location_map {
            if biz.trim().is_empty() {
                return Err(self.at(
                    &format!("businesses.location_map.{loc}"),
                    K::Invalid,
                    "business id must not be empty",
                ));
            }
        }
        let businesses = BusinessesConfig {
            enabled: b.enabled.unwrap_or(false),
            location_map: b.location_map,
            associate_by: b.associate_by.unwrap_or_default(),
            batch_size,
        };

        let appointments = AppointmentsConfig {
            enabled: raw.appointments.enabled.unwrap_or(false),
        };

        if raw.report.dir.is_some() {
            tracing::warn!(
                "{}: report.dir is deprecated and ignored (reports go to stdout or `report --output FILE`); remove it, a later release will refuse it",
                self.path.display()
            );
        }
        if raw.report.keep_runs.is_some() {
            tracing::warn!(
                "{}: report.keep_runs is deprecated and ignored: runs are kept report.keep_days days (default 30), no-op runs one per hour; remove it, a later release will refuse it",
                self.path.display()
            );
        }
        let report = ReportConfig {
            keep_days: raw.report.keep_days.unwrap_or(30),
            max_items: raw.report.max_items.unwrap_or(500),
        };
        positive("report.keep_days", report.keep_days.into())?;

        let dashboard = self.dashboard(raw.dashboard)?;
        let notify = self.notify(raw.notify, env)?;
        let webhooks = self.webhooks(raw.webhooks, env)?;

        Ok(Config {
            source_path: self.path.clone(),
            state,
            hotspot,
            filter,
            ghl,
            http,
            sync,
            schedule,
            contacts,
            notes,
            tasks,
            businesses,
            appointments,
            report,
            dashboard,
            notify,
            webhooks,
            decided: Decided {
                mapping,
                contact_policy,
                ghl_http,
                hotspot_http,
            },
        })
    }

    /// `[filter]`: each entry normalised as it is compared (emails and domains lower-cased), and
    /// refused when it could never match, so that a typo does not silently sync nobody.
    fn filter(&self, f: RawFilter, read: &[String]) -> Result<GuestFilter, ConfigError> {
        use ConfigErrorKind as K;
        let mut out = GuestFilter::default();
        for (i, id) in f.ids.iter().enumerate() {
            let id = id.trim();
            if id.is_empty() {
                return Err(self.at(&format!("filter.ids[{i}]"), K::Invalid, "must not be empty"));
            }
            out.ids.insert(id.to_owned());
        }
        for (i, e) in f.emails.iter().enumerate() {
            let Some(e) = crate::model::norm_email(Some(e)) else {
                return Err(self.at(
                    &format!("filter.emails[{i}]"),
                    K::Invalid,
                    format!("{e:?} is not an email address"),
                ));
            };
            out.emails.insert(e);
        }
        for (i, d) in f.email_domains.iter().enumerate() {
            let d = d.trim().trim_start_matches('@').to_lowercase();
            if d.is_empty() || d.contains('@') || d.contains(char::is_whitespace) {
                return Err(self.at(
                    &format!("filter.email_domains[{i}]"),
                    K::Invalid,
                    "must be a domain such as \"example.com\"",
                ));
            }
            out.email_domains.insert(d);
        }
        for (i, l) in f.locations.iter().enumerate() {
            let l = l.trim();
            if l.is_empty() {
                return Err(self.at(
                    &format!("filter.locations[{i}]"),
                    K::Invalid,
                    "must not be empty",
                ));
            }
            // Only listed locations are read: a guest of any other one is never seen to pass.
            if !read.is_empty() && !read.iter().any(|r| r == l) {
                return Err(self.at(
                    &format!("filter.locations[{i}]"),
                    K::Invalid,
                    format!("location {l:?} is not read (hotspot.locations); add it there or remove it here"),
                ));
            }
            out.locations.insert(l.to_owned());
        }
        Ok(out)
    }

    /// `[dashboard]`: the credential sources are checked for shape only (the secrets are read
    /// by `serve`, which alone needs them).
    fn dashboard(&self, d: RawDashboard) -> Result<DashboardConfig, ConfigError> {
        use ConfigErrorKind as K;
        let mut allowed_hosts = Vec::new();
        for (i, h) in d.allowed_hosts.unwrap_or_default().into_iter().enumerate() {
            let name = h.trim().trim_end_matches('.').to_ascii_lowercase();
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
                && !name.contains("://");
            if !plain {
                return Err(self.at(
                    &format!("dashboard.allowed_hosts[{i}]"),
                    K::Invalid,
                    format!("{h:?} is not a host name (write the name only, e.g. \"dash.example.com\", without scheme, port or path)"),
                ));
            }
            allowed_hosts.push(
                name.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            );
        }
        let source =
            |env_key: &str, env: Option<String>, file_key: &str, file: Option<PathBuf>| match (
                env, file,
            ) {
                (Some(_), Some(_)) => Err(self.at(
                    &format!("dashboard.{file_key}"),
                    K::Invalid,
                    format!("set either {env_key} or {file_key}, not both"),
                )),
                (Some(v), None) if v.trim().is_empty() => Err(self.at(
                    &format!("dashboard.{env_key}"),
                    K::Invalid,
                    "environment variable name must not be empty",
                )),
                (Some(v), None) => Ok(Some(SecretSource::Env(v.trim().to_string()))),
                (None, Some(p)) => Ok(Some(SecretSource::File(p))),
                (None, None) => Ok(None),
            };
        let hash = source(
            "password_hash_env",
            d.password_hash_env,
            "password_hash_file",
            d.password_hash_file,
        )?;
        let basic = match (d.user, hash) {
            (Some(u), Some(h)) if !u.is_empty() && !u.contains(':') => Some((u, h)),
            (Some(_), Some(_)) => {
                return Err(self.at(
                    "dashboard.user",
                    K::Invalid,
                    "must be non-empty and contain no `:`",
                ));
            }
            (Some(_), None) => {
                return Err(self.at(
                    "dashboard.user",
                    K::MissingKey,
                    "needs password_hash_env or password_hash_file (an Argon2 PHC string)",
                ));
            }
            (None, Some(_)) => {
                return Err(self.at(
                    "dashboard.user",
                    K::MissingKey,
                    "a password hash is set: name the user it belongs to",
                ));
            }
            (None, None) => None,
        };
        let token = source("token_env", d.token_env, "token_file", d.token_file)?;
        let default = DashboardConfig::default();
        let secs =
            |key: &str, v: Option<u64>, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                    Some(0) => Err(self.at(key, K::Range, "must be greater than 0")),
                    Some(n) => Ok(Duration::from_secs(n)),
                    None => Ok(default),
                }
            };
        let limits = Limits {
            header_read_timeout: secs(
                "dashboard.header_read_timeout_secs",
                d.header_read_timeout_secs,
                default.limits.header_read_timeout,
            )?,
            idle_timeout: secs(
                "dashboard.idle_timeout_secs",
                d.idle_timeout_secs,
                default.limits.idle_timeout,
            )?,
            request_timeout: secs(
                "dashboard.request_timeout_secs",
                d.request_timeout_secs,
                default.limits.request_timeout,
            )?,
            max_connections: d.max_connections.unwrap_or(default.limits.max_connections),
            max_body_bytes: d.max_body_bytes.unwrap_or(default.limits.max_body_bytes),
        };
        if !(8..=65_536).contains(&limits.max_connections) {
            return Err(self.at(
                "dashboard.max_connections",
                K::Range,
                format!("{} is outside 8..=65536", limits.max_connections),
            ));
        }
        Ok(DashboardConfig {
            allowed_hosts,
            basic,
            token,
            healthz: d.healthz.unwrap_or(default.healthz),
            metrics: d.metrics.unwrap_or(default.metrics),
            show_personal_data: d.show_personal_data,
            limits,
            secret_files: self.insecure_files,
        })
    }

    /// `[notify]`: `None` when it names no target. The webhook URL is read like the API secrets
    /// and checked here, so a wrong one stops every command at load, never an alert later.
    fn notify(
        &self,
        n: RawNotify,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<NotifyConfig>, ConfigError> {
        use ConfigErrorKind as K;
        let webhook_url = if n.webhook_url_env.is_some() || n.webhook_url_file.is_some() {
            let secret = self.secret(
                "notify",
                ("webhook_url_env", n.webhook_url_env.as_deref()),
                ("webhook_url_file", n.webhook_url_file.as_deref()),
                env,
            )?;
            let value = secrecy::ExposeSecret::expose_secret(&secret);
            // Read-only commands may load without the secret; they never send an alert.
            if !(self.secrets_optional && value.is_empty())
                && let Some(problem) = webhook_url_problem(value)
            {
                let key = if n.webhook_url_env.is_some() {
                    "notify.webhook_url_env"
                } else {
                    "notify.webhook_url_file"
                };
                return Err(self.at(key, K::Url, format!("the webhook URL it holds {problem}")));
            }
            Some(secret)
        } else {
            None
        };
        let command = match n.command {
            Some(argv) if argv.first().is_none_or(|p| p.trim().is_empty()) => {
                return Err(self.at(
                    "notify.command",
                    K::Invalid,
                    "must name a program first, then its arguments (e.g. [\"/usr/local/bin/page-me\", \"--team\", \"wifi\"])",
                ));
            }
            other => other,
        };
        let timeout_secs = n.timeout_secs.unwrap_or(DEFAULT_NOTIFY_TIMEOUT_SECS);
        if !(1..=300).contains(&timeout_secs) {
            return Err(self.at(
                "notify.timeout_secs",
                K::Range,
                format!("{timeout_secs} is outside 1..=300"),
            ));
        }
        if webhook_url.is_none() && command.is_none() {
            return Ok(None);
        }
        Ok(Some(NotifyConfig {
            webhook_url,
            command,
            timeout: Duration::from_secs(timeout_secs),
        }))
    }

    /// Reads a secret named by exactly one of `<table>.<env_key>` (variable name) or
    /// `<table>.<file_key>` (path). Errors name the variable or file, never the value.
    fn secret(
        &self,
        table: &str,
        (env_key, env_name): (&str, Option<&str>),
        (file_key, file_path): (&str, Option<&Path>),
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, ConfigError> {
        use ConfigErrorKind as K;
        match (env_name, file_path) {
            (Some(_), Some(_)) => Err(self.at(
                &format!("{table}.{file_key}"),
                K::Invalid,
                format!("set either {env_key} or {file_key}, not both"),
            )),
            (None, None) => Err(self.at(
                &format!("{table}.{env_key}"),
                K::MissingKey,
                format!("[{table}] needs {env_key} (an environment variable name) or {file_key} (a file path)"),
            )),
            (Some(var), None) => {
                let key = format!("{table}.{env_key}");
                self.env_value(&key, var, env)
                    .map(|v| Secret::from(SecretString::from(v)))
            }
            (None, Some(p)) => {
                let key = format!("{table}.{file_key}");
                match Secret::from_file(&key, p, self.insecure_files) {
                    Ok(secret) => Ok(secret),
                    // Read-only commands never use the secrets.
                    Err(_) if self.secrets_optional => Ok(Secret::from(SecretString::from(String::new()))),
                    Err(e) => Err(self.at(&key, K::Secret, e.to_string())),
                }
            }
        }
    }

    /// The OAuth app's keys, shared by `auth = "oauth"` and `auth = "agency"` (`mode`).
    fn oauth_app(
        &self,
        g: &RawGhl,
        mode: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OAuthApp, ConfigError> {
        use ConfigErrorKind as K;
        let Some(id_var) = g.client_id_env.as_deref() else {
            return Err(self.at(
                "ghl.client_id_env",
                K::MissingKey,
                format!("auth = \"{mode}\" needs client_id_env (and client_secret_env)"),
            ));
        };
        if g.client_secret_env.is_none() && g.client_secret_file.is_none() {
            return Err(self.at(
                "ghl.client_secret_env",
                K::MissingKey,
                format!("auth = \"{mode}\" needs client_secret_env (or client_secret_file)"),
            ));
        }
        let client_id = self.env_value("ghl.client_id_env", id_var, env)?;
        let client_secret = self.secret(
            "ghl",
            ("client_secret_env", g.client_secret_env.as_deref()),
            ("client_secret_file", g.client_secret_file.as_deref()),
            env,
        )?;
        let redirect_uri = g
            .redirect_uri
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:8910/oauth/callback".to_string());
        check_base_url(&redirect_uri).map_err(|m| self.at("ghl.redirect_uri", K::Url, m))?;
        let authorize_url = check_base_url(
            g.authorize_url
                .as_deref()
                .unwrap_or(DEFAULT_GHL_AUTHORIZE_URL),
        )
        .map_err(|m| self.at("ghl.authorize_url", K::Url, m))?;
        Ok(OAuthApp {
            client_id,
            client_secret,
            redirect_uri,
            authorize_url,
        })
    }

    fn env_value(
        &self,
        key: &str,
        var: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ConfigError> {
        let var = var.trim();
        if var.is_empty() {
            return Err(self.at(
                key,
                ConfigErrorKind::Invalid,
                "environment variable name must not be empty",
            ));
        }
        let value = env(var);
        if self.secrets_optional && value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return Ok(String::new());
        }
        match value {
            None => Err(self.at(
                key,
                ConfigErrorKind::Secret,
                format!("environment variable {var} is not set"),
            )),
            Some(v) => {
                let v = v.trim_end_matches(['\n', '\r']).to_string();
                if v.trim().is_empty() {
                    Err(self.at(
                        key,
                        ConfigErrorKind::Secret,
                        format!("environment variable {var} is empty"),
                    ))
                } else {
                    Ok(v)
                }
            }
        }
    }
}

fn parse_key_path(key: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        out.push(Seg::Key(name));
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            if let Ok(i) = stripped[..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = &stripped[end + 1..];
        }
    }
    out
}

/// Braces must pair up and not nest, so a template error shows at load time, not mid-run.
fn check_braces(template: &str) -> Result<(), String> {
    let mut open = false;
    for ch in template.chars() {
        match (ch, open) {
            ('{', false) => open = true,
            ('}', true) => open = false,
            ('{', true) => return Err(format!("nested '{{' in template {template:?}")),
            ('}', false) => return Err(format!("unmatched '}}' in template {template:?}")),
            _ => {}
        }
    }
    if open {
        return Err(format!("unclosed '{{' in template {template:?}"));
    }
    Ok(())
}

/// Checks braces and that every placeholder is one of `allowed`.
fn check_template(template: &str, allowed: &[&str]) -> Result<(), String> {
    check_braces(template)?;
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .unwrap_or(rest.len());
        let name = &rest[start + 1..end];
        if !allowed.contains(&name) {
            return Err(if allowed.is_empty() {
                format!("placeholder {{{name}}} is not allowed here (a fixed tag takes none)")
            } else {
                format!(
                    "unknown placeholder {{{name}}}; allowed: {}",
                    allowed
                        .iter()
                        .map(|a| format!("{{{a}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    Ok(())
}

/// The `[filter]` allow-lists, validated and normalised at load. Empty: every guest passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestFilter {
    /// Source ids as the sync keys them: a customer's id, a subscriber's as `sub:<id>`.
    pub ids: BTreeSet<String>,
    /// Normalised (trimmed, lower-cased) email addresses.
    pub emails: BTreeSet<String>,
    /// Lower-cased domains, without `@`.
    pub email_domains: BTreeSet<String>,
    /// HotspotSystem location ids a guest is listed under.
    pub locations: BTreeSet<String>,
}

impl GuestFilter {
    /// No list: every guest passes.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
            && self.emails.is_empty()
            && self.email_domains.is_empty()
            && self.locations.is_empty()
    }

    /// Whether one HotspotSystem record matches any list.
    pub fn admits(&self, r: &SourceContact) -> bool {
        if self.is_empty() || self.ids.contains(&r.source_id) {
            return true;
        }
        if r.location_id
            .as_ref()
            .is_some_and(|l| self.locations.contains(l))
        {
            return true;
        }
        let Some(email) = norm_email(r.email.as_deref()) else {
            return false;
        };
        self.emails.contains(&email)
            || email
                .rsplit_once('@')
                .is_some_and(|(_, d)| self.email_domains.contains(d))
    }
}

#[cfg(test)]
mod read_only_tests {
    use super::*;
    use secrecy::ExposeSecret;

    const MINIMAL: &str = r#"
[hotspot]
api_key_env = "HGS_RO_TEST_KEY"

[ghl]
location_id = "loc"
token_env = "HGS_RO_TEST_TOKEN"
"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn read_only_accepts_unset_secrets_that_the_full_loader_refuses() {
        let full = Config::from_str_with_env(MINIMAL, "c.toml", &no_env).unwrap_err();
        assert_eq!(full.kind(), Some(ConfigErrorKind::Secret));
        let cfg = Config::from_str_read_only(MINIMAL, "c.toml", &no_env).unwrap();
        assert_eq!(cfg.hotspot.api_key.expose_secret(), "");
        assert_eq!(cfg.ghl.location_id, "loc");
    }

    #[test]
    fn read_only_keeps_secrets_that_are_set() {
        let env = |n: &str| (n == "HGS_RO_TEST_KEY").then(|| "k1".to_string());
        let cfg = Config::from_str_read_only(MINIMAL, "c.toml", &env).unwrap();
        assert_eq!(cfg.hotspot.api_key.expose_secret(), "k1");
    }

    #[test]
    fn read_only_accepts_a_missing_secret_file() {
        let text = MINIMAL.replace(
            "api_key_env = \"HGS_RO_TEST_KEY\"",
            "api_key_file = \"/nonexistent/hgs-ro-test-key\"",
        );
        assert!(Config::from_str_with_env(&text, "c.toml", &no_env).is_err());
        assert!(Config::from_str_read_only(&text, "c.toml", &no_env).is_ok());
    }

    #[test]
    fn read_only_still_validates_everything_else() {
        // Neither variable nor file named: a config error, not a missing value.
        let text = MINIMAL.replace("api_key_env = \"HGS_RO_TEST_KEY\"", "");
        let e = Config::from_str_read_only(&text, "c.toml", &no_env).unwrap_err();
        assert_eq!(e.kind(), Some(ConfigErrorKind::MissingKey));
        assert_eq!(e.key(), Some("hotspot.api_key_env"));
        let text = format!("{MINIMAL}\n[http]\ntimeout_sec = 5\n");
        let e = Config::from_str_read_only(&text, "c.toml", &no_env).unwrap_err();
        assert_eq!(e.kind(), Some(ConfigErrorKind::UnknownKey));
        let text = MINIMAL.replace("location_id = \"loc\"", "location_id = \"\"");
        assert!(Config::from_str_read_only(&text, "c.toml", &no_env).is_err());
    }
}

#[cfg(test)]
mod field_tests {
    use super::*;

    #[test]
    fn every_listed_field_is_one_the_mapping_knows() {
        for name in GHL_CONTACT_FIELDS {
            assert!(standard_target(name).is_some(), "{name}");
        }
        for (_, name) in DEFAULT_FIELD_MAP {
            assert!(GHL_CONTACT_FIELDS.contains(name), "{name}");
        }
        for name in HOTSPOT_FIELDS {
            assert!(SourceField::from_wire(name).is_some(), "{name}");
        }
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    fn load(hotspot_extra: &str, filter: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[hotspot]\napi_key_env = \"K\"\n{hotspot_extra}\n\n[ghl]\nlocation_id = \"loc\"\ntoken_env = \"T\"\n\n[filter]\n{filter}\n"
        );
        Config::from_str_with_env(&text, "c.toml", &|_| Some("s".into()))
    }

    #[test]
    fn filter_entries_are_normalised_as_they_are_compared() {
        let cfg = load(
            "",
            "ids = [\" 42 \"]\nemails = [\" Ann@Example.COM \"]\nemail_domains = [\"@Pilot.Example\"]\nlocations = [\"7\"]",
        )
        .unwrap();
        let f = &cfg.filter;
        assert_eq!(f.ids, ["42".to_string()].into());
        assert_eq!(f.emails, ["ann@example.com".to_string()].into());
        assert_eq!(f.email_domains, ["pilot.example".to_string()].into());
        assert_eq!(f.locations, ["7".to_string()].into());
        assert!(load("", "").unwrap().filter.is_empty());
    }

    #[test]
    fn a_filter_location_must_be_one_that_is_read() {
        let e = load("locations = [\"1\", \"2\"]", "locations = [\"2\", \"3\"]").unwrap_err();
        assert_eq!(e.key(), Some("filter.locations[1]"));
        assert!(e.to_string().contains("hotspot.locations"), "{e}");
        assert!(load("locations = [\"1\", \"2\"]", "locations = [\"2\"]").is_ok());
    }
}
