//! Records decode to what was encoded, never keep a clear PIN, refuse garbage; and the stored
//! format of every released version (`fixtures/store/`) still decodes to the same values.

use super::config::{decode_config, decode_identity, decode_seed, encode_config, encode_identity};
use super::file::{decode_file, encode_file};
use super::*;
use crate::apdu::tlv;
use crate::crypto::ec::Curve;
use crate::crypto::rng;
use crate::crypto::rsa as rsa_key;
use crate::model::key::{KeyMaterial, KeyPolicy, KeyRecord};
use crate::model::pin::PinRecord;
use crate::tools::hex;

#[test]
fn a_pin_record_does_not_keep_the_clear_pin() {
    let p = PinRecord::new(b"648219", 3, [7; 16]);
    let enc = encode_pin(&p);
    assert!(!enc.windows(6).any(|w| w == b"648219"));
    assert_eq!(decode_pin(&enc), Some(p));
}

#[test]
fn pin_records_refuse_garbage() {
    assert_eq!(decode_pin(&[]), None);
    assert_eq!(decode_pin(&[2, 3, 3, 6]), None);
    assert_eq!(decode_pin(&[1, 3, 3, 6, 0]), None);
}

#[test]
fn dkek_states_round_trip() {
    let pending = Dkek::awaiting(2).with_share(&[0x11; 32]).unwrap();
    let ready = pending.with_share(&[0x22; 32]).unwrap();
    for dkek in [Dkek::Absent, pending, ready] {
        assert_eq!(decode_dkek(&encode_dkek(&dkek)), Some(dkek));
    }
}

#[test]
fn ec_key_round_trips_and_signs() {
    let mut rng = rng::system();
    let mut key = KeyRecord::generate_ec(Curve::BrainpoolP256r1, &mut *rng);
    key.policy = KeyPolicy {
        uses_left: Some(7),
        algorithms: Some(vec![0x70]),
        domain: None,
        wrapping_key: None,
    };
    let point = key.ec_public_point().unwrap();
    assert_eq!((point.len(), point[0]), (65, 0x04));
    let decoded = decode_key(&encode_key(&key)).unwrap();
    assert_eq!(decoded, key);
    assert_eq!(decoded.policy.uses_left, Some(7));
    assert_eq!(key.sign_ecdsa_sha256_plain(b"hello").unwrap().len(), 64);
    assert!(format!("{key:?}").contains("redacted"));
}

#[test]
fn rsa_key_round_trips() {
    use ::rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let mut rng = rng::system();
    let key = KeyRecord::generate_rsa(1024, &[1, 0, 1], &mut *rng).unwrap();
    let decoded = decode_key(&encode_key(&key)).unwrap();
    assert_eq!(decoded, key);
    let KeyMaterial::Rsa(k) = &decoded.material else {
        panic!("not RSA")
    };
    assert_eq!(k.size(), 128);
    let d = rsa_key::trimmed(k.d());
    assert!(!format!("{key:?}").contains(&hex::encode(&d)[..16]));
}

#[test]
fn key_records_refuse_garbage() {
    assert!(decode_key(&[]).is_none());
    assert!(decode_key(&[1, 0x01, 0x01, 0x0C]).is_none());
    assert!(decode_key(&[9]).is_none());
}

/// A file of `fixtures/store/v1`.
fn v1(name: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/store/v1/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `fixtures/store/v1/values.txt`: the expected values, by name.
fn v1_value(name: &str) -> String {
    let text = String::from_utf8(v1("values.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(" = "))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {name} in values.txt"))
}

#[test]
fn v1_pin_records_decode_to_their_values_and_encode_to_the_same_bytes() {
    let user = decode_pin(&v1("meta-pin-user.bin")).expect("user PIN record");
    assert_eq!((user.max_tries, user.tries_left, user.len()), (3, 2, 6));
    assert!(user.matches(b"648219") && !user.matches(b"648218"));
    assert_eq!(encode_pin(&user), v1("meta-pin-user.bin"));
    let so = decode_pin(&v1("meta-pin-so.bin")).expect("SO-PIN record");
    assert_eq!((so.max_tries, so.tries_left, so.len()), (15, 15, 8));
    assert!(so.matches(b"57621880") && !so.matches(b"57621881"));
    assert_eq!(encode_pin(&so), v1("meta-pin-so.bin"));
}

#[test]
fn v1_dkek_records_decode_to_their_values_and_encode_to_the_same_bytes() {
    let ready = decode_dkek(&v1("meta-dkek.bin")).expect("DKEK record");
    let Dkek::Ready { total: 1, value } = &ready else {
        panic!("not a DKEK ready from one share: {ready:?}")
    };
    assert_eq!(
        hex::encode(&value[..]),
        "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
    );
    assert_eq!(
        hex::encode(&crate::model::dkek::kcv(value)),
        v1_value("dkek.kcv")
    );
    let pending = decode_dkek(&v1("meta-dkek-pending.bin")).expect("pending DKEK");
    assert_eq!(
        pending,
        Dkek::Pending {
            total: 2,
            imported: 1,
            value: Zeroizing::new([0x3C; 32])
        }
    );
    let absent = decode_dkek(&v1("meta-dkek-absent.bin")).expect("absent DKEK");
    assert_eq!(absent, Dkek::Absent);
    for (dkek, file) in [
        (ready, "meta-dkek.bin"),
        (pending, "meta-dkek-pending.bin"),
        (absent, "meta-dkek-absent.bin"),
    ] {
        assert_eq!(*encode_dkek(&dkek), v1(file), "{file}");
    }
}

#[test]
fn v1_key_records_decode_to_their_values_and_encode_to_the_same_bytes() {
    use ::rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let ec = decode_key(&v1("key-01.bin")).expect("EC key record");
    let KeyMaterial::Ec { curve, scalar } = &ec.material else {
        panic!("key 01 is not an EC key")
    };
    assert_eq!(*curve, Curve::Secp256r1);
    assert_eq!(hex::encode(scalar), v1_value("p256.scalar"));
    assert_eq!(
        hex::encode(&ec.ec_public_point().unwrap()),
        v1_value("p256.point")
    );
    assert_eq!(
        ec.policy,
        KeyPolicy {
            uses_left: None,
            algorithms: Some(vec![0x70, 0x73]),
            domain: None,
            wrapping_key: None,
        }
    );
    assert_eq!(*encode_key(&ec), v1("key-01.bin"));

    let rsa = decode_key(&v1("key-02.bin")).expect("RSA key record");
    let KeyMaterial::Rsa(k) = &rsa.material else {
        panic!("key 02 is not an RSA key")
    };
    let big = |n: &::rsa::BoxedUint| hex::encode(&rsa_key::trimmed(n));
    assert_eq!(big(k.n().as_ref()), v1_value("rsa2048.n"));
    assert_eq!(
        u64::from_str_radix(&big(k.e()), 16).unwrap().to_string(),
        v1_value("rsa2048.e")
    );
    let mut primes: Vec<String> = k.primes().iter().map(|p| big(p.as_ref())).collect();
    primes.sort();
    let mut expected = vec![v1_value("rsa2048.p"), v1_value("rsa2048.q")];
    expected.sort();
    assert_eq!(primes, expected);
    assert_eq!(rsa.policy, KeyPolicy::default());
    assert_eq!(*encode_key(&rsa), v1("key-02.bin"));

    let device = decode_key(&v1("key-00.bin")).expect("device key record");
    let KeyMaterial::Ec { curve, .. } = &device.material else {
        panic!("the device key is not an EC key")
    };
    assert_eq!(*curve, Curve::BrainpoolP256r1);
    assert_eq!(*encode_key(&device), v1("key-00.bin"));
    // Its public point is the one the device certificate in 2F02 carries.
    let file = decode_file(&v1("file-2F02.bin")).expect("2F02 record");
    let (certificate, _) = crate::crypto::cvc::decode(&file.data).expect("device certificate");
    assert_eq!(
        tlv::find(certificate.public_key, 0x86),
        Some(&device.ec_public_point().unwrap()[..])
    );
}

#[test]
fn v1_card_records_decode_to_their_values_and_encode_to_the_same_bytes() {
    let identity = decode_identity(&v1("meta-identity.bin")).expect("identity record");
    assert_eq!(identity.device_chr, "ZZEM765922300000");
    assert_eq!(identity.serial(), "ZZEM7659223");
    let (root, rest) = crate::crypto::cvc::decode(&identity.root_certificate).expect("root");
    assert_eq!(
        (root.chr, root.car, rest),
        (&b"ZZEMSRCA00001"[..], &b"ZZEMSRCA00001"[..], &[][..])
    );
    assert_eq!(encode_identity(&identity), v1("meta-identity.bin"));

    let config = decode_config(&v1("meta-config.bin")).expect("config record");
    assert_eq!(config.options, 0x0001);
    assert_eq!(encode_config(config), v1("meta-config.bin"));
    assert_eq!(decode_seed(&v1("meta-seed.bin")), Some((1, 0)));
    assert_eq!(v1("meta-format.bin"), [version::RECORDS]);

    for (name, seq, content) in [
        (
            "file-2F03.bin",
            1,
            hex::decode("301302010080 0A 4669787475726520763103020520").unwrap(),
        ),
        ("file-CD01.bin", 2, b"a private data object".to_vec()),
        ("file-CF01.bin", 3, b"a public data object".to_vec()),
    ] {
        let file = decode_file(&v1(name)).expect(name);
        assert_eq!((file.seq, &file.data), (seq, &content), "{name}");
        assert_eq!(encode_file(&file), v1(name), "{name}");
    }
}

#[test]
fn a_v1_snapshot_and_a_v1_database_open_as_the_card_of_the_records() {
    let mut expected = Records::default();
    for (name, file) in [
        ("format", "meta-format.bin"),
        ("identity", "meta-identity.bin"),
        ("config", "meta-config.bin"),
        ("pin.user", "meta-pin-user.bin"),
        ("pin.so", "meta-pin-so.bin"),
        ("dkek", "meta-dkek.bin"),
        ("seed", "meta-seed.bin"),
    ] {
        expected.meta.insert(name.into(), v1(file));
    }
    for fid in [0x2F02u16, 0x2F03, 0xCD01, 0xCF01] {
        expected
            .files
            .insert(fid, v1(&format!("file-{fid:04X}.bin")));
    }
    for id in [0u8, 1, 2] {
        expected.keys.insert(id, v1(&format!("key-{id:02X}.bin")));
    }
    let snapshot = v1("snapshot.bin");
    let records = crate::store::snapshot::decode(&snapshot).expect("the v1 snapshot");
    assert_eq!(records, expected);
    assert_eq!(*crate::store::snapshot::encode(&records), snapshot);

    // The database file opens (a copy: opening writes) and holds the same card.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("card.redb");
    std::fs::write(&copy, v1("card.redb")).unwrap();
    let mut store = crate::store::RedbStore::open(&copy).expect("the v1 database opens");
    let state = crate::store::Store::load(&mut store).expect("the v1 database loads");
    assert_eq!(state, expected.to_state().unwrap());
    assert_eq!(state.keys.len(), 3);
    assert_eq!(state.user_pin.map(|p| p.tries_left), Some(2));
}

#[test]
fn a_v2_database_opens_as_the_card_of_the_v1_records() {
    let dir = tempfile::tempdir().unwrap();
    let v1_copy = dir.path().join("v1.redb");
    std::fs::write(&v1_copy, v1("card.redb")).unwrap();
    let v1_state = crate::store::RedbStore::read(&v1_copy).expect("v1 reads");
    let v2 = format!(
        "{}/../fixtures/store/v2/card.redb",
        env!("CARGO_MANIFEST_DIR")
    );
    let v2_state = crate::store::RedbStore::read(std::path::Path::new(&v2)).expect("v2 reads");
    assert_eq!(v2_state, v1_state);
    assert_eq!(v2_state.identity.unwrap().serial(), "ZZEM7659223");
}

fn v2(name: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/store/v2/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `fixtures/store/v2/values.txt`: the expected values, by name.
fn v2_value(name: &str) -> Vec<u8> {
    let text = String::from_utf8(v2("values.txt")).unwrap();
    let value = text
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {name} in values.txt"));
    hex::decode(&value).unwrap()
}

#[test]
fn v2_records_decode_to_their_values_and_encode_to_the_same_bytes() {
    let config = decode_config(&v2("meta-config-domains.bin")).expect("config record");
    assert_eq!((config.options, config.key_domains), (0x0003, 5));
    assert_eq!(encode_config(config), v2("meta-config-domains.bin"));

    let pin = decode_pin(&v2("meta-pin-user-transport.bin")).expect("PIN record");
    assert!(pin.must_change && pin.matches(b"648219") && !pin.matches(b"648218"));
    assert_eq!((pin.max_tries, pin.tries_left, pin.len()), (3, 3, 6));
    assert_eq!(encode_pin(&pin), v2("meta-pin-user-transport.bin"));

    let ready = decode_dkek(&v2("meta-domain-1.bin")).expect("domain 1");
    assert_eq!(
        ready.status_answer().unwrap(),
        [&[2u8, 0][..], &v2_value("domain1.kcv")].concat()
    );
    assert_eq!(*encode_dkek(&ready), v2("meta-domain-1.bin"));
    let pending = decode_dkek(&v2("meta-domain-2.bin")).expect("domain 2");
    assert_eq!(pending.status_answer().unwrap()[..2], [3, 2]);
    assert_eq!(*encode_dkek(&pending), v2("meta-domain-2.bin"));

    let key = decode_key(&v2("key-03.bin")).expect("AES key record");
    let KeyMaterial::Aes(secret) = &key.material else {
        panic!("key 03 is not an AES key")
    };
    assert_eq!(secret.as_bytes().to_vec(), v2_value("aes.key"));
    assert_eq!(
        key.policy,
        KeyPolicy {
            uses_left: Some(10),
            algorithms: Some(vec![0x10, 0x11, 0x18, 0x99]),
            domain: Some(1),
            wrapping_key: Some(2),
        }
    );
    assert_eq!(*encode_key(&key), v2("key-03.bin"));
}

#[test]
fn a_card_of_v1_and_v2_records_uses_its_aes_key_as_python_computes() {
    let mut records = Records::default();
    for (name, file) in [
        ("identity", "meta-identity.bin"),
        ("pin.so", "meta-pin-so.bin"),
        ("dkek", "meta-dkek.bin"),
        ("format", "meta-format.bin"),
    ] {
        records.meta.insert(name.into(), v1(file));
    }
    records
        .meta
        .insert("config".into(), v2("meta-config-domains.bin"));
    records
        .meta
        .insert("pin.user".into(), v2("meta-pin-user-transport.bin"));
    records
        .meta
        .insert("domain.1".into(), v2("meta-domain-1.bin"));
    records
        .meta
        .insert("domain.2".into(), v2("meta-domain-2.bin"));
    records.keys.insert(0, v1("key-00.bin"));
    records.keys.insert(3, v2("key-03.bin"));
    records.files.insert(0x2F02, v1("file-2F02.bin"));
    let state = records.to_state().expect("the records decode");
    assert_eq!(state.key_domain_slots(), 5);
    assert_eq!(state.domains.len(), 2);

    let mut store = crate::store::MemoryStore::default();
    crate::store::Store::commit(&mut store, &state_changes(&state)).unwrap();
    let mut card = crate::card::Card::open(Box::new(store)).unwrap();
    let tx = |card: &mut crate::card::Card, apdu: Vec<u8>| card.transmit(&apdu);
    tx(&mut card, crate::tools::host::select_application());
    // A transport PIN: changed first, then verified.
    let change = [
        &hex::decode("002400810C").unwrap()[..],
        b"648219",
        b"123456",
    ]
    .concat();
    assert_eq!(tx(&mut card, change), [0x90, 0x00]);
    let cipher = |p2: u8, data: &[u8]| {
        crate::tools::host::command(crate::applet::command::Ins::CipherSymmetric, 3, p2, data)
    };
    for (p2, data, expected) in [
        (0x10, vec![0x5A; 32], v2_value("aes.cbc_5a_x32")),
        (
            0x18,
            b"fixture v2".to_vec(),
            v2_value("aes.cmac_fixture_v2"),
        ),
        (0x99, vec![0xA5; 32], v2_value("aes.hkdf_a5_x32")),
    ] {
        let answer = tx(&mut card, cipher(p2, &data));
        assert_eq!(answer, [expected, vec![0x90, 0x00]].concat(), "{p2:02X}");
    }
    assert_eq!(card.state().keys[&3].policy.uses_left, Some(7));
}

/// The changes that write `state` into an empty store.
fn state_changes(state: &CardState) -> Vec<Change> {
    let mut changes = vec![
        Change::Identity(state.identity.clone().unwrap()),
        Change::Config(state.config),
        Change::Pin(PinRef::User, state.user_pin.clone()),
        Change::Pin(PinRef::So, state.so_pin.clone()),
        Change::Domain(0, state.dkek.clone()),
    ];
    changes.extend(
        state
            .domains
            .iter()
            .map(|(kd, d)| Change::Domain(*kd, d.clone())),
    );
    changes.extend(
        state
            .keys
            .iter()
            .map(|(id, k)| Change::PutKey(*id, k.clone())),
    );
    changes.extend(
        state
            .files
            .iter()
            .map(|(fid, f)| Change::PutFile(*fid, f.clone())),
    );
    changes
}

fn v3(name: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/store/v3/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn v3_records_decode_to_their_values_and_encode_to_the_same_bytes() {
    let pka = decode_pka(&v3("meta-pka.bin")).expect("PKA record");
    assert_eq!((pka.total, pka.required), (3, 2));
    assert_eq!(pka.keys.keys().copied().collect::<Vec<_>>(), [0, 2]);
    assert_eq!(pka.keys[&2].chr, b"ZZEMCUST300001");
    assert_eq!(pka.status(0), [3, 1, 2, 0]);
    let point = crate::apdu::tlv::find(&pka.keys[&0].public_key, 0x86).unwrap();
    assert_eq!(point[1..], (0..64).collect::<Vec<u8>>()[..]);
    assert_eq!(encode_pka(&pka), v3("meta-pka.bin"));

    let agreed = decode_dkek(&v3("meta-domain-3-xkek.bin")).expect("XKEK domain");
    let text = String::from_utf8(v3("values.txt")).unwrap();
    let kcv = text
        .lines()
        .find_map(|l| l.strip_prefix("domain3.kcv = "))
        .unwrap();
    let status = agreed.status_answer().unwrap();
    assert_eq!(status[..2], [0, 0]);
    assert_eq!(hex::encode(&status[2..10]), kcv);
    assert_eq!(&status[10..], b"classroom");
    assert_eq!(*encode_dkek(&agreed), v3("meta-domain-3-xkek.bin"));
    let pending = decode_dkek(&v3("meta-domain-4-xkek-pending.bin")).expect("pending XKEK");
    assert_eq!(pending.ready_value(), None);
    assert_eq!(
        pending.status_answer().unwrap()[..10],
        [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(*encode_dkek(&pending), v3("meta-domain-4-xkek-pending.bin"));
    // A slot past the total, or required above total, is refused.
    assert!(decode_pka(&[1, 1, 2]).is_none());
    let mut bad = v3("meta-pka.bin");
    bad[1] = 2; // total 2: slot 2 no longer exists
    assert!(decode_pka(&bad).is_none());
}
