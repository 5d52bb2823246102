//! MANAGE KEY DOMAIN (`80 52`): the key domains, each with its own DKEK assembled from its own
//! shares, or with an XKEK agreed with another card. Domain 0 is the card's default DKEK, the
//! one `80 52 00 00` (IMPORT DKEK SHARE) has always managed; INITIALIZE tag 97 allocates the
//! slots of the others.
//!
//! | P1 | data | needs | answer |
//! |---|---|---|---|
//! | `00` | none | - | total ‖ missing ‖ KCV (8); `6A88` for a slot not created (domain 0 of a card without slots and without DKEK: `6D00`) |
//! | `00` | share (32) | - | as above, after XOR-ing the share in |
//! | `01` | number of shares (1) | user PIN | as above, for the new domain (0 shares: the card generates the DKEK) |
//! | `02` | domain UID (1-32 bytes) | user PIN | `00 01` ‖ zero KCV ‖ UID; after DECIPHER `84`: `00 00` ‖ KCV ‖ UID |
//! | `03` | none | user PIN | `00 00` and a zero KCV; refused while keys of the domain exist |
//! | `04` | none | user PIN | as `00`: the shares (or the XKEK agreement) are awaited again |
//!
//! DECIPHER `80 62 <kid> 84` agrees an XKEK domain's key: `kid` is an EC key of that domain,
//! the data a peer card's authenticated request for an EC key on the same curve (empty: the
//! request staged in `2F10`), whose device key PSO VERIFY CERTIFICATE admitted and MSE SET
//! `81 B6` selected. XKEK = SHA-256(x(ECDH(own key, peer key)) ‖ domain UID); both cards of
//! one PKI that do this with each other's requests hold the same XKEK (the same KCV).

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::command::DomainAction;
use super::Applet;
use crate::apdu::{Response, Status};
use crate::model::dkek::Dkek;
use crate::model::key::KeyMaterial;
use crate::model::objects::Access;
use crate::model::objects::EF_STAGING;
use crate::model::Change;

/// The answer of a domain whose slot is empty: total, missing and KCV all zero.
const EMPTY_STATUS: [u8; 10] = [0; 10];

impl Applet {
    /// MANAGE KEY DOMAIN: one `action` on key domain `kd`.
    pub(super) fn manage_key_domain(
        &mut self,
        kd: u8,
        action: DomainAction<'_>,
    ) -> Result<Response, Status> {
        // A card set up without key shares and without key domain slots answers 6D00 for its
        // default domain, as OpenSC's sc-hsm-tool expects ("not initialised for key shares").
        // With slots, domain 0 is a slot like the others: not created, it answers 6A88 (see
        // the README's Choices for the evidence).
        let default_domain_only = self.state.key_domain_slots() <= 1;
        if kd == 0
            && default_domain_only
            && matches!(self.state.dkek, Dkek::Absent)
            && matches!(action, DomainAction::Status | DomainAction::ImportShare(_))
        {
            return Err(Status::InsNotSupported);
        }
        let current = self.state.domain(kd).ok_or(Status::IncorrectP1P2)?.clone();
        // The status of a slot that holds no domain: allocated, not created (or deleted).
        if matches!(action, DomainAction::Status) && matches!(current, Dkek::Absent) {
            return Err(Status::ReferencedDataNotFound);
        }
        let next = match action {
            DomainAction::Status => None,
            DomainAction::ImportShare(share) => {
                let share: &[u8; 32] = share.try_into().map_err(|_| Status::WrongLength)?;
                if matches!(current, Dkek::Absent) {
                    return Err(Status::ReferencedDataNotFound);
                }
                Some(current.with_share(share).ok_or(Status::CommandNotAllowed)?)
            }
            DomainAction::CreateDkek { shares } => {
                self.session.require(Access::UserPin)?;
                if !matches!(current, Dkek::Absent) {
                    return Err(Status::FileExists);
                }
                Some(self.new_dkek(shares))
            }
            DomainAction::Delete => {
                self.session.require(Access::UserPin)?;
                if matches!(current, Dkek::Absent) {
                    return Err(Status::ReferencedDataNotFound);
                }
                if self.domain_has_keys(kd) {
                    return Err(Status::ConditionsNotSatisfied);
                }
                Some(Dkek::Absent)
            }
            DomainAction::ClearKek => {
                self.session.require(Access::UserPin)?;
                Some(current.cleared().ok_or(Status::ReferencedDataNotFound)?)
            }
            DomainAction::CreateXkek { uid } => {
                self.session.require(Access::UserPin)?;
                if kd == 0 {
                    return Err(Status::IncorrectP1P2);
                }
                if !matches!(current, Dkek::Absent) {
                    return Err(Status::FileExists);
                }
                Some(Dkek::Exchange {
                    uid: uid.to_vec(),
                    value: None,
                })
            }
        };
        let state = match next {
            Some(dkek) => {
                self.commit(vec![Change::Domain(kd, dkek.clone())])?;
                dkek
            }
            None => current,
        };
        Ok(match state.status_answer() {
            Some(answer) => Response::ok(answer),
            // A slot not created answers no data; a deleted one the empty status.
            None if matches!(action, DomainAction::Delete) => Response::ok(EMPTY_STATUS.to_vec()),
            None => Response::empty(),
        })
    }

    /// DECIPHER `84`: agrees the XKEK of key `key_id`'s domain with the peer key of
    /// `request` (see the module documentation). `6A88` for no such key, `6A81` for a key
    /// that is not EC, `6985` when its domain is not an XKEK domain, or without a verifier,
    /// `6A80` for a request that does not decode or whose key is on another curve, `6300`
    /// when a signature does not verify.
    pub(super) fn derive_xkek(&mut self, key_id: u8, request: &[u8]) -> Result<Response, Status> {
        self.session.require(Access::UserPin)?;
        let key = self
            .state
            .keys
            .get(&key_id)
            .filter(|_| key_id != crate::model::key::DEVICE_KEY_ID)
            .ok_or(Status::ReferencedDataNotFound)?;
        let KeyMaterial::Ec { curve, scalar } = &key.material else {
            return Err(Status::FunctionNotSupported);
        };
        let kd = key.policy.domain_or_default();
        let Some(Dkek::Exchange { uid, .. }) = self.state.domain(kd) else {
            return Err(Status::ConditionsNotSatisfied);
        };
        let staged;
        let request = match request {
            [] => {
                staged = self
                    .state
                    .files
                    .get(&EF_STAGING)
                    .ok_or(Status::IncorrectData)?;
                staged.data.as_slice()
            }
            given => given,
        };
        let peer = self.peer_key(request)?;
        let crate::crypto::cvc::PublicKey::Ec {
            curve: peer_curve,
            point,
        } = &peer.key.key
        else {
            return Err(Status::IncorrectData);
        };
        if peer_curve != curve {
            return Err(Status::IncorrectData);
        }
        let shared = curve.ecdh(scalar, point)?;
        // The x coordinate of 04 ‖ X ‖ Y.
        let x = &shared[1..1 + curve.field_len()];
        let mut digest = Sha256::new();
        digest.update(x);
        digest.update(uid);
        let value = Zeroizing::new(<[u8; 32]>::from(digest.finalize()));
        let agreed = Dkek::Exchange {
            uid: uid.clone(),
            value: Some(value),
        };
        self.commit(vec![Change::Domain(kd, agreed)])?;
        Ok(Response::empty())
    }

    /// Whether any key of the card belongs to domain `kd`.
    fn domain_has_keys(&self, kd: u8) -> bool {
        self.state.keys.iter().any(|(id, key)| {
            *id != crate::model::key::DEVICE_KEY_ID && key.policy.domain_or_default() == kd
        })
    }
}
