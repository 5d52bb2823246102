//! The hash functions of the card's algorithm identifiers.

use sha2::Digest;

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
            Hash::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04,
                0x14,
            ],
            Hash::Sha224 => &[
                0x30, 0x2D, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x04, 0x05, 0x00, 0x04, 0x1C,
            ],
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
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
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
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
            crate::hex::encode(&Hash::Sha1.digest(b"abc")),
            "A9993E364706816ABA3E25717850C26C9CD0D89D"
        );
        assert_eq!(Hash::from_nibble(0), None);
        let digest = Hash::Sha256.digest(b"abc");
        let info = [Hash::Sha256.digest_info_prefix(), &digest].concat();
        assert_eq!(Hash::identify(&info), Some((Hash::Sha256, &digest[..])));
        assert_eq!(Hash::identify(&digest), Some((Hash::Sha256, &digest[..])));
        assert_eq!(Hash::identify(&info[1..]), None);
        assert_eq!(Hash::from_output_len(16), None);
    }
}
