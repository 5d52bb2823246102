//! VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER and GET CHALLENGE. Every PIN comparison
//! pays for its try first ([`super::pins`]).

use super::command::Unblock;
use super::Applet;
use crate::apdu::{Response, Status};
use crate::model::pin::{PinRecord, PinRef, SO_PIN_LENGTH, USER_PIN_LENGTHS};
use crate::model::{Change, OPTION_RESET_RETRY_COUNTER, OPTION_TRANSPORT_PIN};

impl Applet {
    pub(super) fn verify(
        &mut self,
        which: PinRef,
        value: Option<&[u8]>,
    ) -> Result<Response, Status> {
        let record = self.pin_record(which)?;
        // A transport PIN must be changed (CHANGE REFERENCE DATA) before it verifies; asking
        // costs no try.
        if record.must_change {
            return Err(Status::ReferenceDataNotUsable);
        }
        let Some(candidate) = value else {
            // Status query.
            return if self.session.is_verified(which) {
                Ok(Response::empty())
            } else {
                Err(record.status())
            };
        };
        let max_len = match which {
            PinRef::User => *USER_PIN_LENGTHS.end(),
            PinRef::So => SO_PIN_LENGTH,
        };
        if candidate.len() > max_len {
            return Err(Status::WrongLength);
        }
        // A session PIN (GENERATE SESSION PIN) stands for the user PIN, at no try's cost.
        if which == PinRef::User
            && !record.is_blocked()
            && self
                .session
                .session_pin
                .as_deref()
                .is_some_and(|p| crate::crypto::constant_time_eq(p, candidate))
        {
            self.session.set_verified(which, true);
            return Ok(Response::empty());
        }
        let restored = self.check_pin(which, candidate)?;
        // The answer 9000 acknowledges the restored counter: it is durable before the answer
        // leaves, so a crash after it costs no try (a second fsync per correct VERIFY).
        self.commit(vec![Change::Pin(which, Some(restored))])?;
        self.session.set_verified(which, true);
        Ok(Response::empty())
    }

    /// CHANGE REFERENCE DATA: old ‖ new. The user PIN splits at the stored PIN's length and
    /// the new PIN may have any length in 6..=16 (a change of length is allowed, unlike on
    /// version 1.2 cards); the SO-PIN is 8 ‖ 8 bytes. A transport PIN becomes an ordinary
    /// PIN here.
    pub(super) fn change_reference_data(
        &mut self,
        which: PinRef,
        data: &[u8],
    ) -> Result<Response, Status> {
        let record = self.pin_record(which)?;
        let split = record.len();
        if data.len() <= split {
            return Err(Status::WrongLength);
        }
        let (old, new) = data.split_at(split);
        let new_len_ok = match which {
            PinRef::User => USER_PIN_LENGTHS.contains(&new.len()),
            PinRef::So => new.len() == SO_PIN_LENGTH,
        };
        if !new_len_ok {
            return Err(Status::WrongLength);
        }
        let restored = self.check_pin(which, old)?;
        let salt = self.salt();
        let changed = PinRecord::new(new, restored.max_tries, salt);
        self.commit(vec![Change::Pin(which, Some(changed))])?;
        self.session.set_verified(which, true);
        Ok(Response::empty())
    }

    /// RESET RETRY COUNTER of the user PIN with the SO-PIN (PKCS#11 `C_InitPIN`).
    pub(super) fn reset_retry_counter(&mut self, unblock: Unblock<'_>) -> Result<Response, Status> {
        let user = self.pin_record(PinRef::User)?;
        let options = self.state.options();
        if options & OPTION_RESET_RETRY_COUNTER == 0 {
            return Err(Status::CommandNotAllowed);
        }
        let (so_pin, new_pin) = match unblock {
            Unblock::WithNewPin { so_pin, new_pin } => (so_pin, Some(new_pin)),
            Unblock::CounterOnly { so_pin } => (so_pin, None),
        };
        if new_pin.is_some_and(|p| !USER_PIN_LENGTHS.contains(&p.len())) {
            return Err(Status::WrongLength);
        }
        let so_restored = self.check_pin(PinRef::So, so_pin)?;
        // A PIN the SO sets on a transport-PIN card is a transport PIN again.
        let user = match new_pin {
            Some(pin) => {
                let salt = self.salt();
                PinRecord::new(pin, user.max_tries, salt)
                    .transport(options & OPTION_TRANSPORT_PIN != 0)
            }
            None => user.with_counter_reset(),
        };
        self.commit(vec![
            Change::Pin(PinRef::So, Some(so_restored)),
            Change::Pin(PinRef::User, Some(user)),
        ])?;
        self.session.set_verified(PinRef::User, false);
        Ok(Response::empty())
    }

    /// GET CHALLENGE: `len` random bytes.
    pub(super) fn get_challenge(&mut self, len: usize) -> Response {
        let mut challenge = vec![0u8; len];
        self.rng.fill_bytes(&mut challenge);
        // EXTERNAL AUTHENTICATE answers the latest challenge, once.
        self.session.challenge = Some(challenge.clone());
        Response::ok(challenge)
    }
}
