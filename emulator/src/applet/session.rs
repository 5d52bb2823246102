//! The application's volatile state, and the one access check every handler asks.
//!
//! What is here is lost on power off, power on and reset; selecting the application drops the
//! security status too (OpenSC's logout relies on that).

use crate::apdu::Status;
use crate::model::objects::Access;
use crate::model::pin::PinRef;

/// What the application remembers between commands of one session.
#[derive(Default)]
pub(crate) struct Session {
    pub applet_selected: bool,
    pub current_ef: Option<u16>,
    user_verified: bool,
    so_verified: bool,
}

impl Session {
    /// The one access check: whether the session satisfies `access` (`6982` if not).
    pub fn require(&self, access: Access) -> Result<(), Status> {
        match access {
            Access::Always => Ok(()),
            Access::UserPin if self.user_verified => Ok(()),
            Access::UserPin | Access::Never => Err(Status::SecurityStatusNotSatisfied),
        }
    }

    pub fn is_verified(&self, pin: PinRef) -> bool {
        match pin {
            PinRef::User => self.user_verified,
            PinRef::So => self.so_verified,
        }
    }

    pub fn set_verified(&mut self, pin: PinRef, verified: bool) {
        match pin {
            PinRef::User => self.user_verified = verified,
            PinRef::So => self.so_verified = verified,
        }
    }

    /// SELECT of the application: selected, no current EF, every security status dropped.
    pub fn select_application(&mut self) {
        *self = Session {
            applet_selected: true,
            ..Session::default()
        };
    }
}
