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
