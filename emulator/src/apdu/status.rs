//! ISO 7816-4 status words, as the SmartCard-HSM uses them.
//!
//! Every failure inside the card ends as one of these variants; the conversion to the two
//! bytes on the wire happens in exactly one place ([`Status::sw`]), and the errors of the
//! card's parts (cryptography, the wrapped-key blob, secure messaging, the store) become status
//! words in one place too: the `From` conversions at the end of this file.

use crate::apdu::secure_messaging::SmError;
use crate::crypto::ec::EcError;
use crate::crypto::keyblob::BlobError;
use crate::crypto::CryptoError;
use crate::store::StoreError;

/// A status word the card can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `9000`: success.
    Success,
    /// `61xx`: more response bytes wait for GET RESPONSE (`xx` = how many, `00` = 256 or more).
    MoreData(usize),
    /// `6282`: end of file reached before Le bytes were read.
    EndOfFile,
    /// `6300`: a signature did not verify (certificate, PKA challenge).
    VerificationFailed,
    /// `63Cx`: PIN wrong or not yet verified; `x` tries left.
    PinTriesLeft(u8),
    /// `6581`: memory failure (the store could not commit).
    MemoryFailure,
    /// `6700`: wrong length.
    WrongLength,
    /// `6882`: secure messaging not supported (a protected command without a channel).
    SecureMessagingNotSupported,
    /// `6883`: the last command of a chain was expected.
    LastCommandOfChainExpected,
    /// `6982`: security status not satisfied (login needed, object protected).
    SecurityStatusNotSatisfied,
    /// `6983`: authentication method blocked (PIN blocked).
    AuthenticationBlocked,
    /// `6984`: reference data not usable.
    ReferenceDataNotUsable,
    /// `6985`: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// `6986`: command not allowed.
    CommandNotAllowed,
    /// `6988`: incorrect secure messaging data objects (a MAC that does not verify).
    SmDataObjectsIncorrect,
    /// `6A80`: incorrect data in the command.
    IncorrectData,
    /// `6A81`: function not supported.
    FunctionNotSupported,
    /// `6A82`: file, application or key not found.
    NotFound,
    /// `6A84`: not enough memory.
    NotEnoughMemory,
    /// `6A86`: incorrect P1/P2.
    IncorrectP1P2,
    /// `6A88`: referenced data not found (PIN not initialised, unknown reference, no DKEK).
    ReferencedDataNotFound,
    /// `6A89`: file already exists.
    FileExists,
    /// `6B00`: wrong parameters (offset outside the file).
    WrongOffset,
    /// `6D00`: instruction not supported.
    InsNotSupported,
    /// `6E00`: class not supported.
    ClaNotSupported,
    /// Any other status word: one a fault rule makes the card answer
    /// ([`crate::fault`]), never one the card answers by itself.
    Other([u8; 2]),
}

impl Status {
    /// The two status bytes sent on the wire.
    pub fn sw(self) -> [u8; 2] {
        match self {
            Status::Success => [0x90, 0x00],
            Status::MoreData(n) => [0x61, n.min(0x100) as u8],
            Status::EndOfFile => [0x62, 0x82],
            Status::VerificationFailed => [0x63, 0x00],
            Status::PinTriesLeft(n) => [0x63, 0xC0 | n.min(15)],
            Status::MemoryFailure => [0x65, 0x81],
            Status::WrongLength => [0x67, 0x00],
            Status::SecureMessagingNotSupported => [0x68, 0x82],
            Status::LastCommandOfChainExpected => [0x68, 0x83],
            Status::SecurityStatusNotSatisfied => [0x69, 0x82],
            Status::AuthenticationBlocked => [0x69, 0x83],
            Status::ReferenceDataNotUsable => [0x69, 0x84],
            Status::ConditionsNotSatisfied => [0x69, 0x85],
            Status::CommandNotAllowed => [0x69, 0x86],
            Status::SmDataObjectsIncorrect => [0x69, 0x88],
            Status::IncorrectData => [0x6A, 0x80],
            Status::FunctionNotSupported => [0x6A, 0x81],
            Status::NotFound => [0x6A, 0x82],
            Status::NotEnoughMemory => [0x6A, 0x84],
            Status::IncorrectP1P2 => [0x6A, 0x86],
            Status::ReferencedDataNotFound => [0x6A, 0x88],
            Status::FileExists => [0x6A, 0x89],
            Status::WrongOffset => [0x6B, 0x00],
            Status::InsNotSupported => [0x6D, 0x00],
            Status::ClaNotSupported => [0x6E, 0x00],
            Status::Other(sw) => sw,
        }
    }

    /// The status word as one number, e.g. `0x6A82`.
    pub fn code(self) -> u16 {
        u16::from_be_bytes(self.sw())
    }

    /// What the status word means, in a few words (for traces).
    pub fn meaning(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::MoreData(_) => "more data available (GET RESPONSE)",
            Status::EndOfFile => "end of file reached",
            Status::VerificationFailed => "verification failed",
            Status::PinTriesLeft(_) => "wrong PIN or not verified, tries left",
            Status::MemoryFailure => "memory failure",
            Status::WrongLength => "wrong length",
            Status::SecureMessagingNotSupported => "secure messaging not supported",
            Status::LastCommandOfChainExpected => "last command of the chain expected",
            Status::SecurityStatusNotSatisfied => "security status not satisfied",
            Status::AuthenticationBlocked => "authentication method blocked",
            Status::ReferenceDataNotUsable => "reference data not usable",
            Status::ConditionsNotSatisfied => "conditions of use not satisfied",
            Status::CommandNotAllowed => "command not allowed",
            Status::SmDataObjectsIncorrect => "incorrect secure messaging data objects",
            Status::IncorrectData => "incorrect data",
            Status::FunctionNotSupported => "function not supported",
            Status::NotFound => "file or key not found",
            Status::NotEnoughMemory => "not enough memory",
            Status::IncorrectP1P2 => "incorrect P1/P2",
            Status::ReferencedDataNotFound => "referenced data not found",
            Status::FileExists => "file already exists",
            Status::WrongOffset => "offset outside the file",
            Status::InsNotSupported => "instruction not supported",
            Status::ClaNotSupported => "class not supported",
            Status::Other(_) => "given by a fault rule",
        }
    }

    /// Whether the status word reports success (`9000`, `61xx`, or the `6282` warning).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Status::Success
                | Status::MoreData(_)
                | Status::EndOfFile
                | Status::Other([0x90, 0x00] | [0x61, _] | [0x62, 0x82])
        )
    }

    /// The status of two status bytes: the card's own name for them when it has one
    /// ([`Status::Other`] otherwise).
    pub fn from_sw(sw: [u8; 2]) -> Status {
        const NAMED: [Status; 23] = [
            Status::Success,
            Status::EndOfFile,
            Status::VerificationFailed,
            Status::MemoryFailure,
            Status::WrongLength,
            Status::SecureMessagingNotSupported,
            Status::LastCommandOfChainExpected,
            Status::SecurityStatusNotSatisfied,
            Status::AuthenticationBlocked,
            Status::ReferenceDataNotUsable,
            Status::ConditionsNotSatisfied,
            Status::CommandNotAllowed,
            Status::SmDataObjectsIncorrect,
            Status::IncorrectData,
            Status::FunctionNotSupported,
            Status::NotFound,
            Status::NotEnoughMemory,
            Status::IncorrectP1P2,
            Status::ReferencedDataNotFound,
            Status::FileExists,
            Status::WrongOffset,
            Status::InsNotSupported,
            Status::ClaNotSupported,
        ];
        match sw {
            [0x61, n] => Status::MoreData(if n == 0 { 0x100 } else { usize::from(n) }),
            [0x63, n @ 0xC0..=0xCF] => Status::PinTriesLeft(n & 0x0F),
            _ => NAMED
                .into_iter()
                .find(|s| s.sw() == sw)
                .unwrap_or(Status::Other(sw)),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X}", self.code())
    }
}

// Errors as status words: every error type of the card's parts, here and nowhere else.

impl From<CryptoError> for Status {
    fn from(e: CryptoError) -> Status {
        match e {
            CryptoError::WrongKeyType => Status::FunctionNotSupported,
            CryptoError::WrongLength => Status::WrongLength,
            CryptoError::BadInput => Status::IncorrectData,
        }
    }
}

/// A point not on the curve, a scalar out of range: input that does not fit the key.
impl From<EcError> for Status {
    fn from(_: EcError) -> Status {
        Status::IncorrectData
    }
}

/// A blob for another DKEK, damaged, or not a key is refused alike; a key the card cannot hold
/// is not supported.
impl From<BlobError> for Status {
    fn from(e: BlobError) -> Status {
        match e {
            BlobError::Rejected => Status::IncorrectData,
            BlobError::Unsupported => Status::FunctionNotSupported,
        }
    }
}

/// A protected command that does not verify or decode (the channel ends with it).
impl From<SmError> for Status {
    fn from(_: SmError) -> Status {
        Status::SmDataObjectsIncorrect
    }
}

/// A commit that failed: nothing changed (a full disk, a damaged file).
impl From<StoreError> for Status {
    fn from(_: StoreError) -> Status {
        Status::MemoryFailure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_of_each_status() {
        let table: &[(Status, u16)] = &[
            (Status::Success, 0x9000),
            (Status::MoreData(0x10), 0x6110),
            (Status::MoreData(300), 0x6100),
            (Status::MoreData(256), 0x6100),
            (Status::EndOfFile, 0x6282),
            (Status::VerificationFailed, 0x6300),
            (Status::PinTriesLeft(2), 0x63C2),
            (Status::PinTriesLeft(15), 0x63CF),
            (Status::MemoryFailure, 0x6581),
            (Status::WrongLength, 0x6700),
            (Status::SecureMessagingNotSupported, 0x6882),
            (Status::LastCommandOfChainExpected, 0x6883),
            (Status::SecurityStatusNotSatisfied, 0x6982),
            (Status::AuthenticationBlocked, 0x6983),
            (Status::ReferenceDataNotUsable, 0x6984),
            (Status::ConditionsNotSatisfied, 0x6985),
            (Status::CommandNotAllowed, 0x6986),
            (Status::SmDataObjectsIncorrect, 0x6988),
            (Status::IncorrectData, 0x6A80),
            (Status::FunctionNotSupported, 0x6A81),
            (Status::NotFound, 0x6A82),
            (Status::NotEnoughMemory, 0x6A84),
            (Status::IncorrectP1P2, 0x6A86),
            (Status::ReferencedDataNotFound, 0x6A88),
            (Status::FileExists, 0x6A89),
            (Status::WrongOffset, 0x6B00),
            (Status::InsNotSupported, 0x6D00),
            (Status::ClaNotSupported, 0x6E00),
        ];
        for (status, code) in table {
            assert_eq!(status.code(), *code, "{status:?}");
        }
    }

    #[test]
    fn errors_of_the_parts_as_status_words() {
        let table: &[(Status, u16)] = &[
            (CryptoError::WrongKeyType.into(), 0x6A81),
            (CryptoError::WrongLength.into(), 0x6700),
            (CryptoError::BadInput.into(), 0x6A80),
            (EcError.into(), 0x6A80),
            (BlobError::Rejected.into(), 0x6A80),
            (BlobError::Unsupported.into(), 0x6A81),
            (SmError::BadMac.into(), 0x6988),
            (SmError::Malformed.into(), 0x6988),
            (StoreError::Io("disk full".into()).into(), 0x6581),
        ];
        for (status, code) in table {
            assert_eq!(status.code(), *code, "{status:?}");
        }
    }
}
