//! How long a throw-away card takes, beside SoftHSM2's throw-away token: wall time of
//! `sc-hsm-emulator sandbox -- pkcs11-tool -L` (private pcscd, a new initialised card, the
//! listing, the teardown), of `sandbox -- true` (set-up and teardown alone), and of
//! `softhsm2-util --init-token` plus the same listing through SoftHSM2.
//!
//! `cargo run --release -p conformance-tests --bin sandbox-bench` (as root, needs softhsm2);
//! `BENCH_N` runs of each (default 31). Prints min, median and 90th percentile.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conformance_tests::{emulator_binary, softhsm_token, SOFTHSM};

fn timed(mut command: Command) -> Duration {
    let started = Instant::now();
    let out = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn figures(name: &str, mut runs: Vec<Duration>) {
    runs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {name} | {:.0} ms | {:.0} ms | {:.0} ms |",
        ms(runs[0]),
        ms(runs[runs.len() / 2]),
        ms(runs[runs.len() * 9 / 10])
    );
}

/// Making a SoftHSM2 token and listing it: what a test using SoftHSM2 spends per run.
fn softhsm_run(dir: &Path) -> Duration {
    let started = Instant::now();
    let conf = softhsm_token(dir);
    let mut list = Command::new("pkcs11-tool");
    list.env("SOFTHSM2_CONF", &conf)
        .args(["--module", SOFTHSM, "-L"]);
    timed(list);
    started.elapsed()
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(31);
    let emulator = emulator_binary();
    let sandbox = |command: &[&str]| {
        let mut c = Command::new(emulator);
        c.arg("sandbox").arg("--").args(command);
        c
    };
    // One run each first, so that nothing is measured cold.
    timed(sandbox(&["true"]));
    let listing: Vec<Duration> = (0..n)
        .map(|_| timed(sandbox(&["pkcs11-tool", "-L"])))
        .collect();
    let bare: Vec<Duration> = (0..n).map(|_| timed(sandbox(&["true"]))).collect();
    let softhsm: Vec<Duration> = (0..n)
        .map(|_| softhsm_run(tempfile::tempdir().unwrap().path()))
        .collect();
    println!("{n} runs each, wall time:\n");
    println!("| what | min | median | 90th percentile |");
    println!("|---|---|---|---|");
    figures(
        "`sandbox -- pkcs11-tool -L` (new initialised card)",
        listing,
    );
    figures("`sandbox -- true` (set-up and teardown)", bare);
    figures(
        "SoftHSM2: `softhsm2-util --init-token` + `pkcs11-tool -L`",
        softhsm,
    );
}
