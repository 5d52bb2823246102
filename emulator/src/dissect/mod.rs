//! The card's data, decoded for people: every data field of a command or an answer named by
//! the structure its instruction gives it (BER-TLV trees, CV certificates and requests, FCI/FCP,
//! key information, key domain and public-key authentication status, INITIALIZE's options,
//! wrapped-key blobs), with the secrets taken out by field.
//!
//! Taken out, wherever they occur: PIN and SO-PIN values, session PINs, DKEK shares, the
//! results of deciphering (session keys, shared secrets, derived keys), derivation scalars and
//! the encrypted body of a wrapped key. A field taken out keeps its name, its length and a
//! number that tells equal values apart within one trace ([`SecretBook`]); its bytes never
//! reach a [`Field`], nor the hex form of an APDU ([`Dissector::show`]), where it stands as
//! `[kind#n:length]`.
//!
//! Fields whose value is new each time (signatures, challenges, generated public keys) or
//! depends on what the card holds (serial numbers, file sizes, counters) say so ([`Varies`]):
//! `trace replay` compares them by shape only ([`compare`]).
//!
//! Decoding is lenient: it never fails and never panics; what does not parse is shown as
//! bytes named `undecoded`, which the tests of the flows look for.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::applet::command::Ins;

mod command;
pub mod compare;
mod names;
mod response;
mod structures;

pub use command::Context;

/// What kind of secret a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    UserPin,
    SoPin,
    SessionPin,
    DkekShare,
    /// Raw key material: a derivation scalar, a derived key, a shared secret.
    KeyMaterial,
    /// What a key deciphered (a session key, as a rule).
    DecryptedData,
    /// The encrypted part of a wrapped-key blob.
    WrappedKeyBody,
    /// Data the card did not decode (a malformed APDU, a chain broken off): never shown.
    Withheld,
}

impl SecretKind {
    pub const ALL: [SecretKind; 8] = [
        SecretKind::UserPin,
        SecretKind::SoPin,
        SecretKind::SessionPin,
        SecretKind::DkekShare,
        SecretKind::KeyMaterial,
        SecretKind::DecryptedData,
        SecretKind::WrappedKeyBody,
        SecretKind::Withheld,
    ];

    /// The short name placeholders and `trace replay --secret` use.
    pub fn id(self) -> &'static str {
        match self {
            SecretKind::UserPin => "user-pin",
            SecretKind::SoPin => "so-pin",
            SecretKind::SessionPin => "session-pin",
            SecretKind::DkekShare => "dkek-share",
            SecretKind::KeyMaterial => "key-material",
            SecretKind::DecryptedData => "decrypted-data",
            SecretKind::WrappedKeyBody => "wrapped-key-body",
            SecretKind::Withheld => "withheld",
        }
    }

    pub fn from_id(id: &str) -> Option<SecretKind> {
        SecretKind::ALL.into_iter().find(|k| k.id() == id)
    }

    /// In words.
    pub fn label(self) -> &'static str {
        match self {
            SecretKind::UserPin => "user PIN",
            SecretKind::SoPin => "SO-PIN",
            SecretKind::SessionPin => "session PIN",
            SecretKind::DkekShare => "DKEK share",
            SecretKind::KeyMaterial => "key material",
            SecretKind::DecryptedData => "deciphered data",
            SecretKind::WrappedKeyBody => "encrypted key body",
            SecretKind::Withheld => "data not decoded",
        }
    }
}

/// A field taken out: its kind and which value of that kind it was (1 for the first value a
/// trace met, 2 for the next different one...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub kind: SecretKind,
    pub n: u32,
}

/// Why a field's value may differ between two cards answering the same command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Varies {
    /// New each time: a signature, a challenge, a nonce, a generated key.
    Random,
    /// What the card holds: its serial, keys, files, counters.
    Contents,
}

/// One decoded field: a TLV, a fixed part of a structure, or a value taken out.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    /// The tag of a TLV, in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Length of the value in bytes.
    pub len: usize,
    /// The value in hex, for a field without parts that is not taken out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// What the value means (a curve, a date, a count, printable text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub varies: Option<Varies>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
}

impl Field {
    pub fn with_meaning(mut self, meaning: impl Into<String>) -> Field {
        self.meaning = Some(meaning.into());
        self
    }

    pub fn varying(mut self, varies: Varies) -> Field {
        self.varies = Some(varies);
        self
    }

    fn tagged(mut self, tag: u32) -> Field {
        self.tag = Some(tag_hex(tag));
        self
    }

    /// Every field of this tree, depth first.
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a Field>) {
        out.push(self);
        for f in &self.fields {
            f.walk(out);
        }
    }
}

fn tag_hex(tag: u32) -> String {
    if tag > 0xFFFF {
        format!("{tag:06X}")
    } else if tag > 0xFF {
        format!("{tag:04X}")
    } else {
        format!("{tag:02X}")
    }
}

/// The secret values a trace has met, by kind, to number them; kept in memory only and wiped
/// when dropped.
#[derive(Default)]
pub struct SecretBook {
    seen: Vec<(SecretKind, Zeroizing<Vec<u8>>)>,
}

impl SecretBook {
    /// The number of `value` among the values of `kind` met so far (a new value gets the next).
    fn number(&mut self, kind: SecretKind, value: &[u8]) -> u32 {
        let mut n = 0;
        for (k, v) in &self.seen {
            if *k == kind {
                n += 1;
                if crate::crypto::constant_time_eq(v, value) {
                    return n;
                }
            }
        }
        self.seen.push((kind, Zeroizing::new(value.to_vec())));
        n + 1
    }
}

/// A range of the dissected bytes that was taken out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hidden {
    pub start: usize,
    pub len: usize,
    pub secret: Secret,
}

/// A dissection: the fields and the ranges taken out of the bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dissection {
    pub fields: Vec<Field>,
    pub hidden: Vec<Hidden>,
}

impl Dissection {
    /// `bytes` (the bytes dissected, or a piece of them starting at `offset`) in hex with
    /// what was taken out standing as `[kind#n:length]`.
    pub fn show(&self, bytes: &[u8], offset: usize) -> String {
        show(bytes, offset, &self.hidden)
    }
}

/// `bytes`, which start at `offset` of the dissected data, in hex with every part of `hidden`
/// standing as `[kind#n:length]`.
pub fn show(bytes: &[u8], offset: usize, hidden: &[Hidden]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let at = offset + i;
        match hidden
            .iter()
            .find(|h| h.start <= at && at < h.start + h.len)
        {
            Some(h) => {
                let end = (h.start + h.len - offset).min(bytes.len());
                out.push(format!(
                    "[{}#{}:{}]",
                    h.secret.kind.id(),
                    h.secret.n,
                    end - i
                ));
                i = end;
            }
            None => {
                out.push(format!("{:02X}", bytes[i]));
                i += 1;
            }
        }
    }
    out.join(" ")
}

/// One element of an APDU's hex form: a byte, or bytes taken out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shown {
    Byte(u8),
    Hidden {
        kind: SecretKind,
        n: u32,
        len: usize,
    },
}

/// Reads the hex form [`show`] writes; `None` for anything else.
pub fn read_shown(text: &str) -> Option<Vec<Shown>> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        if let Some(inner) = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let (name, len) = inner.split_once(':')?;
            let (kind, n) = name.split_once('#')?;
            out.push(Shown::Hidden {
                kind: SecretKind::from_id(kind)?,
                n: n.parse().ok()?,
                len: len.parse().ok()?,
            });
        } else if token.len() == 2 {
            out.push(Shown::Byte(u8::from_str_radix(token, 16).ok()?));
        } else {
            return None;
        }
    }
    Some(out)
}

/// Decodes the data of commands and answers, numbering the secrets it takes out in `book`.
pub struct Dissector<'b> {
    book: &'b mut SecretBook,
    /// Where the bytes being dissected start in memory, and how many there are: a field's
    /// offset is its distance from here.
    base: usize,
    base_len: usize,
    hidden: Vec<Hidden>,
}

impl<'b> Dissector<'b> {
    pub fn new(book: &'b mut SecretBook) -> Dissector<'b> {
        Dissector {
            book,
            base: 0,
            base_len: 0,
            hidden: Vec::new(),
        }
    }

    /// The data of command `header` ‖ `data`.
    pub fn command(&mut self, header: [u8; 4], data: &[u8], context: &Context) -> Dissection {
        self.start(data);
        let fields = match self.instruction(header, data) {
            Ok((ins, p1p2)) => command::fields(self, ins, p1p2, data, context),
            Err(fields) => fields,
        };
        self.finish(fields)
    }

    /// The data of the answer `data` to command `header` ‖ `command_data`.
    pub fn response(&mut self, header: [u8; 4], command_data: &[u8], data: &[u8]) -> Dissection {
        self.start(data);
        let fields = match self.instruction(header, data) {
            Ok((ins, p1p2)) => response::fields(self, ins, p1p2, command_data, data),
            Err(fields) => fields,
        };
        self.finish(fields)
    }

    /// The instruction and P1-P2 whose decoder reads `data`; or the fields without one: none
    /// for no data, `undecoded` for an instruction the card does not have.
    fn instruction(&self, header: [u8; 4], data: &[u8]) -> Result<(Ins, [u8; 2]), Vec<Field>> {
        let [_, ins, p1, p2] = header;
        if data.is_empty() {
            return Err(Vec::new());
        }
        Ins::from_code(ins)
            .map(|ins| (ins, [p1, p2]))
            .ok_or_else(|| vec![self.undecoded(data)])
    }

    fn start(&mut self, data: &[u8]) {
        self.base = data.as_ptr() as usize;
        self.base_len = data.len();
        self.hidden.clear();
    }

    fn finish(&mut self, fields: Vec<Field>) -> Dissection {
        Dissection {
            fields,
            hidden: std::mem::take(&mut self.hidden),
        }
    }

    /// A field with the bytes of `value` in hex.
    fn bytes(&self, name: &str, value: &[u8]) -> Field {
        Field {
            name: name.into(),
            len: value.len(),
            hex: Some(crate::hex::encode(value)),
            ..Field::default()
        }
    }

    /// A one-byte count: its byte, and its value in decimal as the meaning.
    fn count(&self, name: &str, n: &u8) -> Field {
        self.bytes(name, std::slice::from_ref(n))
            .with_meaning(n.to_string())
    }

    /// A field with `value` taken out.
    fn secret(&mut self, name: &str, kind: SecretKind, value: &[u8]) -> Field {
        let secret = Secret {
            kind,
            n: self.book.number(kind, value),
        };
        let start = (value.as_ptr() as usize).wrapping_sub(self.base);
        if start <= self.base_len && start + value.len() <= self.base_len {
            self.hidden.push(Hidden {
                start,
                len: value.len(),
                secret,
            });
        } else if !value.is_empty() {
            // Every secret is a slice of the bytes dissected; if one were not, its place in
            // the hex form would be unknown: hide everything rather than show it.
            self.hidden.push(Hidden {
                start: 0,
                len: self.base_len,
                secret,
            });
        }
        Field {
            name: name.into(),
            len: value.len(),
            secret: Some(secret),
            meaning: Some(format!("taken out: {} #{}", kind.label(), secret.n)),
            ..Field::default()
        }
    }

    /// `data` withheld whole: the ranges to hide it in its hex form.
    pub fn withhold(&mut self, data: &[u8]) -> Vec<Hidden> {
        self.start(data);
        self.secret("not decoded", SecretKind::Withheld, data);
        std::mem::take(&mut self.hidden)
    }

    /// Bytes the decoder could not place.
    fn undecoded(&self, value: &[u8]) -> Field {
        self.bytes(UNDECODED, value)
    }
}

/// The name of bytes no decoder could place.
pub const UNDECODED: &str = "undecoded";
