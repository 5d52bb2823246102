//! `sc-hsm-emulator sandbox -- COMMAND`: a private pcscd with vpcd and the card(s), COMMAND run
//! against them, everything torn down after, COMMAND's exit code returned.
//!
//! pcscd's socket path is compiled in, so it runs in its own mount namespace, where
//! `/run/pcscd` is a bind mount of a temporary directory; COMMAND, outside, reaches it through
//! `PCSCLITE_CSOCK_NAME`. pcscd, vpcd's listeners and the emulator share a private network
//! namespace (vpcd listens on all interfaces otherwise) and a PID namespace, whose end takes
//! every process in it along. As a normal user, a user namespace maps the user to root.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for pcscd and the card(s).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Options {
    pub db: Option<PathBuf>,
    /// Extra arguments for the card's `run` (traces).
    pub run_args: Vec<String>,
    pub cards: u16,
    pub verbose: u8,
    pub command: Vec<String>,
}

fn is_root() -> bool {
    // The effective user of /proc/self is ours; 0 is root.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs the sandbox; returns COMMAND's exit status.
pub fn run(options: Options) -> Result<ExitStatus, String> {
    let program = options
        .command
        .first()
        .ok_or("give the command to run after --")?;
    let dir = TempDir::new()?;
    let run_dir = dir.path().join("run");
    let conf = dir.path().join("reader.conf.d");
    std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&conf).map_err(|e| e.to_string())?;
    std::fs::write(
        conf.join("vpcd"),
        "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:0x8C7B\n\
         LIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID 0x8C7B\n",
    )
    .map_err(|e| e.to_string())?;
    let db = options
        .db
        .clone()
        .unwrap_or_else(|| dir.path().join("card.redb"));
    let ready = dir.path().join("cards-ready");
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let verbosity = if options.verbose > 0 {
        format!("-{}", "v".repeat(usize::from(options.verbose)))
    } else {
        String::new()
    };
    let script = format!(
        "set -e; mkdir -p /run/pcscd; mount --bind {run} /run/pcscd; ip link set lo up; \
         pcscd --foreground --config {conf} >{log}/pcscd.log 2>&1 & \
         {me} run {verbosity} {extra} --db {db} --cards {cards} --ready-file {ready} 2>{log}/emulator.log & \
         wait",
        run = shell_quote(&run_dir.to_string_lossy()),
        conf = shell_quote(&conf.to_string_lossy()),
        log = shell_quote(&dir.path().to_string_lossy()),
        me = shell_quote(&me.to_string_lossy()),
        db = shell_quote(&db.to_string_lossy()),
        cards = options.cards,
        extra = options.run_args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "),
        ready = shell_quote(&ready.to_string_lossy()),
    );
    let mut unshare = Command::new("unshare");
    if !is_root() {
        unshare.args(["--user", "--map-root-user"]);
    }
    unshare
        .args([
            "--pid",
            "--mount",
            "--net",
            "--fork",
            "--kill-child=SIGKILL",
            "sh",
            "-c",
        ])
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut holder = Holder(
        unshare
            .spawn()
            .map_err(|e| format!("cannot start unshare (util-linux): {e}"))?,
    );

    let socket = run_dir.join("pcscd.comm");
    let start = Instant::now();
    while !(socket.exists() && ready.exists()) {
        if let Ok(Some(status)) = holder.0.try_wait() {
            let mut why = String::new();
            if let Some(mut err) = holder.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut why);
            }
            return Err(format!(
                "the sandbox ended before the card was ready ({status}): {}{}{}",
                why.trim(),
                read(dir.path(), "pcscd.log"),
                read(dir.path(), "emulator.log")
            ));
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(format!(
                "pcscd or the card did not come up within {READY_TIMEOUT:?}{}{}",
                read(dir.path(), "pcscd.log"),
                read(dir.path(), "emulator.log")
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // pcscd asked for the ATR: it reports the card present from its next status change on.
    let status = Command::new(program)
        .args(&options.command[1..])
        .env("PCSCLITE_CSOCK_NAME", &socket)
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"));
    drop(holder);
    if options.verbose > 0 {
        eprint!("{}", read(dir.path(), "emulator.log"));
    }
    status
}

fn read(dir: &Path, name: &str) -> String {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(text) if !text.trim().is_empty() => format!("\n--- {name} ---\n{text}"),
        _ => String::new(),
    }
}

/// The namespace holder (unshare). Dropping it stops pcscd and the emulator with SIGTERM,
/// so that the shell inside reaps them and unshare exits by itself; only if that takes too
/// long does the whole PID namespace go with SIGKILL.
struct Holder(std::process::Child);

fn children(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

impl Drop for Holder {
    fn drop(&mut self) {
        let holder = self.0.id();
        for shell in children(holder) {
            let pids = shell.parse().map(children).unwrap_or_default();
            if !pids.is_empty() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .args(&pids)
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = base.join(format!(
                "sc-hsm-sandbox-{}-{nanos:x}-{attempt}",
                std::process::id()
            ));
            let created = std::fs::DirBuilder::new();
            let mut builder = created;
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            if builder.create(&path).is_ok() {
                return Ok(TempDir(path));
            }
        }
        Err(format!("cannot create a directory in {}", base.display()))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
