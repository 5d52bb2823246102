//! A card server reaching a remote pcscd only through OpenSSH port forwarding (README "Fleet",
//! "Across hosts"): the remote host's vpcd ports are closed to everything but loopback by a
//! firewall rule, its sshd lets one key forward to one vpcd port only, and the server's cards
//! dial the local end of `ssh -L`. Two network namespaces joined by a veth pair are the two
//! hosts.

use std::process::{Command, Stdio};

use conformance_tests::{emulator_binary, host_address, initialize, text, wait_until, Network};
use vpcd_bridge::private_pcscd::is_root;

/// Whether a TCP connection from the server's namespace to `address:port` is accepted.
fn connects(network: &Network, address: &str, port: u16) -> bool {
    let script = format!(
        "import socket\ntry:\n    socket.create_connection(('{address}', {port}), timeout=5).close(); print('open')\nexcept OSError as e:\n    print('closed', e)\n"
    );
    let out = network
        .server_command("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    text(&out).starts_with("open")
}

#[test]
fn a_remote_vpcd_on_loopback_is_served_through_ssh_port_forwarding() {
    if !is_root() {
        eprintln!("skipped: veth pairs between namespaces and sshd need root");
        return;
    }
    let mut network = Network::new(1, 2);
    let remote = host_address(0);
    let keys = network.hosts[0].scratch().join("ssh");
    std::fs::create_dir_all(&keys).unwrap();
    let key = |name: &str| keys.join(name).to_str().unwrap().to_string();
    for name in ["host_key", "client_key"] {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f", &key(name)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    // vpcd listens on every interface: without a firewall, anyone who reaches the host can
    // put a card into its reader (or take the slot).
    assert!(
        connects(&network, &remote, 35963),
        "vpcd listens on every interface"
    );
    // The remote host: vpcd's ports answer loopback only.
    network.on_host(
        0,
        "nft add table inet vpcd && \
         nft add chain inet vpcd input '{ type filter hook input priority 0; policy accept; }' && \
         nft add rule inet vpcd input iifname != lo tcp dport 35963-35964 reject with tcp reset",
    );
    assert!(
        !connects(&network, &remote, 35963),
        "vpcd must not be reachable"
    );
    // Its sshd: this one key may forward to vpcd slot 0 and do nothing else.
    let client_pub = std::fs::read_to_string(keys.join("client_key.pub")).unwrap();
    std::fs::write(
        keys.join("authorized_keys"),
        format!("restrict,port-forwarding,permitopen=\"127.0.0.1:35963\" {client_pub}"),
    )
    .unwrap();
    let config = keys.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress {remote}:22\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             StrictModes no\nAllowTcpForwarding local\nX11Forwarding no\nLogLevel VERBOSE\n",
            key("host_key"),
            keys.join("authorized_keys").display()
        ),
    )
    .unwrap();
    // sshd's privilege separation directory (Debian's unit makes it at boot).
    std::fs::create_dir_all("/run/sshd").unwrap();
    let sshd = std::path::Path::new("/usr/sbin/sshd");
    network.hosts[0].spawn_inside(1, sshd, &["-D", "-e", "-f", config.to_str().unwrap()]);
    wait_until("sshd to listen", || connects(&network, &remote, 22));

    // The server: the tunnel, then a card on its local end.
    let host_line = std::fs::read_to_string(keys.join("host_key.pub")).unwrap();
    let known = keys.join("known_hosts");
    std::fs::write(&known, format!("{remote} {host_line}")).unwrap();
    let server = network.server_dir().to_path_buf();
    let ssh = std::path::Path::new("/usr/bin/ssh");
    network.spawn_on_server(
        ssh,
        &[
            "-F",
            "/dev/null",
            "-N",
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={}", known.display()),
            "-o",
            "ServerAliveInterval=5",
            "-i",
            &key("client_key"),
            "-L",
            "127.0.0.1:45963:127.0.0.1:35963",
            &format!("root@{remote}"),
        ],
        &server.join("ssh.log"),
    );
    wait_until("the tunnel to listen", || {
        connects(&network, "127.0.0.1", 45963)
    });
    let fleet = server.join("fleet.toml");
    std::fs::write(
        &fleet,
        "[[card]]\nname = \"remote\"\ndb = \"remote.redb\"\nvpcd = \"127.0.0.1:45963\"\n",
    )
    .unwrap();
    network.spawn_on_server(
        emulator_binary(),
        &["serve", "--config", fleet.to_str().unwrap()],
        &server.join("serve.log"),
    );
    let host = &network.hosts[0];
    host.wait_for_card(0);

    // A key made and used through the tunnel, checked by OpenSSL.
    initialize(host, Some("tunnel"));
    let pem = host.ec_p256_key("01", "tunnel", &[]);
    host.ecdsa_verified("01", &pem, b"signed through an SSH tunnel", &[])
        .unwrap();

    // The key may forward to slot 0 only: sshd refuses a channel to another port.
    let sshd_log = host.card_log(1);
    assert!(
        sshd_log.contains("Accepted publickey for root"),
        "{sshd_log}"
    );
    let forward_elsewhere = network
        .server_command(ssh)
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={}", known.display()),
            "-i",
            &key("client_key"),
            "-W",
            "127.0.0.1:35964",
            &format!("root@{remote}"),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!forward_elsewhere.status.success());
    assert!(
        text(&forward_elsewhere).contains("administratively prohibited"),
        "{}",
        text(&forward_elsewhere)
    );
}
