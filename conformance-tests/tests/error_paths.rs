//! The card a test drives, through a real pcscd + vpcd and real clients: pulled out and put
//! back through its control socket (pkcs11-tool --test-hotplug, pcsc_scan, p11test's
//! wait_test, a PKCS#11 application between C_Login and C_Sign), fault rules that answer a
//! status word, answer late, never answer or cut the power, snapshots loaded in place, and
//! bad input to the control socket.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use conformance_tests::{emulator_binary, opensc, text, verifies_sha256, wait_until, Sandbox, PIN};

/// A private pcscd with an initialised card (the wiki's PINs) in slot 0.
fn card() -> Sandbox {
    let mut sandbox = Sandbox::pcscd_only();
    sandbox.insert_card_with(0, &["-v", "--profile", "initialized"]);
    sandbox
}

/// Runs `drive_card.py SCENARIO ARGS` against slot 0's card.
fn drive(sandbox: &Sandbox, scenario: &str, args: &[&str]) -> Vec<String> {
    let socket = sandbox.control_socket(0);
    let mut all = vec![
        emulator_binary().to_str().unwrap(),
        socket.to_str().unwrap(),
        "Virtual PCD 00 00",
        scenario,
    ];
    all.extend_from_slice(args);
    sandbox.python_client("drive_card.py", &all)
}

fn state(sandbox: &Sandbox) -> String {
    sandbox.control(0, &["--json", "state"])
}

#[test]
fn remove_and_insert_are_seen_by_pcscd_and_opensc() {
    let sandbox = card();
    sandbox.pull_out(0);
    let listing = sandbox.ok("pkcs11-tool", &["-L"]);
    assert!(listing.contains("(empty)"), "{listing}");
    assert!(state(&sandbox).contains("\"inserted\":false"));
    // A card out stays out.
    assert!(!sandbox.card_present(0));
    sandbox.put_back(0);
    let listing = sandbox.ok("pkcs11-tool", &["-L"]);
    assert!(listing.contains("token label"), "{listing}");
    // A reset ends the session: pcscd sees the card leave and come back.
    sandbox.control(0, &["reset"]);
    sandbox.wait_for_card(0);
    assert!(state(&sandbox).contains("\"inserted\":true"));
}

#[test]
fn pcsc_scan_sees_the_card_leave_and_come_back() {
    let sandbox = card();
    let log = sandbox.scratch().join("pcsc_scan.log");
    let mut scan = sandbox
        .command("pcsc_scan")
        .arg("-n")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("pcsc_scan (pcsc-tools)");
    let seen = |what: &str, times: usize| {
        let what = what.to_string();
        let log = log.clone();
        move || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches(&what)
                .count()
                >= times
        }
    };
    wait_until("pcsc_scan to see the card", seen("Card inserted", 1));
    sandbox.pull_out(0);
    wait_until("pcsc_scan to see the card leave", seen("Card removed", 1));
    sandbox.put_back(0);
    wait_until(
        "pcsc_scan to see the card come back",
        seen("Card inserted", 2),
    );
    let _ = scan.kill();
    let _ = scan.wait();
    let out = std::fs::read_to_string(&log).unwrap();
    let removed = out.find("Card removed").unwrap();
    assert!(out[removed..].contains("Card inserted"), "{out}");
}

#[test]
fn pkcs11_tool_test_hotplug_sees_removal_and_insertion_in_both_loops() {
    let sandbox = card();
    let module = opensc().module();
    let lines = drive(&sandbox, "hotplug", &[module.to_str().unwrap()]);
    assert_eq!(
        lines.last().unwrap(),
        "hotplug events=2 exit=0",
        "{lines:?}"
    );
}

/// OpenSC's p11test in interactive mode: its wait_test (skipped on the physical card's
/// reference log) sees the card inserted, and the rest of the suite runs on.
#[test]
fn p11test_wait_test_passes_when_the_script_inserts_the_card() {
    let opensc = opensc();
    let Some(tree) = opensc.build_tree() else {
        opensc.note("p11test comes only with a build of OpenSC: wait_test not run");
        return;
    };
    let sandbox = card();
    let p11test = tree.join("src/tests/p11test/p11test");
    let module = opensc.module();
    let lines = drive(
        &sandbox,
        "p11test-wait",
        &[p11test.to_str().unwrap(), module.to_str().unwrap()],
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("p11test-wait result=OK ") && last.ends_with(" token_present=1"),
        "{lines:?}"
    );
}

#[test]
fn a_card_pulled_between_login_and_sign() {
    let sandbox = card();
    sandbox.generate_key_pair("EC:prime256v1", "01", &[]);
    let module = opensc().module();
    let lines = drive(&sandbox, "pull-sign", &[module.to_str().unwrap()]);
    assert!(
        lines.contains(&"pulled sign=CKR_DEVICE_REMOVED".to_string()),
        "{lines:?}"
    );
    match lines.iter().find(|l| l.starts_with("reinserted in_process=")) {
        Some(l) if l == "reinserted in_process=ok" => {
            assert!(
                lines.contains(&"reinserted sign=ok verified=ok pin_count_low=False".to_string()),
                "{lines:?}"
            );
        }
        Some(l) => opensc().note(&format!(
            "after a removal met by C_Sign, the same process gets no new login ({l}); a new process does"
        )),
        None => panic!("{lines:?}"),
    }
    // A new process logs in and signs; OpenSSL checks the signature.
    let pem = sandbox.public_key_pem("01", "pulled", &[]);
    let data = sandbox.scratch().join("data.txt");
    std::fs::write(&data, b"after the card came back").unwrap();
    let sig = sandbox.scratch().join("sig.bin");
    sandbox.sign(
        "01",
        "ECDSA-SHA256",
        data.to_str().unwrap(),
        sig.to_str().unwrap(),
        &["--signature-format", "openssl"],
    );
    assert!(verifies_sha256(
        &pem,
        sig.to_str().unwrap(),
        data.to_str().unwrap()
    ));
    // Pulling the card cost no PIN try: the physical card's counter is where a right PIN
    // leaves it.
    assert!(state(&sandbox).contains("\"user_pin\":{\"tries_left\":3,\"max_tries\":3"));
}

#[test]
fn status_faults_reach_opensc_as_the_card_would_answer_them() {
    let sandbox = card();
    sandbox.generate_key_pair("rsa:2048", "01", &[]);
    let data = sandbox.scratch().join("data.txt");
    std::fs::write(&data, b"signed").unwrap();
    let (data, sig) = (data.to_str().unwrap(), sandbox.scratch().join("sig.bin"));
    let sig = sig.to_str().unwrap();
    // OpenSC tries a failed signature again (pkcs11-tool with C_SignInit/C_SignFinal, 0.23
    // once more inside), so the rule answers every SIGN until it is cleared.
    sandbox.control(
        0,
        &[
            "fault", "add", "--on", "SIGN", "--status", "6F00", "--times", "forever",
        ],
    );
    let out = sandbox.try_sign("01", "SHA256-RSA-PKCS", data, sig, &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("CKR_GENERAL_ERROR"), "{}", text(&out));
    let list = sandbox.control(0, &["fault", "list"]);
    assert!(
        list.starts_with("[on=SIGN,times=forever,status=6F00: seen "),
        "{list}"
    );
    assert!(!list.contains("fired 0]"), "{list}");
    sandbox.control(0, &["fault", "clear"]);
    sandbox.sign("01", "SHA256-RSA-PKCS", data, sig, &[]);
    // 6983 on every VERIFY: OpenSC reports the PIN blocked, the card's counter is untouched.
    sandbox.control(
        0,
        &[
            "fault", "add", "--on", "VERIFY", "--status", "6983", "--times", "forever",
        ],
    );
    let listing = sandbox.ok("pkcs11-tool", &["-L"]);
    assert!(listing.contains("user PIN locked"), "{listing}");
    let out = sandbox.try_sign("01", "SHA256-RSA-PKCS", data, sig, &[]);
    assert!(text(&out).contains("CKR_PIN_LOCKED"), "{}", text(&out));
    sandbox.control(0, &["fault", "clear"]);
    assert!(state(&sandbox).contains("\"user_pin\":{\"tries_left\":3,\"max_tries\":3"));
    sandbox.sign("01", "SHA256-RSA-PKCS", data, sig, &[]);
    // The injected faults are marked in the card's log line for the trace and counted.
    assert!(state(&sandbox).contains("\"faults_injected\":"));
}

#[test]
fn delay_and_mute_end_in_the_clients_timeout_and_the_card_serves_on() {
    let sandbox = card();
    sandbox.generate_key_pair("EC:prime256v1", "01", &[]);
    let data = sandbox.scratch().join("data.txt");
    std::fs::write(&data, b"late").unwrap();
    let sign = |timeout: &str| {
        sandbox.run(
            "timeout",
            &[
                timeout,
                "pkcs11-tool",
                "--login",
                "--pin",
                PIN,
                "--sign",
                "--id",
                "01",
                "--mechanism",
                "ECDSA-SHA256",
                "--input-file",
                data.to_str().unwrap(),
                "--output-file",
                "/dev/null",
            ],
        )
    };
    // The answer comes 8 s late; the client gives up after 2 (timeout's 124).
    sandbox.control(0, &["fault", "add", "--on", "SIGN", "--delay", "8000"]);
    assert_eq!(sign("2").status.code(), Some(124));
    // The next client is served (once the late answer has gone out).
    assert!(sign("60").status.success());
    // A mute card answers nothing: the client's timeout ends it; a reset frees the reader.
    sandbox.control(0, &["fault", "add", "--on", "SIGN", "--mute"]);
    assert_eq!(sign("2").status.code(), Some(124));
    sandbox.control(0, &["reset"]);
    sandbox.wait_for_card(0);
    assert!(sign("60").status.success(), "{}", sandbox.logs());
}

#[test]
fn snapshot_load_brings_back_exactly_the_saved_objects() {
    let sandbox = card();
    for id in ["01", "02"] {
        sandbox.generate_key_pair("EC:prime256v1", id, &[]);
    }
    sandbox.write_data_object("first", b"one", false);
    // The listing, without the handles pkcs11-tool prints for data and profile objects.
    let objects = || {
        let listing = sandbox.ok("pkcs11-tool", &["--login", "--pin", PIN, "-O"]);
        listing
            .lines()
            .map(|l| match l.split_once(" object ") {
                Some((kind, _)) if l.starts_with("Data") || l.starts_with("Profile") => {
                    kind.to_string()
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let saved = objects();
    let answer = sandbox.control(0, &["snapshot", "save", "clean"]);
    assert!(answer.starts_with("snapshot clean saved"), "{answer}");
    sandbox.generate_key_pair("EC:prime256v1", "03", &[]);
    sandbox.write_data_object("second", b"two", false);
    assert_ne!(objects(), saved);
    let answer = sandbox.control(0, &["snapshot", "load", "clean"]);
    assert!(answer.contains("loaded: 2 key(s)"), "{answer}");
    sandbox.wait_for_card(0);
    assert_eq!(objects(), saved);
}

#[test]
fn bad_control_input_is_refused_and_the_card_serves_on() {
    let sandbox = card();
    let refused = |args: &[&str], says: &str| {
        let out = sandbox.try_control(0, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    };
    refused(
        &["fault", "add", "on=FLY,tear"],
        "no command of the card is called \"FLY\"",
    );
    refused(&["fault", "add", "--on", "SIGN"], "needs an action");
    refused(&["fault", "add", "on=SIGN,status=12"], "four hex digits");
    refused(
        &["fault", "add", "--on", "12", "--tear"],
        "no command of the card has INS 12",
    );
    refused(&["timing", "fast"], "invalid value");
    refused(
        &["snapshot", "load", "never-saved"],
        "no snapshot called never-saved",
    );
    // What the client cannot say, a raw connection can: an unknown verb.
    let socket = sandbox.control_socket(0);
    let raw = |request: &[u8]| {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        stream.write_all(request).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    assert!(raw(b"fly away\n").starts_with("error: unknown request \"fly away\""));
    assert!(raw(&[b'x'; 10_000]).starts_with("error: the request is longer than 4096 bytes"));
    // A client that connects and says nothing holds up nobody.
    let silent = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    assert!(state(&sandbox).contains("\"inserted\":true"));
    sandbox.ok("pkcs11-tool", &["-L"]);
    drop(silent);
    // Another user: the socket is the emulator user's (0600), and the emulator refuses a
    // connection from anyone else even where the file would let them in.
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    // (The scratch directory is opened for the other user to reach the socket at all.)
    Command::new("chmod")
        .arg("0711")
        .arg(sandbox.scratch())
        .status()
        .unwrap();
    Command::new("chmod")
        .arg("0666")
        .arg(&socket)
        .status()
        .unwrap();
    let as_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c"])
        .arg(format!(
            "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({:?})\ntry:\n    s.sendall(b'remove\\n')\nexcept OSError:\n    pass\nprint(s.recv(4096).decode())",
            socket.to_str().unwrap()
        ))
        .output()
        .unwrap();
    Command::new("chmod")
        .arg("0600")
        .arg(&socket)
        .status()
        .unwrap();
    let answer = String::from_utf8_lossy(&as_nobody.stdout);
    assert!(answer.starts_with("error: refused"), "{}", text(&as_nobody));
    // The card served on through all of it, still in the reader.
    assert!(state(&sandbox).contains("\"inserted\":true"));
    assert!(sandbox.card_present(0));
    let client_of_another_user = Command::new("chown")
        .args(["65534", socket.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(client_of_another_user.success());
    let out = Command::new("setpriv")
        .args(["--reuid=65533", "--regid=65533", "--clear-groups"])
        .arg(emulator_binary())
        .args(["control", "--socket", socket.to_str().unwrap(), "state"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("belongs to user 65534"),
        "{}",
        text(&out)
    );
}

/// Rules given at start (`sandbox --fault`) act from the first command, are marked in the
/// trace, and COMMAND finds the control socket in its environment.
#[test]
fn faults_at_start_are_in_force_and_marked_in_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let mut command = Command::new(emulator_binary());
    command
        .args(["sandbox", "--fault", "on=VERIFY,times=forever,status=6983", "--trace"])
        .arg(&trace)
        .args(["--", "sh", "-c"])
        .arg(format!(
            "pkcs11-tool --login --pin {PIN} -O; echo \"exit $?\"; {} control fault list; env | grep -c '^SC_HSM_EMULATOR_CONTROL'",
            emulator_binary().display()
        ));
    opensc().configure(&mut command);
    let out = command.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("CKR_PIN_LOCKED"), "{all}");
    assert!(all.contains("exit 1"), "{all}");
    assert!(
        all.contains("[on=VERIFY,times=forever,status=6983: seen "),
        "{all}"
    );
    // SC_HSM_EMULATOR_CONTROL and SC_HSM_EMULATOR_CONTROL_0.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.trim_end().ends_with('2'), "{all}");
    let trace = std::fs::read_to_string(&trace).unwrap();
    let marked = trace
        .lines()
        .filter(|l| l.contains("VERIFY") && l.contains("FAULT: status word given instead"))
        .count();
    assert!(marked >= 1, "{trace}");
    // A rule that does not parse stops the sandbox before anything starts.
    let bad = Command::new(emulator_binary())
        .args(["sandbox", "--fault", "on=SIGN", "--", "true"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("--fault: fault \"on=SIGN\": a rule needs an action"),
        "{}",
        text(&bad)
    );
}
