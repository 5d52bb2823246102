//! The application's volatile state, all of it, and the one access check every handler asks.
//!
//! What is here is lost on power off, power on and reset; selecting the application drops the
//! security status too (OpenSC's logout relies on that), and so does a secure channel that
//! opens or ends (PIN and key authentications are bound to the side of the channel they were
//! made on).

use std::collections::BTreeSet;

use zeroize::Zeroizing;

use super::trust::TrustedKey;
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
    /// INITIALIZE DEVICE stands for the key quorum in the session that ran it (the host writes
    /// EF.TokenInfo before any key is registered), until the next SELECT or the first
    /// registration or EXTERNAL AUTHENTICATE, from which on the keys count.
    pub keys_by_initialize: bool,
    /// MSE SET `41 A4` chose chip authentication, for the next GENERAL AUTHENTICATE.
    pub chip_authentication: bool,
    /// Whether a secure channel is open (commands arrive protected): the card says so.
    pub secure_channel: bool,
    /// The session PIN GENERATE SESSION PIN made (until reset, power off or INITIALIZE).
    pub session_pin: Option<Zeroizing<Vec<u8>>>,
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
            UserRule::PinOrKeys { required } => self.user_verified || self.key_quorum(required),
            UserRule::PinAndKeys { required } => self.user_verified && self.key_quorum(required),
        }
    }

    /// Whether `required` registered keys authenticated (or INITIALIZE stands for them).
    fn key_quorum(&self, required: u8) -> bool {
        self.keys_by_initialize || self.pka_authenticated.len() >= usize::from(required)
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
    /// other side of it, so they go; the selection and the session PIN stay.
    pub fn secure_channel_changed(&mut self, open: bool) {
        *self = Session {
            applet_selected: self.applet_selected,
            current_ef: self.current_ef,
            user_rule: self.user_rule,
            session_pin: self.session_pin.take(),
            secure_channel: open,
            ..Session::default()
        };
    }

    /// SELECT of the application: selected, no current EF, every security status and
    /// verified key dropped; the secure channel and the session PIN stay.
    pub fn select_application(&mut self, user_rule: UserRule) {
        *self = Session {
            applet_selected: true,
            user_rule,
            session_pin: self.session_pin.take(),
            secure_channel: self.secure_channel,
            ..Session::default()
        };
    }
}
