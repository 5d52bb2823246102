//! [`Sandbox`]: a private pcscd (the product's own [`PrivatePcscd`]) with emulator processes in
//! its vpcd slots, for one test. Readiness is polled, never slept for; everything is killed and
//! reaped on drop, also when a test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use vpcd_bridge::private_pcscd::{vpcd_port, PrivatePcscd};

use crate::wait::wait_until_or;
use crate::{emulator_binary, text};

/// One emulator process serving one card.
struct CardProcess {
    child: Child,
    slot: u8,
    log: PathBuf,
}

/// A private pcscd with vpcd and up to two emulated cards.
pub struct Sandbox {
    pcscd: PrivatePcscd,
    cards: Vec<CardProcess>,
    /// Processes started so far: numbers their logs and data traces (a restarted card's
    /// files do not overwrite its predecessor's).
    spawned: usize,
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
        Sandbox::with_slots(2)
    }

    /// Starts only the private pcscd, with `slots` vpcd slots.
    pub fn with_slots(slots: u16) -> Sandbox {
        let mut pcscd = PrivatePcscd::prepare("sc-hsm-test-", slots)
            .unwrap_or_else(|e| panic!("cannot start a private pcscd (needs root): {e}"));
        pcscd.start_pcscd().unwrap_or_else(|e| panic!("{e}"));
        Sandbox {
            pcscd,
            cards: Vec::new(),
            spawned: 0,
        }
    }

    /// Kills pcscd and starts a new one in the same namespaces; running emulators stay up
    /// and must reconnect by themselves.
    pub fn restart_pcscd(&mut self) {
        self.pcscd.restart_pcscd().unwrap_or_else(|e| panic!("{e}"));
    }

    /// The emulator PKI the sandbox's cards are made under (beside their databases).
    pub fn pki_path(&self) -> PathBuf {
        self.scratch().join("emulator-pki.bin")
    }

    /// Puts the root of the sandbox's PKI where the OpenSC under test looks up chip
    /// authentication roots (`sc-hsm-emulator pki export --out-dir`), when it does chip
    /// authentication at all (built with OpenPACE); whether it does. Roots are named by their
    /// holder reference, unique per PKI, so tests running at once do not disturb each other.
    pub fn trust_for_chip_authentication(&self) -> bool {
        let Some(dir) = crate::opensc().chip_authentication_roots() else {
            return false;
        };
        let out = Command::new(emulator_binary())
            .args(["pki", "export", "--pki"])
            .arg(self.pki_path())
            .arg("--out-dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "pki export: {}", text(&out));
        true
    }

    /// Where a card's database lives.
    pub fn db_path(&self, slot: u8) -> PathBuf {
        self.scratch().join(format!("card{slot}.redb"))
    }

    /// The control socket of the card in `slot` (beside its database).
    pub fn control_socket(&self, slot: u8) -> PathBuf {
        self.db_path(slot).with_extension("control")
    }

    /// `sc-hsm-emulator control --socket <slot's socket> ARGS`, whatever its exit status.
    pub fn try_control(&self, slot: u8, args: &[&str]) -> std::process::Output {
        Command::new(emulator_binary())
            .arg("control")
            .arg("--socket")
            .arg(self.control_socket(slot))
            .args(args)
            .output()
            .expect("run sc-hsm-emulator control")
    }

    /// As [`Sandbox::try_control`], asserting success; its output line.
    pub fn control(&self, slot: u8, args: &[&str]) -> String {
        let out = self.try_control(slot, args);
        assert!(
            out.status.success(),
            "control {args:?}: {}\n{}",
            text(&out),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Removes the card of `slot` through its control socket and waits until pcscd has seen
    /// it go.
    pub fn pull_out(&self, slot: u8) {
        self.control(slot, &["remove"]);
        crate::wait::wait_until("pcscd to see the card removed", || !self.card_present(slot));
    }

    /// Puts the card of `slot` back and waits until pcscd has it again.
    pub fn put_back(&self, slot: u8) {
        self.control(slot, &["insert"]);
        self.wait_for_card(slot);
    }

    /// Starts one emulator process serving cards in vpcd slots 0 and 1 (`--cards 2`) and
    /// waits until pcscd sees both.
    pub fn insert_two_cards_in_one_process(&mut self) {
        self.insert_cards_in_one_process(2);
    }

    /// Starts one emulator process serving `n` cards in vpcd slots 0 to n-1 (`--cards n`) and
    /// waits until pcscd sees each.
    pub fn insert_cards_in_one_process(&mut self, n: u8) {
        self.spawn_emulator(0, &["-v", "--cards", &n.to_string()]);
        for slot in 0..n {
            self.wait_for_card(slot);
        }
    }

    /// Mounts a tmpfs of `kib` KiB on the scratch directory `name`, seen by the emulators (they
    /// run in the sandbox's mount namespace) and by [`Sandbox::run_in_mounts`]; its path.
    pub fn mount_tmpfs(&self, name: &str, kib: u32) -> PathBuf {
        let dir = self.scratch().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let out = self
            .pcscd
            .inside(true)
            .args([
                "mount",
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {}", text(&out));
        dir
    }

    /// Runs `program args` inside the sandbox's mount namespace (to see a [`Sandbox::mount_tmpfs`]).
    pub fn run_in_mounts(&self, program: &str, args: &[&str]) -> std::process::Output {
        self.inside_command(program, args).output().unwrap()
    }

    /// `program args` as a command for the sandbox's network and mount namespaces.
    pub fn inside_command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = self.pcscd.inside(true);
        command.arg(program).args(args);
        command
    }

    /// Starts `sc-hsm-emulator run` for `slot` on the database `db` with `extra_args`, and waits
    /// until pcscd sees it.
    pub fn insert_card_on(&mut self, slot: u8, db: &Path, extra_args: &[&str]) {
        let vpcd = format!("127.0.0.1:{}", vpcd_port(u16::from(slot)));
        let mut all = vec!["run", "-v", "--vpcd", &vpcd, "--db", db.to_str().unwrap()];
        all.extend_from_slice(extra_args);
        let trace = self.data_trace_file(slot, extra_args);
        all.extend(trace.iter().map(String::as_str));
        self.spawn(slot, "emulator", emulator_binary(), &all);
        self.wait_for_card(slot);
    }

    /// Starts `program args` inside the sandbox's namespaces, logging to a file of its own, as
    /// the process of `slot`.
    fn spawn(&mut self, slot: u8, name: &str, program: &Path, args: &[&str]) {
        let log = self
            .scratch()
            .join(format!("{name}{slot}-{}.log", self.spawned));
        self.spawned += 1;
        let log_file = std::fs::File::create(&log).unwrap();
        let child = self
            .pcscd
            .inside(true)
            .arg(program)
            .args(args)
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        self.cards.push(CardProcess { child, slot, log });
    }

    /// Starts `sc-hsm-emulator run --db <slot's database> --vpcd <slot's port> ARGS`.
    fn spawn_emulator(&mut self, slot: u8, args: &[&str]) {
        let vpcd = format!("127.0.0.1:{}", vpcd_port(u16::from(slot)));
        let db = self.db_path(slot);
        let mut all = vec!["run", "--vpcd", &vpcd, "--db", db.to_str().unwrap()];
        all.extend_from_slice(args);
        let trace = self.data_trace_file(slot, args);
        all.extend(trace.iter().map(String::as_str));
        self.spawn(slot, "emulator", emulator_binary(), &all);
    }

    /// Every card of the suite writes a data trace (`--trace-data-json`) into the scratch
    /// directory, unless its test names one: when the sandbox ends, every command the card
    /// carried out must have been decoded whole ([`Sandbox::undecoded`]).
    fn data_trace_file(&self, slot: u8, args: &[&str]) -> Vec<String> {
        if args.contains(&"--trace-data-json") {
            return Vec::new();
        }
        let file = self
            .scratch()
            .join(format!("data-trace-{slot}-{}.json", self.spawned));
        vec!["--trace-data-json".into(), file.to_string_lossy().into()]
    }

    /// The data trace events of every card this sandbox started, in the order of their files.
    pub fn data_trace(&self) -> Vec<emulator::DataTraceEvent> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.scratch())
            .map(|dir| dir.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("data-trace-") && n.ends_with(".json"))
        });
        files.sort();
        let mut events = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for line in text.lines().filter(|l| !l.is_empty()) {
                match emulator::DataTraceEvent::from_json(line) {
                    Ok(event) => events.push(event),
                    // The card was killed in the middle of a line.
                    Err(_) if !line.ends_with('}') => {}
                    Err(e) => panic!("{}: {e}: {line}", file.display()),
                }
            }
        }
        events
    }

    /// The commands a card carried out (status 9000, 61xx or 6282) whose data the data
    /// trace left undecoded, one line each.
    pub fn undecoded(&self) -> Vec<String> {
        let mut out = Vec::new();
        for event in self.data_trace() {
            let done = event.sw == "9000" || event.sw.starts_with("61") || event.sw == "6282";
            if !done || event.command == "unknown" {
                continue;
            }
            if let Some(f) = event
                .all_fields()
                .into_iter()
                .find(|f| f.name == emulator::dissect::UNDECODED)
            {
                out.push(format!(
                    "{} {}: {} undecoded bytes {}",
                    event.command,
                    event.parameters,
                    f.len,
                    f.hex.as_deref().unwrap_or("")
                ));
            }
        }
        out
    }

    /// Starts `program args` inside the sandbox's network namespace (for example another
    /// vpcd card); it is killed with the sandbox.
    pub fn spawn_inside(&mut self, slot: u8, program: &Path, args: &[&str]) {
        self.spawn(slot, "program", program, args);
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

    /// Whether the card in `slot` answers its ATR through pcscd now.
    pub fn card_present(&self, slot: u8) -> bool {
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
        crate::wait::wait_until("the card to be removed", || !self.card_present(slot));
    }

    /// Starts the emulator of `slot` again on the same database.
    pub fn restart_card(&mut self, slot: u8) {
        self.insert_card(slot);
    }

    /// Starts the emulator of `slot` again after it was killed (also in the middle of an
    /// APDU) and waits until pcscd sees it: the card clears a "present" state pcscd may keep
    /// from the dead link by itself, with no restart of pcscd.
    pub fn restart_killed_card(&mut self, slot: u8) {
        self.insert_card(slot);
    }

    /// A command whose PC/SC client talks to this sandbox's pcscd, with the OpenSC under test
    /// ([`crate::opensc`]) first on its `PATH`.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = self.pcscd.client(program);
        cmd.env_remove("OPENSC_CONF").stdin(Stdio::null());
        crate::opensc().configure(&mut cmd);
        cmd
    }

    /// The sandbox's network namespace, by path (`podman run --network ns:PATH`).
    pub fn net_namespace(&self) -> PathBuf {
        self.pcscd.net_namespace()
    }

    /// A scratch directory that lives as long as the sandbox.
    pub fn scratch(&self) -> &Path {
        self.pcscd.dir()
    }

    pub fn pcscd_log(&self) -> String {
        self.pcscd.log("pcscd.log")
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
        for card in &mut self.cards {
            let _ = card.child.kill();
            let _ = card.child.wait();
        }
        if !std::thread::panicking() {
            let undecoded = self.undecoded();
            assert!(
                undecoded.is_empty(),
                "the data trace left commands undecoded:\n{}",
                undecoded.join("\n")
            );
        }
        // Then the private pcscd and its namespaces go with `self.pcscd`.
    }
}
