//! SIGN, DECIPHER and CIPHER SYMMETRIC: a key of the card used under its policy.

use super::command::KeyOperation;
use super::keys::{after_one_use, permits};
use super::Applet;
use crate::apdu::{Response, Status};
use crate::crypto;
use crate::model::key::DEVICE_KEY_ID;
use crate::model::objects::Access;
use crate::model::Change;

impl Applet {
    /// SIGN (`80 68`), DECIPHER (`80 62`) and CIPHER SYMMETRIC (`80 78`): checks login, key,
    /// policy and input, performs the operation, and commits a usage counter before the
    /// result leaves the card. An algorithm the key's list (tag 91) does not name answers
    /// `6A81`, as one that does not apply to the key's type.
    pub(super) fn use_key(
        &mut self,
        key_id: u8,
        operation: KeyOperation,
        input: &[u8],
    ) -> Result<Response, Status> {
        self.session.require(Access::UserPin)?;
        if key_id == DEVICE_KEY_ID {
            return Err(Status::FunctionNotSupported);
        }
        let key = self.state.keys.get(&key_id).ok_or(Status::NotFound)?;
        let algorithm = operation.algorithm.ok_or(Status::FunctionNotSupported)?;
        permits(key, operation.id)?;
        if input.is_empty() && !algorithm.accepts_empty_input() {
            return Err(Status::WrongLength);
        }
        let output = crypto::perform(&key.material, algorithm, input, &mut *self.rng)?;
        if let Some(counted) = after_one_use(key) {
            self.commit(vec![Change::PutKey(key_id, counted)])?;
        }
        Ok(Response::ok(output))
    }
}
