//! Answer data, by the instruction of the command that asked for it.

use super::structures::{self, number};
use super::{Dissector, Field, SecretKind, Varies};
use crate::applet::command::Ins;
use crate::model::objects::EF_DEVICE_CERTIFICATES;

pub(super) fn fields(
    d: &mut Dissector<'_>,
    ins: Ins,
    [p1, p2]: [u8; 2],
    command_data: &[u8],
    data: &[u8],
) -> Vec<Field> {
    match ins {
        Ins::Select => d.fcp(data),
        Ins::ReadBinaryOdd => {
            let fid = u16::from_be_bytes([p1, p2]);
            let offset = structures::read_all(command_data).and_then(|t| {
                t.into_iter()
                    .find(|t| t.tag == 0x54)
                    .map(|t| number(t.value))
            });
            match offset {
                Some(0) => file_content(d, fid, data),
                _ => vec![d
                    .bytes("content (part of the file)", data)
                    .varying(Varies::Contents)],
            }
        }
        Ins::ReadBinary => vec![d
            .bytes("content of the current EF", data)
            .varying(Varies::Contents)],
        Ins::GetResponse => vec![d.bytes("continued answer", data).varying(Varies::Contents)],
        Ins::EnumerateObjects => data
            .chunks(2)
            .map(|fid| match <[u8; 2]>::try_from(fid) {
                Ok(f) => d
                    .bytes("file identifier", fid)
                    .with_meaning(structures::fid_name(u16::from_be_bytes(f)))
                    .varying(Varies::Contents),
                Err(_) => d.undecoded(fid),
            })
            .collect(),
        Ins::InitializeDevice => configuration(d, data),
        Ins::ManageKeyDomain => domain_status(d, data),
        Ins::Decipher if p2 == 0x84 => domain_status(d, data),
        Ins::GenerateKeyPair => d.cv(data, Some(Varies::Random)),
        Ins::Sign => vec![d.bytes("signature", data).varying(Varies::Random)],
        Ins::Decipher if p2 == 0x80 => {
            vec![d.secret("shared secret", SecretKind::KeyMaterial, data)]
        }
        Ins::Decipher => vec![d.secret("deciphered data", SecretKind::DecryptedData, data)],
        Ins::CipherSymmetric => match p2 {
            0x10 => vec![d.bytes("cipher text", data).varying(Varies::Contents)],
            0x18 => vec![d.bytes("CMAC", data).varying(Varies::Contents)],
            0x99 => vec![d.secret("derived key", SecretKind::KeyMaterial, data)],
            _ => vec![d.secret("plain text", SecretKind::DecryptedData, data)],
        },
        Ins::WrapKey => d.blob(data),
        Ins::GetChallenge => vec![d.bytes("challenge", data).varying(Varies::Random)],
        Ins::GeneralAuthenticate => d.tlvs(data, super::command::authentication_tags),
        Ins::ManagePublicKeyAuthentication => pka_status(d, data),
        Ins::GenerateSessionPin => {
            vec![d.secret("session PIN", SecretKind::SessionPin, data)]
        }
        // A new key's CV request, when the host asked for one.
        Ins::UnwrapKey | Ins::DeriveEcKey | Ins::GenerateSymmetricKey => {
            d.cv(data, Some(Varies::Random))
        }
        Ins::UpdateBinary
        | Ins::DeleteFile
        | Ins::Verify
        | Ins::ChangeReferenceData
        | Ins::ResetRetryCounter
        | Ins::ManageSecurityEnvironment
        | Ins::PerformSecurityOperation
        | Ins::ExternalAuthenticate => vec![d.undecoded(data)],
    }
}

/// What a file of the card holds, read from its start: the device certificates, a CV request
/// or certificate, or any DER (X.509 certificates, PKCS#15 descriptions).
pub(super) fn file_content(d: &mut Dissector<'_>, fid: u16, data: &[u8]) -> Vec<Field> {
    if matches!(data.first(), Some(0x7F | 0x67 | 0x30 | 0xA0..=0xBF))
        && structures::read_all(data).is_none()
    {
        // The start of a longer file, read in pieces: decoded whole on no piece.
        return vec![d
            .bytes("content (the file continues past this answer)", data)
            .varying(Varies::Contents)];
    }
    let fields = if fid == EF_DEVICE_CERTIFICATES || matches!(data.first(), Some(0x7F | 0x67)) {
        d.cv(data, None)
    } else {
        d.ber_or_bytes("content", data)
    };
    // What a file holds is the card's business: two cards answer it alike only by shape.
    fields
        .into_iter()
        .map(|f| contents(f, Varies::Contents))
        .collect()
}

/// Marks the leaves of `field` that carry values (not structure) as depending on `varies`.
fn contents(mut field: Field, varies: Varies) -> Field {
    if field.fields.is_empty() {
        field.varies.get_or_insert(varies);
    } else {
        field.fields = field
            .fields
            .into_iter()
            .map(|f| contents(f, varies))
            .collect();
    }
    field
}

/// `80 50 00 00` without data: options, user PIN retry counter, key domain slots, version.
fn configuration(d: &mut Dissector<'_>, data: &[u8]) -> Vec<Field> {
    match data {
        [hi, lo, tries, domains, major, minor, rest @ ..] => {
            let mut out = vec![
                d.bytes("options", &data[..2])
                    .with_meaning(structures::options(u16::from_be_bytes([*hi, *lo]))),
                d.count("user PIN retry counter", tries),
                d.count("key domain slots", domains),
                d.bytes("version", &data[4..6])
                    .with_meaning(format!("{major}.{minor}")),
            ];
            if !rest.is_empty() {
                out.push(d.bytes("reserved", rest));
            }
            out
        }
        _ => vec![d.undecoded(data)],
    }
}

/// A key domain's status: shares in all, shares missing, KCV, and an XKEK domain's UID.
fn domain_status(d: &mut Dissector<'_>, data: &[u8]) -> Vec<Field> {
    match data {
        [total, missing, rest @ ..] if rest.len() >= 8 => {
            let (kcv, uid) = rest.split_at(8);
            let mut out = vec![
                d.count("DKEK shares", total),
                d.count("shares missing", missing),
                d.bytes("KCV", kcv).varying(Varies::Contents),
            ];
            if !uid.is_empty() {
                out.push(d.bytes("key domain UID", uid));
            }
            out
        }
        _ => vec![d.undecoded(data)],
    }
}

/// `80 54 00 00`: keys in all, keys missing, keys required, keys authenticated.
fn pka_status(d: &mut Dissector<'_>, data: &[u8]) -> Vec<Field> {
    match data {
        [total, missing, required, authenticated] => [
            ("keys in all", total),
            ("keys still to register", missing),
            ("keys required", required),
            ("keys authenticated", authenticated),
        ]
        .into_iter()
        .map(|(name, n)| d.count(name, n))
        .collect(),
        _ => vec![d.undecoded(data)],
    }
}
