//! The wiki's "Using key backup and restore" and "n-of-m threshold scheme" sections through
//! sc-hsm-tool, with the DKEK check value and every signature checked independently.

use std::process::{Child, Command, Stdio};

use conformance_tests::{
    arg, opensc_tool_responses, openssl, text, verifies_sha256, Sandbox, PIN, SO_PIN,
};

const BLOB_TOOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dkek_blob.py");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

/// Decrypts a share file independently (Python `cryptography`), in the background: it takes
/// seconds by design (EVP_BytesToKey with 10,000,000 rounds).
fn decrypt_share_in_background(password: &str, file: &str) -> Child {
    Command::new("/usr/bin/python3")
        .args([BLOB_TOOL, "share-decrypt", password, file])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with the cryptography package")
}

fn share_value(child: Child) -> Vec<u8> {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hex = String::from_utf8(out.stdout).unwrap();
    (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn kcv_line(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("DKEK key check value : "))
        .unwrap_or_else(|| panic!("no KCV in:\n{output}"))
        .trim()
        .to_string()
}

fn sc_hsm_tool(sandbox: &Sandbox, reader: u8, args: &[&str]) -> String {
    let mut all = vec!["--reader", if reader == 0 { "0" } else { "1" }];
    all.extend_from_slice(args);
    let out = sandbox.ok("sc-hsm-tool", &all);
    assert!(!out.contains("failed"), "sc-hsm-tool {args:?}:\n{out}");
    out
}

/// `sc-hsm-tool --initialize` with the test PINs and a DKEK of `shares` shares.
fn initialize_for_shares(sandbox: &Sandbox, reader: u8, shares: u8) {
    let shares = shares.to_string();
    sc_hsm_tool(
        sandbox,
        reader,
        &[
            "--initialize",
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
            "--dkek-shares",
            &shares,
        ],
    );
}

/// Signs `message` with the card's key reference `key_ref` (raw APDUs through pcscd) and
/// returns the DER/PKCS#1 signature (SHA-256 on the card).
fn sign_raw(sandbox: &Sandbox, reader: u8, key_ref: u8, algorithm: u8, message: &[u8]) -> Vec<u8> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    let args = [
        "--reader".to_string(),
        reader.to_string(),
        "-s".into(),
        "00A404000BE82B0601040181C31F020100".into(),
        "-s".into(),
        format!("0020008106{}", hex(PIN.as_bytes())),
        "-s".into(),
        format!(
            "8068{key_ref:02X}{algorithm:02X}0000{:02X}{}0000",
            message.len(),
            hex(message)
        ),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sandbox.run("opensc-tool", &args);
    assert!(out.status.success(), "{}", text(&out));
    let responses = opensc_tool_responses(&String::from_utf8_lossy(&out.stdout));
    let (signature, sw) = responses.last().expect("a response").clone();
    assert_eq!(sw, "9000", "{}", text(&out));
    signature
}

#[test]
fn key_backup_and_restore_as_on_the_wiki_and_cloning_to_a_second_card() {
    let mut sandbox = Sandbox::start();
    sandbox.insert_card(1);
    let dir = sandbox.scratch();
    let share1 = arg(dir, "dkek-share-1.pbe");
    let share2 = arg(dir, "dkek-share-2.pbe");
    for (file, password) in [(&share1, "custodian one"), (&share2, "custodian two")] {
        let out = sc_hsm_tool(
            &sandbox,
            0,
            &["--create-dkek-share", file, "--password", password],
        );
        assert!(
            out.contains(&format!("DKEK share created and saved to {file}")),
            "{out}"
        );
        let bytes = std::fs::read(file).unwrap();
        assert_eq!((bytes.len(), &bytes[..8]), (64, &b"Salted__"[..]));
    }
    let decrypt1 = decrypt_share_in_background("custodian one", &share1);
    let decrypt2 = decrypt_share_in_background("custodian two", &share2);

    initialize_for_shares(&sandbox, 0, 2);
    let info = sc_hsm_tool(&sandbox, 0, &[]);
    assert!(info.contains("DKEK shares          : 2"), "{info}");
    assert!(
        info.contains("DKEK import pending, 2 share(s) still missing"),
        "{info}"
    );
    let out = sc_hsm_tool(
        &sandbox,
        0,
        &[
            "--import-dkek-share",
            &share1,
            "--password",
            "custodian one",
        ],
    );
    assert!(out.contains("DKEK share imported"), "{out}");
    assert!(
        out.contains("DKEK import pending, 1 share(s) still missing"),
        "{out}"
    );
    let out = sc_hsm_tool(
        &sandbox,
        0,
        &[
            "--import-dkek-share",
            &share2,
            "--password",
            "custodian two",
        ],
    );
    let kcv = kcv_line(&out);
    assert_eq!(kcv_line(&sc_hsm_tool(&sandbox, 0, &[])), kcv);

    // KCV = first 8 bytes of SHA-256(share1 XOR share2), computed without the emulator.
    let xor: Vec<u8> = share_value(decrypt1)
        .iter()
        .zip(share_value(decrypt2))
        .map(|(a, b)| a ^ b)
        .collect();
    let xor_file = arg(dir, "dkek.bin");
    std::fs::write(&xor_file, &xor).unwrap();
    let digest = openssl(&["dgst", "-sha256", "-r", &xor_file]);
    assert_eq!(
        kcv.to_lowercase().replace(' ', ""),
        digest[..16].to_string()
    );

    // Keys, wrapped by reference, unwrapped as key reference 10 on the same card.
    sandbox.generate_key_pair("rsa:2048", "10", &["--slot-index", "0"]);
    sandbox.generate_key_pair("EC:prime256v1", "11", &["--slot-index", "0"]);
    let wrap_file = arg(dir, "wrap-key.bin");
    sc_hsm_tool(
        &sandbox,
        0,
        &[
            "--wrap-key",
            &wrap_file,
            "--key-reference",
            "1",
            "--pin",
            PIN,
        ],
    );
    let ec_wrap_file = arg(dir, "wrap-ec-key.bin");
    sc_hsm_tool(
        &sandbox,
        0,
        &[
            "--wrap-key",
            &ec_wrap_file,
            "--key-reference",
            "2",
            "--pin",
            PIN,
        ],
    );
    let out = sc_hsm_tool(
        &sandbox,
        0,
        &[
            "--unwrap-key",
            &wrap_file,
            "--key-reference",
            "10",
            "--pin",
            PIN,
        ],
    );
    for line in [
        "Wrapped key contains:",
        "  Key blob",
        "  Private Key Description (PRKD)",
        "  Certificate",
        "Key successfully imported",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    let dump = sandbox.ok("pkcs15-tool", &["--reader", "0", "-D"]);
    assert_eq!(
        dump.matches("Private RSA Key [Private Key]").count(),
        2,
        "{dump}"
    );
    assert!(
        dump.contains("Key ref        : 1 (0x01)") && dump.contains("Key ref        : 10 (0x0A)"),
        "{dump}"
    );
    assert_eq!(
        dump.matches("ID             : 10\n").count(),
        4,
        "two private, two public keys with ID 10:\n{dump}"
    );

    // The copy (key reference 0A) signs; OpenSSL verifies with the original's public key.
    let original_pem = sandbox.public_key_pem("10", "original", &["--slot-index", "0"]);
    let message = arg(dir, "message.txt");
    std::fs::write(&message, b"signed by the copy").unwrap();
    let signature = arg(dir, "copy.sig");
    std::fs::write(
        &signature,
        sign_raw(&sandbox, 0, 0x0A, 0x33, b"signed by the copy"),
    )
    .unwrap();
    assert!(verifies_sha256(&original_pem, &signature, &message));

    // Without --force an occupied reference is refused; with --force the key is replaced.
    let refused = sandbox.run(
        "sc-hsm-tool",
        &[
            "--reader",
            "0",
            "--unwrap-key",
            &wrap_file,
            "--key-reference",
            "10",
            "--pin",
            PIN,
        ],
    );
    assert!(
        text(&refused).contains("Please remove key first"),
        "{}",
        text(&refused)
    );
    let out = sc_hsm_tool(
        &sandbox,
        0,
        &[
            "--unwrap-key",
            &wrap_file,
            "--key-reference",
            "10",
            "--pin",
            PIN,
            "--force",
        ],
    );
    assert!(out.contains("Key successfully imported"), "{out}");

    // Card B with the same two shares shows the same KCV and takes the keys.
    initialize_for_shares(&sandbox, 1, 2);
    sc_hsm_tool(
        &sandbox,
        1,
        &[
            "--import-dkek-share",
            &share1,
            "--password",
            "custodian one",
        ],
    );
    let out = sc_hsm_tool(
        &sandbox,
        1,
        &[
            "--import-dkek-share",
            &share2,
            "--password",
            "custodian two",
        ],
    );
    assert_eq!(kcv_line(&out), kcv);
    sc_hsm_tool(
        &sandbox,
        1,
        &[
            "--unwrap-key",
            &wrap_file,
            "--key-reference",
            "1",
            "--pin",
            PIN,
        ],
    );
    sc_hsm_tool(
        &sandbox,
        1,
        &[
            "--unwrap-key",
            &ec_wrap_file,
            "--key-reference",
            "2",
            "--pin",
            PIN,
        ],
    );
    let sig_b = arg(dir, "b.sig");
    sandbox.sign(
        "10",
        "SHA256-RSA-PKCS",
        &message,
        &sig_b,
        &["--slot-index", "1"],
    );
    assert!(verifies_sha256(&original_pem, &sig_b, &message));
    let ec_pem = sandbox.public_key_pem("11", "ec-original", &["--slot-index", "0"]);
    let ec_sig = arg(dir, "ec.sig");
    sandbox.sign(
        "11",
        "ECDSA-SHA256",
        &message,
        &ec_sig,
        &["--slot-index", "1", "--signature-format", "openssl"],
    );
    assert!(verifies_sha256(&ec_pem, &ec_sig, &message));

    // Re-initialised with another DKEK, card B refuses the blob.
    initialize_for_shares(&sandbox, 1, 1);
    let known_share = format!("{FIXTURES}/real-card/dkek-share-kcv97E3.pbe");
    let out = sc_hsm_tool(
        &sandbox,
        1,
        &[
            "--import-dkek-share",
            &known_share,
            "--password",
            "passwordpassword",
        ],
    );
    assert_eq!(kcv_line(&out), "97E303855DC1C54D");
    let refused = sandbox.run(
        "sc-hsm-tool",
        &[
            "--reader",
            "1",
            "--unwrap-key",
            &wrap_file,
            "--key-reference",
            "1",
            "--pin",
            PIN,
        ],
    );
    assert!(
        text(&refused).contains("Wrapped key does not match DKEK"),
        "{}",
        text(&refused)
    );

    // A re-initialisation erases the DKEK.
    sc_hsm_tool(
        &sandbox,
        0,
        &["--initialize", "--so-pin", SO_PIN, "--pin", PIN],
    );
    assert!(!sc_hsm_tool(&sandbox, 0, &[]).contains("DKEK"));
}

#[test]
fn n_of_m_password_shares() {
    let sandbox = Sandbox::start();
    let dir = sandbox.scratch();
    let share = arg(dir, "threshold-share.pbe");
    // Enter to start, then show and acknowledge each of the 3 password shares.
    let out = sandbox.run_with_input(
        "sc-hsm-tool",
        &[
            "--create-dkek-share",
            &share,
            "--pwd-shares-threshold",
            "2",
            "--pwd-shares-total",
            "3",
        ],
        &"\n".repeat(7),
    );
    let shown = text(&out);
    assert!(
        out.status.success() && shown.contains("(2-of-3) threshold scheme"),
        "{shown}"
    );
    let field = |name: &str| -> Vec<String> {
        shown
            .lines()
            .filter_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .collect()
    };
    let primes = field("Prime       : ");
    let ids = field("Share ID    : ");
    let values = field("Share value : ");
    assert_eq!(
        (primes.len(), ids.len(), values.len()),
        (3, 3, 3),
        "{shown}"
    );

    initialize_for_shares(&sandbox, 0, 1);
    // Two of the three custodians (the first and the third) present their shares.
    let input = format!(
        "{}\n\n{}\n{}\n\n{}\n{}\n",
        primes[0], ids[0], values[0], ids[2], values[2]
    );
    let out = sandbox.run_with_input(
        "sc-hsm-tool",
        &["--import-dkek-share", &share, "--pwd-shares-total", "2"],
        &input,
    );
    let imported = text(&out);
    assert!(imported.contains("DKEK share imported"), "{imported}");
    let kcv = kcv_line(&imported);
    assert_eq!(kcv_line(&sc_hsm_tool(&sandbox, 0, &[])), kcv);
}
