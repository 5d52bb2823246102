//! Persistence: where a card's [`CardState`] lives between power cycles.
//!
//! [`RedbStore`] keeps one card in one redb file and commits each command's batch in one
//! durable transaction; [`MemoryStore`] keeps it in memory (unit tests, throw-away cards). Both
//! keep the same records ([`record`]); [`snapshot`] is the portable export of them.

mod database;
pub mod encrypted;
mod memory;
pub mod pki_file;
pub(crate) mod record;
mod sealed;
pub(crate) mod snapshot;
pub mod version;

use std::path::PathBuf;

pub use database::RedbStore;
pub use memory::MemoryStore;

use crate::model::{CardState, Change};

/// Why the store could not load or commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Another process holds the database open.
    Locked(PathBuf),
    /// The file exists but is not a card this version understands.
    Corrupt(String),
    /// Any I/O or database failure.
    Io(String),
    /// The card cannot be opened this way (e.g. a `--seed` mismatch).
    Refused(String),
    /// A newer emulator wrote it: `what` has version `found`, this one reads up to `newest`
    /// ([`version`]).
    Newer { what: String, found: u8, newest: u8 },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Locked(path) => write!(
                f,
                "the card database {} is already in use by another emulator process",
                path.display()
            ),
            StoreError::Corrupt(why) => write!(f, "the card database is damaged: {why}"),
            StoreError::Io(why) => write!(f, "card database error: {why}"),
            StoreError::Refused(why) => write!(f, "{why}"),
            StoreError::Newer {
                what,
                found,
                newest,
            } => write!(
                f,
                "written by a newer sc-hsm-emulator: {what} {found}, this one reads up to {newest}"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// A place to keep one card's persistent state.
pub trait Store: Send {
    /// Reads the whole state; an empty state for a new store.
    fn load(&mut self) -> Result<CardState, StoreError>;
    /// Makes all `changes` durable together, or none of them.
    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError>;
    /// The whole card as a portable snapshot ([`snapshot`]'s format).
    fn take_snapshot(&mut self) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        Err(StoreError::Refused("this store keeps no snapshots".into()))
    }
    /// Replaces the whole card by the one of `snapshot`, in one durable step; a damaged
    /// snapshot is refused before anything changes.
    fn replace_with(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        let _ = snapshot;
        Err(StoreError::Refused(
            "this store cannot load snapshots".into(),
        ))
    }
}

#[cfg(test)]
mod tests;
