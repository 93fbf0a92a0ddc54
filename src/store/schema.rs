//! Schema and migrations, keyed on `PRAGMA user_version`.
//!
//! Each entry of [`MIGRATIONS`] moves the database from version `i` to `i + 1` and is applied in
//! its own transaction together with the version bump, so a crash leaves either the old or the new
//! version, never half of a step. Steps only ever get appended; an applied step is never edited.

/// Marks the file as ours in the SQLite header (`PRAGMA application_id`): "HGS1".
pub const APPLICATION_ID: i32 = 0x4847_5331;

/// Value of `hgs_meta.application`, the second marker (survives tools that rewrite headers).
pub const APPLICATION_NAME: &str = "hotspot-ghl-sync";

/// Migration steps; the schema version is the number of steps applied.
pub const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
CREATE TABLE IF NOT EXISTS hgs_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO hgs_meta (key, value) VALUES ('application', 'hotspot-ghl-sync');
INSERT OR IGNORE INTO hgs_meta (key, value)
    VALUES ('created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

-- One row per synced record: identity across sides plus the base hashes of the three-way diff.
CREATE TABLE IF NOT EXISTS links (
    kind            TEXT NOT NULL,
    source_id       TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    source_hash     TEXT,
    target_hash     TEXT,
    owned_tags      TEXT NOT NULL DEFAULT '[]',
    status          TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'tombstoned', 'parked')),
    match_method    TEXT NOT NULL,
    created_by_us   INTEGER NOT NULL DEFAULT 0,
    first_linked_at TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    extra           TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (kind, source_id)
);
CREATE INDEX IF NOT EXISTS links_by_target ON links (kind, target_id);

CREATE TABLE IF NOT EXISTS cursors (
    kind       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, scope)
);

CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kinds       TEXT NOT NULL DEFAULT '[]',
    full        INTEGER NOT NULL DEFAULT 0,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,
    dry_run     INTEGER NOT NULL DEFAULT 0,
    summary     TEXT NOT NULL DEFAULT '{}'
);

-- Intents of non-idempotent creates, written before the remote call (DESIGN.md §5).
CREATE TABLE IF NOT EXISTS journal (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    op           TEXT NOT NULL,
    marker       TEXT NOT NULL,
    payload_hash TEXT,
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'done', 'abandoned')),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    target_id    TEXT,
    run_id       INTEGER REFERENCES runs (id) ON DELETE SET NULL
);
CREATE INDEX IF NOT EXISTS journal_pending ON journal (state) WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS run_items (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    source_id TEXT NOT NULL,
    target_id TEXT,
    action    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    reason    TEXT,
    detail    TEXT NOT NULL DEFAULT 'null'
);
CREATE INDEX IF NOT EXISTS run_items_by_run ON run_items (run_id);

CREATE TABLE IF NOT EXISTS api_calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER REFERENCES runs (id) ON DELETE CASCADE,
    api         TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    status      INTEGER,
    attempt     INTEGER NOT NULL,
    latency_ms  INTEGER NOT NULL,
    error_class TEXT,
    at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_calls_by_run ON api_calls (run_id);

-- The only table holding secrets (OAuth tokens); the file is mode 0600.
CREATE TABLE IF NOT EXISTS tokens (
    provider      TEXT PRIMARY KEY,
    access_token  TEXT NOT NULL,
    refresh_token TEXT,
    expires_at    TEXT,
    scope         TEXT,
    location_id   TEXT,
    user_type     TEXT,
    updated_at    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS appointments (
    contact_target_id TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    start             TEXT,
    "end"             TEXT,
    status            TEXT,
    title             TEXT,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (contact_target_id, event_id)
);
"#,
    // 2: incremental reads of GHL contacts.
    r#"
-- Per location: the `dateUpdated` high-water mark of the last listing of GHL contacts (full or
-- incremental), when the last full listing ran, and the date form GHL's range filter took.
CREATE TABLE IF NOT EXISTS ghl_contact_cursor (
    location_id   TEXT PRIMARY KEY,
    high_water    TEXT,
    last_full_at  TEXT,
    date_filter   TEXT CHECK (date_filter IN ('iso', 'millis', 'refused')),
    updated_at    TEXT NOT NULL
);

-- The identity of every GHL contact seen: what a new guest is matched on without listing them
-- all. A full listing replaces a location's rows; an incremental one upserts.
CREATE TABLE IF NOT EXISTS ghl_contact_identity (
    location_id  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    email        TEXT,
    phone        TEXT,
    anchor       TEXT,
    date_updated TEXT,
    PRIMARY KEY (location_id, target_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ghl_identity_by_email
    ON ghl_contact_identity (location_id, email) WHERE email IS NOT NULL;
CREATE INDEX IF NOT EXISTS ghl_identity_by_phone
    ON ghl_contact_identity (location_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX IF NOT EXISTS ghl_identity_by_anchor
    ON ghl_contact_identity (location_id, anchor) WHERE anchor IS NOT NULL;
"#,
    // 3: alert conditions.
    r#"
-- One row per alert condition (`run_failed:<scope>`, `auth_lost`, `quota_reserve`): since when it
-- holds (NULL: it does not) and when an alert about it was last delivered. Kept here, not in a
-- process, so that passes run as separate processes (a timer, cron) alert at most once an hour.
CREATE TABLE IF NOT EXISTS alert_conditions (
    condition       TEXT PRIMARY KEY,
    active_since    TEXT,
    last_alerted_at TEXT,
    updated_at      TEXT NOT NULL
);
"#,
    // 4: the error message of a failed call (the server's words, masked), for `calls`.
    r#"
ALTER TABLE api_calls ADD COLUMN message TEXT;
"#,
    // 5: webhook events, queued durably before the sender hears 200.
    r#"
-- One row per event received (a replay of the same event type and record inserts nothing):
-- the body as it came (its signature was checked), and when a pass that started after it
-- ended successfully (`processed_at`; NULL: still pending, it wakes the pair at start).
CREATE TABLE IF NOT EXISTS webhook_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    location_id  TEXT,
    record_id    TEXT NOT NULL,
    body         BLOB NOT NULL,
    received_at  TEXT NOT NULL,
    processed_at TEXT,
    UNIQUE (source, event_type, record_id)
);
CREATE INDEX IF NOT EXISTS webhook_events_pending
    ON webhook_events (id) WHERE processed_at IS NULL;
"#,
];

/// The schema version this binary writes and understands.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}
