//! `sc-hsm-emulator sandbox -- COMMAND`: no pcscd needed, parallel runs, nothing left behind,
//! COMMAND's exit code returned, as root and as an unprivileged user.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use conformance_tests::{emulator_binary, text};

/// Processes whose command line mentions `dir` (where the sandboxes made their directories).
fn processes_mentioning(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&dir))
        .collect()
}

#[test]
fn pkcs11_tool_in_two_parallel_sandboxes_and_nothing_left_behind() {
    // The sandboxes make their directories in TMPDIR: a private one shows what they leave.
    let tmp = tempfile::tempdir().unwrap();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let tmp = tmp.path().to_path_buf();
            std::thread::spawn(move || {
                Command::new(emulator_binary())
                    .env("TMPDIR", tmp)
                    .args(["sandbox", "--", "pkcs11-tool", "-L"])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    let mut serials = Vec::new();
    for run in runs {
        let out = run.join().unwrap();
        let text = text(&out);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("token model        : PKCS#15 emulated"),
            "{text}"
        );
        serials.push(
            text.lines()
                .find(|l| l.contains("serial num"))
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_ne!(serials[0], serials[1], "each sandbox has its own new card");
    assert!(
        processes_mentioning(tmp.path()).is_empty(),
        "{:?}",
        processes_mentioning(tmp.path())
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "a sandbox directory was left behind"
    );
}

#[test]
fn the_commands_exit_code_is_returned() {
    let out = Command::new(emulator_binary())
        .args(["sandbox", "--", "sh", "-c", "opensc-tool -n && exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(text(&out).contains("SmartCard-HSM"));
    let missing = Command::new(emulator_binary())
        .args(["sandbox", "--", "/nonexistent/program"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("cannot run /nonexistent/program"),
        "{}",
        text(&missing)
    );
}

#[test]
fn an_unprivileged_user_gets_a_sandbox_through_user_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = dir.path().join("sc-hsm-emulator");
    std::fs::copy(emulator_binary(), &binary).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "env",
            "HOME=/tmp",
            "TMPDIR=/tmp",
        ])
        .arg(&binary)
        .args(["sandbox", "--", "opensc-tool", "-n"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("SmartCard-HSM"), "{}", text(&out));
}

/// The temporary directory's sandbox directories, and the processes that mention it.
fn left_behind(tmp: &std::path::Path) -> (usize, Vec<String>) {
    let dirs = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("sc-hsm-sandbox-")
        })
        .count();
    (dirs, processes_mentioning(tmp))
}

/// A sandbox running `sleep 600` as COMMAND in the private temporary directory `tmp`, started
/// through `sh -c` (the returned parent) so that tests can also kill the parent; waits until
/// COMMAND runs.
fn sandbox_running_a_long_command(tmp: &std::path::Path) -> std::process::Child {
    let marker = tmp.join("running");
    let script = format!(
        "exec {} sandbox -- sh -c 'touch {}; exec sleep 600'",
        emulator_binary().display(),
        marker.display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .env("TMPDIR", tmp)
        .spawn()
        .unwrap();
    conformance_tests::wait_until("the sandboxed command to run", || marker.exists());
    child
}

#[test]
fn a_sandbox_stopped_by_a_signal_passes_it_on_and_leaves_nothing_behind() {
    for (signal, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let tmp = tempfile::tempdir().unwrap();
        let mut sandbox = sandbox_running_a_long_command(tmp.path());
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &sandbox.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = sandbox.wait().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        assert_eq!(left_behind(tmp.path()), (0, vec![]), "SIG{signal}");
    }
}

#[test]
fn a_sandbox_whose_parent_dies_tears_everything_down() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("running");
    // The sandbox's parent is this shell; SIGKILL takes the shell and leaves the sandbox alone.
    let script = format!(
        "{} sandbox -- sh -c 'touch {}; exec sleep 600' & wait",
        emulator_binary().display(),
        marker.display()
    );
    let mut parent = Command::new("sh")
        .args(["-c", &script])
        .env("TMPDIR", tmp.path())
        .spawn()
        .unwrap();
    conformance_tests::wait_until("the sandboxed command to run", || marker.exists());
    parent.kill().unwrap();
    parent.wait().unwrap();
    conformance_tests::wait_until("the sandbox to tear down", || {
        left_behind(tmp.path()) == (0, vec![])
    });
}

#[test]
fn the_directory_of_a_killed_sandbox_is_removed_by_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sandbox = sandbox_running_a_long_command(tmp.path());
    sandbox.kill().unwrap();
    sandbox.wait().unwrap();
    // SIGKILL: the kernel takes pcscd, the card and the namespaces; the directory stays.
    conformance_tests::wait_until("the killed sandbox's processes to end", || {
        left_behind(tmp.path()).1.is_empty()
    });
    assert_eq!(left_behind(tmp.path()).0, 1);
    let next = Command::new(emulator_binary())
        .env("TMPDIR", tmp.path())
        .args(["sandbox", "--", "true"])
        .output()
        .unwrap();
    assert!(next.status.success(), "{}", text(&next));
    assert_eq!(left_behind(tmp.path()), (0, vec![]));
}
