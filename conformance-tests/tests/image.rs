//! The container image of `scripts/build-image`, run with podman: it serves a card to a pcscd
//! outside the container (the container joins that pcscd's network namespace, as a pod joins
//! a node's or a CI job's network), answers `/healthz`, stops cleanly on SIGTERM and keeps the
//! card on its volume across containers.

use std::process::Command;

use conformance_tests::{
    arg, ensure_image, initialize, openssl, text, verifies_sha256, wait_until, Container, Sandbox,
    IMAGE,
};
use vpcd_bridge::private_pcscd::is_root;

/// The image's configuration as podman reports it.
fn inspect(format: &str) -> String {
    let out = Command::new("podman")
        .args(["image", "inspect", "--format", format, IMAGE])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_image_serves_a_card_to_a_pcscd_outside_it() {
    if !is_root() {
        // Joining the sandbox's network namespace from podman needs the same (root) user.
        eprintln!("skipped: podman joins the sandbox's network namespace only as root");
        return;
    }
    ensure_image();
    assert_eq!(inspect("{{.Config.User}}"), "10001");
    assert_eq!(
        inspect("{{json .Config.Entrypoint}}"),
        r#"["/usr/local/bin/sc-hsm-emulator"]"#
    );
    // One layer: the imported root file system, nothing pulled.
    assert_eq!(inspect("{{len .RootFS.Layers}}"), "1");

    let sandbox = Sandbox::pcscd_only();
    let data = sandbox.scratch().join("volume");
    let start = || {
        Container::start(
            "sc-hsm-image-test",
            &sandbox.net_namespace(),
            &data,
            &[("VPCD", "127.0.0.1:35963")],
            &[],
        )
    };
    // The image's own command: its fleet file, one card at $VPCD.
    let container = start();
    wait_until("the container's card to be present", || {
        sandbox
            .command("opensc-tool")
            .args(["--reader", "0", "--atr"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let health = sandbox.run_in_mounts(
        "/usr/bin/python3",
        &[
            "-c",
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9180/healthz', timeout=10).read().decode(), end='')",
        ],
    );
    assert_eq!(text(&health), "ok: 1 cards\n", "{}", container.logs());

    initialize(&sandbox, Some("container"));
    sandbox.generate_key_pair("EC:prime256v1", "01", &[]);
    let dir = sandbox.scratch();
    let (der, pem) = (arg(dir, "pub.der"), arg(dir, "pub.pem"));
    sandbox.read_object("pubkey", "01", &der);
    openssl(&[
        "pkey", "-pubin", "-inform", "DER", "-in", &der, "-out", &pem,
    ]);
    let (message, signature) = (arg(dir, "message.txt"), arg(dir, "message.sig"));
    std::fs::write(&message, b"signed inside a container").unwrap();
    sandbox.sign(
        "01",
        "ECDSA-SHA256",
        &message,
        &signature,
        &["--signature-format", "openssl"],
    );
    assert!(verifies_sha256(&pem, &signature, &message));

    // SIGTERM: the card powers off and the server exits 0.
    assert_eq!(container.stop(20), 0, "{}", container.logs());
    drop(container);
    assert!(data.join("card.redb").exists());

    // A new container on the same volume is the same card: the key signs again.
    let _again = start();
    wait_until("the card to be back", || {
        sandbox
            .command("opensc-tool")
            .args(["--reader", "0", "--atr"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    std::fs::remove_file(&signature).unwrap();
    sandbox.sign(
        "01",
        "ECDSA-SHA256",
        &message,
        &signature,
        &["--signature-format", "openssl"],
    );
    assert!(verifies_sha256(&pem, &signature, &message));
}
