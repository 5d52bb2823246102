//! MANAGE KEY DOMAIN (`80 52`): the key domains, each with its own DKEK assembled from its own
//! shares. Domain 0 is the card's default DKEK, the one `80 52 00 00` (IMPORT DKEK SHARE)
//! has always managed; INITIALIZE tag 97 allocates the slots of the others.
//!
//! | P1 | data | needs | answer |
//! |---|---|---|---|
//! | `00` | none | - | total ‖ missing ‖ KCV (8); no data for a slot not created |
//! | `00` | share (32) | - | as above, after XOR-ing the share in |
//! | `01` | number of shares (1) | user PIN | as above, for the new domain (0 shares: the card generates the DKEK) |
//! | `02` | membership | - | `6A81`: XKEK domains need certificate verification |
//! | `03` | none | user PIN | `00 00` and a zero KCV; refused while keys of the domain exist |
//! | `04` | none | user PIN | as `00`: the shares are awaited again |

use zeroize::Zeroizing;

use super::command::DomainAction;
use crate::apdu::{Response, Status};
use crate::card::Card;
use crate::model::dkek::Dkek;
use crate::model::objects::Access;
use crate::model::Change;

/// The answer of a domain whose slot is empty: total, missing and KCV all zero.
const EMPTY_STATUS: [u8; 10] = [0; 10];

impl Card {
    /// MANAGE KEY DOMAIN: one `action` on key domain `kd`.
    pub(super) fn manage_key_domain(
        &mut self,
        kd: u8,
        action: DomainAction<'_>,
    ) -> Result<Response, Status> {
        // A card set up without key shares keeps answering 6D00 for its default domain, as
        // OpenSC's sc-hsm-tool expects ("not initialised for key shares").
        if kd == 0
            && matches!(self.state.dkek, Dkek::Absent)
            && matches!(action, DomainAction::Status | DomainAction::ImportShare(_))
        {
            return Err(Status::InsNotSupported);
        }
        let current = self.state.domain(kd).ok_or(Status::IncorrectP1P2)?.clone();
        let next = match action {
            DomainAction::Status => None,
            DomainAction::ImportShare(share) => {
                let share: &[u8; 32] = share.try_into().map_err(|_| Status::WrongLength)?;
                if matches!(current, Dkek::Absent) {
                    return Err(Status::ReferencedDataNotFound);
                }
                Some(current.with_share(share).ok_or(Status::CommandNotAllowed)?)
            }
            DomainAction::CreateDkek { shares } => {
                self.session.require(Access::UserPin)?;
                if !matches!(current, Dkek::Absent) {
                    return Err(Status::FileExists);
                }
                Some(self.new_dkek(shares))
            }
            DomainAction::Delete => {
                self.session.require(Access::UserPin)?;
                if matches!(current, Dkek::Absent) {
                    return Err(Status::ReferencedDataNotFound);
                }
                if self.domain_has_keys(kd) {
                    return Err(Status::ConditionsNotSatisfied);
                }
                Some(Dkek::Absent)
            }
            DomainAction::ClearKek => {
                self.session.require(Access::UserPin)?;
                Some(current.cleared().ok_or(Status::ReferencedDataNotFound)?)
            }
            DomainAction::CreateXkek => return Err(Status::FunctionNotSupported),
        };
        let state = match next {
            Some(dkek) => {
                self.commit(vec![Change::Domain(kd, dkek.clone())])?;
                dkek
            }
            None => current,
        };
        Ok(match state.status_answer() {
            Some(answer) => Response::ok(answer),
            // A slot not created answers no data; a deleted one the empty status.
            None if matches!(action, DomainAction::Delete) => Response::ok(EMPTY_STATUS.to_vec()),
            None => Response::empty(),
        })
    }

    /// A DKEK that waits for `shares` shares, or one the card generates (`0`).
    pub(super) fn new_dkek(&mut self, shares: u8) -> Dkek {
        match shares {
            0 => {
                let mut value = Zeroizing::new([0u8; 32]);
                self.rng.fill_bytes(&mut value[..]);
                Dkek::Ready { total: 0, value }
            }
            n => Dkek::awaiting(n),
        }
    }

    /// Whether any key of the card belongs to domain `kd`.
    fn domain_has_keys(&self, kd: u8) -> bool {
        self.state.keys.iter().any(|(id, key)| {
            *id != crate::model::key::DEVICE_KEY_ID && key.policy.domain_or_default() == kd
        })
    }
}
