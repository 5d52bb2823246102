//! What the machine provides a private pcscd with: pcscd itself, vsmartcard's vpcd driver and
//! util-linux's and iproute2's tools. Each is looked for on `PATH` and then where Debian,
//! Ubuntu, Fedora and a build from source put it (a normal user's `PATH` on Debian lacks
//! `/usr/sbin`, where pcscd is); whatever is missing is named with the package that has it.

use std::path::{Path, PathBuf};

/// A program or file the sandbox needs, and where to get it.
struct Part {
    /// What the user reads: "pcscd", "the vpcd driver libifdvpcd.so".
    what: &'static str,
    /// The package, per distribution family.
    packages: &'static str,
}

const PCSCD: Part = Part {
    what: "pcscd",
    packages: "Debian and Ubuntu: pcscd; Fedora: pcsc-lite",
};

const VPCD: Part = Part {
    what: "the vpcd driver libifdvpcd.so",
    packages: "Debian and Ubuntu: vsmartcard-vpcd; elsewhere build vsmartcard's \
               virtualsmartcard from source, or give the file in SC_HSM_VPCD_DRIVER",
};

const UTIL_LINUX: &str = "util-linux";
const IPROUTE2: &str = "Debian and Ubuntu: iproute2; Fedora: iproute";

/// Directories programs are looked for in after `PATH`: the system directories a normal
/// user's `PATH` may lack.
const SYSTEM_BIN: [&str; 6] = [
    "/usr/sbin",
    "/sbin",
    "/usr/local/sbin",
    "/usr/bin",
    "/bin",
    "/usr/local/bin",
];

/// pcsc-lite's driver directories (`usbdropdir`): Debian and Ubuntu, Fedora and openSUSE
/// (lib64), a pcsc-lite built from source.
const DRIVER_DIRS: [&str; 4] = [
    "/usr/lib/pcsc/drivers",
    "/usr/lib64/pcsc/drivers",
    "/usr/local/lib/pcsc/drivers",
    "/usr/local/lib64/pcsc/drivers",
];

/// The programs and the driver a private pcscd is made of.
#[derive(Clone, Debug)]
pub struct HostParts {
    pub pcscd: PathBuf,
    pub vpcd_driver: PathBuf,
}

impl HostParts {
    /// Finds pcscd and the vpcd driver; the error names everything missing, with its package.
    pub fn find() -> Result<HostParts, String> {
        let pcscd = program("pcscd").ok_or_else(|| missing(&PCSCD, &searched_programs()));
        let driver = vpcd_driver().map_err(|looked| missing(&VPCD, &looked));
        match (pcscd, driver) {
            (Ok(pcscd), Ok(vpcd_driver)) => Ok(HostParts { pcscd, vpcd_driver }),
            (pcscd, driver) => Err([pcscd.err(), driver.err()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n")),
        }
    }
}

/// The tool `name` of util-linux (unshare, nsenter, setpriv).
pub fn util_linux(name: &str) -> Result<PathBuf, String> {
    program(name).ok_or_else(|| format!("{name} not found: install {UTIL_LINUX}"))
}

/// iproute2's `ip`.
pub fn ip() -> Result<PathBuf, String> {
    program("ip").ok_or_else(|| format!("ip not found: install it ({IPROUTE2})"))
}

/// `name` on `PATH`, else in the system's program directories.
pub fn program(name: &str) -> Option<PathBuf> {
    program_in(name, &std::env::var_os("PATH").unwrap_or_default())
}

/// `name` in the directories of `path` (a `PATH` value), else in the system's.
fn program_in(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .chain(SYSTEM_BIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn searched_programs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("$PATH")];
    dirs.extend(SYSTEM_BIN.iter().take(3).map(PathBuf::from));
    dirs
}

/// The vpcd driver: `SC_HSM_VPCD_DRIVER`, else `serial/libifdvpcd.so` in pcsc-lite's
/// driver directory (as pkg-config names it, then the usual ones). The error lists where it
/// was looked for.
pub fn vpcd_driver() -> Result<PathBuf, Vec<PathBuf>> {
    if let Some(file) = std::env::var_os("SC_HSM_VPCD_DRIVER").filter(|v| !v.is_empty()) {
        let file = PathBuf::from(file);
        return if file.is_file() {
            Ok(file)
        } else {
            Err(vec![file])
        };
    }
    let mut dirs: Vec<PathBuf> = pkg_config_drop_dir().into_iter().collect();
    dirs.extend(DRIVER_DIRS.iter().map(PathBuf::from));
    dirs.dedup();
    let candidates: Vec<PathBuf> = dirs
        .iter()
        .map(|dir| dir.join("serial/libifdvpcd.so"))
        .collect();
    candidates
        .iter()
        .find(|file| file.is_file())
        .cloned()
        .ok_or(candidates)
}

/// pcsc-lite's own word on its driver directory, where its development files are installed.
fn pkg_config_drop_dir() -> Option<PathBuf> {
    let out = std::process::Command::new(program("pkg-config")?)
        .args(["--variable=usbdropdir", "libpcsclite"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = dir.trim();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

fn missing(part: &Part, looked: &[PathBuf]) -> String {
    let looked: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
    format!(
        "{} not found (looked in {}): install it ({})",
        part.what,
        looked.join(", "),
        part.packages
    )
}

/// Sends signal number `signal` to process `pid` (without procps' `kill`, which a minimal
/// system lacks); a process that is gone already is no error.
pub fn signal(pid: u32, signal: i32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    let signal = rustix::process::Signal::from_named_raw(signal);
    if let (Some(pid), Some(signal)) = (pid, signal) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pcscd in /usr/sbin is found with a PATH that lacks it, as a normal user's on Debian.
    #[test]
    fn programs_outside_path_are_found_in_the_system_directories() {
        // `sh` is in /bin or /usr/bin on every Linux: found with a PATH that lacks both.
        let found = program_in("sh", std::ffi::OsStr::new("/nonexistent"));
        assert!(found.is_some_and(|p| p.ends_with("sh") && p.is_absolute()));
        assert_eq!(
            program_in("no-such-program-here", std::ffi::OsStr::new("")),
            None
        );
    }

    #[test]
    fn a_missing_part_is_named_with_its_package_and_where_it_was_looked_for() {
        let text = missing(
            &VPCD,
            &[PathBuf::from("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")],
        );
        assert!(text.starts_with("the vpcd driver libifdvpcd.so not found"));
        assert!(text.contains("/usr/lib/pcsc/drivers/serial/libifdvpcd.so"));
        assert!(text.contains("vsmartcard-vpcd"));
        let text = missing(&PCSCD, &searched_programs());
        assert!(text.contains("/usr/sbin") && text.contains("pcsc-lite"));
    }
}
