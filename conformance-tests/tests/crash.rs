//! Crash consistency through the real stack: a PC/SC client (src/bin/crash-client.rs) runs
//! state-changing commands (UPDATE BINARY, DELETE FILE, GENERATE, VERIFY wrong and right,
//! IMPORT DKEK SHARE, WRAP/UNWRAP, INITIALIZE) while this test SIGKILLs the emulator at random
//! moments and restarts it. After every kill the database must open and load (checked offline
//! here), and after every restart the client checks that every acknowledged change is there.
//!
//! `SC_HSM_CRASH_KILLS` sets the number of kills (default 6; the long run uses 200+).

use std::time::{Duration, Instant};

use emulator::crypto::rng::SeededRng;

use conformance_tests::{wait_until, wait_until_or, Sandbox};

fn kills() -> usize {
    std::env::var("SC_HSM_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let mut sandbox = Sandbox::start();
    let log = sandbox.scratch().join("client.log");
    let stop = sandbox.scratch().join("stop");
    let generation = sandbox.scratch().join("generation");
    let mut client = sandbox
        .command(env!("CARGO_BIN_EXE_crash-client"))
        .arg("7")
        .arg(&stop)
        .arg(&generation)
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start the crash client");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the client's first acknowledged change", || {
        read_log().contains("ACK ")
    });

    let mut random = SeededRng::new(0x9E37_79B9_7F4A_7C15, 0);
    let started = Instant::now();
    for kill in 0..kills() {
        // The kill schedule itself is what is random here; the test waits for conditions.
        std::thread::sleep(Duration::from_millis(20 + random.next_u64() % 300));
        sandbox.stop_card(0, "KILL");
        // Offline: the file opens (no lock left behind) and the whole state loads.
        let mut store = emulator::RedbStore::open(&sandbox.db_path(0))
            .expect("the database opens after SIGKILL");
        let state = emulator::Store::load(&mut store).expect("the state loads after SIGKILL");
        assert!(
            state.keys.contains_key(&0) && state.files.contains_key(&0x2F02),
            "device key or 2F02 lost at kill {kill}"
        );
        drop(store);
        let checks_before = read_log().matches("CHECKED").count();
        sandbox.restart_killed_card(0);
        std::fs::write(&generation, (kill + 1).to_string()).unwrap();
        wait_until_or(
            "the client to check the card after the restart",
            || {
                let log = read_log();
                log.contains("VIOLATION") || log.matches("CHECKED").count() > checks_before
            },
            || format!("client:\n{}\ncard:\n{}", read_log(), sandbox.card_log(0)),
        );
        assert!(!read_log().contains("VIOLATION"), "{}", read_log());
    }
    std::fs::write(&stop, b"").unwrap();
    let status = client.wait().unwrap();
    let log = read_log();
    assert!(status.success(), "{log}");
    assert!(!log.contains("VIOLATION"), "{log}");
    let done = log
        .lines()
        .find(|l| l.starts_with("DONE"))
        .unwrap_or_else(|| panic!("no summary:\n{log}"));
    println!(
        "{} kills in {:?}, every card back without a pcscd restart: {done}",
        kills(),
        started.elapsed()
    );
    assert!(
        log.matches("ACK ").count() > kills(),
        "too few acknowledged changes:\n{log}"
    );
}
