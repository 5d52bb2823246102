//! A store that keeps the records in memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::record::{self, Records};
use super::{Store, StoreError};
use crate::model::{CardState, Change};

/// A store that forgets everything when dropped. Clones share the same records (a test can
/// keep a handle on a card's store); [`MemoryStore::snapshot`] makes an independent copy.
#[derive(Default, Clone)]
pub struct MemoryStore {
    records: Arc<Mutex<Records>>,
    fail_commits: Arc<AtomicBool>,
}

impl MemoryStore {
    /// An independent copy of the stored state.
    pub fn snapshot(&self) -> MemoryStore {
        MemoryStore {
            records: Arc::new(Mutex::new(self.lock().clone())),
            fail_commits: Arc::default(),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        // A panic while holding the lock leaves records that are still whole.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A switch that, while set, makes every commit fail (to test that a failed commit
    /// changes nothing). It stays usable after the store moved into a card.
    pub fn failure_switch(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.fail_commits)
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<CardState, StoreError> {
        self.lock().to_state()
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(StoreError::Io("injected commit failure".into()));
        }
        // Setting records in memory cannot fail half-way.
        record::write(changes, &mut *self.lock())
    }

    fn take_snapshot(&mut self) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let records = self.lock().clone();
        records.to_state()?;
        Ok(super::snapshot::encode(&records))
    }

    fn replace_with(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        let new = super::snapshot::decode(snapshot)?;
        new.to_state()?;
        *self.lock() = new;
        Ok(())
    }
}
