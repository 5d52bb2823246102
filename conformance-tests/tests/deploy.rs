//! The deployment files in `deploy/`: the systemd unit verifies with `systemd-analyze`, the
//! Kubernetes manifests render with `kubectl kustomize` (client side, no cluster) into a
//! StatefulSet with a volume claim per card, probes on `/healthz` and the fleet file in a
//! ConfigMap, and both fleet files pass `serve --check`.

use std::path::Path;
use std::process::Command;

use conformance_tests::{emulator_binary, text};

fn deploy() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy"))
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(deploy().join("systemd/sc-hsm-emulator.service")).unwrap();
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    // systemd-analyze checks that the program exists: point the copy at the built one.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sc-hsm-emulator.service");
    let built = emulator_binary().to_str().unwrap();
    std::fs::write(&copy, unit.replace("/usr/local/bin/sc-hsm-emulator", built)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "{}",
        text(&out)
    );
}

#[test]
fn the_kubernetes_manifests_render_client_side() {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy().join("kubernetes"))
        .output()
        .expect("kubectl (Debian: kubernetes-client)");
    assert!(out.status.success(), "{}", text(&out));
    let yaml = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "kind: StatefulSet",
        "kind: ConfigMap",
        "kind: Service",
        "volumeClaimTemplates:",
        "path: /healthz",
        "fieldPath: metadata.name",
        "secretName: sc-hsm-pki",
        "fleet.toml: |",
    ] {
        assert!(yaml.contains(expected), "no {expected:?} in\n{yaml}");
    }
}

#[test]
fn the_fleet_files_of_the_deployments_check() {
    for (file, name) in [
        (
            "kubernetes/fleet.toml",
            "sc-hsm-card-0 vpcd-sc-hsm-card-0:35963 /data/card.redb",
        ),
        (
            "systemd/fleet.toml",
            "room1-01 127.0.0.1:35963 /var/lib/sc-hsm-emulator/room1-01.redb",
        ),
    ] {
        let out = Command::new(emulator_binary())
            .args(["serve", "--check", "--config"])
            .arg(deploy().join(file))
            .env("POD_NAME", "sc-hsm-card-0")
            .output()
            .unwrap();
        assert!(out.status.success(), "{file}: {}", text(&out));
        assert!(text(&out).contains(name), "{file}: {}", text(&out));
    }
    // Without the pod's name, the Kubernetes file is a mistake, and says which.
    let out = Command::new(emulator_binary())
        .args(["serve", "--check", "--config"])
        .arg(deploy().join("kubernetes/fleet.toml"))
        .env_remove("POD_NAME")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("${POD_NAME} is not set"),
        "{}",
        text(&out)
    );
}
