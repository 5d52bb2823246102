//! The card's structures, decoded: BER-TLV trees under a tag dictionary, CV certificates and
//! requests, FCI/FCP with the key information `A5`, algorithm lists, INITIALIZE's options, key
//! domain and public-key authentication status, wrapped-key blobs, object identifiers and FIDs.

pub(super) use super::names::*;
use super::{Dissector, Field, SecretKind, Varies};
use crate::crypto::cvc::TaAlgorithm;
use crate::crypto::ec::Curve;

/// One BER TLV as the dissector reads it: tags of up to three bytes, lengths of up to four.
pub(super) struct Ber<'a> {
    pub tag: u32,
    pub constructed: bool,
    pub value: &'a [u8],
}

/// Reads one TLV from the start of `input`.
pub(super) fn read_ber(input: &[u8]) -> Option<(Ber<'_>, &[u8])> {
    let (&first, mut rest) = input.split_first()?;
    let mut tag = u32::from(first);
    if first & 0x1F == 0x1F {
        for _ in 0..2 {
            let (&next, after) = rest.split_first()?;
            tag = (tag << 8) | u32::from(next);
            rest = after;
            if next & 0x80 == 0 {
                break;
            }
        }
        if tag & 0x80 != 0 {
            return None;
        }
    }
    let (&l, after) = rest.split_first()?;
    let (len, after) = match l {
        n if n < 0x80 => (usize::from(n), after),
        0x81..=0x84 => {
            let count = usize::from(l & 0x7F);
            if after.len() < count {
                return None;
            }
            let (bytes, after) = after.split_at(count);
            (
                bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b)),
                after,
            )
        }
        _ => return None,
    };
    if after.len() < len {
        return None;
    }
    let (value, rest) = after.split_at(len);
    Some((
        Ber {
            tag,
            constructed: first & 0x20 != 0,
            value,
        },
        rest,
    ))
}

/// Splits `input` into TLVs; `None` unless all of it is well-formed TLVs (and padding).
pub(super) fn read_all(input: &[u8]) -> Option<Vec<Ber<'_>>> {
    read_padded(input).map(|(tlvs, _)| tlvs)
}

/// Splits `input` into TLVs and the padding (`00` or `FF` bytes) some hosts leave after them.
fn read_padded(mut input: &[u8]) -> Option<(Vec<Ber<'_>>, &[u8])> {
    let mut out = Vec::new();
    while !input.is_empty() {
        if input.iter().all(|b| *b == 0x00 || *b == 0xFF) && !out.is_empty() {
            break;
        }
        let (tlv, rest) = read_ber(input)?;
        out.push(tlv);
        input = rest;
    }
    Some((out, input))
}

/// How a tag's value is shown.
#[derive(Clone, Copy)]
pub(super) enum Show {
    Bytes,
    /// Printable text (a CHR, a label).
    Text,
    /// An unsigned number.
    Number,
    Oid,
    /// A BCD date `YYMMDD` as CV certificates hold it.
    Date,
    /// Nested TLVs under the same dictionary.
    Nested,
    Secret(SecretKind),
    /// A decoder of its own.
    With(fn(&mut Dissector<'_>, &[u8]) -> Vec<Field>),
}

/// A tag dictionary: the name of a tag in one context, how to show it, and whether it varies.
pub(super) type Dictionary = fn(u32) -> Option<(&'static str, Show, Option<Varies>)>;

impl Dissector<'_> {
    /// `data` as TLVs named by `dictionary`; unknown tags are decoded as generic BER. Data
    /// that is not TLVs is one `undecoded` field.
    pub(super) fn tlvs(&mut self, data: &[u8], dictionary: Dictionary) -> Vec<Field> {
        let Some((tlvs, padding)) = read_padded(data) else {
            return vec![self.undecoded(data)];
        };
        let mut fields: Vec<Field> = tlvs
            .iter()
            .map(|t| match dictionary(t.tag) {
                Some((name, show, varies)) => {
                    let mut field = self.value(name, show, t.value, dictionary);
                    field.varies = field.varies.or(varies);
                    field.tagged(t.tag)
                }
                None => self.ber(t),
            })
            .collect();
        if !padding.is_empty() {
            fields.push(self.bytes("padding", padding));
        }
        fields
    }

    fn value(&mut self, name: &str, show: Show, value: &[u8], dictionary: Dictionary) -> Field {
        match show {
            Show::Bytes => self.bytes(name, value),
            Show::Text => self.bytes(name, value).with_meaning(text(value)),
            Show::Number => self
                .bytes(name, value)
                .with_meaning(number(value).to_string()),
            Show::Oid => self.bytes(name, value).with_meaning(oid_name(value)),
            Show::Date => self.bytes(name, value).with_meaning(date(value)),
            Show::Secret(kind) => self.secret(name, kind, value),
            Show::Nested => Field {
                name: name.into(),
                len: value.len(),
                fields: self.tlvs(value, dictionary),
                ..Field::default()
            },
            Show::With(decode) => Field {
                name: name.into(),
                len: value.len(),
                fields: decode(self, value),
                ..Field::default()
            },
        }
    }

    /// A TLV no dictionary names: constructed ones are opened, universal types explained.
    fn ber(&mut self, t: &Ber<'_>) -> Field {
        if t.constructed {
            let fields = match read_all(t.value) {
                Some(inner) => inner.iter().map(|i| self.ber(i)).collect(),
                None => vec![self.undecoded(t.value)],
            };
            return Field {
                name: universal_name(t.tag).unwrap_or("constructed").into(),
                len: t.value.len(),
                fields,
                ..Field::default()
            }
            .tagged(t.tag);
        }
        let field = self.bytes(universal_name(t.tag).unwrap_or("value"), t.value);
        let field = match t.tag {
            0x01 => field.with_meaning(if t.value == [0] { "false" } else { "true" }),
            0x02 if t.value.len() <= 8 => field.with_meaning(number(t.value).to_string()),
            0x06 => field.with_meaning(oid_name(t.value)),
            0x0C | 0x13 | 0x14 | 0x16 | 0x17 | 0x18 | 0x1A | 0x1E => {
                field.with_meaning(text(t.value))
            }
            _ if printable(t.value) => field.with_meaning(text(t.value)),
            _ => field,
        };
        field.tagged(t.tag)
    }

    /// `data` as generic BER, or one field named `name` when it is not BER.
    pub(super) fn ber_or_bytes(&mut self, name: &str, data: &[u8]) -> Vec<Field> {
        match read_all(data) {
            Some(tlvs) if !tlvs.is_empty() => tlvs.iter().map(|t| self.ber(t)).collect(),
            _ => vec![self.bytes(name, data)],
        }
    }

    /// A CV certificate, CV request or authenticated request (`7F21`, `67`).
    pub(super) fn cv(&mut self, data: &[u8], varies: Option<Varies>) -> Vec<Field> {
        let mut fields = self.tlvs(data, cv_tags);
        if let Some(v) = varies {
            for f in &mut fields {
                mark(f, v, &["5F37", "86", "81", "82"]);
            }
        }
        fields
    }

    /// An FCI (`6F`) or FCP (`62`) template.
    pub(super) fn fcp(&mut self, data: &[u8]) -> Vec<Field> {
        self.tlvs(data, fcp_tags)
    }

    /// The secure messaging objects of a protected command or answer: the cryptogram (under
    /// session keys that never leave the card), Le, the status word and the MAC.
    pub(crate) fn secure_messaging(&mut self, data: &[u8]) -> Vec<Field> {
        self.start(data);
        self.tlvs(data, sm_tags)
    }

    /// A wrapped-key blob: header fields shown, the encrypted body taken out, the MAC last.
    pub(super) fn blob(&mut self, data: &[u8]) -> Vec<Field> {
        let mut fields = Vec::new();
        let mut rest = data;
        let Some((kcv, after)) = rest.split_first_chunk::<8>() else {
            return vec![self.undecoded(data)];
        };
        fields.push(self.bytes("KCV of the key domain's DKEK", kcv));
        rest = after;
        let Some((&kind, after)) = rest.split_first() else {
            return fields;
        };
        fields.push(self.bytes("key type", &[kind]).with_meaning(match kind {
            5 => "RSA",
            6 => "RSA (CRT)",
            12 => "EC",
            15 => "AES",
            _ => "unknown",
        }));
        rest = after;
        for name in [
            "default algorithm",
            "allowed algorithms",
            "access conditions",
            "key OID",
        ] {
            let Some((len, after)) = rest.split_first_chunk::<2>() else {
                fields.push(self.undecoded(rest));
                return fields;
            };
            let len = usize::from(u16::from_be_bytes(*len));
            if after.len() < len {
                fields.push(self.undecoded(rest));
                return fields;
            }
            let (value, after) = after.split_at(len);
            let field = match name {
                "default algorithm" | "key OID" => {
                    self.bytes(name, value).with_meaning(oid_name(value))
                }
                "allowed algorithms" => self.bytes(name, value).with_meaning(algorithm_list(value)),
                _ => self.bytes(name, value),
            };
            fields.push(field);
            rest = after;
        }
        if rest.len() < 16 {
            fields.push(self.undecoded(rest));
            return fields;
        }
        let (body, mac) = rest.split_at(rest.len() - 16);
        fields.push(self.secret(
            "encrypted key (AES-256-CBC)",
            SecretKind::WrappedKeyBody,
            body,
        ));
        fields.push(self.bytes("MAC (AES-CMAC)", mac).varying(Varies::Random));
        fields
    }
}

fn sm_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    Some(match tag {
        0x87 => (
            "padding indicator and cryptogram",
            Show::Bytes,
            Some(Varies::Random),
        ),
        0x85 => ("cryptogram", Show::Bytes, Some(Varies::Random)),
        0x81 => ("plain data", Show::Bytes, None),
        0x97 => ("Le", Show::Number, None),
        0x99 => ("status word", Show::Bytes, None),
        0x8E => ("MAC", Show::Bytes, Some(Varies::Random)),
        _ => return None,
    })
}

/// Marks the fields with one of `tags` anywhere in `field`'s tree as varying.
fn mark(field: &mut Field, varies: Varies, tags: &[&str]) {
    if field.tag.as_deref().is_some_and(|t| tags.contains(&t)) && field.fields.is_empty() {
        field.varies = Some(varies);
    }
    for f in &mut field.fields {
        mark(f, varies, tags);
    }
}

/// Tags of CV certificates and requests (BSI TR-03110).
pub(super) fn cv_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    Some(match tag {
        0x67 => ("authenticated request", Show::Nested, None),
        0x7F21 => ("CV certificate", Show::Nested, None),
        0x7F4E => ("certificate body", Show::Nested, None),
        0x5F29 => ("profile identifier", Show::Number, None),
        0x42 => ("certification authority reference (CAR)", Show::Text, None),
        0x7F49 => ("public key", Show::With(public_key), None),
        0x5F20 => ("certificate holder reference (CHR)", Show::Text, None),
        0x7F4C => ("certificate holder authorisation", Show::Nested, None),
        0x06 => ("object identifier", Show::Oid, None),
        0x53 => ("discretionary data", Show::Bytes, None),
        0x5F25 => ("effective date", Show::Date, None),
        0x5F24 => ("expiration date", Show::Date, None),
        0x65 => ("extensions", Show::Nested, None),
        0x73 => ("discretionary data template", Show::Nested, None),
        0x5F37 => ("signature", Show::Bytes, Some(Varies::Random)),
        _ => return None,
    })
}

/// The `7F49` template: the algorithm OID says what `81`-`87` are.
fn public_key(d: &mut Dissector<'_>, value: &[u8]) -> Vec<Field> {
    let rsa = read_all(value)
        .and_then(|t| t.into_iter().find(|t| t.tag == 0x06).map(|t| t.value))
        .and_then(TaAlgorithm::from_oid)
        .is_some_and(|a| !matches!(a, TaAlgorithm::Ecdsa(_)));
    let mut fields = d.tlvs(value, if rsa { rsa_key_tags } else { ec_key_tags });
    if !rsa {
        let find = |tag: &str| {
            fields
                .iter()
                .find(|f| f.tag.as_deref() == Some(tag))
                .and_then(|f| f.hex.as_deref())
                .and_then(crate::hex::decode)
        };
        if let (Some(p), Some(a), Some(b), Some(g), Some(n)) =
            (find("81"), find("82"), find("83"), find("84"), find("85"))
        {
            if let Some(curve) = Curve::from_domain(&p, &a, &b, &g, &n, None) {
                fields.insert(
                    0,
                    Field {
                        name: "curve".into(),
                        meaning: Some(curve.openssl_name().into()),
                        ..Field::default()
                    },
                );
            }
        }
    }
    fields
}

fn rsa_key_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    Some(match tag {
        0x06 => ("algorithm", Show::Oid, None),
        0x81 => ("modulus", Show::Bytes, None),
        0x82 => ("public exponent", Show::Bytes, None),
        0x02 => ("key size in bits", Show::Number, None),
        _ => return None,
    })
}

fn ec_key_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    Some(match tag {
        0x06 => ("algorithm", Show::Oid, None),
        0x81 => ("prime p", Show::Bytes, None),
        0x82 => ("coefficient a", Show::Bytes, None),
        0x83 => ("coefficient b", Show::Bytes, None),
        0x84 => ("base point G", Show::Bytes, None),
        0x85 => ("order n", Show::Bytes, None),
        0x86 => ("public point", Show::Bytes, None),
        0x87 => ("cofactor", Show::Number, None),
        _ => return None,
    })
}

/// Tags of FCI/FCP templates and the key information `A5`.
fn fcp_tags(tag: u32) -> Option<(&'static str, Show, Option<Varies>)> {
    Some(match tag {
        0x62 => ("FCP template", Show::Nested, None),
        0x6F => ("FCI template", Show::Nested, None),
        0x80 => ("file size", Show::Number, Some(Varies::Contents)),
        0x82 => ("file descriptor", Show::With(descriptor), None),
        0x83 => ("file identifier", Show::With(fid_field), None),
        0x84 => ("application name", Show::Bytes, None),
        0x85 => (
            "options, card type and version",
            Show::With(proprietary),
            None,
        ),
        0xA5 => ("key information", Show::Nested, None),
        0x90 => ("use counter", Show::Number, Some(Varies::Contents)),
        0x91 => ("allowed algorithms", Show::With(algorithms_field), None),
        0x92 => ("key domain", Show::Number, None),
        _ => return None,
    })
}

fn descriptor(d: &mut Dissector<'_>, value: &[u8]) -> Vec<Field> {
    let meaning = match value {
        [0x01, ..] => "working EF, transparent",
        [0x38, ..] => "DF",
        [0x78, ..] => "DF, shareable",
        _ => "other",
    };
    vec![d.bytes("descriptor byte", value).with_meaning(meaning)]
}

fn fid_field(d: &mut Dissector<'_>, value: &[u8]) -> Vec<Field> {
    match <[u8; 2]>::try_from(value) {
        Ok(fid) => vec![d
            .bytes("FID", value)
            .with_meaning(fid_name(u16::from_be_bytes(fid)))],
        Err(_) => vec![d.undecoded(value)],
    }
}

/// Tag `85` of the application's FCI: options (2), card type, version major and minor.
fn proprietary(d: &mut Dissector<'_>, value: &[u8]) -> Vec<Field> {
    match value {
        [hi, lo, kind, major, minor] => vec![
            d.bytes("options", &[*hi, *lo])
                .with_meaning(options(u16::from_be_bytes([*hi, *lo]))),
            d.bytes("card type", &[*kind]),
            d.bytes("version", &[*major, *minor])
                .with_meaning(format!("{major}.{minor}")),
        ],
        [major, minor] => vec![d
            .bytes("version", value)
            .with_meaning(format!("{major}.{minor}"))],
        _ => vec![d.undecoded(value)],
    }
}

fn algorithms_field(d: &mut Dissector<'_>, value: &[u8]) -> Vec<Field> {
    vec![d
        .bytes("algorithm identifiers", value)
        .with_meaning(algorithm_list(value))]
}
