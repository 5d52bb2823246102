//! A private pcscd with the vpcd driver, isolated from any other on the machine: what the
//! `sandbox` subcommand and the conformance tests run their cards and clients against.
//!
//! pcscd's socket path is compiled in, so it runs in a mount namespace of its own, where
//! `/run/pcscd` is a bind mount of a private directory; clients outside reach it through
//! `PCSCLITE_CSOCK_NAME`. pcscd, vpcd's listeners and the emulators share a private network
//! namespace (vpcd listens on all interfaces otherwise). `unshare` holds the namespaces; every
//! process started here gets SIGKILL when the process that started it dies
//! (`setpriv --pdeathsig`), so nothing outlives its owner. As a normal user, a user namespace
//! maps the user to root. pcscd and the vpcd driver are found where distributions put them
//! ([`crate::host`]).
//!
//! Where no namespace can be made (a container without CAP_SYS_ADMIN, seccomp refusing
//! `unshare`) the `sandbox` may run pcscd without them
//! ([`PrivatePcscd::prepare_or_direct`]): on the standard socket, if none answers there, with
//! vpcd's ports in the container's own network namespace. The conformance tests never do.

mod isolation;
mod readers;
mod stale;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::host::{self, HostParts};
use isolation::{direct_possible, make_namespaces, Isolation, SYSTEM_PID_FILE, SYSTEM_SOCKET};
use readers::write_reader_config_with;
pub use readers::{reader_name, vpcd_port, write_reader_config};
use stale::{remove_stale, start_time, OWNER};

/// How long pcscd may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

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

/// A private pcscd, in its own mount and network namespaces where they can be made.
pub struct PrivatePcscd {
    dir: tempfile::TempDir,
    isolation: Isolation,
    pcscd: Option<Child>,
    parts: HostParts,
    setpriv: PathBuf,
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
        PrivatePcscd::make(prefix, slots, false)
    }

    /// As [`PrivatePcscd::prepare`], and where no namespace can be made (a container without
    /// CAP_SYS_ADMIN or user namespaces) but this process may run pcscd on the standard
    /// socket and none runs there, without namespaces: see [`PrivatePcscd::direct`].
    pub fn prepare_or_direct(prefix: &str, slots: u16) -> Result<PrivatePcscd, String> {
        PrivatePcscd::make(prefix, slots, true)
    }

    fn make(prefix: &str, slots: u16, direct_allowed: bool) -> Result<PrivatePcscd, String> {
        let (dir, parts, setpriv) = PrivatePcscd::working_directory(prefix, slots)?;
        let isolation = match make_namespaces(dir.path(), &setpriv) {
            Ok(isolation) => isolation,
            Err(failed) if direct_allowed => Isolation::Direct {
                why: direct_possible(&failed, slots)?,
            },
            Err(failed) => return Err(failed),
        };
        Ok(PrivatePcscd {
            dir,
            isolation,
            pcscd: None,
            parts,
            setpriv,
        })
    }

    /// Why pcscd runs without namespaces, when it does: pcscd on the standard socket, vpcd's
    /// ports in this network namespace.
    pub fn direct(&self) -> Option<&str> {
        match &self.isolation {
            Isolation::Direct { why } => Some(why),
            Isolation::Namespaces { .. } => None,
        }
    }

    /// The working directory with its owner file and the reader configuration; the parts
    /// found on the machine.
    fn working_directory(
        prefix: &str,
        slots: u16,
    ) -> Result<(tempfile::TempDir, HostParts, PathBuf), String> {
        let parts = HostParts::find()?;
        let setpriv = host::util_linux("setpriv")?;
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
        write_reader_config_with(dir.path(), slots, &parts.vpcd_driver)?;
        Ok((dir, parts, setpriv))
    }

    /// The working directory (logs, sockets; removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The private network namespace (for programs that join it by path, such as
    /// `podman run --network ns:PATH` or `ip link set ... netns`); this process's own when
    /// pcscd runs without namespaces.
    pub fn net_namespace(&self) -> PathBuf {
        match &self.isolation {
            Isolation::Namespaces { holder, .. } => {
                PathBuf::from(format!("/proc/{}/ns/net", holder.id()))
            }
            Isolation::Direct { .. } => PathBuf::from("/proc/self/ns/net"),
        }
    }

    /// The socket clients reach this pcscd on (`PCSCLITE_CSOCK_NAME`).
    pub fn socket(&self) -> PathBuf {
        match &self.isolation {
            Isolation::Namespaces { .. } => self.dir.path().join("run/pcscd.comm"),
            Isolation::Direct { .. } => PathBuf::from(SYSTEM_SOCKET),
        }
    }

    /// A command that runs inside the namespaces: the network namespace always (vpcd's
    /// listeners), the mount namespace too when `mount` (pcscd's socket directory). The
    /// program and its arguments follow. Without namespaces it runs as it is. Either way it
    /// gets SIGKILL when this process ends.
    pub fn inside(&self, mount: bool) -> Command {
        let mut cmd = Command::new(&self.setpriv);
        cmd.args(["--pdeathsig", "SIGKILL"]);
        if let Isolation::Namespaces {
            holder,
            user_namespace,
            nsenter,
        } = &self.isolation
        {
            let holder = holder.id();
            cmd.arg(nsenter);
            if *user_namespace {
                cmd.arg(format!("--user=/proc/{holder}/ns/user"))
                    .arg("--preserve-credentials");
            }
            if mount {
                cmd.arg(format!("--mount=/proc/{holder}/ns/mnt"));
            }
            cmd.arg(format!("--net=/proc/{holder}/ns/net"));
        }
        cmd.stdin(Stdio::null());
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

    /// pcscd's socket and pid file.
    fn pcscd_files(&self) -> (PathBuf, PathBuf) {
        match &self.isolation {
            Isolation::Namespaces { .. } => {
                let run = self.dir.path().join("run");
                (run.join("pcscd.comm"), run.join("pcscd.pid"))
            }
            Isolation::Direct { .. } => (SYSTEM_SOCKET.into(), SYSTEM_PID_FILE.into()),
        }
    }

    /// Starts pcscd in the namespaces; returns once it answers on its socket.
    pub fn start_pcscd(&mut self) -> Result<(), String> {
        let (socket, pid_file) = self.pcscd_files();
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&socket);
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
            .arg(&self.parts.pcscd)
            .arg("--foreground")
            .args(std::env::var_os("SC_HSM_PCSCD_DEBUG").map(|_| "--debug"))
            .arg("--config")
            .arg(self.dir.path().join("reader.conf.d"))
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start pcscd: {e}"))?;
        let pcscd = self.pcscd.insert(child);
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
        self.stop_pcscd();
        self.start_pcscd()
    }

    /// Stops pcscd: in namespaces with SIGKILL (its files go with the mount namespace);
    /// without, with SIGTERM first, so that it removes its socket and pid file from the
    /// standard place, which are removed here if it did not.
    fn stop_pcscd(&mut self) {
        let Some(mut pcscd) = self.pcscd.take() else {
            return;
        };
        if let Isolation::Direct { .. } = self.isolation {
            host::signal(pcscd.id(), 15);
            poll(Duration::from_secs(5), Duration::from_millis(2), || {
                matches!(pcscd.try_wait(), Ok(Some(_)))
            });
        }
        let _ = pcscd.kill();
        let _ = pcscd.wait();
        if let Isolation::Direct { .. } = self.isolation {
            let _ = std::fs::remove_file(SYSTEM_SOCKET);
            let _ = std::fs::remove_file(SYSTEM_PID_FILE);
        }
    }
}

impl Drop for PrivatePcscd {
    fn drop(&mut self) {
        self.stop_pcscd();
        let Isolation::Namespaces { holder, .. } = &mut self.isolation else {
            return;
        };
        // Kill unshare's sleeping child first so that unshare reaps it and exits by itself
        // (killing unshare first would leave the child to init as a zombie).
        let id = holder.id();
        let children =
            std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            host::signal(child, 9);
        }
        if children.trim().is_empty() {
            let _ = holder.kill();
        }
        let _ = holder.wait();
    }
}
