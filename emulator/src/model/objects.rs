//! The objects of the application as hosts see them: file identifiers, their prefixes, who
//! may read or write them, and the control parameters SELECT answers.

/// EF.C_DevAut: device certificate and issuer certificate.
pub const EF_DEVICE_CERTIFICATES: u16 = 0x2F02;
/// EF.TokenInfo: the token label.
pub const EF_TOKEN_INFO: u16 = 0x2F03;
/// Where hosts limited to short APDUs stage what UNWRAP KEY, MANAGE PKA or DECIPHER `84` get
/// without data (a key blob, an authenticated request).
pub const EF_STAGING: u16 = 0x2F10;

/// Object prefixes (the high byte of a FID).
pub mod prefix {
    /// Private or secret key.
    pub const KEY: u8 = 0xCC;
    /// Private data object, readable after user PIN verification only.
    pub const PRIVATE_DATA: u8 = 0xCD;
    /// Certificate or CV request of the key with the same id.
    pub const CERTIFICATE: u8 = 0xCE;
    /// CA certificate.
    pub const CA_CERTIFICATE: u8 = 0xCA;
    /// Data object anyone may read.
    pub const PUBLIC_DATA: u8 = 0xCF;
    /// PKCS#15 descriptions hosts write: of a private key, of a certificate, of a data object.
    pub const KEY_DESCRIPTION: u8 = 0xC4;
    pub const CERTIFICATE_DESCRIPTION: u8 = 0xC8;
    pub const DATA_DESCRIPTION: u8 = 0xC9;
}

/// EF.DIR, which hosts look for (the card has none).
pub const EF_DIR: u16 = 0x2F00;

/// What `fid` names on this card, in words: a fixed EF, or the kind of object its prefix
/// says (the low byte is then the object's id).
pub fn kind_of(fid: u16) -> &'static str {
    match fid.to_be_bytes() {
        _ if fid == EF_DIR => "EF.DIR",
        _ if fid == EF_DEVICE_CERTIFICATES => "device certificates",
        _ if fid == EF_TOKEN_INFO => "token info",
        _ if fid == EF_STAGING => "staging file",
        [prefix::KEY, _] => "key",
        [prefix::PRIVATE_DATA, _] => "private data",
        [prefix::CERTIFICATE, _] => "certificate",
        [prefix::CA_CERTIFICATE, _] => "CA certificate",
        [prefix::PUBLIC_DATA, _] => "public data",
        [prefix::KEY_DESCRIPTION, _] => "private key description",
        [prefix::CERTIFICATE_DESCRIPTION, _] => "certificate description",
        [prefix::DATA_DESCRIPTION, _] => "data object description",
        _ => "file",
    }
}

/// Who may do something with an object; [`crate::applet::session::Session::require`] checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Always,
    UserPin,
    Never,
}

/// The key id of a key FID `CCxx`.
pub fn key_id(fid: u16) -> Option<u8> {
    let [hi, lo] = fid.to_be_bytes();
    (hi == prefix::KEY).then_some(lo)
}

/// The FID of key `id`.
pub fn key_fid(id: u8) -> u16 {
    u16::from_be_bytes([prefix::KEY, id])
}

/// The FID of the certificate (or CV request) of key `id`.
pub fn certificate_fid(id: u8) -> u16 {
    u16::from_be_bytes([prefix::CERTIFICATE, id])
}

/// Who may read `fid` with READ BINARY.
pub fn read_access(fid: u16) -> Access {
    match fid.to_be_bytes() {
        [prefix::KEY, _] => Access::Never,
        [prefix::PRIVATE_DATA, _] => Access::UserPin,
        _ => Access::Always,
    }
}

/// Who may create, write or delete `fid`.
pub fn write_access(fid: u16) -> Access {
    match fid.to_be_bytes() {
        _ if fid == EF_DEVICE_CERTIFICATES => Access::Never,
        [prefix::KEY, _] => Access::Never,
        _ => Access::UserPin,
    }
}

/// Whether `fid` can name a file at all (not the MF, not the reserved values).
pub fn is_valid_fid(fid: u16) -> bool {
    !matches!(fid, 0x0000 | 0x3F00 | 0x3FFF | 0xFFFF)
}

/// The FCP/FCI content of an EF of `size` bytes: `80 size, 82 01 01 (working EF), 83 fid`.
pub fn ef_control_parameters(fid: u16, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(13);
    let size = u16::try_from(size).unwrap_or(u16::MAX);
    out.extend_from_slice(&[0x80, 0x02]);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&[0x82, 0x01, 0x01, 0x83, 0x02]);
    out.extend_from_slice(&fid.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rules() {
        assert_eq!(read_access(0xCC01), Access::Never);
        assert_eq!(read_access(0xCD01), Access::UserPin);
        assert_eq!(read_access(0xCF01), Access::Always);
        assert_eq!(read_access(EF_DEVICE_CERTIFICATES), Access::Always);
        assert_eq!(write_access(EF_DEVICE_CERTIFICATES), Access::Never);
        assert_eq!(write_access(0xCC00), Access::Never);
        assert_eq!(write_access(EF_TOKEN_INFO), Access::UserPin);
        assert_eq!(key_id(0xCC05), Some(5));
        assert_eq!(key_id(0xC405), None);
    }

    #[test]
    fn fcp_matches_the_real_card() {
        // Real card, SELECT 2F02: 6F 0B 80 02 01 CE 82 01 01 83 02 2F 02
        assert_eq!(
            ef_control_parameters(0x2F02, 0x1CE),
            vec![0x80, 0x02, 0x01, 0xCE, 0x82, 0x01, 0x01, 0x83, 0x02, 0x2F, 0x02]
        );
    }
}
