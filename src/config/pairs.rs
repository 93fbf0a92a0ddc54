//! An installation: the pairs one configuration file syncs. A pair is one GHL sub-account kept in
//! step with some HotspotSystem locations, with a state file of its own; each pair's settings are
//! a whole validated [`Config`], so a pass, a report or a dashboard page of one pair reads exactly
//! what the single-pair form would give it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    Config, ConfigError, ConfigErrorKind as K, Ctx, DEFAULT_STATE_PATH, RawConfig, read_file,
};
use crate::secret::InsecureFiles;

/// The name of the one pair of a file written in the single-pair form (no `[[pairs]]`).
pub const SINGLE_PAIR_NAME: &str = "default";

/// `[run] max_concurrent_pairs` when unset.
pub const DEFAULT_MAX_CONCURRENT_PAIRS: usize = 4;

/// Sections only the top level may hold: they describe the process, not a pair. One process
/// serves one dashboard (it shows every pair) and one webhook receiver (it routes to every
/// pair), and runs its pairs under one concurrency limit.
const TOP_LEVEL_ONLY: &[&str] = &["run", "dashboard", "webhooks", "pairs"];

/// What one configuration file syncs, validated.
#[derive(Debug, Clone)]
pub struct Installation {
    /// The file this was loaded from (for messages).
    pub source_path: PathBuf,
    /// At least one; names are unique. In the single-pair form, one pair named
    /// [`SINGLE_PAIR_NAME`].
    pub pairs: Vec<Pair>,
    /// How the file was written.
    pub form: Form,
    /// `[run] max_concurrent_pairs`: how many pairs a daemon runs at once. 1 in the single form.
    pub max_concurrent_pairs: usize,
}

/// How a configuration file names its pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// No `[[pairs]]`: the file is one pair, and the commands name no pair.
    Single,
    /// One or more `[[pairs]]`.
    Pairs,
}

/// One GHL sub-account and the HotspotSystem locations synced to it.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Unique in the installation; used in state file names, reports, metrics and `--pair`.
    pub name: String,
    /// Everything a pass of this pair runs on: its `hotspot.locations`, `state.path` and `[ghl]`
    /// are the pair's own, the sections it does not override are the top level's.
    pub config: Config,
}

/// `--pair` named a pair the configuration does not have.
#[derive(Debug, thiserror::Error)]
#[error("{path}: no pair named {name:?} (the pairs are: {known})")]
pub struct UnknownPair {
    pub path: String,
    pub name: String,
    pub known: String,
}

impl Installation {
    /// Reads and validates the file, as [`Config::load_with`] does for each pair.
    pub fn load_with(
        path: impl AsRef<Path>,
        read_only: bool,
        insecure_files: InsecureFiles,
    ) -> Result<Installation, ConfigError> {
        let path = path.as_ref();
        let text = read_file(path)?;
        let mut ctx = Ctx::new(&text, path);
        ctx.secrets_optional = read_only;
        ctx.insecure_files = insecure_files;
        Self::from_ctx(ctx, &|name| std::env::var(name).ok())
    }

    /// As [`Installation::load_with`] (secrets required), from text and with the environment as
    /// a lookup function; `path` is used in messages only.
    pub fn from_str_with_env(
        text: &str,
        path: impl AsRef<Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Installation, ConfigError> {
        Self::from_ctx(Ctx::new(text, path.as_ref()), env)
    }

    fn from_ctx(
        mut ctx: Ctx<'_>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Installation, ConfigError> {
        let tree = DeTable::parse(ctx.text).map_err(|e| ctx.toml_error(&e))?;
        if !tree.get_ref().contains_key("pairs") {
            if tree.get_ref().contains_key("run") {
                return Err(ctx.at(
                    "run",
                    K::Invalid,
                    "[run] applies to a file with [[pairs]]; a file without them is one pair",
                ));
            }
            let raw: RawConfig = toml::from_str(ctx.text).map_err(|e| ctx.toml_error(&e))?;
            return Ok(Installation::single(ctx.validate(raw, env)?));
        }
        let doc_span = tree.span();
        let mut top = tree.into_inner();
        let run = top.remove("run");
        let Some(listed) = top.remove("pairs") else {
            unreachable!("checked above")
        };
        let max_concurrent_pairs = run_settings(&ctx, doc_span.clone(), run)?;
        refuse_top_level_locations(&ctx, &top)?;
        let top_state = top_state_path(&top);
        let DeValue::Array(entries) = listed.into_inner() else {
            return Err(ctx.at(
                "pairs",
                K::WrongType,
                "must be an array of tables: write each pair as [[pairs]]",
            ));
        };
        if entries.is_empty() {
            return Err(ctx.at("pairs", K::Invalid, "lists no pair"));
        }

        let mut declared = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let entry_span = entry.span();
            let DeValue::Table(table) = entry.into_inner() else {
                return Err(ctx.at(&format!("pairs[{i}]"), K::WrongType, "must be a table"));
            };
            declared.push(Declared::read(&ctx, i, entry_span, table, &top_state)?);
        }
        check_names(&ctx, &declared)?;
        check_state_files(&ctx, &declared, &top_state)?;

        let mut pairs = Vec::with_capacity(declared.len());
        for (i, d) in declared.into_iter().enumerate() {
            let name = d.name.clone();
            let merged = d.merged_with(&top);
            let raw = RawConfig::deserialize(toml::de::Deserializer::from(Spanned::new(
                doc_span.clone(),
                merged,
            )))
            .map_err(|e| ctx.toml_error(&e))?;
            ctx.pair = Some(i);
            let config = ctx.validate(raw, env)?;
            ctx.pair = None;
            pairs.push(Pair { name, config });
        }
        check_locations(&mut ctx, &pairs)?;
        Ok(Installation {
            source_path: ctx.path.clone(),
            pairs,
            form: Form::Pairs,
            max_concurrent_pairs,
        })
    }

    /// The installation of a file in the single-pair form.
    pub fn single(config: Config) -> Installation {
        Installation {
            source_path: config.source_path.clone(),
            pairs: vec![Pair {
                name: SINGLE_PAIR_NAME.to_string(),
                config,
            }],
            form: Form::Single,
            max_concurrent_pairs: 1,
        }
    }

    /// The pairs `--pair` selects: the one named, or every pair when none is.
    pub fn select(&self, name: Option<&str>) -> Result<Vec<&Pair>, UnknownPair> {
        let Some(name) = name else {
            return Ok(self.pairs.iter().collect());
        };
        match self.pairs.iter().find(|p| p.name == name) {
            Some(pair) => Ok(vec![pair]),
            None => Err(UnknownPair {
                path: self.source_path.display().to_string(),
                name: name.to_string(),
                known: self
                    .pairs
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// `pairs[i].<key>`: where pair `index` writes `key` of its configuration. The pair's
/// HotspotSystem locations and state file are keys of the pair itself.
pub(super) fn key_in_pair(index: usize, key: &str) -> String {
    let own = match key {
        "hotspot.locations" => "hotspot_locations".to_string(),
        _ if key.starts_with("hotspot.locations[") => {
            key.replacen("hotspot.locations", "hotspot_locations", 1)
        }
        "state.path" => "state".to_string(),
        _ => key.to_string(),
    };
    format!("pairs[{index}].{own}")
}

/// One `[[pairs]]` entry as written: its own keys checked, its section overrides not yet merged.
struct Declared<'i> {
    index: usize,
    name: String,
    /// The `hotspot_locations` value, with its span: it becomes `hotspot.locations`.
    locations: Spanned<DeValue<'i>>,
    /// The state file, as written or defaulted.
    state: PathBuf,
    /// The `state` value as written, if it is.
    state_written: Option<Spanned<DeValue<'i>>>,
    /// Span of the entry, for the sections the pair creates.
    span: std::ops::Range<usize>,
    /// Everything else: sections overriding the top level's.
    overrides: DeTable<'i>,
}

impl<'i> Declared<'i> {
    fn read(
        ctx: &Ctx<'_>,
        index: usize,
        span: std::ops::Range<usize>,
        mut table: DeTable<'i>,
        top_state: &Path,
    ) -> Result<Declared<'i>, ConfigError> {
        let key = |k: &str| format!("pairs[{index}].{k}");
        let Some(name) = table.remove("name") else {
            return Err(ctx.at(
                &key("name"),
                K::MissingKey,
                "every pair needs a name (lowercase letters, digits, `-` and `_`)",
            ));
        };
        let Some(name) = name.get_ref().as_str().map(str::to_string) else {
            return Err(ctx.at(&key("name"), K::WrongType, "must be a string"));
        };
        if !valid_name(&name) {
            return Err(ctx.at(
                &key("name"),
                K::Invalid,
                format!(
                    "{name:?} is not a pair name: start with a lowercase letter or digit, then lowercase letters, digits, `-` or `_`"
                ),
            ));
        }

        let Some(locations) = table.remove("hotspot_locations") else {
            return Err(ctx.at(
                &key("hotspot_locations"),
                K::MissingKey,
                "every pair lists the HotspotSystem location ids it syncs",
            ));
        };
        let Some(list) = locations.get_ref().as_array() else {
            return Err(ctx.at(
                &key("hotspot_locations"),
                K::WrongType,
                "must be a list of HotspotSystem location ids",
            ));
        };
        if list.is_empty() {
            return Err(ctx.at(
                &key("hotspot_locations"),
                K::Invalid,
                "must name at least one HotspotSystem location id",
            ));
        }
        for (j, id) in list.iter().enumerate() {
            match id.get_ref().as_str() {
                Some(s) if !s.trim().is_empty() => {}
                Some(_) => {
                    return Err(ctx.at(
                        &key(&format!("hotspot_locations[{j}]")),
                        K::Invalid,
                        "must not be empty",
                    ));
                }
                None => {
                    return Err(ctx.at(
                        &key(&format!("hotspot_locations[{j}]")),
                        K::WrongType,
                        "must be a string (location ids are written in quotes)",
                    ));
                }
            }
        }

        let state_written = table.remove("state");
        let state = match &state_written {
            None => top_state
                .parent()
                .unwrap_or(Path::new(""))
                .join(format!("{name}.db")),
            Some(v) => match v.get_ref().as_str() {
                Some(s) if !s.trim().is_empty() => PathBuf::from(s),
                Some(_) => return Err(ctx.at(&key("state"), K::Invalid, "must not be empty")),
                None => {
                    return Err(ctx.at(
                        &key("state"),
                        K::WrongType,
                        "must be the path of the pair's state file (a string)",
                    ));
                }
            },
        };

        for section in TOP_LEVEL_ONLY {
            if table.contains_key(*section) {
                return Err(ctx.at(
                    &key(section),
                    K::Invalid,
                    format!("[{section}] is set once, at the top level, for every pair"),
                ));
            }
        }
        if let Some(h) = table.get("hotspot").and_then(|h| h.get_ref().as_table())
            && h.contains_key("locations")
        {
            return Err(ctx.at(
                &key("hotspot.locations"),
                K::Invalid,
                "a pair lists its locations in `hotspot_locations`",
            ));
        }
        Ok(Declared {
            index,
            name,
            locations,
            state,
            state_written,
            span,
            overrides: table,
        })
    }

    /// The pair's whole configuration document: the top level with the pair's sections merged
    /// in, its locations as `hotspot.locations` and its state file as `state.path`.
    fn merged_with(self, top: &DeTable<'i>) -> DeTable<'i> {
        let mut doc = top.clone();
        merge_into(&mut doc, self.overrides);
        let span = self.span;
        let section = |doc: &mut DeTable<'i>, name: &'static str| -> DeTable<'i> {
            match doc.remove(name).map(Spanned::into_inner) {
                Some(DeValue::Table(t)) => t,
                // Any other type: left for the validator to name (it is replaced below only
                // when it is a table).
                Some(other) => {
                    doc.insert(
                        Spanned::new(span.clone(), Cow::Borrowed(name)),
                        Spanned::new(span.clone(), other),
                    );
                    DeTable::new()
                }
                None => DeTable::new(),
            }
        };
        let mut hotspot = section(&mut doc, "hotspot");
        hotspot.insert(
            Spanned::new(self.locations.span(), Cow::Borrowed("locations")),
            self.locations,
        );
        let hotspot_span = top.get("hotspot").map_or(span.clone(), Spanned::span);
        doc.insert(
            Spanned::new(hotspot_span.clone(), Cow::Borrowed("hotspot")),
            Spanned::new(hotspot_span, DeValue::Table(hotspot)),
        );
        let mut state = section(&mut doc, "state");
        let path = self.state_written.unwrap_or_else(|| {
            Spanned::new(
                span.clone(),
                DeValue::String(Cow::Owned(self.state.display().to_string())),
            )
        });
        state.insert(Spanned::new(path.span(), Cow::Borrowed("path")), path);
        doc.insert(
            Spanned::new(span.clone(), Cow::Borrowed("state")),
            Spanned::new(span, DeValue::Table(state)),
        );
        doc
    }
}

/// Merges `over` into `base`: tables key by key, recursively; anything else (scalars, arrays,
/// arrays of tables) replaced whole. A replaced key keeps the span of the one that replaced it,
/// so that an error about it points at the line that set it.
fn merge_into<'i>(base: &mut DeTable<'i>, over: DeTable<'i>) {
    for (key, value) in over {
        let existing = base.remove(key.get_ref().as_ref());
        match (existing.map(|e| (e.span(), e.into_inner())), value) {
            (Some((span, DeValue::Table(mut into))), v) if v.get_ref().is_table() => {
                let DeValue::Table(from) = v.into_inner() else {
                    unreachable!("checked to be a table")
                };
                merge_into(&mut into, from);
                base.insert(key, Spanned::new(span, DeValue::Table(into)));
            }
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRunDoc {
    #[serde(default)]
    run: RawRun,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRun {
    max_concurrent_pairs: Option<usize>,
}

/// `[run]`: the installation's own settings.
fn run_settings<'i>(
    ctx: &Ctx<'_>,
    doc_span: std::ops::Range<usize>,
    run: Option<Spanned<DeValue<'i>>>,
) -> Result<usize, ConfigError> {
    let mut doc = DeTable::new();
    if let Some(run) = run {
        doc.insert(Spanned::new(run.span(), Cow::Borrowed("run")), run);
    }
    let raw = RawRunDoc::deserialize(toml::de::Deserializer::from(Spanned::new(doc_span, doc)))
        .map_err(|e| ctx.toml_error(&e))?;
    let n = raw
        .run
        .max_concurrent_pairs
        .unwrap_or(DEFAULT_MAX_CONCURRENT_PAIRS);
    if !(1..=64).contains(&n) {
        return Err(ctx.at(
            "run.max_concurrent_pairs",
            K::Range,
            format!("{n} is outside 1..=64"),
        ));
    }
    Ok(n)
}

/// With `[[pairs]]`, each pair says which locations it reads: a top-level list would be a
/// second answer to that question.
fn refuse_top_level_locations(ctx: &Ctx<'_>, top: &DeTable<'_>) -> Result<(), ConfigError> {
    let listed = top
        .get("hotspot")
        .and_then(|h| h.get_ref().as_table())
        .and_then(|h| h.get("locations"))
        .and_then(|l| l.get_ref().as_array())
        .is_some_and(|l| !l.is_empty());
    if listed {
        return Err(ctx.at(
            "hotspot.locations",
            K::Invalid,
            "with [[pairs]], each pair lists the locations it reads in `hotspot_locations`; remove this list",
        ));
    }
    Ok(())
}

/// The top-level `[state] path` (or its default): the directory of the pairs' default state files.
fn top_state_path(top: &DeTable<'_>) -> PathBuf {
    top.get("state")
        .and_then(|s| s.get_ref().as_table())
        .and_then(|s| s.get("path"))
        .and_then(|p| p.get_ref().as_str())
        .map_or_else(|| PathBuf::from(DEFAULT_STATE_PATH), PathBuf::from)
}

fn check_names(ctx: &Ctx<'_>, declared: &[Declared<'_>]) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for d in declared {
        if let Some(first) = seen.insert(&d.name, d.index) {
            return Err(ctx.at(
                &format!("pairs[{}].name", d.index),
                K::Invalid,
                format!("pair name {:?} is already used by pairs[{first}]", d.name),
            ));
        }
    }
    Ok(())
}

/// A state file holds one pair: two pairs on one file would share links and cursors, and the
/// top-level `[state] path` is not a pair's.
fn check_state_files(
    ctx: &Ctx<'_>,
    declared: &[Declared<'_>],
    top_state: &Path,
) -> Result<(), ConfigError> {
    let where_set = |d: &Declared<'_>| {
        if d.state_written.is_some() {
            format!("pairs[{}].state", d.index)
        } else {
            format!("pairs[{}].name", d.index)
        }
    };
    let mut seen: BTreeMap<PathBuf, &Declared<'_>> = BTreeMap::new();
    let top = lexical(top_state);
    for d in declared {
        let path = lexical(&d.state);
        if path == top {
            return Err(ctx.at(
                &where_set(d),
                K::Invalid,
                format!(
                    "pair {:?} would keep its state in {}, the top-level [state] path; give the pair a file of its own",
                    d.name,
                    d.state.display()
                ),
            ));
        }
        if let Some(first) = seen.insert(path, d) {
            return Err(ctx.at(
                &where_set(d),
                K::Invalid,
                format!(
                    "pair {:?} would share the state file {} with pair {:?}; each pair needs its own",
                    d.name,
                    d.state.display(),
                    first.name
                ),
            ));
        }
    }
    Ok(())
}

/// Two pairs writing one GHL location would fight over the same contacts.
fn check_locations(ctx: &mut Ctx<'_>, pairs: &[Pair]) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, p) in pairs.iter().enumerate() {
        if let Some(first) = seen.insert(&p.config.ghl.location_id, &p.name) {
            ctx.pair = Some(i);
            let err = ctx.at(
                "ghl.location_id",
                K::Invalid,
                format!(
                    "pair {:?} syncs GHL location {} too; two pairs on one location would fight over the same contacts",
                    first, p.config.ghl.location_id
                ),
            );
            ctx.pair = None;
            return Err(err);
        }
    }
    Ok(())
}

/// `a/./b` and `a/b` are one file; `..` is kept (it may cross a link).
fn lexical(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        name.ends_with("_KEY")
            .then(|| "k".to_string())
            .or_else(|| name.starts_with("GHL_").then(|| format!("token-of-{name}")))
    }

    const TOP: &str = r#"
[hotspot]
api_key_env = "HS_KEY"

[ghl]
token_env = "GHL_TOKEN"
rate_limit = 50
scopes = ["contacts.readonly", "contacts.write"]

[contacts.fields]
company_name = "companyName"
city = "city"

[contacts.tags]
base = "wifi"
"#;

    fn load(pairs: &str) -> Result<Installation, ConfigError> {
        Installation::from_str_with_env(&format!("{TOP}{pairs}"), "hgs.toml", &env)
    }

    const TWO: &str = r#"
[[pairs]]
name = "cafe-zurich"
hotspot_locations = ["12", "13"]
[pairs.ghl]
location_id = "loc-a"
token_env = "GHL_TOKEN_A"
scopes = ["contacts.write"]
[pairs.contacts.fields]
city = "customField:contact.venue_city"
[pairs.contacts.tags]
base = "zurich"

[[pairs]]
name = "hotel_2"
hotspot_locations = ["14"]
state = "elsewhere/h2.db"
[pairs.ghl]
location_id = "loc-b"
"#;

    #[test]
    fn a_pair_inherits_what_it_does_not_set_and_replaces_what_it_does() {
        let inst = load(TWO).unwrap();
        assert_eq!(inst.form, Form::Pairs);
        assert_eq!(inst.max_concurrent_pairs, DEFAULT_MAX_CONCURRENT_PAIRS);
        let [a, b] = &inst.pairs[..] else {
            panic!("two pairs")
        };
        assert_eq!(
            (a.name.as_str(), b.name.as_str()),
            ("cafe-zurich", "hotel_2")
        );
        assert_eq!(a.config.hotspot.locations, ["12", "13"]);
        assert_eq!(b.config.hotspot.locations, ["14"]);
        assert_eq!(a.config.ghl.location_id, "loc-a");
        // Tables merge key by key: the rate limit is inherited next to the pair's own keys.
        assert_eq!(a.config.ghl.rate_limit, 50);
        assert_eq!(b.config.ghl.rate_limit, 50);
        // ... field maps too: `company_name` inherited, `city` replaced.
        let fields = &a.config.contacts.fields;
        assert!(fields.iter().any(|(f, t)| f == "company_name"
            && *t == super::super::FieldTarget::Standard("companyName".into())));
        assert!(fields.iter().any(|(f, t)| f == "city"
            && *t == super::super::FieldTarget::Custom("contact.venue_city".into())));
        assert!(
            b.config
                .contacts
                .fields
                .iter()
                .any(|(f, t)| f == "city"
                    && *t == super::super::FieldTarget::Standard("city".into()))
        );
        // Arrays are replaced whole.
        let scopes = |p: &Pair| p.config.ghl.listed_scopes.clone().unwrap_or_default();
        assert_eq!(scopes(a), ["contacts.write"]);
        assert_eq!(scopes(b), ["contacts.readonly", "contacts.write"]);
        assert_eq!(a.config.contacts.tags.base.as_deref(), Some("zurich"));
        assert_eq!(b.config.contacts.tags.base.as_deref(), Some("wifi"));
        // State: beside the top-level default, or as written.
        assert_eq!(a.config.state.path, Path::new("state/cafe-zurich.db"));
        assert_eq!(b.config.state.path, Path::new("elsewhere/h2.db"));
    }

    #[test]
    fn a_pair_reads_its_own_secret_and_the_inherited_one() {
        let inst = load(TWO).unwrap();
        use secrecy::ExposeSecret;
        let token = |p: &Pair| match &p.config.ghl.auth {
            super::super::GhlAuth::PrivateToken { token } => token.expose_secret().to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(token(&inst.pairs[0]), "token-of-GHL_TOKEN_A");
        assert_eq!(token(&inst.pairs[1]), "token-of-GHL_TOKEN");
    }

    fn err(pairs: &str) -> (String, usize, K) {
        let text = format!("{TOP}{pairs}");
        match Installation::from_str_with_env(&text, "hgs.toml", &env) {
            Ok(_) => panic!("loaded"),
            Err(e) => (
                e.key().unwrap().to_string(),
                e.line().unwrap(),
                e.kind().unwrap(),
            ),
        }
    }

    fn line_of(pairs: &str, needle: &str) -> usize {
        let text = format!("{TOP}{pairs}");
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn an_error_in_a_key_the_pair_sets_names_the_pair_and_its_line() {
        let bad = TWO.replace(
            "location_id = \"loc-b\"",
            "location_id = \"loc-b\"\nrate_limit = 0",
        );
        assert_eq!(
            err(&bad),
            (
                "pairs[1].ghl.rate_limit".into(),
                line_of(&bad, "rate_limit = 0"),
                K::Range
            )
        );
        let unknown = TWO.replace("token_env = \"GHL_TOKEN_A\"", "tokn_env = \"GHL_TOKEN_A\"");
        assert_eq!(
            err(&unknown),
            (
                "pairs[0].ghl.tokn_env".into(),
                line_of(&unknown, "tokn_env"),
                K::UnknownKey
            )
        );
    }

    #[test]
    fn a_missing_secret_of_a_pair_names_the_pair_key() {
        let unset = TWO.replace("GHL_TOKEN_A", "UNSET_TOKEN");
        assert_eq!(
            err(&unset),
            (
                "pairs[0].ghl.token_env".into(),
                line_of(&unset, "UNSET_TOKEN"),
                K::Secret
            )
        );
    }

    #[test]
    fn an_error_in_an_inherited_key_names_the_top_level_key() {
        let text = format!("{}{TWO}", TOP.replace("rate_limit = 50", "rate_limit = 0"));
        let e = Installation::from_str_with_env(&text, "hgs.toml", &env).unwrap_err();
        assert_eq!(e.key(), Some("ghl.rate_limit"));
        assert_eq!(
            e.line(),
            Some(text.lines().position(|l| l == "rate_limit = 0").unwrap() + 1)
        );
    }

    #[test]
    fn installation_rules() {
        let dup = TWO.replace("hotel_2", "cafe-zurich");
        assert_eq!(err(&dup).0, "pairs[1].name");
        let same_loc = TWO.replace("loc-b", "loc-a");
        assert_eq!(err(&same_loc).0, "pairs[1].ghl.location_id");
        let same_state = TWO.replace("elsewhere/h2.db", "state/./cafe-zurich.db");
        assert_eq!(err(&same_state).0, "pairs[1].state");
        let top_state = TWO.replace("elsewhere/h2.db", "state/sync.db");
        assert_eq!(err(&top_state).0, "pairs[1].state");
        let bad_name = TWO.replace("hotel_2", "Hotel");
        assert_eq!(err(&bad_name).0, "pairs[1].name");
        let no_locs = TWO.replace("hotspot_locations = [\"14\"]", "hotspot_locations = []");
        assert_eq!(err(&no_locs).0, "pairs[1].hotspot_locations");
        let dashboard = format!("{TWO}[pairs.dashboard]\nbind = \"127.0.0.1:1\"\n");
        assert_eq!(err(&dashboard).0, "pairs[1].dashboard");
        let top_locs = format!(
            "{}{TWO}",
            TOP.replace(
                "api_key_env = \"HS_KEY\"",
                "api_key_env = \"HS_KEY\"\nlocations = [\"1\"]"
            )
        );
        let e = Installation::from_str_with_env(&top_locs, "hgs.toml", &env).unwrap_err();
        assert_eq!(e.key(), Some("hotspot.locations"));
    }

    #[test]
    fn max_concurrent_pairs_is_read_and_bounded() {
        let text = format!("[run]\nmax_concurrent_pairs = 9\n{TOP}{TWO}");
        let inst = Installation::from_str_with_env(&text, "hgs.toml", &env).unwrap();
        assert_eq!(inst.max_concurrent_pairs, 9);
        let text = format!("[run]\nmax_concurrent_pairs = 65\n{TOP}{TWO}");
        let e = Installation::from_str_with_env(&text, "hgs.toml", &env).unwrap_err();
        assert_eq!(
            (e.key(), e.line()),
            (Some("run.max_concurrent_pairs"), Some(2))
        );
    }

    #[test]
    fn the_single_form_is_one_pair() {
        let text = TOP.to_string();
        let e = Installation::from_str_with_env(&text, "hgs.toml", &env).unwrap_err();
        assert_eq!(e.key(), Some("ghl.location_id"));
        let text = TOP.replace("rate_limit = 50", "location_id = \"x\"");
        let inst = Installation::from_str_with_env(&text, "hgs.toml", &env).unwrap();
        assert_eq!(inst.form, Form::Single);
        assert_eq!(inst.max_concurrent_pairs, 1);
        assert_eq!(inst.pairs[0].name, SINGLE_PAIR_NAME);
    }
}
