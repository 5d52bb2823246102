//! The full-stack benchmark: the emulator through pcscd + vpcd + OpenSC's PKCS#11 module,
//! beside SoftHSM2 (in process: the ceiling for a PKCS#11 operation) and a trivial card that
//! answers `90 00` at once through the same pcscd + vpcd (the transport floor), all measured in
//! one run with one PKCS#11 client. Prints a table with the ratios.
//!
//!     cargo run -p conformance-tests --bin stack-bench        (as root; needs softhsm2)

use std::ffi::CString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use conformance_tests::{
    emulator_binary, image_exists, softhsm_token, Container, Sandbox, PIN, SOFTHSM,
};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use emulator::model::pin::PinRef;
use emulator::tools::host;

const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
const P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];

/// A vpcd card that answers every APDU with 90 00 at once (the transport floor).
fn trivial_card(endpoint: &str) {
    use tokio::io::AsyncWriteExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        loop {
            let Ok(mut stream) = tokio::net::TcpStream::connect(endpoint).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            stream.set_nodelay(true).unwrap();
            let quickack = |s: &tokio::net::TcpStream| {
                let _ = socket2::SockRef::from(s).set_tcp_quickack(true);
            };
            while let Ok(Some(payload)) = vpcd_bridge::frame::read(&mut stream, quickack).await {
                let answer: &[u8] = match payload.as_slice() {
                    [0x04] => &[0x3B, 0x80, 0x80, 0x01, 0x01],
                    [_] => continue,
                    _ => &[0x90, 0x00],
                };
                if stream
                    .write_all(&vpcd_bridge::frame::encode(answer).unwrap())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    });
}

/// Mean GET CHALLENGE round trips of the plain binary's card (slot 0) and of a card served by
/// the container image (slot 2), measured one after the other; `None` without the image.
fn image_cost(sandbox: &Sandbox, select: &[u8]) -> Option<(Duration, Duration)> {
    if !vpcd_bridge::private_pcscd::is_root() || !image_exists() {
        return None;
    }
    let _container = Container::start(
        "sc-hsm-stack-bench",
        &sandbox.net_namespace(),
        &sandbox.scratch().join("image-volume"),
        &[("VPCD", "127.0.0.1:35965")],
        &[],
    );
    sandbox.wait_for_card(2);
    let challenge: &[u8] = &[0x00, 0x84, 0x00, 0x00, 0x08];
    let plain = apdu_round_trip("Virtual PCD 00 00", &[select, challenge], 3000);
    let image = apdu_round_trip("Virtual PCD 1 00 00", &[select, challenge], 3000);
    Some((plain, image))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Operations per second of `f` over `n` runs.
fn rate(n: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

/// The bare crypto calls the card wraps, in this process: seconds per operation for ECDSA
/// P-256, ECDSA P-384 and RSA-2048 PKCS#1 v1.5 sign.
fn bare_crypto(n: u32) -> [f64; 3] {
    use emulator::crypto::ec::Curve;
    let mut rng = emulator::crypto::rng::system();
    let per_op = |rate: f64| 1.0 / rate;
    let p256 = Curve::Secp256r1.generate(&mut *rng);
    let p384 = Curve::Secp384r1.generate(&mut *rng);
    let ecdsa_p256 = rate(n, || {
        drop(Curve::Secp256r1.sign_prehash(&p256, &[0x42; 32]).unwrap())
    });
    let ecdsa_p384 = rate(n, || {
        drop(Curve::Secp384r1.sign_prehash(&p384, &[0x42; 48]).unwrap())
    });
    let key = rsa::PrivateKey::new(&mut emulator::crypto::rng::Adapter(&mut *rng), 2048).unwrap();
    let info = [
        emulator::crypto::hash::Hash::Sha256.digest_info_prefix(),
        &[0x42; 32],
    ]
    .concat();
    let rsa_sign = rate(n / 2, || {
        drop(
            key.sign(rsa::Pkcs1v15Sign::new_unprefixed(), &info)
                .unwrap(),
        )
    });
    [per_op(ecdsa_p256), per_op(ecdsa_p384), per_op(rsa_sign)]
}

/// Seconds per AES-CBC encryption of 1 KiB and per AES-CMAC of 1 KiB with an AES-256 key, as
/// bare calls in this process (the code the card runs for CIPHER SYMMETRIC).
fn bare_aes(n: u32) -> [f64; 2] {
    use emulator::crypto::aes;
    let key = aes::AesKey::from_slice(&[0x5Au8; 32]).expect("an AES-256 key");
    let data = [0xA5u8; 1024];
    let cbc = rate(n * 10, || {
        drop(std::hint::black_box(aes::cbc_encrypt(&key, &data).unwrap()))
    });
    let cmac = rate(n * 10, || {
        std::hint::black_box(aes::cmac(&key, &data));
    });
    [1.0 / cbc, 1.0 / cmac]
}

/// CIPHER SYMMETRIC `80 78 <kid> <alg>` with 1 KiB of data in one extended APDU, Le 65536.
fn cipher_symmetric(kid: u8, algorithm: u8) -> Vec<u8> {
    let mut apdu = vec![0x80, 0x78, kid, algorithm, 0x00, 0x04, 0x00];
    apdu.extend_from_slice(&[0xA5; 1024]);
    apdu.extend_from_slice(&[0x00, 0x00]);
    apdu
}

/// Writes the file `data` to the card as the public data object "obj`i`".
fn write_data_object(data: &Path, i: u32) {
    let mut write = Command::new("pkcs11-tool");
    write
        .args(["-l", "--pin", PIN, "--write-object"])
        .arg(data)
        .args(["--type", "data", "--label", &format!("obj{i}")]);
    must(&mut write, &format!("writing obj{i}"));
}

/// Runs `command`; panics with its error output unless it succeeds.
fn must(command: &mut Command, what: &str) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mean round trip of `apdu` to the card in `reader`.
fn apdu_round_trip(reader: &str, apdus: &[&[u8]], n: u32) -> Duration {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let card = ctx
        .connect(
            &CString::new(reader).unwrap(),
            pcsc::ShareMode::Shared,
            pcsc::Protocols::ANY,
        )
        .unwrap();
    let mut buf = vec![0u8; 4096];
    for apdu in &apdus[..apdus.len() - 1] {
        card.transmit(apdu, &mut buf).unwrap();
    }
    let last = apdus[apdus.len() - 1];
    let start = Instant::now();
    for _ in 0..n {
        let r = card.transmit(last, &mut buf).unwrap();
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
    }
    start.elapsed() / n
}

struct Figures {
    login: Duration,
    random: f64,
    keygen_ec: Duration,
    keygen_rsa: Duration,
    ecdsa_p256: f64,
    ecdsa_p384: f64,
    rsa_sign: f64,
    rsa_decrypt: f64,
    ecdh: f64,
}

fn key_pair(session: &Session, ec: Option<&[u8]>, id: u8) -> (ObjectHandle, ObjectHandle) {
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
        Attribute::Decrypt(ec.is_none()),
        Attribute::Derive(ec.is_some()),
        Attribute::Id(vec![id]),
    ];
    match ec {
        Some(params) => session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::EcParams(params.to_vec()),
                    Attribute::Verify(true),
                    Attribute::Id(vec![id]),
                ],
                &private,
            )
            .unwrap(),
        None => session
            .generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::ModulusBits(2048.into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                    Attribute::Verify(true),
                    Attribute::Encrypt(true),
                    Attribute::Id(vec![id]),
                ],
                &private,
            )
            .unwrap(),
    }
}

fn measure(module: &str, label: &str, n: u32) -> Figures {
    let pkcs11 = Pkcs11::new(module).unwrap();
    pkcs11
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    let session = pkcs11.open_rw_session(slot).unwrap();
    let pin = AuthPin::from(PIN.to_string());
    let login = median(
        (0..9)
            .map(|_| {
                let start = Instant::now();
                session.login(UserType::User, Some(&pin)).unwrap();
                let t = start.elapsed();
                session.logout().unwrap();
                t
            })
            .collect(),
    );
    session.login(UserType::User, Some(&pin)).unwrap();
    let random = rate(n, || drop(session.generate_random_vec(32).unwrap()));
    let mut ids = 0x40u8;
    let mut next_id = || {
        ids += 1;
        ids
    };
    let keygen_ec = median(
        (0..5)
            .map(|_| {
                let start = Instant::now();
                key_pair(&session, Some(P256), next_id());
                start.elapsed()
            })
            .collect(),
    );
    let keygen_rsa = median(
        (0..3)
            .map(|_| {
                let start = Instant::now();
                key_pair(&session, None, next_id());
                start.elapsed()
            })
            .collect(),
    );
    let (p256_pub, p256) = key_pair(&session, Some(P256), next_id());
    let (_, p384) = key_pair(&session, Some(P384), next_id());
    let (rsa_pub, rsa) = key_pair(&session, None, next_id());
    let hash32 = [0x42u8; 32];
    let ecdsa_p256 = rate(n, || {
        drop(session.sign(&Mechanism::Ecdsa, p256, &hash32).unwrap())
    });
    let ecdsa_p384 = rate(n, || {
        drop(
            session
                .sign(&Mechanism::Ecdsa, p384, &[0x42u8; 48])
                .unwrap(),
        )
    });
    let rsa_sign = rate(n / 2, || {
        drop(
            session
                .sign(&Mechanism::Sha256RsaPkcs, rsa, b"message")
                .unwrap(),
        )
    });
    // Encrypted on the host with the public key (OpenSC does not offer C_Encrypt).
    let attrs = session
        .get_attributes(
            rsa_pub,
            &[
                cryptoki::object::AttributeType::Modulus,
                cryptoki::object::AttributeType::PublicExponent,
            ],
        )
        .unwrap();
    let (Some(Attribute::Modulus(modulus)), Some(Attribute::PublicExponent(exponent))) =
        (attrs.first().cloned(), attrs.get(1).cloned())
    else {
        panic!("no RSA public key")
    };
    let public = rsa::PublicKey::new(
        rsa::BoxedUint::from_be_slice_vartime(&modulus),
        rsa::BoxedUint::from_be_slice_vartime(&exponent),
    )
    .unwrap();
    let secret = public
        .encrypt(
            &mut rsa::rand_core::UnwrapErr(getrandom::SysRng),
            rsa::Pkcs1v15Encrypt,
            b"secret",
        )
        .unwrap();
    let rsa_decrypt = rate(n / 2, || {
        drop(session.decrypt(&Mechanism::RsaPkcs, rsa, &secret).unwrap())
    });
    let point = session
        .get_attributes(p256_pub, &[cryptoki::object::AttributeType::EcPoint])
        .unwrap();
    let Some(Attribute::EcPoint(point)) = point.first().cloned() else {
        panic!("no EC point")
    };
    // CKA_EC_POINT is a DER OCTET STRING; ECDH takes the raw point.
    let raw = point[2..].to_vec();
    let ecdh = rate(n, || {
        let params = Ecdh1DeriveParams::new(EcKdf::null(), &raw);
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(cryptoki::object::KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::ValueLen(32.into()),
        ];
        let key = session
            .derive_key(&Mechanism::Ecdh1Derive(params), p256, &template)
            .unwrap();
        let _ = session.destroy_object(key);
    });
    eprintln!("measured {label}");
    Figures {
        login,
        random,
        keygen_ec,
        keygen_rsa,
        ecdsa_p256,
        ecdsa_p384,
        rsa_sign,
        rsa_decrypt,
        ecdh,
    }
}

fn time_tool(program: &str, args: &[&str]) -> Duration {
    median(
        (0..5)
            .map(|_| {
                let start = Instant::now();
                let out = Command::new(program).args(args).output().unwrap();
                assert!(out.status.success());
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("trivial-card") {
        trivial_card(&args[2]);
        return;
    }
    let n: u32 = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);

    // SoftHSM2 first, in its own token directory.
    let softhsm_dir = tempfile::tempdir().unwrap();
    std::env::set_var("SOFTHSM2_CONF", softhsm_token(softhsm_dir.path()));

    // Slots 0 and 1: the emulator and the trivial card; slot 2: the container image's card.
    let mut sandbox = Sandbox::with_slots(3);
    let db = sandbox.db_path(0);
    let init = Command::new(emulator_binary())
        .args(["init", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(init.status.success());
    // Without -v: the bench measures the card, not its per-APDU debug log.
    let started = Instant::now();
    sandbox.insert_card_with(0, &[]);
    let startup = started.elapsed();
    let me = std::env::current_exe().unwrap();
    sandbox.spawn_inside(1, &me, &["trivial-card", "127.0.0.1:35964"]);
    sandbox.wait_for_card(1);
    std::env::set_var(
        "PCSCLITE_CSOCK_NAME",
        sandbox.scratch().join("run/pcscd.comm"),
    );

    let select = &host::select_application();
    let verify = &host::verify(PinRef::User, PIN.as_bytes());
    let floor = apdu_round_trip(
        "Virtual PCD 00 01",
        &[&[0x00, 0x84, 0x00, 0x00, 0x08]],
        3000,
    );
    let card_status = apdu_round_trip(
        "Virtual PCD 00 00",
        &[select, verify, &[0x00, 0x20, 0x00, 0x81]],
        3000,
    );

    let image = image_cost(&sandbox, select);

    let bare = bare_crypto(n);
    let emulator = measure(OPENSC, "emulator via OpenSC", n);
    let softhsm = measure(SOFTHSM, "SoftHSM2", n);

    let tools_1 = (
        time_tool("pkcs11-tool", &["-L"]),
        time_tool("pkcs15-tool", &["-D"]),
    );
    let dir = sandbox.scratch().to_path_buf();
    let data = dir.join("data.bin");
    std::fs::write(&data, b"object").unwrap();
    for i in 0..50 {
        write_data_object(&data, i);
    }
    let tools_50 = (
        time_tool("pkcs11-tool", &["-L"]),
        time_tool("pkcs15-tool", &["-D"]),
    );

    // Memory with 200 objects, and the database's growth per RSA-2048 key.
    let db_before = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    for i in 0..4 {
        let out = Command::new("pkcs11-tool")
            .args([
                "-l",
                "--pin",
                PIN,
                "--keypairgen",
                "--key-type",
                "rsa:2048",
                "--id",
                &format!("{:02X}", 0x90 + i),
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let db_after = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    for i in 50..190 {
        write_data_object(&data, i);
    }
    let rss = sandbox
        .card_pid(0)
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
        })
        .unwrap_or_default();
    // The running card holds its database's lock: count the objects in a copy.
    let copy = dir.join("copy.redb");
    std::fs::copy(&db, &copy).unwrap();
    let started = Instant::now();
    let status = Command::new(emulator_binary())
        .args(["status", "--db", copy.to_str().unwrap()])
        .output()
        .unwrap();
    let status_time = started.elapsed();
    let objects = String::from_utf8_lossy(&status.stdout)
        .lines()
        .filter(|l| l.starts_with("  ") && l.len() > 6 && l.as_bytes()[6] == b' ')
        .count();

    // AES through pcscd + vpcd as raw APDUs (OpenSC 0.23 has no AES for this card): a new
    // AES-256 key in a key reference nobody else uses, then CBC encrypt and CMAC of 1 KiB.
    const AES_KID: u8 = 0x7E;
    let generate_aes = &[0x00, 0x48, AES_KID, 0xB2];
    let aes_cbc = apdu_round_trip(
        "Virtual PCD 00 00",
        &[
            select,
            verify,
            generate_aes,
            &cipher_symmetric(AES_KID, 0x10),
        ],
        n * 3,
    );
    let aes_cmac = apdu_round_trip(
        "Virtual PCD 00 00",
        &[select, verify, &cipher_symmetric(AES_KID, 0x18)],
        n * 3,
    );
    let bare_aes = bare_aes(n);
    // The floor again, now: the machine's speed drifts over a run of several minutes.
    let floor_now = apdu_round_trip(
        "Virtual PCD 00 01",
        &[&[0x00, 0x84, 0x00, 0x00, 0x08]],
        3000,
    );

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\nTransport floor (trivial card through pcscd + vpcd): {:.0} us per APDU ({:.0} APDU/s)",
        us(floor),
        1e6 / us(floor)
    );
    println!("Emulator, VERIFY status query through pcscd + vpcd:   {:.0} us per APDU (card side about {:.1} us)", us(card_status), us(card_status) - us(floor));
    match image {
        Some((plain, image)) => println!(
            "Container image (podman, runc) beside the plain binary, SELECT + GET CHALLENGE: {:.0} us per APDU in the container, {:.0} us plain ({:+.0} us)",
            us(image),
            us(plain),
            us(image) - us(plain)
        ),
        None => println!("Container image: not measured (needs root and the image: scripts/build-image)"),
    }
    // No card can beat one round trip through pcscd + vpcd plus the crypto itself.
    let bound = |bare: f64| 1.0 / (floor.as_secs_f64() + bare);
    println!(
        "Bare crypto in process: ECDSA P-256 {:.0} us, P-384 {:.0} us, RSA-2048 sign {:.0} us",
        bare[0] * 1e6,
        bare[1] * 1e6,
        bare[2] * 1e6
    );
    println!(
        "\nbound = 1 / (transport floor + bare crypto): the rate of a card with no overhead of its own behind a PKCS#11 module that costs nothing."
    );
    println!("\n| operation | emulator via OpenSC | bound | emulator / bound | SoftHSM2 | emulator / SoftHSM2 |");
    println!("|---|---|---|---|---|---|");
    let bound_row = |name: &str, a: f64, bare: f64, b: f64| {
        let c = bound(bare);
        println!(
            "| {name} | {a:.0} ops/s | {c:.0} ops/s | {:.0}% | {b:.0} ops/s | {:.0}% |",
            100.0 * a / c,
            100.0 * a / b
        )
    };
    bound_row(
        "ECDSA P-256 sign",
        emulator.ecdsa_p256,
        bare[0],
        softhsm.ecdsa_p256,
    );
    bound_row(
        "ECDSA P-384 sign",
        emulator.ecdsa_p384,
        bare[1],
        softhsm.ecdsa_p384,
    );
    bound_row(
        "RSA-2048 sign (SHA256-RSA-PKCS)",
        emulator.rsa_sign,
        bare[2],
        softhsm.rsa_sign,
    );
    let row = |name: &str, a: f64, b: f64, unit: &str| {
        println!(
            "| {name} | {a:.0} {unit} | | | {b:.0} {unit} | {:.0}% |",
            100.0 * a / b
        )
    };
    row(
        "RSA-2048 decrypt (RSA-PKCS)",
        emulator.rsa_decrypt,
        softhsm.rsa_decrypt,
        "ops/s",
    );
    row("ECDH P-256", emulator.ecdh, softhsm.ecdh, "ops/s");
    row(
        "GenerateRandom 32 bytes",
        emulator.random,
        softhsm.random,
        "ops/s",
    );
    println!(
        "| C_Login (median) | {:.2} ms | | | {:.2} ms | |",
        ms(emulator.login),
        ms(softhsm.login)
    );
    println!(
        "| keygen EC P-256 (median) | {:.1} ms | | | {:.1} ms | |",
        ms(emulator.keygen_ec),
        ms(softhsm.keygen_ec)
    );
    println!(
        "| keygen RSA-2048 (median) | {:.0} ms | | | {:.0} ms | |",
        ms(emulator.keygen_rsa),
        ms(softhsm.keygen_rsa)
    );
    println!(
        "\nAES-256 through pcscd + vpcd (raw CIPHER SYMMETRIC, 1 KiB in one extended APDU): CBC encrypt {:.0} us ({:.0} ops/s), CMAC {:.0} us ({:.0} ops/s); bare in process: CBC {:.1} us, CMAC {:.1} us; transport floor measured beside them {:.0} us",
        us(aes_cbc),
        1e6 / us(aes_cbc),
        us(aes_cmac),
        1e6 / us(aes_cmac),
        bare_aes[0] * 1e6,
        bare_aes[1] * 1e6,
        us(floor_now)
    );
    println!(
        "\npkcs11-tool -L: {:.0} ms with 1 key object, {:.0} ms with 50 data objects",
        ms(tools_1.0),
        ms(tools_50.0)
    );
    println!(
        "pkcs15-tool -D: {:.0} ms with 1 key object, {:.0} ms with 50 data objects",
        ms(tools_1.1),
        ms(tools_50.1)
    );
    println!("Emulator RSS with {objects} objects (files and keys) on the card: {rss}");
    println!(
        "Startup: card answering in pcscd {:.0} ms after `sc-hsm-emulator run` starts (polling with opensc-tool included); `sc-hsm-emulator status` on that database {:.0} ms",
        ms(startup),
        ms(status_time)
    );
    println!(
        "Database growth per RSA-2048 key (key, CV request, PRKD): {} bytes",
        db_after.saturating_sub(db_before) / 4
    );
}
