//! The hash functions of the card's algorithm identifiers.

use sha2::Digest;

/// Evaluates `$body` with `$d` as the digest type of `$hash` (a [`Hash`]).
macro_rules! with_digest {
    ($hash:expr, $d:ident => $body:expr) => {
        with_digest!(@arms $hash, $d, $body,
            Sha1 => sha1::Sha1, Sha224 => sha2::Sha224, Sha256 => sha2::Sha256,
            Sha384 => sha2::Sha384, Sha512 => sha2::Sha512)
    };
    (@arms $hash:expr, $d:ident, $body:expr, $($variant:ident => $digest:ty),*) => {
        match $hash {
            $($crate::crypto::hash::Hash::$variant => {
                type $d = $digest;
                $body
            })*
        }
    };
}
pub(crate) use with_digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The hash of a SIGN algorithm id's low nibble: 1 SHA-1 ... 5 SHA-512.
    pub fn from_nibble(n: u8) -> Option<Hash> {
        match n {
            1 => Some(Hash::Sha1),
            2 => Some(Hash::Sha224),
            3 => Some(Hash::Sha256),
            4 => Some(Hash::Sha384),
            5 => Some(Hash::Sha512),
            _ => None,
        }
    }

    /// The hash whose output has `len` bytes (how RSA-PSS algorithm 40 picks its hash).
    pub fn from_output_len(len: usize) -> Option<Hash> {
        match len {
            20 => Some(Hash::Sha1),
            28 => Some(Hash::Sha224),
            32 => Some(Hash::Sha256),
            48 => Some(Hash::Sha384),
            64 => Some(Hash::Sha512),
            _ => None,
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// The DER prefix of a PKCS#1 DigestInfo for this hash (the digest follows it).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha1 => &SHA1_DIGEST_INFO,
            Hash::Sha224 => &SHA224_DIGEST_INFO,
            Hash::Sha256 => &SHA256_DIGEST_INFO,
            Hash::Sha384 => &SHA384_DIGEST_INFO,
            Hash::Sha512 => &SHA512_DIGEST_INFO,
        }
    }

    /// Reads a hash given either bare (its length names the function) or wrapped in a
    /// DigestInfo, as hosts send it to RSA-PSS algorithm `40`.
    pub fn identify(input: &[u8]) -> Option<(Hash, &[u8])> {
        const ALL: [Hash; 5] = [
            Hash::Sha1,
            Hash::Sha224,
            Hash::Sha256,
            Hash::Sha384,
            Hash::Sha512,
        ];
        ALL.iter()
            .find_map(|h| {
                input
                    .strip_prefix(h.digest_info_prefix())
                    .filter(|d| d.len() == h.output_len())
                    .map(|d| (*h, d))
            })
            .or_else(|| Hash::from_output_len(input.len()).map(|h| (h, input)))
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        with_digest!(self, D => D::digest(data).to_vec())
    }
}

/// `30 21 30 09 06 05 <id-sha1> 05 00 04 14`
const SHA1_DIGEST_INFO: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14,
];
const SHA224_DIGEST_INFO: [u8; 19] = sha2_digest_info(0x04, 28);
const SHA256_DIGEST_INFO: [u8; 19] = sha2_digest_info(0x01, 32);
const SHA384_DIGEST_INFO: [u8; 19] = sha2_digest_info(0x02, 48);
const SHA512_DIGEST_INFO: [u8; 19] = sha2_digest_info(0x03, 64);

/// `30 <len> 30 0D 06 09 <2.16.840.1.101.3.4.2.variant> 05 00 04 <len>`
const fn sha2_digest_info(variant: u8, len: u8) -> [u8; 19] {
    [
        0x30,
        0x11 + len,
        0x30,
        0x0D,
        0x06,
        0x09,
        0x60,
        0x86,
        0x48,
        0x01,
        0x65,
        0x03,
        0x04,
        0x02,
        variant,
        0x05,
        0x00,
        0x04,
        len,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_known_answer() {
        for n in 1..=5 {
            let h = Hash::from_nibble(n).unwrap();
            assert_eq!(h.digest(b"abc").len(), h.output_len());
            assert_eq!(Hash::from_output_len(h.output_len()), Some(h));
        }
        assert_eq!(
            crate::tools::hex::encode(&Hash::Sha1.digest(b"abc")),
            "A9993E364706816ABA3E25717850C26C9CD0D89D"
        );
        assert_eq!(Hash::from_nibble(0), None);
        let digest = Hash::Sha256.digest(b"abc");
        let info = [Hash::Sha256.digest_info_prefix(), &digest].concat();
        assert_eq!(Hash::identify(&info), Some((Hash::Sha256, &digest[..])));
        assert_eq!(Hash::identify(&digest), Some((Hash::Sha256, &digest[..])));
        assert_eq!(Hash::identify(&info[1..]), None);
        assert_eq!(Hash::from_output_len(16), None);
        // DigestInfo prefixes of RFC 8017, section 9.2, note 1.
        for (hash, prefix) in [
            (Hash::Sha224, "302D300D06096086480165030402040500041C"),
            (Hash::Sha256, "3031300D060960864801650304020105000420"),
            (Hash::Sha384, "3041300D060960864801650304020205000430"),
            (Hash::Sha512, "3051300D060960864801650304020305000440"),
            (Hash::Sha1, "3021300906052B0E03021A05000414"),
        ] {
            assert_eq!(crate::tools::hex::encode(hash.digest_info_prefix()), prefix);
        }
    }
}
