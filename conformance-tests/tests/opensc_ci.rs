//! The drop-in for OpenSC's own CI, `contrib/opensc-ci/test-sc-hsm-emulator.sh`, run as
//! OpenSC's CI runs its `.github/test-*.sh` scripts: from the root of the built OpenSC tree
//! (0.26.1, `scripts/build-opensc`), once plainly and once with `valgrind`. The script
//! installs the emulator from this checkout (`SC_HSM_EMULATOR_SOURCE`: no clone, no network),
//! makes the card with the four keys of OpenSC's `sc-hsm_ref.json`, runs p11test against it
//! and compares its log with `contrib/opensc-ci/sc-hsm-emulator_ref.json`, which the test
//! puts where OpenSC would commit it (`src/tests/p11test/`).
//!
//! `cargo install` builds in this checkout's target directory (`CARGO_TARGET_DIR` when that
//! is set): its release profile is the one `scripts/build-image` has already built in
//! `scripts/test`, so the install only copies the binary. The crates come from cargo's cache,
//! which building this test filled (`CARGO_NET_OFFLINE`, unless the caller set it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use conformance_tests::{opensc, text, wait_until_or};

/// The repository root.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Files the runs put into the OpenSC tree (the reference placed there, p11test's log):
/// removed when the test ends, passed or failed, so that the tree stays as other tests expect.
struct PlacedFiles(Vec<PathBuf>);

impl Drop for PlacedFiles {
    fn drop(&mut self) {
        for file in &self.0 {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Processes that name `dir` in their command line, environment or executable: what a run
/// with `TMPDIR` and the install root in `dir` could have left behind (the emulator, its
/// private pcscd and namespace holder, the tools on the card).
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let proc = entry.path();
        let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(proc.join("environ")).unwrap_or_default();
        let exe = std::fs::read_link(proc.join("exe")).unwrap_or_default();
        let names_it = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        if names_it(&cmdline) || names_it(&environ) || exe.starts_with(dir) {
            let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("{pid}: {shown}"));
        }
    }
    found
}

/// A line of valgrind's (`==PID== ...`): with `-q`, valgrind writes only what it found.
fn is_valgrind_report(line: &str) -> bool {
    line.strip_prefix("==")
        .and_then(|rest| rest.split_once("=="))
        .is_some_and(|(pid, _)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// The last `n` lines of a run's output (the script traces every command).
fn tail(output: &str, n: usize) -> String {
    let lines: Vec<_> = output.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn the_opensc_ci_script_passes_plain_and_under_valgrind() {
    let opensc = opensc();
    let Some(tree) = opensc.build_tree() else {
        opensc.note(
            "has no p11test (Debian ships none); contrib/opensc-ci's script for OpenSC's CI \
             runs in scripts/test's pass against its own OpenSC build",
        );
        return;
    };
    let repo = repo();
    let contrib = repo.join("contrib/opensc-ci");
    let reference = std::fs::read_to_string(contrib.join("sc-hsm-emulator_ref.json")).unwrap();
    assert_eq!(
        reference,
        std::fs::read_to_string(repo.join("fixtures/p11test/sc-hsm-emulator_ref.json")).unwrap(),
        "contrib/opensc-ci's reference is the README's (fixtures/p11test): one log of one run"
    );

    // Where OpenSC keeps its references; a tree that has one already keeps it.
    let p11test_dir = tree.join("src/tests/p11test");
    let log = p11test_dir.join("sc-hsm-emulator.json");
    let tree_reference = p11test_dir.join("sc-hsm-emulator_ref.json");
    let mut placed = PlacedFiles(vec![log.clone()]);
    if !tree_reference.exists() {
        std::fs::write(&tree_reference, &reference).unwrap();
        placed.0.push(tree_reference);
    }

    let scratch = tempfile::tempdir().unwrap();
    let (root, tmp) = (scratch.path().join("root"), scratch.path().join("tmp"));
    std::fs::create_dir_all(&tmp).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    // The cargo that runs this test, first on PATH for the script's `cargo install`.
    let mut path = std::env::var_os("CARGO")
        .map(|cargo| vec![PathBuf::from(cargo).parent().unwrap().to_path_buf()])
        .unwrap_or_default();
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    // OpenSC 0.26 leaks the EC parameters of a generated key in its PKCS#11 module (0.27
    // reworked that path, commit c43f01d6); valgrind sees it on pkcs11-tool --keypairgen.
    let old_opensc_leaks = opensc.version() < (0, 27, 0);

    let mut timings = Vec::new();
    for mode in [None, Some("valgrind")] {
        let name = mode.unwrap_or("plain");
        let _ = std::fs::remove_file(&log);
        let mut command = Command::new("nice");
        command
            .args(["-n", "10", "bash"])
            .arg(contrib.join("test-sc-hsm-emulator.sh"))
            .args(mode)
            .current_dir(&tree)
            .env("PATH", std::env::join_paths(&path).unwrap())
            .env("SC_HSM_EMULATOR_SOURCE", repo)
            .env("SC_HSM_EMULATOR_ROOT", &root)
            .env("CARGO_TARGET_DIR", &target)
            .env("TMPDIR", &tmp)
            .env_remove("VALGRIND")
            .env_remove("LD_PRELOAD")
            .env_remove("LD_LIBRARY_PATH");
        if std::env::var_os("CARGO_NET_OFFLINE").is_none() {
            command.env("CARGO_NET_OFFLINE", "true");
        }
        if mode.is_some() && old_opensc_leaks {
            command.env(
                "SC_HSM_EMULATOR_SUPPRESSIONS",
                contrib.join("opensc-0.26-valgrind.supp"),
            );
            opensc.note(
                "valgrind reports two leaks of EC key generation (pkcs11-tool \
                 --keypairgen) before OpenSC 0.27; contrib/opensc-ci/opensc-0.26-valgrind.supp \
                 suppresses them",
            );
        }
        let started = Instant::now();
        let out = command.output().unwrap();
        let took = started.elapsed();
        let output = text(&out);
        assert!(
            out.status.success(),
            "test-sc-hsm-emulator.sh {name} against {} failed ({}):\n{}",
            opensc.name(),
            out.status,
            tail(&output, 120)
        );
        assert!(
            root.join("bin/sc-hsm-emulator").is_file(),
            "cargo install put no sc-hsm-emulator into {}",
            root.display()
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap_or_default(),
            reference,
            "p11test's log ({name} run) is the reference"
        );
        if mode.is_some() {
            let reports: Vec<_> = output.lines().filter(|l| is_valgrind_report(l)).collect();
            assert!(
                reports.is_empty(),
                "valgrind reported, yet the script passed:\n{}",
                reports.join("\n")
            );
        }
        // Nothing of the run outlives the script.
        wait_until_or(
            "the processes of the script's run to end",
            || processes_naming(scratch.path()).is_empty(),
            || processes_naming(scratch.path()).join("\n"),
        );
        let leftovers: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
        assert!(
            leftovers.is_empty(),
            "the run left files in TMPDIR: {leftovers:?}"
        );
        timings.push(format!("{name} {:.1} s", took.as_secs_f64()));
    }
    println!(
        "test-sc-hsm-emulator.sh against {}: {} (cargo install included)",
        opensc.name(),
        timings.join(", ")
    );
}
