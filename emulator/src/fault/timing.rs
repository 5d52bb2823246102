//! How long the physical card takes ([`Timing::Physical`]): per kind of work ([`Work`]), the
//! time a SmartCard-HSM 4K in a USB CCID reader needs from command to answer. The emulator
//! answers as fast as it can ([`Timing::None`], the default); with the physical profile an
//! answer waits until the physical card's time has passed. Where each figure comes from is
//! in the README ("Timing profile").

use std::time::Duration;

use crate::card::work::Work;

/// The timing profile of a card.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Timing {
    /// As fast as the emulator can.
    #[default]
    None,
    /// About as long as the physical card.
    Physical,
}

impl Timing {
    /// The name the command line and the control channel use.
    pub fn name(self) -> &'static str {
        match self {
            Timing::None => "none",
            Timing::Physical => "physical",
        }
    }

    /// How long `work` takes on a card of this profile (zero: no slower than the emulator).
    pub fn of(self, work: Work) -> Duration {
        match self {
            Timing::None => Duration::ZERO,
            Timing::Physical => Duration::from_millis(physical_ms(work)),
        }
    }
}

impl std::str::FromStr for Timing {
    type Err = String;

    fn from_str(text: &str) -> Result<Timing, String> {
        match text {
            "none" => Ok(Timing::None),
            "physical" => Ok(Timing::Physical),
            other => Err(format!(
                "unknown timing {other:?}: physical (as the physical card) or none (as fast as possible)"
            )),
        }
    }
}

/// The time of one short command's round trip through a USB CCID reader (SELECT: 7-9 ms).
const ROUND_TRIP_MS: u64 = 8;

/// The physical card's time for `work`, in milliseconds, from command to answer at the
/// reader. The figures and their sources are the README's "Timing profile" table: the chip's
/// own measurements (NXP JCOP3 P60, the SmartCard-HSM 4K's controller, by JCAlgTest) plus
/// the transfer (about 0.1 ms per byte over T=1 at 3.6 MHz) and the applet's work around
/// them. RSA key generation is the median of the measured runs (its spread is wide: 2.2 to
/// 12 s for 2048 bits).
fn physical_ms(work: Work) -> u64 {
    match work {
        Work::Nothing => ROUND_TRIP_MS,
        Work::Read { bytes } => 3 + bytes as u64 / 10,
        Work::Write { bytes } => 5 + bytes as u64 / 10,
        Work::PinCheck => 15,
        Work::Initialize => 2_000,
        Work::GenerateRsa { bits } => match bits {
            0..=1024 => 1_250,
            1025..=2048 => 5_700,
            2049..=3072 => 27_000,
            _ => 51_000,
        },
        Work::GenerateEc { bits } => match bits {
            0..=256 => 330,
            257..=320 => 410,
            321..=384 => 510,
            385..=512 => 800,
            _ => 910,
        },
        Work::GenerateAes => 60,
        Work::RsaPrivate { bits } => match bits {
            0..=1024 => 90,
            1025..=2048 => 250,
            2049..=3072 => 580,
            _ => 1_140,
        },
        Work::EcPrivate { bits } => match bits {
            0..=256 => 70,
            257..=320 => 85,
            321..=384 => 105,
            385..=512 => 165,
            _ => 195,
        },
        Work::Aes => 45,
        Work::KeyWrap => 150,
        Work::KeyDomain => 60,
        Work::Authentication => 250,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_timing_adds_nothing_and_physical_grows_with_the_work() {
        assert_eq!(
            Timing::None.of(Work::GenerateRsa { bits: 4096 }),
            Duration::ZERO
        );
        let physical = |w| Timing::Physical.of(w);
        assert!(
            physical(Work::GenerateRsa { bits: 2048 }) > physical(Work::GenerateRsa { bits: 1024 })
        );
        assert!(
            physical(Work::GenerateRsa { bits: 4096 }) > physical(Work::GenerateRsa { bits: 2048 })
        );
        assert!(
            physical(Work::RsaPrivate { bits: 2048 }) > physical(Work::EcPrivate { bits: 256 })
        );
        assert!(physical(Work::Nothing) >= Duration::from_millis(ROUND_TRIP_MS));
        assert_eq!("physical".parse::<Timing>(), Ok(Timing::Physical));
        assert!("fast"
            .parse::<Timing>()
            .unwrap_err()
            .contains("unknown timing"));
    }
}
