//! The Device Key Encryption Key: assembled from shares by IMPORT DKEK SHARE.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A DKEK share or a complete DKEK: 32 bytes, wiped on drop.
pub type DkekValue = Zeroizing<[u8; 32]>;

/// What the card knows about its DKEK.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Dkek {
    /// Initialised without DKEK shares (or never initialised): no key wrapping.
    #[default]
    Absent,
    /// Waiting for `total - imported` more shares; `value` is the XOR of those imported.
    Pending {
        total: u8,
        imported: u8,
        value: DkekValue,
    },
    /// Complete: `total` shares were combined (0 when the card generated the DKEK itself).
    Ready { total: u8, value: DkekValue },
}

impl Dkek {
    /// A DKEK waiting for `total` shares (`total > 0`).
    pub fn awaiting(total: u8) -> Dkek {
        Dkek::Pending {
            total,
            imported: 0,
            value: Zeroizing::new([0; 32]),
        }
    }

    /// The state after XOR-ing one more share in; `None` if no share is expected.
    pub fn with_share(&self, share: &[u8; 32]) -> Option<Dkek> {
        match self {
            Dkek::Pending {
                total,
                imported,
                value,
            } => {
                let mut next = value.clone();
                next.iter_mut().zip(share).for_each(|(v, s)| *v ^= s);
                let imported = imported + 1;
                Some(if imported >= *total {
                    Dkek::Ready {
                        total: *total,
                        value: next,
                    }
                } else {
                    Dkek::Pending {
                        total: *total,
                        imported,
                        value: next,
                    }
                })
            }
            _ => None,
        }
    }

    /// The status answer of IMPORT DKEK SHARE: total, missing, KCV (zeros while pending).
    pub fn status_answer(&self) -> Option<Vec<u8>> {
        let (total, missing, kcv) = match self {
            Dkek::Absent => return None,
            Dkek::Pending {
                total, imported, ..
            } => (*total, total - imported, [0u8; 8]),
            Dkek::Ready { total, value } => (*total, 0, kcv(value)),
        };
        let mut out = vec![total, missing];
        out.extend_from_slice(&kcv);
        Some(out)
    }
}

/// Key check value: the first 8 bytes of SHA-256 of the key.
pub fn kcv(value: &[u8; 32]) -> [u8; 8] {
    let digest = Sha256::digest(value);
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_xor_into_the_dkek() {
        let a = [0x11u8; 32];
        let b = [0x22u8; 32];
        let d = Dkek::awaiting(2);
        assert_eq!(d.status_answer().unwrap()[..2], [2, 2]);
        let d = d.with_share(&a).unwrap();
        assert_eq!(d.status_answer().unwrap()[..2], [2, 1]);
        let d = d.with_share(&b).unwrap();
        let expected = [0x33u8; 32];
        assert_eq!(
            d.status_answer().unwrap(),
            [&[2u8, 0][..], &kcv(&expected)].concat()
        );
        assert_eq!(d.with_share(&a), None);
    }

    #[test]
    fn kcv_of_a_real_share() {
        // ../shared/fixtures/real-card: share of dkek-share-kcv97E3.pbe and the KCV the card printed.
        let share = crate::tools::hex::decode(
            "2848CB6E994F5A00C365C3C255ED130512CE1EB06BF08D348EEB8B2F866E3E50",
        )
        .unwrap();
        let share: [u8; 32] = share.try_into().unwrap();
        assert_eq!(crate::tools::hex::encode(&kcv(&share)), "97E303855DC1C54D");
    }
}
