//! Curves without a RustCrypto crate, built on `primefield` (Montgomery field
//! elements over crypto-bigint) and `primeorder` (generic short-Weierstrass
//! arithmetic). Each curve gets full `CurveArithmetic`, so `ecdsa::hazmat` and
//! ECDH work on it like on the crate-provided curves.
//!
//! Field sizes without a crypto-bigint `ArrayEncoding` (224 and 320 bits) use
//! the next wider integer (`U256`, `U384`); `pad` left-pads the modulus and
//! order hex to that width. `p_gen` / `n_gen` are quadratic non-residues
//! modulo p / n (the multiplicative generator used by square roots).

macro_rules! custom_curve {
    (
        $(#[$doc:meta])*
        mod $module:ident, struct $curve:ident {
            uint: $uint:ident,
            bytes: $bytes:ident,
            pad: $pad:literal,
            equation: $equation:ident,
            p: $p:literal,
            p_gen: $p_gen:literal,
            n: $n:literal,
            n_gen: $n_gen:literal,
            a: $a:literal,
            b: $b:literal,
            gx: $gx:literal,
            gy: $gy:literal $(,)?
        }
    ) => {
        pub(crate) mod $module {
            use elliptic_curve::{
                CurveArithmetic, PrimeCurveArithmetic,
                bigint::{$uint, Odd},
                consts::$bytes,
                hazmat::FieldArithmetic,
            };
            use primeorder::{PrimeCurveParams, mul_backend, point_arithmetic};

            $(#[$doc])*
            #[derive(Copy, Clone, Debug, Default, Eq, PartialEq, PartialOrd, Ord)]
            pub struct $curve;

            impl elliptic_curve::Curve for $curve {
                type FieldBytesSize = $bytes;
                type Uint = $uint;
                const ORDER: Odd<$uint> = Odd::<$uint>::from_be_hex(concat!($pad, $n));
            }

            impl elliptic_curve::PrimeCurve for $curve {}

            impl elliptic_curve::point::PointCompression for $curve {
                const COMPRESS_POINTS: bool = false;
            }

            impl ecdsa::EcdsaCurve for $curve {
                const NORMALIZE_S: bool = false;
            }

            // primefield 0.14's macros call `Uint::bits`, deprecated in crypto-bigint 0.7.11.
            #[allow(deprecated)]
            mod field {
                use elliptic_curve::{
                    bigint::$uint,
                    ff::PrimeField,
                    subtle::{Choice, ConstantTimeEq, CtOption},
                };

                primefield::monty_field_params! {
                    name: FieldParams,
                    modulus: concat!($pad, $p),
                    uint: $uint,
                    byte_order: primefield::ByteOrder::BigEndian,
                    multiplicative_generator: $p_gen,
                    doc: "Montgomery parameters of the base field modulus p"
                }

                primefield::monty_field_element! {
                    name: FieldElement,
                    params: FieldParams,
                    uint: $uint,
                    doc: "Element of the base field modulo p"
                }

                primefield::monty_field_arithmetic! {
                    name: FieldElement,
                    params: FieldParams,
                    uint: $uint
                }

                impl elliptic_curve::ops::BatchInvert for FieldElement {}
            }

            #[allow(deprecated)]
            mod scalar {
                use super::$curve;
                use elliptic_curve::{
                    Curve as _, FieldBytes,
                    bigint::{$uint, Reduce},
                    ff::PrimeField,
                    scalar::{FromUintUnchecked, IsHigh},
                    subtle::{Choice, ConstantTimeEq, ConstantTimeGreater, CtOption},
                };

                primefield::monty_field_params! {
                    name: ScalarParams,
                    modulus: concat!($pad, $n),
                    uint: $uint,
                    byte_order: primefield::ByteOrder::BigEndian,
                    multiplicative_generator: $n_gen,
                    doc: "Montgomery parameters of the group order n"
                }

                primefield::monty_field_element! {
                    name: Scalar,
                    params: ScalarParams,
                    uint: $uint,
                    doc: "Element of the scalar field modulo n"
                }

                primefield::monty_field_arithmetic! {
                    name: Scalar,
                    params: ScalarParams,
                    uint: $uint
                }

                // Written out because `monty_field_reduce!` needs the integer's
                // byte size to equal the field's (not so for U256/224, U384/320).
                impl Reduce<$uint> for Scalar {
                    fn reduce(w: &$uint) -> Self {
                        Self::from_uint_unchecked(*w)
                    }
                }

                impl Reduce<FieldBytes<$curve>> for Scalar {
                    fn reduce(bytes: &FieldBytes<$curve>) -> Self {
                        Self::from_uint_unchecked(<$uint>::from_be_slice_truncated(bytes, <$uint>::BITS))
                    }
                }

                elliptic_curve::scalar_impls!($curve, Scalar);
                primeorder::wnaf::impl_wnaf_size_for_scalar!(Scalar);

                impl AsRef<Scalar> for Scalar {
                    fn as_ref(&self) -> &Scalar {
                        self
                    }
                }

                impl FromUintUnchecked for Scalar {
                    type Uint = $uint;

                    fn from_uint_unchecked(uint: $uint) -> Self {
                        Self::from_uint_unchecked(uint)
                    }
                }

                impl IsHigh for Scalar {
                    fn is_high(&self) -> Choice {
                        const HALF: $uint = $curve::ORDER.as_ref().shr_vartime(1);
                        self.to_canonical().ct_gt(&HALF)
                    }
                }
            }

            use field::FieldElement;
            use scalar::Scalar;

            impl CurveArithmetic for $curve {
                type AffinePoint = primeorder::AffinePoint<$curve>;
                type ProjectivePoint = primeorder::ProjectivePoint<$curve>;
                type Scalar = Scalar;
            }

            impl FieldArithmetic for $curve {
                type FieldElement = FieldElement;
            }

            impl PrimeCurveArithmetic for $curve {
                type CurveGroup = primeorder::ProjectivePoint<$curve>;
            }

            impl PrimeCurveParams for $curve {
                type PointArithmetic = point_arithmetic::$equation;
                type Backend = mul_backend::VariableOnly;

                const EQUATION_A: FieldElement = FieldElement::from_hex_vartime($a);
                const EQUATION_B: FieldElement = FieldElement::from_hex_vartime($b);
                const GENERATOR: (FieldElement, FieldElement) = (
                    FieldElement::from_hex_vartime($gx),
                    FieldElement::from_hex_vartime($gy),
                );
            }
        }
    };
}

custom_curve! {
    /// secp192k1 (SEC 2), a = 0.
    mod secp192k1, struct Secp192k1 {
        uint: U192,
        bytes: U24,
        pad: "",
        equation: EquationAIsZero,
        p: "fffffffffffffffffffffffffffffffffffffffeffffee37",
        p_gen: 3,
        n: "fffffffffffffffffffffffe26f2fc170f69466a74defd8d",
        n_gen: 2,
        a: "000000000000000000000000000000000000000000000000",
        b: "000000000000000000000000000000000000000000000003",
        gx: "db4ff10ec057e9ae26b07d0280b7f4341da5d1b1eae06c7d",
        gy: "9b2f2f6d9c5628a7844163d015be86344082aa88d95e2f9d",
    }
}

custom_curve! {
    /// brainpoolP192r1 (RFC 5639).
    mod bp192, struct BrainpoolP192r1 {
        uint: U192,
        bytes: U24,
        pad: "",
        equation: EquationAIsGeneric,
        p: "c302f41d932a36cda7a3463093d18db78fce476de1a86297",
        p_gen: 3,
        n: "c302f41d932a36cda7a3462f9e9e916b5be8f1029ac4acc1",
        n_gen: 7,
        a: "6a91174076b1e0e19c39c031fe8685c1cae040e5c69a28ef",
        b: "469a28ef7c28cca3dc721d044f4496bcca7ef4146fbf25c9",
        gx: "c0a0647eaab6a48753b033c56cb0f0900a2f5c4853375fd6",
        gy: "14b690866abd5bb88b5f4828c1490002e6773fa2fa299b8f",
    }
}

custom_curve! {
    /// brainpoolP224r1 (RFC 5639), 224-bit values held in `U256`.
    mod bp224, struct BrainpoolP224r1 {
        uint: U256,
        bytes: U28,
        pad: "00000000",
        equation: EquationAIsGeneric,
        p: "d7c134aa264366862a18302575d1d787b09f075797da89f57ec8c0ff",
        p_gen: 3,
        n: "d7c134aa264366862a18302575d0fb98d116bc4b6ddebca3a5a7939f",
        n_gen: 3,
        a: "68a5e62ca9ce6c1c299803a6c1530b514e182ad8b0042a59cad29f43",
        b: "2580f63ccfe44138870713b1a92369e33e2135d266dbb372386c400b",
        gx: "0d9029ad2c7e5cf4340823b2a87dc68c9e4ce3174c1e6efdee12c07d",
        gy: "58aa56f772c0726f24c6b89e4ecdac24354b9e99caa3f6d3761402cd",
    }
}

custom_curve! {
    /// brainpoolP320r1 (RFC 5639), 320-bit values held in `U384`.
    mod bp320, struct BrainpoolP320r1 {
        uint: U384,
        bytes: U40,
        pad: "0000000000000000",
        equation: EquationAIsGeneric,
        p: "d35e472036bc4fb7e13c785ed201e065f98fcfa6f6f40def4f92b9ec7893ec28fcd412b1f1b32e27",
        p_gen: 5,
        n: "d35e472036bc4fb7e13c785ed201e065f98fcfa5b68f12a32d482ec7ee8658e98691555b44c59311",
        n_gen: 3,
        a: "3ee30b568fbab0f883ccebd46d3f3bb8a2a73513f5eb79da66190eb085ffa9f492f375a97d860eb4",
        b: "520883949dfdbc42d3ad198640688a6fe13f41349554b49acc31dccd884539816f5eb4ac8fb1f1a6",
        gx: "43bd7e9afb53d8b85289bcc48ee5bfe6f20137d10a087eb6e7871e2a10a599c710af8d0d39e20611",
        gy: "14fdd05545ec1cc8ab4093247f77275e0743ffed117182eaa9c77877aaac6ac7d35245d1692e8ee1",
    }
}

custom_curve! {
    /// brainpoolP512r1 (RFC 5639).
    mod bp512, struct BrainpoolP512r1 {
        uint: U512,
        bytes: U64,
        pad: "",
        equation: EquationAIsGeneric,
        p: "aadd9db8dbe9c48b3fd4e6ae33c9fc07cb308db3b3c9d20ed6639cca703308717d4d9b009bc66842aecda12ae6a380e62881ff2f2d82c68528aa6056583a48f3",
        p_gen: 2,
        n: "aadd9db8dbe9c48b3fd4e6ae33c9fc07cb308db3b3c9d20ed6639cca70330870553e5c414ca92619418661197fac10471db1d381085ddaddb58796829ca90069",
        n_gen: 7,
        a: "7830a3318b603b89e2327145ac234cc594cbdd8d3df91610a83441caea9863bc2ded5d5aa8253aa10a2ef1c98b9ac8b57f1117a72bf2c7b9e7c1ac4d77fc94ca",
        b: "3df91610a83441caea9863bc2ded5d5aa8253aa10a2ef1c98b9ac8b57f1117a72bf2c7b9e7c1ac4d77fc94cadc083e67984050b75ebae5dd2809bd638016f723",
        gx: "81aee4bdd82ed9645a21322e9c4c6a9385ed9f70b5d916c1b43b62eef4d0098eff3b1f78e2d0d48d50d1687b93b97d5f7c6d5047406a5e688b352209bcb9f822",
        gy: "7dde385d566332ecc0eabfa9cf7822fdf209f70024a57b1aa000c55b881f8111b2dcde494a5f485e5bca4bd88a2763aed1ca2b2fa8f0540678cd1e0f3ad80892",
    }
}

pub(crate) use self::{
    bp192::BrainpoolP192r1, bp224::BrainpoolP224r1, bp320::BrainpoolP320r1, bp512::BrainpoolP512r1,
    secp192k1::Secp192k1,
};
