//! Data objects and random numbers through pkcs11-tool.

use conformance_tests::{initialize, text, Sandbox, PIN};

#[test]
fn public_and_private_data_objects() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    // Longer than one 255-byte UPDATE BINARY chunk.
    let public_bytes: Vec<u8> = (0..700u32).map(|i| (i * 7 % 251) as u8).collect();
    let p = |path: &std::path::Path| path.to_str().unwrap().to_string();
    sandbox.write_data_object("X", &public_bytes, false);
    sandbox.write_data_object("Y", b"for the PIN holder only", true);

    let out = sandbox.scratch().join("out.bin");
    sandbox.ok(
        "pkcs11-tool",
        &[
            "--read-object",
            "--type",
            "data",
            "--label",
            "X",
            "--output-file",
            &p(&out),
        ],
    );
    assert_eq!(std::fs::read(&out).unwrap(), public_bytes);

    // Without login the private object is not even visible.
    let denied = sandbox.run(
        "pkcs11-tool",
        &[
            "--read-object",
            "--type",
            "data",
            "--label",
            "Y",
            "--output-file",
            &p(&out),
        ],
    );
    assert!(!denied.status.success(), "{}", text(&denied));
    sandbox.ok(
        "pkcs11-tool",
        &[
            "--login",
            "--pin",
            PIN,
            "--read-object",
            "--type",
            "data",
            "--label",
            "Y",
            "--output-file",
            &p(&out),
        ],
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"for the PIN holder only");

    sandbox.ok(
        "pkcs11-tool",
        &[
            "--login",
            "--pin",
            PIN,
            "--delete-object",
            "--type",
            "data",
            "--label",
            "X",
        ],
    );
    let listing = sandbox.ok("pkcs11-tool", &["--list-objects"]);
    assert!(!listing.contains("'X'"), "{listing}");
    let gone = sandbox.run(
        "pkcs11-tool",
        &[
            "--read-object",
            "--type",
            "data",
            "--label",
            "X",
            "--output-file",
            &p(&out),
        ],
    );
    assert!(!gone.status.success());
}

#[test]
fn generate_random_returns_fresh_bytes() {
    let sandbox = Sandbox::start();
    let a = sandbox.run("pkcs11-tool", &["--generate-random", "64"]);
    let b = sandbox.run("pkcs11-tool", &["--generate-random", "64"]);
    assert!(a.status.success() && b.status.success(), "{}", text(&a));
    assert_eq!(a.stdout.len(), 64);
    assert_eq!(b.stdout.len(), 64);
    assert_ne!(a.stdout, b.stdout);
}
