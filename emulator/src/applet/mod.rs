//! The SmartCard-HSM application. Each complete command is parsed once into a
//! [`command::Request`] from the command table, then [`dispatch`] hands it to the handler of its
//! chapter, which checks access ([`session::Session::require`]) and policy:
//!
//! - [`files`]: SELECT, READ BINARY, UPDATE BINARY, DELETE FILE, ENUMERATE OBJECTS
//! - [`authentication`]: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, GET CHALLENGE
//! - [`initialization`]: INITIALIZE DEVICE (and reading the configuration)
//! - [`generation`]: GENERATE ASYMMETRIC KEY PAIR, DERIVE EC KEY and the CV requests that
//!   carry new keys
//! - [`symmetric`]: GENERATE SYMMETRIC KEY
//! - [`key_use`]: SIGN, DECIPHER, CIPHER SYMMETRIC
//! - [`domains`]: MANAGE KEY DOMAIN (IMPORT DKEK SHARE), and DECIPHER `84` that agrees an
//!   XKEK domain's key with another card
//! - [`backup`]: WRAP KEY, UNWRAP KEY
//! - [`chip_authentication`]: MANAGE SECURITY ENVIRONMENT `41 A4`, GENERAL AUTHENTICATE: the
//!   secure channel ([`crate::apdu::secure_messaging`]), and GENERATE SESSION PIN in it
//! - [`certificates`]: MANAGE SECURITY ENVIRONMENT `81 B6`, PSO VERIFY CERTIFICATE (the
//!   session's store of verified public keys)
//! - [`public_key_auth`]: MANAGE PUBLIC KEY AUTHENTICATION, MANAGE SECURITY ENVIRONMENT
//!   `81 A4`, EXTERNAL AUTHENTICATE

mod authentication;
mod backup;
pub(crate) mod certificates;
mod chip_authentication;
pub(crate) mod command;
mod domains;
mod files;
mod generation;
mod initialization;
mod key_use;
mod public_key_auth;
pub(crate) mod session;
mod symmetric;

use crate::apdu::{Response, Status};
use crate::card::Card;
use command::Request;

/// The application identifier `E8 2B 06 01 04 01 81 C3 1F 02 01`.
pub const AID: [u8; 11] = [
    0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
];

/// Version the emulated card reports: a current "SmartCard-HSM 4K".
pub const VERSION: (u8, u8) = (4, 0);

/// Runs one parsed command against the card.
pub(crate) fn dispatch(card: &mut Card, request: Request<'_>) -> Result<Response, Status> {
    // Until the application is selected, only SELECT reaches it (a real card answers 6D00).
    if !card.session.applet_selected && !matches!(request, Request::SelectApplication { .. }) {
        return Err(Status::InsNotSupported);
    }
    match request {
        Request::SelectApplication { aid, answer } => card.select_application(aid, answer),
        Request::SelectFile { fid, answer } => card.select_file(fid, answer),
        Request::ReadBinary {
            target,
            offset,
            max,
        } => card.read_binary(target, offset, max),
        Request::UpdateBinary {
            target,
            offset,
            data,
        } => card.update_binary(target, offset, data),
        Request::DeleteFile { fid } => card.delete_file(fid),
        Request::EnumerateObjects => Ok(card.enumerate_objects()),
        Request::Verify { pin, value } => card.verify(pin, value),
        Request::VerifyUnknownReference { .. } => Err(Status::ReferencedDataNotFound),
        Request::ChangeReferenceData { pin, data } => card.change_reference_data(pin, data),
        Request::ResetRetryCounter(unblock) => card.reset_retry_counter(unblock),
        Request::GetChallenge { len } => Ok(card.get_challenge(len)),
        Request::InitializeDevice { data } => card.initialize_device(data),
        Request::ReadConfiguration => Ok(card.read_configuration()),
        Request::GenerateSessionPin => card.generate_session_pin(),
        Request::ManageKeyDomain { domain, action } => card.manage_key_domain(domain, action),
        Request::GenerateKeyPair {
            key_id,
            signer,
            data,
        } => card.generate_key_pair(key_id, signer, data),
        Request::Sign {
            key_id,
            operation,
            data,
        } => card.use_key(key_id, operation, data),
        Request::Decipher {
            key_id,
            operation,
            data,
        } => card.use_key(key_id, operation, data),
        Request::GenerateSymmetricKey { key_id, size, data } => {
            card.generate_symmetric_key(key_id, size, data)
        }
        Request::CipherSymmetric {
            key_id,
            operation,
            data,
        } => card.use_key(key_id, operation, data),
        Request::DeriveEcKey {
            source,
            target,
            algorithm,
            scalar,
        } => card.derive_ec_key(source, target, algorithm, scalar),
        Request::SelectChipAuthentication { protocol } => card.select_chip_authentication(protocol),
        Request::GeneralAuthenticate { ephemeral } => card.general_authenticate(ephemeral),
        Request::SelectVerifier { chr } => card.select_verifier(chr),
        Request::VerifyCertificate { certificate } => card.verify_certificate(certificate),
        Request::SelectAuthenticationKey { chr } => card.select_authentication_key(chr),
        Request::PkaStatus => card.pka_status(),
        Request::RegisterPublicKey { slot, request } => card.register_public_key(slot, request),
        Request::ExternalAuthenticate { signature } => card.external_authenticate(signature),
        Request::DeriveXkek { key_id, request } => card.derive_xkek(key_id, request),
        Request::WrapKey { key_id } => card.wrap_key(key_id),
        Request::UnwrapKey { key_id, data } => card.unwrap_key(key_id, data),
    }
}

#[cfg(test)]
mod tests;
