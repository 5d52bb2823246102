//! What a command made the card do, in the terms its time depends on: the timing profile
//! ([`crate::fault::timing`]) turns it into the time the physical card takes. Read from the
//! parsed request (which command, which key) and, after it ran, the key it used or made.

use rsa::traits::PublicKeyParts;

use crate::applet::command::{DomainAction, Request};
use crate::model::key::KeyMaterial;
use crate::model::CardState;

/// The work behind one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Work {
    /// Nothing worth timing: SELECT, READ BINARY, a refusal, GET RESPONSE.
    #[default]
    Nothing,
    /// Reading `bytes` of a file.
    Read { bytes: usize },
    /// Writing (or deleting) a file of `bytes`.
    Write { bytes: usize },
    /// A PIN compared (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER).
    PinCheck,
    /// INITIALIZE DEVICE (every object erased, PINs set).
    Initialize,
    /// An RSA key pair generated (modulus bits).
    GenerateRsa { bits: usize },
    /// An EC key pair generated (field bits).
    GenerateEc { bits: usize },
    /// An AES key generated.
    GenerateAes,
    /// One RSA private-key operation (sign or decrypt).
    RsaPrivate { bits: usize },
    /// One EC private-key operation (ECDSA, ECDH, derivation).
    EcPrivate { bits: usize },
    /// One AES operation (encryption, CMAC, derivation).
    Aes,
    /// A key wrapped or unwrapped under the DKEK.
    KeyWrap,
    /// A DKEK share imported, a key domain created or deleted.
    KeyDomain,
    /// Chip authentication, certificate checks, public-key authentication.
    Authentication,
}

/// What a request is about before it runs: its kind and the key it names.
pub(super) struct Pending {
    kind: Kind,
    key_id: Option<u8>,
}

#[derive(Clone, Copy)]
enum Kind {
    Plain(Work),
    Generate,
    KeyUse,
}

impl Pending {
    pub(super) fn of(request: &Request<'_>) -> Pending {
        let plain = |work| Pending {
            kind: Kind::Plain(work),
            key_id: None,
        };
        let on_key = |kind, key_id| Pending {
            kind,
            key_id: Some(key_id),
        };
        match request {
            Request::ReadBinary { max, .. } => plain(Work::Read { bytes: *max }),
            Request::UpdateBinary { data, .. } => plain(Work::Write { bytes: data.len() }),
            Request::DeleteFile { .. } => plain(Work::Write { bytes: 0 }),
            Request::Verify { value: Some(_), .. }
            | Request::ChangeReferenceData { .. }
            | Request::ResetRetryCounter(_) => plain(Work::PinCheck),
            Request::InitializeDevice { .. } => plain(Work::Initialize),
            Request::ManageKeyDomain { action, .. } => match action {
                DomainAction::Status => plain(Work::Nothing),
                _ => plain(Work::KeyDomain),
            },
            Request::GenerateKeyPair { key_id, .. } => on_key(Kind::Generate, *key_id),
            Request::GenerateSymmetricKey { .. } => plain(Work::GenerateAes),
            Request::Sign { key_id, .. }
            | Request::Decipher { key_id, .. }
            | Request::CipherSymmetric { key_id, .. } => on_key(Kind::KeyUse, *key_id),
            Request::DeriveEcKey { source, .. } => on_key(Kind::KeyUse, *source),
            Request::WrapKey { .. } | Request::UnwrapKey { .. } => plain(Work::KeyWrap),
            Request::GeneralAuthenticate { .. }
            | Request::VerifyCertificate { .. }
            | Request::ExternalAuthenticate { .. }
            | Request::DeriveXkek { .. } => plain(Work::Authentication),
            _ => plain(Work::Nothing),
        }
    }

    /// The work done, once the command ran (successfully) on `state`.
    pub(super) fn done(self, state: &CardState) -> Work {
        let key = self.key_id.and_then(|id| state.keys.get(&id));
        match (self.kind, key.map(|k| &k.material)) {
            (Kind::Plain(work), _) => work,
            (Kind::Generate, Some(KeyMaterial::Rsa(key))) => Work::GenerateRsa {
                bits: key.size() * 8,
            },
            (Kind::Generate, Some(KeyMaterial::Ec { curve, .. })) => Work::GenerateEc {
                bits: curve.field_bits(),
            },
            (Kind::KeyUse, Some(KeyMaterial::Rsa(key))) => Work::RsaPrivate {
                bits: key.size() * 8,
            },
            (Kind::KeyUse, Some(KeyMaterial::Ec { curve, .. })) => Work::EcPrivate {
                bits: curve.field_bits(),
            },
            (Kind::KeyUse, Some(KeyMaterial::Aes(_))) => Work::Aes,
            _ => Work::Nothing,
        }
    }
}
