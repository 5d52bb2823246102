//! The card alone, in process: each operation through `Card::transmit` beside the bare crypto
//! call it wraps, so the card's own overhead shows as a ratio. The card keeps its state in a
//! real redb file (commits included where the command makes one).
//!
//!     cargo bench -p sc-hsm-emulator-card --bench card

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use emulator::apdu::extended;
use emulator::crypto::ec::Curve;
use emulator::{apdu::tlv, crypto::cvc, tools::hex, Card, RedbStore};
use rsa::traits::PublicKeyParts;

const SELECT: &str = "00A404000BE82B0601040181C31F020100";
const VERIFY: &str = "0020008106363438323139";

fn ok(card: &mut Card, apdu: &[u8]) -> Vec<u8> {
    let r = card.transmit(apdu);
    assert_eq!(&r[r.len() - 2..], &[0x90, 0x00], "{}", hex::encode(apdu));
    r[..r.len() - 2].to_vec()
}

/// A logged-in card in a redb file, with an RSA-2048 key (1), P-256 (2), P-384 (3) and AES-256
/// (4) keys.
fn card(dir: &std::path::Path) -> Card {
    let mut card = Card::open(Box::new(RedbStore::open(&dir.join("card.redb")).unwrap())).unwrap();
    ok(&mut card, &hex::decode(SELECT).unwrap());
    ok(
        &mut card,
        &hex::decode("8050000019800200018106363438323139820835373632313838309101 03").unwrap(),
    );
    ok(&mut card, &hex::decode(VERIFY).unwrap());
    for (id, template) in [
        (1u8, cvc::rsa_key_template(2048)),
        (2, cvc::ec_key_template(Curve::Secp256r1)),
        (3, cvc::ec_key_template(Curve::Secp384r1)),
    ] {
        ok(
            &mut card,
            &extended(
                [0x00, 0x46, id, 0x00],
                &cvc::generate_request(b"UTCA00001", &template, b"ZZEM000000000001"),
            ),
        );
    }
    ok(&mut card, &[0x00, 0x48, 0x04, 0xB2]);
    card
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut card = card(dir.path());
    let hash32 = [0x5Au8; 32];
    let hash48 = [0x5Au8; 48];
    let info = [
        emulator::crypto::hash::Hash::Sha256.digest_info_prefix(),
        &hash32,
    ]
    .concat();
    let rsa_key = match &card.state().keys[&1].material {
        emulator::model::key::KeyMaterial::Rsa(k) => (**k).clone(),
        _ => unreachable!(),
    };
    let scalar = |id: u8, card: &Card| match &card.state().keys[&id].material {
        emulator::model::key::KeyMaterial::Ec { scalar, .. } => scalar.to_vec(),
        _ => unreachable!(),
    };
    let (p256, p384) = (scalar(2, &card), scalar(3, &card));
    let peer = Curve::Secp256r1
        .public_point(&Curve::Secp256r1.generate(&mut *emulator::crypto::rng::system()))
        .unwrap();
    let aes_key = match &card.state().keys[&4].material {
        emulator::model::key::KeyMaterial::Aes(k) => k.clone(),
        _ => unreachable!(),
    };
    let kib = [0xA5u8; 1024];
    let block = {
        let mut b = vec![0u8; 256];
        b[1] = 0x02;
        b[2..].fill(0x33);
        b
    };

    let mut g = c.benchmark_group("card");
    g.sample_size(30);
    let status = hex::decode("00200081").unwrap();
    g.bench_function("VERIFY status query (parse + dispatch)", |b| {
        b.iter(|| ok(&mut card, &status))
    });
    let verify = hex::decode(VERIFY).unwrap();
    g.bench_function("VERIFY right", |b| b.iter(|| ok(&mut card, &verify)));
    let wrong = hex::decode("0020008106303030303030").unwrap();
    g.bench_function("VERIFY wrong, then right", |b| {
        b.iter(|| {
            card.transmit(&wrong);
            ok(&mut card, &verify)
        })
    });
    let sign_p256 = extended([0x80, 0x68, 2, 0x70], &hash32);
    g.bench_function("SIGN ECDSA P-256", |b| b.iter(|| ok(&mut card, &sign_p256)));
    let sign_p384 = extended([0x80, 0x68, 3, 0x70], &hash48);
    // The same signature with the data trace on: every field decoded, the text and JSON forms
    // made (what `--trace-data` and `--trace-data-json` write, minus the file).
    card.set_data_tracer(Some(Box::new(|e: &emulator::DataTraceEvent| {
        std::hint::black_box((e.to_text(false), e.to_json()));
    })));
    g.bench_function("SIGN ECDSA P-256, --trace-data on", |b| {
        b.iter(|| ok(&mut card, &sign_p256))
    });
    card.set_data_tracer(None);
    g.bench_function("SIGN ECDSA P-384", |b| b.iter(|| ok(&mut card, &sign_p384)));
    let sign_rsa = extended([0x80, 0x68, 1, 0x30], &info);
    g.bench_function("SIGN RSA-2048 PKCS#1", |b| {
        b.iter(|| ok(&mut card, &sign_rsa))
    });
    let decipher = extended([0x80, 0x62, 1, 0x21], &block);
    g.bench_function("DECIPHER RSA-2048 raw", |b| {
        b.iter(|| ok(&mut card, &decipher))
    });
    let ecdh = extended([0x80, 0x62, 2, 0x80], &peer);
    g.bench_function("ECDH P-256", |b| b.iter(|| ok(&mut card, &ecdh)));
    let gen_ec = extended(
        [0x00, 0x46, 9, 0x00],
        &cvc::generate_request(
            b"UTCA00001",
            &cvc::ec_key_template(Curve::Secp256r1),
            b"ZZEM000000000001",
        ),
    );
    g.bench_function("GENERATE EC P-256", |b| b.iter(|| ok(&mut card, &gen_ec)));
    let mut update = vec![0x54, 0x02, 0x00, 0x00];
    tlv::write(&mut update, 0x53, &[0x30; 2048]);
    ok(&mut card, &extended([0x00, 0xD7, 0xCA, 0x01], &update));
    // Le = 2048: exactly the file, answered with 9000.
    let read = [
        0x00, 0xB1, 0xCA, 0x01, 0x00, 0x00, 0x04, 0x54, 0x02, 0x00, 0x00, 0x08, 0x00,
    ];
    g.bench_function("READ BINARY 2 KB", |b| b.iter(|| ok(&mut card, &read)));
    for i in 0..200u16 {
        let mut data = vec![0x54, 0x02, 0x00, 0x00];
        tlv::write(&mut data, 0x53, b"x");
        let [hi, lo] = (0xCF00 + (i % 200)).to_be_bytes();
        ok(&mut card, &extended([0x00, 0xD7, hi, lo], &data));
    }
    let enumerate = extended([0x80, 0x58, 0x00, 0x00], &[]);
    g.bench_function("ENUMERATE 200+ objects", |b| {
        b.iter(|| ok(&mut card, &enumerate))
    });
    g.sample_size(10);
    let gen_rsa = extended(
        [0x00, 0x46, 10, 0x00],
        &cvc::generate_request(
            b"UTCA00001",
            &cvc::rsa_key_template(2048),
            b"ZZEM000000000001",
        ),
    );
    g.bench_function("GENERATE RSA-2048", |b| b.iter(|| ok(&mut card, &gen_rsa)));
    g.sample_size(30);
    let cbc = extended([0x80, 0x78, 0x04, 0x10], &kib);
    g.bench_function("CIPHER SYMMETRIC AES-256-CBC 1 KiB", |b| {
        b.iter(|| ok(&mut card, &cbc))
    });
    let cmac = extended([0x80, 0x78, 0x04, 0x18], &kib);
    g.bench_function("CIPHER SYMMETRIC AES-256-CMAC 1 KiB", |b| {
        b.iter(|| ok(&mut card, &cmac))
    });

    // Trust between cards: two cards of one PKI.
    let pki = emulator::model::pki::Pki::from_seed(1).expect("the PKI of seed 1");
    let issued = |pki| {
        Card::open_issued(Box::new(emulator::MemoryStore::default()), None, Some(pki)).unwrap()
    };
    let (mut verifier, peer_card) = (issued(&pki), issued(&pki));
    ok(&mut verifier, &hex::decode(SELECT).unwrap());
    let chain = peer_card.state().files[&0x2F02].data.clone();
    let (device, rest) = cvc::decode(&chain).unwrap();
    let device_tlv = &chain[..chain.len() - rest.len()];
    let mse = |chr: &[u8]| extended([0x00, 0x22, 0x81, 0xB6], &tlv::encode(0x83, chr));
    let (select_root, select_issuer) =
        (mse(pki.root.chr.as_bytes()), mse(pki.issuer.chr.as_bytes()));
    let (verify_issuer, verify_device) = (
        extended([0x00, 0x2A, 0x00, 0xBE], rest),
        extended([0x00, 0x2A, 0x00, 0xBE], device_tlv),
    );
    g.bench_function(
        "MSE 81 B6 + PSO VERIFY CERTIFICATE, issuer and device",
        |b| {
            b.iter(|| {
                ok(&mut verifier, &select_root);
                ok(&mut verifier, &verify_issuer);
                ok(&mut verifier, &select_issuer);
                ok(&mut verifier, &verify_device);
            })
        },
    );
    let point = tlv::find(device.public_key, 0x86).unwrap();
    let set_at = extended(
        [0x00, 0x22, 0x41, 0xA4],
        &tlv::encode(0x80, &hex::decode("04007F00070202030202").unwrap()),
    );
    let general = extended(
        [0x00, 0x86, 0x00, 0x00],
        &tlv::encode(0x7C, &tlv::encode(0x80, point)),
    );
    g.bench_function(
        "chip authentication (MSE 41 A4 + GENERAL AUTHENTICATE)",
        |b| {
            b.iter(|| {
                ok(&mut verifier, &set_at);
                ok(&mut verifier, &general);
            })
        },
    );
    g.finish();

    let mut g = c.benchmark_group("bare");
    g.sample_size(30);
    g.bench_function("ECDSA P-256 sign_prehash", |b| {
        b.iter(|| Curve::Secp256r1.sign_prehash(&p256, &hash32).unwrap())
    });
    g.bench_function("ECDSA P-384 sign_prehash", |b| {
        b.iter(|| Curve::Secp384r1.sign_prehash(&p384, &hash48).unwrap())
    });
    g.bench_function("RSA-2048 PKCS#1 sign", |b| {
        b.iter(|| {
            rsa_key
                .sign(rsa::Pkcs1v15Sign::new_unprefixed(), &info)
                .unwrap()
        })
    });
    let c_block = rsa::BoxedUint::from_be_slice_vartime(&block);
    g.bench_function("RSA-2048 raw decrypt", |b| {
        b.iter(|| {
            rsa::hazmat::rsa_decrypt_and_check(
                &rsa_key,
                Some(&mut emulator::crypto::rng::Adapter(
                    &mut *emulator::crypto::rng::system(),
                )),
                &c_block,
            )
            .unwrap()
        })
    });
    g.bench_function("ECDH P-256", |b| {
        b.iter(|| Curve::Secp256r1.ecdh(&p256, &peer).unwrap())
    });
    g.bench_function("EC P-256 key generation", |b| {
        b.iter_batched(
            emulator::crypto::rng::system,
            |mut rng| {
                Curve::Secp256r1
                    .public_point(&Curve::Secp256r1.generate(&mut *rng))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("AES-256-CBC encrypt 1 KiB", |b| {
        b.iter(|| emulator::crypto::aes::cbc_encrypt(&aes_key, &kib).unwrap())
    });
    g.bench_function("AES-256-CMAC 1 KiB", |b| {
        b.iter(|| emulator::crypto::aes::cmac(&aes_key, &kib))
    });
    g.sample_size(10);
    g.bench_function("RSA-2048 key generation", |b| {
        b.iter(|| {
            rsa::PrivateKey::new(
                &mut emulator::crypto::rng::Adapter(&mut *emulator::crypto::rng::system()),
                2048,
            )
            .unwrap()
            .size()
        })
    });
    g.finish();
}

criterion_group!(card_benches, benches);
criterion_main!(card_benches);
