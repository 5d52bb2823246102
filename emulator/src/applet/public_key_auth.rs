//! Public-key authentication (n-of-m): MANAGE PUBLIC KEY AUTHENTICATION `80 54` registers the
//! custodians' keys and reports the status; MSE SET `00 22 81 A4` + GET CHALLENGE + EXTERNAL
//! AUTHENTICATE `00 82` authenticate one custodian. When `required` of them did, the user is
//! authenticated (with option `0010`: only together with the user PIN) until the next SELECT
//! or reset.
//!
//! A key is registered from its authenticated request (what GENERATE answered on the
//! custodian's card, `sc-hsm-tool --export-for-pub-key-auth`): the request's outer signature
//! must verify with the custodian's device key, which PSO VERIFY CERTIFICATE admitted from a
//! chain of this card's PKI (or a real card's), and MSE SET `81 B6` selected.

use super::Applet;
use crate::apdu::{Response, Status};
use crate::crypto::cvc::CvKey;
use crate::model::objects::{Access, EF_STAGING};
use crate::model::pka::{Pka, RegisteredKey};
use crate::model::Change;

impl Applet {
    /// The configuration; `6D00` on a card initialised without public-key authentication
    /// (what OpenSC reports as "Card not initialized for public key registration").
    fn pka(&self) -> Result<&Pka, Status> {
        self.state.pka.as_ref().ok_or(Status::InsNotSupported)
    }

    fn pka_status_bytes(&self, pka: &Pka) -> Vec<u8> {
        pka.status(self.session.pka_authenticated.len()).to_vec()
    }

    /// `80 54 00 00`: total, missing, required, authenticated.
    pub(super) fn pka_status(&self) -> Result<Response, Status> {
        let pka = self.pka()?;
        Ok(Response::ok(self.pka_status_bytes(pka)))
    }

    /// `80 54 00 00` with a request: the key goes into the next free slot (`6985` when all are
    /// taken); `80 54 01 <slot>`: it replaces the key of `slot` (the request staged in `2F10`
    /// when there is no data), with option `0008` only
    /// (`6986` otherwise) and only for an authenticated user. `6A80` for a request that does not
    /// decode or whose key is already registered, `6985` without a verifier selected, `6300`
    /// when a signature does not verify. Answers the new status.
    pub(super) fn register_public_key(
        &mut self,
        slot: Option<u8>,
        request: &[u8],
    ) -> Result<Response, Status> {
        let pka = self.pka()?;
        let slot = match slot {
            None => pka.free_slot().ok_or(Status::ConditionsNotSatisfied)?,
            Some(_) if !Pka::replaceable(self.state.options()) => {
                return Err(Status::CommandNotAllowed)
            }
            Some(slot) if slot >= pka.total => return Err(Status::IncorrectP1P2),
            Some(slot) => {
                self.session.require(Access::UserPin)?;
                slot
            }
        };
        let request = match request {
            [] => {
                &self
                    .state
                    .files
                    .get(&EF_STAGING)
                    .ok_or(Status::IncorrectData)?
                    .data
            }
            given => given,
        };
        let peer = self.peer_key(request)?;
        if pka.slot_of(&peer.chr).is_some_and(|s| s != slot) {
            return Err(Status::IncorrectData);
        }
        let mut next = pka.clone();
        next.keys.insert(
            slot,
            RegisteredKey {
                chr: peer.chr,
                public_key: peer.public_key,
            },
        );
        // A replaced key's authentication goes with it.
        let mut authenticated = self.session.pka_authenticated.clone();
        authenticated.remove(&slot);
        let status = next.status(authenticated.len()).to_vec();
        self.commit(vec![Change::Pka(Some(next))])?;
        // From the first registration on, the keys count, not INITIALIZE.
        self.session.keys_by_initialize = false;
        self.session.pka_authenticated = authenticated;
        Ok(Response::ok(status))
    }

    /// MSE SET `81 A4`: the registered key EXTERNAL AUTHENTICATE checks; `6A88` if no
    /// registered key has that holder reference.
    pub(super) fn select_authentication_key(&mut self, chr: &[u8]) -> Result<Response, Status> {
        let slot = self
            .pka()?
            .slot_of(chr)
            .ok_or(Status::ReferencedDataNotFound)?;
        self.session.pka_key = Some(slot);
        Ok(Response::empty())
    }

    /// EXTERNAL AUTHENTICATE: the selected key's signature over SHA-256(device CHR ‖
    /// challenge) (ECDSA as plain `r ‖ s`). The challenge is used up by the attempt, whatever
    /// its outcome: `6985` without a fresh challenge or a selected key, `6300` for a
    /// signature that does not verify.
    pub(super) fn external_authenticate(&mut self, signature: &[u8]) -> Result<Response, Status> {
        let challenge = self.session.challenge.take();
        let pka = self.pka()?;
        let (Some(challenge), Some(slot)) = (challenge, self.session.pka_key) else {
            return Err(Status::ConditionsNotSatisfied);
        };
        let registered = pka.keys.get(&slot).ok_or(Status::ReferencedDataNotFound)?;
        let key = CvKey::parse(&registered.public_key, None).ok_or(Status::IncorrectData)?;
        let message = [self.device_chr()?.as_bytes(), &challenge].concat();
        if !key.verifies(&message, signature) {
            return Err(Status::VerificationFailed);
        }
        self.session.pka_authenticated.insert(slot);
        // From the first authentication on, the keys count, not INITIALIZE.
        self.session.keys_by_initialize = false;
        Ok(Response::empty())
    }
}
