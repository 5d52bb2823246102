//! How much the card holds: like a real card's EEPROM, the emulated card is full at some point,
//! and then answers `6A84` without writing anything.

use crate::apdu::Status;
use crate::model::CardState;

/// The card's capacity. A real SmartCard-HSM 4K has about 76 KB of EEPROM for keys and
/// objects; the emulator's defaults are larger but finite, and every one is configurable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of files and keys together, each object counted with 16 bytes of overhead.
    pub storage_bytes: usize,
    /// Largest single file.
    pub max_file_size: usize,
    /// Most keys besides the device key.
    pub max_keys: usize,
}

/// Objects an ENUMERATE OBJECTS answer may list: OpenSC reads it into 1014 bytes.
pub const MAX_OBJECTS: usize = 507;

/// Bytes each stored object costs beyond its content.
pub const OBJECT_OVERHEAD: usize = 16;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            storage_bytes: 1024 * 1024,
            max_file_size: 32 * 1024,
            max_keys: 150,
        }
    }
}

impl Limits {
    /// Whether `state` can take `new_objects` more objects (of which `new_keys` keys) and
    /// `extra_bytes` more bytes: `6A84` if not.
    pub(crate) fn admit(
        &self,
        state: &CardState,
        new_objects: usize,
        new_keys: usize,
        extra_bytes: usize,
    ) -> Result<(), Status> {
        let objects = state.files.len() + state.keys.len() + new_objects;
        let keys = state.keys.len().saturating_sub(1) + new_keys;
        let bytes = state.storage_used() + extra_bytes;
        if objects > MAX_OBJECTS || keys > self.max_keys || bytes > self.storage_bytes {
            return Err(Status::NotEnoughMemory);
        }
        Ok(())
    }
}
