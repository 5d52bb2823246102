//! How a private pcscd is kept apart from the machine's: the namespaces `unshare` holds, what
//! the user is told when they cannot be made, and when pcscd may run without them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{is_root, poll, vpcd_port, READY_TIMEOUT};
use crate::host;

/// The local ports of outgoing connections in a private network namespace.
///
/// vpcd's ports (35963 onwards) lie in Linux's default range (32768-60999). A card that dials
/// a vpcd port before pcscd listens on it can be given that very port as its own, and then
/// holds it (a self-connection, or just a connection attempt) at the moment vpcd binds it:
/// vpcd fails with "Address already in use" and that reader never comes up. Above every port
/// a private pcscd uses, that cannot happen.
const EPHEMERAL_PORTS: &str = "40000 60999";

/// How a private pcscd is kept apart from the machine's.
pub(super) enum Isolation {
    /// Mount and network namespaces held by `unshare` (its child sleeps until killed); as a
    /// normal user inside a user namespace of its own. `nsenter` runs programs in them.
    Namespaces {
        holder: Child,
        user_namespace: bool,
        nsenter: PathBuf,
    },
    /// No namespace could be made (an unprivileged container) and no pcscd runs: pcscd
    /// serves the standard socket and vpcd listens in this network namespace. Why, for `-v`.
    Direct { why: String },
}

/// Where pcscd's socket and pid file are when it runs without a mount namespace: the paths
/// compiled into pcsc-lite.
pub(super) const SYSTEM_SOCKET: &str = "/run/pcscd/pcscd.comm";
pub(super) const SYSTEM_PID_FILE: &str = "/run/pcscd/pcscd.pid";

/// Makes the mount and network namespaces: `unshare` enters them itself; its child mounts
/// the socket directory, brings up loopback, keeps outgoing connections off vpcd's ports and
/// sleeps until killed. As a normal user, a user namespace maps the user to root.
pub(super) fn make_namespaces(dir: &Path, setpriv: &Path) -> Result<Isolation, String> {
    let unshare = host::util_linux("unshare")?;
    let nsenter = host::util_linux("nsenter")?;
    let ip = host::ip()?;
    let user_namespace = !is_root();
    let run = dir.join("run");
    let ready = dir.join("namespaces-ready");
    let script = format!(
        "set -e; mkdir -p /run/pcscd; mount --bind {run} /run/pcscd; {ip} link set lo up; \
         echo {EPHEMERAL_PORTS} >/proc/sys/net/ipv4/ip_local_port_range; \
         : >{ready}; exec sleep infinity",
        run = shell_quote(&run),
        ip = shell_quote(&ip),
        ready = shell_quote(&ready),
    );
    let log_file = dir.join("namespaces.log");
    let log = std::fs::File::create(&log_file)
        .map_err(|e| format!("cannot create the log namespaces.log: {e}"))?;
    let mut command = Command::new(setpriv);
    command.args(["--pdeathsig", "SIGKILL"]).arg(unshare);
    if user_namespace {
        command.args(["--user", "--map-root-user"]);
    }
    let mut holder = command
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
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start unshare (util-linux): {e}"))?;
    let up = poll(READY_TIMEOUT, Duration::from_millis(1), || {
        ready.exists() || matches!(holder.try_wait(), Ok(Some(_)))
    });
    if up && ready.exists() {
        return Ok(Isolation::Namespaces {
            holder,
            user_namespace,
            nsenter,
        });
    }
    let _ = holder.kill();
    let _ = holder.wait();
    let said = std::fs::read_to_string(&log_file).unwrap_or_default();
    Err(namespaces_failed(said.trim(), user_namespace))
}

/// Why the namespaces could not be made, and what the user can do about it.
fn namespaces_failed(said: &str, user_namespace: bool) -> String {
    if !user_namespace {
        return format!(
            "cannot make the mount and network namespaces the private pcscd runs in (they need \
             CAP_SYS_ADMIN, which a container has only with --privileged or --cap-add \
             SYS_ADMIN): {said}"
        );
    }
    let read = |file: &str| {
        std::fs::read_to_string(file)
            .ok()
            .map(|v| v.trim().to_string())
    };
    let mut off = Vec::new();
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        off.push("user.max_user_namespaces is 0");
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        off.push("kernel.unprivileged_userns_clone is 0");
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        off.push("AppArmor restricts unprivileged user namespaces");
    }
    let why = if off.is_empty() {
        String::new()
    } else {
        format!(" ({})", off.join(", "))
    };
    format!(
        "user namespaces are not available to this user here{why}: the sandbox runs its \
         private pcscd in one when not run as root.\nunshare said: {said}\nRun it as root, \
         enable user namespaces (sysctl user.max_user_namespaces=10000; on older Debian \
         kernels kernel.unprivileged_userns_clone=1), or serve the card to a pcscd that runs \
         with `sc-hsm-emulator run`."
    )
}

/// Whether pcscd may run without namespaces after `failed`: as root, with no pcscd on the
/// standard socket and vpcd's ports free. The sentence `-v` shows, or why not.
pub(super) fn direct_possible(failed: &str, slots: u16) -> Result<String, String> {
    if !is_root() {
        return Err(failed.to_string());
    }
    if std::os::unix::net::UnixStream::connect(SYSTEM_SOCKET).is_ok() {
        return Err(format!(
            "{failed}\nA pcscd already answers on {SYSTEM_SOCKET}: serve the card to it with \
             `sc-hsm-emulator run` (its reader configuration needs vpcd), or stop it."
        ));
    }
    let pairs = slots.div_ceil(2).max(1);
    let ports: Vec<u16> = (0..2 * pairs).map(vpcd_port).collect();
    for port in &ports {
        if std::net::TcpListener::bind(("0.0.0.0", *port)).is_err() {
            return Err(format!(
                "{failed}\nWithout namespaces vpcd needs TCP port {port}, which is in use."
            ));
        }
    }
    Ok(format!(
        "no namespace can be made here ({failed}); pcscd and the card run directly: pcscd on \
         {SYSTEM_SOCKET}, vpcd on TCP ports {}-{} of this network namespace",
        ports[0],
        ports[ports.len() - 1]
    ))
}

/// `s` quoted for `sh`.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', "'\\''"))
}
