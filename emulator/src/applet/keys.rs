//! What the chapters that make, use and keep keys share: where a key may be made (never in the
//! device key's reference, only for the user, only in a domain that exists), the policy tags of
//! a new key, what a key's policy allows (its use counter, its algorithm list) and a new DKEK.

use zeroize::Zeroizing;

use super::Applet;
use crate::apdu::{tlv, Status};
use crate::model::dkek::Dkek;
use crate::model::key::{KeyPolicy, KeyRecord, DEVICE_KEY_ID};
use crate::model::objects;

/// The policy tags that follow a key generation request: `90` use counter (4 bytes), `91`
/// allowed algorithms, `92` key domain, `93` wrapping key (1 byte each).
pub(super) fn policy_tags(tlvs: &[tlv::Tlv<'_>]) -> Result<KeyPolicy, Status> {
    let find = |tag: u16| tlvs.iter().find(|t| t.tag == tag).map(|t| t.value);
    let byte = |tag: u16| match find(tag) {
        Some([b]) => Ok(Some(*b)),
        Some(_) => Err(Status::IncorrectData),
        None => Ok(None),
    };
    Ok(KeyPolicy {
        uses_left: match find(0x90) {
            Some(v) => Some(u32::from_be_bytes(
                v.try_into().map_err(|_| Status::IncorrectData)?,
            )),
            None => None,
        },
        algorithms: match find(0x91) {
            Some([]) => return Err(Status::IncorrectData),
            list => list.map(<[u8]>::to_vec),
        },
        domain: byte(0x92)?,
        wrapping_key: byte(0x93)?,
    })
}

/// Whether `key`'s policy lets it run `algorithm` once more: `6984` when its use counter is
/// spent, `6A81` when its algorithm list (tag 91) does not name `algorithm`.
pub(super) fn permits(key: &KeyRecord, algorithm: u8) -> Result<(), Status> {
    if key.policy.uses_left == Some(0) {
        return Err(Status::ReferenceDataNotUsable);
    }
    if !key.policy.allows(algorithm) {
        return Err(Status::FunctionNotSupported);
    }
    Ok(())
}

/// `key` with one use charged, if it counts its uses (`None`: nothing to store).
pub(super) fn after_one_use(key: &KeyRecord) -> Option<KeyRecord> {
    let n = key.policy.uses_left?;
    let mut counted = key.clone();
    counted.policy.uses_left = Some(n.saturating_sub(1));
    Some(counted)
}

impl Applet {
    /// The checks before a key is made in `key_id` (generated, derived or unwrapped): never
    /// in the device key's reference (`6A86`), and only with the user PIN verified.
    pub(super) fn require_key_slot(&self, key_id: u8) -> Result<(), Status> {
        if key_id == DEVICE_KEY_ID {
            return Err(Status::IncorrectP1P2);
        }
        self.session.require(objects::Access::UserPin)
    }

    /// Whether keys may be generated into `policy`'s key domain: domain 0 always, another
    /// one once MANAGE KEY DOMAIN created it (`6A88` otherwise).
    pub(super) fn check_domain(&self, policy: &KeyPolicy) -> Result<(), Status> {
        match policy.domain {
            None | Some(0) => Ok(()),
            Some(kd) => match self.state.domain(kd) {
                Some(d) if !matches!(d, Dkek::Absent) => Ok(()),
                _ => Err(Status::ReferencedDataNotFound),
            },
        }
    }

    /// A DKEK that waits for `shares` shares, or one the card generates (`0`).
    pub(super) fn new_dkek(&mut self, shares: u8) -> Dkek {
        match shares {
            0 => {
                let mut value = Zeroizing::new([0u8; 32]);
                self.rng.fill_bytes(&mut value[..]);
                Dkek::Ready { total: 0, value }
            }
            n => Dkek::awaiting(n),
        }
    }
}
