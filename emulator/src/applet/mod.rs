//! The SmartCard-HSM application as a type of its own: [`Applet`] holds what the card holds
//! ([`CardState`]) with the [`Store`] that keeps it, the volatile [`Session`], the card's
//! random source and its capacity [`Limits`]. The card's transport edge ([`crate::card::Card`]:
//! the APDU layer, secure messaging, traces, power events) hands it one parsed
//! [`Request`] at a time ([`Applet::dispatch`]) and never reaches inside; handlers never see
//! the transport. The shape follows piv-authenticator's `LoadedAuthenticator` and opcard-rs'
//! `LoadedContext`: the handlers' `self` is the application, not the card around it.
//!
//! Each request goes to the handler of its chapter, which checks access
//! ([`Session::require`]) and policy and commits its changes as one batch
//! ([`Applet::commit`]):
//!
//! - [`files`]: SELECT, READ BINARY, UPDATE BINARY, DELETE FILE, ENUMERATE OBJECTS
//! - [`authentication`]: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, GET CHALLENGE
//! - [`initialization`]: INITIALIZE DEVICE (and reading the configuration)
//! - [`generation`]: GENERATE ASYMMETRIC KEY PAIR, DERIVE EC KEY
//! - [`symmetric`]: GENERATE SYMMETRIC KEY
//! - [`key_use`]: SIGN, DECIPHER, CIPHER SYMMETRIC
//! - [`domains`]: MANAGE KEY DOMAIN (IMPORT DKEK SHARE), and DECIPHER `84` that agrees an
//!   XKEK domain's key with another card
//! - [`backup`]: WRAP KEY, UNWRAP KEY
//! - [`chip_authentication`]: MANAGE SECURITY ENVIRONMENT `41 A4`, GENERAL AUTHENTICATE (whose
//!   session keys open the secure channel: an [`Effect`] for the card), GENERATE SESSION PIN
//! - [`certificates`]: MANAGE SECURITY ENVIRONMENT `81 B6`, PSO VERIFY CERTIFICATE
//! - [`public_key_auth`]: MANAGE PUBLIC KEY AUTHENTICATION, MANAGE SECURITY ENVIRONMENT
//!   `81 A4`, EXTERNAL AUTHENTICATE
//!
//! What several chapters share lives in files named for what it does: [`pins`] (paying for a
//! PIN try), [`keys`] (key slots, domains and policies), [`cv_requests`] (the authenticated
//! requests that carry a public key out) and [`trust`] (the keys the card trusts, peer
//! requests).

mod authentication;
mod backup;
mod certificates;
mod chip_authentication;
pub(crate) mod command;
mod cv_requests;
mod domains;
mod files;
mod generation;
mod initialization;
mod key_use;
mod keys;
mod manufacture;
mod pins;
mod public_key_auth;
pub(crate) mod session;
mod symmetric;
mod trust;

use crate::apdu::secure_messaging::SessionKeys;
use crate::apdu::{Response, Status};
use crate::crypto::rng::CardRng;
use crate::limits::Limits;
use crate::model::{Batch, CardState};
use crate::store::Store;
use command::Request;
use session::Session;

/// The application identifier `E8 2B 06 01 04 01 81 C3 1F 02 01`.
pub const AID: [u8; 11] = [
    0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
];

/// Version the emulated card reports: a current "SmartCard-HSM 4K".
pub const VERSION: (u8, u8) = (4, 0);

/// The application: what the card holds, where it is kept, and the session.
pub(crate) struct Applet {
    state: CardState,
    store: Box<dyn Store>,
    session: Session,
    rng: Box<dyn CardRng>,
    limits: Limits,
    power: Power,
}

/// A power cut a test armed ([`Applet::cut_power_after`]): how many more commits the card
/// makes before it, and whether it came.
#[derive(Default)]
pub(crate) struct Power {
    commits_left: Option<u32>,
    cut: bool,
}

/// What a command asks of the transport besides its answer.
pub(crate) enum Effect {
    /// GENERAL AUTHENTICATE agreed these session keys: secure messaging starts with the next
    /// command, once this answer is out.
    OpenSecureChannel(SessionKeys),
}

/// The answer to one command, and what the transport is to do after sending it.
pub(crate) struct Outcome {
    pub response: Response,
    pub effect: Option<Effect>,
}

impl From<Response> for Outcome {
    fn from(response: Response) -> Outcome {
        Outcome {
            response,
            effect: None,
        }
    }
}

impl Applet {
    /// Runs one parsed command; a refusal is an answer too.
    pub fn dispatch(&mut self, request: Request<'_>) -> Outcome {
        match self.run(request) {
            Ok(outcome) => outcome,
            Err(status) => Response::from(status).into(),
        }
    }

    fn run(&mut self, request: Request<'_>) -> Result<Outcome, Status> {
        // Until the application is selected, only SELECT reaches it (a real card answers 6D00).
        if !self.session.applet_selected && !matches!(request, Request::SelectApplication { .. }) {
            return Err(Status::InsNotSupported);
        }
        let response = match request {
            Request::SelectApplication { aid, answer } => self.select_application(aid, answer),
            Request::SelectFile { fid, answer } => self.select_file(fid, answer),
            Request::ReadBinary {
                target,
                offset,
                max,
            } => self.read_binary(target, offset, max),
            Request::UpdateBinary {
                target,
                offset,
                data,
            } => self.update_binary(target, offset, data),
            Request::DeleteFile { fid } => self.delete_file(fid),
            Request::EnumerateObjects => Ok(self.enumerate_objects()),
            Request::Verify { pin, value } => self.verify(pin, value),
            Request::VerifyUnknownReference { .. } => Err(Status::ReferencedDataNotFound),
            Request::ChangeReferenceData { pin, data } => self.change_reference_data(pin, data),
            Request::ResetRetryCounter(unblock) => self.reset_retry_counter(unblock),
            Request::GetChallenge { len } => Ok(self.get_challenge(len)),
            Request::InitializeDevice { data } => self.initialize_device(data),
            Request::ReadConfiguration => Ok(self.read_configuration()),
            Request::GenerateSessionPin => self.generate_session_pin(),
            Request::ManageKeyDomain { domain, action } => self.manage_key_domain(domain, action),
            Request::GenerateKeyPair {
                key_id,
                signer,
                data,
            } => self.generate_key_pair(key_id, signer, data),
            Request::Sign {
                key_id,
                operation,
                data,
            }
            | Request::Decipher {
                key_id,
                operation,
                data,
            }
            | Request::CipherSymmetric {
                key_id,
                operation,
                data,
            } => self.use_key(key_id, operation, data),
            Request::GenerateSymmetricKey {
                key_id,
                length,
                data,
            } => self.generate_symmetric_key(key_id, length, data),
            Request::DeriveEcKey {
                source,
                target,
                algorithm,
                scalar,
            } => self.derive_ec_key(source, target, algorithm, scalar),
            Request::SelectChipAuthentication { protocol } => {
                self.select_chip_authentication(protocol)
            }
            Request::GeneralAuthenticate { ephemeral } => {
                let (response, keys) = self.general_authenticate(ephemeral)?;
                return Ok(Outcome {
                    response,
                    effect: Some(Effect::OpenSecureChannel(keys)),
                });
            }
            Request::SelectVerifier { chr } => self.select_verifier(chr),
            Request::VerifyCertificate { certificate } => self.verify_certificate(certificate),
            Request::SelectAuthenticationKey { chr } => self.select_authentication_key(chr),
            Request::PkaStatus => self.pka_status(),
            Request::RegisterPublicKey { slot, request } => self.register_public_key(slot, request),
            Request::ExternalAuthenticate { signature } => self.external_authenticate(signature),
            Request::DeriveXkek { key_id, request } => self.derive_xkek(key_id, request),
            Request::WrapKey { key_id } => self.wrap_key(key_id),
            Request::UnwrapKey { key_id, data } => self.unwrap_key(key_id, data),
        }?;
        Ok(response.into())
    }

    /// Makes `batch` durable, then applies it in memory. On failure nothing changes and the
    /// command answers `6581`.
    pub fn commit(&mut self, batch: Batch) -> Result<(), Status> {
        if let Some(left) = self.power.commits_left.as_mut() {
            if *left == 0 {
                // The power is gone: nothing more reaches the store.
                self.power.cut = true;
                return Err(Status::MemoryFailure);
            }
            *left -= 1;
        }
        if let Err(e) = self.store.commit(&batch) {
            tracing::error!(error = %e, "commit failed; command refused with 6581");
            return Err(e.into());
        }
        for change in batch {
            self.state.apply(change);
        }
        Ok(())
    }

    /// Cuts the power after `commits` more commits (a torn command): later ones are not made.
    pub fn cut_power_after(&mut self, commits: u32) {
        self.power = Power {
            commits_left: Some(commits),
            cut: false,
        };
    }

    /// The power is back: the card starts from what its store holds, as after a real power
    /// loss (never from what memory held). Returns whether a commit was cut.
    pub fn power_restored(&mut self) -> bool {
        let cut = std::mem::take(&mut self.power).cut;
        match self.store.load() {
            Ok(state) => self.state = state,
            Err(e) => tracing::error!(error = %e, "cannot read the card back after the power cut"),
        }
        self.power_cycle();
        cut
    }

    /// The whole card as a portable snapshot.
    pub fn snapshot(&mut self) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::store::StoreError> {
        self.store.take_snapshot()
    }

    /// The card of `snapshot` in place of this one (stored first, then read back).
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), crate::store::StoreError> {
        self.store.replace_with(snapshot)?;
        self.state = self.store.load()?;
        self.power_cycle();
        Ok(())
    }

    /// The persistent state.
    pub fn state(&self) -> &CardState {
        &self.state
    }

    /// The capacity limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The serial number middleware shows (device CHR minus its last five characters).
    pub fn serial(&self) -> &str {
        self.state.identity.as_ref().map_or("", |i| i.serial())
    }

    /// The card holder reference of the device certificate.
    fn device_chr(&self) -> Result<&str, Status> {
        self.state
            .identity
            .as_ref()
            .map(|i| i.device_chr.as_str())
            .ok_or(Status::ReferencedDataNotFound)
    }

    /// Power off, power on or reset: everything volatile is lost.
    pub fn power_cycle(&mut self) {
        self.session = Session::default();
    }

    /// A secure channel opened (`true`) or ended: authentications made before belong to
    /// the other side of that line and go.
    pub fn secure_channel(&mut self, open: bool) {
        self.session.secure_channel_changed(open);
    }

    /// The session (unit tests look at it).
    #[cfg(test)]
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Whether the session counts as the user's (for the test kit's invariants).
    #[cfg(feature = "testkit")]
    pub fn user_authenticated(&self) -> bool {
        self.session
            .require(crate::model::objects::Access::UserPin)
            .is_ok()
    }
}
