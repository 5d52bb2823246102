//! The prepared cards are in the states they name; the checker catches what it names.

use super::invariants::{check, secrets, Snapshot};
use super::*;

#[test]
fn every_start_state_builds() {
    for start in Start::ALL {
        let mut card = card(start, 7);
        let r = card.transmit(&[0x00, 0x20, 0x00, 0x81]);
        let expected: &[u8] = match start {
            Start::Blank => &[0x6A, 0x88],
            Start::Initialized | Start::DkekPending => &[0x63, 0xC3],
            Start::LoggedIn | Start::WithKeysAndDkek | Start::FourK => &[0x90, 0x00],
        };
        assert_eq!(r, expected, "{start:?}");
    }
}

#[test]
fn the_checker_catches_what_it_names() {
    let card = card(Start::WithKeysAndDkek, 1);
    let before = Snapshot::of(&card);
    let secrets = secrets(&card);
    let mut after = before.clone();
    after.files.insert(0xCF09, vec![1]);
    assert!(check(
        &before,
        &secrets,
        &[0x00, 0xD7, 0xCF, 0x09],
        &[0x69, 0x82],
        &after
    )
    .is_err());
    let mut leaked = secrets[2].clone();
    leaked.extend_from_slice(&[0x90, 0x00]);
    assert!(check(
        &before,
        &secrets,
        &[0x00, 0x84, 0x00, 0x00, 0x20],
        &leaked,
        &before
    )
    .is_err());
    let mut raised = before.clone();
    raised.user_tries = Some(9);
    assert!(check(
        &before,
        &secrets,
        &[0x00, 0x84, 0x00, 0x00, 0x08],
        &[0x90, 0x00],
        &raised
    )
    .is_err());
    assert!(check(
        &before,
        &secrets,
        &[0x00, 0x84, 0x00, 0x00, 0x08],
        &[1, 2, 0x90, 0x00],
        &before
    )
    .is_ok());
}
