//! The vpcd link itself: APDU rate through pcscd, and the card coming back after pcscd restarts.

use std::time::Instant;

use conformance_tests::Sandbox;

/// vpcd sends each frame in two segments; without TCP_QUICKACK on the card's side every APDU
/// waits ~40 ms for a delayed ACK (about 20 APDUs per second). This pins the fix: the rate is
/// printed, and the assertion sits far below the measured figure and far above the stall.
#[test]
fn hundreds_of_apdus_per_second_through_pcscd() {
    let sandbox = Sandbox::start();
    const N: usize = 400;
    let mut args = vec![
        "-s".to_string(),
        "00A404000BE82B0601040181C31F020100".to_string(),
    ];
    for _ in 1..N {
        args.push("-s".into());
        args.push("0084000008".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    let out = sandbox.ok("opensc-tool", &args);
    let elapsed = start.elapsed();
    assert_eq!(out.matches("SW1=0x90, SW2=0x00").count(), N, "{out}");
    let rate = N as f64 / elapsed.as_secs_f64();
    println!("{N} APDUs through pcscd + vpcd in {elapsed:?}: {rate:.0} APDU/s");
    assert!(
        rate > 100.0,
        "only {rate:.1} APDU/s: the 40 ms delayed-ACK stall is back?"
    );
}

#[test]
fn card_comes_back_after_pcscd_restarts() {
    let mut sandbox = Sandbox::start();
    let serial_before = sandbox.ok("pkcs15-tool", &["-D"]);
    sandbox.restart_pcscd();
    sandbox.wait_for_card(0);
    let serial_after = sandbox.ok("pkcs15-tool", &["-D"]);
    assert_eq!(serial_before, serial_after);
}
