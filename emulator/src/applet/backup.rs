//! Key backup and restore under a key domain's DKEK: WRAP KEY and UNWRAP KEY. A key is
//! wrapped under the DKEK of its own domain; a blob is unwrapped into the domain whose DKEK
//! has the blob's KCV.

use super::Applet;
use crate::apdu::{Response, Status};
use crate::crypto::keyblob::{self, KeyEncryptionKeys};
use crate::model::key::DEVICE_KEY_ID;
use crate::model::objects::{Access, EF_STAGING};
use crate::model::Change;

impl Applet {
    /// The wrapping keys of domain `kd`, once its DKEK is complete (`6A88` otherwise).
    fn key_encryption_keys(&self, kd: u8) -> Result<KeyEncryptionKeys, Status> {
        self.state
            .domain(kd)
            .and_then(|d| d.ready_value())
            .map(KeyEncryptionKeys::derive)
            .ok_or(Status::ReferencedDataNotFound)
    }

    /// WRAP KEY: the key as a blob under its domain's DKEK. The device key is never
    /// exported.
    pub(super) fn wrap_key(&mut self, key_id: u8) -> Result<Response, Status> {
        self.session.require(Access::UserPin)?;
        if key_id == DEVICE_KEY_ID {
            return Err(Status::ConditionsNotSatisfied);
        }
        let key = self
            .state
            .keys
            .get(&key_id)
            .ok_or(Status::ReferencedDataNotFound)?;
        let keys = self.key_encryption_keys(key.policy.domain_or_default())?;
        Ok(Response::ok(keyblob::wrap(&keys, key, &mut *self.rng)?))
    }

    /// UNWRAP KEY: imports a blob (from the data, or from EF 2F10 when there is none) as key
    /// `key_id`, which must be free, into the domain whose DKEK the blob names by its KCV.
    /// KCV and MAC are checked before anything is decrypted; a refused blob changes nothing. The answer is a fresh CV request for the key, signed by
    /// the device key; like a real card, the card does not store it in `CExx` (sc-hsm-tool
    /// writes the wrap file's own certificate there).
    pub(super) fn unwrap_key(&mut self, key_id: u8, data: &[u8]) -> Result<Response, Status> {
        self.require_key_slot(key_id)?;
        // Domains with a complete DKEK, by KCV.
        let ready: Vec<(u8, KeyEncryptionKeys)> = (0..self.state.key_domain_slots())
            .filter_map(|kd| Some((kd, self.key_encryption_keys(kd).ok()?)))
            .collect();
        if ready.is_empty() {
            return Err(Status::ReferencedDataNotFound);
        }
        if self.state.keys.contains_key(&key_id) {
            return Err(Status::FileExists);
        }
        // Room for one more key, before the blob is decrypted.
        self.limits.admit_objects(&self.state, 1, 0)?;
        let blob = if data.is_empty() {
            &self
                .state
                .files
                .get(&EF_STAGING)
                .ok_or(Status::NotFound)?
                .data[..]
        } else {
            data
        };
        // A blob for none of the domains is refused like a damaged one.
        let (kd, keys) = ready
            .iter()
            .find(|(_, keys)| blob.get(..8) == Some(&keys.kcv()[..]))
            .ok_or(Status::IncorrectData)?;
        let mut key = keyblob::unwrap(keys, blob)?;
        key.policy.domain = (*kd != 0).then_some(*kd);
        self.limits.admit_key(&self.state, key_id, &key)?;
        let request = self.attest(key_id, &key)?;
        self.commit(vec![Change::PutKey(key_id, key)])?;
        Ok(Response::ok(request))
    }
}
