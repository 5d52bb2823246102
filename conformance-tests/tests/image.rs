//! The container image of `scripts/build-image`, run with podman: it serves a card to a pcscd
//! outside the container (the container joins that pcscd's network namespace, as a pod joins
//! a node's or a CI job's network), answers `/healthz`, stops cleanly on SIGTERM and keeps the
//! card on its volume across containers.

use std::process::Command;

use conformance_tests::{
    ensure_image, http_get, initialize, text, wait_until, Container, Sandbox, IMAGE,
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
    sandbox.wait_for_card(0);
    let python = sandbox.inside_command("/usr/bin/python3", &[]);
    let (code, body) = http_get(python, "http://127.0.0.1:9180/healthz");
    assert_eq!(
        (code, body.as_str()),
        (200, "ok: 1 cards\n"),
        "{}",
        container.logs()
    );

    initialize(&sandbox, Some("container"));
    let pem = sandbox.ec_p256_key("01", "container", &[]);
    sandbox
        .ecdsa_verified("01", &pem, b"signed inside a container", &[])
        .unwrap();

    // SIGTERM: the card powers off and the server exits 0.
    assert_eq!(container.stop(20), 0, "{}", container.logs());
    drop(container);
    assert!(data.join("card.redb").exists());

    // A new container on the same volume is the same card: the key signs again.
    // Ready when pcscd has powered it up on the new link: pcscd may still hold the first
    // container's ATR, and the link then makes it see the card removed first.
    let again = start();
    wait_until("pcscd to power up the new container's card", || {
        again.logs().contains("pcscd powered the card up")
    });
    sandbox
        .ecdsa_verified("01", &pem, b"signed by the same card", &[])
        .unwrap();
}
