//! Running the real tools against a [`Sandbox`]: any program with its output, OpenSC's tools
//! with the wiki's credentials, and the text they print.

use std::path::Path;
use std::process::{Output, Stdio};

use crate::{Sandbox, PIN, SO_PIN};

impl Sandbox {
    /// Runs the raw PC/SC client `client` (this crate's `pcsc-client`, passed as
    /// `env!("CARGO_BIN_EXE_pcsc-client")`) with `apdus`, bounded by `timeout` so that a wedged
    /// reader fails the test instead of hanging it; the answer to each APDU, in order.
    pub fn raw_client(&self, client: &str, apdus: &[&str]) -> Vec<String> {
        let mut args = vec!["20", client];
        args.extend_from_slice(apdus);
        let out = self.run("timeout", &args);
        let text = text(&out);
        assert!(
            out.status.success(),
            "the PC/SC client did not finish ({}): {text}\n{}",
            out.status,
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(" -> ").map(|(_, answer)| answer.to_string()))
            .collect()
    }

    /// Runs the suite's Python client `scripts/SCRIPT` (Debian's python3, with `pyscard` and
    /// `cryptography`) with `args` inside the sandbox, bounded so that a wedged reader fails
    /// the test; asserts success and returns its lines (`name key=value ...`, see [`field`]).
    pub fn python_client(&self, script: &str, args: &[&str]) -> Vec<String> {
        let script = format!("{}/scripts/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut all = vec!["60", "/usr/bin/python3", script.as_str()];
        all.extend_from_slice(args);
        let out = self.run("timeout", &all);
        assert!(
            out.status.success(),
            "{script} {args:?}: {}\n{}",
            text(&out),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Runs `program args` and returns its output, whatever the exit status.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// Runs `program args` with `input` on its standard input (for tools that prompt).
    pub fn run_with_input(&self, program: &str, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("wait")
    }

    /// Runs `program args`, asserts success, and returns stdout and stderr together.
    pub fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        let text = text(&out);
        assert!(
            out.status.success(),
            "{program} {args:?} failed ({}):\n{text}\n{}",
            out.status,
            self.logs()
        );
        text
    }

    /// Generates a key pair on the card through `pkcs11-tool --login --keypairgen` with the user
    /// PIN (`key_type` as pkcs11-tool spells it: "rsa:2048", "EC:prime256v1"), `extra` appended
    /// (a label, a slot); asserts that pkcs11-tool reports the pair and returns its output.
    pub fn generate_key_pair(&self, key_type: &str, id: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            key_type,
            "--id",
            id,
        ];
        args.extend_from_slice(extra);
        let out = self.ok("pkcs11-tool", &args);
        assert!(out.contains("Key pair generated"), "{out}");
        out
    }

    /// `pkcs11-tool --login --sign` with key `id` and `mechanism` from file `input` to file
    /// `output`, `extra` appended; the tool's output, whatever its exit status.
    pub fn try_sign(
        &self,
        id: &str,
        mechanism: &str,
        input: &str,
        output: &str,
        extra: &[&str],
    ) -> Output {
        let mut args = vec![
            "--login",
            "--pin",
            PIN,
            "--sign",
            "--id",
            id,
            "--mechanism",
            mechanism,
            "--input-file",
            input,
            "--output-file",
            output,
        ];
        args.extend_from_slice(extra);
        self.run("pkcs11-tool", &args)
    }

    /// As [`Sandbox::try_sign`], asserting success.
    pub fn sign(&self, id: &str, mechanism: &str, input: &str, output: &str, extra: &[&str]) {
        let out = self.try_sign(id, mechanism, input, output, extra);
        assert!(
            out.status.success(),
            "signing with {id} ({mechanism}) failed:\n{}\n{}",
            text(&out),
            self.logs()
        );
    }

    /// Exports the public key of key `id` (`extra` appended: a slot) through
    /// `pkcs11-tool --read-object` into `NAME.der` in the scratch directory, converts it with
    /// OpenSSL and returns the path of `NAME.pem`; pkcs11-tool's output when it fails.
    pub fn try_public_key_pem(
        &self,
        id: &str,
        name: &str,
        extra: &[&str],
    ) -> Result<String, Output> {
        let dir = self.scratch();
        let (der, pem) = (
            dir.join(format!("{name}.der")),
            dir.join(format!("{name}.pem")),
        );
        let (der, pem) = (der.to_str().unwrap(), pem.to_str().unwrap());
        let mut args = vec![
            "--read-object",
            "--type",
            "pubkey",
            "--id",
            id,
            "--output-file",
            der,
        ];
        args.extend_from_slice(extra);
        let read = self.run("pkcs11-tool", &args);
        if !read.status.success() {
            return Err(read);
        }
        crate::openssl(&["pkey", "-pubin", "-inform", "DER", "-in", der, "-out", pem]);
        Ok(pem.to_string())
    }

    /// As [`Sandbox::try_public_key_pem`], asserting success.
    pub fn public_key_pem(&self, id: &str, name: &str, extra: &[&str]) -> String {
        self.try_public_key_pem(id, name, extra)
            .unwrap_or_else(|out| panic!("exporting the public key {id}: {}", text(&out)))
    }

    /// Generates an EC P-256 key pair `id` (`extra` appended: a slot) and returns the path of
    /// its public key as a PEM file in the scratch directory (`pub-ID-TAG.pem`).
    pub fn ec_p256_key(&self, id: &str, tag: &str, extra: &[&str]) -> String {
        self.generate_key_pair("EC:prime256v1", id, extra);
        self.public_key_pem(id, &format!("pub-{id}-{tag}"), extra)
    }

    /// Signs `message` with ECDSA-SHA256 under key `id` (`extra` appended: a slot) and checks
    /// the signature with OpenSSL under the public key `pem`; an error says what failed.
    pub fn ecdsa_verified(
        &self,
        id: &str,
        pem: &str,
        message: &[u8],
        extra: &[&str],
    ) -> Result<(), String> {
        let dir = self.scratch();
        let tag: String = extra.concat();
        let input = dir.join(format!("message-{id}{tag}.txt"));
        let output = dir.join(format!("message-{id}{tag}.sig"));
        std::fs::write(&input, message).unwrap();
        let _ = std::fs::remove_file(&output);
        let (input, output) = (input.to_str().unwrap(), output.to_str().unwrap());
        let mut args = vec!["--signature-format", "openssl"];
        args.extend_from_slice(extra);
        let out = self.try_sign(id, "ECDSA-SHA256", input, output, &args);
        if !out.status.success() {
            return Err(format!("signing failed: {}", text(&out)));
        }
        if !crate::verifies_sha256(pem, output, input) {
            return Err("the signature does not verify".into());
        }
        Ok(())
    }

    /// `pkcs11-tool --read-object --type KIND --id ID --output-file OUTPUT` (`kind`: pubkey,
    /// cert), asserting success.
    pub fn read_object(&self, kind: &str, id: &str, output: &str) {
        let out = self.try_read_object(kind, id, output);
        assert!(
            out.status.success(),
            "reading the {kind} {id} failed:\n{}\n{}",
            text(&out),
            self.logs()
        );
    }

    /// As [`Sandbox::read_object`]; the tool's output, whatever its exit status.
    pub fn try_read_object(&self, kind: &str, id: &str, output: &str) -> Output {
        self.run(
            "pkcs11-tool",
            &[
                "--read-object",
                "--type",
                kind,
                "--id",
                id,
                "--output-file",
                output,
            ],
        )
    }

    /// Writes `contents` to the card as a data object labelled `label` (logged in with the
    /// user PIN, through `pkcs11-tool --write-object`); `private` objects need the PIN to read.
    pub fn write_data_object(&self, label: &str, contents: &[u8], private: bool) {
        let file = self.scratch().join(format!("data-object-{label}.bin"));
        std::fs::write(&file, contents).unwrap();
        let file = file.to_str().unwrap();
        let mut args = vec![
            "--login",
            "--pin",
            PIN,
            "--write-object",
            file,
            "--type",
            "data",
            "--label",
            label,
        ];
        if private {
            args.push("--private");
        }
        self.ok("pkcs11-tool", &args);
    }
}

/// GET `url` with Python's urllib, run by `python` (a `python3` command already placed in the
/// namespace the server listens in, for example [`Sandbox::inside_command`]): the status code
/// (0 when nothing answered) and the body.
pub fn http_get(python: std::process::Command, url: &str) -> (u16, String) {
    http_request(python, "GET", url, "", None)
}

/// As [`http_get`], with any method, a body and a bearer token.
pub fn http_request(
    mut python: std::process::Command,
    method: &str,
    url: &str,
    body: &str,
    bearer: Option<&str>,
) -> (u16, String) {
    const SCRIPT: &str = "import sys, urllib.request, urllib.error\n\
        method, url, body, bearer = sys.argv[1:5]\n\
        request = urllib.request.Request(url, data=body.encode() if method == 'POST' else None, method=method)\n\
        if bearer:\n    request.add_header('Authorization', 'Bearer ' + bearer)\n\
        try:\n    r = urllib.request.urlopen(request, timeout=30); code, body = r.status, r.read()\n\
        except urllib.error.HTTPError as e:\n    code, body = e.code, e.read()\n\
        except OSError:\n    code, body = 0, b''\n\
        print(code); print(body.decode(), end='')\n";
    let out = python
        .args(["-c", SCRIPT, method, url, body, bearer.unwrap_or("")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{method} {url}: {}", text(&out));
    let all = String::from_utf8(out.stdout).unwrap();
    let (code, body) = all.split_once('\n').unwrap_or((&all, ""));
    (code.trim().parse().unwrap(), body.to_string())
}

/// stdout and stderr of a finished command, as text.
pub fn text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

/// `sc-hsm-tool --initialize` with the wiki's credentials and an optional label.
pub fn initialize(sandbox: &Sandbox, label: Option<&str>) -> String {
    let mut args = vec!["--initialize", "--so-pin", SO_PIN, "--pin", PIN];
    if let Some(label) = label {
        args.extend(["--label", label]);
    }
    let out = sandbox.ok("sc-hsm-tool", &args);
    assert!(!out.contains("failed"), "initialize failed:\n{out}");
    out
}

/// The value of `key=` in a line of a Python client (see [`Sandbox::python_client`]).
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|token| token.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// `sc-hsm-emulator ARGS` outside any sandbox (the offline subcommands); asserts success.
pub fn offline(args: &[&str]) -> Output {
    let out = std::process::Command::new(crate::emulator_binary())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sc-hsm-emulator: {e}"));
    assert!(
        out.status.success(),
        "sc-hsm-emulator {args:?}: {}",
        text(&out)
    );
    out
}

/// A path inside `dir` as a `String` argument.
pub fn arg(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().expect("UTF-8 path").to_string()
}

/// Data and status word of each response `opensc-tool -s` printed on stdout, in order.
pub fn opensc_tool_responses(output: &str) -> Vec<(Vec<u8>, String)> {
    let mut responses = Vec::new();
    let mut lines = output.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(sw) = line.strip_prefix("Received (SW1=0x") else {
            continue;
        };
        let sw =
            format!("{}{}", &sw[..2], &sw[sw.find("SW2=0x").unwrap() + 6..][..2]).to_uppercase();
        let mut dump = Vec::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("Sending") || next.starts_with("Received") || next.trim().is_empty()
            {
                break;
            }
            dump.push(next.to_string());
            lines.next();
        }
        // Each line: up to 16 hex pairs, then as many characters. A dump of several lines
        // pads the hex column of its last line to 48 characters; a single short line is not
        // padded.
        let mut data = Vec::new();
        for line in &dump {
            let width = if dump.len() > 1 {
                48
            } else {
                3 * (line.chars().count() / 4)
            };
            let hex_part: String = line.chars().take(width).collect();
            data.extend(hex_part.split_whitespace().map(|h| {
                u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("not a hex byte in {line:?}"))
            }));
        }
        responses.push((data, sw));
    }
    responses
}

/// SoftHSM2's PKCS#11 module (Debian's softhsm2), the benches' in-process reference.
pub const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 token labelled "bench" with the wiki's user PIN, in a token directory under
/// `dir`; returns its configuration file (for `SOFTHSM2_CONF`).
pub fn softhsm_token(dir: &Path) -> std::path::PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", "bench"])
        .args(["--so-pin", "1234", "--pin", PIN])
        .output()
        .expect("run softhsm2-util (package softhsm2)");
    assert!(out.status.success(), "softhsm2-util: {}", text(&out));
    conf
}
