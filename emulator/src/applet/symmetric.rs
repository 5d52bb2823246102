//! GENERATE SYMMETRIC KEY (`00 48`): a new AES key in the key reference space of RSA and EC
//! keys, with the policy tags of GENERATE ASYMMETRIC (`90` counter, `91` algorithms, `92`
//! domain, `93` wrapping key). CIPHER SYMMETRIC (`80 78`) uses it through
//! [`Applet::use_key`](super::key_use), like SIGN and DECIPHER.

use super::keys::policy_tags;
use super::Applet;
use crate::apdu::{tlv, Response, Status};
use crate::crypto::aes::KeyLength;
use crate::model::key::KeyRecord;
use crate::model::Change;

impl Applet {
    /// GENERATE SYMMETRIC KEY: an AES key of `length` as key `key_id` (replacing a key
    /// of that id, as GENERATE ASYMMETRIC does). Answers no data: an AES key has no public
    /// half.
    pub(super) fn generate_symmetric_key(
        &mut self,
        key_id: u8,
        length: KeyLength,
        data: &[u8],
    ) -> Result<Response, Status> {
        self.require_key_slot(key_id)?;
        let tlvs = tlv::parse_all(data).ok_or(Status::IncorrectData)?;
        if tlvs.iter().any(|t| !matches!(t.tag, 0x90..=0x93)) {
            return Err(Status::IncorrectData);
        }
        let policy = policy_tags(&tlvs)?;
        self.check_domain(&policy)?;
        let mut key = KeyRecord::generate_aes(length, &mut *self.rng);
        key.policy = policy;
        self.limits.admit_key(&self.state, key_id, &key)?;
        self.commit(vec![Change::PutKey(key_id, key)])?;
        Ok(Response::empty())
    }
}
