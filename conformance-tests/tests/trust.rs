//! Trust between cards through pcscd and vpcd: the emulator PKI (`--pki`, `pki export`,
//! `--seed`), certificate verification as OpenSC drives it, and n-of-m public-key
//! authentication: `sc-hsm-tool --public-key-auth`, `--export-for-pub-key-auth`,
//! `--register-public-key` and `--public-key-auth-status`, then custodians authenticating
//! with keys on their own cards through the suite's own PC/SC client
//! (`scripts/pka_client.py`, Python's `cryptography` checks every signature).

use conformance_tests::{arg, field, offline, text, Sandbox, PIN, SO_PIN};

/// `scripts/pka_client.py ARGS` inside the sandbox; its lines.
fn client(sandbox: &Sandbox, args: &[&str]) -> Vec<String> {
    sandbox.python_client("pka_client.py", args)
}

/// The client's public-key authentication of the card in reader 0 by the custodians in
/// `readers`, then a signature by its key 1.
fn authenticate_target(sandbox: &Sandbox, readers: &[&str]) -> Vec<String> {
    let mut args = vec!["authenticate", "--target", "0", "--sign-with", "1"];
    for reader in readers {
        args.extend(["--custodian", reader]);
    }
    client(sandbox, &args)
}

/// `sc-hsm-tool -r READER ARGS`, with its output and whether it succeeded.
fn tool(sandbox: &Sandbox, reader: u8, args: &[&str]) -> (bool, String) {
    let reader = reader.to_string();
    let mut all = vec!["-r", reader.as_str()];
    all.extend_from_slice(args);
    let out = sandbox.run("sc-hsm-tool", &all);
    (out.status.success(), text(&out))
}

/// `sc-hsm-tool --initialize` of the card in `reader` with the wiki's PINs and `extra`.
fn initialize_with(sandbox: &Sandbox, reader: u8, extra: &[&str]) {
    let mut args = vec!["--initialize", "--so-pin", SO_PIN, "--pin", PIN];
    args.extend_from_slice(extra);
    let (ok, out) = tool(sandbox, reader, &args);
    assert!(ok, "{out}");
}

/// The four lines `--public-key-auth-status` prints, as numbers.
fn pka_status(sandbox: &Sandbox, reader: u8) -> [u32; 4] {
    let (ok, out) = tool(sandbox, reader, &["--public-key-auth-status"]);
    assert!(ok, "--public-key-auth-status: {out}");
    let numbers: Vec<u32> = out
        .lines()
        .filter_map(|l| l.rsplit_once(':').and_then(|(_, n)| n.trim().parse().ok()))
        .collect();
    numbers.try_into().unwrap_or_else(|_| panic!("{out}"))
}

/// A custodian card in `reader`: initialised, with an EC key exported for public-key
/// authentication into `name` in the scratch directory; the file's path.
fn custodian(sandbox: &Sandbox, reader: u8, name: &str) -> String {
    let (ok, out) = tool(
        sandbox,
        reader,
        &["--initialize", "--so-pin", SO_PIN, "--pin", PIN],
    );
    assert!(ok, "{out}");
    sandbox.generate_key_pair(
        "EC:prime256v1",
        "01",
        &["--slot-index", &reader.to_string(), "--label", "custodian"],
    );
    let file = arg(sandbox.scratch(), name);
    let (ok, out) = tool(
        sandbox,
        reader,
        &["--export-for-pub-key-auth", &file, "-i", "1"],
    );
    assert!(ok, "{out}");
    file
}

/// A sandbox with `n` cards in slots 0 .. n, all of the scratch directory's PKI.
fn cards(n: u8) -> Sandbox {
    let mut sandbox = Sandbox::with_slots(u16::from(n));
    for slot in 0..n {
        sandbox.insert_card(slot);
    }
    sandbox
}

#[test]
fn two_of_three_custodians_register_with_sc_hsm_tool_and_authenticate() {
    let sandbox = cards(4);
    initialize_with(
        &sandbox,
        0,
        &["--public-key-auth", "3", "--required-pub-keys", "2"],
    );
    assert_eq!(pka_status(&sandbox, 0), [3, 3, 2, 0]);
    // A key of the target card itself, to use once the custodians authenticated.
    sandbox.generate_key_pair("EC:prime256v1", "05", &["--slot-index", "0"]);
    for reader in 1..=3u8 {
        let file = custodian(&sandbox, reader, &format!("custodian{reader}.pka"));
        let (ok, out) = tool(&sandbox, 0, &["--register-public-key", &file]);
        assert!(ok, "register custodian {reader}: {out}");
        let missing = 3 - u32::from(reader);
        assert!(
            out.contains(&format!("Missing public keys:       {missing}")),
            "{out}"
        );
    }
    // Every slot is taken: one more registration is refused and changes nothing.
    let again = arg(sandbox.scratch(), "custodian1.pka");
    let (ok, out) = tool(&sandbox, 0, &["--register-public-key", &again]);
    assert!(!ok, "a fourth key was registered: {out}");
    assert_eq!(pka_status(&sandbox, 0), [3, 0, 2, 0]);

    // One custodian is not a quorum: the target key refuses to sign.
    let lines = authenticate_target(&sandbox, &["1"]);
    let step = &lines[1];
    assert_eq!(field(step, "mse"), "9000", "{step}");
    assert_eq!(field(step, "signature_verified"), "true", "{step}");
    assert_eq!(field(step, "external_authenticate"), "9000", "{step}");
    assert_eq!(field(step, "replay"), "6985", "{step}");
    assert_eq!(field(step, "status"), "03000201", "{step}");
    assert_eq!(field(&lines[2], "sw"), "6982", "{lines:?}");

    // Custodians 1 and 3 are: the user is authenticated in that session.
    let lines = authenticate_target(&sandbox, &["1", "3"]);
    assert_eq!(field(&lines[2], "status"), "03000202", "{lines:?}");
    assert_eq!(field(&lines[3], "sw"), "9000", "{lines:?}");
    assert_eq!(field(&lines[3], "verified"), "true", "{lines:?}");
    // It ends with the session (the next connection selects the application again).
    assert_eq!(pka_status(&sandbox, 0), [3, 0, 2, 0]);
}

#[test]
fn a_card_of_another_pki_is_refused_at_each_step() {
    let mut sandbox = Sandbox::with_slots(2);
    sandbox.insert_card(0);
    // The custodian's database lives elsewhere: it is made under a PKI of its own.
    let elsewhere = sandbox.scratch().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    sandbox.insert_card_on(1, &elsewhere.join("card.redb"), &["-v"]);
    assert!(elsewhere.join("emulator-pki.bin").exists());
    initialize_with(&sandbox, 0, &["--public-key-auth", "1"]);
    let file = custodian(&sandbox, 1, "foreign.pka");
    let (ok, out) = tool(&sandbox, 0, &["--register-public-key", &file]);
    assert!(!ok, "a foreign key was registered: {out}");
    assert!(out.contains("failed"), "{out}");
    assert_eq!(pka_status(&sandbox, 0), [1, 1, 1, 0]);
    // Nor can it authenticate: its key is unknown to the target.
    let lines = client(
        &sandbox,
        &["authenticate", "--target", "0", "--custodian", "1"],
    );
    assert_eq!(field(&lines[1], "mse"), "6A88", "{lines:?}");
    assert_eq!(
        field(&lines[1], "external_authenticate"),
        "6985",
        "{lines:?}"
    );
    assert_eq!(field(&lines[1], "status"), "01010100", "{lines:?}");
}

#[test]
fn a_card_without_public_key_authentication_says_so() {
    let sandbox = Sandbox::start();
    conformance_tests::initialize(&sandbox, None);
    let (ok, out) = tool(&sandbox, 0, &["--public-key-auth-status"]);
    assert!(!ok);
    assert!(
        out.contains("Card not initialized for public key registration"),
        "{out}"
    );
}

/// `sc-hsm-emulator ARGS` outside any sandbox; its standard output.
fn emulator(args: &[&str]) -> String {
    String::from_utf8_lossy(&offline(args).stdout)
        .trim()
        .to_string()
}

#[test]
fn one_pki_file_certifies_a_fleet_and_its_root_verifies_their_chains() {
    let mut sandbox = Sandbox::with_slots(2);
    let dir = sandbox.scratch().to_path_buf();
    let pki = arg(&dir, "fleet/pki.bin");
    let root = arg(&dir, "root.cvcert");
    let chr = emulator(&["pki", "export", "--pki", &pki, "--out", &root]);
    assert!(chr.starts_with("ZZEMSR") && chr.len() == 15, "{chr}");
    let show = emulator(&["pki", "show", "--pki", &pki]);
    assert!(show.contains(&chr), "{show}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&pki).unwrap().permissions());
    assert_eq!(
        mode & 0o077,
        0,
        "the PKI file is readable by others: {mode:o}"
    );
    // Two cards in two places, one PKI.
    for slot in 0..2u8 {
        let db = dir.join(format!("room{slot}/card.redb"));
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        sandbox.insert_card_on(slot, &db, &["-v", "--pki", &pki]);
        assert!(!db.with_file_name("emulator-pki.bin").exists());
        let lines = client(
            &sandbox,
            &[
                "verify-chain",
                "--reader",
                &slot.to_string(),
                "--root",
                &root,
            ],
        );
        for (line, name) in lines.iter().zip(["root", "issuer", "device"]) {
            assert!(line.starts_with(name), "{lines:?}");
            assert_eq!(field(line, "verified"), "true", "{lines:?}");
        }
        assert_eq!(field(&lines[1], "car"), chr, "{lines:?}");
    }
    // Another PKI's root does not verify them.
    let other = arg(&dir, "other.cvcert");
    emulator(&[
        "pki",
        "export",
        "--pki",
        &arg(&dir, "other/pki.bin"),
        "--out",
        &other,
    ]);
    let lines = client(
        &sandbox,
        &["verify-chain", "--reader", "0", "--root", &other],
    );
    assert_eq!(field(&lines[1], "verified"), "false", "{lines:?}");
}

/// The issuer and device certificates' names of the card in `slot`: (issuer CAR, device CHR).
fn chain_names(sandbox: &Sandbox, slot: u8) -> (String, String) {
    let lines = client(sandbox, &["verify-chain", "--reader", &slot.to_string()]);
    (
        field(&lines[0], "car").to_string(),
        field(&lines[1], "chr").to_string(),
    )
}

#[test]
fn seeded_cards_share_the_seeds_pki_and_old_cards_keep_their_chain() {
    let mut sandbox = Sandbox::with_slots(2);
    let dir = sandbox.scratch().to_path_buf();
    // Two cards of one seeded process (seeds 77 and 78) share the PKI of seed 77.
    let seeded = dir.join("seeded/card.redb");
    std::fs::create_dir_all(seeded.parent().unwrap()).unwrap();
    sandbox.insert_card_on(0, &seeded, &["-v", "--seed", "77", "--cards", "2"]);
    sandbox.wait_for_card(1);
    assert!(!seeded.with_file_name("emulator-pki.bin").exists());
    let (root_a, device_a) = chain_names(&sandbox, 0);
    let (root_b, device_b) = chain_names(&sandbox, 1);
    assert_eq!(root_a, root_b);
    assert_ne!(device_a, device_b);
    assert!(
        root_a.starts_with("ZZEMSR") && root_a.len() == 15,
        "{root_a}"
    );
    // The same seed elsewhere: the same PKI again.
    let offline = dir.join("offline/card.redb");
    emulator(&["init", "--db", offline.to_str().unwrap(), "--seed", "77"]);
    sandbox.stop_card(0, "TERM");
    sandbox.insert_card_on(0, &offline, &["-v", "--seed", "77"]);
    assert_eq!(chain_names(&sandbox, 0).0, root_a);
    // A card made before the emulator PKI keeps the chain of its own root; no PKI is made.
    sandbox.stop_card(0, "TERM");
    let old = dir.join("old/card.redb");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/store/v2/card.redb"
    );
    std::fs::copy(fixture, &old).unwrap();
    let pki = arg(&dir, "unused-pki.bin");
    // (That card was made with --seed 1.)
    sandbox.insert_card_on(0, &old, &["-v", "--seed", "1", "--pki", &pki]);
    let (old_root, _) = chain_names(&sandbox, 0);
    assert_eq!(old_root, "ZZEMSRCA00001");
    assert!(!std::path::Path::new(&pki).exists());
}

/// Two cards in slots 0 and 1 initialised offline with two key domain slots; the second's
/// database in `second_dir` (another directory: another PKI) when given.
fn xkek_pair(second_dir: Option<&str>) -> Sandbox {
    let mut sandbox = Sandbox::with_slots(2);
    let first = sandbox.db_path(0);
    let second = match second_dir {
        Some(dir) => sandbox.scratch().join(dir).join("card.redb"),
        None => sandbox.db_path(1),
    };
    for db in [&first, &second] {
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        emulator(&["init", "--db", db.to_str().unwrap(), "--key-domains", "2"]);
    }
    sandbox.insert_card_on(0, &first, &["-v"]);
    sandbox.insert_card_on(1, &second, &["-v"]);
    sandbox
}

#[test]
fn two_cards_of_one_pki_agree_an_xkek_and_move_a_key() {
    let sandbox = xkek_pair(None);
    let lines = client(
        &sandbox,
        &["xkek", "--first", "0", "--second", "1", "--uid", "C1A55300"],
    );
    for line in &lines[..2] {
        assert_eq!(field(line, "sw"), "9000", "{lines:?}");
        assert_eq!(
            field(line, "status"),
            "00010000000000000000C1A55300",
            "{lines:?}"
        );
        assert_eq!(field(line, "generate"), "9000", "{lines:?}");
    }
    for line in &lines[2..4] {
        assert_eq!(
            field(line, "chain"),
            "9000,9000,9000,9000,9000",
            "{lines:?}"
        );
        assert_eq!(field(line, "sw"), "9000", "{lines:?}");
    }
    // The same KCV on both cards, not zero, and the UID after it.
    let (a, b) = (field(&lines[2], "status"), field(&lines[3], "status"));
    assert_eq!(a, b);
    assert!(
        a.starts_with("0000") && &a[4..20] != "0000000000000000" && a.ends_with("C1A55300"),
        "{a}"
    );
    let moved = &lines[4];
    for key in ["generate", "wrap", "unwrap", "sign"] {
        assert_eq!(field(moved, key), "9000", "{moved}");
    }
    assert_eq!(field(moved, "verified"), "true", "{moved}");
}

#[test]
fn a_card_of_another_pki_agrees_no_xkek() {
    let sandbox = xkek_pair(Some("elsewhere"));
    let lines = client(
        &sandbox,
        &["xkek", "--first", "0", "--second", "1", "--uid", "C1A55300"],
    );
    for line in &lines[2..4] {
        // The peer's issuer is unknown, so nothing of its chain verifies, and no verifier is
        // selected for its request.
        assert!(field(line, "chain").starts_with("6A88"), "{lines:?}");
        assert_eq!(field(line, "sw"), "6985", "{lines:?}");
        assert_eq!(
            field(line, "status"),
            "00010000000000000000C1A55300",
            "{lines:?}"
        );
    }
    // Nothing can be wrapped in a domain whose XKEK was never agreed.
    assert_eq!(field(&lines[4], "wrap"), "6A88", "{lines:?}");
}
