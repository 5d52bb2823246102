//! The command table: every instruction of the card once, with its code, its name, the class
//! hosts send it with and typical P1-P2 values. Each complete command APDU is parsed once
//! ([`parse`]) into a [`Request`] ([`request`]): syntax only (lengths, P1-P2, TLV shape, the
//! algorithm byte); security and policy are the handlers' business. [`describe`] says in words
//! what a parsed request asks, for traces.
//!
//! Adding a command, in the order the compiler asks for the edits:
//!
//! 1. a row in `instructions!` below: `Name = code, "NAME", class, [example P1-P2s]`;
//! 2. its arm in [`Request::parse`] (`parse.rs`: the `match` on [`Ins`] has no catch-all),
//!    which makes a new [`Request`] variant (`request.rs`) from P1, P2 and the data;
//! 3. its arm in [`describe::describe`] (`describe.rs`: every variant is described);
//! 4. its arm in [`Applet::dispatch`](super::Applet::dispatch) (`applet/mod.rs`), which calls
//! 5. the handler, an `impl Applet` method in the file of the command's chapter, which asks
//!    [`Session::require`](super::session::Session::require) for access and builds its
//!    changes as one batch for [`Applet::commit`](super::Applet::commit);
//! 6. its arms in the data trace's decoders ([`crate::dissect`]: `command.rs` and
//!    `response.rs` match on [`Ins`] without a catch-all), naming every data field and
//!    taking out its secrets.
//!
//! Then a byte-exact exchange in `card/tests/` and, for a command OpenSC sends, a
//! conformance test.

pub(crate) mod describe;
mod parse;
mod request;

pub(crate) use request::{DomainAction, KeyOperation, Request, SelectAnswer, Target, Unblock};

/// Defines [`Ins`] from one row per instruction: name = code, "NAME", CLA, example P1-P2s.
macro_rules! instructions {
    ($($(#[$doc:meta])* $ins:ident = $code:literal, $name:literal, $cla:literal, [$($p1p2:literal),*];)*) => {
        /// An instruction of the card (INS byte).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Ins {
            $($(#[$doc])* $ins,)*
        }

        impl Ins {
            /// Every instruction, in table order.
            pub const ALL: &'static [Ins] = &[$(Ins::$ins,)*];

            /// The instruction byte.
            pub const fn code(self) -> u8 {
                match self { $(Ins::$ins => $code,)* }
            }

            /// The name the specification gives it (logs, traces).
            pub const fn name(self) -> &'static str {
                match self { $(Ins::$ins => $name,)* }
            }

            /// The class byte hosts send it with (`00` ISO, `80` proprietary).
            pub const fn class(self) -> u8 {
                match self { $(Ins::$ins => $cla,)* }
            }

            /// Typical P1-P2 values (what the fuzzers put in front of arbitrary data).
            pub const fn examples(self) -> &'static [u16] {
                match self { $(Ins::$ins => &[$($p1p2),*],)* }
            }

            pub const fn from_code(code: u8) -> Option<Ins> {
                match code { $($code => Some(Ins::$ins),)* _ => None }
            }
        }
    };
}

instructions! {
    /// Selects the application (by AID) or an EF (by FID).
    Select = 0xA4, "SELECT", 0x00, [0x0400, 0x0000];
    /// READ BINARY with the offset in a `54` TLV and the file in P1-P2.
    ReadBinaryOdd = 0xB1, "READ BINARY", 0x00, [0x0000];
    /// READ BINARY of the current EF at the offset P1-P2.
    ReadBinary = 0xB0, "READ BINARY", 0x00, [0x0000];
    /// Writes (and creates) an EF: `54` offset, `53` data.
    UpdateBinary = 0xD7, "UPDATE BINARY", 0x00, [0xCF01, 0x2F10];
    DeleteFile = 0xE4, "DELETE FILE", 0x00, [0x0200];
    /// Lists the FIDs of every file and key.
    EnumerateObjects = 0x58, "ENUMERATE OBJECTS", 0x80, [0x0000];
    Verify = 0x20, "VERIFY", 0x00, [0x0081, 0x0088];
    ChangeReferenceData = 0x24, "CHANGE REFERENCE DATA", 0x00, [0x0081, 0x0088];
    ResetRetryCounter = 0x2C, "RESET RETRY COUNTER", 0x00, [0x0081, 0x0181];
    /// With data: initialise; without: read the configuration and version.
    InitializeDevice = 0x50, "INITIALIZE DEVICE", 0x80, [0x0000];
    /// P1 the action (`00` status or import a DKEK share, `01` create, `02` create XKEK,
    /// `03` delete, `04` clear the KEK), P2 the key domain. `80 52 00 00` is IMPORT DKEK
    /// SHARE into the default domain.
    ManageKeyDomain = 0x52, "MANAGE KEY DOMAIN", 0x80, [0x0000, 0x0001, 0x0101, 0x0301];
    /// P1 key id, P2 the key signing the outer request (`00`: the device key).
    GenerateKeyPair = 0x46, "GENERATE ASYMMETRIC KEY PAIR", 0x00, [0x0300];
    /// P1 key id, P2 `B0`/`B1`/`B2`: AES-128/192/256.
    GenerateSymmetricKey = 0x48, "GENERATE SYMMETRIC KEY", 0x00, [0x01B0, 0x02B2];
    /// P1 key id, P2 algorithm (`10`/`11` AES-CBC, `18` CMAC, `99` derivation).
    CipherSymmetric = 0x78, "CIPHER SYMMETRIC", 0x80, [0x0110, 0x0111, 0x0118, 0x0199];
    /// P1 the source key, P2 the new key; data `98 ‖ scalar`.
    DeriveEcKey = 0x76, "DERIVE EC KEY", 0x80, [0x0102];
    /// P1 key id, P2 algorithm.
    Sign = 0x68, "SIGN", 0x80, [0x0120, 0x0270];
    /// P1 key id, P2 algorithm (`84`: agree an XKEK with a peer card's key).
    Decipher = 0x62, "DECIPHER", 0x80, [0x0121, 0x0280, 0x0184];
    WrapKey = 0x72, "WRAP KEY", 0x80, [0x0192];
    UnwrapKey = 0x74, "UNWRAP KEY", 0x80, [0x0593];
    GetChallenge = 0x84, "GET CHALLENGE", 0x00, [0x0000];
    /// `81 B6`: the public key certificates are verified with; `81 A4`: the registered key
    /// EXTERNAL AUTHENTICATE checks (data `83 L <CHR>`); `41 A4`: chip authentication
    /// (data `80 L <protocol OID>`).
    ManageSecurityEnvironment = 0x22, "MANAGE SECURITY ENVIRONMENT", 0x00, [0x81B6, 0x81A4, 0x41A4];
    /// Chip authentication: `7C { 80 <ephemeral public point> }`.
    GeneralAuthenticate = 0x86, "GENERAL AUTHENTICATE", 0x00, [0x0000];
    /// `00 BE`: VERIFY CERTIFICATE (a CV certificate, with the key MSE `81 B6` selected).
    PerformSecurityOperation = 0x2A, "PERFORM SECURITY OPERATION", 0x00, [0x00BE];
    /// `00 00` without data: status; `00 00` with an authenticated request: register a key;
    /// `01 <slot>`: replace the key of a slot.
    ManagePublicKeyAuthentication = 0x54, "MANAGE PUBLIC KEY AUTHENTICATION", 0x80, [0x0000, 0x0100];
    /// A registered key's signature over SHA-256(device CHR ‖ challenge).
    ExternalAuthenticate = 0x82, "EXTERNAL AUTHENTICATE", 0x00, [0x0000];
    /// P1 `01`, P2 the PIN (`81`): a session PIN, only under secure messaging.
    GenerateSessionPin = 0x5A, "GENERATE SESSION PIN", 0x80, [0x0181];
    /// Answered by the APDU layer ([`crate::apdu::layer`]).
    GetResponse = 0xC0, "GET RESPONSE", 0x00, [];
}

/// The name of instruction byte `code` for logs and traces.
pub fn name_of(code: u8) -> &'static str {
    Ins::from_code(code).map_or("unknown", Ins::name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_names_one_instruction() {
        for ins in Ins::ALL {
            assert_eq!(Ins::from_code(ins.code()), Some(*ins));
            assert!(matches!(ins.class(), 0x00 | 0x80), "{ins:?}");
        }
        assert_eq!(name_of(0x20), "VERIFY");
        assert_eq!(name_of(0xB0), name_of(0xB1));
        assert_eq!(name_of(0x12), "unknown");
    }
}
