//! The authenticated CV requests that carry a key's public half out of the card: GENERATE
//! answers one for the new key (and keeps it in `CExx`), UNWRAP KEY makes one for the imported
//! key. Each is self-signed by the key and signed outside by the device key (or another EC key
//! of the card).

use super::Applet;
use crate::apdu::Status;
use crate::crypto::cvc::{self, RequestBody, TaAlgorithm};
use crate::crypto::hash::Hash;
use crate::crypto::{rsa, CryptoError};
use crate::model::key::{KeyMaterial, KeyRecord, DEVICE_KEY_ID};

/// The fields of a CV request body besides the public key, and the algorithm of its OID.
#[derive(Debug)]
pub(super) struct RequestFields<'a> {
    pub profile: &'a [u8],
    pub car: Option<&'a [u8]>,
    pub chr: &'a [u8],
    pub oid: &'a [u8],
    pub algorithm: TaAlgorithm,
}

impl Applet {
    /// The fields of a request for an imported key: the device as CAR, the CHR made of the
    /// serial and the key id, SHA-256 signature algorithms. A secret (AES) key has no public
    /// half: nothing.
    pub(super) fn attest(&mut self, key_id: u8, key: &KeyRecord) -> Result<Vec<u8>, Status> {
        if matches!(key.material, KeyMaterial::Aes(_)) {
            return Ok(Vec::new());
        }
        let device_chr = self.device_chr()?.to_string();
        let chr = format!("{}{key_id:05}", self.serial());
        let (oid, algorithm) = match &key.material {
            KeyMaterial::Rsa(_) => (
                cvc::OID_TA_RSA_V15_SHA256,
                TaAlgorithm::RsaPkcs1(Hash::Sha256),
            ),
            KeyMaterial::Ec { .. } | KeyMaterial::Aes(_) => {
                (cvc::OID_TA_ECDSA_SHA256, TaAlgorithm::Ecdsa(Hash::Sha256))
            }
        };
        let fields = RequestFields {
            profile: &[0x00],
            car: Some(device_chr.as_bytes()),
            chr: chr.as_bytes(),
            oid,
            algorithm,
        };
        self.cv_request(key, &fields, device_chr.as_bytes(), DEVICE_KEY_ID)
    }

    /// An authenticated CV request for `key`: the body with its public key, self-signed by
    /// `key`, signed under `outer_car` by key `signer` of the card.
    pub(super) fn cv_request(
        &mut self,
        key: &KeyRecord,
        fields: &RequestFields<'_>,
        outer_car: &[u8],
        signer: u8,
    ) -> Result<Vec<u8>, Status> {
        let public_key = match &key.material {
            KeyMaterial::Rsa(rsa_key) => {
                let (n, e) = rsa::public_parts(rsa_key);
                cvc::rsa_public_key(fields.oid, &n, &e)
            }
            KeyMaterial::Ec { curve, .. } => {
                let point = key.ec_public_point()?;
                cvc::ec_public_key(fields.oid, &point, Some(&curve.domain()))
            }
            KeyMaterial::Aes(_) => return Err(Status::FunctionNotSupported),
        };
        let body = RequestBody {
            profile: fields.profile,
            car: fields.car,
            public_key: &public_key,
            chr: fields.chr,
        }
        .encode();
        let inner = self.self_signature(key, fields.algorithm, &body)?;
        let signer = self.state.keys.get(&signer).ok_or(Status::NotFound)?;
        // An outer signer that cannot sign (not an EC key) refuses the command (`6A81`).
        cvc::authenticated_request(&body, &inner, outer_car, |signed| {
            Ok(signer.sign_ecdsa_sha256_plain(signed)?)
        })
    }

    /// The new key's signature over its own request body, with the algorithm of the OID.
    fn self_signature(
        &mut self,
        key: &KeyRecord,
        algorithm: TaAlgorithm,
        body: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let signature = match (&key.material, algorithm) {
            (KeyMaterial::Rsa(k), TaAlgorithm::RsaPkcs1(hash)) => {
                rsa::pkcs1_sign_message(k, hash, body)
            }
            (KeyMaterial::Rsa(k), TaAlgorithm::RsaPss(hash)) => {
                rsa::pss_sign_message(k, hash, body, &mut *self.rng)
            }
            (KeyMaterial::Ec { curve, scalar }, TaAlgorithm::Ecdsa(hash)) => curve
                .sign_prehash(scalar, &hash.digest(body))
                .map(|(r, s)| [r, s].concat())
                .map_err(CryptoError::from),
            _ => Err(CryptoError::WrongKeyType),
        };
        Ok(signature?)
    }
}
