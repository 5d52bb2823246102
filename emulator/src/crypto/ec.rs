//! Elliptic-curve operations of the card: key generation, public points,
//! ECDSA over raw hashes and ECDH, for the twelve supported named curves.
//!
//! NIST P-192/256/384/521, secp256k1 and brainpoolP256r1/P384r1 come from
//! RustCrypto crates; the other five are defined in `ec/custom.rs`.

mod custom;
mod ops;
mod params;
#[cfg(test)]
mod tests;

use zeroize::Zeroizing;

/// Named curves supported by the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    Secp192r1,
    Secp256r1,
    Secp384r1,
    Secp521r1,
    Secp192k1,
    Secp256k1,
    BrainpoolP192r1,
    BrainpoolP224r1,
    BrainpoolP256r1,
    BrainpoolP320r1,
    BrainpoolP384r1,
    BrainpoolP512r1,
}

/// Invalid scalar, point or input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcError;

impl core::fmt::Display for EcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("invalid elliptic-curve input")
    }
}

impl std::error::Error for EcError {}

/// Explicit domain parameters, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain {
    pub prime: &'static [u8],
    pub a: &'static [u8],
    pub b: &'static [u8],
    /// Uncompressed base point 04||X||Y.
    pub generator: &'static [u8],
    pub order: &'static [u8],
    pub cofactor: &'static [u8],
}

impl Domain {
    /// The parameters with the tags of a CV public key (`7F49`): prime `81`, a `82`, b `83`,
    /// generator `84`, order `85`, cofactor `87`.
    pub fn tagged(&self) -> [(u16, &'static [u8]); 6] {
        [
            (0x81, self.prime),
            (0x82, self.a),
            (0x83, self.b),
            (0x84, self.generator),
            (0x85, self.order),
            (0x87, self.cofactor),
        ]
    }
}

/// Run a generic function of [`ops`] with the curve type matching `$curve`.
macro_rules! with_curve {
    ($curve:expr, $func:ident($($arg:expr),* $(,)?)) => {
        match $curve {
            Curve::Secp192r1 => ops::$func::<p192::NistP192>($($arg),*),
            Curve::Secp256r1 => ops::$func::<p256::NistP256>($($arg),*),
            Curve::Secp384r1 => ops::$func::<p384::NistP384>($($arg),*),
            Curve::Secp521r1 => ops::$func::<p521::NistP521>($($arg),*),
            Curve::Secp192k1 => ops::$func::<custom::Secp192k1>($($arg),*),
            Curve::Secp256k1 => ops::$func::<k256::Secp256k1>($($arg),*),
            Curve::BrainpoolP192r1 => ops::$func::<custom::BrainpoolP192r1>($($arg),*),
            Curve::BrainpoolP224r1 => ops::$func::<custom::BrainpoolP224r1>($($arg),*),
            Curve::BrainpoolP256r1 => ops::$func::<bp256::r1::BrainpoolP256r1>($($arg),*),
            Curve::BrainpoolP320r1 => ops::$func::<custom::BrainpoolP320r1>($($arg),*),
            Curve::BrainpoolP384r1 => ops::$func::<bp384::r1::BrainpoolP384r1>($($arg),*),
            Curve::BrainpoolP512r1 => ops::$func::<custom::BrainpoolP512r1>($($arg),*),
        }
    };
}

impl Curve {
    pub const ALL: [Curve; 12] = [
        Curve::Secp192r1,
        Curve::Secp256r1,
        Curve::Secp384r1,
        Curve::Secp521r1,
        Curve::Secp192k1,
        Curve::Secp256k1,
        Curve::BrainpoolP192r1,
        Curve::BrainpoolP224r1,
        Curve::BrainpoolP256r1,
        Curve::BrainpoolP320r1,
        Curve::BrainpoolP384r1,
        Curve::BrainpoolP512r1,
    ];

    /// Curve name as used by OpenSSL.
    pub fn openssl_name(self) -> &'static str {
        match self {
            Curve::Secp192r1 => "prime192v1",
            Curve::Secp256r1 => "prime256v1",
            Curve::Secp384r1 => "secp384r1",
            Curve::Secp521r1 => "secp521r1",
            Curve::Secp192k1 => "secp192k1",
            Curve::Secp256k1 => "secp256k1",
            Curve::BrainpoolP192r1 => "brainpoolP192r1",
            Curve::BrainpoolP224r1 => "brainpoolP224r1",
            Curve::BrainpoolP256r1 => "brainpoolP256r1",
            Curve::BrainpoolP320r1 => "brainpoolP320r1",
            Curve::BrainpoolP384r1 => "brainpoolP384r1",
            Curve::BrainpoolP512r1 => "brainpoolP512r1",
        }
    }

    /// DER content bytes (without tag and length) of the named-curve OID.
    pub fn oid(self) -> &'static [u8] {
        match self {
            Curve::Secp192r1 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x01],
            Curve::Secp256r1 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            Curve::Secp384r1 => &[0x2b, 0x81, 0x04, 0x00, 0x22],
            Curve::Secp521r1 => &[0x2b, 0x81, 0x04, 0x00, 0x23],
            Curve::Secp192k1 => &[0x2b, 0x81, 0x04, 0x00, 0x1f],
            Curve::Secp256k1 => &[0x2b, 0x81, 0x04, 0x00, 0x0a],
            Curve::BrainpoolP192r1 => &[0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x03],
            Curve::BrainpoolP224r1 => &[0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x05],
            Curve::BrainpoolP256r1 => &[0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07],
            Curve::BrainpoolP320r1 => &[0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x09],
            Curve::BrainpoolP384r1 => &[0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0b],
            Curve::BrainpoolP512r1 => &[0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0d],
        }
    }

    /// Bit length of the field prime.
    pub fn field_bits(self) -> usize {
        match self {
            Curve::Secp192r1 | Curve::Secp192k1 | Curve::BrainpoolP192r1 => 192,
            Curve::BrainpoolP224r1 => 224,
            Curve::Secp256r1 | Curve::Secp256k1 | Curve::BrainpoolP256r1 => 256,
            Curve::BrainpoolP320r1 => 320,
            Curve::Secp384r1 | Curve::BrainpoolP384r1 => 384,
            Curve::BrainpoolP512r1 => 512,
            Curve::Secp521r1 => 521,
        }
    }

    /// Byte length of a field element.
    pub fn field_len(self) -> usize {
        self.field_bits().div_ceil(8)
    }

    /// Byte length of the group order n.
    pub fn order_len(self) -> usize {
        self.domain().order.len()
    }

    /// Bit length of the group order n.
    fn order_bits(self) -> usize {
        let order = self.domain().order;
        order.iter().position(|&b| b != 0).map_or(0, |i| {
            (order.len() - i) * 8 - order[i].leading_zeros() as usize
        })
    }

    /// Domain parameters as the card answers them in CV requests: prime, a, b
    /// padded to `field_len`, generator 04||X||Y, order padded to `order_len`,
    /// cofactor `[0x01]`.
    pub fn domain(self) -> Domain {
        params::domain(self)
    }

    /// Recognise a curve from explicit domain parameters (integers compared
    /// without leading zeros; generator as uncompressed point with each
    /// coordinate normalised). An absent cofactor is not compared.
    pub fn from_domain(
        prime: &[u8],
        a: &[u8],
        b: &[u8],
        generator: &[u8],
        order: &[u8],
        cofactor: Option<&[u8]>,
    ) -> Option<Curve> {
        let (gx, gy) = split_point(generator)?;
        Curve::ALL.into_iter().find(|curve| {
            let d = curve.domain();
            let Some((dx, dy)) = split_point(d.generator) else {
                return false;
            };
            int_eq(prime, d.prime)
                && int_eq(a, d.a)
                && int_eq(b, d.b)
                && int_eq(gx, dx)
                && int_eq(gy, dy)
                && int_eq(order, d.order)
                && cofactor.is_none_or(|h| int_eq(h, d.cofactor))
        })
    }

    /// A new private scalar in [1, n-1], `order_len` bytes big-endian.
    pub fn generate(self, rng: &mut dyn crate::crypto::rng::CardRng) -> Zeroizing<Vec<u8>> {
        let order = self.domain().order;
        // Bits of the leading byte beyond the order's bit length are masked off,
        // then candidates outside [1, n-1] are rejected (at most ~50% of draws).
        let excess = order.len() * 8 - self.order_bits();
        let mask = 0xffu8 >> excess;
        let mut candidate = Zeroizing::new(vec![0u8; order.len()]);
        loop {
            rng.fill_bytes(&mut candidate);
            candidate[0] &= mask;
            if candidate.iter().any(|&b| b != 0) && candidate.as_slice() < order {
                return candidate;
            }
        }
    }

    /// d + s mod n, the private scalar of DERIVE EC KEY, `order_len` bytes big-endian; `None`
    /// for inputs longer than the order or a sum of 0. Intermediate values are wiped.
    pub fn add_scalars(self, d: &[u8], s: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        use crypto_bigint::{BoxedUint, NonZero};
        use zeroize::Zeroize;
        let len = self.order_len();
        if d.len() > len || s.len() > len {
            return None;
        }
        // One byte more than the order: room for the sum before its reduction.
        let bits = (len as u32 + 1) * 8;
        let order = BoxedUint::from_be_slice(self.domain().order, bits).ok()?;
        let n = NonZero::new(order).into_option()?;
        let mut values = [
            BoxedUint::from_be_slice(d, bits).ok()?,
            BoxedUint::from_be_slice(s, bits).ok()?,
        ];
        for v in &mut values {
            let mut reduced = v.rem(&n);
            std::mem::swap(v, &mut reduced);
            reduced.zeroize();
        }
        let mut sum = values[0].add_mod(&values[1], &n);
        let bytes = Zeroizing::new(sum.to_be_bytes());
        sum.zeroize();
        values.iter_mut().for_each(Zeroize::zeroize);
        let out = Zeroizing::new(bytes[bytes.len() - len..].to_vec());
        out.iter().any(|b| *b != 0).then_some(out)
    }

    /// Uncompressed public point 04||X||Y of a private scalar.
    pub fn public_point(self, scalar: &[u8]) -> Result<Vec<u8>, EcError> {
        with_curve!(self, public_point(scalar))
    }

    /// ECDSA over a hash of any length (bits2int: a longer hash keeps its
    /// leftmost order-bits, a shorter one is used as an integer). The nonce is
    /// deterministic (RFC 6979). Returns (r, s), each `order_len` bytes.
    pub fn sign_prehash(
        self,
        scalar: &[u8],
        prehash: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), EcError> {
        let z = self.bits2int(prehash).ok_or(EcError)?;
        with_curve!(self, sign(scalar, &z))
    }

    /// Verify an ECDSA signature over a hash (same hash rules as signing).
    pub fn verify_prehash(self, point: &[u8], prehash: &[u8], r: &[u8], s: &[u8]) -> bool {
        let len = self.order_len();
        let (Some(z), Some(r), Some(s)) =
            (self.bits2int(prehash), left_pad(r, len), left_pad(s, len))
        else {
            return false;
        };
        with_curve!(self, verify(point, &z, &r, &s))
    }

    /// ECDH: scalar * peer (uncompressed 04||X||Y, validated on the curve).
    /// Returns the shared point 04||X||Y.
    pub fn ecdh(self, scalar: &[u8], peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, EcError> {
        with_curve!(self, ecdh(scalar, peer_point))
    }

    /// SEC 1 / FIPS 186-4 bits2int of a hash, as `order_len` big-endian bytes.
    /// `None` for an empty hash.
    fn bits2int(self, hash: &[u8]) -> Option<Vec<u8>> {
        if hash.is_empty() {
            return None;
        }
        let (qbits, qlen) = (self.order_bits(), self.order_len());
        let shift = (hash.len() * 8).saturating_sub(qbits);
        let kept = &hash[..hash.len() - shift / 8];
        let bits = shift % 8;
        let mut value = Vec::with_capacity(kept.len());
        let mut previous = 0u8;
        for &byte in kept {
            let window = (u16::from(previous) << 8) | u16::from(byte);
            value.push((window >> bits) as u8);
            previous = byte;
        }
        left_pad(&value, qlen)
    }
}

/// Big-endian integer `value` as exactly `len` bytes; `None` if it does not fit.
fn left_pad(value: &[u8], len: usize) -> Option<Vec<u8>> {
    let value = strip_zeros(value);
    let pad = len.checked_sub(value.len())?;
    let mut out = vec![0u8; pad];
    out.extend_from_slice(value);
    Some(out)
}

fn strip_zeros(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != 0).unwrap_or(value.len());
    &value[start..]
}

/// Equality of two unsigned big-endian integers.
fn int_eq(x: &[u8], y: &[u8]) -> bool {
    strip_zeros(x) == strip_zeros(y)
}

/// Split an uncompressed point 04||X||Y into its coordinates.
fn split_point(point: &[u8]) -> Option<(&[u8], &[u8])> {
    match point.split_first() {
        Some((0x04, coordinates)) if !coordinates.is_empty() && coordinates.len() % 2 == 0 => {
            Some(coordinates.split_at(coordinates.len() / 2))
        }
        _ => None,
    }
}

/// DER ECDSA-Sig-Value (SEQUENCE of two minimal INTEGERs) from fixed-length r, s.
pub fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    der_tlv(0x30, &body)
}

fn der_integer(value: &[u8]) -> Vec<u8> {
    let value = strip_zeros(value);
    let mut content = Vec::with_capacity(value.len() + 1);
    if value.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(value);
    der_tlv(0x02, &content)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = strip_zeros(&bytes);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}
