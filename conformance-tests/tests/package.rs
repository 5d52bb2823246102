//! The program as a Linux tool: its manual pages render without a warning from groff or
//! man-db, and the Debian package of `scripts/build-deb` installs with apt in a fresh Debian 12
//! (a podman container of the root file system `scripts/build-image` makes) and works there:
//! a sandbox with OpenSC's `pkcs15-tool` against the demo card, `man` finding and showing a
//! command's page, the bash completion loading and completing, the systemd unit pointing at
//! the installed program; removing the package leaves none of its files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use conformance_tests::{emulator_binary, host_limits, remove_container, text};
use vpcd_bridge::private_pcscd::is_root;

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Whether `program` runs (`program --version` succeeds).
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `scripts/ensure-packages` (installs what is missing; root only).
fn ensure_packages(packages: &[&str]) {
    let out = Command::new(workspace().join("scripts/ensure-packages"))
        .args(packages)
        .output()
        .unwrap();
    assert!(out.status.success(), "ensure-packages: {}", text(&out));
}

/// Runs a script of the workspace; its last line of output (the path it made).
fn script(name: &str) -> String {
    let out = Command::new(workspace().join("scripts").join(name))
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/{name}: {}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn every_manual_page_renders_without_warnings() {
    if !(installed("groff") && installed("man")) {
        if !is_root() {
            eprintln!("skipped: groff and man-db are not installed, and installing needs root");
            return;
        }
        ensure_packages(&["man-db", "groff-base"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(emulator_binary())
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let listed: Vec<PathBuf> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    let mut written: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    written.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted, written,
        "man prints the path of each page it writes"
    );
    for page in [
        "sc-hsm-emulator.1",
        "sc-hsm-emulator-sandbox.1",
        "sc-hsm-emulator-pki-export.1",
        "sc-hsm-emulator-trace-show.1",
        "sc-hsm-emulator-control-fault-add.1",
    ] {
        assert!(written.contains(&dir.path().join(page)), "{page}");
    }

    // Without --out-dir: the program's own page on standard output.
    let top = Command::new(emulator_binary()).arg("man").output().unwrap();
    assert!(top.status.success(), "{}", text(&top));
    assert_eq!(
        top.stdout,
        std::fs::read(dir.path().join("sc-hsm-emulator.1")).unwrap()
    );

    for page in &written {
        let name = page.file_stem().unwrap().to_str().unwrap();
        // groff with every warning on, output thrown away: anything on stderr is a warning.
        let groff = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .unwrap();
        assert!(
            groff.status.success() && groff.stderr.is_empty(),
            "groff on {name}: {}",
            text(&groff)
        );
        // man-db as a reader meets it: `man -l`, warnings passed on to groff.
        let man = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        assert!(
            man.status.success() && man.stderr.is_empty(),
            "man -l {name}: {}",
            text(&man)
        );
        let shown = String::from_utf8_lossy(&man.stdout);
        // The header names the page on both sides (at 100 columns: at 80 the longest names,
        // 36 characters, run into the middle one).
        let title = format!("{}(1)", name.to_uppercase());
        let header = shown.lines().next().unwrap_or_default();
        assert!(
            header.starts_with(&name.to_uppercase()) && header.ends_with(&title),
            "{name}:\n{shown}"
        );
        for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"] {
            assert!(
                shown.contains(&format!("\n{heading}\n")),
                "{name}: no {heading}:\n{shown}"
            );
        }
        // NAME as whatis reads it: the page's name, a dash, what it does.
        assert!(
            shown.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.len() > 2 && words[0] == name && words[1] == "-"
            }),
            "{name}: NAME:\n{shown}"
        );
    }
}

/// A podman image of the bare Debian 12 root file system, for this test only; removed on drop.
struct Image(String);

impl Image {
    fn import(rootfs: &Path) -> Image {
        let image = Image(format!(
            "localhost/sc-hsm-package-test:{}",
            std::process::id()
        ));
        let out = Command::new("podman")
            .args(["import", "--quiet"])
            .arg(rootfs)
            .arg(&image.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "podman import: {}", text(&out));
        image
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rmi", "--force", "--ignore", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A privileged container of [`Image`] that sleeps while the test runs commands in it
/// (privileged: the sandbox makes mount and network namespaces inside it); removed on drop.
struct Machine {
    name: String,
}

impl Machine {
    fn start(image: &Image, debs: &Path) -> Machine {
        let name = format!("sc-hsm-package-test-{}", std::process::id());
        let _ = Command::new("podman")
            .args(["rm", "--force", "--ignore", "--time", "0", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let out = Command::new("podman")
            .args(["run", "--detach", "--privileged", "--name", &name])
            .args(host_limits())
            .arg(format!("--volume={}:/deb:ro", debs.display()))
            .args([&image.0, "sleep", "infinity"])
            .output()
            .unwrap();
        // From here on the container exists, also when it failed to start: removed on drop.
        let machine = Machine { name };
        assert!(out.status.success(), "podman run: {}", text(&out));
        machine
    }

    /// `sh -c SCRIPT` in the container, stopped after ten minutes.
    fn sh(&self, script: &str) -> Output {
        Command::new("podman")
            .args([
                "exec",
                "--env=DEBIAN_FRONTEND=noninteractive",
                "--env=LC_ALL=C.UTF-8",
            ])
            .args([
                &self.name,
                "timeout",
                "--kill-after=10",
                "600",
                "sh",
                "-c",
                script,
            ])
            .output()
            .unwrap()
    }

    /// As [`Machine::sh`], which must succeed; its standard output.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the container: {script}\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        remove_container(&self.name);
    }
}

/// What `dpkg-deb` says about the package: a control field, or the files (paths without `.`).
fn dpkg_deb(deb: &Path, args: &[&str]) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_package_installs_and_works_in_a_fresh_debian_12() {
    if !is_root() {
        eprintln!("skipped: installing packages in a podman container needs root");
        return;
    }
    let started = Instant::now();
    let lap = |what: &str| eprintln!("package: {what} after {:.1?}", started.elapsed());

    let rootfs = workspace().join("target/image/rootfs-bookworm.tar");
    if !rootfs.exists() {
        // scripts/build-image makes it (debootstrap from the machine's Debian mirror).
        script("build-image");
    }
    let deb = PathBuf::from(script("build-deb"));
    lap("scripts/build-deb");
    let file = deb.file_name().unwrap().to_str().unwrap().to_string();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        file.starts_with(&format!("sc-hsm-emulator_{version}_")) && file.ends_with(".deb"),
        "{file}"
    );
    eprintln!(
        "package: {file}, {} bytes",
        std::fs::metadata(&deb).unwrap().len()
    );

    // What the package says and holds, read on the host.
    let depends = dpkg_deb(&deb, &["--field"]);
    for needed in [
        "pcscd",
        "vsmartcard-vpcd",
        "util-linux (>= 2.33)",
        "mount",
        "procps",
        "iproute2",
        "libc6",
    ] {
        assert!(
            depends.contains(&format!(" {needed}")),
            "Depends lacks {needed}:\n{depends}"
        );
    }
    assert!(
        depends.contains("\nRecommends: opensc, opensc-pkcs11\n"),
        "{depends}"
    );
    let files = dpkg_deb(&deb, &["--contents"]);
    for path in [
        "./usr/bin/sc-hsm-emulator",
        "./usr/share/man/man1/sc-hsm-emulator.1.gz",
        "./usr/share/man/man1/sc-hsm-emulator-sandbox.1.gz",
        "./usr/share/man/man1/sc-hsm-emulator-pki-export.1.gz",
        "./usr/share/man/man1/sc-hsm-emulator-trace-show.1.gz",
        "./usr/share/bash-completion/completions/sc-hsm-emulator",
        "./usr/share/zsh/vendor-completions/_sc-hsm-emulator",
        "./usr/share/fish/vendor_completions.d/sc-hsm-emulator.fish",
        "./usr/lib/systemd/system/sc-hsm-emulator.service",
        "./usr/share/doc/sc-hsm-emulator/README.md.gz",
        "./usr/share/doc/sc-hsm-emulator/copyright",
        "./usr/share/doc/sc-hsm-emulator/changelog.gz",
    ] {
        assert!(
            files.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "{path} missing:\n{files}"
        );
    }
    // Every file belongs to root (dpkg-deb --root-owner-group), none is writable by others.
    for line in files.lines() {
        assert!(line.contains(" root/root "), "{line}");
        assert!(
            !line.starts_with("-rw-rw") && !line.starts_with("-rwxrwx"),
            "{line}"
        );
    }

    // Debian 12 as `scripts/build-image` bootstrapped it: nothing of the emulator, pcscd or
    // OpenSC.
    let image = Image::import(&rootfs);
    let machine = Machine::start(&image, deb.parent().unwrap());
    lap("the container is up");
    assert!(
        machine
            .sh("command -v sc-hsm-emulator pcscd pkcs15-tool")
            .stdout
            .is_empty(),
        "the bare image already has some of the programs"
    );

    // apt in the container reaches the mirror debootstrap wrote into its sources.list.
    let update = machine.sh("apt-get update");
    assert!(
        update.status.success() && !text(&update).contains("Err:"),
        "apt-get update in the container (its /etc/apt/sources.list is debootstrap's):\n{}",
        text(&update)
    );
    lap("apt-get update");
    // Without Recommends: the package's Depends alone must carry the sandbox; OpenSC is the
    // client, man-db the reader of the pages.
    machine.ok(&format!(
        "apt-get install -y -q --no-install-recommends /deb/{file} opensc man-db"
    ));
    lap("apt-get install of the package, opensc and man-db");
    let status = machine.ok("dpkg-query -W -f '${Status} ${Version}' sc-hsm-emulator");
    assert_eq!(status, format!("install ok installed {version}"));

    // The sandbox: a private pcscd with the demo card, OpenSC's listing of it. A sandbox that
    // cannot tear down (without procps it finds no `kill` and waits forever) is stopped after
    // two minutes.
    let listing =
        machine.ok("timeout 120 sc-hsm-emulator sandbox --profile demo -- pkcs15-tool -D 2>&1");
    assert!(listing.contains("Joe Doe"), "{listing}");
    assert!(listing.contains("SmartCard-HSM"), "{listing}");
    lap("sandbox --profile demo -- pkcs15-tool -D");
    // Nothing of the sandbox is left running.
    let left =
        machine.ok("ps -eo comm= | grep -v -x -e sleep -e ps -e sh -e grep -e timeout || true");
    assert!(left.trim().is_empty(), "left running: {left}");

    // man finds the pages in /usr/share/man and renders them without a warning.
    let found = machine.ok("man -w sc-hsm-emulator-sandbox");
    assert_eq!(
        found.trim(),
        "/usr/share/man/man1/sc-hsm-emulator-sandbox.1.gz"
    );
    let page = machine.sh("MANPAGER=cat MANWIDTH=80 man --warnings sc-hsm-emulator-sandbox");
    let shown = String::from_utf8_lossy(&page.stdout);
    assert!(
        page.status.success() && page.stderr.is_empty(),
        "{}",
        text(&page)
    );
    assert!(shown.starts_with("SC-HSM-EMULATOR-SANDBOX(1)"), "{shown}");
    assert!(
        shown.contains("sc-hsm-emulator sandbox --profile demo -- pkcs15-tool -D"),
        "{shown}"
    );
    // whatis reads the NAME line mandb indexed at installation.
    let whatis = machine.ok("whatis sc-hsm-emulator-pki-export");
    assert!(
        whatis.starts_with("sc-hsm-emulator-pki-export (1)"),
        "{whatis}"
    );
    lap("man");

    // The bash completion loads on its own and completes commands and options.
    let complete = machine.ok(
        "bash -c 'source /usr/share/bash-completion/completions/sc-hsm-emulator && complete -p sc-hsm-emulator'",
    );
    assert!(
        complete.starts_with("complete ")
            && complete
                .trim_end()
                .ends_with(" -F _sc__hsm__emulator sc-hsm-emulator"),
        "{complete}"
    );
    let words = |line: &str| {
        machine.ok(&format!(
            "bash -c 'source /usr/share/bash-completion/completions/sc-hsm-emulator; \
             COMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _sc__hsm__emulator sc-hsm-emulator \"${{COMP_WORDS[COMP_CWORD]}}\" \
             \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf \"%s\\n\" \"${{COMPREPLY[@]}}\"'"
        ))
    };
    assert_eq!(words("sc-hsm-emulator sa").trim(), "sandbox");
    assert_eq!(words("sc-hsm-emulator pki ex").trim(), "export");
    // After `completions`: its options, and the shells as its argument's values.
    let shells = words("sc-hsm-emulator completions \"\"");
    assert_eq!(
        shells
            .split_whitespace()
            .filter(|w| !w.starts_with('-'))
            .collect::<Vec<_>>(),
        ["bash", "zsh", "fish"]
    );
    assert!(
        words("sc-hsm-emulator sandbox --pro")
            .lines()
            .any(|w| w == "--profile"),
        "no --profile"
    );
    lap("bash completion");

    // The unit runs the installed program; nothing enabled it.
    let unit = machine.ok("cat /usr/lib/systemd/system/sc-hsm-emulator.service");
    assert!(
        unit.contains(
            "\nExecStart=/usr/bin/sc-hsm-emulator serve --config /etc/sc-hsm-emulator/fleet.toml\n"
        ),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local/"), "{unit}");
    machine.ok("test ! -e /etc/systemd/system/multi-user.target.wants/sc-hsm-emulator.service");

    // Removing the package removes its files.
    machine.ok("apt-get remove -y -q sc-hsm-emulator");
    machine.ok(
        "test ! -e /usr/bin/sc-hsm-emulator && test ! -e /usr/share/man/man1/sc-hsm-emulator.1.gz \
         && test ! -e /usr/share/bash-completion/completions/sc-hsm-emulator \
         && test ! -e /usr/share/doc/sc-hsm-emulator",
    );
    drop(machine);
    drop(image);
    lap("done, container and image removed");
}
