//! GENERATE ASYMMETRIC KEY PAIR, SIGN and DECIPHER.

use crate::apdu::Response;
use crate::card::Card;
use crate::crypto::{self, Algorithm, CryptoError};
use crate::cvc::{self, RequestBody, TaAlgorithm};
use crate::ec::Curve;
use crate::files;
use crate::keystore::{self, KeyMaterial, KeyPolicy, KeyRecord, DEVICE_KEY_ID};
use crate::limits::MAX_OBJECTS;
use crate::state::{Change, FileEntry};
use crate::status::Status;
use crate::tlv;

/// Public exponent used when a request does not name one.
const DEFAULT_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];

/// What kind of key a GENERATE request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeySpec<'a> {
    Rsa { bits: usize, exponent: &'a [u8] },
    Ec(Curve),
}

/// A GENERATE request: the body of a CV certificate request plus optional policy tags.
#[derive(Debug)]
struct KeyGenRequest<'a> {
    profile: &'a [u8],
    car: Option<&'a [u8]>,
    chr: &'a [u8],
    outer_car: Option<&'a [u8]>,
    oid: &'a [u8],
    algorithm: TaAlgorithm,
    spec: KeySpec<'a>,
    policy: KeyPolicy,
}

impl<'a> KeyGenRequest<'a> {
    fn parse(data: &'a [u8]) -> Result<KeyGenRequest<'a>, Status> {
        let tlvs = tlv::parse_all(data).ok_or(Status::IncorrectData)?;
        let find = |tag: u16| tlvs.iter().find(|t| t.tag == tag).map(|t| t.value);
        let public_key = find(cvc::tag::PUBLIC_KEY).ok_or(Status::IncorrectData)?;
        let chr = find(cvc::tag::CHR).ok_or(Status::IncorrectData)?;
        let key_fields = tlv::parse_all(public_key).ok_or(Status::IncorrectData)?;
        let field = |tag: u16| key_fields.iter().find(|t| t.tag == tag).map(|t| t.value);
        let oid = field(0x06).ok_or(Status::IncorrectData)?;
        let algorithm = TaAlgorithm::from_oid(oid).ok_or(Status::FunctionNotSupported)?;
        let spec = match algorithm {
            TaAlgorithm::RsaPkcs1(_) | TaAlgorithm::RsaPss(_) => {
                let size = field(0x02).ok_or(Status::IncorrectData)?;
                if size.is_empty() || size.len() > 4 {
                    return Err(Status::IncorrectData);
                }
                let bits = size
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                if !keystore::is_supported_rsa_size(bits) {
                    return Err(Status::FunctionNotSupported);
                }
                KeySpec::Rsa {
                    bits,
                    exponent: field(0x82).unwrap_or(&DEFAULT_EXPONENT),
                }
            }
            TaAlgorithm::Ecdsa(_) => {
                let param = |tag| field(tag).ok_or(Status::IncorrectData);
                let curve = Curve::from_domain(
                    param(0x81)?,
                    param(0x82)?,
                    param(0x83)?,
                    param(0x84)?,
                    param(0x85)?,
                    field(0x87),
                )
                .ok_or(Status::FunctionNotSupported)?;
                KeySpec::Ec(curve)
            }
        };
        let policy = KeyPolicy {
            uses_left: match find(0x90) {
                Some(v) => Some(u32::from_be_bytes(
                    v.try_into().map_err(|_| Status::IncorrectData)?,
                )),
                None => None,
            },
            algorithms: find(0x91).map(<[u8]>::to_vec),
            domain: match find(0x92) {
                Some([d]) => Some(*d),
                Some(_) => return Err(Status::IncorrectData),
                None => None,
            },
        };
        Ok(KeyGenRequest {
            profile: find(cvc::tag::PROFILE).unwrap_or(&[0x00]),
            car: find(cvc::tag::CAR),
            chr,
            outer_car: find(0x45),
            oid,
            algorithm,
            spec,
            policy,
        })
    }
}

fn crypto_status(e: CryptoError) -> Status {
    match e {
        CryptoError::WrongKeyType => Status::FunctionNotSupported,
        CryptoError::WrongLength => Status::WrongLength,
        CryptoError::BadInput => Status::IncorrectData,
    }
}

impl Card {
    pub(super) fn require_user(&self) -> Result<(), Status> {
        if self.session.user_verified {
            Ok(())
        } else {
            Err(Status::SecurityStatusNotSatisfied)
        }
    }

    /// Whether the card can take `new_objects` more objects (of which `new_keys` keys) and
    /// `extra_bytes` more bytes: `6A84` if not.
    pub(super) fn check_room(
        &self,
        new_objects: usize,
        new_keys: usize,
        extra_bytes: usize,
    ) -> Result<(), Status> {
        let objects = self.state.files.len() + self.state.keys.len() + new_objects;
        let keys = self.state.keys.len().saturating_sub(1) + new_keys;
        let bytes = self.state.storage_used() + extra_bytes;
        if objects > MAX_OBJECTS || keys > self.limits.max_keys || bytes > self.limits.storage_bytes
        {
            return Err(Status::NotEnoughMemory);
        }
        Ok(())
    }

    /// GENERATE ASYMMETRIC KEY PAIR: a new key in `CCxx`, answered (and stored in `CExx`) as
    /// an authenticated CV request: self-signed by the new key, signed by the device key
    /// (P2 `00`) or by the EC key P2 names.
    pub(super) fn generate_key_pair(
        &mut self,
        key_id: u8,
        signer: u8,
        data: &[u8],
    ) -> Result<Response, Status> {
        if key_id == DEVICE_KEY_ID {
            return Err(Status::IncorrectP1P2);
        }
        self.require_user()?;
        let request = KeyGenRequest::parse(data)?;
        // The card offers only the default key domain.
        if request.policy.domain.is_some_and(|d| d != 0) {
            return Err(Status::ReferencedDataNotFound);
        }
        let new_key = usize::from(!self.state.keys.contains_key(&key_id));
        let new_objects =
            new_key + usize::from(!self.state.files.contains_key(&key_fid_ce(key_id)));
        self.check_room(new_objects, new_key, 0)?;
        let (outer_car, signer_key) = self.outer_signer(signer, request.outer_car)?;

        let mut key = match request.spec {
            KeySpec::Rsa { bits, exponent } => {
                KeyRecord::generate_rsa(bits, exponent, &mut *self.rng)
                    .map_err(|_| Status::IncorrectData)?
            }
            KeySpec::Ec(curve) => KeyRecord::generate_ec(curve, &mut *self.rng),
        };
        key.policy = request.policy.clone();

        let public_key = match &key.material {
            KeyMaterial::Rsa(rsa_key) => {
                use rsa::traits::PublicKeyParts;
                cvc::rsa_public_key(
                    request.oid,
                    &keystore::trimmed(rsa_key.n().as_ref()),
                    &keystore::trimmed(rsa_key.e()),
                )
            }
            KeyMaterial::Ec { curve, .. } => {
                let point = key.ec_public_point().map_err(|_| Status::IncorrectData)?;
                cvc::ec_public_key(request.oid, &point, Some(&curve.domain()))
            }
        };
        let body = RequestBody {
            profile: request.profile,
            car: request.car,
            public_key: &public_key,
            chr: request.chr,
        }
        .encode();
        let inner = self.self_signature(&key, request.algorithm, &body)?;
        let signer_key = self.state.keys.get(&signer_key).ok_or(Status::NotFound)?;
        let answer = cvc::authenticated_request(&body, &inner, &outer_car, |signed| {
            signer_key
                .sign_ecdsa_sha256_plain(signed)
                .unwrap_or_default()
        });

        let ce = key_fid_ce(key_id);
        let seq = self
            .state
            .files
            .get(&ce)
            .map_or_else(|| self.state.next_seq(), |f| f.seq);
        self.commit(vec![
            Change::PutKey(key_id, key),
            Change::PutFile(
                ce,
                FileEntry {
                    seq,
                    data: answer.clone(),
                },
            ),
        ])?;
        Ok(Response::ok(answer))
    }

    /// The outer CAR and the key that signs the outer request.
    fn outer_signer(&self, signer: u8, outer_car: Option<&[u8]>) -> Result<(Vec<u8>, u8), Status> {
        if signer == DEVICE_KEY_ID {
            let chr = self
                .state
                .identity
                .as_ref()
                .map(|i| i.device_chr.as_bytes().to_vec());
            return Ok((chr.ok_or(Status::ReferencedDataNotFound)?, DEVICE_KEY_ID));
        }
        match self.state.keys.get(&signer).map(|k| &k.material) {
            Some(KeyMaterial::Ec { .. }) => {
                Ok((outer_car.ok_or(Status::IncorrectData)?.to_vec(), signer))
            }
            Some(KeyMaterial::Rsa(_)) => Err(Status::FunctionNotSupported),
            None => Err(Status::NotFound),
        }
    }

    /// The new key's signature over its own request body, with the algorithm of the OID.
    pub(super) fn self_signature(
        &mut self,
        key: &KeyRecord,
        algorithm: TaAlgorithm,
        body: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let signature = match (&key.material, algorithm) {
            (KeyMaterial::Rsa(k), TaAlgorithm::RsaPkcs1(hash)) => {
                crypto::rsa_pkcs1_sign_message(k, hash, body)
            }
            (KeyMaterial::Rsa(k), TaAlgorithm::RsaPss(hash)) => {
                crypto::rsa_pss_sign_message(k, hash, body, &mut *self.rng)
            }
            (KeyMaterial::Ec { curve, scalar }, TaAlgorithm::Ecdsa(hash)) => curve
                .sign_prehash(scalar, &hash.digest(body))
                .map(|(r, s)| [r, s].concat())
                .map_err(|_| CryptoError::BadInput),
            _ => Err(CryptoError::WrongKeyType),
        };
        signature.map_err(crypto_status)
    }

    /// SIGN (`80 68`) and DECIPHER (`80 62`): checks login, key, policy and input, performs
    /// the operation, and commits a usage counter before the result leaves the card.
    pub(super) fn use_key(
        &mut self,
        key_id: u8,
        algorithm_id: u8,
        algorithm: Option<Algorithm>,
        input: &[u8],
    ) -> Result<Response, Status> {
        self.require_user()?;
        if key_id == DEVICE_KEY_ID {
            return Err(Status::FunctionNotSupported);
        }
        let key = self.state.keys.get(&key_id).ok_or(Status::NotFound)?;
        let algorithm = algorithm.ok_or(Status::FunctionNotSupported)?;
        if key.policy.uses_left == Some(0) {
            return Err(Status::ReferenceDataNotUsable);
        }
        if !key.policy.allows(algorithm_id) {
            return Err(Status::ConditionsNotSatisfied);
        }
        if input.is_empty() {
            return Err(Status::WrongLength);
        }
        let output = crypto::perform(&key.material, algorithm, input, &mut *self.rng)
            .map_err(crypto_status)?;
        if let Some(n) = key.policy.uses_left {
            let mut counted = key.clone();
            counted.policy.uses_left = Some(n - 1);
            self.commit(vec![Change::PutKey(key_id, counted)])?;
        }
        Ok(Response::ok(output))
    }
}

fn key_fid_ce(key_id: u8) -> u16 {
    u16::from_be_bytes([files::prefix::CERTIFICATE, key_id])
}
