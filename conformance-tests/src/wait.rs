//! Waiting for a condition by polling it, never by sleeping for a guessed time.

use std::time::{Duration, Instant};

/// How long to wait for pcscd or a card before failing the test.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `condition` until it holds or `READY_TIMEOUT` passes.
pub fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    wait_until_or(what, condition, String::new);
}

/// As [`wait_until`]; on timeout the panic message ends with `context()`.
pub fn wait_until_or(
    what: &str,
    mut condition: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    while !condition() {
        assert!(
            start.elapsed() < READY_TIMEOUT,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
