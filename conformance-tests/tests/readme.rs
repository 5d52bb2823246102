//! The README's first command, `scripts/run-card`, brings up a card that `pkcs11-tool -L`
//! lists. It runs in private PID, mount and network namespaces, so the pcscd it starts (no
//! pcscd listens there) is its own and goes away with the test, while another private pcscd
//! runs on the machine (as CI jobs and sandboxes run them).

use std::path::Path;
use std::process::{Command, Output};

use conformance_tests::text;

/// The repository root.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Runs the shell `script` in private PID, mount and network namespaces with its own
/// `/run/pcscd` and loopback up, so that whatever pcscd it starts is its own; everything in
/// them is killed when the script ends.
fn in_private_namespaces(script: &str) -> Output {
    let script = format!(
        "set -e; mkdir -p /run/pcscd; mount -t tmpfs tmpfs /run/pcscd; ip link set lo up; {script}"
    );
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--mount", "--net"])
        .args(["--kill-child=SIGKILL", "sh", "-c", &script])
        .output()
        .unwrap()
}

/// Shell that starts `scripts/run-card --db DB` in the background (its pid in `$card`, its
/// output in `log`) and polls until pkcs11-tool sees the card.
fn start_run_card(db: &Path, log: &Path) -> String {
    format!(
        "cd '{repo}'; scripts/run-card --db '{db}' >'{log}' 2>&1 & card=$!; \
         for i in $(seq 300); do pkcs11-tool -L 2>/dev/null | grep -q 'PKCS#15 emulated' && break; sleep 0.1; done; ",
        repo = repo().display(),
        db = db.display(),
        log = log.display()
    )
}

#[test]
fn the_first_command_of_the_readme_brings_up_a_card() {
    // A private pcscd elsewhere on the machine: run-card must not take it for the system one.
    let _elsewhere = conformance_tests::Sandbox::pcscd_only();
    let dir = tempfile::tempdir().unwrap();
    // pkcs11-tool twice: every client call used to put pcscd's IFDControl line on the
    // terminal. `ss` lists the TCP ports open in the namespace the user's programs are in.
    let out = in_private_namespaces(&format!(
        "{}pkcs11-tool -L; pkcs11-tool -L >/dev/null; echo open: $(ss -tlnH | wc -l); \
         kill -TERM $card; wait $card || true",
        start_run_card(
            &dir.path().join("card.redb"),
            &dir.path().join("run-card.log")
        )
    ));
    let listing = text(&out);
    let log = std::fs::read_to_string(dir.path().join("run-card.log")).unwrap_or_default();
    assert!(listing.contains("Virtual PCD 00 00"), "{listing}\n{log}");
    assert!(
        listing.contains("token manufacturer : www.CardContact.de"),
        "{listing}\n{log}"
    );
    assert!(
        log.contains("run-card: started pcscd (pid"),
        "run-card did not start its own pcscd:\n{log}"
    );
    assert!(
        log.contains("run-card: stopped the pcscd it had started"),
        "run-card did not stop its pcscd:\n{log}"
    );
    // pcscd's routine lines stay in its log; vpcd's ports are in the card's namespace only.
    assert!(!log.contains("IFDControl"), "{log}");
    assert!(
        log.contains(
            "run-card: vpcd listens on TCP 35963-35964 in a private network namespace that only \
             the card shares"
        ),
        "{log}"
    );
    assert!(listing.contains("open: 0\n"), "{listing}");
}

/// With a pcscd already listening where clients look, run-card uses it (and starts none); when
/// that pcscd has fewer vpcd slots than the cards asked for, it says so and what to do.
#[test]
fn run_card_uses_a_running_pcscd_and_says_when_it_has_too_few_slots() {
    let dir = tempfile::tempdir().unwrap();
    let config = vpcd_bridge::private_pcscd::write_reader_config(dir.path(), 2).unwrap();
    let out = in_private_namespaces(&format!(
        "pcscd --foreground --config '{config}' >/dev/null 2>&1 & \
         for i in $(seq 300); do ss -xlH | grep -q pcscd.comm && break; sleep 0.02; done; \
         {start}pkcs11-tool -L; kill -TERM $card; wait $card || true; \
         scripts/run-card --cards 3 --db '{dir}/three.redb' >'{dir}/three.log' 2>&1 || echo refused",
        config = config.display(),
        start = start_run_card(&dir.path().join("card.redb"), &dir.path().join("one.log")),
        dir = dir.path().display()
    ));
    let listing = text(&out);
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert!(
        listing.contains("token manufacturer : www.CardContact.de"),
        "{listing}\n{}",
        log("one.log")
    );
    assert!(log("one.log").contains("using the pcscd that listens on /run/pcscd/pcscd.comm"));
    assert!(
        !log("one.log").contains("started pcscd"),
        "{}",
        log("one.log")
    );
    assert!(listing.contains("refused"), "{listing}");
    assert!(
        log("three.log").contains("that pcscd has 2 vpcd slots, 3 cards need as many"),
        "{}",
        log("three.log")
    );
}

/// The blocks of README.md marked `<!-- readme-test: KIND -->`, in order: their kind and
/// their command lines (an indented block, or a fenced YAML block's `run:` and `script:` lines).
fn readme_blocks() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut lines = readme.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(kind) = line
            .strip_prefix("<!-- readme-test: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        while lines.peek().is_some_and(|l| l.trim().is_empty()) {
            lines.next();
        }
        let mut commands = Vec::new();
        if kind == "yaml" {
            assert_eq!(lines.next(), Some("```yaml"));
            for l in lines.by_ref().take_while(|l| *l != "```") {
                let t = l.trim_start();
                let command = t.strip_prefix("- run: ").or_else(|| {
                    // GitLab's script lines.
                    t.strip_prefix("- ")
                        .filter(|c| !c.contains(": ") && !c.starts_with("uses"))
                });
                if let Some(command) = command {
                    commands.push(command.to_string());
                }
            }
        } else {
            while let Some(l) = lines.next_if(|l| l.starts_with("    ")) {
                commands.push(l[4..].to_string());
            }
        }
        assert!(!commands.is_empty(), "an empty {kind} block in the README");
        blocks.push((kind.to_string(), commands));
    }
    blocks
}

/// Every command block of the README runs as written, against a fresh build: the Quick start,
/// the command line's examples, the desktop pcscd flow, and the CI examples as far as they run
/// here (the package installation is skipped: the packages are there; `cargo install` builds
/// the debug profile into the workspace's target directory, to spare a release build).
#[test]
fn every_command_block_of_the_readme_runs_as_written() {
    let repo = repo();
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(repo, work.path().join("sc-hsm-emulator")).unwrap();
    std::fs::write(
        work.path().join("run-my-pkcs11-tests.sh"),
        "#!/bin/sh\nset -e\npkcs11-tool -L\npkcs11-tool -l --pin 648219 -O\n",
    )
    .unwrap();
    // CI runners have sudo; where this test runs as root without it, sudo runs the command.
    if Command::new("sh")
        .args(["-c", "command -v sudo"])
        .output()
        .unwrap()
        .stdout
        .is_empty()
    {
        std::fs::write(bin.join("sudo"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
    }
    for script in ["run-my-pkcs11-tests.sh", "bin/sudo"] {
        let _ = Command::new("chmod")
            .arg("+x")
            .arg(work.path().join(script))
            .status();
    }
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        home.join(".cargo/bin").display(),
        std::env::var("PATH").unwrap()
    );
    let run = |line: &str, dir: &std::path::Path| {
        let line = line.replace(
            "cargo install --locked --path",
            &format!(
                "CARGO_TARGET_DIR={} cargo install --debug --root {} --locked --path",
                repo.join("target").display(),
                home.join(".cargo").display()
            ),
        );
        Command::new("sh")
            .args(["-c", &line])
            .current_dir(dir)
            .env("PATH", &path)
            .env("HOME", &home)
            .output()
            .unwrap()
    };
    let blocks = readme_blocks();
    assert!(blocks.len() >= 6, "{blocks:?}");
    let mut ran = 0;
    for (kind, commands) in &blocks {
        match kind.as_str() {
            "install" | "shell" | "yaml" => {
                let dir = if kind == "yaml" { work.path() } else { repo };
                let dir = if kind == "shell" { work.path() } else { dir };
                for line in commands {
                    if line.contains("apt-get") {
                        continue;
                    }
                    let out = run(line, dir);
                    assert!(out.status.success(), "README: {line}\n{}", text(&out));
                    ran += 1;
                    if line.contains("--seed 1") && line.contains("--keypairgen") {
                        // The same key every time.
                        assert_eq!(run(line, dir).stdout, out.stdout, "README: {line}");
                    }
                }
            }
            "with-run-card" => {
                let mut script = start_run_card(
                    &work.path().join(format!("card-{ran}.redb")),
                    &work.path().join("run-card.log"),
                );
                for line in commands {
                    script.push_str(&format!(
                        "{{ {line}\n}} || {{ echo 'README line failed: {}'; kill $card; exit 1; }}; ",
                        line.replace('\'', "")
                    ));
                }
                script.push_str("kill -TERM $card; wait $card || true");
                let out = in_private_namespaces(&script);
                assert!(out.status.success(), "{}", text(&out));
                ran += commands.len();
            }
            // Needs p11test, which only a build of OpenSC has: the next test.
            "p11test" => {}
            other => panic!("unknown README test block kind {other}"),
        }
    }
    println!("{ran} README commands ran");
}

/// The README's lines for OpenSC's own CI, run as written in a copy of the p11test directory
/// of the OpenSC build under test (`scripts/test` runs this in its pass against OpenSC 0.26.1;
/// Debian's packages have no p11test), with the emulator's reference log beside it as OpenSC
/// would keep it. The log is also compared with OpenSC's reference log of a physical card.
#[test]
fn the_lines_for_opensc_ci_run_p11test_as_written() {
    let opensc = conformance_tests::opensc();
    let Some(tree) = opensc.build_tree() else {
        opensc.note(
            "has no p11test (Debian ships none); the README's lines for OpenSC's CI run in \
             scripts/test's pass against its own OpenSC build",
        );
        return;
    };
    let blocks: Vec<_> = readme_blocks()
        .into_iter()
        .filter(|(kind, _)| kind == "p11test")
        .collect();
    assert_eq!(blocks.len(), 1, "one p11test block in the README");
    let repo = repo();
    // The layout p11test expects: its module at ../../pkcs11/.libs/opensc-pkcs11.so.
    let work = tempfile::tempdir().unwrap();
    let here = work.path().join("src/tests/p11test");
    std::fs::create_dir_all(&here).unwrap();
    std::fs::create_dir_all(work.path().join("src/pkcs11")).unwrap();
    std::os::unix::fs::symlink(
        tree.join("src/pkcs11/.libs"),
        work.path().join("src/pkcs11/.libs"),
    )
    .unwrap();
    std::os::unix::fs::symlink(tree.join("src/tests/p11test/p11test"), here.join("p11test"))
        .unwrap();
    std::fs::copy(
        repo.join("fixtures/p11test/sc-hsm-emulator_ref.json"),
        here.join("sc-hsm-emulator_ref.json"),
    )
    .unwrap();
    let emulator_dir = conformance_tests::emulator_binary().parent().unwrap();
    for line in &blocks[0].1 {
        let mut command = Command::new("sh");
        command.args(["-c", line]).current_dir(&here);
        opensc.configure(&mut command);
        let path = command
            .get_envs()
            .find(|(k, _)| *k == "PATH")
            .and_then(|(_, v)| v.map(|v| v.to_os_string()))
            .unwrap_or_else(|| std::env::var_os("PATH").unwrap());
        let mut dirs = vec![emulator_dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        command.env("PATH", std::env::join_paths(dirs).unwrap());
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "README ({}): {line}\n{}",
            opensc.name(),
            text(&out)
        );
    }
    let compare = Command::new("python3")
        .arg(repo.join("conformance-tests/scripts/p11test_compare.py"))
        .arg(tree.join("src/tests/p11test/sc-hsm_ref.json"))
        .arg(here.join("sc-hsm-emulator.json"))
        .output()
        .unwrap();
    println!("{}", text(&compare));
    assert!(
        compare.status.success(),
        "p11test's log differs from a physical card's:\n{}",
        text(&compare)
    );
}
