//! Chip authentication with the device key (BSI TR-03110 version 2,
//! id-CA-ECDH-AES-CBC-CMAC-128), which opens a secure channel: MSE SET `00 22 41 A4` names the
//! protocol, GENERAL AUTHENTICATE `00 86` takes the host's ephemeral public key and answers a
//! nonce and an authentication token. From the next command on, commands in secure messaging
//! ([`crate::apdu::secure_messaging`]) are answered in it; the first plain command ends it.
//! PIN and key authentications made inside the channel end with it.
//!
//! K = x(ECDH(device key, ephemeral key)); Kenc, Kmac = SHA-1(K ‖ nonce ‖ `00000001` /
//! `00000002`)[0..16]; token = AES-CMAC(Kmac, `7F49 { 06 <protocol OID>, 86 <ephemeral
//! point> }`)[0..8]. A host verifies the device key with the chain in `2F02`.
//!
//! GENERATE SESSION PIN `80 5A 01 81`, inside the channel on a card initialised with option
//! `0004` and after VERIFY of the user PIN, answers a session PIN that VERIFY takes instead of
//! the user PIN until the card is reset or powered off.

use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::Applet;
use crate::apdu::secure_messaging::SessionKeys;
use crate::apdu::{tlv, Response, Status};
use crate::crypto::aes::{self, AesKey};
use crate::model::key::{KeyMaterial, DEVICE_KEY_ID};
use crate::model::pin::PinRef;
use crate::model::OPTION_SESSION_PIN;

/// id-CA-ECDH-AES-CBC-CMAC-128 (0.4.0.127.0.7.2.2.3.2.2).
pub const OID_CA_ECDH_AES_CBC_CMAC_128: &[u8] =
    &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x03, 0x02, 0x02];

/// Length of a session PIN.
pub const SESSION_PIN_LEN: usize = 8;

/// Kenc or Kmac from the shared secret and the nonce.
fn session_key(secret: &[u8], nonce: &[u8], counter: u32) -> AesKey {
    let mut h = Sha1::new();
    h.update(secret);
    h.update(nonce);
    h.update(counter.to_be_bytes());
    let digest = Zeroizing::new(<[u8; 20]>::from(h.finalize()));
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&digest[..16]);
    AesKey::Aes128(out)
}

impl Applet {
    /// MSE SET `41 A4`: only id-CA-ECDH-AES-CBC-CMAC-128 is offered (`6A80` for another).
    pub(super) fn select_chip_authentication(
        &mut self,
        protocol: &[u8],
    ) -> Result<Response, Status> {
        if protocol != OID_CA_ECDH_AES_CBC_CMAC_128 {
            return Err(Status::IncorrectData);
        }
        self.session.chip_authentication = true;
        Ok(Response::empty())
    }

    /// GENERAL AUTHENTICATE: `6985` without MSE SET `41 A4` first, `6A80` for a point that
    /// is not on the device key's curve. Answers `7C { 81 nonce, 82 token }` and the session
    /// keys, with which the card opens the channel once the answer is out.
    pub(super) fn general_authenticate(
        &mut self,
        ephemeral: &[u8],
    ) -> Result<(Response, SessionKeys), Status> {
        if !std::mem::take(&mut self.session.chip_authentication) {
            return Err(Status::ConditionsNotSatisfied);
        }
        let device = self
            .state
            .keys
            .get(&DEVICE_KEY_ID)
            .ok_or(Status::ReferencedDataNotFound)?;
        let KeyMaterial::Ec { curve, scalar } = &device.material else {
            return Err(Status::ConditionsNotSatisfied);
        };
        let shared = curve.ecdh(scalar, ephemeral)?;
        let secret = Zeroizing::new(shared[1..1 + curve.field_len()].to_vec());
        let mut nonce = [0u8; 8];
        self.rng.fill_bytes(&mut nonce);
        let keys = SessionKeys {
            enc: session_key(&secret, &nonce, 1),
            mac: session_key(&secret, &nonce, 2),
        };
        let mut public_key = tlv::encode(0x06, OID_CA_ECDH_AES_CBC_CMAC_128);
        tlv::write(&mut public_key, 0x86, ephemeral);
        let token = aes::cmac(&keys.mac, &tlv::encode(0x7F49, &public_key));
        let mut answer = tlv::encode(0x81, &nonce);
        tlv::write(&mut answer, 0x82, &token[..8]);
        Ok((Response::ok(tlv::encode(0x7C, &answer)), keys))
    }

    /// GENERATE SESSION PIN: `6982` outside a secure channel or before VERIFY of the user
    /// PIN (in the channel), `6A81` on a card initialised without option `0004`.
    pub(super) fn generate_session_pin(&mut self) -> Result<Response, Status> {
        if !self.session.secure_channel || !self.session.is_verified(PinRef::User) {
            return Err(Status::SecurityStatusNotSatisfied);
        }
        if self.state.options() & OPTION_SESSION_PIN == 0 {
            return Err(Status::FunctionNotSupported);
        }
        let mut pin = Zeroizing::new(vec![0u8; SESSION_PIN_LEN]);
        self.rng.fill_bytes(&mut pin);
        let answer = pin.to_vec();
        self.session.session_pin = Some(pin);
        Ok(Response::ok(answer))
    }
}
