//! Key backup and restore under the DKEK: IMPORT DKEK SHARE, WRAP KEY and UNWRAP KEY.

use crate::apdu::{Response, Status};
use crate::card::Card;
use crate::crypto::keyblob::{self, BlobError, KeyEncryptionKeys};
use crate::limits::OBJECT_OVERHEAD;
use crate::model::dkek::Dkek;
use crate::model::key::DEVICE_KEY_ID;
use crate::model::objects::{Access, EF_UNWRAP_STAGING};
use crate::model::Change;
use crate::store::record::stored_len;

impl Card {
    /// IMPORT DKEK SHARE: adds one share, or (without data) reports the DKEK status.
    ///
    /// A card initialised without DKEK shares answers `6D00`, which OpenSC's sc-hsm-tool takes
    /// as "not initialised for key shares" and then prints nothing about a DKEK.
    pub(super) fn import_dkek_share(&mut self, share: Option<&[u8]>) -> Result<Response, Status> {
        if matches!(self.state.dkek, Dkek::Absent) {
            return Err(Status::InsNotSupported);
        }
        if let Some(share) = share {
            let share: &[u8; 32] = share.try_into().map_err(|_| Status::WrongLength)?;
            let next = self
                .state
                .dkek
                .with_share(share)
                .ok_or(Status::CommandNotAllowed)?;
            self.commit(vec![Change::Dkek(next)])?;
        }
        let answer = self
            .state
            .dkek
            .status_answer()
            .ok_or(Status::ReferencedDataNotFound)?;
        Ok(Response::ok(answer))
    }

    fn key_encryption_keys(&self) -> Result<KeyEncryptionKeys, Status> {
        match &self.state.dkek {
            Dkek::Ready { value, .. } => Ok(KeyEncryptionKeys::derive(value)),
            _ => Err(Status::ReferencedDataNotFound),
        }
    }

    /// WRAP KEY: the key as a blob under the DKEK. The device key is never exported.
    pub(super) fn wrap_key(&mut self, key_id: u8) -> Result<Response, Status> {
        self.session.require(Access::UserPin)?;
        let keys = self.key_encryption_keys()?;
        if key_id == DEVICE_KEY_ID {
            return Err(Status::ConditionsNotSatisfied);
        }
        let key = self
            .state
            .keys
            .get(&key_id)
            .ok_or(Status::ReferencedDataNotFound)?;
        Ok(Response::ok(keyblob::wrap(&keys, key, &mut *self.rng)))
    }

    /// UNWRAP KEY: imports a blob (from the data, or from EF 2F10 when there is none) as key
    /// `key_id`, which must be free. KCV and MAC are checked before anything is decrypted; a
    /// refused blob changes nothing. The answer is a fresh CV request for the key, signed by
    /// the device key; like a real card, the card does not store it in `CExx` (sc-hsm-tool
    /// writes the wrap file's own certificate there).
    pub(super) fn unwrap_key(&mut self, key_id: u8, data: &[u8]) -> Result<Response, Status> {
        if key_id == DEVICE_KEY_ID {
            return Err(Status::IncorrectP1P2);
        }
        self.session.require(Access::UserPin)?;
        let keys = self.key_encryption_keys()?;
        if self.state.keys.contains_key(&key_id) {
            return Err(Status::FileExists);
        }
        self.limits.admit(&self.state, 1, 1, 0)?;
        let blob = if data.is_empty() {
            &self
                .state
                .files
                .get(&EF_UNWRAP_STAGING)
                .ok_or(Status::NotFound)?
                .data[..]
        } else {
            data
        };
        let key = keyblob::unwrap(&keys, blob).map_err(|e| match e {
            BlobError::Rejected => Status::IncorrectData,
            BlobError::Unsupported => Status::FunctionNotSupported,
        })?;
        self.limits
            .admit(&self.state, 1, 1, stored_len(&key) + OBJECT_OVERHEAD)?;
        let request = self.attest(key_id, &key)?;
        self.commit(vec![Change::PutKey(key_id, key)])?;
        Ok(Response::ok(request))
    }
}
