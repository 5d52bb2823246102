//! [`Request::parse`]: P1, P2 and the data of a complete command APDU, by instruction.

use super::request::{DomainAction, KeyOperation, Request, SelectAnswer, Target, Unblock};
use super::Ins;
use crate::apdu::{tlv, Command, Status};
use crate::crypto::aes::KeyLength;
use crate::crypto::Algorithm;
use crate::model::pin::{PinRef, SO_PIN_LENGTH};

/// Largest GET CHALLENGE answer.
const MAX_CHALLENGE: usize = 1024;

/// Longest XKEK domain UID.
const MAX_DOMAIN_UID: usize = 32;

/// The DECIPHER algorithm that agrees an XKEK.
const XKEK_DERIVATION: u8 = 0x84;

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
                operation: KeyOperation::new(p2, Algorithm::for_sign),
                data,
            },
            Ins::Decipher if p2 == XKEK_DERIVATION => Request::DeriveXkek {
                key_id: p1,
                request: data,
            },
            Ins::Decipher => Request::Decipher {
                key_id: p1,
                operation: KeyOperation::new(p2, Algorithm::for_decipher),
                data,
            },
            Ins::GenerateSymmetricKey => Request::GenerateSymmetricKey {
                key_id: p1,
                length: match p2 {
                    0xB0 => KeyLength::Aes128,
                    0xB1 => KeyLength::Aes192,
                    0xB2 => KeyLength::Aes256,
                    _ => return Err(Status::IncorrectP1P2),
                },
                data,
            },
            Ins::CipherSymmetric => Request::CipherSymmetric {
                key_id: p1,
                operation: KeyOperation::new(p2, Algorithm::for_cipher),
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
