//! `sc-hsm-emulator sandbox -- COMMAND`: a private pcscd ([`PrivatePcscd`]) with the card(s) in
//! its vpcd slots, COMMAND run against them, everything torn down after, COMMAND's exit code
//! returned.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use vpcd_bridge::private_pcscd::{poll, PrivatePcscd};

use crate::cli::{Making, Profile, SandboxArgs};

/// How long to wait for the card(s) to be present in pcscd.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a card may take to stop cleanly on SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(args: SandboxArgs, verbose: u8) -> Result<ExitCode, String> {
    let program = args
        .command
        .first()
        .ok_or("give the command to run after --")?;
    let pcscd = PrivatePcscd::start("sc-hsm-sandbox-")?;
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let db = args
        .db
        .as_deref()
        .map(absolute)
        .unwrap_or_else(|| pcscd.dir().join("card.redb"));
    let ready = pcscd.dir().join("cards-ready");
    let mut card = Card(start_cards(&pcscd, &args, verbose, &db, &ready)?);

    let mut exited = None;
    let present = poll(READY_TIMEOUT, Duration::from_millis(1), || {
        exited = card.0.try_wait().ok().flatten();
        ready.exists() || exited.is_some()
    });
    if let Some(status) = exited {
        return Err(format!(
            "the card did not start ({status}):\n{}",
            pcscd.log("emulator.log").trim_end()
        ));
    }
    if !present {
        return Err(format!(
            "the card was not present in pcscd within {READY_TIMEOUT:?}\n--- pcscd ---\n{}\n--- card ---\n{}",
            pcscd.log("pcscd.log").trim_end(),
            pcscd.log("emulator.log").trim_end()
        ));
    }
    // pcscd asked for the ATR: it reports the card present from its next status change on.
    let status = pcscd
        .client(program)
        .args(&args.command[1..])
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"));
    card.stop();
    if verbose > 0 {
        eprint!("{}", pcscd.log("emulator.log"));
    }
    let status = status?;
    // COMMAND's exit code becomes ours (128 + signal if it was killed).
    let code = status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    });
    Ok(ExitCode::from(code as u8))
}

/// Starts `sc-hsm-emulator run` with the sandbox's card(s) inside the private network.
fn start_cards(
    pcscd: &PrivatePcscd,
    args: &SandboxArgs,
    verbose: u8,
    db: &Path,
    ready: &Path,
) -> Result<Child, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let log = std::fs::File::create(pcscd.dir().join("emulator.log"))
        .map_err(|e| format!("cannot write the card's log: {e}"))?;
    let mut run = pcscd.inside(false);
    run.arg(me).arg("run");
    if verbose > 0 {
        run.arg(format!("-{}", "v".repeat(usize::from(verbose))));
    }
    let Making { seed, profile } = args.making;
    if let Some(seed) = seed {
        run.args(["--seed", &seed.to_string()]);
    }
    if let Some(Profile::Demo) = profile {
        run.args(["--profile", "demo"]);
    }
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let traces = [
        ("--trace", &args.traces.trace),
        ("--trace-json", &args.traces.trace_json),
    ];
    for (flag, file) in traces {
        if let Some(file) = file {
            run.arg(flag).arg(absolute(file));
        }
    }
    run.arg("--db")
        .arg(db)
        .args(["--cards", &args.cards.to_string()])
        .arg("--ready-file")
        .arg(ready)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the card: {e}"))
}

/// The card process; stopped (SIGTERM, then SIGKILL) when dropped.
struct Card(Child);

impl Card {
    /// Stops the card cleanly (its database closes), or kills it after [`STOP_TIMEOUT`].
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .stderr(Stdio::null())
            .status();
        if !poll(STOP_TIMEOUT, Duration::from_millis(2), || {
            matches!(self.0.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Drop for Card {
    fn drop(&mut self) {
        self.stop();
    }
}
