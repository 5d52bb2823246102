//! The DKEK chapter: IMPORT DKEK SHARE, WRAP KEY and UNWRAP KEY.

use crate::apdu::Response;
use crate::card::Card;
use crate::cvc::{self, RequestBody};
use crate::dkek::Dkek;
use crate::keyblob::{self, BlobError, KeyEncryptionKeys};
use crate::keystore::{self, KeyMaterial, DEVICE_KEY_ID};
use crate::state::Change;
use crate::status::Status;

/// EF where hosts limited to short APDUs stage a blob for UNWRAP KEY without data.
pub const EF_UNWRAP_STAGING: u16 = 0x2F10;

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
        self.require_user()?;
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
        self.require_user()?;
        let keys = self.key_encryption_keys()?;
        if self.state.keys.contains_key(&key_id) {
            return Err(Status::FileExists);
        }
        self.check_room(1, 1, 0)?;
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
        self.check_room(1, 1, key.encode().len() + crate::limits::OBJECT_OVERHEAD)?;
        let request = self.attest(key_id, &key)?;
        self.commit(vec![Change::PutKey(key_id, key)])?;
        Ok(Response::ok(request))
    }

    /// A CV request for `key`, self-signed and signed by the device key.
    fn attest(&mut self, key_id: u8, key: &keystore::KeyRecord) -> Result<Vec<u8>, Status> {
        let identity = self
            .state
            .identity
            .as_ref()
            .ok_or(Status::ReferencedDataNotFound)?;
        let device_chr = identity.device_chr.clone();
        let chr = format!("{}{key_id:05}", identity.serial());
        let (public_key, algorithm) = match &key.material {
            KeyMaterial::Rsa(rsa_key) => {
                use rsa::traits::PublicKeyParts;
                let template = cvc::rsa_public_key(
                    cvc::OID_TA_RSA_V15_SHA256,
                    &keystore::trimmed(rsa_key.n().as_ref()),
                    &keystore::trimmed(rsa_key.e()),
                );
                (
                    template,
                    cvc::TaAlgorithm::RsaPkcs1(crate::hash::Hash::Sha256),
                )
            }
            KeyMaterial::Ec { curve, scalar } => {
                let point = curve
                    .public_point(scalar)
                    .map_err(|_| Status::IncorrectData)?;
                let template =
                    cvc::ec_public_key(cvc::OID_TA_ECDSA_SHA256, &point, Some(&curve.domain()));
                (template, cvc::TaAlgorithm::Ecdsa(crate::hash::Hash::Sha256))
            }
        };
        let body = RequestBody {
            profile: &[0x00],
            car: Some(device_chr.as_bytes()),
            public_key: &public_key,
            chr: chr.as_bytes(),
        }
        .encode();
        let inner = self.self_signature(key, algorithm, &body)?;
        let device_key = self
            .state
            .keys
            .get(&DEVICE_KEY_ID)
            .ok_or(Status::ReferencedDataNotFound)?;
        Ok(cvc::authenticated_request(
            &body,
            &inner,
            device_chr.as_bytes(),
            |signed| {
                device_key
                    .sign_ecdsa_sha256_plain(signed)
                    .unwrap_or_default()
            },
        ))
    }
}
