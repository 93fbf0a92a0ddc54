//! An installation: the pairs one configuration file syncs. A pair is one GHL sub-account kept in
//! step with some HotspotSystem locations, with a state file of its own; each pair's settings are
//! a whole validated [`Config`], so a pass, a report or a dashboard page of one pair reads exactly
//! what the single-pair form would give it.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};
use crate::secret::InsecureFiles;

/// The name of the one pair of a file written in the single-pair form (no `[[pairs]]`).
pub const SINGLE_PAIR_NAME: &str = "default";

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
    /// `[run] max_concurrent_pairs`: how many pairs' passes the daemon runs at once.
    pub max_concurrent_pairs: usize,
}

/// How many pairs' passes `run` runs at once when `[run] max_concurrent_pairs` is not set.
pub const DEFAULT_MAX_CONCURRENT_PAIRS: usize = 4;

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
        let config = Config::load_with(path, read_only, insecure_files)?;
        Ok(Installation::single(config))
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
            max_concurrent_pairs: DEFAULT_MAX_CONCURRENT_PAIRS,
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
