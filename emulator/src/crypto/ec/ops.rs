//! Curve-generic operations over RustCrypto `CurveArithmetic` types.
//!
//! Inputs are checked here for the curve's exact sizes; hash truncation
//! (bits2int) is done by the caller, so `z` is always order-length bytes.

use super::EcError;
use ecdsa::{hazmat, EcdsaCurve, Signature};
use elliptic_curve::{
    array::typenum::Unsigned,
    group::{Curve as _, Group},
    sec1::{FromSec1Point, ModulusSize, ToSec1Point},
    AffinePoint, CurveArithmetic, FieldBytes, FieldBytesSize, NonZeroScalar, ProjectivePoint,
};
use sha2::Sha256;
use zeroize::Zeroizing;

fn field_len<C: CurveArithmetic>() -> usize {
    FieldBytesSize::<C>::USIZE
}

/// Private scalar in [1, n-1] from exactly field-length big-endian bytes.
fn secret<C: CurveArithmetic>(scalar: &[u8]) -> Result<Zeroizing<NonZeroScalar<C>>, EcError> {
    if scalar.len() != field_len::<C>() {
        return Err(EcError);
    }
    NonZeroScalar::<C>::try_from(scalar)
        .map(Zeroizing::new)
        .map_err(|_| EcError)
}

/// Uncompressed 04||X||Y of a point, intermediates wiped; the identity is an error.
fn encode<C>(point: &ProjectivePoint<C>) -> Result<Zeroizing<Vec<u8>>, EcError>
where
    C: EcdsaCurve + CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let affine = Zeroizing::new(point.to_affine());
    let encoded = Zeroizing::new(affine.to_sec1_point(false));
    let bytes = encoded.as_bytes();
    if bytes.len() != 1 + 2 * field_len::<C>() {
        return Err(EcError);
    }
    Ok(Zeroizing::new(bytes.to_vec()))
}

/// Decode an uncompressed point (on-curve check included).
fn decode<C>(point: &[u8]) -> Result<AffinePoint<C>, EcError>
where
    C: EcdsaCurve + CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    if point.len() != 1 + 2 * field_len::<C>() || point[0] != 0x04 {
        return Err(EcError);
    }
    AffinePoint::<C>::from_sec1_bytes(point).map_err(|_| EcError)
}

pub(super) fn public_point<C>(scalar: &[u8]) -> Result<Vec<u8>, EcError>
where
    C: EcdsaCurve + CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let d = secret::<C>(scalar)?;
    Ok(encode::<C>(&ProjectivePoint::<C>::mul_by_generator(&**d))?.to_vec())
}

/// ECDSA with an RFC 6979 (HMAC-SHA-256) nonce; `z` is the bits2int'd hash.
pub(super) fn sign<C>(scalar: &[u8], z: &[u8]) -> Result<(Vec<u8>, Vec<u8>), EcError>
where
    C: EcdsaCurve + CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let d = secret::<C>(scalar)?;
    if z.len() != field_len::<C>() {
        return Err(EcError);
    }
    let (signature, _) = hazmat::sign_prehashed_rfc6979::<C, Sha256>(&d, z, &[]);
    let (r, s) = signature.split_bytes();
    Ok((r.to_vec(), s.to_vec()))
}

/// ECDSA verification; r and s must be field-length, any s (high or low) is accepted.
pub(super) fn verify<C>(point: &[u8], z: &[u8], r: &[u8], s: &[u8]) -> bool
where
    C: EcdsaCurve + CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let Ok(q) = decode::<C>(point) else {
        return false;
    };
    let (Ok(r), Ok(s)) = (FieldBytes::<C>::try_from(r), FieldBytes::<C>::try_from(s)) else {
        return false;
    };
    let Ok(signature) = Signature::<C>::from_scalars(r, s) else {
        return false;
    };
    // Curves with NORMALIZE_S (secp256k1) reject high s; (r, n - s) is equivalent.
    let signature = signature.normalize_s();
    hazmat::verify_prehashed::<C>(&q.into(), z, &signature).is_ok()
}

/// Shared point scalar * peer as 04||X||Y.
pub(super) fn ecdh<C>(scalar: &[u8], peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, EcError>
where
    C: EcdsaCurve + CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let d = secret::<C>(scalar)?;
    let q = decode::<C>(peer)?;
    let shared = Zeroizing::new(ProjectivePoint::<C>::from(q) * **d);
    encode::<C>(&shared)
}
