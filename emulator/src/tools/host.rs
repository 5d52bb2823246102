//! The command APDUs a host sends, built in one place: what the offline tools, the demo
//! profile, the test kit and the project's own PC/SC clients put on the wire.

use crate::apdu::{extended, tlv};
use crate::applet::command::Ins;
use crate::applet::AID;
use crate::model::pin::PinRef;

/// SELECT of the SmartCard-HSM application, answering its FCI (`00 A4 04 00 0B <AID> 00`).
pub fn select_application() -> Vec<u8> {
    let mut apdu = vec![Ins::Select.class(), Ins::Select.code(), 0x04, 0x00];
    apdu.push(AID.len() as u8);
    apdu.extend_from_slice(&AID);
    apdu.push(0x00);
    apdu
}

/// VERIFY of `pin` with `value` (short APDU).
pub fn verify(pin: PinRef, value: &[u8]) -> Vec<u8> {
    let mut apdu = vec![Ins::Verify.class(), Ins::Verify.code(), 0x00, pin.p2()];
    apdu.push(value.len() as u8);
    apdu.extend_from_slice(value);
    apdu
}

/// What INITIALIZE DEVICE sets (the tags a host sends).
#[derive(Debug, Clone)]
pub struct Initialization<'a> {
    /// Tag `80`.
    pub options: u16,
    /// Tag `81`.
    pub user_pin: &'a [u8],
    /// Tag `82`: 8 bytes.
    pub so_pin: &'a [u8],
    /// Tag `91`.
    pub user_pin_tries: u8,
    /// Tag `92`: number of DKEK shares, when the card should have a DKEK.
    pub dkek_shares: Option<u8>,
    /// Tag `97`: key domain slots.
    pub key_domains: Option<u8>,
    /// Tag `93`: public-key authentication, (total, required).
    pub public_keys: Option<(u8, u8)>,
}

impl Initialization<'_> {
    /// The command data: `80 options, 81 user PIN, 82 SO-PIN, 91 tries[, 92 shares][, 97
    /// key domains]`.
    pub fn data(&self) -> Vec<u8> {
        let mut data = tlv::encode(0x80, &self.options.to_be_bytes());
        tlv::write(&mut data, 0x81, self.user_pin);
        tlv::write(&mut data, 0x82, self.so_pin);
        tlv::write(&mut data, 0x91, &[self.user_pin_tries]);
        if let Some(n) = self.dkek_shares {
            tlv::write(&mut data, 0x92, &[n]);
        }
        if let Some(n) = self.key_domains {
            tlv::write(&mut data, 0x97, &[n]);
        }
        if let Some((total, required)) = self.public_keys {
            tlv::write(&mut data, 0x93, &[total, required]);
        }
        data
    }

    /// INITIALIZE DEVICE as an extended APDU.
    pub fn apdu(&self) -> Vec<u8> {
        command(Ins::InitializeDevice, 0x00, 0x00, &self.data())
    }
}

/// An extended APDU of instruction `ins` with `data` (and Le `00 00`).
pub fn command(ins: Ins, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    extended([ins.class(), ins.code(), p1, p2], data)
}

/// MANAGE KEY DOMAIN `p1` on domain `kd` (`80 52 p1 kd`): with a share (P1 `00`), the
/// number of shares (P1 `01`) or nothing.
pub fn manage_key_domain(p1: u8, kd: u8, data: &[u8]) -> Vec<u8> {
    command(Ins::ManageKeyDomain, p1, kd, data)
}

/// UPDATE BINARY writing `content` at offset 0 of `fid` (`54 02 0000`, `53 content`).
pub fn update_binary(fid: u16, content: &[u8]) -> Vec<u8> {
    let mut data = vec![0x54, 0x02, 0x00, 0x00];
    tlv::write(&mut data, 0x53, content);
    let [hi, lo] = fid.to_be_bytes();
    command(Ins::UpdateBinary, hi, lo, &data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::hex;

    #[test]
    fn the_bytes_hosts_send() {
        assert_eq!(
            hex::encode(&select_application()),
            "00A404000BE82B0601040181C31F020100"
        );
        assert_eq!(
            hex::encode(&verify(PinRef::User, b"648219")),
            "0020008106363438323139"
        );
        let init = Initialization {
            options: 0x0001,
            user_pin: b"648219",
            so_pin: b"57621880",
            user_pin_tries: 3,
            dkek_shares: None,
            key_domains: None,
            public_keys: None,
        };
        // What sc-hsm-tool --initialize sends (short form), as data.
        assert_eq!(
            hex::encode(&init.data()),
            "80020001810636343832313982083537363231383830910103"
        );
        assert_eq!(
            hex::encode(&update_binary(0x2F03, &[1, 2])),
            "00D72F03000008540200005302010200 00".replace(' ', "")
        );
    }
}
