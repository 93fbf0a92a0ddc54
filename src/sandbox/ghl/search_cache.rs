//! What the emulator keeps between the pages of one search: plain data, so that the state can
//! hold it and drop it on a change without depending on the search code that fills it.

use serde_json::{Value, json};

/// One sort value of a contact; a contact's keys end with its id, the tiebreak.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Num(i64),
    Str(String),
}

impl Key {
    pub(crate) fn json(&self) -> Value {
        match self {
            Key::Num(n) => json!(n),
            Key::Str(s) => json!(s),
        }
    }
}

/// The ordered matches of one search (filters, sort, query), by contact id, kept while the
/// location does not change (see `GhlState::contacts_changed`).
#[derive(Debug)]
pub(crate) struct SearchCache {
    pub(crate) key: String,
    pub(crate) hits: Vec<(Vec<Key>, String)>,
}
