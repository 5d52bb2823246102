//! Card-verifiable certificates (BSI TR-03110) as the SmartCard-HSM uses them: the device
//! certificate chain in `2F02`, the authenticated CV requests GENERATE and UNWRAP answer, and
//! the GENERATE request templates hosts send.

use crate::apdu::tlv;
use crate::crypto::ec::{Curve, Domain};
use crate::crypto::hash::Hash;

/// id-TA-RSA-v1-5-SHA-256 (0.4.0.127.0.7.2.2.2.1.2).
pub const OID_TA_RSA_V15_SHA256: &[u8] =
    &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x01, 0x02];
/// id-TA-ECDSA-SHA-256 (0.4.0.127.0.7.2.2.2.2.3).
pub const OID_TA_ECDSA_SHA256: &[u8] =
    &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x02, 0x03];
/// The SmartCard-HSM's CHAT object identifier (1.3.6.1.4.1.24991.3.1.1).
pub const OID_SC_HSM_CHAT: &[u8] = &[
    0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x03, 0x01, 0x01,
];

/// Tags of the CV certificate structure.
pub mod tag {
    pub const CERTIFICATE: u16 = 0x7F21;
    pub const BODY: u16 = 0x7F4E;
    pub const PROFILE: u16 = 0x5F29;
    pub const CAR: u16 = 0x42;
    pub const PUBLIC_KEY: u16 = 0x7F49;
    pub const CHR: u16 = 0x5F20;
    pub const CHAT: u16 = 0x7F4C;
    pub const EFFECTIVE: u16 = 0x5F25;
    pub const EXPIRY: u16 = 0x5F24;
    pub const SIGNATURE: u16 = 0x5F37;
}

/// The `7F49` public key of an EC key: OID, optionally the domain parameters, and the point.
pub fn ec_public_key(oid: &[u8], point: &[u8], domain: Option<&Domain>) -> Vec<u8> {
    let mut inner = tlv::encode(0x06, oid);
    // The point (86) goes between the order (85) and the cofactor (87).
    let (before_point, cofactor) = match domain.map(Domain::tagged) {
        Some([prime, a, b, generator, order, cofactor]) => {
            (vec![prime, a, b, generator, order], Some(cofactor))
        }
        None => (Vec::new(), None),
    };
    for (tag, value) in before_point {
        tlv::write(&mut inner, tag, value);
    }
    tlv::write(&mut inner, 0x86, point);
    if let Some((tag, value)) = cofactor {
        tlv::write(&mut inner, tag, value);
    }
    tlv::encode(tag::PUBLIC_KEY, &inner)
}

/// The `7F49` public key of an RSA key: OID, modulus, public exponent.
pub fn rsa_public_key(oid: &[u8], modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut inner = tlv::encode(0x06, oid);
    tlv::write(&mut inner, 0x81, modulus);
    tlv::write(&mut inner, 0x82, exponent);
    tlv::encode(tag::PUBLIC_KEY, &inner)
}

/// The signature algorithm a TR-03110 terminal-authentication OID names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaAlgorithm {
    RsaPkcs1(Hash),
    RsaPss(Hash),
    Ecdsa(Hash),
}

impl TaAlgorithm {
    /// Decodes `04 00 7F 00 07 02 02 02 <family> <variant>`.
    pub fn from_oid(oid: &[u8]) -> Option<TaAlgorithm> {
        let [0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, family, variant] = oid else {
            return None;
        };
        match (family, variant) {
            (1, 1) => Some(TaAlgorithm::RsaPkcs1(Hash::Sha1)),
            (1, 2) => Some(TaAlgorithm::RsaPkcs1(Hash::Sha256)),
            (1, 3) => Some(TaAlgorithm::RsaPss(Hash::Sha1)),
            (1, 4) => Some(TaAlgorithm::RsaPss(Hash::Sha256)),
            (1, 5) => Some(TaAlgorithm::RsaPkcs1(Hash::Sha512)),
            (1, 6) => Some(TaAlgorithm::RsaPss(Hash::Sha512)),
            (2, n @ 1..=5) => Hash::from_nibble(*n).map(TaAlgorithm::Ecdsa),
            _ => None,
        }
    }
}

/// The `7F49` template of a GENERATE request for an RSA key of `bits` bits (e = 65537).
pub fn rsa_key_template(bits: u16) -> Vec<u8> {
    let mut inner = tlv::encode(0x06, OID_TA_RSA_V15_SHA256);
    tlv::write(&mut inner, 0x82, &[0x01, 0x00, 0x01]);
    tlv::write(&mut inner, 0x02, &bits.to_be_bytes());
    tlv::encode(tag::PUBLIC_KEY, &inner)
}

/// The `7F49` template of a GENERATE request for an EC key: explicit domain parameters, as
/// OpenSC sends them.
pub fn ec_key_template(curve: Curve) -> Vec<u8> {
    let mut inner = tlv::encode(0x06, OID_TA_ECDSA_SHA256);
    for (tag, value) in curve.domain().tagged() {
        tlv::write(&mut inner, tag, value);
    }
    tlv::encode(tag::PUBLIC_KEY, &inner)
}

/// The data of a GENERATE request as OpenSC sends it: profile, CAR, key template, CHR.
pub fn generate_request(car: &[u8], key_template: &[u8], chr: &[u8]) -> Vec<u8> {
    let mut out = tlv::encode(tag::PROFILE, &[0x00]);
    tlv::write(&mut out, tag::CAR, car);
    out.extend_from_slice(key_template);
    tlv::write(&mut out, tag::CHR, chr);
    out
}

/// The fields of a CV certificate request body (`7F4E`) as GENERATE echoes them.
pub struct RequestBody<'a> {
    pub profile: &'a [u8],
    pub car: Option<&'a [u8]>,
    /// The complete `7F49` TLV.
    pub public_key: &'a [u8],
    pub chr: &'a [u8],
}

impl RequestBody<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut inner = tlv::encode(tag::PROFILE, self.profile);
        if let Some(car) = self.car {
            tlv::write(&mut inner, tag::CAR, car);
        }
        inner.extend_from_slice(self.public_key);
        tlv::write(&mut inner, tag::CHR, self.chr);
        tlv::encode(tag::BODY, &inner)
    }
}

/// An authenticated request `67 { 7F21 { body, 5F37 inner }, 42 outer CAR, 5F37 outer }`; the
/// outer signature covers the `7F21` TLV followed by the `42` TLV.
pub fn authenticated_request<E>(
    body_tlv: &[u8],
    inner_signature: &[u8],
    outer_car: &[u8],
    outer_sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    let mut signed = certificate(body_tlv, inner_signature);
    tlv::write(&mut signed, tag::CAR, outer_car);
    let outer = outer_sign(&signed)?;
    tlv::write(&mut signed, tag::SIGNATURE, &outer);
    Ok(tlv::encode(0x67, &signed))
}

/// The certificate body fields this card issues.
pub struct Body<'a> {
    pub car: &'a str,
    /// The complete `7F49` TLV.
    pub public_key: &'a [u8],
    pub chr: &'a str,
    /// CHAT role byte (`C0` root, `80` device issuer, `00` device).
    pub role: u8,
    pub effective: [u8; 6],
    pub expiry: [u8; 6],
}

impl Body<'_> {
    /// The `7F4E` TLV.
    pub fn encode(&self) -> Vec<u8> {
        let mut inner = tlv::encode(tag::PROFILE, &[0x00]);
        tlv::write(&mut inner, tag::CAR, self.car.as_bytes());
        inner.extend_from_slice(self.public_key);
        tlv::write(&mut inner, tag::CHR, self.chr.as_bytes());
        let mut chat = tlv::encode(0x06, OID_SC_HSM_CHAT);
        tlv::write(&mut chat, 0x53, &[self.role]);
        tlv::write(&mut inner, tag::CHAT, &chat);
        tlv::write(&mut inner, tag::EFFECTIVE, &self.effective);
        tlv::write(&mut inner, tag::EXPIRY, &self.expiry);
        tlv::encode(tag::BODY, &inner)
    }
}

/// A complete certificate `7F21 { body, 5F37 signature }`.
pub fn certificate(body_tlv: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut inner = body_tlv.to_vec();
    tlv::write(&mut inner, tag::SIGNATURE, signature);
    tlv::encode(tag::CERTIFICATE, &inner)
}

/// The fields of a decoded CV certificate that the card and its tests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub body: &'a [u8],
    pub car: &'a [u8],
    pub chr: &'a [u8],
    pub public_key: &'a [u8],
    pub signature: &'a [u8],
}

/// Decodes one `7F21` certificate at the start of `input`; returns it and what follows.
pub fn decode(input: &[u8]) -> Option<(Decoded<'_>, &[u8])> {
    let (cert, rest) = tlv::read(input)?;
    if cert.tag != tag::CERTIFICATE {
        return None;
    }
    let (body, after_body) = tlv::read(cert.value)?;
    if body.tag != tag::BODY {
        return None;
    }
    let signature = tlv::find(after_body, tag::SIGNATURE)?;
    let body_tlv = &cert.value[..cert.value.len() - after_body.len()];
    Some((
        Decoded {
            body: body_tlv,
            // A request's body may name no CAR.
            car: tlv::find(body.value, tag::CAR).unwrap_or_default(),
            chr: tlv::find(body.value, tag::CHR)?,
            public_key: tlv::find(body.value, tag::PUBLIC_KEY)?,
            signature,
        },
        rest,
    ))
}

/// The `7F49` content of an authenticated CV request (`67 { 7F21 { 7F4E { .. 7F49 .. } } }`).
pub fn decode_request_public_key(request: &[u8]) -> Option<Vec<u8>> {
    let (outer, _) = tlv::read(request)?;
    let (certificate, _) = tlv::read(outer.value)?;
    let (body, _) = tlv::read(certificate.value)?;
    tlv::find(body.value, tag::PUBLIC_KEY).map(<[u8]>::to_vec)
}

/// A public key as a CV certificate or request carries it, with the algorithm it signs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CvKey {
    pub algorithm: TaAlgorithm,
    pub key: PublicKey,
}

/// The key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    Ec { curve: Curve, point: Vec<u8> },
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
}

impl CvKey {
    /// Reads the content of a `7F49`. An EC key without domain parameters (certificates below
    /// the root carry none) is on `inherited`, its issuer's curve.
    pub fn parse(content: &[u8], inherited: Option<Curve>) -> Option<CvKey> {
        let algorithm = TaAlgorithm::from_oid(tlv::find(content, 0x06)?)?;
        let key = match algorithm {
            TaAlgorithm::Ecdsa(_) => {
                let point = tlv::find(content, 0x86)?.to_vec();
                let field = |t| tlv::find(content, t);
                let curve = match (
                    field(0x81),
                    field(0x82),
                    field(0x83),
                    field(0x84),
                    field(0x85),
                ) {
                    (Some(p), Some(a), Some(b), Some(g), Some(n)) => {
                        Curve::from_domain(p, a, b, g, n, field(0x87))?
                    }
                    (None, None, None, None, None) => inherited?,
                    _ => return None,
                };
                if point.len() != 1 + 2 * curve.field_len() || point[0] != 0x04 {
                    return None;
                }
                PublicKey::Ec { curve, point }
            }
            TaAlgorithm::RsaPkcs1(_) | TaAlgorithm::RsaPss(_) => PublicKey::Rsa {
                modulus: tlv::find(content, 0x81)?.to_vec(),
                exponent: tlv::find(content, 0x82)?.to_vec(),
            },
        };
        Some(CvKey { algorithm, key })
    }

    /// The curve of an EC key (what the certificates it signs inherit).
    pub fn curve(&self) -> Option<Curve> {
        match self.key {
            PublicKey::Ec { curve, .. } => Some(curve),
            PublicKey::Rsa { .. } => None,
        }
    }

    /// Whether `signature` is this key's signature over `message`: ECDSA as plain `r ‖ s`,
    /// RSA PKCS#1 v1.5 or PSS with the hash of the key's algorithm.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match (&self.key, self.algorithm) {
            (PublicKey::Ec { curve, point }, TaAlgorithm::Ecdsa(hash)) => {
                let len = curve.order_len();
                if signature.len() != 2 * len {
                    return false;
                }
                let (r, s) = signature.split_at(len);
                curve.verify_prehash(point, &hash.digest(message), r, s)
            }
            (PublicKey::Rsa { modulus, exponent }, algorithm) => {
                crate::crypto::rsa::verifies(modulus, exponent, algorithm, message, signature)
            }
            (PublicKey::Ec { .. }, _) => false,
        }
    }
}

/// The CHAT role byte of a certificate body (`C0` root, `80` issuer, `00` device); `None`
/// without a CHAT.
pub fn role(body_tlv: &[u8]) -> Option<u8> {
    let (body, _) = tlv::read(body_tlv)?;
    let chat = tlv::find(body.value, tag::CHAT)?;
    tlv::find(chat, 0x53)?.first().copied()
}

/// The parts of an authenticated request `67 { 7F21 { body, 5F37 inner }, 42 outer CAR,
/// 5F37 outer }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedRequest<'a> {
    /// The inner (self-signed) request.
    pub inner: Decoded<'a>,
    pub outer_car: &'a [u8],
    /// What the outer signature covers: the `7F21` TLV followed by the `42` TLV.
    pub outer_signed: &'a [u8],
    pub outer_signature: &'a [u8],
}

/// Decodes one authenticated request (nothing may follow it).
pub fn decode_authenticated_request(input: &[u8]) -> Option<AuthenticatedRequest<'_>> {
    let (outer, []) = tlv::read(input)? else {
        return None;
    };
    if outer.tag != 0x67 {
        return None;
    }
    let (inner, after_inner) = decode(outer.value)?;
    let (car, after_car) = tlv::read(after_inner)?;
    let (signature, []) = tlv::read(after_car)? else {
        return None;
    };
    if car.tag != tag::CAR || signature.tag != tag::SIGNATURE {
        return None;
    }
    Some(AuthenticatedRequest {
        inner,
        outer_car: car.value,
        outer_signed: &outer.value[..outer.value.len() - after_car.len()],
        outer_signature: signature.value,
    })
}

/// A date as CV certificates carry it: `YYMMDD`, one decimal digit per byte.
pub fn date_digits(year: u32, month: u32, day: u32) -> [u8; 6] {
    let y = year % 100;
    [
        (y / 10) as u8,
        (y % 10) as u8,
        (month / 10) as u8,
        (month % 10) as u8,
        (day / 10) as u8,
        (day % 10) as u8,
    ]
}

/// Today's civil date (UTC) from the system clock.
pub fn today() -> (u32, u32, u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil_from_days((secs / 86_400) as i64)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as u32, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_419), (2025, 11, 27));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(date_digits(2026, 11, 27), [2, 6, 1, 1, 2, 7]);
    }

    #[test]
    fn decodes_the_real_device_chain() {
        let chain = include_bytes!(
            "../../../fixtures/real-card/nitrokey-hsm2-DENK0404144-fw4.1-EF2F02.bin"
        );
        let (device, rest) = decode(chain).unwrap();
        assert_eq!(device.chr, b"DENK040414400000");
        assert_eq!(device.car, b"DEDINK0400001");
        let (issuer, rest) = decode(rest).unwrap();
        assert_eq!(issuer.chr, b"DEDINK0400001");
        assert_eq!(issuer.car, b"DESRCACC100001");
        assert!(rest.is_empty());
    }
}
