//! The fleet's HTTP listener: `GET /healthz` (`200` when every card's database is open, `503`
//! and the cards that are not otherwise) and `GET /metrics` (Prometheus text: per card
//! connected, APDUs, error answers, the class of the last status word, connections; the
//! process's resident memory and open files), both read from the fleet's one registry.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;

use crate::fleet::Registry;
use crate::worker::{lock, CardMetrics};

/// Answers on `address` from now on, in a thread of its own.
pub fn listen(address: SocketAddr, registry: Registry) -> Result<(), String> {
    let listener = TcpListener::bind(address)
        .map_err(|e| format!("cannot listen on {address} for /healthz and /metrics: {e}"))?;
    std::thread::spawn(move || answer(listener, &registry));
    tracing::info!(%address, "serving /healthz and /metrics");
    Ok(())
}

/// Answers one connection at a time (they are small and quick).
fn answer(listener: TcpListener, registry: &Registry) {
    for stream in listener.incoming().flatten() {
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let mut line = String::new();
        let mut reader = BufReader::new(&stream);
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        // The headers are read and ignored.
        let mut header = String::new();
        while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
            header.clear();
        }
        let path = line.split_whitespace().nth(1).unwrap_or("");
        let (status, body) = match (line.split_whitespace().next(), path) {
            (Some("GET"), "/healthz") => healthz(registry),
            (Some("GET"), "/metrics") => ("200 OK", metrics(registry)),
            (Some("GET"), _) => (
                "404 Not Found",
                "not found: try /healthz or /metrics\n".into(),
            ),
            _ => ("405 Method Not Allowed", "only GET\n".into()),
        };
        let mut stream = &stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

fn healthz(registry: &Registry) -> (&'static str, String) {
    let cards = lock(registry);
    let down: Vec<String> = cards
        .iter()
        .filter(|(_, w)| !w.metrics.open.load(Ordering::Relaxed))
        .map(|(name, w)| {
            let why = lock(&w.metrics.failure).clone();
            format!("{name}: {}", why.unwrap_or_else(|| "starting".into()))
        })
        .collect();
    if down.is_empty() {
        ("200 OK", format!("ok: {} cards\n", cards.len()))
    } else {
        ("503 Service Unavailable", format!("{}\n", down.join("\n")))
    }
}

/// A metric family: name, type, help, and how to read it from a card's metrics.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CardMetrics) -> u64,
);

const FAMILIES: [Family; 6] = [
    (
        "sc_hsm_card_up",
        "gauge",
        "Whether the card's database is open and the card served.",
        |m| u64::from(m.open.load(Ordering::Relaxed)),
    ),
    (
        "sc_hsm_card_connected",
        "gauge",
        "Whether the card's link to vpcd is up.",
        |m| u64::from(m.link.connected.load(Ordering::Relaxed)),
    ),
    (
        "sc_hsm_card_apdus_total",
        "counter",
        "APDUs the card answered.",
        |m| m.apdus.load(Ordering::Relaxed),
    ),
    (
        "sc_hsm_card_errors_total",
        "counter",
        "APDUs answered with an error status word.",
        |m| m.errors.load(Ordering::Relaxed),
    ),
    (
        "sc_hsm_card_last_status_class",
        "gauge",
        "High nibble of SW1 of the last answer (9 success, 6 error, 0 none yet).",
        |m| u64::from(m.last_class.load(Ordering::Relaxed)),
    ),
    (
        "sc_hsm_card_connections_total",
        "counter",
        "Connections to vpcd (each reconnect adds one).",
        |m| m.link.connections.load(Ordering::Relaxed),
    ),
];

fn metrics(registry: &Registry) -> String {
    let cards = lock(registry);
    let mut out = String::new();
    for (name, kind, help, value) in FAMILIES {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (card, worker) in cards.iter() {
            let serial = lock(&worker.metrics.serial).clone();
            let _ = writeln!(
                out,
                "{name}{{card=\"{card}\",serial=\"{serial}\",vpcd=\"{}\"}} {}",
                worker.spec.vpcd,
                value(&worker.metrics)
            );
        }
    }
    let page = 4096u64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let _ = write!(
        out,
        "# HELP process_resident_memory_bytes Resident memory.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}\n\
         # HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {fds}\n"
    );
    out
}
