//! [`Container`]: the image of `scripts/build-image` run with podman, joined to a sandbox's
//! network namespace so that it serves a card to that sandbox's pcscd, and removed on drop.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::text;

/// The image `scripts/build-image` builds.
pub const IMAGE: &str = "sc-hsm-emulator:latest";

/// Whether podman has the image.
pub fn image_exists() -> bool {
    Command::new("podman")
        .args(["image", "exists", IMAGE])
        .status()
        .is_ok_and(|s| s.success())
}

/// The CI job's image `scripts/build-image --ci` builds: Debian 12 with pcscd, vpcd, OpenSC
/// and the binary, run as root.
pub const CI_IMAGE: &str = "sc-hsm-emulator-ci:latest";

/// Builds the image unless it exists (`scripts/build-image` is what `scripts/test` runs first;
/// this only covers a test run on its own).
pub fn ensure_image() {
    build_unless_present(IMAGE, &[]);
}

/// Builds [`CI_IMAGE`] unless it exists (as `scripts/test` does first).
pub fn ensure_ci_image() {
    build_unless_present(CI_IMAGE, &["--ci"]);
}

fn build_unless_present(image: &str, args: &[&str]) {
    let exists = Command::new("podman")
        .args(["image", "exists", image])
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-image");
    let out = Command::new(script)
        .args(args)
        .output()
        .expect("run scripts/build-image");
    assert!(out.status.success(), "scripts/build-image: {}", text(&out));
}

/// The `podman run` options that fit the machine the tests run on.
///
/// podman as root gives a container 1,048,576 open files and as many processes as the kernel
/// allows; where this process may not raise its limits that far (a CI runner, a VM with fixed
/// limits), the runtime fails with "setrlimit: Operation not permitted". The container gets
/// this process's own open-file limit and 4,096 processes. runc is preferred where installed:
/// crun refuses hosts with hybrid cgroups ("cgroups in hybrid mode not supported").
pub fn host_limits() -> Vec<String> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .unwrap_or(1024);
    let mut flags = vec![
        format!("--ulimit=nofile={open_files}:{open_files}"),
        "--ulimit=nproc=4096:4096".to_string(),
    ];
    let runc = Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runc {
        flags.push("--runtime=runc".to_string());
    }
    flags
}

/// A running container of [`IMAGE`].
pub struct Container {
    name: String,
}

impl Container {
    /// `podman run --detach` of the image with `args` (after the image's entry point), in the
    /// network namespace `net` (a path), with `data` as its `/data` volume (made writable for
    /// the image's user).
    pub fn start(
        name: &str,
        net: &Path,
        data: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Container {
        std::fs::create_dir_all(data).unwrap();
        // The image runs as user 10001.
        let chown = Command::new("chown")
            .args(["10001:10001"])
            .arg(data)
            .status()
            .unwrap();
        assert!(chown.success());
        let name = format!("{name}-{}", std::process::id());
        let _ = Command::new("podman")
            .args(["rm", "--force", "--ignore", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let mut run = Command::new("podman");
        run.args(["run", "--detach", "--name", &name])
            .args(host_limits())
            .arg(format!("--network=ns:{}", net.display()))
            .arg(format!("--volume={}:/data", data.display()));
        for (key, value) in env {
            run.arg(format!("--env={key}={value}"));
        }
        let out = run.arg(IMAGE).args(args).output().unwrap();
        // From here on the container exists, also when it failed to start: removed on drop.
        let container = Container { name };
        assert!(out.status.success(), "podman run: {}", text(&out));
        container
    }

    /// What the container has logged so far.
    pub fn logs(&self) -> String {
        let out = Command::new("podman")
            .args(["logs", &self.name])
            .output()
            .unwrap();
        text(&out)
    }

    /// `podman stop` (SIGTERM, then SIGKILL after `seconds`); the container's exit code.
    pub fn stop(&self, seconds: u32) -> i32 {
        let out = Command::new("podman")
            .args(["stop", "--time", &seconds.to_string(), &self.name])
            .output()
            .unwrap();
        assert!(out.status.success(), "podman stop: {}", text(&out));
        let out = Command::new("podman")
            .args(["inspect", "--format", "{{.State.ExitCode}}", &self.name])
            .output()
            .unwrap();
        text(&out)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("podman inspect: {}", text(&out)))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        remove_container(&self.name);
    }
}

/// Removes the container `name` at once, whatever state it is in (for `Drop`s).
pub fn remove_container(name: &str) {
    let _ = Command::new("podman")
        .args(["rm", "--force", "--ignore", "--time", "0", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
