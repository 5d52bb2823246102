//! The sandbox where its users run it without root's privileges: a normal user whose PATH
//! lacks /usr/sbin (Debian's, where pcscd is), a normal user where user namespaces are off,
//! and a CI job's unprivileged container (rootful podman, no --privileged, no added
//! capabilities), where it runs pcscd and the card without namespaces.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use conformance_tests::{
    emulator_binary, ensure_ci_image, host_limits, text, wait_until, CI_IMAGE,
};
use vpcd_bridge::private_pcscd::is_root;

/// The user the tests run the sandbox as; made once, as a system user without a home.
const USER: &str = "sc-hsm-newcomer";

/// A normal user's PATH on Debian: no /usr/sbin, no /sbin.
const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/games";

fn ensure_user() -> (u32, u32) {
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, USER])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
    };
    if id("-u").is_none() {
        let out = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/bin/sh", USER])
            .output()
            .unwrap();
        // Another test of this file may have made it in the meantime.
        assert!(
            out.status.success() || id("-u").is_some(),
            "useradd: {}",
            text(&out)
        );
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// A directory the user can read and write, with a copy of the binary in it (the build tree
/// may not be readable to other users).
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(uid: u32, gid: u32) -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(emulator_binary(), dir.path().join("sc-hsm-emulator")).unwrap();
        for own in ["tmp", "home"] {
            let own = dir.path().join(own);
            std::fs::create_dir(&own).unwrap();
            std::os::unix::fs::chown(&own, Some(uid), Some(gid)).unwrap();
        }
        Home { dir }
    }

    fn binary(&self) -> PathBuf {
        self.dir.path().join("sc-hsm-emulator")
    }

    /// The user's temporary directory: the sandbox's working directory goes there.
    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// The sandbox removed its working directory from the user's temporary directory.
    fn assert_nothing_left(&self) {
        let left: Vec<_> = std::fs::read_dir(self.tmp()).unwrap().flatten().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    /// `env -i` with a normal user's environment, then `args`.
    fn user_env(&self) -> Vec<String> {
        vec![
            "env".into(),
            "-i".into(),
            format!("PATH={USER_PATH}"),
            format!("HOME={}", self.dir.path().join("home").display()),
            format!("TMPDIR={}", self.tmp().display()),
        ]
    }
}

/// The processes of `uid` still running.
fn processes_of(uid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let owner =
            std::fs::metadata(entry.path()).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        if owner.is_ok_and(|o| o == uid) {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            found.push(format!("{pid} {}", comm.trim()));
        }
    }
    found
}

/// The sandbox as a normal user, with Debian's PATH for normal users: pcscd is found in
/// /usr/sbin all the same, the card is listed, and nothing of the user's stays behind.
#[test]
fn a_normal_user_runs_a_sandbox_with_pcscd_outside_path() {
    if !is_root() {
        eprintln!("skipped: making a user for the test needs root");
        return;
    }
    let (uid, gid) = ensure_user();
    let home = Home::new(uid, gid);
    let out = Command::new("runuser")
        .args(["-u", USER, "--"])
        .args(home.user_env())
        .arg(home.binary())
        .args(["sandbox", "--", "pkcs11-tool", "-L"])
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("Slot 0 (0x0): Virtual PCD 00 00"), "{said}");
    assert!(
        said.contains("token manufacturer : www.CardContact.de"),
        "{said}"
    );
    // `sandbox` removes its working directory; its processes died with it.
    home.assert_nothing_left();
    wait_until("the user's processes are gone", || {
        processes_of(uid).is_empty()
    });
}

/// Runs `script` (sh) as root of a user namespace of its own that maps the machine's users
/// 0-65535 to themselves, where user.max_user_namespaces is 0: from there on, no process in it
/// may make a user namespace, as on a machine where they are switched off for normal users.
/// The machine's own setting stays as it is.
fn with_user_namespaces_off(script: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let made = Command::new("mkfifo").arg(&go).status().unwrap();
    assert!(made.success());
    // unshare makes the user namespace and runs sh in it, which waits for its maps; the
    // second sh is run after them, so that it has root's capabilities in the namespace.
    let inner = format!("echo 0 >/proc/sys/user/max_user_namespaces && {script}");
    let child = Command::new("unshare")
        .args(["--user", "sh", "-c", "read _ <\"$0\"; exec sh -c \"$1\""])
        .arg(&go)
        .arg(inner)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    wait_until("unshare made the user namespace", || {
        std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|ns| ns != ours)
    });
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 65536\n").unwrap();
    }
    std::fs::write(&go, "go\n").unwrap();
    child.wait_with_output().unwrap()
}

/// A normal user where user namespaces are off: the sandbox fails with a message that says
/// so, and what to do, and leaves nothing behind.
#[test]
fn with_user_namespaces_off_a_normal_user_is_told_why() {
    if !is_root() {
        eprintln!("skipped: switching user namespaces off for one process tree needs root");
        return;
    }
    let (uid, gid) = ensure_user();
    let home = Home::new(uid, gid);
    let command: Vec<String> = home
        .user_env()
        .into_iter()
        .chain([home.binary().display().to_string()])
        .chain(["sandbox", "--", "pkcs11-tool", "-L"].map(String::from))
        .map(|a| format!("'{a}'"))
        .collect();
    let out = with_user_namespaces_off(&format!(
        "setpriv --reuid={uid} --regid={gid} --clear-groups {}; echo exit=$?",
        command.join(" ")
    ));
    let said = text(&out);
    assert!(said.contains("exit=1"), "{said}");
    assert!(
        said.contains(
            "sc-hsm-emulator: user namespaces are not available to this user here \
             (user.max_user_namespaces is 0)"
        ),
        "{said}"
    );
    assert!(said.contains("No space left on device"), "{said}");
    assert!(
        said.contains("Run it as root, enable user namespaces"),
        "{said}"
    );
    home.assert_nothing_left();
}

/// A CI job's container: rootful podman without --privileged and without added capabilities,
/// so no namespace can be made in it. `sandbox -v` says it runs pcscd and the card directly,
/// the demo card is listed, and afterwards no pcscd, no card and no socket remain in the
/// container.
#[test]
fn an_unprivileged_container_runs_the_sandbox_directly() {
    if !is_root() {
        eprintln!("skipped: the CI image is a rootful podman image");
        return;
    }
    ensure_ci_image();
    let name = format!("sc-hsm-unprivileged-{}", std::process::id());
    let script = "sc-hsm-emulator -v sandbox --profile demo -- pkcs15-tool -D; echo exit=$?; \
                  echo left: $(ls -A /run/pcscd); \
                  for p in /proc/[0-9]*; do echo process: $(cat $p/comm); done; \
                  unshare --mount true 2>&1 | sed 's/^/unshare: /'";
    let out = Command::new("podman")
        .args(["run", "--rm", "--name", &name])
        .args(host_limits())
        .args([CI_IMAGE, "sh", "-c", script])
        .output()
        .unwrap();
    let said = text(&out);
    // The container could make no namespace (the premise of the test).
    assert!(said.contains("unshare: unshare: unshare failed"), "{said}");
    assert!(said.contains("exit=0"), "{said}");
    assert!(said.contains("Joe Doe (RSA2048)"), "{said}");
    assert!(
        said.contains(
            "pcscd and the card run directly: pcscd on /run/pcscd/pcscd.comm, vpcd on TCP \
             ports 35963-35964 of this network namespace"
        ),
        "{said}"
    );
    assert!(
        said.contains("\nleft:\n"),
        "nothing left in /run/pcscd: {said}"
    );
    let processes: Vec<&str> = said
        .lines()
        .filter_map(|l| l.strip_prefix("process: "))
        .collect();
    for gone in ["pcscd", "sc-hsm-emulator"] {
        assert!(
            !processes.contains(&gone),
            "{gone} still runs: {processes:?}"
        );
    }
}
