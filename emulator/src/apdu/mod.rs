//! The ISO 7816-3/-4 APDU layer, the same for every transport: command parsing (cases 1-4,
//! short and extended) and response framing here, chaining and GET RESPONSE in [`layer`],
//! secure messaging in [`secure_messaging`], status words in [`status`], BER-TLV in [`tlv`].

pub(crate) mod layer;
pub mod secure_messaging;
pub mod status;
pub mod tlv;

pub use status::Status;

/// Largest response an extended Le can ask for (`00 00` = 65536).
pub const MAX_LE: usize = 65536;

/// A parsed command APDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// Command data (Lc bytes); empty for cases 1 and 2.
    pub data: Vec<u8>,
    /// Expected response length Ne: `None` when Le is absent (cases 1 and 3).
    pub le: Option<usize>,
    /// Whether the APDU used the extended length encoding.
    pub extended: bool,
}

impl Command {
    /// Parses a command APDU, walking the ISO 7816-3 cases in order.
    ///
    /// Anything that is not exactly one of the eight encodings answers `6700`.
    pub fn parse(apdu: &[u8]) -> Result<Command, Status> {
        let (header, body) = match apdu {
            [cla, ins, p1, p2, body @ ..] => ([*cla, *ins, *p1, *p2], body),
            _ => return Err(Status::WrongLength),
        };
        let build = |data: &[u8], le: Option<usize>, extended: bool| Command {
            cla: header[0],
            ins: header[1],
            p1: header[2],
            p2: header[3],
            data: data.to_vec(),
            le,
            extended,
        };
        let short_le = |b: u8| if b == 0 { 256 } else { usize::from(b) };
        let extended_le = |hi: u8, lo: u8| match u16::from_be_bytes([hi, lo]) {
            0 => MAX_LE,
            n => usize::from(n),
        };
        match body {
            // Case 1: header only.
            [] => Ok(build(&[], None, false)),
            // Case 2 short: one Le byte.
            [le] => Ok(build(&[], Some(short_le(*le)), false)),
            // Extended cases start with a zero byte followed by two length bytes.
            [0, hi, lo, rest @ ..] => {
                if rest.is_empty() {
                    // Case 2 extended: 00 Le Le.
                    return Ok(build(&[], Some(extended_le(*hi, *lo)), true));
                }
                let lc = usize::from(u16::from_be_bytes([*hi, *lo]));
                if lc == 0 {
                    return Err(Status::WrongLength);
                }
                match rest.len() {
                    // Case 3 extended: 00 Lc Lc data.
                    n if n == lc => Ok(build(rest, None, true)),
                    // Case 4 extended: 00 Lc Lc data Le Le.
                    n if n == lc + 2 => Ok(build(
                        &rest[..lc],
                        Some(extended_le(rest[lc], rest[lc + 1])),
                        true,
                    )),
                    _ => Err(Status::WrongLength),
                }
            }
            // Short cases 3 and 4: Lc (non-zero) then data, then maybe one Le byte.
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                if lc == 0 {
                    return Err(Status::WrongLength);
                }
                match rest.len() {
                    n if n == lc => Ok(build(rest, None, false)),
                    n if n == lc + 1 => Ok(build(&rest[..lc], Some(short_le(rest[lc])), false)),
                    _ => Err(Status::WrongLength),
                }
            }
        }
    }

    /// The class byte without the chaining bit.
    pub fn cla_without_chaining(&self) -> u8 {
        self.cla & !CLA_CHAINING
    }

    /// Whether the command is a non-final part of a chain (CLA bit 5 set).
    pub fn is_chained(&self) -> bool {
        self.cla & CLA_CHAINING != 0
    }

    /// Ne, or 0 when Le is absent.
    pub fn ne(&self) -> usize {
        self.le.unwrap_or(0)
    }

    /// Whether [`Command::to_bytes`] encodes it with extended lengths.
    fn encodes_extended(&self) -> bool {
        self.extended || self.data.len() > 255 || self.le.is_some_and(|n| n > 256)
    }

    /// Where the data starts in the command's encoding ([`Command::to_bytes`], or the APDU it
    /// was parsed from): after the header and Lc.
    pub fn data_offset(&self) -> usize {
        if self.encodes_extended() {
            7
        } else {
            5
        }
    }

    /// Encodes the command back into bytes (the shortest encoding that keeps `extended`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.cla, self.ins, self.p1, self.p2];
        if self.encodes_extended() {
            if !self.data.is_empty() {
                out.push(0);
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
                out.extend_from_slice(&self.data);
            }
            if let Some(le) = self.le {
                if self.data.is_empty() {
                    out.push(0);
                }
                out.extend_from_slice(&((le % MAX_LE) as u16).to_be_bytes());
            }
        } else {
            if !self.data.is_empty() {
                out.push(self.data.len() as u8);
                out.extend_from_slice(&self.data);
            }
            if let Some(le) = self.le {
                out.push((le % 256) as u8);
            }
        }
        out
    }
}

/// An extended-length command APDU: header, `data` (if any) and Le `00 00` (up to 65536
/// bytes of answer).
pub fn extended(header: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut apdu = header.to_vec();
    apdu.push(0);
    if !data.is_empty() {
        apdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
        apdu.extend_from_slice(data);
    }
    apdu.extend_from_slice(&[0, 0]);
    apdu
}

/// The chaining bit of the class byte (ISO 7816-4 5.4.1).
pub const CLA_CHAINING: u8 = 0x10;

/// A response APDU: data followed by a status word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub status: Status,
}

impl Response {
    /// A successful answer carrying `data`.
    pub fn ok(data: Vec<u8>) -> Response {
        Response {
            data,
            status: Status::Success,
        }
    }

    /// A successful answer without data.
    pub fn empty() -> Response {
        Response::ok(Vec::new())
    }

    /// Data and status word, as sent on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.status.sw());
        out
    }
}

impl From<Status> for Response {
    fn from(status: Status) -> Response {
        Response {
            data: Vec::new(),
            status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        crate::tools::hex::decode(s).unwrap()
    }

    #[test]
    fn case_1() {
        let c = Command::parse(&hex("00200081")).unwrap();
        assert_eq!((c.cla, c.ins, c.p1, c.p2), (0x00, 0x20, 0x00, 0x81));
        assert!(c.data.is_empty());
        assert_eq!(c.le, None);
    }

    #[test]
    fn case_2_short_le_zero_means_256() {
        let c = Command::parse(&hex("0084000000")).unwrap();
        assert_eq!(c.le, Some(256));
        let c = Command::parse(&hex("0084000008")).unwrap();
        assert_eq!(c.le, Some(8));
        assert!(!c.extended);
    }

    #[test]
    fn case_3_short() {
        let c = Command::parse(&hex("0020008106313233343536")).unwrap();
        assert_eq!(c.data, b"123456");
        assert_eq!(c.le, None);
    }

    #[test]
    fn case_4_short() {
        let c = Command::parse(&hex("00A404000BE82B0601040181C31F020100")).unwrap();
        assert_eq!(c.data, hex("E82B0601040181C31F0201"));
        assert_eq!(c.le, Some(256));
    }

    #[test]
    fn case_2_extended_le_zero_means_65536() {
        let c = Command::parse(&hex("80580000000000")).unwrap();
        assert_eq!(c.le, Some(65536));
        assert!(c.extended);
        let c = Command::parse(&hex("80580000000400")).unwrap();
        assert_eq!(c.le, Some(1024));
    }

    #[test]
    fn case_3_and_4_extended() {
        let c = Command::parse(&hex("8068017000000401020304")).unwrap();
        assert_eq!(c.data, hex("01020304"));
        assert_eq!(c.le, None);
        assert!(c.extended);
        let c = Command::parse(&hex("80680170000004010203040000")).unwrap();
        assert_eq!(c.le, Some(65536));
        let long = vec![0xAB; 300];
        let mut apdu = hex("8068017000012C");
        apdu.extend_from_slice(&long);
        apdu.extend_from_slice(&[0x01, 0x00]);
        let c = Command::parse(&apdu).unwrap();
        assert_eq!(c.data, long);
        assert_eq!(c.le, Some(256));
    }

    #[test]
    fn malformed_lengths_answer_6700() {
        for bad in [
            "",
            "00",
            "00A4",
            "00A404",
            "00200081063132",           // Lc 6, 2 bytes of data
            "002000810231323334",       // Lc 2, 4 bytes of data
            "0068017000000001",         // extended Lc 0
            "00680170000002010203",     // extended Lc 2, 3 bytes
            "006801700000020102030405", // extended Lc 2 + 3 trailing bytes
            "006801700000",             // zero byte and one length byte: neither short nor extended
        ] {
            assert_eq!(Command::parse(&hex(bad)), Err(Status::WrongLength), "{bad}");
        }
    }

    #[test]
    fn round_trip_encoding() {
        for apdu in [
            "00200081",
            "0084000008",
            "0020008106313233343536",
            "00A404000BE82B0601040181C31F020100",
            "80580000000000",
            "80680170000004010203040000",
        ] {
            assert_eq!(
                Command::parse(&hex(apdu)).unwrap().to_bytes(),
                hex(apdu),
                "{apdu}"
            );
        }
    }

    #[test]
    fn response_bytes() {
        let r = Response::ok(vec![1, 2]);
        assert_eq!(r.to_bytes(), vec![1, 2, 0x90, 0x00]);
        assert_eq!(
            Response::from(Status::NotFound).to_bytes(),
            vec![0x6A, 0x82]
        );
    }
}
