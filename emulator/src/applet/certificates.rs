//! Certificate verification, as real cards do it: MANAGE SECURITY ENVIRONMENT `00 22 81 B6`
//! selects, by its holder reference, the public key to verify with; PERFORM SECURITY
//! OPERATION VERIFY CERTIFICATE `00 2A 00 BE` checks a CV certificate with it and keeps the
//! certified public key for the rest of the session, where the next MSE can select it.
//!
//! The chain starts at a trust anchor ([`super::trust`]): the root of the card's own PKI, or
//! one of CardContact's roots of real cards (`DESRCACC100001`, test root `UTSRCACC100001`).
//! Public-key authentication and XKEK key domains verify peer requests with the keys admitted
//! here.

use super::session::MAX_VERIFIED_KEYS;
use super::trust::TrustedKey;
use super::Applet;
use crate::apdu::{tlv, Response, Status};
use crate::crypto::cvc::{self, CvKey};
use crate::model::pki::ROLE_DEVICE;

impl Applet {
    /// MSE SET `81 B6`: the key to verify with; `6A88` if the card does not know it.
    pub(super) fn select_verifier(&mut self, chr: &[u8]) -> Result<Response, Status> {
        let key = self
            .trusted_key(chr)
            .ok_or(Status::ReferencedDataNotFound)?;
        self.session.verifier = Some(key);
        Ok(Response::empty())
    }

    /// PSO VERIFY CERTIFICATE: `6985` without a verifier, or when the verifier is not a CA;
    /// `6A80` for a certificate that does not decode, names another CAR, or carries an unusable
    /// key; `6300` when the signature does not verify. Nothing is kept unless it verifies.
    pub(super) fn verify_certificate(&mut self, data: &[u8]) -> Result<Response, Status> {
        let verifier = self
            .session
            .verifier
            .clone()
            .ok_or(Status::ConditionsNotSatisfied)?;
        // The whole `7F21` TLV (OpenSC), or its content: body and signature (TR-03110).
        let whole;
        let certificate = if data.starts_with(&[0x7F, 0x21]) {
            data
        } else {
            whole = tlv::encode(cvc::tag::CERTIFICATE, data);
            &whole
        };
        let (decoded, []) = cvc::decode(certificate).ok_or(Status::IncorrectData)? else {
            return Err(Status::IncorrectData);
        };
        if decoded.car != verifier.chr.as_slice() {
            return Err(Status::IncorrectData);
        }
        if verifier.role == ROLE_DEVICE {
            return Err(Status::ConditionsNotSatisfied);
        }
        if !verifier.key.verifies(decoded.body, decoded.signature) {
            return Err(Status::VerificationFailed);
        }
        let key =
            CvKey::parse(decoded.public_key, verifier.key.curve()).ok_or(Status::IncorrectData)?;
        let admitted = TrustedKey {
            chr: decoded.chr.to_vec(),
            key,
            role: cvc::role(decoded.body).unwrap_or(ROLE_DEVICE),
        };
        let keys = &mut self.session.verified_keys;
        keys.retain(|k| k.chr != admitted.chr);
        if keys.len() >= MAX_VERIFIED_KEYS {
            keys.remove(0);
        }
        keys.push(admitted);
        Ok(Response::empty())
    }
}
