//! `sc-hsm-emulator serve --config FILE` through pcscd and vpcd: several cards from one
//! process, a dead endpoint that stalls no other card, `/healthz` and `/metrics`, SIGHUP that
//! changes only the cards that changed, a file with a mistake that changes nothing, SIGTERM.

use conformance_tests::{emulator_binary, http_get, http_request, wait_until, Sandbox};
use vpcd_bridge::private_pcscd::vpcd_port;

/// A fleet file with the given cards (name, vpcd slot or `None` for a dead endpoint).
fn config(cards: &[(&str, Option<u16>)]) -> String {
    let mut out = String::from("http = \"127.0.0.1:9180\"\n");
    for (name, slot) in cards {
        let vpcd = match slot {
            Some(slot) => format!("127.0.0.1:{}", vpcd_port(*slot)),
            // Nothing listens on port 9 in the sandbox's network namespace.
            None => "127.0.0.1:9".into(),
        };
        out.push_str(&format!(
            "\n[[card]]\nname = \"{name}\"\ndb = \"{name}.redb\"\nvpcd = \"{vpcd}\"\nprofile = \"initialized\"\n"
        ));
    }
    out
}

/// GET `path` from the server's listener (inside the sandbox's network namespace): status
/// and body.
fn get(sandbox: &Sandbox, path: &str) -> (String, String) {
    let python = sandbox.inside_command("/usr/bin/python3", &[]);
    let (code, body) = http_get(python, &format!("http://127.0.0.1:9180{path}"));
    (code.to_string(), body)
}

/// The value of metric `name` for card `card`.
fn metric(metrics: &str, name: &str, card: &str) -> u64 {
    let prefix = format!("{name}{{card=\"{card}\",");
    metrics
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {card} in\n{metrics}"))
}

fn present(sandbox: &Sandbox, slot: u16) -> bool {
    sandbox
        .run("opensc-tool", &["--reader", &slot.to_string(), "--atr"])
        .status
        .success()
}

#[test]
fn one_server_many_cards_reload_and_stop() {
    let mut sandbox = Sandbox::with_slots(4);
    let file = sandbox.scratch().join("fleet.toml");
    std::fs::write(
        &file,
        config(&[
            ("a", Some(0)),
            ("b", Some(1)),
            ("c", Some(2)),
            ("dead", None),
        ]),
    )
    .unwrap();
    sandbox.spawn_inside(
        0,
        emulator_binary(),
        &["serve", "--config", file.to_str().unwrap()],
    );
    for slot in 0..3 {
        sandbox.wait_for_card(slot);
    }
    // Every database is open (the dead endpoint's too): ready.
    wait_until("the fleet to be healthy", || {
        get(&sandbox, "/healthz").0 == "200"
    });
    assert_eq!(get(&sandbox, "/healthz").1, "ok: 4 cards\n");
    // Work on card a; the others are untouched by it.
    sandbox.generate_key_pair("EC:prime256v1", "01", &["--slot-index", "0"]);
    let (status, before) = get(&sandbox, "/metrics");
    assert_eq!(status, "200");
    assert!(
        metric(&before, "sc_hsm_card_apdus_total", "a") > 10,
        "{before}"
    );
    assert_eq!(metric(&before, "sc_hsm_card_connected", "a"), 1);
    assert_eq!(metric(&before, "sc_hsm_card_last_status_class", "a"), 9);
    assert_eq!(metric(&before, "sc_hsm_card_connected", "dead"), 0);
    assert_eq!(metric(&before, "sc_hsm_card_up", "dead"), 1);
    assert!(before.contains("card=\"a\",serial=\"ZZEM"), "{before}");
    let process = |name: &str| -> u64 {
        before
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} "))?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{before}"))
    };
    assert!(process("process_resident_memory_bytes") > 1 << 20);
    assert!(process("process_open_fds") > 4);
    let b_connections = metric(&before, "sc_hsm_card_connections_total", "b");
    // Every line of a card names it, its slot and its serial.
    let logs = sandbox.logs();
    let ready = logs
        .lines()
        .find(|l| l.contains("card ready") && l.contains("name=a"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        ready.contains("vpcd=127.0.0.1:") && ready.contains("serial=ZZEM"),
        "{ready}"
    );

    // SIGHUP: c leaves, d comes; a and b are not touched.
    std::fs::write(
        &file,
        config(&[
            ("a", Some(0)),
            ("b", Some(1)),
            ("d", Some(3)),
            ("dead", None),
        ]),
    )
    .unwrap();
    let pid = sandbox.card_pid(0).unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_until("card c to leave and d to come", || {
        !present(&sandbox, 2) && present(&sandbox, 3)
    });
    let (_, after) = get(&sandbox, "/metrics");
    assert!(!after.contains("card=\"c\""), "{after}");
    assert_eq!(
        metric(&after, "sc_hsm_card_connections_total", "b"),
        b_connections
    );
    assert!(
        metric(&after, "sc_hsm_card_apdus_total", "a")
            >= metric(&before, "sc_hsm_card_apdus_total", "a")
    );
    assert!(present(&sandbox, 0) && present(&sandbox, 1));

    // A file with a mistake: reported, nothing changes.
    std::fs::write(&file, "[[card]\n").unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_until("the mistake to be reported", || {
        sandbox.logs().contains("the file has a mistake")
    });
    assert!(present(&sandbox, 0) && present(&sandbox, 3));
    assert_eq!(get(&sandbox, "/healthz").1, "ok: 4 cards\n");

    // SIGTERM: every card stops, the process exits cleanly.
    sandbox.stop_card(0, "TERM");
    for slot in [1, 3] {
        wait_until("every card to be removed", || !present(&sandbox, slot));
    }
}

#[test]
fn a_locked_database_fails_its_card_only() {
    let mut sandbox = Sandbox::with_slots(2);
    let file = sandbox.scratch().join("fleet.toml");
    std::fs::write(&file, config(&[("a", Some(0)), ("b", Some(1))])).unwrap();
    // Another emulator holds b's database.
    let b = sandbox.scratch().join("b.redb");
    let _holder = std::process::Command::new(emulator_binary())
        .args(["init", "--db", b.to_str().unwrap()])
        .output()
        .unwrap();
    sandbox.insert_card_on(1, &b, &["-v"]);
    sandbox.spawn_inside(
        0,
        emulator_binary(),
        &["serve", "--config", file.to_str().unwrap()],
    );
    sandbox.wait_for_card(0);
    wait_until("b to be reported down", || {
        get(&sandbox, "/healthz").0 == "503"
    });
    let (_, body) = get(&sandbox, "/healthz");
    assert!(body.starts_with("b: "), "{body}");
    assert!(body.contains("lock") || body.contains("in use"), "{body}");
    let (_, metrics) = get(&sandbox, "/metrics");
    assert_eq!(metric(&metrics, "sc_hsm_card_up", "b"), 0);
    assert_eq!(metric(&metrics, "sc_hsm_card_up", "a"), 1);
}

/// The control verbs on the fleet's HTTP listener: per card, behind the token the fleet file
/// names; a card's faults and timing from the file.
#[test]
fn the_http_listener_drives_each_card_with_the_token() {
    let mut sandbox = Sandbox::with_slots(2);
    let token = "a-token-of-some-length-0123456789";
    std::fs::write(sandbox.scratch().join("token"), format!("{token}\n")).unwrap();
    let file = sandbox.scratch().join("fleet.toml");
    let text = config(&[("a", Some(0)), ("b", Some(1))]).replacen(
        "http = ",
        "token_file = \"token\"\nhttp = ",
        1,
    ) + "faults = [\"on=SIGN,nth=2,status=6F00\"]\ntiming = \"physical\"\n";
    std::fs::write(&file, text).unwrap();
    sandbox.spawn_inside(
        0,
        emulator_binary(),
        &["serve", "--config", file.to_str().unwrap()],
    );
    sandbox.wait_for_card(0);
    sandbox.wait_for_card(1);
    let call = |method: &str, path: &str, body: &str, bearer: Option<&str>| {
        let python = sandbox.inside_command("/usr/bin/python3", &[]);
        http_request(
            python,
            method,
            &format!("http://127.0.0.1:9180{path}"),
            body,
            bearer,
        )
    };
    let (code, body) = call("GET", "/cards/b/state", "", None);
    assert_eq!(code, 401, "{body}");
    let (code, body) = call(
        "GET",
        "/cards/b/state",
        "",
        Some("wrong-token-of-some-length-0123"),
    );
    assert_eq!(code, 401, "{body}");
    let (code, body) = call("GET", "/cards/b/state", "", Some(token));
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"inserted\":true,\"timing\":\"physical\""),
        "{body}"
    );
    assert!(
        body.contains("\"rule\":\"on=SIGN,nth=2,status=6F00\""),
        "{body}"
    );
    let (code, _) = call("GET", "/cards/a/state", "", Some(token));
    assert_eq!(code, 200);
    // Card b leaves and comes back; card a stays.
    let (code, body) = call("POST", "/cards/b/remove", "", Some(token));
    assert_eq!(code, 200, "{body}");
    wait_until("b to leave", || !present(&sandbox, 1));
    assert!(present(&sandbox, 0));
    let (code, body) = call("POST", "/cards/b/insert", "", Some(token));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("pcscd has it again"), "{body}");
    assert!(present(&sandbox, 1));
    // A rule as the body; a bad one is a 400 with the reason; an unknown card a 404.
    let (code, body) = call(
        "POST",
        "/cards/a/fault/add",
        "on=VERIFY,status=6983",
        Some(token),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = call("POST", "/cards/a/fault/add", "on=FLY,tear", Some(token));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("no command of the card is called"), "{body}");
    let (code, _) = call("GET", "/cards/zz/state", "", Some(token));
    assert_eq!(code, 404);
    let (code, _) = call("GET", "/cards/a/remove", "", Some(token));
    assert_eq!(code, 405);
    // The rule fires on card a's next VERIFY and is counted.
    let out = sandbox.run("pkcs11-tool", &["-L", "--slot-index", "0"]);
    assert!(out.status.success());
    let (_, metrics) = get(&sandbox, "/metrics");
    assert!(
        metric(&metrics, "sc_hsm_card_faults_injected_total", "a") >= 1,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "sc_hsm_card_faults_injected_total", "b"),
        0
    );
}
