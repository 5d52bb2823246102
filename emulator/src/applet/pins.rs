//! Paying for a PIN try, the anti-tearing way, for every command that checks a PIN (VERIFY,
//! CHANGE REFERENCE DATA, RESET RETRY COUNTER, a second INITIALIZE): the retry counter is
//! committed one lower, then the PIN compared, and only a right PIN's record comes back with its
//! counter reset, for the caller to commit with its own changes. A power cut in between costs
//! the try, as on a real card.

use super::Applet;
use crate::apdu::Status;
use crate::model::pin::{PinRecord, PinRef};
use crate::model::Change;

impl Applet {
    pub(super) fn pin_record(&self, which: PinRef) -> Result<PinRecord, Status> {
        self.state
            .pin(which)
            .cloned()
            .ok_or(Status::ReferencedDataNotFound)
    }

    /// Compares `candidate` with PIN `which`, paying for the try before comparing.
    ///
    /// Returns the record with its counter reset when right (not yet committed, so the caller
    /// can commit it with its own changes); `63Cx`/`6983` when wrong or blocked.
    pub(super) fn check_pin(&mut self, which: PinRef, value: &[u8]) -> Result<PinRecord, Status> {
        let record = self.pin_record(which)?;
        if record.is_blocked() {
            return Err(Status::AuthenticationBlocked);
        }
        let charged = record.with_try_used();
        self.commit(vec![Change::Pin(which, Some(charged.clone()))])?;
        if record.matches(value) {
            Ok(charged.with_counter_reset())
        } else {
            self.session.set_verified(which, false);
            Err(Status::PinTriesLeft(charged.tries_left))
        }
    }

    /// A fresh salt for a PIN digest.
    pub(super) fn salt(&mut self) -> [u8; 16] {
        let mut salt = [0u8; 16];
        self.rng.fill_bytes(&mut salt);
        salt
    }
}
