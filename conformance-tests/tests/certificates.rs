//! The wiki's certificate flows: a key generated on the card, a self-signed certificate made
//! with OpenSSL's pkcs11 engine, stored on the card, seen by pkcs15-tool, NSS and pkcs11-tool,
//! and deleted again.

use conformance_tests::{arg, initialize, opensc, openssl, text, Sandbox, PIN};

/// The PKCS#11 module of the OpenSC under test.
fn module() -> String {
    opensc().module().to_str().unwrap().to_string()
}

/// An OpenSSL configuration that loads libp11's engine with OpenSC's module and the test PIN.
fn engine_config(sandbox: &Sandbox) -> String {
    let path = arg(sandbox.scratch(), "openssl-engine.cnf");
    std::fs::write(
        &path,
        format!(
            "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n\
             [engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n\
             MODULE_PATH = {}\nPIN = {PIN}\ninit = 0\n",
            module()
        ),
    )
    .unwrap();
    path
}

#[test]
fn openssl_engine_certificate_on_the_card_then_pkcs15_nss_and_deletion() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    let dir = sandbox.scratch();
    sandbox.ok(
        "pkcs11-tool",
        &[
            "--module",
            &module(),
            "-l",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "rsa:2048",
            "--id",
            "10",
        ],
    );

    // As on the wiki: req -engine pkcs11 -new -key 0:10 -keyform engine -x509.
    let cert_pem = arg(dir, "cert.pem");
    let out = sandbox
        .command("openssl")
        .env("OPENSSL_CONF", engine_config(&sandbox))
        .args([
            "req", "-engine", "pkcs11", "-new", "-key", "0:10", "-keyform", "engine", "-out",
            &cert_pem, "-text", "-x509", "-days", "3640",
        ])
        .args(["-subj", "/CN=Joe Doe (RSA2048)"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl req with the pkcs11 engine failed:\n{}",
        text(&out)
    );
    // The self-signed certificate verifies: its signature was made on the card.
    let verified = openssl(&["verify", "-CAfile", &cert_pem, &cert_pem]);
    assert!(verified.contains(": OK"), "{verified}");
    let cert_der = arg(dir, "cert.der");
    openssl(&[
        "x509", "-in", &cert_pem, "-out", &cert_der, "-outform", "der",
    ]);
    // The certificate's key is the card's key 10.
    let card_pub = arg(dir, "card-pub.der");
    sandbox.read_object("pubkey", "10", &card_pub);
    let cert_key = openssl(&["x509", "-in", &cert_pem, "-noout", "-pubkey"]);
    let card_key = openssl(&["pkey", "-pubin", "-inform", "DER", "-in", &card_pub]);
    assert_eq!(cert_key, card_key);

    sandbox.ok(
        "pkcs11-tool",
        &[
            "--module",
            &module(),
            "-l",
            "--pin",
            PIN,
            "--write-object",
            &cert_der,
            "--type",
            "cert",
            "--id",
            "10",
        ],
    );
    let dump = sandbox.ok("pkcs15-tool", &["-D"]);
    assert!(dump.contains("X.509 Certificate [Certificate]"), "{dump}");
    assert!(dump.contains("Private RSA Key"), "{dump}");
    let read_back = arg(dir, "read-back.der");
    sandbox.read_object("cert", "10", &read_back);
    assert_eq!(
        std::fs::read(&read_back).unwrap(),
        std::fs::read(&cert_der).unwrap()
    );

    // NSS (Firefox, Thunderbird): the module in a fresh database sees certificate and key.
    let nss = dir.join("nssdb");
    std::fs::create_dir_all(&nss).unwrap();
    let db = format!("sql:{}", nss.display());
    sandbox.ok("certutil", &["-N", "-d", &db, "--empty-password"]);
    sandbox.ok(
        "modutil",
        &[
            "-add",
            "SmartCard-HSM",
            "-libfile",
            &module(),
            "-dbdir",
            &db,
            "-force",
        ],
    );
    // The PIN from a file: certutil would otherwise ask for it on /dev/tty.
    let pin_file = arg(dir, "pin.txt");
    std::fs::write(&pin_file, PIN).unwrap();
    let certs = sandbox.ok("certutil", &["-L", "-d", &db, "-h", "all", "-f", &pin_file]);
    assert!(certs.contains("Certificate"), "{certs}");
    let keys = sandbox.ok("certutil", &["-K", "-d", &db, "-h", "all", "-f", &pin_file]);
    assert!(keys.contains("rsa"), "{keys}");

    // Deletion as on the wiki: the certificate, then the private key.
    sandbox.ok(
        "pkcs11-tool",
        &[
            "-l",
            "--pin",
            PIN,
            "--delete-object",
            "--type",
            "cert",
            "--id",
            "10",
        ],
    );
    sandbox.ok(
        "pkcs11-tool",
        &[
            "-l",
            "--pin",
            PIN,
            "--delete-object",
            "--type",
            "privkey",
            "--id",
            "10",
        ],
    );
    let listing = sandbox.ok("pkcs11-tool", &["-l", "--pin", PIN, "-O"]);
    assert!(!listing.contains("Certificate Object"), "{listing}");
    assert!(!listing.contains("Private Key Object"), "{listing}");
}

#[test]
fn a_certificate_without_a_key_goes_to_ca_files() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    let dir = sandbox.scratch();
    let key = arg(dir, "ca.key");
    let cert = arg(dir, "ca.der");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
        "/CN=Some CA",
        "-days",
        "30",
        "-outform",
        "DER",
        "-out",
        &cert,
    ]);
    sandbox.ok(
        "pkcs11-tool",
        &[
            "-l",
            "--pin",
            PIN,
            "--write-object",
            &cert,
            "--type",
            "cert",
            "--id",
            "77",
            "--label",
            "Some CA",
        ],
    );
    let script = arg(dir, "ls.txt");
    std::fs::write(&script, "cd aid:E82B0601040181C31F0201\nls\n").unwrap();
    let ls = sandbox.ok("opensc-explorer", &[&script]);
    assert!(
        ls.lines().any(|l| l.trim_start().starts_with("CA")),
        "no CAxx file:\n{ls}"
    );
    assert!(
        ls.lines().any(|l| l.trim_start().starts_with("C8")),
        "no C8xx file:\n{ls}"
    );
    let dump = sandbox.ok("pkcs15-tool", &["-D"]);
    assert!(dump.contains("X.509 Certificate [Some CA]"), "{dump}");
    sandbox.ok(
        "pkcs11-tool",
        &[
            "-l",
            "--pin",
            PIN,
            "--delete-object",
            "--type",
            "cert",
            "--id",
            "77",
        ],
    );
    let ls = sandbox.ok("opensc-explorer", &[&script]);
    assert!(
        !ls.lines().any(|l| l.trim_start().starts_with("CA")),
        "{ls}"
    );
}

#[test]
fn pkcs11_tool_self_test_passes() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    sandbox.generate_key_pair("rsa:2048", "01", &["--label", "test key"]);
    let out = sandbox.ok("pkcs11-tool", &["--test", "--login", "--pin", PIN]);
    assert!(out.contains("No errors"), "{out}");
}
