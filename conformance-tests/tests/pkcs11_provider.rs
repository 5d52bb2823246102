//! OpenSSL 3 with pkcs11-provider on the card: `openssl` names a key on the card by a `pkcs11:`
//! URI and the provider reaches it through the OpenSC PKCS#11 module under test
//! ([`conformance_tests::opensc`]). For an RSA-2048 and an EC P-256 key made with pkcs11-tool:
//! a signature by `pkeyutl`, a self-signed certificate by `req -x509`, and a TLS server
//! (`s_server`) whose key stays on the card. Every result is judged by plain OpenSSL without the
//! provider, under the public key pkcs11-tool exported from the card.
//!
//! The provider is the build of `scripts/build-pkcs11-provider`: the module named by
//! `SC_HSM_PKCS11_PROVIDER`, else the one in `target/pkcs11-provider-*/`. Without either the
//! tests fail, unless `SC_HSM_PKCS11_PROVIDER_OPTIONAL=1` lets them skip (with a note).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use conformance_tests::{
    arg, initialize, opensc, openssl, openssl_succeeds, text, verifies_sha256, verifies_sha256_pss,
    wait_until_or, Sandbox, PIN,
};

/// A key pair the tests make on the card.
#[derive(Clone, Copy)]
struct Key {
    /// pkcs11-tool's `--key-type`.
    key_type: &'static str,
    /// CKA_ID, one byte in hex.
    id: &'static str,
    label: &'static str,
    /// What `s_client` prints as "Peer signature type" in TLS 1.3.
    tls13_signature: &'static str,
}

const RSA: Key = Key {
    key_type: "rsa:2048",
    id: "01",
    label: "rsa-2048",
    tls13_signature: "RSA-PSS",
};

const EC: Key = Key {
    key_type: "EC:prime256v1",
    id: "02",
    label: "ec-p256",
    tls13_signature: "ECDSA",
};

/// The port `s_server` listens on, in the sandbox's own network namespace (no other test's).
const TLS_PORT: &str = "4433";

/// The pkcs11-provider module: `SC_HSM_PKCS11_PROVIDER`, else a finished build of
/// `scripts/build-pkcs11-provider` in `target/`; none (the tests skip) only where
/// `SC_HSM_PKCS11_PROVIDER_OPTIONAL` allows it.
fn provider_module() -> Option<PathBuf> {
    if let Some(module) = std::env::var_os("SC_HSM_PKCS11_PROVIDER").filter(|m| !m.is_empty()) {
        let module = PathBuf::from(module);
        assert!(
            module.is_file(),
            "SC_HSM_PKCS11_PROVIDER names {}, which is no file (scripts/build-pkcs11-provider \
             prints the module's path on its last line)",
            module.display()
        );
        return Some(module);
    }
    // Where the script builds: this checkout's target/, whatever CARGO_TARGET_DIR says.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let mut builds: Vec<PathBuf> = std::fs::read_dir(&target)
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    builds.retain(|b| {
        b.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pkcs11-provider-"))
            && b.join("built").is_file()
    });
    builds.sort();
    if let Some(build) = builds.last() {
        let module = build.join("prefix/lib/ossl-modules/pkcs11.so");
        assert!(module.is_file(), "{} is missing", module.display());
        return Some(module);
    }
    let optional =
        std::env::var("SC_HSM_PKCS11_PROVIDER_OPTIONAL").is_ok_and(|v| !v.is_empty() && v != "0");
    if optional {
        eprintln!(
            "skipped: no pkcs11-provider (SC_HSM_PKCS11_PROVIDER is unset and target/ has no \
             build of scripts/build-pkcs11-provider); SC_HSM_PKCS11_PROVIDER_OPTIONAL allows it"
        );
        return None;
    }
    panic!(
        "no pkcs11-provider: run scripts/build-pkcs11-provider (it builds into \
         target/pkcs11-provider-VERSION) or set SC_HSM_PKCS11_PROVIDER to the module it prints; \
         SC_HSM_PKCS11_PROVIDER_OPTIONAL=1 makes these tests skip instead"
    );
}

/// A sandbox card holding `key`, and two OpenSSL configurations that load pkcs11-provider on
/// the OpenSC module under test: one that logs in with the PIN from a file, one with no PIN
/// (the key's URI brings it).
struct Card {
    sandbox: Sandbox,
    key: Key,
    /// OPENSSL_CONF with `pkcs11-module-token-pin = file:...`.
    conf: String,
    /// OPENSSL_CONF without a PIN.
    conf_without_pin: String,
    /// The public key as pkcs11-tool exports it (PEM), the judge's key.
    public_pem: String,
}

impl Card {
    /// Starts a sandbox, initialises its card, generates `key` with pkcs11-tool and exports
    /// its public key; `None` when the provider is absent and may be.
    fn start(key: Key) -> Option<Card> {
        let module = provider_module()?;
        let sandbox = Sandbox::start();
        initialize(&sandbox, None);
        sandbox.generate_key_pair(key.key_type, key.id, &["--label", key.label]);
        let public_pem = sandbox.public_key_pem(key.id, &format!("card-{}", key.label), &[]);
        let dir = sandbox.scratch();
        let pin_file = arg(dir, "user-pin.txt");
        std::fs::write(&pin_file, PIN).unwrap();
        let conf = arg(dir, "openssl-pkcs11.cnf");
        let conf_without_pin = arg(dir, "openssl-pkcs11-no-pin.cnf");
        let opensc_module = opensc().module();
        std::fs::write(
            &conf,
            provider_conf(&module, &opensc_module, Some(&pin_file)),
        )
        .unwrap();
        std::fs::write(
            &conf_without_pin,
            provider_conf(&module, &opensc_module, None),
        )
        .unwrap();
        Some(Card {
            sandbox,
            key,
            conf,
            conf_without_pin,
            public_pem,
        })
    }

    /// The private key's URI, by label.
    fn private_key(&self) -> String {
        format!("pkcs11:object={};type=private", self.key.label)
    }

    /// `openssl args` with the provider loaded by `conf`, talking to the sandbox's pcscd;
    /// asserts success and returns its output.
    fn openssl_with(&self, conf: &str, args: &[&str]) -> String {
        let out = self
            .sandbox
            .command("openssl")
            .env("OPENSSL_CONF", conf)
            .args(args)
            .output()
            .expect("run openssl");
        let all = text(&out);
        assert!(
            out.status.success(),
            "{}: openssl {args:?} with pkcs11-provider failed ({}):\n{all}\n{}",
            opensc().name(),
            out.status,
            self.sandbox.logs()
        );
        all
    }

    /// As [`Card::openssl_with`], logging in with the PIN file.
    fn openssl(&self, args: &[&str]) -> String {
        self.openssl_with(&self.conf, args)
    }

    /// A scratch path.
    fn path(&self, name: &str) -> String {
        arg(self.sandbox.scratch(), name)
    }

    /// The SIGN commands (`80 68`) the card carried out so far: their P2 (the algorithm).
    fn card_signatures(&self) -> Vec<String> {
        self.sandbox
            .data_trace()
            .into_iter()
            .filter(|e| e.command == "SIGN" && e.sw == "9000")
            .map(|e| {
                let hex: String = e.apdu.chars().filter(|c| c.is_ascii_hexdigit()).collect();
                hex.get(6..8).unwrap_or("??").to_string()
            })
            .collect()
    }

    /// A self-signed certificate for the card's key, made by `openssl req -x509` through the
    /// provider; its path.
    fn self_signed_certificate(&self) -> String {
        let cert = self.path(&format!("{}.crt", self.key.label));
        let subject = format!("/CN=sc-hsm-emulator {}", self.key.label);
        self.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &self.private_key(),
            "-subj",
            &subject,
            "-days",
            "2",
            "-sha256",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-out",
            &cert,
        ]);
        cert
    }
}

/// An OpenSSL configuration with the default provider and pkcs11-provider on `opensc_module`
/// (no section may be called `default`: that is the configuration file's unnamed section).
fn provider_conf(module: &Path, opensc_module: &Path, pin_file: Option<&str>) -> String {
    let pin = pin_file
        .map(|f| format!("pkcs11-module-token-pin = file:{f}\n"))
        .unwrap_or_default();
    format!(
        "# OpenSSL's default provider, and pkcs11-provider on the OpenSC module under test.\n\
         openssl_conf = init\n\
         [init]\n\
         providers = providers\n\
         [providers]\n\
         default = default_provider\n\
         pkcs11 = pkcs11_provider\n\
         [default_provider]\n\
         activate = 1\n\
         [pkcs11_provider]\n\
         module = {}\n\
         pkcs11-module-path = {}\n\
         {pin}\
         activate = 1\n",
        module.display(),
        opensc_module.display()
    )
}

/// The public key of PEM file `pem` (a public key or a certificate's) as OpenSSL prints it,
/// to compare keys whatever their encoding.
fn public_key_text(pem: &str, certificate: bool) -> String {
    if certificate {
        openssl(&["x509", "-in", pem, "-noout", "-pubkey"])
    } else {
        openssl(&["pkey", "-pubin", "-in", pem])
    }
}

fn signs_with_pkeyutl(key: Key) {
    let Some(card) = Card::start(key) else {
        return;
    };
    let data = card.path("data.txt");
    std::fs::write(
        &data,
        format!("signed by {} through pkcs11-provider", key.label),
    )
    .unwrap();
    let digest = card.path("data.sha256");
    openssl(&["dgst", "-sha256", "-binary", "-out", &digest, &data]);

    // The public key read through the provider is the one pkcs11-tool exported.
    let through_provider = card.path("provider-public.pem");
    card.openssl(&[
        "pkey",
        "-pubin",
        "-in",
        &format!("pkcs11:object={};type=public", key.label),
        "-out",
        &through_provider,
    ]);
    assert_eq!(
        public_key_text(&through_provider, false),
        public_key_text(&card.public_pem, false),
        "the provider's public key differs from pkcs11-tool's"
    );

    // By id, the PIN in the URI, with a configuration that has none.
    let uri = format!("pkcs11:id=%{};type=private?pin-value={PIN}", key.id);
    let before = card.card_signatures().len();
    let signature = card.path("data.sig");
    card.openssl_with(
        &card.conf_without_pin,
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            &uri,
            "-pkeyopt",
            "digest:sha256",
            "-in",
            &digest,
            "-out",
            &signature,
        ],
    );
    assert!(
        verifies_sha256(&card.public_pem, &signature, &data),
        "{}: the {} signature of pkeyutl does not verify under the card's public key",
        opensc().name(),
        key.label
    );
    assert_eq!(
        card.card_signatures().len(),
        before + 1,
        "the card did not make exactly one signature"
    );

    if key.key_type.starts_with("rsa") {
        // RSA-PSS as TLS 1.3 needs it (salt as long as the digest), checked strictly.
        let pss = card.path("data-pss.sig");
        card.openssl(&[
            "pkeyutl",
            "-sign",
            "-inkey",
            &card.private_key(),
            "-pkeyopt",
            "digest:sha256",
            "-pkeyopt",
            "rsa_padding_mode:pss",
            "-pkeyopt",
            "rsa_pss_saltlen:digest",
            "-in",
            &digest,
            "-out",
            &pss,
        ]);
        let verify_pss = |sig: &str| verifies_sha256_pss(&card.public_pem, sig, &data, "digest");
        assert!(verify_pss(&pss), "the RSA-PSS signature does not verify");
        // The PKCS#1 v1.5 signature is not taken for a PSS one: the judge does look.
        assert!(
            !verify_pss(&signature),
            "a PKCS#1 v1.5 signature passed as PSS"
        );
    }
    eprintln!(
        "{}, pkcs11-provider, {}: the card's SIGN algorithms (P2): {:?}",
        opensc().name(),
        key.label,
        &card.card_signatures()[before..]
    );
}

#[test]
fn rsa_2048_signs_through_the_provider_and_openssl_verifies() {
    signs_with_pkeyutl(RSA);
}

#[test]
fn ec_p256_signs_through_the_provider_and_openssl_verifies() {
    signs_with_pkeyutl(EC);
}

fn self_signed_certificate(key: Key) {
    let Some(card) = Card::start(key) else {
        return;
    };
    let cert = card.self_signed_certificate();
    // Judged without the provider or the card: the certificate's own signature is checked
    // (-check_ss_sig; a trust anchor's self-signature is not checked otherwise).
    let verified = openssl(&["verify", "-check_ss_sig", "-CAfile", &cert, &cert]);
    assert!(verified.contains(": OK"), "{verified}");
    assert_eq!(
        public_key_text(&cert, true),
        public_key_text(&card.public_pem, false),
        "the certificate's public key is not the card's"
    );
    let details = openssl(&["x509", "-in", &cert, "-noout", "-text"]);
    let algorithm = if key.key_type.starts_with("rsa") {
        "sha256WithRSAEncryption"
    } else {
        "ecdsa-with-SHA256"
    };
    assert!(
        details.contains(&format!("Signature Algorithm: {algorithm}")),
        "{details}"
    );

    // The same certificate with one bit of its signature flipped fails the same check.
    let der = card.path("tampered.der");
    openssl(&["x509", "-in", &cert, "-outform", "DER", "-out", &der]);
    let mut bytes = std::fs::read(&der).unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    std::fs::write(&der, &bytes).unwrap();
    let tampered = card.path("tampered.pem");
    openssl(&["x509", "-inform", "DER", "-in", &der, "-out", &tampered]);
    assert!(
        !openssl_succeeds(&["verify", "-check_ss_sig", "-CAfile", &tampered, &tampered]),
        "a certificate with a damaged signature passed"
    );
}

#[test]
fn rsa_2048_self_signed_certificate_verifies_without_the_card() {
    self_signed_certificate(RSA);
}

#[test]
fn ec_p256_self_signed_certificate_verifies_without_the_card() {
    self_signed_certificate(EC);
}

/// An `openssl s_server` of the test, killed and reaped when dropped.
struct Server {
    child: Child,
    log: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `s_server` in the sandbox's network namespace, on the card's key through the
    /// provider and `cert`, for one connection (`-naccept 1`) in `-rev` mode (it answers each
    /// line reversed; a line `CLOSE` ends the connection); returns once it listens.
    fn start(card: &Card, cert: &str, name: &str) -> Server {
        let log = card.path(&format!("s_server-{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        // The PC/SC socket and the OpenSC under test, as for any client of the sandbox.
        let client = card.sandbox.command("openssl");
        let mut command = card.sandbox.inside_command(
            "openssl",
            &[
                "s_server",
                "-accept",
                &format!("127.0.0.1:{TLS_PORT}"),
                "-naccept",
                "1",
                "-rev",
                "-cert",
                cert,
                "-key",
                &card.private_key(),
            ],
        );
        for (name, value) in client.get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let child = command
            .env("OPENSSL_CONF", &card.conf)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start openssl s_server");
        let mut server = Server {
            child,
            log: log.clone(),
        };
        wait_until_or(
            "s_server to listen",
            || {
                let exited = server.child.try_wait().unwrap().is_some();
                exited || read_log(&log).contains("ACCEPT")
            },
            || read_log(&log),
        );
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "{}: s_server exited before it listened:\n{}\n{}",
            opensc().name(),
            server.output(),
            card.sandbox.logs()
        );
        server
    }

    fn output(&self) -> String {
        read_log(&self.log)
    }

    /// Waits until the server has ended after its one connection; asserts it ended well.
    fn finish(mut self) -> String {
        let log = self.log.clone();
        wait_until_or(
            "s_server to end after its connection",
            || self.child.try_wait().unwrap().is_some(),
            || read_log(&log),
        );
        let status = self.child.wait().unwrap();
        let output = self.output();
        assert!(status.success(), "s_server: {status}\n{output}");
        output
    }
}

/// What a log file holds so far.
fn read_log(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `openssl s_client` without the provider (no OPENSSL_CONF) in the sandbox's network
/// namespace, trusting only `cert`, sending `line` then `CLOSE`; its output.
fn s_client(card: &Card, cert: &str, extra: &[&str], line: &str) -> Output {
    let connect = format!("127.0.0.1:{TLS_PORT}");
    let mut args = vec![
        "60",
        "openssl",
        "s_client",
        "-connect",
        &connect,
        "-CAfile",
        cert,
        "-verify_return_error",
        "-verify_ip",
        "127.0.0.1",
        "-ign_eof",
    ];
    args.extend_from_slice(extra);
    let mut child = card
        .sandbox
        .inside_command("timeout", &args)
        .env_remove("OPENSSL_CONF")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{line}\nCLOSE\n").as_bytes())
        .unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// One TLS handshake against `s_server` on the card's key; asserts the client verified the
/// server, negotiated `protocol` with `signature` ("Peer signature type"), and got its line
/// back reversed through the connection; and that the card signed during the handshake.
fn handshake(card: &Card, cert: &str, protocol: &str, signature: &str, extra: &[&str]) {
    let name = format!("{protocol}-{signature}");
    let before = card.card_signatures().len();
    let server = Server::start(card, cert, &name);
    let line = format!("through {protocol} with the {} key", card.key.label);
    let out = s_client(card, cert, extra, &line);
    let client = text(&out);
    let server_output = server.finish();
    let context = format!(
        "{}: {protocol} with {signature}\n--- s_client ---\n{client}\n--- s_server ---\n{server_output}",
        opensc().name()
    );
    assert!(out.status.success(), "{context}");
    assert!(client.contains("Verify return code: 0 (ok)"), "{context}");
    assert!(
        client.contains(&format!("Protocol  : {protocol}"))
            || client.contains(&format!("New, {protocol},")),
        "{context}"
    );
    assert!(
        client.contains(&format!("Peer signature type: {signature}\n")),
        "{context}"
    );
    let reversed: String = line.chars().rev().collect();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&reversed),
        "the line did not come back through the connection\n{context}"
    );
    let signed = card.card_signatures()[before..].to_vec();
    assert!(
        !signed.is_empty(),
        "the card made no signature during the handshake\n{context}"
    );
    eprintln!(
        "{}, pkcs11-provider, {protocol} {signature} ({}): the card's SIGN algorithms (P2): {signed:?}",
        opensc().name(),
        card.key.label
    );
}

fn tls_server_key_on_the_card(key: Key) {
    let Some(card) = Card::start(key) else {
        return;
    };
    let cert = card.self_signed_certificate();
    handshake(&card, &cert, "TLSv1.3", key.tls13_signature, &["-tls1_3"]);
    if key.key_type.starts_with("rsa") {
        // TLS 1.2 where the client offers only PKCS#1 v1.5 signatures.
        handshake(
            &card,
            &cert,
            "TLSv1.2",
            "RSA",
            &["-tls1_2", "-sigalgs", "RSA+SHA256"],
        );
    } else {
        handshake(&card, &cert, "TLSv1.2", "ECDSA", &["-tls1_2"]);
    }
}

#[test]
fn tls_with_the_rsa_2048_server_key_on_the_card() {
    tls_server_key_on_the_card(RSA);
}

#[test]
fn tls_with_the_ec_p256_server_key_on_the_card() {
    tls_server_key_on_the_card(EC);
}
