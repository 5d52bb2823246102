//! A private pcscd + vpcd + emulator for each test, and helpers to run the real OpenSC tools
//! against it: [`Sandbox`] (the pcscd of the product's own `private_pcscd` module, with
//! emulator processes in its slots), [`tools`] (running programs, OpenSC with the wiki's
//! credentials), [`opensc`] (which OpenSC release: Debian's or a build of its own), [`openssl`]
//! (the independent judge) and [`wait`] (polling, never sleeping).

mod container;
mod network;
mod opensc;
mod openssl;
mod sandbox;
mod tools;
mod wait;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use container::{
    ensure_ci_image, ensure_image, host_limits, image_exists, remove_container, Container,
    CI_IMAGE, IMAGE,
};
pub use network::{host_address, Network};
pub use opensc::{opensc, OpenSc};
pub use openssl::{openssl, openssl_succeeds, verifies_sha256, verifies_sha256_pss};
pub use sandbox::Sandbox;
pub use tools::{
    arg, field, http_get, http_request, initialize, offline, opensc_tool_responses, softhsm_token,
    text, SOFTHSM,
};
pub use wait::{wait_until, wait_until_or};

/// The test credentials of the OpenSC wiki page.
pub const PIN: &str = "648219";
pub const SO_PIN: &str = "3537363231383830";

/// The `sc-hsm-emulator` binary, built once per process with the profile this crate was built
/// with: the tests use the dev profile, `cargo run --release --bin stack-bench` the release one.
pub fn emulator_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "sc-hsm-emulator",
                "--bin",
                "sc-hsm-emulator",
            ])
            .args((profile == "release").then_some("--release"))
            .current_dir(workspace)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building sc-hsm-emulator failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        target.join(profile).join("sc-hsm-emulator")
    })
}
