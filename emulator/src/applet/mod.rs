//! The SmartCard-HSM application: each command APDU is parsed once into a [`Request`]
//! (syntax: lengths, P1/P2, TLV shape), then one `match` hands it to the handler of its chapter
//! (files, PINs, initialisation), which checks security and policy.

mod dkek;
mod files;
mod init;
mod keys;
mod pins;

use crate::apdu::{Command, Response};
use crate::card::Card;
use crate::crypto::Algorithm;
use crate::pin::PinRef;
use crate::status::Status;
use crate::tlv;

/// The application identifier `E8 2B 06 01 04 01 81 C3 1F 02 01`.
pub const AID: [u8; 11] = [
    0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
];

/// Version the emulated card reports: a current "SmartCard-HSM 4K".
pub const VERSION: (u8, u8) = (4, 0);

/// Instruction bytes.
pub const INS_GET_RESPONSE: u8 = 0xC0;
const INS_SELECT: u8 = 0xA4;
const INS_READ_BINARY: u8 = 0xB0;
const INS_READ_BINARY_ODD: u8 = 0xB1;
const INS_UPDATE_BINARY_ODD: u8 = 0xD7;
const INS_DELETE_FILE: u8 = 0xE4;
const INS_ENUMERATE_OBJECTS: u8 = 0x58;
const INS_VERIFY: u8 = 0x20;
const INS_CHANGE_REFERENCE_DATA: u8 = 0x24;
const INS_RESET_RETRY_COUNTER: u8 = 0x2C;
const INS_INITIALIZE_DEVICE: u8 = 0x50;
const INS_IMPORT_DKEK_SHARE: u8 = 0x52;
const INS_GET_CHALLENGE: u8 = 0x84;
const INS_GENERATE_KEY_PAIR: u8 = 0x46;
const INS_SIGN: u8 = 0x68;
const INS_DECIPHER: u8 = 0x62;
const INS_WRAP_KEY: u8 = 0x72;
const INS_UNWRAP_KEY: u8 = 0x74;

/// Largest GET CHALLENGE answer.
const MAX_CHALLENGE: usize = 1024;

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
    VerifyUnknownReference,
    ChangeReferenceData {
        pin: PinRef,
        data: &'a [u8],
    },
    ResetRetryCounter(Unblock<'a>),
    InitializeDevice {
        data: &'a [u8],
    },
    ImportDkekShare {
        share: Option<&'a [u8]>,
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
    WrapKey {
        key_id: u8,
    },
    UnwrapKey {
        key_id: u8,
        data: &'a [u8],
    },
}

/// A short name for logs and traces.
pub fn command_name(command: &Command) -> &'static str {
    match command.ins {
        INS_SELECT => "SELECT",
        INS_READ_BINARY | INS_READ_BINARY_ODD => "READ BINARY",
        INS_UPDATE_BINARY_ODD => "UPDATE BINARY",
        INS_DELETE_FILE => "DELETE FILE",
        INS_ENUMERATE_OBJECTS => "ENUMERATE OBJECTS",
        INS_VERIFY => "VERIFY",
        INS_CHANGE_REFERENCE_DATA => "CHANGE REFERENCE DATA",
        INS_RESET_RETRY_COUNTER => "RESET RETRY COUNTER",
        INS_INITIALIZE_DEVICE => "INITIALIZE DEVICE",
        INS_IMPORT_DKEK_SHARE => "IMPORT DKEK SHARE",
        INS_GET_CHALLENGE => "GET CHALLENGE",
        INS_GET_RESPONSE => "GET RESPONSE",
        INS_GENERATE_KEY_PAIR => "GENERATE ASYMMETRIC KEY PAIR",
        INS_SIGN => "SIGN",
        INS_DECIPHER => "DECIPHER",
        INS_WRAP_KEY => "WRAP KEY",
        INS_UNWRAP_KEY => "UNWRAP KEY",
        _ => "unknown",
    }
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
    /// Parses the command; `6D00` for instructions the card does not implement.
    pub(crate) fn parse(command: &'a Command) -> Result<Request<'a>, Status> {
        let data = command.data.as_slice();
        match command.ins {
            INS_SELECT => match command.p1 {
                0x04 => Ok(Request::SelectApplication {
                    aid: data,
                    answer: select_answer(command.p2)?,
                }),
                0x00 => {
                    let fid = <[u8; 2]>::try_from(data).map_err(|_| Status::WrongLength)?;
                    Ok(Request::SelectFile {
                        fid: u16::from_be_bytes(fid),
                        answer: select_answer(command.p2)?,
                    })
                }
                _ => Err(Status::IncorrectP1P2),
            },
            INS_READ_BINARY_ODD => {
                let (offset, rest) = offset_tlv(data)?;
                if !rest.is_empty() {
                    return Err(Status::IncorrectData);
                }
                Ok(Request::ReadBinary {
                    target: target(command),
                    offset,
                    max: command.le.ok_or(Status::WrongLength)?,
                })
            }
            INS_READ_BINARY => {
                no_data(command)?;
                if command.p1 & 0x80 != 0 {
                    // Short EF identifiers are not used by this card.
                    return Err(Status::IncorrectP1P2);
                }
                Ok(Request::ReadBinary {
                    target: Target::Current,
                    offset: usize::from(u16::from_be_bytes([command.p1, command.p2])),
                    max: command.le.ok_or(Status::WrongLength)?,
                })
            }
            INS_UPDATE_BINARY_ODD => {
                let (offset, rest) = offset_tlv(data)?;
                let content = match tlv::read(rest) {
                    Some((t, [])) if t.tag == 0x53 => t.value,
                    _ => return Err(Status::IncorrectData),
                };
                Ok(Request::UpdateBinary {
                    target: target(command),
                    offset,
                    data: content,
                })
            }
            INS_DELETE_FILE => {
                if !matches!((command.p1, command.p2), (0x02, 0x00) | (0x00, 0x00)) {
                    return Err(Status::IncorrectP1P2);
                }
                let fid = <[u8; 2]>::try_from(data).map_err(|_| Status::WrongLength)?;
                Ok(Request::DeleteFile {
                    fid: u16::from_be_bytes(fid),
                })
            }
            INS_ENUMERATE_OBJECTS => {
                p1p2_zero(command)?;
                no_data(command)?;
                Ok(Request::EnumerateObjects)
            }
            INS_VERIFY => {
                if command.p1 != 0 {
                    return Err(Status::IncorrectP1P2);
                }
                let value = (!data.is_empty()).then_some(data);
                Ok(match PinRef::from_p2(command.p2) {
                    Some(pin) => Request::Verify { pin, value },
                    None => Request::VerifyUnknownReference,
                })
            }
            INS_CHANGE_REFERENCE_DATA => {
                if command.p1 != 0 {
                    return Err(Status::IncorrectP1P2);
                }
                let pin = PinRef::from_p2(command.p2).ok_or(Status::ReferencedDataNotFound)?;
                if data.is_empty() {
                    return Err(Status::WrongLength);
                }
                Ok(Request::ChangeReferenceData { pin, data })
            }
            INS_RESET_RETRY_COUNTER => {
                if command.p2 != 0x81 {
                    return Err(Status::IncorrectP1P2);
                }
                let so_len = crate::pin::SO_PIN_LENGTH;
                match command.p1 {
                    0x00 if data.len() > so_len => {
                        let (so_pin, new_pin) = data.split_at(so_len);
                        Ok(Request::ResetRetryCounter(Unblock::WithNewPin {
                            so_pin,
                            new_pin,
                        }))
                    }
                    0x01 if data.len() == so_len => {
                        Ok(Request::ResetRetryCounter(Unblock::CounterOnly {
                            so_pin: data,
                        }))
                    }
                    0x00 | 0x01 => Err(Status::WrongLength),
                    _ => Err(Status::IncorrectP1P2),
                }
            }
            INS_INITIALIZE_DEVICE => {
                p1p2_zero(command)?;
                if data.is_empty() {
                    return Err(Status::WrongLength);
                }
                Ok(Request::InitializeDevice { data })
            }
            INS_IMPORT_DKEK_SHARE => {
                // P1/P2 other than 00 address key domains, which this card does not offer.
                p1p2_zero(command)?;
                Ok(Request::ImportDkekShare {
                    share: (!data.is_empty()).then_some(data),
                })
            }
            INS_GET_CHALLENGE => {
                p1p2_zero(command)?;
                no_data(command)?;
                match command.le {
                    Some(len) if len <= MAX_CHALLENGE => Ok(Request::GetChallenge { len }),
                    _ => Err(Status::WrongLength),
                }
            }
            INS_GENERATE_KEY_PAIR => {
                if data.is_empty() {
                    return Err(Status::WrongLength);
                }
                Ok(Request::GenerateKeyPair {
                    key_id: command.p1,
                    signer: command.p2,
                    data,
                })
            }
            INS_SIGN => Ok(Request::Sign {
                key_id: command.p1,
                algorithm: command.p2,
                data,
            }),
            INS_DECIPHER => Ok(Request::Decipher {
                key_id: command.p1,
                algorithm: command.p2,
                data,
            }),
            INS_WRAP_KEY => {
                if command.p2 != 0x92 {
                    return Err(Status::IncorrectP1P2);
                }
                Ok(Request::WrapKey { key_id: command.p1 })
            }
            INS_UNWRAP_KEY => {
                if command.p2 != 0x93 {
                    return Err(Status::IncorrectP1P2);
                }
                Ok(Request::UnwrapKey {
                    key_id: command.p1,
                    data,
                })
            }
            _ => Err(Status::InsNotSupported),
        }
    }
}

/// Runs one command against the card.
pub(crate) fn dispatch(card: &mut Card, command: &Command) -> Result<Response, Status> {
    let request = Request::parse(command)?;
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
        Request::VerifyUnknownReference => Err(Status::ReferencedDataNotFound),
        Request::ChangeReferenceData { pin, data } => card.change_reference_data(pin, data),
        Request::ResetRetryCounter(unblock) => card.reset_retry_counter(unblock),
        Request::InitializeDevice { data } => card.initialize_device(data),
        Request::ImportDkekShare { share } => card.import_dkek_share(share),
        Request::GenerateKeyPair {
            key_id,
            signer,
            data,
        } => card.generate_key_pair(key_id, signer, data),
        Request::Sign {
            key_id,
            algorithm,
            data,
        } => card.use_key(key_id, algorithm, Algorithm::for_sign(algorithm), data),
        Request::Decipher {
            key_id,
            algorithm,
            data,
        } => card.use_key(key_id, algorithm, Algorithm::for_decipher(algorithm), data),
        Request::WrapKey { key_id } => card.wrap_key(key_id),
        Request::UnwrapKey { key_id, data } => card.unwrap_key(key_id, data),
        Request::GetChallenge { len } => {
            let mut challenge = vec![0u8; len];
            card.rng.fill_bytes(&mut challenge);
            Ok(Response::ok(challenge))
        }
    }
}

#[cfg(test)]
mod tests;
