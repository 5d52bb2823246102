//! The commands the tearing tests cut the power of, and their APDUs: in process
//! (`emulator/tests/tearing.rs`, the card opened again from its redb file after each cut) and
//! through pcscd and vpcd (`conformance-tests/tests/tearing.rs`).

use crate::crypto::cvc;
use crate::crypto::ec::Curve;
use crate::model::pin::PinRef;
use crate::tools::host;

/// The two user PINs a torn CHANGE REFERENCE DATA moves between.
pub const PINS: [&[u8]; 2] = [b"648219", b"123456"];

/// A command a test tears.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Torn {
    GenerateEc,
    GenerateRsa,
    UpdateBinary,
    DeleteFile,
    ImportDkekShare,
    ChangePin,
    VerifyRight,
    VerifyWrong,
}

impl Torn {
    pub const ALL: [Torn; 8] = [
        Torn::GenerateEc,
        Torn::GenerateRsa,
        Torn::UpdateBinary,
        Torn::DeleteFile,
        Torn::ImportDkekShare,
        Torn::ChangePin,
        Torn::VerifyRight,
        Torn::VerifyWrong,
    ];

    /// The ones that change more than a PIN's counter (the first six): each must be seen torn
    /// both before and after its change.
    pub fn changing() -> &'static [Torn] {
        &Torn::ALL[..6]
    }

    /// How a tear of this command ended, for a model of the card: `found` is the state from
    /// `before` the command, from `after` it, or (for a command that pays a PIN try first) the
    /// state with that try `charged`; `None` for a state between.
    pub fn outcome<M: PartialEq>(
        self,
        before: &M,
        after: &M,
        charged: &M,
        found: &M,
    ) -> Option<&'static str> {
        if found == before && found == after {
            Some("unchanged")
        } else if found == before {
            Some("before")
        } else if found == after {
            Some("after")
        } else if self.pays_a_try() && found == charged {
            Some("charged")
        } else {
            None
        }
    }

    /// The command name its tear rule watches.
    pub fn command(self) -> &'static str {
        match self {
            Torn::GenerateEc | Torn::GenerateRsa => "GENERATE ASYMMETRIC KEY PAIR",
            Torn::UpdateBinary => "UPDATE BINARY",
            Torn::DeleteFile => "DELETE FILE",
            Torn::ImportDkekShare => "MANAGE KEY DOMAIN",
            Torn::ChangePin => "CHANGE REFERENCE DATA",
            Torn::VerifyRight | Torn::VerifyWrong => "VERIFY",
        }
    }

    /// Whether the user must be logged in first (the PIN commands log in themselves).
    pub fn needs_login(self) -> bool {
        !self.pays_a_try()
    }

    /// Whether it pays a PIN try before comparing (the one state between a tear may leave).
    pub fn pays_a_try(self) -> bool {
        matches!(
            self,
            Torn::ChangePin | Torn::VerifyRight | Torn::VerifyWrong
        )
    }

    /// The command's APDU: a new key in slot `key_id`, `content` written to `fid`, `target`
    /// deleted, a DKEK share made from `round`, the user PIN `PINS[pin]` checked or changed to
    /// the other one.
    pub fn apdu(
        self,
        key_id: u8,
        fid: u16,
        content: &[u8],
        target: u16,
        round: u32,
        pin: usize,
    ) -> Vec<u8> {
        let extended = crate::apdu::extended;
        match self {
            Torn::GenerateEc | Torn::GenerateRsa => {
                let template = match self {
                    Torn::GenerateEc => cvc::ec_key_template(Curve::Secp256r1),
                    _ => cvc::rsa_key_template(1024),
                };
                let request = cvc::generate_request(b"UTCA00001", &template, b"ZZEM000000000001");
                extended([0x00, 0x46, key_id, 0x00], &request)
            }
            Torn::UpdateBinary => host::update_binary(fid, content),
            Torn::DeleteFile => extended([0x00, 0xE4, 0x02, 0x00], &target.to_be_bytes()),
            Torn::ImportDkekShare => {
                let share: Vec<u8> = (0..32).map(|i| i as u8 ^ round as u8).collect();
                host::manage_key_domain(0x00, 0x00, &share)
            }
            Torn::ChangePin => {
                let data = [PINS[pin], PINS[1 - pin]].concat();
                extended([0x00, 0x24, 0x00, 0x81], &data)
            }
            Torn::VerifyRight => host::verify(PinRef::User, PINS[pin]),
            Torn::VerifyWrong => host::verify(PinRef::User, b"000000"),
        }
    }
}
