//! [`Network`]: several "hosts" for one test, each a [`Sandbox`] (its own network namespace,
//! pcscd and vpcd), and one "server" namespace joined to every host by a veth pair, as a card
//! server on one machine reaches the pcscd of many. Host `k` is `10.200.k.2`, the server is
//! `10.200.k.1` on its link to host `k`. Everything lives in namespaces that die with the test
//! process; needs root (veth pairs between namespaces).

use std::path::Path;
use std::process::{Child, Command, Output};

use vpcd_bridge::private_pcscd::PrivatePcscd;

use crate::{text, wait_until, Sandbox};

/// The hosts and the server namespace.
pub struct Network {
    pub hosts: Vec<Sandbox>,
    server: PrivatePcscd,
    processes: Vec<Child>,
}

/// The address of host `k` as the server reaches it.
pub fn host_address(k: usize) -> String {
    format!("10.200.{k}.2")
}

/// Runs `command`, panicking with its output when it fails.
fn must(mut command: Command, what: &str) -> Output {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what}: {}", text(&out));
    out
}

impl Network {
    /// `hosts` hosts with `slots` vpcd slots each, and the server namespace linked to each.
    pub fn new(hosts: usize, slots: u16) -> Network {
        assert!(hosts <= 250);
        let server = PrivatePcscd::prepare("sc-hsm-server-", 1)
            .unwrap_or_else(|e| panic!("cannot make the server's namespaces: {e}"));
        let hosts: Vec<Sandbox> = (0..hosts).map(|_| Sandbox::with_slots(slots)).collect();
        let network = Network {
            hosts,
            server,
            processes: Vec::new(),
        };
        for k in 0..network.hosts.len() {
            network.link(k);
        }
        network
    }

    /// The veth pair between the server (`s<k>`) and host `k` (`eth0`), addressed and up.
    fn link(&self, k: usize) {
        let mut add = Command::new("ip");
        add.args(["link", "add", &format!("s{k}"), "netns"])
            .arg(self.server.net_namespace())
            .args(["type", "veth", "peer", "name", "eth0", "netns"])
            .arg(self.hosts[k].net_namespace());
        must(add, "ip link add (veth, needs root)");
        let up = |dev: &str, address: &str| {
            format!("ip addr add {address}/30 dev {dev} && ip link set {dev} up")
        };
        let server_side = up(&format!("s{k}"), &format!("10.200.{k}.1"));
        let mut command = self.server_command("sh");
        command.args(["-c", &server_side]);
        must(command, &server_side);
        self.on_host(k, &up("eth0", &host_address(k)));
    }

    /// A command that runs in the server's namespaces (network and mount).
    pub fn server_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = self.server.inside(true);
        command.arg(program);
        command
    }

    /// Runs a shell script in host `k`'s network and mount namespaces; asserts success.
    pub fn on_host(&self, k: usize, script: &str) -> String {
        let out = must(self.hosts[k].inside_command("sh", &["-c", script]), script);
        text(&out)
    }

    /// Starts `program args` in the server's namespaces, its output in `log`; it is killed
    /// with the network. Returns its index for [`Network::signal`] and [`Network::wait`].
    pub fn spawn_on_server(&mut self, program: &Path, args: &[&str], log: &Path) -> usize {
        let file = std::fs::File::create(log).unwrap();
        let child = self
            .server_command(program)
            .args(args)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        self.processes.push(child);
        self.processes.len() - 1
    }

    /// The process id of a process started with [`Network::spawn_on_server`] (setpriv and
    /// nsenter exec it: the program itself).
    pub fn pid(&self, index: usize) -> u32 {
        self.processes[index].id()
    }

    /// Sends `signal` to a process started with [`Network::spawn_on_server`].
    pub fn signal(&self, index: usize, signal: &str) {
        let pid = self.processes[index].id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for a process started with [`Network::spawn_on_server`] to end.
    pub fn wait(&mut self, index: usize) -> std::process::ExitStatus {
        self.processes[index].wait().unwrap()
    }

    /// Waits until the server's log `log` says that pcscd has powered up each card of `names`
    /// on its current link: only then is a card ready for clients. A card that comes back
    /// before its pcscd noticed it leave looks present at once (pcscd keeps its ATR), then
    /// drops out for a moment while its link makes pcscd see it removed
    /// (`vpcd_bridge::link::Stale`).
    pub fn wait_for_powered_up(log: &Path, names: &[String]) {
        wait_until("pcscd to power up every card on its new link", || {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            names.iter().all(|name| {
                let span = format!("name={name} ");
                log.lines()
                    .any(|l| l.contains(&span) && l.contains("pcscd powered the card up"))
            })
        });
    }

    /// A scratch directory of the server's, alive as long as the network.
    pub fn server_dir(&self) -> &Path {
        self.server.dir()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
