//! What a parsed command asks, in words, for traces: P1-P2 and what they name (a file, an offset,
//! a key, an algorithm, a PIN reference), never command data: no PIN, key or DKEK share can reach
//! a description.

use super::request::{DomainAction, Request, Target, Unblock};
use crate::applet::AID;
use crate::crypto::Algorithm;

fn key(id: u8) -> String {
    format!("key CC{id:02X}")
}

fn algorithm_name(a: Option<Algorithm>) -> String {
    match a {
        Some(a) => format!("{a:?}"),
        None => "unknown algorithm".into(),
    }
}

fn file(target: Target) -> String {
    match target {
        Target::Current => "current EF".to_string(),
        Target::File(fid) => format!("EF {fid:04X}"),
    }
}

/// What a parsed command's parameters say: P1-P2, the file and offset, never command data.
pub fn describe(request: &Request<'_>) -> String {
    match request {
        // Which application, never the AID a client sent.
        Request::SelectApplication { aid, .. } if *aid == AID => "by AID, SmartCard-HSM".into(),
        Request::SelectApplication { aid, .. } => {
            format!("by AID, another application ({} bytes)", aid.len())
        }
        Request::SelectFile { fid, .. } | Request::DeleteFile { fid } => format!("EF {fid:04X}"),
        Request::ReadBinary { target, offset, .. }
        | Request::UpdateBinary { target, offset, .. } => {
            format!("{}, offset {offset}", file(*target))
        }
        Request::Verify { pin, value: None } => format!("{}, status query", pin.name()),
        Request::Verify { pin, .. } | Request::ChangeReferenceData { pin, .. } => pin.name().into(),
        Request::VerifyUnknownReference { reference } => match reference {
            0x85 | 0x86 => "PIN pad / biometric template".into(),
            _ => "unknown reference".into(),
        },
        Request::ResetRetryCounter(Unblock::CounterOnly { .. }) => "user PIN, counter only".into(),
        Request::ResetRetryCounter(Unblock::WithNewPin { .. }) => "user PIN, new PIN".into(),
        Request::ManageKeyDomain { domain, action } => {
            let what = match action {
                DomainAction::Status => "status query".to_string(),
                DomainAction::ImportShare(_) => "import one DKEK share".into(),
                DomainAction::CreateDkek { shares } => format!("create, {shares} DKEK shares"),
                DomainAction::CreateXkek { .. } => "create an XKEK domain".into(),
                DomainAction::Delete => "delete".into(),
                DomainAction::ClearKek => "clear the KEK".into(),
            };
            format!("key domain {domain}, {what}")
        }
        Request::ReadConfiguration => "read configuration and version".into(),
        Request::GenerateSessionPin => "for the user PIN".into(),
        Request::GenerateSymmetricKey { key_id, length, .. } => {
            format!("{}, AES-{}", key(*key_id), length.bytes() * 8)
        }
        Request::DeriveEcKey { source, target, .. } => {
            format!("{} from {}", key(*target), key(*source))
        }
        Request::GenerateKeyPair {
            key_id, signer: 0, ..
        } => format!("{}, outer signature by the device key", key(*key_id)),
        Request::GenerateKeyPair { key_id, signer, .. } => {
            format!("{}, outer signature by {}", key(*key_id), key(*signer))
        }
        Request::Sign {
            key_id, operation, ..
        }
        | Request::Decipher {
            key_id, operation, ..
        }
        | Request::CipherSymmetric {
            key_id, operation, ..
        } => format!("{}, {}", key(*key_id), algorithm_name(operation.algorithm)),
        Request::WrapKey { key_id } | Request::UnwrapKey { key_id, .. } => key(*key_id),
        Request::DeriveXkek { key_id, .. } => format!("{}, agree an XKEK", key(*key_id)),
        Request::GetChallenge { len } => format!("{len} bytes"),
        Request::SelectChipAuthentication { .. } => "chip authentication (41 A4)".into(),
        Request::GeneralAuthenticate { .. } => "chip authentication".into(),
        Request::SelectVerifier { .. } => "verifier of certificates (81 B6)".into(),
        Request::SelectAuthenticationKey { .. } => "key for EXTERNAL AUTHENTICATE (81 A4)".into(),
        Request::VerifyCertificate { .. } => "VERIFY CERTIFICATE".into(),
        Request::PkaStatus => "status".into(),
        Request::RegisterPublicKey { slot: None, .. } => "register a key".into(),
        Request::RegisterPublicKey { slot: Some(i), .. } => format!("replace key {i}"),
        Request::ExternalAuthenticate { .. } => "with a registered key".into(),
        Request::EnumerateObjects | Request::InitializeDevice { .. } => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tools::hex;

    /// The description of the command APDU `hex`.
    fn parameters(apdu: &str) -> String {
        let command = crate::apdu::Command::parse(&hex::decode(apdu).unwrap()).unwrap();
        describe(&Request::parse(&command).unwrap())
    }

    #[test]
    fn parameters_say_what_p1_p2_mean_and_never_show_pin_data() {
        assert_eq!(parameters("0020008106363438323139"), "user PIN");
        assert_eq!(parameters("00200088"), "SO-PIN, status query");
        assert_eq!(
            parameters("80680273000003616263"),
            "key CC02, Ecdsa(Some(Sha256))"
        );
        assert_eq!(parameters("00A40000022F0200"), "EF 2F02");
        assert_eq!(parameters("00B1CF0104540200FF00"), "EF CF01, offset 255");
        assert_eq!(
            parameters("002C00810E3537363231383830363438323139"),
            "user PIN, new PIN"
        );
        let pin_change = "002400810C363438323139313233343536";
        assert!(!parameters(pin_change).contains("3634"));
        assert_eq!(
            parameters("00A404000BE82B0601040181C31F020100"),
            "by AID, SmartCard-HSM"
        );
        // Any data a client sends in an AID stays out of the trace.
        assert_eq!(
            parameters("00A4040008363438323139313200"),
            "by AID, another application (8 bytes)"
        );
        assert_eq!(
            parameters(&format!("8052000120{}", "AB".repeat(32))),
            "key domain 1, import one DKEK share"
        );
        assert_eq!(
            parameters("805201020100"),
            "key domain 2, create, 0 DKEK shares"
        );
        assert_eq!(
            parameters("0048 05B2".replace(' ', "").as_str()),
            "key CC05, AES-256"
        );
        assert_eq!(
            parameters("80780510100000000000000000000000000000000000"),
            "key CC05, AesCbcEncrypt"
        );
        assert_eq!(
            parameters("8076010205980102030400"),
            "key CC02 from key CC01"
        );
        assert_eq!(parameters("8050000000"), "read configuration and version");
    }
}
