//! The README's first command, `scripts/run-card`, brings up a card that `pkcs11-tool -L`
//! lists. It runs in private PID, mount and network namespaces, so the pcscd it starts (no
//! pcscd runs there) is its own and goes away with the test.

use std::process::Command;

use conformance_tests::text;

#[test]
fn the_first_command_of_the_readme_brings_up_a_card() {
    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let script = format!(
        "set -e; mkdir -p /run/pcscd; mount -t tmpfs tmpfs /run/pcscd; ip link set lo up; \
         cd '{repo}'; scripts/run-card --db '{dir}/card.redb' >'{dir}/run-card.log' 2>&1 & \
         for i in $(seq 300); do pkcs11-tool -L 2>/dev/null | grep -q 'PKCS#15 emulated' && break; sleep 0.1; done; \
         pkcs11-tool -L; kill %1",
        repo = repo.display(),
        dir = dir.path().display()
    );
    let out = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--mount",
            "--net",
            "--kill-child=SIGKILL",
            "sh",
            "-c",
        ])
        .arg(&script)
        .output()
        .unwrap();
    let listing = text(&out);
    let log = std::fs::read_to_string(dir.path().join("run-card.log")).unwrap_or_default();
    assert!(listing.contains("Virtual PCD 00 00"), "{listing}\n{log}");
    assert!(
        listing.contains("token manufacturer : www.CardContact.de"),
        "{listing}\n{log}"
    );
    assert!(
        log.contains("starting pcscd"),
        "run-card started its own pcscd:\n{log}"
    );
}
