//! Secure messaging as BSI TR-03110 defines it for chip authentication with AES-128
//! (id-CA-ECDH-AES-CBC-CMAC-128) and ISO 7816-4 encodes it: a protected command (CLA with
//! bits `0C`) carries its data encrypted in `87` (`01` ‖ cryptogram; `85` without the
//! indicator for odd instructions), its Le in `97` and a MAC in `8E`; the answer carries `87`,
//! the status word in `99` and a MAC.
//!
//! Encryption: AES-128-CBC under Kenc with IV = AES(Kenc, SSC), ISO 9797-1 padding 2 (`80 00
//! ..`). MAC: the first 8 bytes of AES-CMAC under Kmac over SSC ‖ the padded header (command
//! only) ‖ the data objects ‖ padding. The send sequence counter SSC (16 bytes, 0 after chip
//! authentication) goes up by one before each command and again before its answer.
//!
//! This module knows nothing of the card: it turns protected commands into plain ones and
//! plain answers into protected ones. Which channel is open, and what ends it, is
//! [`crate::card`]'s business.

use super::{tlv, Command};
use crate::crypto::aes::{self, AesKey, BLOCK};
use crate::crypto::constant_time_eq;

/// Length of the MAC in `8E`.
const MAC_LEN: usize = 8;

/// Why a protected command was refused (the card answers `6988` and closes the channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmError {
    /// The data objects do not have the expected structure, or the padding is wrong.
    Malformed,
    /// The MAC does not verify.
    BadMac,
}

/// The session keys chip authentication agreed: Kenc and Kmac (AES-128 for
/// id-CA-ECDH-AES-CBC-CMAC-128; the channel works with any AES key).
pub struct SessionKeys {
    pub enc: AesKey,
    pub mac: AesKey,
}

/// The session keys and counter of one secure channel.
pub struct Channel {
    enc: AesKey,
    mac: AesKey,
    ssc: u128,
}

/// ISO 9797-1 padding method 2 to whole blocks.
pub fn pad(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    aes::iso_pad(&mut out);
    out
}

/// Removes padding method 2; `None` when it is not there.
fn unpad(data: &[u8]) -> Option<&[u8]> {
    let end = data.iter().rposition(|b| *b != 0)?;
    (data[end] == 0x80 && data.len() - end <= BLOCK).then(|| &data[..end])
}

impl Channel {
    /// A channel with the session keys chip authentication derived; SSC 0.
    pub fn new(keys: SessionKeys) -> Channel {
        Channel {
            enc: keys.enc,
            mac: keys.mac,
            ssc: 0,
        }
    }

    fn ssc_block(&self) -> [u8; 16] {
        self.ssc.to_be_bytes()
    }

    /// The MAC over SSC ‖ `blocks` (already padded to whole blocks).
    fn mac(&self, blocks: &[u8]) -> [u8; MAC_LEN] {
        let mut input = self.ssc_block().to_vec();
        input.extend_from_slice(blocks);
        let full = aes::cmac(&self.mac, &input);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    fn iv(&self) -> [u8; 16] {
        self.enc.encrypt_block(&self.ssc_block())
    }

    /// The plain command inside protected command `command`: the class without the SM bits,
    /// the decrypted data, the Le of `97`. The MAC is checked before anything is decrypted.
    pub fn unwrap_command(&mut self, command: &Command) -> Result<Command, SmError> {
        self.ssc = self.ssc.wrapping_add(1);
        let objects = tlv::parse_all(&command.data).ok_or(SmError::Malformed)?;
        let (mut cryptogram, mut le, mut mac) = (None, None, None);
        let mut mac_input_end = 0;
        for (i, object) in objects.iter().enumerate() {
            match object.tag {
                0x87 | 0x85 if cryptogram.is_none() && i == 0 => cryptogram = Some(*object),
                0x97 if le.is_none() && mac.is_none() => le = Some(object.value),
                0x8E if i == objects.len() - 1 => mac = Some(object.value),
                _ => return Err(SmError::Malformed),
            }
            if object.tag != 0x8E {
                mac_input_end += tlv::encode(object.tag, object.value).len();
            }
        }
        let mac = mac.ok_or(SmError::Malformed)?;
        let header = [command.cla, command.ins, command.p1, command.p2];
        // The padded header, then the data objects padded (none: the header alone).
        let mut authenticated = pad(&header);
        if mac_input_end > 0 {
            authenticated.extend_from_slice(&pad(&command.data[..mac_input_end]));
        }
        let expected = self.mac(&authenticated);
        if !constant_time_eq(mac, &expected) {
            return Err(SmError::BadMac);
        }
        let data = match cryptogram {
            None => Vec::new(),
            Some(object) => {
                let encrypted = match (object.tag, object.value) {
                    (0x87, [0x01, rest @ ..]) => rest,
                    (0x85, rest) => rest,
                    _ => return Err(SmError::Malformed),
                };
                if encrypted.is_empty() {
                    return Err(SmError::Malformed);
                }
                let plain = aes::cbc_decrypt_iv(&self.enc, &self.iv(), encrypted)
                    .map_err(|_| SmError::Malformed)?;
                unpad(&plain).ok_or(SmError::Malformed)?.to_vec()
            }
        };
        let le = match le {
            None => None,
            Some([0]) => Some(256),
            Some([n]) => Some(usize::from(*n)),
            Some([0, 0]) => Some(65536),
            Some([hi, lo]) => Some(usize::from(u16::from_be_bytes([*hi, *lo]))),
            Some(_) => return Err(SmError::Malformed),
        };
        Ok(Command {
            cla: command.cla & !0x0C,
            ins: command.ins,
            p1: command.p1,
            p2: command.p2,
            extended: data.len() > 255 || le.is_some_and(|n| n > 256),
            data,
            le,
        })
    }

    /// The protected answer for plain answer `data` ‖ `sw`: `87` (when there is data),
    /// `99 02 sw`, `8E 08 MAC`.
    pub fn wrap_response(&mut self, data: &[u8], sw: [u8; 2]) -> Vec<u8> {
        self.ssc = self.ssc.wrapping_add(1);
        let mut objects = Vec::new();
        if !data.is_empty() {
            let encrypted = aes::cbc_encrypt_padded(&self.enc, &self.iv(), data);
            let mut value = vec![0x01];
            value.extend_from_slice(&encrypted);
            tlv::write(&mut objects, 0x87, &value);
        }
        tlv::write(&mut objects, 0x99, &sw);
        let mac = self.mac(&pad(&objects));
        tlv::write(&mut objects, 0x8E, &mac);
        objects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::hex;
    use zeroize::Zeroizing;

    fn channel() -> Channel {
        let enc: [u8; 16] = std::array::from_fn(|i| i as u8);
        let mac: [u8; 16] = std::array::from_fn(|i| 16 + i as u8);
        Channel::new(SessionKeys {
            enc: AesKey::Aes128(Zeroizing::new(enc)),
            mac: AesKey::Aes128(Zeroizing::new(mac)),
        })
    }

    fn command(text: &str) -> Command {
        Command::parse(&hex::decode(text).unwrap()).unwrap()
    }

    /// Known answers computed with Python's `cryptography` from TR-03110 and ISO 7816-4
    /// (`conformance-tests/scripts/sm_client.py`'s encoding), SSC counting from 0.
    #[test]
    fn known_commands_and_answers() {
        let mut c = channel();
        let plain = c
            .unwrap_command(&command(
                "0C2000811D8711014C4B458D7F7526569AE66F87733215D48E0807A655E97299B848",
            ))
            .unwrap();
        assert_eq!(
            (plain.cla, plain.ins, plain.p1, plain.p2),
            (0x00, 0x20, 0x00, 0x81)
        );
        assert_eq!((plain.data.as_slice(), plain.le), (&b"648219"[..], None));
        assert_eq!(
            hex::encode(&c.wrap_response(&[], [0x90, 0x00])),
            "990290008E08B0C5A464BA2D9BA3"
        );
        let plain = c
            .unwrap_command(&command("8C5A01810D9701008E087AE5B1C23F77230C"))
            .unwrap();
        assert_eq!(
            (plain.cla, plain.le, plain.data.len()),
            (0x80, Some(256), 0)
        );
        assert_eq!(
            hex::encode(&c.wrap_response(&[1, 2, 3, 4, 5, 6, 7, 8], [0x90, 0x00])),
            "87110108801D5484B138B470390C79EC1F5EBD990290008E08ECEE4C9D8C690684"
        );
        // Case 1: the MAC covers the padded header alone.
        let plain = c
            .unwrap_command(&command("0C2000810A8E0883486BD79D2935BD"))
            .unwrap();
        assert_eq!((plain.data.len(), plain.le), (0, None));
    }

    #[test]
    fn a_wrong_mac_a_replay_and_broken_objects_are_refused() {
        let good = "0C2000811D8711014C4B458D7F7526569AE66F87733215D48E0807A655E97299B848";
        let mut bad = hex::decode(good).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            channel()
                .unwrap_command(&Command::parse(&bad).unwrap())
                .err(),
            Some(SmError::BadMac)
        );
        // The same command again: the counter moved on, so its MAC no longer verifies.
        let mut c = channel();
        assert!(c.unwrap_command(&command(good)).is_ok());
        assert_eq!(
            c.unwrap_command(&command(good)).err(),
            Some(SmError::BadMac)
        );
        // No MAC; an unknown object; the MAC not last.
        for text in [
            "0C20008103970100",
            "0C2000810A9F0883486BD79D2935BD",
            "0C2000810D8E0883486BD79D2935BD970100",
        ] {
            assert_eq!(
                channel().unwrap_command(&command(text)).err(),
                Some(SmError::Malformed),
                "{text}"
            );
        }
    }

    #[test]
    fn padding() {
        assert_eq!(pad(b""), [&[0x80][..], &[0; 15]].concat());
        assert_eq!(unpad(&pad(b"abc")), Some(&b"abc"[..]));
        assert_eq!(unpad(&[0; 16]), None);
        assert_eq!(unpad(&[1; 16]), None);
    }
}
