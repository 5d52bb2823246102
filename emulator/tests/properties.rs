//! Property tests of the card's invariants (proptest shrinks any counterexample to a minimal
//! APDU sequence).

use emulator::apdu::Command;
use emulator::testkit::invariants::Snapshot;
use emulator::testkit::{self, Start};
use proptest::prelude::*;

fn start_state() -> impl Strategy<Value = Start> {
    prop::sample::select(Start::ALL.to_vec())
}

/// A chunk in the format of `testkit::apdus`: selector (steers to a command) and body.
fn chunk() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (0u8..0x60, prop::collection::vec(any::<u8>(), 0..40))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Every command sequence on every card keeps every invariant (see `testkit::check`).
    #[test]
    fn command_sequences_keep_the_invariants(start in start_state(), chunks in prop::collection::vec(chunk(), 1..16)) {
        let mut data = vec![0x42];
        for (selector, body) in chunks {
            data.push((body.len() + 1) as u8);
            data.push(selector);
            data.extend(body);
        }
        testkit::run(start, &data);
    }

    /// Wrong PINs cost exactly one try each, the counter never rises, and blocked stays blocked
    /// even for the right PIN; before blocking, the right PIN restores the counter.
    #[test]
    fn retry_counter_rules(attempts in prop::collection::vec(prop::bool::weighted(0.3), 1..12)) {
        let mut card = testkit::card(Start::Initialized, 3);
        let mut expected: u8 = 3;
        for right in attempts {
            let pin: &[u8] = if right { testkit::USER_PIN } else { b"000000" };
            let mut apdu = vec![0x00, 0x20, 0x00, 0x81, pin.len() as u8];
            apdu.extend_from_slice(pin);
            let answer = card.transmit(&apdu);
            if expected == 0 {
                prop_assert_eq!(answer, vec![0x69, 0x83]);
            } else if right {
                prop_assert_eq!(answer, vec![0x90, 0x00]);
                expected = 3;
            } else {
                expected -= 1;
                prop_assert_eq!(answer, vec![0x63, 0xC0 | expected]);
            }
            prop_assert_eq!(Snapshot::of(&card).user_tries, Some(expected));
        }
    }

    /// Whatever the parser accepts, encoding gives back an APDU that parses the same.
    #[test]
    fn apdu_encoding_round_trips(
        cla in any::<u8>(), ins in any::<u8>(), p1 in any::<u8>(), p2 in any::<u8>(),
        data in prop::collection::vec(any::<u8>(), 0..400),
        le in prop::option::of(1usize..=65536),
    ) {
        let command = Command { cla, ins, p1, p2, data, le, extended: false };
        let parsed = Command::parse(&command.to_bytes()).unwrap();
        prop_assert_eq!((parsed.cla, parsed.ins, parsed.p1, parsed.p2), (cla, ins, p1, p2));
        prop_assert_eq!(parsed.data, command.data);
        prop_assert_eq!(parsed.le, command.le);
    }

    /// The parser never panics on arbitrary bytes.
    #[test]
    fn apdu_parser_total(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Command::parse(&bytes);
    }
}
