//! The keys the card trusts, and what it checks with them: a trust anchor (the root of the
//! card's own PKI, or one of CardContact's roots of real cards, so a real card's device chain
//! verifies too) or a key whose certificate PSO VERIFY CERTIFICATE admitted in this session;
//! and a peer card's authenticated request, checked against the verifier MSE SET `81 B6`
//! selected. Certificate verification, public-key authentication and XKEK key domains build on
//! these.

use super::Applet;
use crate::apdu::{tlv, Status};
use crate::crypto::cvc::{self, CvKey};
use crate::model::pki::ROLE_ROOT;

/// CardContact's roots (public: OpenSC ships the first, CardContact's scripts both).
const CARDCONTACT_ROOTS: [&[u8]; 2] = [
    include_bytes!("../../../fixtures/real-card/cardcontact-root-DESRCACC100001.cvcert"),
    include_bytes!("../../../fixtures/real-card/cardcontact-test-root-UTSRCACC100001.cvcert"),
];

/// A public key the card trusts: an anchor, or a key whose certificate verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TrustedKey {
    pub chr: Vec<u8>,
    pub key: CvKey,
    /// CHAT role of its certificate (`C0` root, `80` issuer, `00` device).
    pub role: u8,
}

/// The key of a peer card's authenticated request, checked: the request's outer signature by
/// the verifier MSE SET `81 B6` selected (the peer's device key, admitted by PSO VERIFY
/// CERTIFICATE), and its self-signature, which proves the peer holds the key.
pub(crate) struct PeerKey {
    pub chr: Vec<u8>,
    /// Content of the request's `7F49`, domain parameters included.
    pub public_key: Vec<u8>,
    pub key: CvKey,
}

/// A root certificate as a trusted key (trusted as it is: its self-signature proves nothing);
/// `None` if it does not decode.
fn anchor(certificate: &[u8]) -> Option<TrustedKey> {
    let (root, _) = cvc::decode(certificate)?;
    Some(TrustedKey {
        chr: root.chr.to_vec(),
        key: CvKey::parse(root.public_key, None)?,
        role: cvc::role(root.body).unwrap_or(ROLE_ROOT),
    })
}

impl Applet {
    /// The trusted key named `chr`: one verified in this session, or an anchor.
    pub(super) fn trusted_key(&self, chr: &[u8]) -> Option<TrustedKey> {
        if let Some(found) = self.session.verified_keys.iter().find(|k| k.chr == chr) {
            return Some(found.clone());
        }
        let own = self
            .state
            .identity
            .as_ref()
            .map(|i| i.root_certificate.as_slice());
        own.into_iter()
            .chain(CARDCONTACT_ROOTS)
            .filter_map(anchor)
            .find(|k| k.chr == chr)
    }

    /// Checks an authenticated request (the `67` TLV or its content, as OpenSC sends it):
    /// `6A80` if it does not decode or names another outer CAR than the verifier, `6985`
    /// without a verifier, `6300` if a signature does not verify.
    pub(super) fn peer_key(&self, request: &[u8]) -> Result<PeerKey, Status> {
        let whole;
        let request = if request.first() == Some(&0x67) {
            request
        } else {
            whole = tlv::encode(0x67, request);
            &whole
        };
        let request = cvc::decode_authenticated_request(request).ok_or(Status::IncorrectData)?;
        let verifier = self
            .session
            .verifier
            .as_ref()
            .ok_or(Status::ConditionsNotSatisfied)?;
        if request.outer_car != verifier.chr.as_slice() {
            return Err(Status::IncorrectData);
        }
        if !verifier
            .key
            .verifies(request.outer_signed, request.outer_signature)
        {
            return Err(Status::VerificationFailed);
        }
        // A request carries its domain parameters.
        let key = CvKey::parse(request.inner.public_key, None).ok_or(Status::IncorrectData)?;
        if !key.verifies(request.inner.body, request.inner.signature) {
            return Err(Status::VerificationFailed);
        }
        Ok(PeerKey {
            chr: request.inner.chr.to_vec(),
            public_key: request.inner.public_key.to_vec(),
            key,
        })
    }
}
