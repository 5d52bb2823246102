//! SIGN, DECIPHER and CIPHER SYMMETRIC: a key of the card used under its policy.

use crate::apdu::{Response, Status};
use crate::card::Card;
use crate::crypto::{self, Algorithm, CryptoError};
use crate::model::key::DEVICE_KEY_ID;
use crate::model::objects::Access;
use crate::model::Change;

impl From<CryptoError> for Status {
    fn from(e: CryptoError) -> Status {
        match e {
            CryptoError::WrongKeyType => Status::FunctionNotSupported,
            CryptoError::WrongLength => Status::WrongLength,
            CryptoError::BadInput => Status::IncorrectData,
        }
    }
}

impl Card {
    /// SIGN (`80 68`), DECIPHER (`80 62`) and CIPHER SYMMETRIC (`80 78`): checks login, key,
    /// policy and input, performs the operation, and commits a usage counter before the
    /// result leaves the card. An algorithm the key's list (tag 91) does not name answers
    /// `6A81`, as one that does not apply to the key's type.
    pub(super) fn use_key(
        &mut self,
        key_id: u8,
        algorithm_id: u8,
        algorithm: Option<Algorithm>,
        input: &[u8],
    ) -> Result<Response, Status> {
        self.session.require(Access::UserPin)?;
        if key_id == DEVICE_KEY_ID {
            return Err(Status::FunctionNotSupported);
        }
        let key = self.state.keys.get(&key_id).ok_or(Status::NotFound)?;
        let algorithm = algorithm.ok_or(Status::FunctionNotSupported)?;
        if key.policy.uses_left == Some(0) {
            return Err(Status::ReferenceDataNotUsable);
        }
        if !key.policy.allows(algorithm_id) {
            return Err(Status::FunctionNotSupported);
        }
        if input.is_empty() && !algorithm.accepts_empty_input() {
            return Err(Status::WrongLength);
        }
        let output = crypto::perform(&key.material, algorithm, input, &mut *self.rng)?;
        if let Some(n) = key.policy.uses_left {
            let mut counted = key.clone();
            counted.policy.uses_left = Some(n - 1);
            self.commit(vec![Change::PutKey(key_id, counted)])?;
        }
        Ok(Response::ok(output))
    }
}
