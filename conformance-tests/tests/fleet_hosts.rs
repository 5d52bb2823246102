//! One card server, sixteen cards, eight hosts: eight network namespaces, each with its own
//! pcscd and vpcd (two slots), reached from the server's namespace over veth links, with
//! PKCS#11 clients (OpenSC's `pkcs11-tool`, every signature checked by OpenSSL) on every host
//! at once. One host's pcscd is killed and restarted: its cards come back, no other client
//! sees an error. The server is SIGKILLed while every host writes: each write the client saw
//! succeed is on its card after the restart. SIGHUP with a card removed and one added changes
//! only those two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use conformance_tests::{
    emulator_binary, host_address, http_get, text, wait_until, Network, Sandbox, PIN,
};
use vpcd_bridge::private_pcscd::{is_root, vpcd_port};

const HOSTS: usize = 8;

/// The fleet file: card `h<k>s<j>` in slot j of host k, except those in `skip`, plus `extra`.
fn fleet(skip: &[&str], extra: &str) -> String {
    let mut out = String::from("http = \"127.0.0.1:9180\"\n");
    for k in 0..HOSTS {
        for j in 0..2u16 {
            let name = format!("h{k}s{j}");
            if skip.contains(&name.as_str()) {
                continue;
            }
            out.push_str(&format!(
                "\n[[card]]\nname = \"{name}\"\ndb = \"{name}.redb\"\nvpcd = \"{}:{}\"\nprofile = \"initialized\"\n",
                host_address(k),
                vpcd_port(j)
            ));
        }
    }
    out.push_str(extra);
    out
}

/// GET /metrics from the server's listener.
fn metrics(network: &Network) -> String {
    let (code, body) = http_get(
        network.server_command("/usr/bin/python3"),
        "http://127.0.0.1:9180/metrics",
    );
    assert_eq!(code, 200, "{body}");
    body
}

/// The metric line of `name` for card `card`: its labels and value.
fn metric(all: &str, name: &str, card: &str) -> Option<(String, u64)> {
    let prefix = format!("{name}{{card=\"{card}\",");
    all.lines().find(|l| l.starts_with(&prefix)).map(|l| {
        let (labels, value) = l.rsplit_once(' ').unwrap();
        (labels.to_string(), value.parse().unwrap())
    })
}

/// A key pair `01` on the card in `slot` of `host`: its public key as a PEM file.
fn key_on(host: &Sandbox, slot: u16) -> String {
    host.ec_p256_key(
        "01",
        &slot.to_string(),
        &["--slot-index", &slot.to_string()],
    )
}

/// Signs a fresh message with key `01` of `slot` and checks it with OpenSSL.
fn sign_once(host: &Sandbox, slot: u16, pem: &str, round: usize) -> Result<(), String> {
    let message = format!("round {round} on slot {slot}");
    host.ecdsa_verified(
        "01",
        pem,
        message.as_bytes(),
        &["--slot-index", &slot.to_string()],
    )
    .map_err(|e| format!("round {round}, slot {slot}: {e}"))
}

/// Writes data object `label` on the card in slot 0; whether the client saw it succeed.
fn write(host: &Sandbox, label: &str) -> bool {
    let file = host.scratch().join(format!("{label}.bin"));
    std::fs::write(&file, label.as_bytes()).unwrap();
    host.run(
        "pkcs11-tool",
        &[
            "--slot-index",
            "0",
            "--login",
            "--pin",
            PIN,
            "--write-object",
            file.to_str().unwrap(),
            "--type",
            "data",
            "--label",
            label,
        ],
    )
    .status
    .success()
}

#[test]
fn sixteen_cards_on_eight_hosts_survive_a_pcscd_restart_a_server_kill_and_a_reload() {
    if !is_root() {
        eprintln!("skipped: veth pairs between network namespaces need root");
        return;
    }
    let mut network = Network::new(HOSTS, 2);
    let file = network.server_dir().join("fleet.toml");
    std::fs::write(&file, fleet(&[], "")).unwrap();
    let serve = |network: &mut Network, n: usize| {
        let log = network.server_dir().join(format!("serve-{n}.log"));
        network.spawn_on_server(
            emulator_binary(),
            &["serve", "--config", file.to_str().unwrap()],
            &log,
        )
    };
    let mut server = serve(&mut network, 0);
    for host in &network.hosts {
        for slot in 0..2 {
            wait_until("every card to be present", || host.card_present(slot));
        }
    }
    let keys: Vec<[String; 2]> = network
        .hosts
        .iter()
        .map(|h| [key_on(h, 0), key_on(h, 1)])
        .collect();

    // Clients on every host at once; host 3's pcscd is killed and started again meanwhile.
    const VICTIM: usize = 3;
    let recovered = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    let signatures = std::sync::atomic::AtomicUsize::new(0);
    {
        let mut hosts: Vec<&mut Sandbox> = network.hosts.iter_mut().collect();
        let victim = hosts.remove(VICTIM);
        std::thread::scope(|scope| {
            for (i, host) in hosts.iter().enumerate() {
                let k = if i < VICTIM { i } else { i + 1 };
                let (host, pems, recovered, errors, signatures) =
                    (&**host, &keys[k], &recovered, &errors, &signatures);
                scope.spawn(move || {
                    let mut round = 0;
                    // At least three rounds, and on until the victim is back.
                    while round < 3 || !recovered.load(Ordering::SeqCst) {
                        for slot in 0..2u16 {
                            match sign_once(host, slot, &pems[slot as usize], round) {
                                Ok(()) => _ = signatures.fetch_add(1, Ordering::SeqCst),
                                Err(e) => errors.lock().unwrap().push(format!("host {k}: {e}")),
                            }
                        }
                        round += 1;
                    }
                });
            }
            victim.restart_pcscd();
            for slot in 0..2 {
                wait_until("the restarted pcscd's cards to come back", || {
                    victim.card_present(slot)
                });
            }
            for slot in 0..2u16 {
                sign_once(victim, slot, &keys[VICTIM][slot as usize], 0)
                    .unwrap_or_else(|e| panic!("after the pcscd restart: {e}"));
            }
            recovered.store(true, Ordering::SeqCst);
        });
    }
    let errors = errors.into_inner().unwrap();
    eprintln!(
        "{} signatures on the other hosts while host {VICTIM}'s pcscd restarted",
        signatures.load(Ordering::SeqCst)
    );
    assert!(
        errors.is_empty(),
        "clients of other hosts saw errors:\n{}",
        errors.join("\n")
    );

    // SIGHUP: h7s1 leaves, h7s1-new takes its slot; the other fifteen keep their links.
    let before = metrics(&network);
    let added = format!(
        "\n[[card]]\nname = \"h7s1-new\"\ndb = \"h7s1-new.redb\"\nvpcd = \"{}:{}\"\nprofile = \"initialized\"\n",
        host_address(7),
        vpcd_port(1)
    );
    std::fs::write(&file, fleet(&["h7s1"], &added)).unwrap();
    network.signal(server, "HUP");
    let (old_labels, _) = metric(&before, "sc_hsm_card_connected", "h7s1").unwrap();
    wait_until("h7s1 to leave and h7s1-new to connect", || {
        let now = metrics(&network);
        metric(&now, "sc_hsm_card_connected", "h7s1").is_none()
            && metric(&now, "sc_hsm_card_connected", "h7s1-new").is_some_and(|(_, v)| v == 1)
    });
    let after = metrics(&network);
    let (new_labels, _) = metric(&after, "sc_hsm_card_connected", "h7s1-new").unwrap();
    assert_ne!(
        old_labels.replace("h7s1\"", ""),
        new_labels.replace("h7s1-new\"", ""),
        "a new card, a new serial"
    );
    for k in 0..HOSTS {
        for j in 0..2 {
            let name = format!("h{k}s{j}");
            if name == "h7s1" {
                continue;
            }
            assert_eq!(
                metric(&after, "sc_hsm_card_connections_total", &name),
                metric(&before, "sc_hsm_card_connections_total", &name),
                "{name} was touched by the reload"
            );
        }
    }
    wait_until("the new card in host 7's slot 1", || {
        network.hosts[7].card_present(1)
    });

    // SIGKILL under load: every host writes data objects; the server dies in the middle.
    let acknowledged = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for (k, host) in network.hosts.iter().enumerate() {
            let (acknowledged, stop) = (&acknowledged, &stop);
            scope.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let label = format!("ack-{k}-{i}");
                    if write(host, &label) {
                        acknowledged.lock().unwrap().push((k, label));
                    }
                    i += 1;
                }
            });
        }
        wait_until("every host to have written twice", || {
            let done = acknowledged.lock().unwrap();
            (0..HOSTS).all(|k| done.iter().filter(|(h, _)| *h == k).count() >= 2)
        });
        network.signal(server, "KILL");
        stop.store(true, Ordering::SeqCst);
    });
    assert!(!network.wait(server).success());
    let acknowledged = acknowledged.into_inner().unwrap();
    eprintln!(
        "{} writes acknowledged before the SIGKILL, across {HOSTS} hosts",
        acknowledged.len()
    );
    server = serve(&mut network, 1);
    // Ready means powered up by pcscd on the new link. A card whose ATR pcscd still has from
    // before the kill looks present at once, then drops out for a moment while the link
    // makes pcscd see it removed (vpcd_bridge::link::Stale).
    let log = network.server_dir().join("serve-1.log");
    let names: Vec<String> = (0..HOSTS).map(|k| format!("h{k}s0")).collect();
    Network::wait_for_powered_up(&log, &names);
    for (k, host) in network.hosts.iter().enumerate() {
        let listed = host.run(
            "pkcs11-tool",
            &["--slot-index", "0", "--list-objects", "--type", "data"],
        );
        let listed = text(&listed);
        for (_, label) in acknowledged.iter().filter(|(h, _)| *h == k) {
            assert!(
                listed.contains(&format!("'{label}'")),
                "host {k}: the acknowledged write {label} is gone:\n{listed}"
            );
        }
    }
    network.signal(server, "TERM");
    assert!(
        network.wait(server).success(),
        "SIGTERM ends the server cleanly"
    );
}
