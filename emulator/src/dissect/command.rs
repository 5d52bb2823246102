//! Command data, by instruction: the match on [`Ins`] has no catch-all, so a new row of the
//! command table needs its decoder here.

use super::structures::{self, Show};
use super::{Dissector, Field, SecretKind, Varies};
use crate::applet::command::Ins;
use crate::applet::AID;
use crate::model::pin::SO_PIN_LENGTH;

/// What the card knows that the bytes of a command do not say.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    /// The length of the user PIN, which splits CHANGE REFERENCE DATA's old and new PIN.
    pub user_pin_len: Option<usize>,
}

pub(super) fn fields(
    d: &mut Dissector<'_>,
    ins: Ins,
    [p1, p2]: [u8; 2],
    data: &[u8],
    context: &Context,
) -> Vec<Field> {
    match ins {
        Ins::Select if p1 == 0x04 => {
            let meaning = if data == AID {
                "SmartCard-HSM"
            } else {
                "another application"
            };
            vec![d
                .bytes("application identifier", data)
                .with_meaning(meaning)]
        }
        Ins::Select | Ins::DeleteFile => fid(d, data),
        Ins::ReadBinaryOdd => d.tlvs(data, offset_tags),
        Ins::UpdateBinary => {
            let fid = u16::from_be_bytes([p1, p2]);
            update_binary(d, fid, data)
        }
        Ins::Verify | Ins::ChangeReferenceData => pins(d, ins, p2, data, context),
        Ins::ResetRetryCounter => {
            let (so, new) = data.split_at(SO_PIN_LENGTH.min(data.len()));
            let mut out = vec![d.secret("SO-PIN", SecretKind::SoPin, so)];
            if !new.is_empty() {
                out.push(d.secret("new user PIN", SecretKind::UserPin, new));
            }
            out
        }
        Ins::InitializeDevice => d.tlvs(data, initialize_tags),
        Ins::ManageKeyDomain => match p1 {
            0x00 => vec![d.secret("DKEK share", SecretKind::DkekShare, data)],
            0x01 => vec![d
                .bytes("number of DKEK shares", data)
                .with_meaning(structures::number(data).to_string())],
            0x02 => vec![d.bytes("key domain UID", data)],
            _ => vec![d.undecoded(data)],
        },
        Ins::GenerateKeyPair => d.tlvs(data, generate_tags),
        Ins::GenerateSymmetricKey => d.tlvs(data, key_policy_tags),
        Ins::CipherSymmetric => {
            let name = match p2 {
                0x10 => "plain text",
                0x11 => "cipher text",
                0x18 => "message",
                0x99 => "derivation parameter",
                _ => "input",
            };
            vec![d.bytes(name, data)]
        }
        Ins::DeriveEcKey => match data.split_first() {
            Some((algorithm, scalar)) => {
                let (algorithm, scalar) = (std::slice::from_ref(algorithm), scalar);
                vec![
                    d.bytes("derivation algorithm", algorithm)
                        .with_meaning(structures::algorithm_name(algorithm[0])),
                    d.secret("derivation scalar", SecretKind::KeyMaterial, scalar),
                ]
            }
            None => Vec::new(),
        },
        Ins::Sign => sign_input(d, data),
        Ins::Decipher => match p2 {
            0x80 => vec![d
                .bytes("peer public point", data)
                .with_meaning("uncompressed point")],
            0x84 => d.cv(data, None),
            _ => vec![d.bytes("cryptogram", data)],
        },
        Ins::UnwrapKey => d.blob(data),
        Ins::ManageSecurityEnvironment => d.tlvs(data, mse_tags),
        Ins::GeneralAuthenticate => d.tlvs(data, authentication_tags),
        Ins::PerformSecurityOperation | Ins::ManagePublicKeyAuthentication => d.cv(data, None),
        Ins::ExternalAuthenticate => vec![d.bytes("signature", data).varying(Varies::Random)],
        Ins::ReadBinary
        | Ins::EnumerateObjects
        | Ins::WrapKey
        | Ins::GetChallenge
        | Ins::GenerateSessionPin
        | Ins::GetResponse => vec![d.undecoded(data)],
    }
}

fn fid(d: &Dissector<'_>, data: &[u8]) -> Vec<Field> {
    match <[u8; 2]>::try_from(data) {
        Ok(fid) => vec![d
            .bytes("file identifier", data)
            .with_meaning(structures::fid_name(u16::from_be_bytes(fid)))],
        Err(_) => vec![d.undecoded(data)],
    }
}

/// VERIFY and CHANGE REFERENCE DATA: a PIN, or the old and the new one.
fn pins(d: &mut Dissector<'_>, ins: Ins, p2: u8, data: &[u8], context: &Context) -> Vec<Field> {
    let (kind, name) = match p2 {
        0x88 => (SecretKind::SoPin, "SO-PIN"),
        _ => (SecretKind::UserPin, "user PIN"),
    };
    if ins == Ins::Verify {
        return vec![d.secret(name, kind, data)];
    }
    let old_len = match kind {
        SecretKind::SoPin => Some(SO_PIN_LENGTH),
        _ => context.user_pin_len,
    };
    match old_len {
        Some(n) if n < data.len() => {
            let (old, new) = data.split_at(n);
            vec![
                d.secret(&format!("current {name}"), kind, old),
                d.secret(&format!("new {name}"), kind, new),
            ]
        }
        _ => vec![d.secret(&format!("current and new {name}"), kind, data)],
    }
}

/// UPDATE BINARY: `54` offset and `53` content, the content decoded by what the file holds.
fn update_binary(d: &mut Dissector<'_>, fid: u16, data: &[u8]) -> Vec<Field> {
    let Some(tlvs) = structures::read_all(data) else {
        return vec![d.undecoded(data)];
    };
    let mut out = Vec::new();
    let mut offset = 0;
    for t in tlvs {
        match t.tag {
            0x54 => {
                offset = structures::number(t.value);
                out.push(
                    d.bytes("offset", t.value)
                        .with_meaning(offset.to_string())
                        .tagged(0x54),
                );
            }
            0x53 => {
                let fields = if offset == 0 {
                    super::response::file_content(d, fid, t.value)
                } else {
                    vec![d.bytes("content (part of the file)", t.value)]
                };
                out.push(
                    Field {
                        name: format!("content of {}", structures::fid_name(fid)),
                        len: t.value.len(),
                        fields,
                        ..Field::default()
                    }
                    .tagged(0x53),
                );
            }
            _ => out.push(d.undecoded(t.value)),
        }
    }
    out
}

/// SIGN's input: a DigestInfo, a bare hash or a message.
fn sign_input(d: &mut Dissector<'_>, data: &[u8]) -> Vec<Field> {
    if data.first() == Some(&0x30) && structures::read_all(data).is_some_and(|t| t.len() == 1) {
        let mut fields = d.ber_or_bytes("DigestInfo", data);
        if let Some(f) = fields.first_mut() {
            f.name = "DigestInfo".into();
        }
        return fields;
    }
    let name = match data.len() {
        20 => "hash (SHA-1 length)",
        28 => "hash (SHA-224 length)",
        32 => "hash (SHA-256 length)",
        48 => "hash (SHA-384 length)",
        64 => "hash (SHA-512 length)",
        _ => "input",
    };
    vec![d.bytes(name, data)]
}

fn offset_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    match tag {
        0x54 => Some(("offset", Show::Number, None)),
        _ => None,
    }
}

fn initialize_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    Some(match tag {
        0x80 => ("options", Show::With(init_options), None),
        0x81 => ("user PIN", Show::Secret(SecretKind::UserPin), None),
        0x82 => (
            "SO-PIN (initialization code)",
            Show::Secret(SecretKind::SoPin),
            None,
        ),
        0x91 => ("user PIN retry counter", Show::Number, None),
        0x92 => ("number of DKEK shares", Show::Number, None),
        0x93 => (
            "public-key authentication: keys, required",
            Show::Bytes,
            None,
        ),
        0x95 => ("biometric server AID 1", Show::Bytes, None),
        0x96 => ("biometric server AID 2", Show::Bytes, None),
        0x97 => ("key domain slots", Show::Number, None),
        _ => return None,
    })
}

fn init_options(d: &mut Dissector<'_>, value: &[u8]) -> Vec<Field> {
    vec![d
        .bytes("option bits", value)
        .with_meaning(structures::options(structures::number(value) as u16))]
}

/// GENERATE ASYMMETRIC KEY PAIR: a CV request body, the key policy and the outer CAR.
fn generate_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    match tag {
        0x45 => Some(("outer certification authority reference", Show::Text, None)),
        0x90..=0x93 => key_policy_tags(tag),
        _ => structures::cv_tags(tag),
    }
}

/// The key policy tags of GENERATE: use counter, algorithms, key domain.
fn key_policy_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    Some(match tag {
        0x90 => ("use counter", Show::Number, None),
        0x91 => ("allowed algorithms", Show::With(algorithms), None),
        0x92 => ("key domain", Show::Number, None),
        0x93 => ("key domain UID", Show::Bytes, None),
        _ => return None,
    })
}

fn algorithms(d: &mut Dissector<'_>, value: &[u8]) -> Vec<Field> {
    value
        .iter()
        .map(|id| {
            d.bytes("algorithm", std::slice::from_ref(id))
                .with_meaning(structures::algorithm_name(*id))
        })
        .collect()
}

fn mse_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    Some(match tag {
        0x80 => ("protocol", Show::Oid, None),
        0x83 => ("key name (CHR)", Show::Text, None),
        0x84 => ("key reference", Show::Bytes, None),
        _ => return None,
    })
}

/// GENERAL AUTHENTICATE's dynamic authentication data (`7C`).
pub(super) fn authentication_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    Some(match tag {
        0x7C => ("dynamic authentication data", Show::Nested, None),
        0x80 => ("ephemeral public point", Show::Bytes, Some(Varies::Random)),
        0x81 => ("nonce", Show::Bytes, Some(Varies::Random)),
        0x82 => ("authentication token", Show::Bytes, Some(Varies::Random)),
        _ => return None,
    })
}
