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

/// The `sc-hsm-emulator` binary, built once per process with the profile this crate was built
/// with: the tests use the dev profile, `cargo run --release --bin stack-bench` the release one.
pub fn emulator_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "vpcd-bridge",
                "--bin",
                "sc-hsm-emulator",
            ])
            .args((profile == "release").then_some("--release"))
            .current_dir(workspace)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building sc-hsm-emulator failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        target.join(profile).join("sc-hsm-emulator")
    })
}

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

/// One emulator process serving one card.
struct CardProcess {
    child: Child,
    slot: u8,
    log: PathBuf,
}

/// A private pcscd with vpcd and up to two emulated cards.
pub struct Sandbox {
    dir: tempfile::TempDir,
    /// `unshare`, which owns the mount and network namespaces.
    namespace_holder: Child,
    pcscd: Option<Child>,
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
        let dir = tempfile::Builder::new()
            .prefix("sc-hsm-test-")
            .tempdir()
            .expect("tempdir");
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
        // unshare enters the new namespaces itself; its child mounts the socket directory,
        // brings up loopback and sleeps until killed.
        let ready = dir.path().join("namespaces-ready");
        let script = format!(
            "set -e; mkdir -p /run/pcscd; mount --bind '{run}' /run/pcscd; ip link set lo up; \
             touch '{ready}'; exec sleep infinity",
            run = run.display(),
            ready = ready.display()
        );
        let namespace_holder = Command::new("setpriv")
            .args([
                "--pdeathsig",
                "SIGKILL",
                "unshare",
                "--mount",
                "--net",
                "--fork",
                "--kill-child=SIGKILL",
                "sh",
                "-c",
            ])
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("namespaces.log")).unwrap())
            .spawn()
            .expect("start unshare (needs root, util-linux and iproute2)");
        let mut sandbox = Sandbox {
            dir,
            namespace_holder,
            pcscd: None,
            cards: Vec::new(),
        };
        wait_until("the namespaces to be set up", || {
            if let Ok(Some(status)) = sandbox.namespace_holder.try_wait() {
                panic!(
                    "setting up namespaces failed ({status}): {}",
                    std::fs::read_to_string(sandbox.dir.path().join("namespaces.log"))
                        .unwrap_or_default()
                );
            }
            ready.exists()
        });
        sandbox.start_pcscd();
        sandbox
    }

    /// A command that runs inside the sandbox's network (and optionally mount) namespace.
    fn inside(&self, mount: bool) -> Command {
        let holder = self.namespace_holder.id();
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "SIGKILL", "nsenter"]);
        if mount {
            cmd.arg(format!("--mount=/proc/{holder}/ns/mnt"));
        }
        cmd.arg(format!("--net=/proc/{holder}/ns/net"))
            .stdin(Stdio::null());
        cmd
    }

    fn start_pcscd(&mut self) {
        let run = self.dir.path().join("run");
        let _ = std::fs::remove_file(run.join("pcscd.pid"));
        let _ = std::fs::remove_file(run.join("pcscd.comm"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("pcscd.log"))
            .unwrap();
        let child = self
            .inside(true)
            .args(["pcscd", "--foreground"])
            .args(std::env::var_os("SC_HSM_PCSCD_DEBUG").map(|_| "--debug"))
            .arg("--config")
            .arg(self.dir.path().join("reader.conf.d"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start pcscd");
        self.pcscd = Some(child);
        let socket = run.join("pcscd.comm");
        let pid_file = run.join("pcscd.pid");
        wait_until("pcscd to start", || {
            if let Some(Ok(Some(status))) = self.pcscd.as_mut().map(Child::try_wait) {
                panic!("pcscd exited early ({status}):\n{}", self.pcscd_log());
            }
            socket.exists() && pid_file.exists()
        });
    }

    /// Kills pcscd and starts a new one in the same namespaces; running emulators stay up
    /// and must reconnect by themselves.
    pub fn restart_pcscd(&mut self) {
        if let Some(mut pcscd) = self.pcscd.take() {
            pcscd.kill().unwrap();
            pcscd.wait().unwrap();
        }
        self.start_pcscd();
    }

    /// Where a card's database lives.
    pub fn db_path(&self, slot: u8) -> PathBuf {
        self.dir.path().join(format!("card{slot}.redb"))
    }

    /// Starts one emulator process serving cards in vpcd slots 0 and 1 (`--cards 2`) and
    /// waits until pcscd sees both.
    pub fn insert_two_cards_in_one_process(&mut self) {
        self.spawn_emulator(0, &["-v", "--cards", "2"]);
        self.wait_for_card(0);
        self.wait_for_card(1);
    }

    /// Starts `sc-hsm-emulator run --db <slot's database> --vpcd <slot's port> ARGS` inside
    /// the sandbox's network namespace, logging to a file of its own.
    fn spawn_emulator(&mut self, slot: u8, args: &[&str]) {
        let log = self
            .dir
            .path()
            .join(format!("emulator{slot}-{}.log", self.cards.len()));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = self
            .inside(false)
            .arg(emulator_binary())
            .args([
                "run",
                "--vpcd",
                &format!("127.0.0.1:{}", 35963 + u16::from(slot)),
            ])
            .arg("--db")
            .arg(self.db_path(slot))
            .args(args)
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start sc-hsm-emulator");
        self.cards.push(CardProcess { child, slot, log });
    }

    /// Starts `program args` inside the sandbox's network namespace (for example another
    /// vpcd card); it is killed with the sandbox.
    pub fn spawn_inside(&mut self, slot: u8, program: &Path, args: &[&str]) {
        let log = self
            .dir
            .path()
            .join(format!("program{slot}-{}.log", self.cards.len()));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = self
            .inside(false)
            .arg(program)
            .args(args)
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start a program in the sandbox");
        self.cards.push(CardProcess { child, slot, log });
    }

    /// The process id of the emulator serving `slot`.
    pub fn card_pid(&self, slot: u8) -> Option<u32> {
        self.cards
            .iter()
            .rev()
            .find(|c| c.slot == slot)
            .map(|c| c.child.id())
    }

    /// Starts an emulator for vpcd slot `slot` on its database and waits until pcscd sees it.
    pub fn insert_card(&mut self, slot: u8) {
        self.insert_card_with(slot, &["-v"]);
    }

    /// As [`Sandbox::insert_card`], with extra arguments for `sc-hsm-emulator run`.
    pub fn insert_card_with(&mut self, slot: u8, extra_args: &[&str]) {
        self.spawn_emulator(slot, extra_args);
        self.wait_for_card(slot);
    }

    fn card_present(&self, slot: u8) -> bool {
        self.command("opensc-tool")
            .args(["--reader", &slot.to_string(), "--atr"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Waits until the card in `slot` answers its ATR through pcscd.
    pub fn wait_for_card(&self, slot: u8) {
        wait_until_or(
            "the card to be present",
            || self.card_present(slot),
            || {
                let probe = self.run("opensc-tool", &["--reader", &slot.to_string(), "--atr"]);
                let pcscd = self.pcscd_log();
                let tail: Vec<&str> = pcscd
                    .lines()
                    .filter(|l| {
                        l.contains("eventhandler")
                            || l.contains("ifd-vpcd")
                                && !l.contains("IFDHControl")
                                && !l.contains("4018")
                    })
                    .collect();
                format!(
                    "last probe: {}\n{}\n--- pcscd log (events) ---\n{}",
                    text(&probe),
                    self.logs(),
                    tail.join("\n")
                )
            },
        );
    }

    /// Stops the emulator of `slot` with `signal` ("TERM", "KILL", ...), reaps it and waits
    /// until pcscd has noticed the card is gone.
    pub fn stop_card(&mut self, slot: u8, signal: &str) {
        let index = self
            .cards
            .iter()
            .position(|c| c.slot == slot)
            .expect("no card in that slot");
        let mut card = self.cards.remove(index);
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &card.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = card.child.wait().unwrap();
        if signal == "TERM" {
            assert!(
                exit.success(),
                "emulator did not exit cleanly on SIGTERM: {exit}\n{}",
                std::fs::read_to_string(&card.log).unwrap_or_default()
            );
        }
        wait_until("the card to be removed", || !self.card_present(slot));
    }

    /// Starts the emulator of `slot` again on the same database.
    pub fn restart_card(&mut self, slot: u8) {
        self.insert_card(slot);
    }

    /// Starts the emulator of `slot` again after it was killed. A card killed in the middle of
    /// an APDU can leave Debian's vpcd 0.8 slot wedged (pcscd keeps reporting the dead card as
    /// powered and never accepts the new connection); when the card is not back within a few
    /// seconds, pcscd is restarted as well. Returns whether that was needed.
    pub fn restart_killed_card(&mut self, slot: u8) -> bool {
        self.spawn_emulator(slot, &["-v"]);
        // A normal re-insertion is seen within about a second (pcscd polls every 0.4 s).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            if self.card_present(slot) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.restart_pcscd();
        self.wait_for_card(slot);
        true
    }

    /// A command whose PC/SC client talks to this sandbox's pcscd.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env(
            "PCSCLITE_CSOCK_NAME",
            self.dir.path().join("run/pcscd.comm"),
        )
        .env_remove("OPENSC_CONF")
        .stdin(Stdio::null());
        cmd
    }

    /// Runs `program args` and returns its output, whatever the exit status.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// Runs `program args` with `input` on its standard input (for tools that prompt).
    pub fn run_with_input(&self, program: &str, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("wait")
    }

    /// Runs `program args`, asserts success, and returns stdout and stderr together.
    pub fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        let text = text(&out);
        assert!(
            out.status.success(),
            "{program} {args:?} failed ({}):\n{text}\n{}",
            out.status,
            self.logs()
        );
        text
    }

    /// Generates a key pair on the card through `pkcs11-tool --login --keypairgen` with the user
    /// PIN (`key_type` as pkcs11-tool spells it: "rsa:2048", "EC:prime256v1"), `extra` appended
    /// (a label, a slot); asserts that pkcs11-tool reports the pair and returns its output.
    pub fn generate_key_pair(&self, key_type: &str, id: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            key_type,
            "--id",
            id,
        ];
        args.extend_from_slice(extra);
        let out = self.ok("pkcs11-tool", &args);
        assert!(out.contains("Key pair generated"), "{out}");
        out
    }

    /// Writes `contents` to the card as a data object labelled `label` (logged in with the
    /// user PIN, through `pkcs11-tool --write-object`); `private` objects need the PIN to read.
    pub fn write_data_object(&self, label: &str, contents: &[u8], private: bool) {
        let file = self.scratch().join(format!("data-object-{label}.bin"));
        std::fs::write(&file, contents).unwrap();
        let file = file.to_str().unwrap();
        let mut args = vec![
            "--login",
            "--pin",
            PIN,
            "--write-object",
            file,
            "--type",
            "data",
            "--label",
            label,
        ];
        if private {
            args.push("--private");
        }
        self.ok("pkcs11-tool", &args);
    }

    /// A scratch directory that lives as long as the sandbox.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    pub fn pcscd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pcscd.log")).unwrap_or_default()
    }

    /// Everything the emulators of `slot` have logged so far.
    pub fn card_log(&self, slot: u8) -> String {
        self.cards
            .iter()
            .filter(|c| c.slot == slot)
            .map(|c| std::fs::read_to_string(&c.log).unwrap_or_default())
            .collect()
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
        for child in self
            .cards
            .iter_mut()
            .map(|c| &mut c.child)
            .chain(self.pcscd.as_mut())
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Kill unshare's sleeping child first so that unshare reaps it and exits by itself
        // (killing unshare first would leave the child to init as a zombie).
        let holder = self.namespace_holder.id();
        let children = std::fs::read_to_string(format!("/proc/{holder}/task/{holder}/children"))
            .unwrap_or_default();
        for child in children.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", child]).status();
        }
        if children.trim().is_empty() {
            let _ = self.namespace_holder.kill();
        }
        let _ = self.namespace_holder.wait();
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

/// Runs the OpenSSL CLI, asserts success, and returns its output.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    let text = text(&out);
    assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

/// Whether `openssl args` succeeds (for checks that must fail too).
pub fn openssl_succeeds(args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A path inside `dir` as a `String` argument.
pub fn arg(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().expect("UTF-8 path").to_string()
}

/// Data and status word of each response `opensc-tool -s` printed on stdout, in order.
pub fn opensc_tool_responses(output: &str) -> Vec<(Vec<u8>, String)> {
    let mut responses = Vec::new();
    let mut lines = output.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(sw) = line.strip_prefix("Received (SW1=0x") else {
            continue;
        };
        let sw =
            format!("{}{}", &sw[..2], &sw[sw.find("SW2=0x").unwrap() + 6..][..2]).to_uppercase();
        let mut dump = Vec::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("Sending") || next.starts_with("Received") || next.trim().is_empty()
            {
                break;
            }
            dump.push(next.to_string());
            lines.next();
        }
        // Each line: up to 16 hex pairs, then as many characters. A dump of several lines
        // pads the hex column of its last line to 48 characters; a single short line is not
        // padded.
        let mut data = Vec::new();
        for line in &dump {
            let width = if dump.len() > 1 {
                48
            } else {
                3 * (line.chars().count() / 4)
            };
            let hex_part: String = line.chars().take(width).collect();
            data.extend(hex_part.split_whitespace().map(|h| {
                u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("not a hex byte in {line:?}"))
            }));
        }
        responses.push((data, sw));
    }
    responses
}
