//! The OpenSSL command line, the independent judge of every cryptographic result.

use std::process::Command;

use crate::text;

/// Runs the OpenSSL CLI, asserts success, and returns its output.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    let text = text(&out);
    assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

/// Whether `openssl args` succeeds (for checks that must fail too).
pub fn openssl_succeeds(args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether OpenSSL verifies `signature` (file) over `data` (file) with SHA-256 under the
/// public key in PEM file `pem`.
pub fn verifies_sha256(pem: &str, signature: &str, data: &str) -> bool {
    openssl_succeeds(&[
        "dgst",
        "-sha256",
        "-verify",
        pem,
        "-signature",
        signature,
        data,
    ])
}

/// Whether OpenSSL verifies `signature` (file) over `data` (file) as RSA-PSS with SHA-256 and
/// MGF1-SHA-256 under the public key in PEM file `pem`; `salt` is OpenSSL's salt length
/// setting (`digest`: the digest's length, `auto`: whatever the signature holds).
pub fn verifies_sha256_pss(pem: &str, signature: &str, data: &str, salt: &str) -> bool {
    let salt = format!("rsa_pss_saltlen:{salt}");
    openssl_succeeds(&[
        "dgst",
        "-sha256",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        &salt,
        "-verify",
        pem,
        "-signature",
        signature,
        data,
    ])
}
