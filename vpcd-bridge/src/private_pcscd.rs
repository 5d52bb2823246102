//! A private pcscd with the vpcd driver, isolated from any other on the machine: what the
//! `sandbox` subcommand and the conformance tests run their cards and clients against.
//!
//! pcscd's socket path is compiled in, so it runs in a mount namespace of its own, where
//! `/run/pcscd` is a bind mount of a private directory; clients outside reach it through
//! `PCSCLITE_CSOCK_NAME`. pcscd, vpcd's listeners and the emulators share a private network
//! namespace (vpcd listens on all interfaces otherwise). `unshare` holds the namespaces; every
//! process started here gets SIGKILL when the process that started it dies
//! (`setpriv --pdeathsig`), so nothing outlives its owner. As a normal user, a user namespace
//! maps the user to root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long pcscd may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The TCP port vpcd listens on for `slot`.
pub fn vpcd_port(slot: u16) -> u16 {
    35963 + slot
}

/// The local ports of outgoing connections in a private network namespace.
///
/// vpcd's ports (35963 onwards) lie in Linux's default range (32768-60999). A card that dials
/// a vpcd port before pcscd listens on it can be given that very port as its own, and then
/// holds it (a self-connection, or just a connection attempt) at the moment vpcd binds it:
/// vpcd fails with "Address already in use" and that reader never comes up. Above every port
/// a private pcscd uses, that cannot happen.
const EPHEMERAL_PORTS: &str = "40000 60999";

/// The driver file of Debian's vsmartcard-vpcd.
const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

/// Writes a pcscd reader configuration with `slots` vpcd slots (ports 35963 onwards) into
/// `dir/reader.conf.d` (for `pcscd --config`); returns that directory.
///
/// One vpcd reader entry has two slots, and the driver keeps its slots in a table of its own
/// that every reader loaded from the same file shares: a second entry would take over the
/// first one's slots. So each further pair of slots gets a copy of the driver
/// (`dir/drivers/`), which pcscd loads apart, and a name of its own ([`reader_name`]).
pub fn write_reader_config(dir: &Path, slots: u16) -> Result<PathBuf, String> {
    let conf = dir.join("reader.conf.d");
    let drivers = dir.join("drivers");
    let failed = |what: &Path, e: std::io::Error| format!("cannot write {}: {e}", what.display());
    std::fs::create_dir_all(&conf).map_err(|e| failed(&conf, e))?;
    let mut entries = String::new();
    for pair in 0..slots.div_ceil(2).max(1) {
        let driver = if pair == 0 {
            PathBuf::from(VPCD_DRIVER)
        } else {
            std::fs::create_dir_all(&drivers).map_err(|e| failed(&drivers, e))?;
            let copy = drivers.join(format!("libifdvpcd-{pair}.so"));
            std::fs::copy(VPCD_DRIVER, &copy).map_err(|e| {
                format!("cannot copy the vpcd driver {VPCD_DRIVER} (vsmartcard-vpcd): {e}")
            })?;
            copy
        };
        let port = vpcd_port(2 * pair);
        entries.push_str(&format!(
            "FRIENDLYNAME \"{}\"\nDEVICENAME /dev/null:0x{port:04X}\nLIBPATH {}\nCHANNELID 0x{port:04X}\n\n",
            reader_family(pair),
            driver.display()
        ));
    }
    let file = conf.join("vpcd");
    std::fs::write(&file, entries).map_err(|e| failed(&file, e))?;
    Ok(conf)
}

/// The friendly name of the reader entry of slots `2 * pair` and `2 * pair + 1`: pcscd names
/// its slots by it ("... 00 00", "... 00 01"), so each entry needs its own.
fn reader_family(pair: u16) -> String {
    match pair {
        0 => "Virtual PCD".to_string(),
        n => format!("Virtual PCD {n}"),
    }
}

/// The name pcscd gives the reader of vpcd slot `slot` (see [`write_reader_config`]): "Virtual
/// PCD 00 00" and "... 00 01" for slots 0 and 1, "Virtual PCD 1 00 00" and "... 00 01" for 2
/// and 3, and so on.
pub fn reader_name(slot: u16) -> String {
    format!("{} 00 {:02}", reader_family(slot / 2), slot % 2)
}

/// Whether this process runs as root (else a user namespace is needed).
pub fn is_root() -> bool {
    // The owner of /proc/self is this process's effective user.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Polls `condition` every `pause` until it holds or `timeout` passes.
pub fn poll(timeout: Duration, pause: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(pause);
    }
}

/// A private pcscd in its own mount and network namespaces.
pub struct PrivatePcscd {
    dir: tempfile::TempDir,
    /// `unshare`, which holds the namespaces (its child sleeps until killed).
    holder: Child,
    pcscd: Option<Child>,
    user_namespace: bool,
}

impl PrivatePcscd {
    /// Sets up the namespaces and starts pcscd with vpcd slots 0 and 1; returns once pcscd
    /// answers on its socket. The working directory is made in `TMPDIR`, named `prefix...`.
    pub fn start(prefix: &str) -> Result<PrivatePcscd, String> {
        let mut private = PrivatePcscd::prepare(prefix, 2)?;
        private.start_pcscd()?;
        Ok(private)
    }

    /// Sets up the namespaces and a reader configuration with `slots` vpcd slots, without
    /// starting pcscd yet (cards started now are present at pcscd's first look, see
    /// [`PrivatePcscd::start_pcscd`]).
    pub fn prepare(prefix: &str, slots: u16) -> Result<PrivatePcscd, String> {
        remove_stale(prefix);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| format!("cannot create a directory in the temporary directory: {e}"))?;
        // Who owns the directory: a later start removes it if that process is gone. Written
        // whole under another name, then renamed, so no one reads half of it.
        let me = std::process::id();
        let owner_tmp = dir.path().join(format!("{OWNER}.new"));
        std::fs::write(&owner_tmp, format!("{me} {}", start_time(me).unwrap_or(0)))
            .and_then(|()| std::fs::rename(&owner_tmp, dir.path().join(OWNER)))
            .map_err(|e| format!("cannot write in {}: {e}", dir.path().display()))?;
        let run = dir.path().join("run");
        std::fs::create_dir(&run).map_err(|e| format!("cannot create {}: {e}", run.display()))?;
        write_reader_config(dir.path(), slots)?;
        let user_namespace = !is_root();
        // unshare enters the new namespaces itself; its child mounts the socket directory,
        // brings up loopback, keeps outgoing connections off vpcd's ports and sleeps until
        // killed.
        let ready = dir.path().join("namespaces-ready");
        let script = format!(
            "set -e; mkdir -p /run/pcscd; mount --bind {run} /run/pcscd; ip link set lo up; \
             echo {EPHEMERAL_PORTS} >/proc/sys/net/ipv4/ip_local_port_range; \
             : >{ready}; exec sleep infinity",
            run = shell_quote(&run),
            ready = shell_quote(&ready),
        );
        let log = |name: &str| {
            std::fs::File::create(dir.path().join(name))
                .map_err(|e| format!("cannot create the log {name}: {e}"))
        };
        let mut unshare = Command::new("setpriv");
        unshare.args(["--pdeathsig", "SIGKILL", "unshare"]);
        if user_namespace {
            unshare.args(["--user", "--map-root-user"]);
        }
        let holder = unshare
            .args([
                "--mount",
                "--net",
                "--fork",
                "--kill-child=SIGKILL",
                "sh",
                "-c",
            ])
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log("namespaces.log")?)
            .spawn()
            .map_err(|e| format!("cannot start unshare (util-linux): {e}"))?;
        let mut private = PrivatePcscd {
            dir,
            holder,
            pcscd: None,
            user_namespace,
        };
        let up = poll(READY_TIMEOUT, Duration::from_millis(1), || {
            ready.exists() || matches!(private.holder.try_wait(), Ok(Some(_)))
        });
        if !up || !ready.exists() {
            return Err(format!(
                "setting up the namespaces failed (needs util-linux and iproute2{}):\n{}",
                if user_namespace {
                    ", and user namespaces for a normal user"
                } else {
                    ""
                },
                private.log("namespaces.log")
            ));
        }
        Ok(private)
    }

    /// The working directory (logs, sockets; removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The private network namespace (for programs that join it by path, such as
    /// `podman run --network ns:PATH` or `ip link set ... netns`).
    pub fn net_namespace(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.holder.id()))
    }

    /// The socket clients reach this pcscd on (`PCSCLITE_CSOCK_NAME`).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/pcscd.comm")
    }

    /// A command that runs inside the namespaces: the network namespace always (vpcd's
    /// listeners), the mount namespace too when `mount` (pcscd's socket directory).
    pub fn inside(&self, mount: bool) -> Command {
        let holder = self.holder.id();
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "SIGKILL", "nsenter"]);
        if self.user_namespace {
            cmd.arg(format!("--user=/proc/{holder}/ns/user"))
                .arg("--preserve-credentials");
        }
        if mount {
            cmd.arg(format!("--mount=/proc/{holder}/ns/mnt"));
        }
        cmd.arg(format!("--net=/proc/{holder}/ns/net"))
            .stdin(Stdio::null());
        cmd
    }

    /// A command whose PC/SC client talks to this pcscd.
    pub fn client(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PCSCLITE_CSOCK_NAME", self.socket());
        cmd
    }

    /// What one of the logs in the working directory says so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Starts pcscd in the namespaces; returns once it answers on its socket.
    pub fn start_pcscd(&mut self) -> Result<(), String> {
        let run = self.dir.path().join("run");
        let _ = std::fs::remove_file(run.join("pcscd.pid"));
        let _ = std::fs::remove_file(run.join("pcscd.comm"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("pcscd.log"))
            .map_err(|e| format!("cannot write the pcscd log: {e}"))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot write the pcscd log: {e}"))?;
        let child = self
            .inside(true)
            .args(["pcscd", "--foreground"])
            .args(std::env::var_os("SC_HSM_PCSCD_DEBUG").map(|_| "--debug"))
            .arg("--config")
            .arg(self.dir.path().join("reader.conf.d"))
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start pcscd: {e}"))?;
        let pcscd = self.pcscd.insert(child);
        let (socket, pid_file) = (run.join("pcscd.comm"), run.join("pcscd.pid"));
        let mut exited = None;
        let up = poll(READY_TIMEOUT, Duration::from_millis(1), || {
            if let Ok(Some(status)) = pcscd.try_wait() {
                exited = Some(status);
                return true;
            }
            socket.exists() && pid_file.exists()
        });
        match (up, exited) {
            (true, None) => Ok(()),
            (_, Some(status)) => Err(format!(
                "pcscd exited at start ({status}):\n{}",
                self.log("pcscd.log")
            )),
            (false, None) => Err(format!(
                "pcscd did not come up within {READY_TIMEOUT:?}:\n{}",
                self.log("pcscd.log")
            )),
        }
    }

    /// Kills pcscd and starts a new one in the same namespaces; cards already running stay up
    /// and must reconnect by themselves.
    pub fn restart_pcscd(&mut self) -> Result<(), String> {
        if let Some(mut pcscd) = self.pcscd.take() {
            let _ = pcscd.kill();
            let _ = pcscd.wait();
        }
        self.start_pcscd()
    }
}

impl Drop for PrivatePcscd {
    fn drop(&mut self) {
        if let Some(mut pcscd) = self.pcscd.take() {
            let _ = pcscd.kill();
            let _ = pcscd.wait();
        }
        // Kill unshare's sleeping child first so that unshare reaps it and exits by itself
        // (killing unshare first would leave the child to init as a zombie).
        let holder = self.holder.id();
        let children = std::fs::read_to_string(format!("/proc/{holder}/task/{holder}/children"))
            .unwrap_or_default();
        for child in children.split_whitespace() {
            let _ = Command::new("kill")
                .args(["-KILL", child])
                .stderr(Stdio::null())
                .status();
        }
        if children.trim().is_empty() {
            let _ = self.holder.kill();
        }
        let _ = self.holder.wait();
    }
}

/// The file in a working directory that names the process owning it: `pid start-time`.
const OWNER: &str = "owner";

/// A process's start time (clock ticks after boot, `/proc/PID/stat` field 22), which tells a
/// process from a later one with the same PID.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count from after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Removes the working directories (`prefix*` in the temporary directory) of processes that
/// ended without removing theirs (killed with SIGKILL): they may hold a card's private keys.
/// A directory without a readable owner file is removed once it is a minute old.
fn remove_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mine = std::os::unix::fs::MetadataExt::uid(&meta)
            == std::fs::metadata("/proc/self")
                .map_or(u32::MAX, |m| std::os::unix::fs::MetadataExt::uid(&m));
        if !meta.is_dir() || !mine {
            continue;
        }
        let old = || {
            meta.modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(60))
        };
        // An owner file that does not parse may be one being written this instant (another
        // process between creating its directory and writing its owner): only its age counts.
        let owner = std::fs::read_to_string(path.join(OWNER)).ok();
        let mut fields = owner
            .iter()
            .flat_map(|o| o.split_whitespace())
            .map(|f| f.parse::<u64>().ok());
        let stale = match (fields.next().flatten(), fields.next().flatten()) {
            (Some(pid), Some(started)) => {
                u32::try_from(pid).ok().and_then(start_time) != Some(started)
            }
            _ => old(),
        };
        if stale {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// `s` quoted for `sh`.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_directories_of_ended_processes_are_removed() {
        let prefix = format!("sc-hsm-stale-test-{}-", std::process::id());
        let make = |owner: Option<String>| {
            let dir = tempfile::Builder::new()
                .prefix(&prefix)
                .tempdir()
                .unwrap()
                .keep();
            if let Some(owner) = owner {
                std::fs::write(dir.join(OWNER), owner).unwrap();
            }
            dir
        };
        let me = std::process::id();
        let alive = make(Some(format!("{me} {}", start_time(me).unwrap())));
        let being_written = make(Some(String::new()));
        let no_owner_yet = make(None);
        // A process id that is not running, or not with that start time.
        let ended = make(Some(format!("{me} 1")));
        remove_stale(&prefix);
        for kept in [&alive, &being_written, &no_owner_yet] {
            assert!(kept.exists(), "{} was removed", kept.display());
            std::fs::remove_dir_all(kept).unwrap();
        }
        assert!(!ended.exists());
    }
}
