//! A command of the application, syntax checked: what [`Request::parse`] makes of a complete
//! command APDU, and what the handlers take.

use crate::crypto::aes::KeyLength;
use crate::crypto::Algorithm;
use crate::model::pin::PinRef;

/// How SELECT should answer (P2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SelectAnswer {
    /// `00`: FCI template `6F`.
    Fci,
    /// `04`: FCP template `62`.
    Fcp,
    /// `0C`: no data.
    Nothing,
}

/// What P1P2 of READ/UPDATE BINARY name: a file, or the current EF (`0000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Current,
    File(u16),
}

/// RESET RETRY COUNTER variants (P1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unblock<'a> {
    /// P1 `00`: SO-PIN ‖ new user PIN.
    WithNewPin { so_pin: &'a [u8], new_pin: &'a [u8] },
    /// P1 `01`: SO-PIN only; the PIN stays, the counter is reset.
    CounterOnly { so_pin: &'a [u8] },
}

/// What MANAGE KEY DOMAIN does (P1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DomainAction<'a> {
    /// `00` without data: the domain's status.
    Status,
    /// `00` with data: one DKEK share.
    ImportShare(&'a [u8]),
    /// `01`: a DKEK domain assembled from `shares` shares (`0`: the card generates it).
    CreateDkek { shares: u8 },
    /// `02`: a domain whose KEK is agreed with another card (XKEK), named by a UID both
    /// cards are given (1 to 32 bytes).
    CreateXkek { uid: &'a [u8] },
    /// `03`.
    Delete,
    /// `04`: forget the domain's KEK; its shares can be imported again.
    ClearKek,
}

/// The algorithm byte (P2) of SIGN, DECIPHER or CIPHER SYMMETRIC, parsed once: the byte itself
/// (what a key's list of allowed algorithms names) and the operation it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyOperation {
    pub id: u8,
    /// `None`: no operation of this instruction has that byte (the handler answers `6A81`
    /// once access and key are checked).
    pub algorithm: Option<Algorithm>,
}

impl KeyOperation {
    /// The operation of `id` among those of an instruction (`for_sign`, `for_decipher`,
    /// `for_cipher`).
    pub fn new(id: u8, of: fn(u8) -> Option<Algorithm>) -> KeyOperation {
        KeyOperation {
            id,
            algorithm: of(id),
        }
    }
}

/// One command of the application, syntax checked.
#[derive(Debug)]
pub(crate) enum Request<'a> {
    SelectApplication {
        aid: &'a [u8],
        answer: SelectAnswer,
    },
    SelectFile {
        fid: u16,
        answer: SelectAnswer,
    },
    ReadBinary {
        target: Target,
        offset: usize,
        max: usize,
    },
    UpdateBinary {
        target: Target,
        offset: usize,
        data: &'a [u8],
    },
    DeleteFile {
        fid: u16,
    },
    EnumerateObjects,
    Verify {
        pin: PinRef,
        value: Option<&'a [u8]>,
    },
    /// VERIFY of a reference the card does not have (`85`, `86`, ...).
    VerifyUnknownReference {
        reference: u8,
    },
    ChangeReferenceData {
        pin: PinRef,
        data: &'a [u8],
    },
    ResetRetryCounter(Unblock<'a>),
    InitializeDevice {
        data: &'a [u8],
    },
    /// `80 50 00 00` without data.
    ReadConfiguration,
    /// `80 5A 01 81`: a session PIN for the user PIN.
    GenerateSessionPin,
    ManageKeyDomain {
        domain: u8,
        action: DomainAction<'a>,
    },
    GetChallenge {
        len: usize,
    },
    GenerateKeyPair {
        key_id: u8,
        signer: u8,
        data: &'a [u8],
    },
    Sign {
        key_id: u8,
        operation: KeyOperation,
        data: &'a [u8],
    },
    Decipher {
        key_id: u8,
        operation: KeyOperation,
        data: &'a [u8],
    },
    GenerateSymmetricKey {
        key_id: u8,
        length: KeyLength,
        data: &'a [u8],
    },
    CipherSymmetric {
        key_id: u8,
        operation: KeyOperation,
        data: &'a [u8],
    },
    DeriveEcKey {
        source: u8,
        target: u8,
        /// The derivation algorithm id (`98`) the data starts with.
        algorithm: u8,
        scalar: &'a [u8],
    },
    /// MSE SET `81 B6`: verify with the trusted key named `chr`.
    SelectVerifier {
        chr: &'a [u8],
    },
    /// MSE SET `81 A4`: authenticate with the registered key named `chr`.
    SelectAuthenticationKey {
        chr: &'a [u8],
    },
    /// MSE SET `41 A4`: chip authentication with `protocol` (an OID).
    SelectChipAuthentication {
        protocol: &'a [u8],
    },
    /// GENERAL AUTHENTICATE: the host's ephemeral public point.
    GeneralAuthenticate {
        ephemeral: &'a [u8],
    },
    /// PSO `00 BE`: a CV certificate (the `7F21` TLV, or its content).
    VerifyCertificate {
        certificate: &'a [u8],
    },
    /// `80 54 00 00` without data.
    PkaStatus,
    /// `80 54 00 00` (next free slot) or `80 54 01 <slot>` with an authenticated request
    /// (without data and without Le: the request staged in `2F10`).
    RegisterPublicKey {
        slot: Option<u8>,
        request: &'a [u8],
    },
    ExternalAuthenticate {
        signature: &'a [u8],
    },
    /// DECIPHER `84`: agree the XKEK of key `key_id`'s domain with the peer key of an
    /// authenticated request (empty: the request staged in `2F10`).
    DeriveXkek {
        key_id: u8,
        request: &'a [u8],
    },
    WrapKey {
        key_id: u8,
    },
    UnwrapKey {
        key_id: u8,
        data: &'a [u8],
    },
}
