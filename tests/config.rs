//! Config loading: every error names file, key and line; defaults; cron normalisation; secrets.

use std::collections::HashMap;
use std::path::Path;

use hotspot_ghl_sync::config::{
    Config, ConfigError, ConfigErrorKind, FieldTarget, Form, GhlAuth, Installation,
    LostCreateRecovery, Overrides, ScheduleJob,
};
use hotspot_ghl_sync::mapping::SourceField;
use hotspot_ghl_sync::model::{ConflictPolicy, DriftPolicy, Field, StdField};
use secrecy::ExposeSecret;

const FILE: &str = "conf/test.toml";

const MINIMAL: &str = r#"[state]
path = "state/sync.db"

[hotspot]
base_url = "https://api.hotspotsystem.com/v2.0"
api_key_env = "HS_KEY"

[ghl]
base_url = "https://services.leadconnectorhq.com"
location_id = "loc123"
token_env = "GHL_TOKEN"
"#;

fn env() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("HS_KEY", "hs-secret-value"),
        ("GHL_TOKEN", "pit-secret-value\n"),
        ("GHL_CLIENT_ID", "client-id"),
        ("GHL_CLIENT_SECRET", "client-secret-value"),
    ])
}

fn load(text: &str) -> Result<Config, ConfigError> {
    let env = env();
    Config::from_str_with_env(text, FILE, &|k| env.get(k).map(|v| v.to_string()))
}

/// Asserts the error is `kind`, names `key` and `line`, and that its message names the file,
/// the key and the line.
fn expect_err(text: &str, kind: ConfigErrorKind, key: &str, line: usize) -> String {
    let err = load(text).expect_err("config should be rejected");
    let msg = err.to_string();
    assert_eq!(err.kind(), Some(kind), "kind of: {msg}");
    assert_eq!(err.key(), Some(key), "key of: {msg}");
    assert_eq!(err.line(), Some(line), "line of: {msg}");
    assert!(msg.contains(FILE), "file missing in: {msg}");
    assert!(msg.contains(key), "key missing in: {msg}");
    assert!(msg.contains(&format!(":{line}:")), "line missing in: {msg}");
    msg
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.ghl.rate_limit, 100);
    assert_eq!(c.ghl.rate_window_secs, 10);
    assert_eq!(c.ghl.daily_reserve, 1000);
    assert_eq!(c.ghl.lost_create_recovery, LostCreateRecovery::Wait);
    assert_eq!(c.contacts.conflict, ConflictPolicy::HotspotWins);
    assert_eq!(c.contacts.drift, DriftPolicy::Keep);
    assert_eq!(c.contacts.default_country, "US");
    assert!(c.contacts.sync_subscribers);
    assert!(c.contacts.skip_without_email_or_phone);
    assert_eq!(
        c.contacts.fields.get("zip"),
        Some(&FieldTarget::Standard("postalCode".into()))
    );
    assert_eq!(
        c.contacts.fields.get("country_code"),
        Some(&FieldTarget::Standard("country".into()))
    );
    assert!(!c.contacts.fields.contains_key("social_network"));
    assert_eq!(c.contacts.tags.base.as_deref(), Some("hotspotsystem"));
    assert_eq!(c.contacts.tags.location.as_deref(), Some("location:{name}"));
    assert_eq!(c.contacts.tags.social.as_deref(), Some("social:{network}"));
    assert_eq!(c.notes.transaction_types.len(), 4);
    assert_eq!(c.businesses.batch_size, 100);
    assert_eq!(c.hotspot.api_key.expose_secret(), "hs-secret-value");
    match &c.ghl.auth {
        GhlAuth::PrivateToken { token } => assert_eq!(token.expose_secret(), "pit-secret-value"),
        other => panic!("unexpected auth {other:?}"),
    }
    let debug = format!("{c:?}");
    assert!(!debug.contains("secret-value"), "secret leaked in Debug");
}

#[test]
fn malformed_toml_names_file_key_and_line() {
    let text = format!("{MINIMAL}\n[contacts]\nconflict = \"hotspot_wins\nfoo = 1\n");
    let msg = expect_err(&text, ConfigErrorKind::Syntax, "contacts.conflict", 14);
    eprintln!("{msg}");
}

#[test]
fn unknown_key_is_named() {
    let text = format!("{MINIMAL}location_idd = \"x\"\n");
    expect_err(&text, ConfigErrorKind::UnknownKey, "ghl.location_idd", 12);
    let text = format!("{MINIMAL}\n[contacts.tags]\nbase = \"x\"\nbogus = true\n");
    expect_err(
        &text,
        ConfigErrorKind::UnknownKey,
        "contacts.tags.bogus",
        15,
    );
    let text = format!("{MINIMAL}\n[typo_table]\nx = 1\n");
    expect_err(&text, ConfigErrorKind::UnknownKey, "typo_table", 13);
}

#[test]
fn wrong_type_is_named() {
    let text = format!("{MINIMAL}rate_limit = \"fast\"\n");
    expect_err(&text, ConfigErrorKind::WrongType, "ghl.rate_limit", 12);
    let text = format!("{MINIMAL}\n[contacts]\nsync_subscribers = \"yes\"\n");
    expect_err(
        &text,
        ConfigErrorKind::WrongType,
        "contacts.sync_subscribers",
        14,
    );
}

#[test]
fn missing_required_key_is_named() {
    let text = MINIMAL.replace("location_id = \"loc123\"\n", "");
    let msg = expect_err(&text, ConfigErrorKind::MissingKey, "ghl.location_id", 8);
    assert!(msg.contains("location_id"));
}

#[test]
fn invalid_enum_value_is_named() {
    let text =
        format!("{MINIMAL}\n[contacts]\nmax_delete_ratio = 0.2\nconflict = \"hotspot-wins\"\n");
    expect_err(&text, ConfigErrorKind::EnumValue, "contacts.conflict", 15);
    let text = format!("{MINIMAL}auth = \"basic\"\n");
    expect_err(&text, ConfigErrorKind::EnumValue, "ghl.auth", 12);
    let text = format!("{MINIMAL}lost_create_recovery = \"retry\"\n");
    expect_err(
        &text,
        ConfigErrorKind::EnumValue,
        "ghl.lost_create_recovery",
        12,
    );
    let ok = load(&format!("{MINIMAL}lost_create_recovery = \"upsert\"\n")).unwrap();
    assert_eq!(ok.ghl.lost_create_recovery, LostCreateRecovery::Upsert);
    let text = format!("{MINIMAL}\n[notes]\ntransaction_types = [\"mac\", \"cash\"]\n");
    expect_err(
        &text,
        ConfigErrorKind::EnumValue,
        "notes.transaction_types[1]",
        14,
    );
}

#[test]
fn invalid_cron_is_named() {
    let text =
        format!("{MINIMAL}\n[schedule]\ncontacts = \"*/5 * * * *\"\nnotes = \"61 * * * *\"\n");
    expect_err(&text, ConfigErrorKind::Cron, "schedule.notes", 15);
    let text = format!("{MINIMAL}\n[schedule]\nfull = \"0 3 * *\"\n");
    let msg = expect_err(&text, ConfigErrorKind::Cron, "schedule.full", 14);
    assert!(msg.contains("4 fields"), "{msg}");
}

#[test]
fn five_field_cron_gets_leading_seconds() {
    let text = format!(
        "{MINIMAL}\n[schedule]\ncontacts = \"*/5 * * * *\"\nnotes = \"30 */10 * * * *\"\ntasks = \"off\"\n"
    );
    let c = load(&text).unwrap();
    assert_eq!(c.schedule.contacts.as_ref().unwrap().expr, "0 */5 * * * *");
    assert_eq!(
        c.schedule.contacts.as_ref().unwrap().original,
        "*/5 * * * *"
    );
    assert_eq!(c.schedule.notes.as_ref().unwrap().expr, "30 */10 * * * *");
    assert!(c.schedule.tasks.is_none());
    let jobs: Vec<ScheduleJob> = c.schedule.jobs().into_iter().map(|(j, _)| j).collect();
    assert_eq!(
        jobs,
        vec![ScheduleJob::Contacts, ScheduleJob::Notes, ScheduleJob::Full]
    );
    assert_eq!(c.schedule.full.as_ref().unwrap().expr, "0 0 3 * * *");
}

#[test]
fn max_delete_ratio_outside_unit_interval() {
    let text = format!("{MINIMAL}\n[contacts]\nmax_delete_ratio = 1.5\n");
    expect_err(
        &text,
        ConfigErrorKind::Range,
        "contacts.max_delete_ratio",
        14,
    );
    let text = format!("{MINIMAL}\n[contacts]\nmax_delete_ratio = -0.1\n");
    expect_err(
        &text,
        ConfigErrorKind::Range,
        "contacts.max_delete_ratio",
        14,
    );
    let text = format!("{MINIMAL}\n[contacts]\nmax_delete_ratio = 1.0\n");
    assert_eq!(load(&text).unwrap().contacts.max_delete_ratio, 1.0);
}

#[test]
fn base_url_must_be_https_unless_loopback() {
    let text = MINIMAL.replace(
        "https://services.leadconnectorhq.com",
        "http://services.leadconnectorhq.com",
    );
    expect_err(&text, ConfigErrorKind::Url, "ghl.base_url", 9);
    let text = MINIMAL.replace(
        "https://api.hotspotsystem.com/v2.0",
        "http://10.0.0.5:8080/v2.0",
    );
    expect_err(&text, ConfigErrorKind::Url, "hotspot.base_url", 5);
    for ok in [
        "http://127.0.0.1:9000/v2.0/",
        "http://[::1]:9000",
        "http://localhost:1",
    ] {
        let text = MINIMAL.replace("https://api.hotspotsystem.com/v2.0", ok);
        let c = load(&text).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(!c.hotspot.base_url.ends_with('/'));
    }
    // A loopback-looking prefix of another host is not loopback.
    let text = MINIMAL.replace(
        "https://api.hotspotsystem.com/v2.0",
        "http://127.0.0.1.evil.com/",
    );
    expect_err(&text, ConfigErrorKind::Url, "hotspot.base_url", 5);
}

#[test]
fn overrides_recheck_urls() {
    let c = load(MINIMAL).unwrap();
    let c = c
        .with_overrides(&Overrides {
            hotspot_base_url: Some("http://127.0.0.1:4001/v2.0".into()),
            ghl_base_url: Some("http://127.0.0.1:4002".into()),
            state_path: Some("/tmp/x.db".into()),
        })
        .unwrap();
    assert_eq!(c.ghl.base_url, "http://127.0.0.1:4002");
    assert_eq!(c.state.path, Path::new("/tmp/x.db"));
    let err = c
        .with_overrides(&Overrides {
            ghl_base_url: Some("http://example.com".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.key(), Some("ghl.base_url"));
}

#[test]
fn missing_secret_names_variable_not_value() {
    let text = MINIMAL.replace("GHL_TOKEN", "GHL_TOKEN_UNSET");
    let msg = expect_err(&text, ConfigErrorKind::Secret, "ghl.token_env", 11);
    assert!(msg.contains("GHL_TOKEN_UNSET"));
    let text = MINIMAL.replace("token_env = \"GHL_TOKEN\"\n", "");
    expect_err(&text, ConfigErrorKind::MissingKey, "ghl.token_env", 8);
    let text = MINIMAL.replace(
        "api_key_env = \"HS_KEY\"",
        "api_key_file = \"/nonexistent/hgs-secret\"",
    );
    let msg = expect_err(&text, ConfigErrorKind::Secret, "hotspot.api_key_file", 6);
    assert!(msg.contains("/nonexistent/hgs-secret"));
    let text = MINIMAL.replace(
        "api_key_env = \"HS_KEY\"",
        "api_key_env = \"HS_KEY\"\napi_key_file = \"/x\"",
    );
    expect_err(&text, ConfigErrorKind::Invalid, "hotspot.api_key_file", 7);
}

#[test]
fn secret_from_file_is_trimmed() {
    let dir = std::env::temp_dir().join(format!("hgs-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hs_key");
    std::fs::write(&file, "file-secret-value\n").unwrap();
    // Private, as secret files must be.
    let private: std::fs::Permissions = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&file, private).unwrap();
    let text = MINIMAL.replace(
        "api_key_env = \"HS_KEY\"",
        &format!("api_key_file = {:?}", file.to_str().unwrap()),
    );
    let c = load(&text).unwrap();
    assert_eq!(c.hotspot.api_key.expose_secret(), "file-secret-value");
    std::fs::write(&file, "\n").unwrap();
    let err = load(&text).unwrap_err();
    assert_eq!(err.kind(), Some(ConfigErrorKind::Secret));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn secret_from_process_env() {
    // A name no other test or tool uses; set before any thread reads it in this test.
    let var = format!("HGS_TEST_PROCESS_ENV_{}", std::process::id());
    // SAFETY: the variable name is unique to this test, and no other code reads or writes it.
    unsafe { std::env::set_var(&var, "proc-secret-value") };
    let text = MINIMAL
        .replace("\"GHL_TOKEN\"", &format!("{var:?}"))
        .replace("\"HS_KEY\"", &format!("{var:?}"));
    let c = Config::from_str(&text, FILE).unwrap();
    assert_eq!(c.hotspot.api_key.expose_secret(), "proc-secret-value");
}

#[test]
fn oauth_needs_client_ids() {
    let text = MINIMAL.replace("token_env = \"GHL_TOKEN\"", "auth = \"oauth\"");
    expect_err(&text, ConfigErrorKind::MissingKey, "ghl.client_id_env", 8);
    let text = MINIMAL.replace(
        "token_env = \"GHL_TOKEN\"",
        "auth = \"oauth\"\nclient_id_env = \"GHL_CLIENT_ID\"",
    );
    expect_err(
        &text,
        ConfigErrorKind::MissingKey,
        "ghl.client_secret_env",
        8,
    );
    let text = MINIMAL.replace(
        "token_env = \"GHL_TOKEN\"",
        "auth = \"oauth\"\nclient_id_env = \"GHL_CLIENT_ID\"\nclient_secret_env = \"GHL_CLIENT_SECRET\"",
    );
    let c = load(&text).unwrap();
    match c.ghl.auth {
        GhlAuth::OAuth {
            client_id,
            client_secret,
            ..
        } => {
            assert_eq!(client_id, "client-id");
            assert_eq!(client_secret.expose_secret(), "client-secret-value");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn field_map_and_tags_overrides() {
    let text = format!(
        "{MINIMAL}\n[contacts.fields]\nsocial_network = \"customField:contact.social\"\ncompany_name = \"\"\n\n[contacts.tags]\nnewsletter = false\nlocation = \"wifi-{{id}}\"\n"
    );
    let c = load(&text).unwrap();
    assert_eq!(
        c.contacts.fields.get("social_network"),
        Some(&FieldTarget::Custom("contact.social".into()))
    );
    assert!(!c.contacts.fields.contains_key("company_name"));
    assert!(c.contacts.tags.newsletter.is_none());
    assert_eq!(c.contacts.tags.location.as_deref(), Some("wifi-{id}"));

    let text = format!("{MINIMAL}\n[contacts.fields]\nzip = \"postcode\"\n");
    expect_err(&text, ConfigErrorKind::EnumValue, "contacts.fields.zip", 14);
    let text = format!("{MINIMAL}\n[contacts.fields]\nshoe_size = \"website\"\n");
    expect_err(
        &text,
        ConfigErrorKind::UnknownKey,
        "contacts.fields.shoe_size",
        14,
    );
    let text = format!("{MINIMAL}\n[contacts.tags]\nsocial = \"social:{{net}}\"\n");
    expect_err(&text, ConfigErrorKind::Invalid, "contacts.tags.social", 14);
}

/// A field the sync cannot write and a country the phone reader does not know were accepted
/// here and failed every pass instead; both are now mistakes of the file, named at load.
#[test]
fn contact_mapping_mistakes_surface_at_load() {
    let text = format!("{MINIMAL}\n[contacts.fields]\nzip = \"website\"\n");
    let msg = expect_err(&text, ConfigErrorKind::EnumValue, "contacts.fields.zip", 14);
    assert!(
        msg.contains("\"website\" is not a GHL contact field"),
        "{msg}"
    );
    let text = format!("{MINIMAL}\n[contacts]\ndefault_country = \"ZZ\"\n");
    let msg = expect_err(
        &text,
        ConfigErrorKind::Invalid,
        "contacts.default_country",
        14,
    );
    assert!(
        msg.contains("\"ZZ\" is not a known ISO 3166 country code"),
        "{msg}"
    );
}

#[test]
fn ghl_scopes_are_kept_as_listed() {
    assert_eq!(load(MINIMAL).unwrap().ghl.listed_scopes, None);
    let text = MINIMAL.replace("[ghl]\n", "[ghl]\nscopes = [\" contacts.write \", \"\"]\n");
    assert_eq!(
        load(&text).unwrap().ghl.listed_scopes,
        Some(vec!["contacts.write".to_string()])
    );
}

/// The mapping, the contact policy and the HTTP policies are built when the file loads.
#[test]
fn the_pass_values_are_built_at_load() {
    let text = format!(
        "{MINIMAL}\n[http]\nmax_attempts = 3\n\n[contacts]\ndefault_country = \"gb\"\nconflict = \"ghl_wins\"\n\n[contacts.fields]\nname = \"lastName\"\nsocial_id = \"customField:contact.social\"\ncity = \"\"\n\n[contacts.tags]\nsource_deleted = \"gone\"\n"
    );
    let c = load(&text).unwrap();
    let m = c.mapping();
    let lookup = |name: &str| SourceField::from_wire(name).unwrap();
    let target = |name: &str| {
        m.fields
            .entries
            .iter()
            .find(|(s, _)| *s == lookup(name))
            .map(|(_, t)| t.clone())
    };
    assert_eq!(target("name"), Some(Field::Std(StdField::LastName)));
    assert_eq!(
        target("social_id"),
        Some(Field::Custom("contact.social".into()))
    );
    assert_eq!(target("city"), None);
    assert_eq!(target("zip"), Some(Field::Std(StdField::PostalCode)));
    assert!(
        m.tags.location_names.is_empty(),
        "location names are run data"
    );
    assert_eq!(
        m.phone.normalize(Some("020 7946 0958")).0.as_deref(),
        Some("+442079460958")
    );
    let now = chrono::Utc::now();
    let p = c.contact_policy(now);
    assert_eq!((p.now, p.deleted_tag.as_str()), (now, "gone"));
    assert_eq!(p.conflict, ConflictPolicy::GhlWins);
    assert_eq!((c.ghl_http().max_attempts, c.ghl_http().rate_max), (3, 100));
    assert_eq!(c.hotspot_http().max_attempts, 3);
}

#[test]
fn task_rules() {
    let text = format!(
        "{MINIMAL}\n[tasks]\nenabled = true\n\n[[tasks.onboarding]]\ntitle = \"Call {{name}}\"\ndue_in_days = 2\n\n[[tasks.onboarding]]\ntitle = \"\"\n"
    );
    expect_err(
        &text,
        ConfigErrorKind::Invalid,
        "tasks.onboarding[1].title",
        21,
    );
    let text = format!(
        "{MINIMAL}\n[[tasks.onboarding]]\nid = \"a\"\ntitle = \"One\"\n\n[[tasks.onboarding]]\nid = \"a\"\ntitle = \"Two\"\n\n[tasks.paid_followup]\ntitle = \"Thank {{name}}\"\n"
    );
    expect_err(
        &text,
        ConfigErrorKind::Invalid,
        "tasks.onboarding[1].id",
        18,
    );
    let text = format!(
        "{MINIMAL}\n[[tasks.onboarding]]\ntitle = \"One\"\nassignee = \"user1\"\n\n[tasks.paid_followup]\ntitle = \"Thank {{name}}\"\ndue_in_days = 3\n"
    );
    let c = load(&text).unwrap();
    assert_eq!(c.tasks.onboarding.len(), 1);
    assert_eq!(c.tasks.onboarding[0].id, "onboarding-1");
    assert_eq!(c.tasks.onboarding[0].assignee.as_deref(), Some("user1"));
    assert_eq!(c.tasks.paid_followup.as_ref().unwrap().due_in_days, 3);
}

#[test]
fn read_error_names_file() {
    let err = Config::load("/nonexistent/hgs.toml").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/hgs.toml"));
}

fn repo_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

#[test]
fn example_toml_parses() {
    let path = repo_file("example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let env = HashMap::from([("HOTSPOT_API_KEY", "k"), ("GHL_TOKEN", "t")]);
    let c = Config::from_str_with_env(&text, &path, &|k| env.get(k).map(|v| v.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.schedule.contacts.as_ref().unwrap().expr, "0 */5 * * * *");
    assert_eq!(c.contacts.max_delete_ratio, 0.1);
    assert_eq!(
        c.ghl.hotspot_id_field.as_deref(),
        Some("contact.hotspot_customer_id")
    );
}

/// The commented `[[pairs]]` example of `example.toml`, uncommented, loads as two pairs.
#[test]
fn example_toml_pairs_example_loads_when_uncommented() {
    let path = repo_file("example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, tail) = text
        .split_once("# [run]\n")
        .expect("the example has a [run] block");
    let uncommented: String = std::iter::once("[run]")
        .chain(tail.lines().map(|l| {
            l.strip_prefix("# ")
                .or_else(|| l.strip_prefix('#'))
                .unwrap_or(l)
        }))
        .collect::<Vec<_>>()
        .join("\n");
    let env = HashMap::from([
        ("HOTSPOT_API_KEY", "k"),
        ("GHL_TOKEN", "t"),
        ("GHL_TOKEN_CAFE_ZURICH", "z"),
        ("GHL_TOKEN_HOTEL_GENEVA", "g"),
    ]);
    let inst = Installation::from_str_with_env(&format!("{head}{uncommented}\n"), &path, &|k| {
        env.get(k).map(|v| v.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inst.form, Form::Pairs);
    assert_eq!(inst.max_concurrent_pairs, 4);
    let names: Vec<&str> = inst.pairs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cafe-zurich", "hotel-geneva"]);
    let zurich = &inst.pairs[0].config;
    assert_eq!(zurich.hotspot.locations, ["12", "13"]);
    assert_eq!(zurich.state.path, Path::new("state/cafe-zurich.db"));
    assert_eq!(zurich.contacts.tags.base.as_deref(), Some("wifi-zurich"));
    let geneva = &inst.pairs[1].config;
    assert!(!geneva.tasks.enabled);
    assert!(zurich.tasks.enabled);
    // Inherited from the top level.
    assert_eq!(geneva.contacts.max_delete_ratio, 0.1);
}

#[test]
fn demo_toml_parses() {
    let path = repo_file("demo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let env = HashMap::from([("HGS_DEMO_HOTSPOT_KEY", "k"), ("HGS_DEMO_GHL_TOKEN", "t")]);
    let c = Config::from_str_with_env(&text, &path, &|k| env.get(k).map(|v| v.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.hotspot.base_url.starts_with("http://127.0.0.1"));
    assert!(c.ghl.base_url.starts_with("http://127.0.0.1"));
    assert!(c.businesses.enabled);
}

#[test]
fn notify_targets_are_checked_at_load_and_the_webhook_url_never_shown() {
    let with_env = |text: &str, url: &str| {
        let mut env = env();
        env.insert("HOOK", url);
        let env: HashMap<String, String> = env
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_str_with_env(text, FILE, &|k| env.get(k).cloned())
    };
    // No target: no alerts, whatever else the table says.
    assert!(load(MINIMAL).unwrap().notify.is_none());
    let text = format!("{MINIMAL}\n[notify]\ntimeout_secs = 5\n");
    assert!(load(&text).unwrap().notify.is_none());

    let text = format!(
        "{MINIMAL}\n[notify]\nwebhook_url_env = \"HOOK\"\ncommand = [\"/usr/local/bin/page-me\", \"--team\", \"wifi\"]\n"
    );
    let c = with_env(&text, "https://hooks.slack.com/services/T0/B0/tOkEn").unwrap();
    let n = c.notify.expect("alerts on");
    assert_eq!(
        n.webhook_url.as_ref().unwrap().expose_secret(),
        "https://hooks.slack.com/services/T0/B0/tOkEn"
    );
    assert_eq!(n.command.unwrap()[0], "/usr/local/bin/page-me");
    assert_eq!(n.timeout.as_secs(), 10);
    assert!(!format!("{:?}", n.webhook_url).contains("tOkEn"));

    // Plain http beyond loopback is refused, naming the key but not the URL.
    let err = with_env(&text, "http://hooks.example.com/tOkEn").unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), Some(ConfigErrorKind::Url), "{msg}");
    assert_eq!(err.key(), Some("notify.webhook_url_env"), "{msg}");
    assert!(
        msg.contains("must use https") && !msg.contains("tOkEn"),
        "{msg}"
    );
    assert!(with_env(&text, "http://127.0.0.1:9/hook").is_ok());

    let text = format!("{MINIMAL}\n[notify]\nwebhook_url = \"https://x\"\n");
    expect_err(&text, ConfigErrorKind::UnknownKey, "notify.webhook_url", 14);
    let text = format!("{MINIMAL}\n[notify]\ncommand = []\n");
    expect_err(&text, ConfigErrorKind::Invalid, "notify.command", 14);
    let text = format!("{MINIMAL}\n[notify]\ncommand = [\"/bin/true\"]\ntimeout_secs = 0\n");
    expect_err(&text, ConfigErrorKind::Range, "notify.timeout_secs", 15);
}
