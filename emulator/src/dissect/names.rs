//! What bytes of the card mean, in words: INITIALIZE's options, algorithm identifiers, FIDs,
//! object identifiers, BER's universal tags, dates, numbers and text.

use crate::crypto::cvc::TaAlgorithm;
use crate::crypto::ec::Curve;
use crate::crypto::hash::Hash;
use crate::crypto::Algorithm;
use crate::model::objects;

/// The INITIALIZE options bits in words.
pub(super) fn options(options: u16) -> String {
    let names = crate::model::option_names(options);
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// An algorithm identifier of SIGN, DECIPHER, CIPHER SYMMETRIC or a key's list, in words.
pub(super) fn algorithm_name(id: u8) -> String {
    let named = Algorithm::for_sign(id)
        .or_else(|| Algorithm::for_decipher(id))
        .or_else(|| Algorithm::for_cipher(id));
    match (id, named) {
        (0x92, _) => "wrap".into(),
        (0x93, _) => "unwrap".into(),
        (0x84, _) => "XKEK agreement".into(),
        (0x98, _) => "EC key derivation".into(),
        (_, Some(a)) => format!("{a:?}"),
        _ => format!("{id:02X}"),
    }
}

pub(super) fn algorithm_list(ids: &[u8]) -> String {
    ids.iter()
        .map(|id| algorithm_name(*id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a FID names on this card: a fixed EF, or an object and its id.
pub(super) fn fid_name(fid: u16) -> String {
    let kind = objects::kind_of(fid);
    match fid.to_be_bytes() {
        [0x2F, _] => kind.to_string(),
        _ if kind == "file" => kind.to_string(),
        [_, id] => format!("{kind} {id}"),
    }
}

/// The name of a universal or well-known tag of generic BER.
pub(super) fn universal_name(tag: u32) -> Option<&'static str> {
    Some(match tag {
        0x01 => "BOOLEAN",
        0x02 => "INTEGER",
        0x03 => "BIT STRING",
        0x04 => "OCTET STRING",
        0x05 => "NULL",
        0x06 => "OBJECT IDENTIFIER",
        0x0A => "ENUMERATED",
        0x0C => "UTF8String",
        0x13 => "PrintableString",
        0x16 => "IA5String",
        0x17 => "UTCTime",
        0x18 => "GeneralizedTime",
        0x30 => "SEQUENCE",
        0x31 => "SET",
        _ if tag & 0xE0 == 0xA0 && tag <= 0xBF => "context",
        _ if tag & 0xE0 == 0x80 && tag <= 0x9F => "context",
        _ => return None,
    })
}

pub(super) fn printable(value: &[u8]) -> bool {
    !value.is_empty() && value.iter().all(|b| (0x20..0x7F).contains(b))
}

pub(super) fn text(value: &[u8]) -> String {
    value
        .iter()
        .map(|b| {
            if (0x20..0x7F).contains(b) {
                char::from(*b)
            } else {
                '.'
            }
        })
        .collect()
}

pub(super) fn number(value: &[u8]) -> u64 {
    value
        .iter()
        .take(8)
        .fold(0u64, |a, b| (a << 8) | u64::from(*b))
}

pub(super) fn date(value: &[u8]) -> String {
    if value.len() == 6 && value.iter().all(|d| *d < 10) {
        format!(
            "20{}{}-{}{}-{}{}",
            value[0], value[1], value[2], value[3], value[4], value[5]
        )
    } else {
        "not a date".into()
    }
}

/// An OID in dotted form, with its name when the card knows it.
pub(super) fn oid_name(value: &[u8]) -> String {
    let dotted = dotted(value);
    let name = TaAlgorithm::from_oid(value)
        .map(|a| match a {
            TaAlgorithm::RsaPkcs1(h) => format!("id-TA-RSA-v1-5-{}", hash_name(h)),
            TaAlgorithm::RsaPss(h) => format!("id-TA-RSA-PSS-{}", hash_name(h)),
            TaAlgorithm::Ecdsa(h) => format!("id-TA-ECDSA-{}", hash_name(h)),
        })
        .or_else(|| {
            Curve::ALL
                .into_iter()
                .find(|c| c.oid() == value)
                .map(|c| c.openssl_name().to_string())
        })
        .or_else(|| {
            Some(
                match dotted.as_str() {
                    "2.16.840.1.101.3.4.1" => "AES",
                    "0.4.0.127.0.7.2.2.3.2.4" => "id-CA-ECDH-AES-CBC-CMAC-128",
                    "0.4.0.127.0.7.2.2.3.2.2" => "id-CA-ECDH-3DES-CBC-CBC",
                    "1.2.840.113549.1.1.1" => "rsaEncryption",
                    "1.2.840.10045.2.1" => "id-ecPublicKey",
                    "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
                    "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
                    "2.5.4.3" => "commonName",
                    "1.3.6.1.4.1.24991.3.3.1" => "SmartCard-HSM key domain",
                    _ => return None,
                }
                .to_string(),
            )
        });
    match name {
        Some(name) => format!("{dotted} ({name})"),
        None => dotted,
    }
}

pub(super) fn hash_name(h: Hash) -> &'static str {
    match h {
        Hash::Sha1 => "SHA-1",
        Hash::Sha224 => "SHA-224",
        Hash::Sha256 => "SHA-256",
        Hash::Sha384 => "SHA-384",
        Hash::Sha512 => "SHA-512",
    }
}

pub(super) fn dotted(value: &[u8]) -> String {
    let mut parts: Vec<u64> = Vec::new();
    let mut acc = 0u64;
    for (i, b) in value.iter().enumerate() {
        acc = (acc << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            if parts.is_empty() && i < 8 {
                let first = (acc / 40).min(2);
                parts.push(first);
                parts.push(acc - first * 40);
            } else {
                parts.push(acc);
            }
            acc = 0;
        }
    }
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}
