//! GENERATE ASYMMETRIC KEY PAIR and DERIVE EC KEY, and the authenticated CV request that
//! carries a key's public half out of the card (GENERATE answers one; UNWRAP KEY makes one for
//! the imported key).

use super::cv_requests::RequestFields;
use super::keys::{after_one_use, permits, policy_tags};
use super::Applet;
use crate::apdu::{tlv, Response, Status};
use crate::crypto::cvc::{self, TaAlgorithm};
use crate::crypto::ec::Curve;
use crate::crypto::rsa;
use crate::model::key::{KeyMaterial, KeyPolicy, KeyRecord, DEVICE_KEY_ID};
use crate::model::objects;
use crate::model::{Change, FileEntry};

/// The algorithm id of DERIVE EC KEY (in the data, and in a key's allowed-algorithm list).
const ALGORITHM_EC_DERIVE: u8 = 0x98;

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
    fields: RequestFields<'a>,
    outer_car: Option<&'a [u8]>,
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
                if !rsa::is_supported_size(bits) {
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
        let policy = policy_tags(&tlvs)?;
        Ok(KeyGenRequest {
            fields: RequestFields {
                profile: find(cvc::tag::PROFILE).unwrap_or(&[0x00]),
                car: find(cvc::tag::CAR),
                chr,
                oid,
                algorithm,
            },
            outer_car: find(0x45),
            spec,
            policy,
        })
    }
}

impl Applet {
    /// GENERATE ASYMMETRIC KEY PAIR: a new key in `CCxx`, answered (and stored in `CExx`) as
    /// an authenticated CV request: self-signed by the new key, signed by the device key
    /// (P2 `00`) or by the EC key P2 names.
    pub(super) fn generate_key_pair(
        &mut self,
        key_id: u8,
        signer: u8,
        data: &[u8],
    ) -> Result<Response, Status> {
        self.require_key_slot(key_id)?;
        let request = KeyGenRequest::parse(data)?;
        self.check_domain(&request.policy)?;
        let ce = objects::certificate_fid(key_id);
        // The key and its certificate file, before the key is generated.
        let new_key = usize::from(!self.state.keys.contains_key(&key_id));
        let new_file = usize::from(!self.state.files.contains_key(&ce));
        self.limits.admit_objects(&self.state, new_key, new_file)?;
        let outer_car = self.outer_car(signer, request.outer_car)?;

        let mut key = match request.spec {
            KeySpec::Rsa { bits, exponent } => {
                KeyRecord::generate_rsa(bits, exponent, &mut *self.rng)?
            }
            KeySpec::Ec(curve) => KeyRecord::generate_ec(curve, &mut *self.rng),
        };
        key.policy = request.policy.clone();
        let answer = self.cv_request(&key, &request.fields, &outer_car, signer)?;

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

    /// The outer CAR for a request signed by key `signer`: the device CHR for the device key,
    /// the request's own `45` for an EC key of the card.
    fn outer_car(&self, signer: u8, outer_car: Option<&[u8]>) -> Result<Vec<u8>, Status> {
        if signer == DEVICE_KEY_ID {
            return self.device_chr().map(|chr| chr.as_bytes().to_vec());
        }
        match self.state.keys.get(&signer).map(|k| &k.material) {
            Some(KeyMaterial::Ec { .. }) => Ok(outer_car.ok_or(Status::IncorrectData)?.to_vec()),
            Some(KeyMaterial::Rsa(_) | KeyMaterial::Aes(_)) => Err(Status::FunctionNotSupported),
            None => Err(Status::NotFound),
        }
    }

    /// DERIVE EC KEY: a new EC key `target` with d' = d + scalar mod n from key `source`,
    /// on the same curve, in the same domain and with the same algorithm list; it counts as
    /// one use of the source key. The new key gets no `CExx`: the host writes its
    /// description.
    pub(super) fn derive_ec_key(
        &mut self,
        source: u8,
        target: u8,
        algorithm: u8,
        scalar: &[u8],
    ) -> Result<Response, Status> {
        self.require_key_slot(target)?;
        if source == DEVICE_KEY_ID {
            return Err(Status::FunctionNotSupported);
        }
        let key = self.state.keys.get(&source).ok_or(Status::NotFound)?;
        let KeyMaterial::Ec { curve, scalar: d } = &key.material else {
            return Err(Status::FunctionNotSupported);
        };
        if algorithm != ALGORITHM_EC_DERIVE {
            return Err(Status::FunctionNotSupported);
        }
        permits(key, algorithm)?;
        if scalar.len() > curve.order_len() {
            return Err(Status::WrongLength);
        }
        if self.state.keys.contains_key(&target) {
            return Err(Status::FileExists);
        }
        let derived = curve.add_scalars(d, scalar).ok_or(Status::IncorrectData)?;
        let new_key = KeyRecord {
            material: KeyMaterial::Ec {
                curve: *curve,
                scalar: derived,
            },
            policy: KeyPolicy {
                uses_left: None,
                ..key.policy.clone()
            },
        };
        let counted_source = after_one_use(key);
        self.limits.admit_key(&self.state, target, &new_key)?;
        let mut batch = vec![Change::PutKey(target, new_key)];
        batch.extend(counted_source.map(|key| Change::PutKey(source, key)));
        self.commit(batch)?;
        Ok(Response::empty())
    }
}
