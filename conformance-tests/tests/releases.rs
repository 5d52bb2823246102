//! Where OpenSC releases differ on the host side, checked against the release under test
//! (`SC_HSM_OPENSC`, see `conformance_tests::opensc`): which SIGN algorithm reaches the card for
//! the SHA-384/512 mechanisms, `opensc-tool --serial`, and the session PIN, which needs secure
//! messaging. Each test says which behaviour it expects of which release.

use conformance_tests::{arg, initialize, opensc, verifies_sha256, Sandbox, PIN};

/// The P2 of every SIGN (`80 68`) in the card's trace, in order.
fn sign_algorithms(trace: &std::path::Path) -> Vec<u8> {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let at = line.find("80 68 ")?;
            let p2 = line.get(at + 9..at + 11)?;
            u8::from_str_radix(p2, 16).ok()
        })
        .collect()
}

#[test]
fn sha384_and_sha512_signatures_reach_the_card_as_the_release_sends_them() {
    let mut sandbox = Sandbox::pcscd_only();
    let trace = sandbox.scratch().join("trace.txt");
    sandbox.insert_card_with(0, &["--trace", trace.to_str().unwrap()]);
    initialize(&sandbox, None);
    sandbox.generate_key_pair("rsa:2048", "01", &[]);
    sandbox.generate_key_pair("EC:secp384r1", "02", &[]);
    let dir = sandbox.scratch();
    let data = arg(dir, "data.txt");
    std::fs::write(&data, b"hashed by whom?").unwrap();
    let (rsa_pem, ec_pem) = (arg(dir, "rsa.pem"), arg(dir, "ec.pem"));
    for (id, pem) in [("01", &rsa_pem), ("02", &ec_pem)] {
        let exported = sandbox.ok("pkcs15-tool", &["--read-public-key", id]);
        let start = exported.find("-----BEGIN PUBLIC KEY-----").unwrap();
        std::fs::write(pem, &exported[start..]).unwrap();
    }
    let mechanisms = [
        ("01", "SHA384-RSA-PKCS", "sha384", &rsa_pem, &[] as &[&str]),
        ("01", "SHA512-RSA-PKCS", "sha512", &rsa_pem, &[]),
        (
            "02",
            "ECDSA-SHA384",
            "sha384",
            &ec_pem,
            &["--signature-format", "openssl"],
        ),
        (
            "02",
            "ECDSA-SHA512",
            "sha512",
            &ec_pem,
            &["--signature-format", "openssl"],
        ),
    ];
    let before = sign_algorithms(&trace).len();
    for (id, mechanism, digest, pem, extra) in mechanisms {
        let sig = arg(dir, &format!("{mechanism}.sig"));
        sandbox.sign(id, mechanism, &data, &sig, extra);
        assert!(
            conformance_tests::openssl_succeeds(&[
                "dgst",
                &format!("-{digest}"),
                "-verify",
                pem,
                "-signature",
                &sig,
                &data,
            ]),
            "{mechanism} does not verify"
        );
    }
    let sent = sign_algorithms(&trace)[before..].to_vec();
    // OpenSC 0.23 hashes on the host and sends raw RSA (20, padded on the host) or the hash
    // (EC, 70). 0.26 ("add missing mechanisms", 2024) lets the card hash for ECDSA (74, 75:
    // SHA-384/512) but still pads RSA on the host (20): the card's 34/35 are not used by it.
    let expected: &[u8] = if opensc().at_least(0, 26) {
        &[0x20, 0x20, 0x74, 0x75]
    } else {
        &[0x20, 0x20, 0x70, 0x70]
    };
    opensc().note(&format!(
        "SHA-384/512 RSA and ECDSA reach the card as SIGN {sent:02X?}"
    ));
    assert_eq!(sent, expected, "{}", opensc().name());
    // The card's SHA-256 path is unchanged (a control for the verifier).
    let sig = arg(dir, "sha256.sig");
    sandbox.sign("01", "SHA256-RSA-PKCS", &data, &sig, &[]);
    assert!(verifies_sha256(&rsa_pem, &sig, &data));
}

#[test]
fn opensc_tool_reads_the_serial_number() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    let out = sandbox.run("opensc-tool", &["--serial"]);
    let text = conformance_tests::text(&out);
    let listing = sandbox.ok("pkcs15-tool", &["--list-info"]);
    let serial = listing
        .lines()
        .find_map(|l| l.trim().strip_prefix("Serial number  :"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no serial in {listing}"))
        .to_string();
    assert!(serial.starts_with("ZZEM"), "{serial}");
    assert!(out.status.success(), "{}: {text}", opensc().name());
    if opensc().at_least(0, 24) {
        assert!(
            text.contains(&serial),
            "{}: `opensc-tool --serial` does not show {serial}:\n{text}",
            opensc().name()
        );
    } else {
        // The card driver learnt `--serial` in 0.24 (OpenSC #2675); 0.23 says it failed.
        assert!(
            text.contains("SC_CARDCTL_GET_SERIALNR, *) failed"),
            "{text}"
        );
        opensc().note("opensc-tool --serial is not supported for this card before 0.24");
    }
}

#[test]
fn a_session_pin_is_refused_without_secure_messaging() {
    let mut sandbox = Sandbox::pcscd_only();
    let trace = sandbox.scratch().join("trace.txt");
    sandbox.insert_card_with(0, &["--trace", trace.to_str().unwrap()]);
    initialize(&sandbox, None);
    // An OpenSC with OpenPACE opens a secure channel first (chip authentication, under the
    // root of the card's PKI); without OpenPACE it cannot.
    if sandbox.trust_for_chip_authentication() {
        opensc().note("pkcs15-tool --test-session-pin opens a secure channel (OpenPACE)");
    } else {
        opensc().note("no chip authentication without OpenPACE: no session PIN");
    }
    // The card announces no session PIN (option 0004), so OpenSC verifies the PIN and has no
    // session PIN to show (the card refuses GENERATE SESSION PIN, 6A81, or it is never sent).
    let out = sandbox.run("pkcs15-tool", &["--test-session-pin", "--pin", PIN]);
    let text = conformance_tests::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Card does not support session PIN"), "{text}");
    assert!(text.contains("Could not generate session PIN"), "{text}");
    let log = std::fs::read_to_string(&trace).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("VERIFY") && l.contains("00 20 00 81") && l.contains("9000")),
        "{log}"
    );
    // Asked directly, GENERATE SESSION PIN answers that secure messaging is needed.
    let client = env!("CARGO_BIN_EXE_pcsc-client");
    let answers = sandbox.raw_client(
        client,
        &[
            "00A4040C0BE82B0601040181C31F0201",
            "0020008106363438323139",
            "805A018100",
        ],
    );
    assert_eq!(answers, ["9000", "9000", "6982"]);
}
