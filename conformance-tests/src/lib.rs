//! A private pcscd + vpcd + emulator for each test, and helpers to run the real OpenSC tools
//! against it.
//!
//! Each [`Sandbox`] starts its own `pcscd` in a new mount and network namespace (as root):
//! `/run/pcscd` there is a bind mount of a temporary directory, so the daemon's socket is
//! reachable from outside through `PCSCLITE_CSOCK_NAME` while vpcd's listener stays on the
//! namespace's own loopback. Emulator processes join that network namespace with `nsenter`.
//! Readiness is polled, never slept for. Everything is killed and reaped on drop (also when a
//! test panics); `setpriv --pdeathsig` kills the processes if the test itself dies.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The test credentials of the OpenSC wiki page.
pub const PIN: &str = "648219";
pub const SO_PIN: &str = "3537363231383830";

/// How long to wait for pcscd or a card before failing the test.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The `sc-hsm-emulator` binary, built once per test process with the workspace's profile.
pub fn emulator_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "vpcd-bridge", "--bin", "sc-hsm-emulator"])
            .current_dir(workspace)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building sc-hsm-emulator failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        target.join("debug").join("sc-hsm-emulator")
    })
}

/// Polls `condition` until it holds or `READY_TIMEOUT` passes.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    while !condition() {
        assert!(start.elapsed() < READY_TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// One emulator process serving one card.
struct CardProcess {
    child: Child,
    db: PathBuf,
    slot: u8,
    log: PathBuf,
}

/// A private pcscd with vpcd and up to two emulated cards.
pub struct Sandbox {
    dir: tempfile::TempDir,
    namespace_holder: Child,
    pcscd_pid: u32,
    cards: Vec<CardProcess>,
}

impl Sandbox {
    /// Starts pcscd and one card on a fresh database, and waits until the card is present.
    pub fn start() -> Sandbox {
        let mut sandbox = Sandbox::pcscd_only();
        sandbox.insert_card(0);
        sandbox
    }

    /// Starts only the private pcscd (with vpcd slots 0 and 1, no card).
    pub fn pcscd_only() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("sc-hsm-test-").tempdir().expect("tempdir");
        let run = dir.path().join("run");
        let conf = dir.path().join("reader.conf.d");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("vpcd"),
            "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:0x8C7B\n\
             LIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID 0x8C7B\n",
        )
        .unwrap();
        let script = format!(
            "set -e; mkdir -p /run/pcscd; mount --bind '{run}' /run/pcscd; ip link set lo up; \
             exec pcscd --foreground --config '{conf}'",
            run = run.display(),
            conf = conf.display()
        );
        let log = std::fs::File::create(dir.path().join("pcscd.log")).unwrap();
        let namespace_holder = Command::new("setpriv")
            .args(["--pdeathsig", "SIGKILL", "unshare", "--mount", "--net", "--fork", "--kill-child=SIGKILL", "sh", "-c"])
            .arg(script)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start unshare + pcscd (needs root, util-linux, iproute2, pcscd)");
        let mut sandbox = Sandbox {
            dir,
            namespace_holder,
            pcscd_pid: 0,
            cards: Vec::new(),
        };
        let pid_file = run.join("pcscd.pid");
        let socket = run.join("pcscd.comm");
        let mut pid = None;
        wait_until("pcscd to start", || {
            if let Ok(Some(status)) = sandbox.namespace_holder.try_wait() {
                panic!("pcscd exited early ({status}):\n{}", sandbox.pcscd_log());
            }
            pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).parse().ok());
            pid.is_some() && socket.exists()
        });
        sandbox.pcscd_pid = pid.unwrap();
        sandbox
    }

    /// Where a card's database lives.
    pub fn db_path(&self, slot: u8) -> PathBuf {
        self.dir.path().join(format!("card{slot}.redb"))
    }

    /// Starts an emulator for vpcd slot `slot` on its database and waits until pcscd sees it.
    pub fn insert_card(&mut self, slot: u8) {
        let db = self.db_path(slot);
        self.start_emulator(slot, db);
        self.wait_for_card(slot);
    }

    fn start_emulator(&mut self, slot: u8, db: PathBuf) {
        let log = self.dir.path().join(format!("emulator{slot}-{}.log", self.cards.len()));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "SIGKILL", "nsenter"])
            .arg(format!("--net=/proc/{}/ns/net", self.pcscd_pid))
            .arg(emulator_binary())
            .args(["run", "-v", "--vpcd", &format!("127.0.0.1:{}", 35963 + u16::from(slot))])
            .arg("--db")
            .arg(&db)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start sc-hsm-emulator");
        self.cards.push(CardProcess { child, db, slot, log });
    }

    /// Waits until the card in `slot` answers its ATR through pcscd.
    pub fn wait_for_card(&self, slot: u8) {
        wait_until("the card to be present", || {
            self.command("opensc-tool")
                .args(["--reader", &slot.to_string(), "--atr"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }

    /// Stops the emulator of `slot` with `signal` ("TERM", "KILL", ...) and reaps it.
    pub fn stop_card(&mut self, slot: u8, signal: &str) {
        let index = self.cards.iter().position(|c| c.slot == slot).expect("no card in that slot");
        let mut card = self.cards.remove(index);
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &card.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = card.child.wait().unwrap();
        if signal == "TERM" {
            assert!(exit.success(), "emulator did not exit cleanly on SIGTERM: {exit}\n{}", std::fs::read_to_string(&card.log).unwrap_or_default());
        }
        // pcscd notices the closed link at its next poll.
        wait_until("the card to be removed", || {
            !self
                .command("opensc-tool")
                .args(["--reader", &slot.to_string(), "--atr"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        let _ = card.db;
    }

    /// Starts the emulator of `slot` again on the same database.
    pub fn restart_card(&mut self, slot: u8) {
        let db = self.db_path(slot);
        self.start_emulator(slot, db);
        self.wait_for_card(slot);
    }

    /// A command whose PC/SC client talks to this sandbox's pcscd.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PCSCLITE_CSOCK_NAME", self.dir.path().join("run/pcscd.comm"))
            .env_remove("OPENSC_CONF")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `program args` and returns its output, whatever the exit status.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// Runs `program args`, asserts success, and returns stdout and stderr together.
    pub fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        let text = text(&out);
        assert!(out.status.success(), "{program} {args:?} failed ({}):\n{text}\n{}", out.status, self.logs());
        text
    }

    /// A scratch directory that lives as long as the sandbox.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    pub fn pcscd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pcscd.log")).unwrap_or_default()
    }

    /// The emulator logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for card in &self.cards {
            out.push_str(&format!("--- emulator slot {} log ---\n", card.slot));
            out.push_str(&std::fs::read_to_string(&card.log).unwrap_or_default());
        }
        out
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for card in &mut self.cards {
            let _ = card.child.kill();
            let _ = card.child.wait();
        }
        // Killing the holder makes unshare kill pcscd (--kill-child).
        let _ = self.namespace_holder.kill();
        let _ = self.namespace_holder.wait();
        // pcscd may take a moment to die after its parent; its socket dir goes with `dir`.
        let pid = self.pcscd_pid;
        if pid != 0 {
            let start = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// stdout and stderr of a finished command, as text.
pub fn text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

/// `sc-hsm-tool --initialize` with the wiki's credentials and an optional label.
pub fn initialize(sandbox: &Sandbox, label: Option<&str>) -> String {
    let mut args = vec!["--initialize", "--so-pin", SO_PIN, "--pin", PIN];
    if let Some(label) = label {
        args.extend(["--label", label]);
    }
    let out = sandbox.ok("sc-hsm-tool", &args);
    assert!(!out.contains("failed"), "initialize failed:\n{out}");
    out
}
