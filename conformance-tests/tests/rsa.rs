//! RSA keys generated on the card through pkcs11-tool; every signature and decryption is
//! cross-checked with the OpenSSL CLI.

use conformance_tests::{
    arg, initialize, opensc, openssl, openssl_succeeds, verifies_sha256, verifies_sha256_pss,
    Sandbox, PIN,
};

/// Generates an RSA key of `bits` on the card with id `id` and exports its public key as PEM.
fn keypair(sandbox: &Sandbox, bits: usize, id: &str) -> String {
    sandbox.generate_key_pair(
        &format!("rsa:{bits}"),
        id,
        &["--label", &format!("rsa{bits}")],
    );
    let pem = sandbox.public_key_pem(id, &format!("pub{id}"), &[]);
    let text = openssl(&["pkey", "-pubin", "-in", &pem, "-noout", "-text"]);
    assert!(
        text.contains(&format!("Public-Key: ({bits} bit)")),
        "{text}"
    );
    pem
}

/// OpenSC >= 0.24 offers only the hashes this card's driver declares (SHA-1, SHA-256,
/// SHA-384, SHA-512; "Indicate supported hashes and MGF1s", 2023): a SHA-224 mechanism is
/// refused by the host with CKR_MECHANISM_INVALID before the card is asked. Checks that and
/// says so; `true` when `mechanism` is such a one.
fn not_offered(sandbox: &Sandbox, id: &str, mechanism: &str, data: &str, sig: &str) -> bool {
    if !(mechanism.starts_with("SHA224") && opensc().at_least(0, 24)) {
        return false;
    }
    let out = sandbox.try_sign(id, mechanism, data, sig, &[]);
    let text = conformance_tests::text(&out);
    assert!(!out.status.success(), "{mechanism}: {text}");
    assert!(
        text.contains("CKR_MECHANISM_INVALID"),
        "{mechanism}: {text}"
    );
    opensc().note(&format!(
        "{mechanism} is not offered for this card (host side)"
    ));
    true
}

fn check_key(sandbox: &Sandbox, bits: usize, id: &str) {
    let dir = sandbox.scratch();
    let pem = keypair(sandbox, bits, id);
    let data = arg(dir, "data.txt");
    std::fs::write(&data, b"signed on an emulated SmartCard-HSM").unwrap();
    let sig = arg(dir, "sig.bin");

    for (mechanism, digest) in [
        ("SHA1-RSA-PKCS", "sha1"),
        ("SHA224-RSA-PKCS", "sha224"),
        ("SHA256-RSA-PKCS", "sha256"),
        ("SHA384-RSA-PKCS", "sha384"),
        ("SHA512-RSA-PKCS", "sha512"),
    ] {
        if not_offered(sandbox, id, mechanism, &data, &sig) {
            continue;
        }
        sandbox.sign(id, mechanism, &data, &sig, &[]);
        assert!(
            openssl_succeeds(&[
                "dgst",
                &format!("-{digest}"),
                "-verify",
                &pem,
                "-signature",
                &sig,
                &data
            ]),
            "{mechanism} signature does not verify ({bits} bits)"
        );
    }
    for (mechanism, digest) in [
        ("SHA1-RSA-PKCS-PSS", "sha1"),
        ("SHA224-RSA-PKCS-PSS", "sha224"),
        ("SHA256-RSA-PKCS-PSS", "sha256"),
        ("SHA384-RSA-PKCS-PSS", "sha384"),
        ("SHA512-RSA-PKCS-PSS", "sha512"),
    ] {
        if not_offered(sandbox, id, mechanism, &data, &sig) {
            continue;
        }
        // With a 1024-bit modulus, SHA-512 leaves room for a 62-byte salt, not 64: the card
        // takes the longest that fits, and OpenSSL finds it ("auto").
        sandbox.sign(id, mechanism, &data, &sig, &[]);
        assert!(
            openssl_succeeds(&[
                "dgst",
                &format!("-{digest}"),
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:auto",
                "-verify",
                &pem,
                "-signature",
                &sig,
                &data,
            ]),
            "{mechanism} signature does not verify ({bits} bits)"
        );
    }
    // RSA-PKCS on a prepared DigestInfo, and RSA-PKCS-PSS on a hash.
    let digest = arg(dir, "digest.bin");
    openssl(&["dgst", "-sha256", "-binary", "-out", &digest, &data]);
    let digest_info = arg(dir, "digestinfo.bin");
    let mut info = conformance_tests_hex("3031300d060960864801650304020105000420");
    info.extend(std::fs::read(&digest).unwrap());
    std::fs::write(&digest_info, &info).unwrap();
    sandbox.sign(id, "RSA-PKCS", &digest_info, &sig, &[]);
    assert!(verifies_sha256(&pem, &sig, &data), "RSA-PKCS");
    sandbox.sign(
        id,
        "RSA-PKCS-PSS",
        &digest,
        &sig,
        &["--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256"],
    );
    let pss_verifies = || verifies_sha256_pss(&pem, &sig, &data, "auto");
    assert!(pss_verifies(), "RSA-PKCS-PSS");
    // A tampered signature must not verify: the check above can fail.
    let mut bad = std::fs::read(&sig).unwrap();
    bad[10] ^= 1;
    std::fs::write(&sig, &bad).unwrap();
    assert!(!pss_verifies(), "tampered RSA-PKCS-PSS signature verified");

    // Decryption of what OpenSSL encrypted to the card's public key.
    let secret = arg(dir, "secret.txt");
    std::fs::write(&secret, b"for the card's eyes only").unwrap();
    let enc = arg(dir, "enc.bin");
    let dec = arg(dir, "dec.bin");
    openssl(&[
        "pkeyutl", "-encrypt", "-pubin", "-inkey", &pem, "-in", &secret, "-out", &enc,
    ]);
    sandbox.ok(
        "pkcs11-tool",
        &[
            "--login",
            "--pin",
            PIN,
            "--decrypt",
            "--id",
            id,
            "--mechanism",
            "RSA-PKCS",
            "--input-file",
            &enc,
            "--output-file",
            &dec,
        ],
    );
    assert_eq!(std::fs::read(&dec).unwrap(), b"for the card's eyes only");
    openssl(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        &pem,
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-in",
        &secret,
        "-out",
        &enc,
    ]);
    sandbox.ok(
        "pkcs11-tool",
        &[
            "--login",
            "--pin",
            PIN,
            "--decrypt",
            "--id",
            id,
            "--mechanism",
            "RSA-PKCS-OAEP",
            "--hash-algorithm",
            "SHA-1",
            "--input-file",
            &enc,
            "--output-file",
            &dec,
        ],
    );
    assert_eq!(std::fs::read(&dec).unwrap(), b"for the card's eyes only");
}

fn conformance_tests_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn rsa_1024_and_1536() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    check_key(&sandbox, 1024, "10");
    check_key(&sandbox, 1536, "11");
}

#[test]
fn rsa_2048() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    check_key(&sandbox, 2048, "10");
    let listing = sandbox.ok("pkcs11-tool", &["--login", "--pin", PIN, "-O"]);
    assert!(
        listing.contains("Public Key Object; RSA 2048 bits"),
        "{listing}"
    );
    assert!(listing.contains("Private Key Object; RSA"), "{listing}");
}

#[test]
fn rsa_3072_and_4096() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    check_key(&sandbox, 3072, "12");
    check_key(&sandbox, 4096, "13");
}
