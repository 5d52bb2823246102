//! The command table: every instruction of the card once, with its code, its name, the class
//! hosts send it with and typical P1-P2 values; and the parser that turns a complete command
//! APDU into a [`Request`] (syntax only: lengths, P1-P2, TLV shape). Security and policy are
//! the handlers' business.
//!
//! Adding a command: a row in [`instructions!`], a [`Request`] variant with its parse arm, one
//! arm in [`super::dispatch`], and the handler in the file of its chapter.

use crate::apdu::{tlv, Command, Status};
use crate::model::pin::{PinRef, SO_PIN_LENGTH};

/// Largest GET CHALLENGE answer.
const MAX_CHALLENGE: usize = 1024;

/// Longest XKEK domain UID.
const MAX_DOMAIN_UID: usize = 32;

/// The DECIPHER algorithm that agrees an XKEK.
pub(crate) const XKEK_DERIVATION: u8 = 0x84;

/// Defines [`Ins`] from one row per instruction: name = code, "NAME", CLA, example P1-P2s.
macro_rules! instructions {
    ($($(#[$doc:meta])* $ins:ident = $code:literal, $name:literal, $cla:literal, [$($p1p2:literal),*];)*) => {
        /// An instruction of the card (INS byte).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Ins {
            $($(#[$doc])* $ins,)*
        }

        impl Ins {
            /// Every instruction, in table order.
            pub const ALL: &'static [Ins] = &[$(Ins::$ins,)*];

            /// The instruction byte.
            pub const fn code(self) -> u8 {
                match self { $(Ins::$ins => $code,)* }
            }

            /// The name the specification gives it (logs, traces).
            pub const fn name(self) -> &'static str {
                match self { $(Ins::$ins => $name,)* }
            }

            /// The class byte hosts send it with (`00` ISO, `80` proprietary).
            pub const fn class(self) -> u8 {
                match self { $(Ins::$ins => $cla,)* }
            }

            /// Typical P1-P2 values (what the fuzzers put in front of arbitrary data).
            pub const fn examples(self) -> &'static [u16] {
                match self { $(Ins::$ins => &[$($p1p2),*],)* }
            }

            pub const fn from_code(code: u8) -> Option<Ins> {
                match code { $($code => Some(Ins::$ins),)* _ => None }
            }
        }
    };
}

instructions! {
    /// Selects the application (by AID) or an EF (by FID).
    Select = 0xA4, "SELECT", 0x00, [0x0400, 0x0000];
    /// READ BINARY with the offset in a `54` TLV and the file in P1-P2.
    ReadBinaryOdd = 0xB1, "READ BINARY", 0x00, [0x0000];
    /// READ BINARY of the current EF at the offset P1-P2.
    ReadBinary = 0xB0, "READ BINARY", 0x00, [0x0000];
    /// Writes (and creates) an EF: `54` offset, `53` data.
    UpdateBinary = 0xD7, "UPDATE BINARY", 0x00, [0xCF01, 0x2F10];
    DeleteFile = 0xE4, "DELETE FILE", 0x00, [0x0200];
    /// Lists the FIDs of every file and key.
    EnumerateObjects = 0x58, "ENUMERATE OBJECTS", 0x80, [0x0000];
    Verify = 0x20, "VERIFY", 0x00, [0x0081, 0x0088];
    ChangeReferenceData = 0x24, "CHANGE REFERENCE DATA", 0x00, [0x0081, 0x0088];
    ResetRetryCounter = 0x2C, "RESET RETRY COUNTER", 0x00, [0x0081, 0x0181];
    /// With data: initialise; without: read the configuration and version.
    InitializeDevice = 0x50, "INITIALIZE DEVICE", 0x80, [0x0000];
    /// P1 the action (`00` status or import a DKEK share, `01` create, `02` create XKEK,
    /// `03` delete, `04` clear the KEK), P2 the key domain. `80 52 00 00` is IMPORT DKEK
    /// SHARE into the default domain.
    ManageKeyDomain = 0x52, "MANAGE KEY DOMAIN", 0x80, [0x0000, 0x0001, 0x0101, 0x0301];
    /// P1 key id, P2 the key signing the outer request (`00`: the device key).
    GenerateKeyPair = 0x46, "GENERATE ASYMMETRIC KEY PAIR", 0x00, [0x0300];
    /// P1 key id, P2 `B0`/`B1`/`B2`: AES-128/192/256.
    GenerateSymmetricKey = 0x48, "GENERATE SYMMETRIC KEY", 0x00, [0x01B0, 0x02B2];
    /// P1 key id, P2 algorithm (`10`/`11` AES-CBC, `18` CMAC, `99` derivation).
    CipherSymmetric = 0x78, "CIPHER SYMMETRIC", 0x80, [0x0110, 0x0111, 0x0118, 0x0199];
    /// P1 the source key, P2 the new key; data `98 ‖ scalar`.
    DeriveEcKey = 0x76, "DERIVE EC KEY", 0x80, [0x0102];
    /// P1 key id, P2 algorithm.
    Sign = 0x68, "SIGN", 0x80, [0x0120, 0x0270];
    /// P1 key id, P2 algorithm (`84`: agree an XKEK with a peer card's key).
    Decipher = 0x62, "DECIPHER", 0x80, [0x0121, 0x0280, 0x0184];
    WrapKey = 0x72, "WRAP KEY", 0x80, [0x0192];
    UnwrapKey = 0x74, "UNWRAP KEY", 0x80, [0x0593];
    GetChallenge = 0x84, "GET CHALLENGE", 0x00, [0x0000];
    /// `81 B6`: the public key certificates are verified with; `81 A4`: the registered key
    /// EXTERNAL AUTHENTICATE checks (data `83 L <CHR>`); `41 A4`: chip authentication
    /// (data `80 L <protocol OID>`).
    ManageSecurityEnvironment = 0x22, "MANAGE SECURITY ENVIRONMENT", 0x00, [0x81B6, 0x81A4, 0x41A4];
    /// Chip authentication: `7C { 80 <ephemeral public point> }`.
    GeneralAuthenticate = 0x86, "GENERAL AUTHENTICATE", 0x00, [0x0000];
    /// `00 BE`: VERIFY CERTIFICATE (a CV certificate, with the key MSE `81 B6` selected).
    PerformSecurityOperation = 0x2A, "PERFORM SECURITY OPERATION", 0x00, [0x00BE];
    /// `00 00` without data: status; `00 00` with an authenticated request: register a key;
    /// `01 <slot>`: replace the key of a slot.
    ManagePublicKeyAuthentication = 0x54, "MANAGE PUBLIC KEY AUTHENTICATION", 0x80, [0x0000, 0x0100];
    /// A registered key's signature over SHA-256(device CHR ‖ challenge).
    ExternalAuthenticate = 0x82, "EXTERNAL AUTHENTICATE", 0x00, [0x0000];
    /// P1 `01`, P2 the PIN (`81`): a session PIN, only under secure messaging.
    GenerateSessionPin = 0x5A, "GENERATE SESSION PIN", 0x80, [0x0181];
    /// Answered by the APDU layer ([`crate::apdu::layer`]).
    GetResponse = 0xC0, "GET RESPONSE", 0x00, [];
}

/// The name of instruction byte `code` for logs and traces.
pub fn name_of(code: u8) -> &'static str {
    Ins::from_code(code).map_or("unknown", Ins::name)
}

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
        algorithm: u8,
        data: &'a [u8],
    },
    Decipher {
        key_id: u8,
        algorithm: u8,
        data: &'a [u8],
    },
    GenerateSymmetricKey {
        key_id: u8,
        /// Key length in bytes.
        size: usize,
        data: &'a [u8],
    },
    CipherSymmetric {
        key_id: u8,
        algorithm: u8,
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

fn no_data(command: &Command) -> Result<(), Status> {
    if command.data.is_empty() {
        Ok(())
    } else {
        Err(Status::WrongLength)
    }
}

fn p1p2_zero(command: &Command) -> Result<(), Status> {
    if command.p1 == 0 && command.p2 == 0 {
        Ok(())
    } else {
        Err(Status::IncorrectP1P2)
    }
}

fn p1_zero(command: &Command) -> Result<(), Status> {
    if command.p1 == 0 {
        Ok(())
    } else {
        Err(Status::IncorrectP1P2)
    }
}

fn not_empty(data: &[u8]) -> Result<&[u8], Status> {
    if data.is_empty() {
        Err(Status::WrongLength)
    } else {
        Ok(data)
    }
}

fn fid(data: &[u8]) -> Result<u16, Status> {
    let fid = <[u8; 2]>::try_from(data).map_err(|_| Status::WrongLength)?;
    Ok(u16::from_be_bytes(fid))
}

fn select_answer(p2: u8) -> Result<SelectAnswer, Status> {
    match p2 {
        0x00 => Ok(SelectAnswer::Fci),
        0x04 => Ok(SelectAnswer::Fcp),
        0x0C => Ok(SelectAnswer::Nothing),
        _ => Err(Status::IncorrectP1P2),
    }
}

fn target(command: &Command) -> Target {
    match u16::from_be_bytes([command.p1, command.p2]) {
        0 => Target::Current,
        fid => Target::File(fid),
    }
}

/// Reads the `54 02 <offset>` TLV that odd-INS READ/UPDATE BINARY start with.
fn offset_tlv(data: &[u8]) -> Result<(usize, &[u8]), Status> {
    match tlv::read(data) {
        Some((t, rest)) if t.tag == 0x54 && t.value.len() == 2 => Ok((
            usize::from(u16::from_be_bytes([t.value[0], t.value[1]])),
            rest,
        )),
        _ => Err(Status::IncorrectData),
    }
}

impl<'a> Request<'a> {
    /// Parses a complete command; `6D00` for instructions the card does not implement.
    pub(crate) fn parse(command: &'a Command) -> Result<Request<'a>, Status> {
        let data = command.data.as_slice();
        let ins = Ins::from_code(command.ins).ok_or(Status::InsNotSupported)?;
        let (p1, p2) = (command.p1, command.p2);
        Ok(match ins {
            Ins::Select => match p1 {
                0x04 => Request::SelectApplication {
                    aid: data,
                    answer: select_answer(p2)?,
                },
                0x00 => {
                    let fid = fid(data)?;
                    Request::SelectFile {
                        fid,
                        answer: select_answer(p2)?,
                    }
                }
                _ => return Err(Status::IncorrectP1P2),
            },
            Ins::ReadBinaryOdd => {
                let (offset, rest) = offset_tlv(data)?;
                if !rest.is_empty() {
                    return Err(Status::IncorrectData);
                }
                Request::ReadBinary {
                    target: target(command),
                    offset,
                    max: command.le.ok_or(Status::WrongLength)?,
                }
            }
            Ins::ReadBinary => {
                no_data(command)?;
                if p1 & 0x80 != 0 {
                    // Short EF identifiers are not used by this card.
                    return Err(Status::IncorrectP1P2);
                }
                Request::ReadBinary {
                    target: Target::Current,
                    offset: usize::from(u16::from_be_bytes([p1, p2])),
                    max: command.le.ok_or(Status::WrongLength)?,
                }
            }
            Ins::UpdateBinary => {
                let (offset, rest) = offset_tlv(data)?;
                let content = match tlv::read(rest) {
                    Some((t, [])) if t.tag == 0x53 => t.value,
                    _ => return Err(Status::IncorrectData),
                };
                Request::UpdateBinary {
                    target: target(command),
                    offset,
                    data: content,
                }
            }
            Ins::DeleteFile => {
                if !matches!((p1, p2), (0x02, 0x00) | (0x00, 0x00)) {
                    return Err(Status::IncorrectP1P2);
                }
                Request::DeleteFile { fid: fid(data)? }
            }
            Ins::EnumerateObjects => {
                p1p2_zero(command)?;
                no_data(command)?;
                Request::EnumerateObjects
            }
            Ins::Verify => {
                p1_zero(command)?;
                let value = (!data.is_empty()).then_some(data);
                match PinRef::from_p2(p2) {
                    Some(pin) => Request::Verify { pin, value },
                    None => Request::VerifyUnknownReference { reference: p2 },
                }
            }
            Ins::ChangeReferenceData => {
                p1_zero(command)?;
                let pin = PinRef::from_p2(p2).ok_or(Status::ReferencedDataNotFound)?;
                Request::ChangeReferenceData {
                    pin,
                    data: not_empty(data)?,
                }
            }
            Ins::ResetRetryCounter => {
                if p2 != 0x81 {
                    return Err(Status::IncorrectP1P2);
                }
                Request::ResetRetryCounter(match p1 {
                    0x00 if data.len() > SO_PIN_LENGTH => {
                        let (so_pin, new_pin) = data.split_at(SO_PIN_LENGTH);
                        Unblock::WithNewPin { so_pin, new_pin }
                    }
                    0x01 if data.len() == SO_PIN_LENGTH => Unblock::CounterOnly { so_pin: data },
                    0x00 | 0x01 => return Err(Status::WrongLength),
                    _ => return Err(Status::IncorrectP1P2),
                })
            }
            Ins::InitializeDevice => {
                p1p2_zero(command)?;
                match data {
                    [] => Request::ReadConfiguration,
                    _ => Request::InitializeDevice { data },
                }
            }
            Ins::ManageKeyDomain => {
                let action = match (p1, data) {
                    (0x00, []) => DomainAction::Status,
                    (0x00, share) => DomainAction::ImportShare(share),
                    (0x01, [shares]) => DomainAction::CreateDkek { shares: *shares },
                    (0x02, uid @ [_, ..]) if uid.len() <= MAX_DOMAIN_UID => {
                        DomainAction::CreateXkek { uid }
                    }
                    (0x02, _) => return Err(Status::WrongLength),
                    (0x03, []) => DomainAction::Delete,
                    (0x04, []) => DomainAction::ClearKek,
                    (0x01 | 0x03 | 0x04, _) => return Err(Status::WrongLength),
                    _ => return Err(Status::IncorrectP1P2),
                };
                Request::ManageKeyDomain { domain: p2, action }
            }
            Ins::ManageSecurityEnvironment if (p1, p2) == (0x41, 0xA4) => {
                let tlvs = tlv::parse_all(data).ok_or(Status::IncorrectData)?;
                let protocol = tlvs
                    .iter()
                    .find(|t| t.tag == 0x80)
                    .ok_or(Status::IncorrectData)?;
                Request::SelectChipAuthentication {
                    protocol: protocol.value,
                }
            }
            Ins::GeneralAuthenticate => {
                p1p2_zero(command)?;
                let point = match tlv::read(data) {
                    Some((t, [])) if t.tag == 0x7C => match tlv::read(t.value) {
                        Some((p, [])) if p.tag == 0x80 && !p.value.is_empty() => p.value,
                        _ => return Err(Status::IncorrectData),
                    },
                    _ => return Err(Status::IncorrectData),
                };
                Request::GeneralAuthenticate { ephemeral: point }
            }
            Ins::ManageSecurityEnvironment => {
                let select = match (p1, p2) {
                    (0x81, 0xB6) => |chr| Request::SelectVerifier { chr },
                    (0x81, 0xA4) => |chr| Request::SelectAuthenticationKey { chr },
                    _ => return Err(Status::IncorrectP1P2),
                };
                match tlv::read(data) {
                    Some((t, [])) if t.tag == 0x83 && !t.value.is_empty() => select(t.value),
                    _ => return Err(Status::IncorrectData),
                }
            }
            Ins::PerformSecurityOperation => match (p1, p2) {
                (0x00, 0xBE) => Request::VerifyCertificate {
                    certificate: not_empty(data)?,
                },
                _ => return Err(Status::IncorrectP1P2),
            },
            Ins::ManagePublicKeyAuthentication => match (p1, p2, data) {
                // With Le: the status; without (case 1): register the request staged in 2F10.
                (0x00, 0x00, []) if command.le.is_some() => Request::PkaStatus,
                (0x00, 0x00, request) => Request::RegisterPublicKey {
                    slot: None,
                    request,
                },
                // Without data: the request staged in 2F10.
                (0x01, slot, request) => Request::RegisterPublicKey {
                    slot: Some(slot),
                    request,
                },
                _ => return Err(Status::IncorrectP1P2),
            },
            Ins::ExternalAuthenticate => {
                p1p2_zero(command)?;
                Request::ExternalAuthenticate {
                    signature: not_empty(data)?,
                }
            }
            Ins::GenerateSessionPin => {
                no_data(command)?;
                match (p1, p2) {
                    (0x01, 0x81) => Request::GenerateSessionPin,
                    _ => return Err(Status::IncorrectP1P2),
                }
            }
            Ins::GetChallenge => {
                p1p2_zero(command)?;
                no_data(command)?;
                match command.le {
                    Some(len) if len <= MAX_CHALLENGE => Request::GetChallenge { len },
                    _ => return Err(Status::WrongLength),
                }
            }
            Ins::GenerateKeyPair => Request::GenerateKeyPair {
                key_id: p1,
                signer: p2,
                data: not_empty(data)?,
            },
            Ins::Sign => Request::Sign {
                key_id: p1,
                algorithm: p2,
                data,
            },
            Ins::Decipher if p2 == XKEK_DERIVATION => Request::DeriveXkek {
                key_id: p1,
                request: data,
            },
            Ins::Decipher => Request::Decipher {
                key_id: p1,
                algorithm: p2,
                data,
            },
            Ins::GenerateSymmetricKey => Request::GenerateSymmetricKey {
                key_id: p1,
                size: match p2 {
                    0xB0 => 16,
                    0xB1 => 24,
                    0xB2 => 32,
                    _ => return Err(Status::IncorrectP1P2),
                },
                data,
            },
            Ins::CipherSymmetric => Request::CipherSymmetric {
                key_id: p1,
                algorithm: p2,
                data,
            },
            Ins::DeriveEcKey => match data {
                [algorithm, scalar @ ..] if !scalar.is_empty() => Request::DeriveEcKey {
                    source: p1,
                    target: p2,
                    algorithm: *algorithm,
                    scalar,
                },
                _ => return Err(Status::WrongLength),
            },
            Ins::WrapKey => {
                if p2 != 0x92 {
                    return Err(Status::IncorrectP1P2);
                }
                Request::WrapKey { key_id: p1 }
            }
            Ins::UnwrapKey => {
                if p2 != 0x93 {
                    return Err(Status::IncorrectP1P2);
                }
                Request::UnwrapKey { key_id: p1, data }
            }
            // The APDU layer answers GET RESPONSE; one that reaches the application has a
            // class the layer does not take it with.
            Ins::GetResponse => return Err(Status::InsNotSupported),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_names_one_instruction() {
        for ins in Ins::ALL {
            assert_eq!(Ins::from_code(ins.code()), Some(*ins));
            assert!(matches!(ins.class(), 0x00 | 0x80), "{ins:?}");
        }
        assert_eq!(name_of(0x20), "VERIFY");
        assert_eq!(name_of(0xB0), name_of(0xB1));
        assert_eq!(name_of(0x12), "unknown");
    }
}
