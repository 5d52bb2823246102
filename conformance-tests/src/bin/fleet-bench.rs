//! The fleet benchmark: one `sc-hsm-emulator serve` with 256 cards (databases on disk) across
//! sixteen hosts (network namespaces, each with its own pcscd + vpcd and sixteen slots), and
//! sixteen PKCS#11 clients (OpenSC's module, one process per host, each on its own card)
//! signing with ECDSA P-256 at once. Prints the server's start-up times, its memory and open
//! files, and the signatures per second of all clients together.
//!
//!     cargo run --release -p conformance-tests --bin fleet-bench      (as root)
//!
//! `FLEET_CARDS` (a multiple of 16, at most 256) and `BENCH_N` (signatures per client) change
//! the defaults.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conformance_tests::{emulator_binary, host_address, http_get, text, wait_until, Network, PIN};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use vpcd_bridge::private_pcscd::vpcd_port;

const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
const P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const HOSTS: usize = 16;

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// One client (a process of its own: `PCSCLITE_CSOCK_NAME` names its host's pcscd): a key on
/// the first card, then, once `go` exists, `n` signatures; prints when it began and ended.
fn client(n: u32, ready: &Path, go: &Path) {
    let pkcs11 = Pkcs11::new(OPENSC).unwrap();
    pkcs11
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = *pkcs11
        .get_slots_with_token()
        .unwrap()
        .first()
        .expect("a card in this host's first reader");
    let session = pkcs11.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::from(PIN.to_string())))
        .unwrap();
    let (_, key) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::EcParams(P256.to_vec()),
                Attribute::Verify(true),
                Attribute::Id(vec![0x42]),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sign(true),
                Attribute::Id(vec![0x42]),
            ],
        )
        .unwrap();
    std::fs::write(ready, b"").unwrap();
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let hash = [0x5Au8; 32];
    let start = unix_nanos();
    for _ in 0..n {
        session.sign(&Mechanism::Ecdsa, key, &hash).unwrap();
    }
    println!("{start} {}", unix_nanos());
}

/// Resident memory and open files of process `pid`.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss_kib, fds)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("client") {
        client(
            args[2].parse().unwrap(),
            Path::new(&args[3]),
            Path::new(&args[4]),
        );
        return;
    }
    let cards: usize = std::env::var("FLEET_CARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let n: u32 = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    assert!(
        cards.is_multiple_of(HOSTS) && cards <= 256,
        "FLEET_CARDS: a multiple of 16, at most 256"
    );
    let per_host = (cards / HOSTS) as u8;

    let mut network = Network::new(HOSTS, u16::from(per_host));
    let file = network.server_dir().join("fleet.toml");
    let mut config = String::from("http = \"127.0.0.1:9180\"\n");
    for k in 0..HOSTS {
        for j in 0..per_host {
            config.push_str(&format!(
                "\n[[card]]\nname = \"h{k}s{j}\"\ndb = \"h{k}s{j}.redb\"\nvpcd = \"{}:{}\"\nprofile = \"initialized\"\n",
                host_address(k),
                vpcd_port(u16::from(j))
            ));
        }
    }
    std::fs::write(&file, config).unwrap();
    let healthy = |network: &Network| {
        let python = network.server_command("/usr/bin/python3");
        http_get(python, "http://127.0.0.1:9180/healthz").0 == 200
    };
    let mut figures = Vec::new();
    for round in ["new", "reopened"] {
        let log = network.server_dir().join(format!("serve-{round}.log"));
        let started = Instant::now();
        let server = network.spawn_on_server(
            emulator_binary(),
            &["serve", "--config", file.to_str().unwrap()],
            &log,
        );
        wait_until("the server to be healthy", || healthy(&network));
        let to_healthy = started.elapsed();
        for k in 0..HOSTS {
            for slot in 0..per_host {
                wait_until("every card to be present", || {
                    network.hosts[k].card_present(slot)
                });
            }
        }
        let to_present = started.elapsed();
        figures.push((round, to_healthy, to_present));
        if round == "new" {
            network.signal(server, "TERM");
            assert!(network.wait(server).success());
            continue;
        }

        // Each client's card powered up by its pcscd on this server's link.
        let names: Vec<String> = (0..HOSTS).map(|k| format!("h{k}s0")).collect();
        Network::wait_for_powered_up(&log, &names);
        // Sixteen clients, one per host, each on its host's first card.
        let dir = network.server_dir().to_path_buf();
        let go = dir.join("go");
        let me = std::env::current_exe().unwrap();
        let clients: Vec<_> = (0..HOSTS)
            .map(|k| {
                let ready = dir.join(format!("ready-{k}"));
                let child = network.hosts[k]
                    .command(me.to_str().unwrap())
                    .args(["client", &n.to_string()])
                    .arg(&ready)
                    .arg(&go)
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                (ready, child)
            })
            .collect();
        wait_until("every client to have its key", || {
            clients.iter().all(|(ready, _)| ready.exists())
        });
        std::fs::write(&go, b"").unwrap();
        let (rss_busy, fds) = footprint(network.pid(server));
        let spans: Vec<(u128, u128)> = clients
            .into_iter()
            .map(|(_, child)| {
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "client: {}", text(&out));
                let line = String::from_utf8(out.stdout).unwrap();
                let (a, b) = line.trim().split_once(' ').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        let first = spans.iter().map(|s| s.0).min().unwrap();
        let last = spans.iter().map(|s| s.1).max().unwrap();
        let wall = (last - first) as f64 / 1e9;
        let total = f64::from(n) * HOSTS as f64;
        let slowest = spans
            .iter()
            .map(|s| (s.1 - s.0) as f64 / 1e9)
            .fold(0.0, f64::max);
        for (round, healthy, present) in &figures {
            println!(
                "{cards} cards, {round} databases: healthy after {:.2} s, every card present in its pcscd after {:.2} s",
                healthy.as_secs_f64(),
                present.as_secs_f64()
            );
        }
        println!(
            "server while 16 clients sign: {:.1} MiB resident, {fds} open files",
            rss_busy as f64 / 1024.0
        );
        println!(
            "ECDSA P-256 through OpenSC's PKCS#11 module, 16 clients at once ({n} each): {:.0} signatures/s together, {:.0} per client (slowest client {:.1} s)",
            total / wall,
            f64::from(n) / slowest,
            slowest
        );
        network.signal(server, "TERM");
        assert!(network.wait(server).success());
    }
}
