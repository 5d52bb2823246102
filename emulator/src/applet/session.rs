//! The application's volatile state, and the one access check every handler asks.
//!
//! What is here is lost on power off, power on and reset; selecting the application drops the
//! security status too (OpenSC's logout relies on that).

use std::collections::BTreeSet;

use super::certificates::TrustedKey;
use crate::apdu::Status;
use crate::model::objects::Access;
use crate::model::pin::PinRef;
use crate::model::pka::UserRule;

/// Most public keys PSO VERIFY CERTIFICATE keeps at once (the oldest goes first).
pub const MAX_VERIFIED_KEYS: usize = 8;

/// What the application remembers between commands of one session.
#[derive(Default)]
pub(crate) struct Session {
    pub applet_selected: bool,
    pub current_ef: Option<u16>,
    user_verified: bool,
    so_verified: bool,
    /// How the user authenticates on this card (fixed at SELECT and INITIALIZE).
    pub user_rule: UserRule,
    /// Public keys whose certificates PSO VERIFY CERTIFICATE accepted.
    pub verified_keys: Vec<TrustedKey>,
    /// The key MSE SET `81 B6` selected to verify certificates and requests with.
    pub verifier: Option<TrustedKey>,
    /// The registered key MSE SET `81 A4` selected for EXTERNAL AUTHENTICATE.
    pub pka_key: Option<u8>,
    /// The last challenge GET CHALLENGE gave (used once).
    pub challenge: Option<Vec<u8>>,
    /// Slots of the registered keys that authenticated.
    pub pka_authenticated: BTreeSet<u8>,
    /// Whether as many keys authenticated as the card requires.
    pub pka_quorum: bool,
    /// MSE SET `41 A4` chose chip authentication, for the next GENERAL AUTHENTICATE.
    pub chip_authentication: bool,
}

impl Session {
    /// The one access check: whether the session satisfies `access` (`6982` if not).
    pub fn require(&self, access: Access) -> Result<(), Status> {
        match access {
            Access::Always => Ok(()),
            Access::UserPin if self.user_authenticated() => Ok(()),
            Access::UserPin | Access::Never => Err(Status::SecurityStatusNotSatisfied),
        }
    }

    /// Whether the user is authenticated: by PIN, by public keys, or both, as the card's
    /// rule says.
    fn user_authenticated(&self) -> bool {
        match self.user_rule {
            UserRule::Pin => self.user_verified,
            UserRule::PinOrKeys => self.user_verified || self.pka_quorum,
            UserRule::PinAndKeys => self.user_verified && self.pka_quorum,
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

    /// A secure channel opened or ended: the PIN and key authentications were bound to the
    /// channel before, so they go; the selection stays.
    pub fn drop_security(&mut self) {
        *self = Session {
            applet_selected: self.applet_selected,
            current_ef: self.current_ef,
            user_rule: self.user_rule,
            ..Session::default()
        };
    }

    /// SELECT of the application: selected, no current EF, every security status and
    /// verified key dropped.
    pub fn select_application(&mut self, user_rule: UserRule) {
        *self = Session {
            applet_selected: true,
            user_rule,
            ..Session::default()
        };
    }
}
