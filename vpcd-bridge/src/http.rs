//! The fleet's HTTP listener: `GET /healthz` (`200` when every card's database is open, `503`
//! and the cards that are not otherwise), `GET /metrics` (Prometheus text: per card
//! connected, APDUs, error answers, the class of the last status word, connections, injected
//! faults; the process's resident memory and open files), both read from the fleet's one
//! registry, and the control verbs of each card ([`crate::control`]): `POST
//! /cards/NAME/remove`, `/insert`, `/reset`, `/snapshot/save/SNAP`, `/snapshot/load/SNAP`,
//! `/fault/add` (the rule as the body), `/fault/clear`, `/timing/physical`; `GET
//! /cards/NAME/state`, `/fault/list`, `/snapshot/list`, `/timing`. The verbs answer only
//! requests from loopback, unless the fleet file names a token file: then any request that
//! carries `Authorization: Bearer TOKEN`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;

use crate::fleet::Registry;
use crate::worker::{lock, CardMetrics};

/// Answers on `address` from now on, in a thread of its own; the control verbs need `token`
/// when there is one, and a loopback client otherwise.
pub fn listen(
    address: SocketAddr,
    registry: Registry,
    token: Option<String>,
) -> Result<(), String> {
    let listener = TcpListener::bind(address)
        .map_err(|e| format!("cannot listen on {address} for /healthz and /metrics: {e}"))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let registry = Registry::clone(&registry);
            let token = token.clone();
            // One thread per request: a verb waiting for a long command holds up no other.
            std::thread::spawn(move || answer(stream, &registry, token.as_deref()));
        }
    });
    tracing::info!(%address, "serving /healthz, /metrics and /cards/NAME/VERB");
    Ok(())
}

/// One request: its method, path, bearer token and body.
struct Request {
    method: String,
    path: String,
    bearer: Option<String>,
    body: String,
}

fn read_request(stream: &std::net::TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let (mut bearer, mut length) = (None, 0usize);
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => bearer = value.strip_prefix("Bearer ").map(str::to_string),
                "content-length" => length = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        header.clear();
    }
    let mut body = vec![0u8; length.min(crate::control::MAX_REQUEST)];
    std::io::Read::read_exact(&mut reader, &mut body).ok()?;
    Some(Request {
        method,
        path,
        bearer,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn answer(stream: std::net::TcpStream, registry: &Registry, token: Option<&str>) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let Some(request) = read_request(&stream) else {
        return;
    };
    let (status, body) = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/healthz") => healthz(registry),
        ("GET", "/metrics") => ("200 OK", metrics(registry)),
        (_, path) if path.starts_with("/cards/") => {
            let loopback = stream.peer_addr().is_ok_and(|a| a.ip().is_loopback());
            match refusal(token, request.bearer.as_deref(), loopback) {
                Some(refused) => refused,
                None => card_verb(registry, &request),
            }
        }
        ("GET", _) => (
            "404 Not Found",
            "not found: try /healthz, /metrics or /cards/NAME/state\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "only GET, and POST to /cards/NAME/VERB\n".into(),
        ),
    };
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Why a control request is refused, if it is: with a token, one that does not carry it
/// (`401`); without one, a client that is not on loopback (`403`).
fn refusal(
    token: Option<&str>,
    bearer: Option<&str>,
    loopback: bool,
) -> Option<(&'static str, String)> {
    match token {
        Some(token) => {
            let carried = bearer.is_some_and(|b| {
                emulator::crypto::constant_time_eq(b.as_bytes(), token.as_bytes())
            });
            (!carried).then(|| {
                (
                    "401 Unauthorized",
                    "the control verbs need Authorization: Bearer TOKEN\n".into(),
                )
            })
        }
        None => (!loopback).then(|| {
            (
                "403 Forbidden",
                "the control verbs answer only loopback clients (name a token_file in the fleet file to open them)\n".into(),
            )
        }),
    }
}

/// `/cards/NAME/VERB/WORDS` with the body after them: one control request to card NAME.
fn card_verb(registry: &Registry, request: &Request) -> (&'static str, String) {
    let rest = request.path.trim_start_matches("/cards/");
    let (name, verb) = rest.split_once('/').unwrap_or((rest, ""));
    let read_only = matches!(verb, "state" | "fault/list" | "snapshot/list" | "timing");
    if request.method != "POST" && !(request.method == "GET" && read_only) {
        return (
            "405 Method Not Allowed",
            "POST a verb (GET only state, fault/list, snapshot/list and timing)\n".into(),
        );
    }
    let control = match lock(registry).get(name) {
        Some(worker) => std::sync::Arc::clone(&worker.control),
        None => {
            return (
                "404 Not Found",
                format!("no card called {name:?} in this fleet\n"),
            )
        }
    };
    let line = format!("{} {}", verb.replace('/', " "), request.body.trim());
    let answer = control.execute(line.trim());
    let status = if answer.ok {
        "200 OK"
    } else {
        "400 Bad Request"
    };
    (status, format!("{}\n", answer.to_json()))
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

const FAMILIES: [Family; 7] = [
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
    (
        "sc_hsm_card_faults_injected_total",
        "counter",
        "Faults the card's fault rules injected (status words, delays, removals, tears, silences, corruptions).",
        |m| m.faults.load(Ordering::Relaxed),
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

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn control_verbs_need_loopback_or_the_token() {
        let status = |token, bearer, loopback| refusal(token, bearer, loopback).map(|r| r.0);
        // Without a token file: loopback only.
        assert_eq!(status(None, None, true), None);
        assert_eq!(status(None, Some("x"), false), Some("403 Forbidden"));
        // With one: the token, from anywhere; loopback alone is not enough.
        let token = Some("0123456789abcdef");
        assert_eq!(status(token, Some("0123456789abcdef"), false), None);
        assert_eq!(status(token, None, true), Some("401 Unauthorized"));
        assert_eq!(
            status(token, Some("0123456789abcdeF"), true),
            Some("401 Unauthorized")
        );
        assert_eq!(
            status(token, Some("0123456789abcde"), true),
            Some("401 Unauthorized")
        );
    }
}
