//! What a newcomer met on a fresh machine, each now as a command-line user expects: the reader
//! configuration works from a relative directory, a `--db` that does not exist is refused
//! unless `--create` asks for a new card, an existing card's ignored `--profile` is said,
//! `init` does not erase keys without `--force` and says what it erased, `help sandbox` names
//! the readers as pcscd does, and a text file or a directory is "not a card database".

use std::path::Path;
use std::process::{Command, Output};

use conformance_tests::{emulator_binary, text, Sandbox, PIN};
use vpcd_bridge::private_pcscd::is_root;

fn emulator_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(emulator_binary())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// `reader-config --dir` with a relative directory writes absolute paths, and pcscd started
/// elsewhere with that configuration has the four readers `help reader-config` names.
#[test]
fn a_reader_configuration_from_a_relative_directory_loads_in_pcscd() {
    if !is_root() {
        eprintln!("skipped: pcscd runs in private namespaces only as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = emulator_in(
        dir.path(),
        &["reader-config", "--cards", "4", "--dir", "pcscd-config"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let conf = dir.path().join("pcscd-config/reader.conf.d");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        conf.display().to_string()
    );
    let entries = std::fs::read_to_string(conf.join("vpcd")).unwrap();
    let libs: Vec<&str> = entries
        .lines()
        .filter_map(|l| l.strip_prefix("LIBPATH "))
        .collect();
    assert_eq!(libs.len(), 2, "{entries}");
    for lib in &libs {
        assert!(
            Path::new(lib).is_absolute() && Path::new(lib).is_file(),
            "{lib}"
        );
    }
    // pcscd in namespaces of its own, run from / (not from the directory given).
    let script = format!(
        "set -e; mkdir -p /run/pcscd; mount -t tmpfs tmpfs /run/pcscd; ip link set lo up; cd /; \
         pcscd --foreground --config '{conf}' >/dev/null 2>&1 & \
         for i in $(seq 500); do [ \"$(opensc-tool -l 2>/dev/null | grep -c 'Virtual PCD')\" = 4 ] && break; sleep 0.02; done; \
         opensc-tool -l",
        conf = conf.display()
    );
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--mount", "--net"])
        .args(["--kill-child=SIGKILL", "sh", "-c", &script])
        .output()
        .unwrap();
    let listing = text(&out);
    let help = text(&emulator_in(dir.path(), &["help", "reader-config"]));
    for reader in [
        "Virtual PCD 00 00",
        "Virtual PCD 00 01",
        "Virtual PCD 1 00 00",
        "Virtual PCD 1 00 01",
    ] {
        assert!(listing.contains(reader), "{reader} not in:\n{listing}");
        assert!(help.contains(reader), "{reader} not in help:\n{help}");
    }
}

/// `help sandbox` names the third card's reader as pcscd does.
#[test]
fn help_sandbox_names_the_readers_as_pcscd_does() {
    let dir = tempfile::tempdir().unwrap();
    let help = text(&emulator_in(dir.path(), &["help", "sandbox"]));
    assert!(help.contains("\"Virtual PCD 1 00 00\""), "{help}");
    assert!(!help.contains("Virtual PCD 01 00"), "{help}");
}

/// A mistyped `sandbox --db` is refused with its path and makes no file; `--create` makes the
/// card there, initialised, and keeps it.
#[test]
fn a_sandbox_db_that_does_not_exist_is_made_only_with_create() {
    let dir = tempfile::tempdir().unwrap();
    let out = emulator_in(
        dir.path(),
        &["sandbox", "--db", "cadr.redb", "--", "pkcs11-tool", "-L"],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let path = dir.path().join("cadr.redb");
    assert!(
        said.contains(&format!(
            "sc-hsm-emulator: no card database at {} (give --create to make a new card there)",
            path.display()
        )),
        "{said}"
    );
    assert!(!path.exists());

    let out = emulator_in(
        dir.path(),
        &[
            "sandbox",
            "--db",
            "card.redb",
            "--create",
            "--",
            "pkcs11-tool",
            "-l",
            "--pin",
            PIN,
            "-L",
        ],
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("token initialized, PIN initialized"),
        "{said}"
    );
    assert!(dir.path().join("card.redb").is_file());
}

/// `--profile` with a card that exists is said at once, without `-v`, and the card is used as
/// it is.
#[test]
fn an_ignored_profile_is_said_without_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let init = emulator_in(
        dir.path(),
        &["init", "--db", "card.redb", "--label", "mine"],
    );
    assert!(init.status.success(), "{}", text(&init));
    let out = emulator_in(
        dir.path(),
        &[
            "sandbox",
            "--db",
            "card.redb",
            "--profile",
            "demo",
            "--",
            "pkcs15-tool",
            "-D",
        ],
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "sc-hsm-emulator: {} already holds a card: --profile demo makes only new cards, \
             this one is used as it is",
            dir.path().join("card.redb").display()
        )),
        "{said}"
    );
    assert!(said.contains("mine"), "{said}");
    assert!(!said.contains("Joe Doe"), "{said}");
}

/// `init` on a card with keys refuses without `--force`, naming what it would erase, and the
/// keys stay; with `--force` it says what it erased.
#[test]
fn init_erases_keys_only_with_force_and_says_what() {
    let mut sandbox = Sandbox::pcscd_only();
    let db = sandbox.db_path(0);
    let db = db.to_str().unwrap();
    let dir = sandbox.scratch().to_path_buf();
    assert!(emulator_in(&dir, &["init", "--db", db]).status.success());
    sandbox.insert_card_on(0, Path::new(db), &[]);
    sandbox.wait_for_card(0);
    sandbox.ok(
        "pkcs11-tool",
        &[
            "-l",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "07",
            "--label",
            "precious",
        ],
    );
    sandbox.stop_card(0, "TERM");

    let out = emulator_in(&dir, &["init", "--db", db]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "{db} holds 2 keys and objects; initialising erases them:"
        )),
        "{said}"
    );
    assert!(
        said.contains("CC01  key EC prime256v1 [precious]"),
        "{said}"
    );
    assert!(said.contains("Give --force"), "{said}");
    let status = text(&emulator_in(&dir, &["status", "--db", db]));
    assert!(status.contains("[precious]"), "the key is gone:\n{status}");

    let out = emulator_in(&dir, &["init", "--db", db, "--force"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("Erased 2 keys and objects:"), "{said}");
    assert!(
        said.contains("CC01  key EC prime256v1 [precious]"),
        "{said}"
    );
    let status = text(&emulator_in(&dir, &["status", "--db", db]));
    assert!(!status.contains("precious"), "{status}");
    // A fresh card has nothing to erase: no --force needed.
    assert!(emulator_in(&dir, &["init", "--db", db]).status.success());
}

/// A text file or a directory given as a card database: "not a card database", from every
/// subcommand that opens one, and the file is left as it was.
#[test]
fn a_text_file_or_a_directory_is_not_a_card_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "my notes\n").unwrap();
    std::fs::create_dir(dir.path().join("cards")).unwrap();
    for db in ["notes.txt", "cards"] {
        for args in [
            vec!["status", "--db", db],
            vec!["export", "--db", db, "--out", "x.snapshot"],
            vec!["init", "--db", db],
            vec!["sandbox", "--db", db, "--", "true"],
        ] {
            let out = emulator_in(dir.path(), &args);
            let said = text(&out);
            assert!(!out.status.success(), "{args:?}: {said}");
            assert!(
                said.contains(db) && said.contains("not a card database"),
                "{args:?}: {said}"
            );
            assert!(!said.contains("damaged"), "{args:?}: {said}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "my notes\n"
    );
    // Nothing but what the test made.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["cards", "notes.txt"]);
}
