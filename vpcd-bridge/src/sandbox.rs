//! `sc-hsm-emulator sandbox -- COMMAND`: a private pcscd ([`PrivatePcscd`]) with the card(s) in
//! its vpcd slots, COMMAND run against them, everything torn down after, COMMAND's exit code
//! returned.
//!
//! Nothing outlives the sandbox: SIGTERM, SIGINT and SIGHUP are passed on to COMMAND (as
//! `timeout` and `env` do) and then everything is torn down, as when the sandbox's parent dies;
//! if the sandbox itself is killed, pcscd, the card and the namespaces get SIGKILL from the
//! kernel and its directory is removed by the next sandbox.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};
use vpcd_bridge::private_pcscd::{poll, PrivatePcscd};

use crate::cards::{holds_no_card_yet, NewCard};
use crate::cli::{Making, SandboxArgs};

/// How long to wait for the card(s) to be present in pcscd.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a process may take to stop on SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the sandbox looks whether its parent is still there.
const PARENT_CHECK: Duration = Duration::from_millis(100);

pub fn run(args: SandboxArgs, verbose: u8) -> Result<ExitCode, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(sandbox(args, verbose))
}

/// What ended the wait for something: the sandbox is to stop with this exit code.
struct Interrupted(u8);

/// SIGTERM, SIGINT, SIGHUP, and the death of the parent process.
struct Stops {
    signals: [(Signal, i32); 3],
    parent: u32,
}

impl Stops {
    fn new() -> Result<Stops, String> {
        let install = |kind: SignalKind| {
            signal(kind).map_err(|e| format!("cannot install signal handlers: {e}"))
        };
        Ok(Stops {
            signals: [
                (install(SignalKind::terminate())?, 15),
                (install(SignalKind::interrupt())?, 2),
                (install(SignalKind::hangup())?, 1),
            ],
            parent: std::os::unix::process::parent_id(),
        })
    }

    /// Completes with the signal number when a signal arrives or the parent dies (as SIGHUP).
    async fn next(&mut self) -> i32 {
        let [(term, t), (int, i), (hup, h)] = &mut self.signals;
        let parent = self.parent;
        let orphaned = async {
            let mut check = tokio::time::interval(PARENT_CHECK);
            loop {
                check.tick().await;
                if std::os::unix::process::parent_id() != parent {
                    return;
                }
            }
        };
        tokio::select! {
            _ = term.recv() => *t,
            _ = int.recv() => *i,
            _ = hup.recv() => *h,
            _ = orphaned => 1,
        }
    }
}

async fn sandbox(args: SandboxArgs, verbose: u8) -> Result<ExitCode, String> {
    let begun = Instant::now();
    // Where the time goes (-v): each step with the milliseconds since the start.
    let step = |what: &str| {
        tracing::debug!(ms = begun.elapsed().as_secs_f64() * 1e3, "sandbox: {what}");
    };
    let mut stops = Stops::new()?;
    crate::fleet_config::checked_faults(&args.driving.fault, "--fault")?;
    let program = args
        .command
        .first()
        .ok_or("give the command to run after --")?;
    let mut pcscd = PrivatePcscd::prepare_or_direct("sc-hsm-sandbox-", args.cards.max(2))?;
    if let (Some(why), true) = (pcscd.direct(), verbose > 0) {
        eprintln!("sc-hsm-emulator: {why}");
    }
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let db = args
        .db
        .as_deref()
        .map(absolute)
        .unwrap_or_else(|| pcscd.dir().join("card.redb"));
    if args.db.is_some() {
        given_databases(&args, &db)?;
    }
    let ready = pcscd.dir().join("cards-ready");
    step("namespaces ready");
    // The card first, trying to connect: it is there when pcscd first looks.
    let started = pcscd.dir().join("cards-started");
    let mut card = Stoppable(start_cards(&pcscd, &args, verbose, &db, &ready, &started)?);
    let opened = async {
        loop {
            if let Ok(Some(status)) = card.0.try_wait() {
                return Err(format!(
                    "the card did not start ({status}):\n{}",
                    pcscd.log("emulator.log").trim_end()
                ));
            }
            if started.exists() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    };
    tokio::select! {
        opened = opened => opened?,
        signal = stops.next() => return Ok(stopped_by(signal)),
    }
    step("card(s) open, connecting");
    pcscd.start_pcscd()?;
    step("pcscd answers");

    let since = Instant::now();
    let waiting = async {
        loop {
            if let Ok(Some(status)) = card.0.try_wait() {
                return Err(format!(
                    "the card did not start ({status}):\n{}",
                    pcscd.log("emulator.log").trim_end()
                ));
            }
            if ready.exists() {
                return Ok(());
            }
            if since.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "the card was not present in pcscd within {READY_TIMEOUT:?}\n--- pcscd ---\n{}\n--- card ---\n{}",
                    pcscd.log("pcscd.log").trim_end(),
                    pcscd.log("emulator.log").trim_end()
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::select! {
        ready = waiting => ready?,
        signal = stops.next() => return Ok(stopped_by(signal)),
    }

    step("card(s) present");
    // The control sockets: card 0's as SC_HSM_EMULATOR_CONTROL, card i's as
    // SC_HSM_EMULATOR_CONTROL_i.
    let control = control_socket(&pcscd);
    let mut env = vec![("SC_HSM_EMULATOR_CONTROL".to_string(), control.clone())];
    if let Ok(me) = std::env::current_exe() {
        env.push(("SC_HSM_EMULATOR".to_string(), me));
    }
    for i in 0..args.cards {
        env.push((
            format!("SC_HSM_EMULATOR_CONTROL_{i}"),
            crate::cards::numbered(&control, i),
        ));
    }
    // pcscd has powered the card up: it reports it present to every client from now on.
    let status = match run_command(&pcscd, program, &args.command[1..], &env, &mut stops).await {
        Ok(status) => status,
        Err(Interrupted(code)) => {
            card.stop();
            return Ok(ExitCode::from(code));
        }
    };
    step("command done");
    card.stop();
    step("card(s) stopped");
    if verbose > 0 {
        eprint!("{}", pcscd.log("emulator.log"));
    }
    drop(pcscd);
    step("pcscd and namespaces gone");
    status.map(ExitCode::from)
}

/// The databases of `--db` (card i's numbered): each must exist unless `--create` is given
/// (a mistyped path would otherwise make a new card, and the program under test fail far from
/// the cause); a `--profile` that an existing card makes moot is said.
fn given_databases(args: &SandboxArgs, db: &Path) -> Result<(), String> {
    for i in 0..args.cards {
        let path = crate::cards::numbered(db, i);
        if !path.exists() && !args.create {
            return Err(format!(
                "no card database at {} (give --create to make a new card there)",
                path.display()
            ));
        }
        if let (Some(profile), false) = (args.making.profile, holds_no_card_yet(&path)) {
            eprintln!(
                "sc-hsm-emulator: {} already holds a card: --profile {} makes only new cards, \
                 this one is used as it is",
                path.display(),
                profile.name()
            );
        }
    }
    Ok(())
}

/// The exit code after signal `n`: 128 + n.
fn stopped_by(signal: i32) -> ExitCode {
    ExitCode::from(128 + signal as u8)
}

/// Runs COMMAND against the private pcscd; its exit code (as `env` gives it: 127 if it was not
/// found, 126 if it cannot be run, 128 + the signal that killed it). A signal to the sandbox is
/// passed on to COMMAND, which is then given [`STOP_TIMEOUT`] to end.
async fn run_command(
    pcscd: &PrivatePcscd,
    program: &str,
    args: &[String],
    env: &[(String, PathBuf)],
    stops: &mut Stops,
) -> Result<Result<u8, String>, Interrupted> {
    let mut command = tokio::process::Command::from(pcscd.client(program));
    command
        .args(args)
        .envs(env.iter().cloned())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
            eprintln!("sc-hsm-emulator: cannot run {program}: {e}");
            return Ok(Ok(code));
        }
    };
    let signal = tokio::select! {
        status = child.wait() => {
            return Ok(status
                .map(|s| exit_code(&s))
                .map_err(|e| format!("waiting for {program}: {e}")));
        }
        signal = stops.next() => signal,
    };
    if let Some(pid) = child.id() {
        vpcd_bridge::host::signal(pid, signal);
        if tokio::time::timeout(STOP_TIMEOUT, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
    Err(Interrupted(128 + signal as u8))
}

fn exit_code(status: &std::process::ExitStatus) -> u8 {
    match status.code() {
        Some(code) => code as u8,
        None => 128 + std::os::unix::process::ExitStatusExt::signal(status).unwrap_or(0) as u8,
    }
}

/// Card 0's control socket in the sandbox's directory (card i's is numbered).
fn control_socket(pcscd: &PrivatePcscd) -> PathBuf {
    pcscd.dir().join("control.sock")
}

/// Starts `sc-hsm-emulator run` with the sandbox's card(s) inside the private network.
fn start_cards(
    pcscd: &PrivatePcscd,
    args: &SandboxArgs,
    verbose: u8,
    db: &Path,
    ready: &Path,
    started: &Path,
) -> Result<Child, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let log = std::fs::File::create(pcscd.dir().join("emulator.log"))
        .map_err(|e| format!("cannot write the card's log: {e}"))?;
    let mut run = pcscd.inside(false);
    run.arg(me).arg("run");
    if verbose > 0 {
        run.arg(format!("-{}", "v".repeat(usize::from(verbose))));
    }
    let Making { seed, profile, pki } = &args.making;
    if let Some(seed) = seed {
        run.args(["--seed", &seed.to_string()]);
    }
    if let Some(pki) = pki {
        run.arg("--pki")
            .arg(std::path::absolute(pki).unwrap_or_else(|_| pki.clone()));
    }
    // A new card is ready to use unless asked for a blank one; a card of --db is used as it
    // is.
    let new_card = match (profile, args.blank, &args.db) {
        (Some(profile), _, _) => Some(*profile),
        (None, true, _) => Some(NewCard::Blank),
        (None, false, None) => Some(NewCard::Initialized),
        (None, false, Some(_)) if args.create => Some(NewCard::Initialized),
        (None, false, Some(_)) => None,
    };
    if let Some(new_card) = new_card {
        run.args(["--profile", new_card.name()]);
    }
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let traces = [
        ("--trace", &args.traces.trace),
        ("--trace-json", &args.traces.trace_json),
        ("--trace-data", &args.traces.trace_data),
        ("--trace-data-json", &args.traces.trace_data_json),
    ];
    for (flag, file) in traces {
        if let Some(file) = file {
            run.arg(flag).arg(absolute(file));
        }
    }
    for rule in &args.driving.fault {
        run.args(["--fault", rule]);
    }
    run.args(["--timing", args.driving.timing.name()]);
    run.arg("--control").arg(control_socket(pcscd));
    run.arg("--db")
        .arg(db)
        .args(["--cards", &args.cards.to_string()])
        .arg("--ready-file")
        .arg(ready)
        .arg("--started-file")
        .arg(started)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the card: {e}"))
}

/// The card process; stopped (SIGTERM, then SIGKILL) when dropped.
struct Stoppable(Child);

impl Stoppable {
    /// Stops the card cleanly (its database closes), or kills it after [`STOP_TIMEOUT`].
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        vpcd_bridge::host::signal(self.0.id(), 15);
        if !poll(STOP_TIMEOUT, Duration::from_millis(1), || {
            matches!(self.0.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Drop for Stoppable {
    fn drop(&mut self) {
        self.stop();
    }
}
