//! Which OpenSC the tests drive: Debian's (the tools on `PATH`) or a build in a prefix of its
//! own named by `SC_HSM_OPENSC` (tools in `PREFIX/bin`, `opensc-pkcs11.so` in `PREFIX/lib`,
//! as `scripts/build-opensc` makes it), and its version, so that a test can say where releases
//! differ on the host side.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The OpenSC under test.
pub struct OpenSc {
    prefix: Option<PathBuf>,
    version: (u32, u32, u32),
}

/// The OpenSC of this test process, found once.
pub fn opensc() -> &'static OpenSc {
    static OPENSC: OnceLock<OpenSc> = OnceLock::new();
    OPENSC.get_or_init(|| {
        let prefix = std::env::var_os("SC_HSM_OPENSC")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let mut probe = OpenSc {
            prefix,
            version: (0, 0, 0),
        };
        let mut info = Command::new("opensc-tool");
        probe.configure(&mut info);
        let out = info
            .arg("--info")
            .output()
            .unwrap_or_else(|e| panic!("cannot run opensc-tool of {}: {e}", probe.origin()));
        let text = String::from_utf8_lossy(&out.stdout);
        probe.version = parse_version(&text)
            .unwrap_or_else(|| panic!("no OpenSC version in `opensc-tool --info`: {text}"));
        probe
    })
}

/// `0.26.1` from `OpenSC 0.26.1 [gcc ...]`.
fn parse_version(info: &str) -> Option<(u32, u32, u32)> {
    let word = info.strip_prefix("OpenSC ")?.split_whitespace().next()?;
    let mut parts = word.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

impl OpenSc {
    /// Major, minor, patch.
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }

    /// Whether this OpenSC is `major.minor` or newer.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }

    /// `OpenSC 0.26.1`.
    pub fn name(&self) -> String {
        let (a, b, c) = self.version;
        format!("OpenSC {a}.{b}.{c}")
    }

    /// Its PKCS#11 module.
    pub fn module(&self) -> PathBuf {
        match &self.prefix {
            Some(prefix) => prefix.join("lib/opensc-pkcs11.so"),
            None => PathBuf::from("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"),
        }
    }

    /// The source and build tree of a build by `scripts/build-opensc` (where p11test runs, as
    /// in OpenSC's own CI); none for Debian's OpenSC.
    pub fn build_tree(&self) -> Option<PathBuf> {
        let tree = self.prefix.as_ref()?.parent()?.join("source");
        tree.join("src/tests/p11test/p11test")
            .exists()
            .then_some(tree)
    }

    /// The directory where this OpenSC's OpenPACE looks up the root certificate of a card's
    /// chain for chip authentication (by holder reference), when it was built with OpenPACE
    /// by `scripts/build-opensc`; none for Debian's OpenSC (no OpenPACE, no chip
    /// authentication).
    pub fn chip_authentication_roots(&self) -> Option<PathBuf> {
        let dir = self.prefix.as_ref()?.join("etc/eac/cvc");
        dir.is_dir().then_some(dir)
    }

    /// Where it comes from, for messages.
    fn origin(&self) -> String {
        match &self.prefix {
            Some(prefix) => format!("the build in {}", prefix.display()),
            None => "the system".into(),
        }
    }

    /// Makes `command` run this OpenSC's tools and load its libraries.
    pub fn configure(&self, command: &mut Command) {
        let Some(prefix) = &self.prefix else {
            return;
        };
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![prefix.join("bin")];
        dirs.extend(std::env::split_paths(&path));
        command
            .env("PATH", std::env::join_paths(dirs).expect("PATH"))
            .env("LD_LIBRARY_PATH", prefix.join("lib"));
    }

    /// Says how this release behaves where releases differ on the host side (never a silent
    /// skip): in the test's output, and in `target/host-differences.txt`, which `scripts/test`
    /// prints after each pass (cargo shows a passing test's output to nobody).
    pub fn note(&self, what: &str) {
        use std::io::Write;
        let line = format!("{}: {what}", self.name());
        eprintln!("{line}");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let _ = std::fs::create_dir_all(&target);
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(target.join("host-differences.txt"))
        {
            // One write per line: parallel tests append to the same file.
            let _ = file.write_all(format!("{line}\n").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_read_from_opensc_tool() {
        assert_eq!(
            super::parse_version("OpenSC 0.23.0 [gcc  12.2.0]\nEnabled features: locking"),
            Some((0, 23, 0))
        );
        assert_eq!(
            super::parse_version("OpenSC 0.26.1 [gcc  12.2.0]"),
            Some((0, 26, 1))
        );
        assert_eq!(super::parse_version("something else"), None);
    }
}
