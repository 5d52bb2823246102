//! The commands of the 4.x card: GENERATE SYMMETRIC KEY, CIPHER SYMMETRIC, DERIVE EC KEY,
//! MANAGE KEY DOMAIN, key information in SELECT, the initialisation options and the
//! configuration read-back. Cryptographic results are checked against OpenSSL and Python's
//! `cryptography` in the conformance tests; here, every status word and that a refused
//! command changes nothing.

use super::*;
use crate::applet::command::Ins;
use crate::model::dkek::Dkek;
use crate::model::key::KeyMaterial;
use crate::testkit::invariants::Snapshot;
use crate::tools::host;

/// An extended APDU `ins p1 p2` with `data` (and Le), as hex.
fn cmd(ins: Ins, p1: u8, p2: u8, data: &[u8]) -> String {
    hex::encode(&host::command(ins, p1, p2, data))
}

/// INITIALIZE with `extra` TLVs (hex) after the wiki's options and PINs.
fn init_with(extra: &str) -> String {
    let data = format!("800200018106{USER_PIN}8208{SO_PIN}910103{extra}").replace(' ', "");
    format!("80500000{:02X}{data}", data.len() / 2)
}

/// A card initialised with `extra`, logged in.
fn card_with(extra: &str) -> Card {
    let mut c = selected();
    assert_eq!(sw(&mut c, &init_with(extra)), "9000");
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "9000");
    c
}

/// Sends `apdu`, expects `status`, and checks that the card did not change.
fn refused(c: &mut Card, apdu: &str, status: &str) {
    let before = Snapshot::of(c);
    assert_eq!(sw(c, apdu), status, "{apdu}");
    assert_eq!(Snapshot::of(c), before, "{apdu} changed the card");
}

fn aes_key(c: &Card, id: u8) -> Vec<u8> {
    match &c.state().keys[&id].material {
        KeyMaterial::Aes(k) => k.as_bytes().to_vec(),
        _ => panic!("key {id} is not an AES key"),
    }
}

#[test]
fn generate_symmetric_key_sizes_policy_and_refusals() {
    let mut c = initialized();
    refused(
        &mut c,
        &cmd(Ins::GenerateSymmetricKey, 1, 0xB0, &[]),
        "6982",
    );
    let mut c = logged_in();
    for (p2, len) in [(0xB0, 16), (0xB1, 24), (0xB2, 32)] {
        assert_eq!(
            send(&mut c, &cmd(Ins::GenerateSymmetricKey, p2 - 0xAF, p2, &[])),
            (String::new(), "9000".into())
        );
        assert_eq!(aes_key(&c, p2 - 0xAF).len(), len);
    }
    // A new key in an old id replaces it; no CV request, no CExx.
    let first = aes_key(&c, 1);
    assert_eq!(
        sw(&mut c, &cmd(Ins::GenerateSymmetricKey, 1, 0xB0, &[])),
        "9000"
    );
    assert_ne!(aes_key(&c, 1), first);
    assert!(!c.state().files.contains_key(&0xCE01));
    refused(
        &mut c,
        &cmd(Ins::GenerateSymmetricKey, 4, 0xB3, &[]),
        "6A86",
    );
    refused(
        &mut c,
        &cmd(Ins::GenerateSymmetricKey, 0, 0xB0, &[]),
        "6A86",
    );
    // Unknown tag, broken TLV, counter of 3 bytes, empty list, domain never created.
    for data in ["990100", "9004000000", "9003000001", "9100", "920101"] {
        let status = if data == "920101" { "6A88" } else { "6A80" };
        refused(
            &mut c,
            &cmd(
                Ins::GenerateSymmetricKey,
                4,
                0xB0,
                &hex::decode(data).unwrap(),
            ),
            status,
        );
    }
    let policy = hex::decode(
        "9004 0000000A 9104 10111899 9301 02"
            .replace(' ', "")
            .as_str(),
    )
    .unwrap();
    assert_eq!(
        sw(&mut c, &cmd(Ins::GenerateSymmetricKey, 4, 0xB2, &policy)),
        "9000"
    );
    let key = &c.state().keys[&4];
    assert_eq!(key.policy.uses_left, Some(10));
    assert_eq!(key.policy.algorithms, Some(vec![0x10, 0x11, 0x18, 0x99]));
    assert_eq!(key.policy.wrapping_key, Some(2));
    // SELECT CC04: an empty EF with 90 counter, 91 algorithms, 92 domain.
    assert_eq!(
        send(&mut c, "00A4000002CC0400"),
        (
            "6F1C 80020000 820101 8302CC04 A50F 90040000000A 910410111899 920100".replace(' ', ""),
            "9000".into()
        )
    );
    assert_eq!(
        send(&mut c, "00A4000402CC0100").0,
        "62108002000082010183 02CC01A503920100".replace(' ', "")
    );
}

#[test]
fn cipher_symmetric_policy_lengths_and_key_types() {
    let mut c = logged_in();
    let policy = hex::decode("900400000003 91021018").unwrap();
    assert_eq!(
        sw(&mut c, &cmd(Ins::GenerateSymmetricKey, 1, 0xB0, &policy)),
        "9000"
    );
    assert_eq!(
        sw(&mut c, &cmd(Ins::GenerateSymmetricKey, 2, 0xB1, &[])),
        "9000"
    );
    let block = [0x5Au8; 32];
    // Not in the list (11 decrypt, 99 derive), unknown algorithm, wrong lengths.
    refused(&mut c, &cmd(Ins::CipherSymmetric, 1, 0x11, &block), "6A81");
    refused(&mut c, &cmd(Ins::CipherSymmetric, 1, 0x99, &block), "6A81");
    refused(&mut c, &cmd(Ins::CipherSymmetric, 2, 0x12, &block), "6A81");
    refused(
        &mut c,
        &cmd(Ins::CipherSymmetric, 2, 0x10, &block[..17]),
        "6A80",
    );
    refused(&mut c, &cmd(Ins::CipherSymmetric, 2, 0x10, &[]), "6700");
    refused(&mut c, &cmd(Ins::CipherSymmetric, 9, 0x10, &block), "6A82");
    refused(&mut c, &cmd(Ins::CipherSymmetric, 0, 0x10, &block), "6A81");
    // Each use counts, and the counter is durable before the answer.
    let (encrypted, status) = send(&mut c, &cmd(Ins::CipherSymmetric, 1, 0x10, &block));
    assert_eq!((encrypted.len(), status.as_str()), (64, "9000"));
    let (mac, status) = send(&mut c, &cmd(Ins::CipherSymmetric, 1, 0x18, &[]));
    assert_eq!(
        (mac.len(), status.as_str()),
        (32, "9000"),
        "a CMAC of nothing"
    );
    assert_eq!(
        sw(&mut c, &cmd(Ins::CipherSymmetric, 1, 0x18, b"abc")),
        "9000"
    );
    assert_eq!(c.state().keys[&1].policy.uses_left, Some(0));
    refused(&mut c, &cmd(Ins::CipherSymmetric, 1, 0x18, b"abc"), "6984");
    // Decrypt inverts encrypt; derivation gives as many bytes as the parameter has.
    let (encrypted, _) = send(&mut c, &cmd(Ins::CipherSymmetric, 2, 0x10, &block));
    let encrypted = hex::decode(&encrypted).unwrap();
    let (plain, _) = send(&mut c, &cmd(Ins::CipherSymmetric, 2, 0x11, &encrypted));
    assert_eq!(plain, hex::encode(&block));
    let (derived, status) = send(&mut c, &cmd(Ins::CipherSymmetric, 2, 0x99, &[7; 40]));
    assert_eq!((derived.len(), status.as_str()), (80, "9000"));
    // An AES key does not SIGN or DECIPHER; an EC key does not CIPHER; no PIN, no use.
    refused(&mut c, &cmd(Ins::Sign, 2, 0x70, &[1; 32]), "6A81");
    refused(&mut c, &cmd(Ins::Decipher, 2, 0x21, &[1; 32]), "6A81");
    let ec = crate::crypto::cvc::ec_key_template(crate::crypto::ec::Curve::Secp256r1);
    let body = crate::crypto::cvc::generate_request(b"UTCA00001", &ec, b"ZZEM000000000001");
    assert_eq!(sw(&mut c, &cmd(Ins::GenerateKeyPair, 3, 0, &body)), "9000");
    refused(&mut c, &cmd(Ins::CipherSymmetric, 3, 0x10, &block), "6A81");
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    refused(&mut c, &cmd(Ins::CipherSymmetric, 2, 0x10, &block), "6982");
}

#[test]
fn derive_ec_key_adds_the_scalar_mod_n() {
    let mut c = logged_in();
    let ec = crate::crypto::cvc::ec_key_template(crate::crypto::ec::Curve::Secp256r1);
    let body = crate::crypto::cvc::generate_request(b"UTCA00001", &ec, b"ZZEM000000000001");
    let with = |tags: &str| [body.clone(), hex::decode(tags).unwrap()].concat();
    assert_eq!(
        sw(
            &mut c,
            &cmd(Ins::GenerateKeyPair, 1, 0, &with("91027098 900400000002"))
        ),
        "9000"
    );
    assert_eq!(
        sw(&mut c, &cmd(Ins::GenerateKeyPair, 2, 0, &with("910170"))),
        "9000"
    );
    let one = [&[0x98u8][..], &[0; 31], &[1]].concat();
    refused(&mut c, &cmd(Ins::DeriveEcKey, 2, 5, &one), "6A81"); // 98 not in the list
    refused(&mut c, &cmd(Ins::DeriveEcKey, 1, 2, &one), "6A89"); // target taken
    refused(&mut c, &cmd(Ins::DeriveEcKey, 1, 0, &one), "6A86");
    refused(&mut c, &cmd(Ins::DeriveEcKey, 0, 5, &one), "6A81"); // the device key
    refused(&mut c, &cmd(Ins::DeriveEcKey, 9, 5, &one), "6A82");
    refused(&mut c, &cmd(Ins::DeriveEcKey, 1, 5, &[0x97, 1]), "6A81");
    refused(&mut c, &cmd(Ins::DeriveEcKey, 1, 5, &[0x98]), "6700");
    refused(&mut c, &cmd(Ins::DeriveEcKey, 1, 5, &[0x98; 34]), "6700");
    assert_eq!(
        send(&mut c, &cmd(Ins::DeriveEcKey, 1, 5, &one)),
        (String::new(), "9000".into())
    );
    let scalar = |c: &Card, id: u8| match &c.state().keys[&id].material {
        KeyMaterial::Ec { scalar, .. } => scalar.to_vec(),
        _ => panic!("not an EC key"),
    };
    // d + 1, computed here byte by byte (d + 1 < n but for a 2^-128 chance).
    let (d, d1) = (scalar(&c, 1), scalar(&c, 5));
    let mut expected = d.clone();
    for byte in expected.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    assert_eq!(d1, expected);
    // The derived key keeps the list, not the counter; the source key paid one use.
    assert_eq!(c.state().keys[&5].policy.algorithms, Some(vec![0x70, 0x98]));
    assert_eq!(c.state().keys[&5].policy.uses_left, None);
    assert_eq!(c.state().keys[&1].policy.uses_left, Some(1));
    assert!(!c.state().files.contains_key(&0xCE05));
    assert_eq!(sw(&mut c, &cmd(Ins::DeriveEcKey, 1, 6, &one)), "9000");
    refused(&mut c, &cmd(Ins::DeriveEcKey, 1, 7, &one), "6984");
}

#[test]
fn a_full_card_takes_no_aes_or_derived_key() {
    let mut c = logged_in().with_limits(crate::Limits {
        max_keys: 2,
        ..crate::Limits::default()
    });
    let ec = crate::crypto::cvc::ec_key_template(crate::crypto::ec::Curve::Secp256r1);
    let body = crate::crypto::cvc::generate_request(b"UTCA00001", &ec, b"ZZEM000000000001");
    let request = [body, hex::decode("91027098").unwrap()].concat();
    assert_eq!(
        sw(&mut c, &cmd(Ins::GenerateKeyPair, 1, 0, &request)),
        "9000"
    );
    assert_eq!(
        sw(&mut c, &cmd(Ins::GenerateSymmetricKey, 2, 0xB2, &[])),
        "9000"
    );
    refused(
        &mut c,
        &cmd(Ins::GenerateSymmetricKey, 3, 0xB0, &[]),
        "6A84",
    );
    let one = [&[0x98u8][..], &[0; 31], &[1]].concat();
    refused(&mut c, &cmd(Ins::DeriveEcKey, 1, 3, &one), "6A84");
    // A new AES key in a taken reference is no new key.
    assert_eq!(
        sw(&mut c, &cmd(Ins::GenerateSymmetricKey, 2, 0xB0, &[])),
        "9000"
    );
    assert_eq!(aes_key(&c, 2).len(), 16);
}

#[test]
fn scalar_addition_wraps_at_the_group_order() {
    use crate::crypto::ec::Curve;
    let curve = Curve::Secp256r1;
    let order = curve.domain().order;
    // (n - 1) + 2 = 1; (n - 1) + 1 = 0 is refused; a scalar past n is reduced first.
    let mut n_minus_1 = order.to_vec();
    *n_minus_1.last_mut().unwrap() -= 1;
    let one = [&[0u8; 31][..], &[1]].concat();
    assert_eq!(*curve.add_scalars(&n_minus_1, &[2]).unwrap(), one);
    assert_eq!(curve.add_scalars(&n_minus_1, &[1]), None);
    assert_eq!(*curve.add_scalars(&one, order).unwrap(), one);
    assert_eq!(curve.add_scalars(&one, &[1; 33]), None);
}

#[test]
fn key_domains_are_created_filled_cleared_and_deleted() {
    let mut c = card_with("9201 01 9701 03");
    let share = [0x11u8; 32];
    let other = [0x22u8; 32];
    let manage = |p1: u8, kd: u8, data: &[u8]| cmd(Ins::ManageKeyDomain, p1, kd, data);
    // Slots 1 and 2 exist but are not created; 3 is past the slots.
    refused(&mut c, &manage(0, 1, &[]), "6A88");
    refused(&mut c, &manage(0, 3, &[]), "6A86");
    refused(&mut c, &manage(1, 3, &[2]), "6A86");
    refused(&mut c, &manage(0, 1, &share), "6A88");
    refused(&mut c, &manage(3, 1, &[]), "6A88");
    refused(&mut c, &manage(4, 1, &[]), "6A88");
    // (XKEK domains: tests/trust.rs.)
    refused(&mut c, &manage(5, 1, &[]), "6A86");
    refused(&mut c, &manage(1, 1, &[2, 0]), "6700");
    // Creating needs the user PIN.
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    refused(&mut c, &manage(1, 1, &[2]), "6982");
    refused(&mut c, &manage(2, 1, b"uid"), "6982");
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "9000");
    assert_eq!(send(&mut c, &manage(1, 1, &[2])).0, "02020000000000000000");
    refused(&mut c, &manage(1, 1, &[2]), "6A89");
    refused(&mut c, &manage(0, 1, &share[..31]), "6700");
    assert_eq!(
        send(&mut c, &manage(0, 1, &share)).0,
        "02010000000000000000"
    );
    let kcv = crate::model::dkek::kcv(&[0x33; 32]);
    assert_eq!(
        send(&mut c, &manage(0, 1, &other)).0,
        format!("0200{}", hex::encode(&kcv))
    );
    refused(&mut c, &manage(0, 1, &share), "6986");
    // Domain 0 keeps its own DKEK.
    assert_eq!(sw(&mut c, &manage(0, 0, &share)), "9000");
    assert_ne!(c.state().domain(0), c.state().domain(1));
    // A key of domain 1 blocks its deletion; clearing keeps the key and awaits the shares.
    assert_eq!(
        sw(
            &mut c,
            &cmd(Ins::GenerateSymmetricKey, 1, 0xB0, &[0x92, 1, 1])
        ),
        "9000"
    );
    refused(&mut c, &manage(3, 1, &[]), "6985");
    assert_eq!(send(&mut c, &manage(4, 1, &[])).0, "02020000000000000000");
    refused(&mut c, &cmd(Ins::WrapKey, 1, 0x92, &[]), "6A88");
    assert_eq!(sw(&mut c, &manage(0, 1, &share)), "9000");
    assert_eq!(sw(&mut c, &manage(0, 1, &other)), "9000");
    assert_eq!(sw(&mut c, &cmd(Ins::WrapKey, 1, 0x92, &[])), "9000");
    assert_eq!(sw(&mut c, "00E4020002CC01"), "9000");
    assert_eq!(
        send(&mut c, &manage(3, 1, &[])),
        ("00000000000000000000".into(), "9000".into())
    );
    assert_eq!(c.state().domain(1), Some(&Dkek::Absent));
    // A domain of 0 shares gets a card-generated DKEK at once.
    let (answer, _) = send(&mut c, &manage(1, 2, &[0]));
    assert_eq!(&answer[..4], "0000");
    assert_ne!(&answer[4..], "0000000000000000");
    // Re-initialising removes every domain but the new domain 0.
    assert_eq!(sw(&mut c, &init_with("9701 02")), "9000");
    assert!(c.state().domains.is_empty());
    assert_eq!(c.state().key_domain_slots(), 2);
}

#[test]
fn keys_are_wrapped_under_their_own_domain_and_unwrapped_into_the_domain_of_the_kcv() {
    let mut c = card_with("9201 01 9701 03");
    let manage = |p1: u8, kd: u8, data: &[u8]| cmd(Ins::ManageKeyDomain, p1, kd, data);
    assert_eq!(sw(&mut c, &manage(0, 0, &[0x11; 32])), "9000");
    assert_eq!(sw(&mut c, &manage(1, 1, &[1])), "9000");
    assert_eq!(sw(&mut c, &manage(0, 1, &[0x22; 32])), "9000");
    let policy = [0x92, 0x01, 0x01, 0x91, 0x02, 0x10, 0x11];
    assert_eq!(
        sw(&mut c, &cmd(Ins::GenerateSymmetricKey, 1, 0xB2, &policy)),
        "9000"
    );
    assert_eq!(
        sw(&mut c, &cmd(Ins::GenerateSymmetricKey, 2, 0xB0, &[])),
        "9000"
    );
    let (blob1, _) = send(&mut c, &cmd(Ins::WrapKey, 1, 0x92, &[]));
    let (blob2, _) = send(&mut c, &cmd(Ins::WrapKey, 2, 0x92, &[]));
    let kcv = |value: u8| hex::encode(&crate::model::dkek::kcv(&[value; 32]));
    assert!(blob1.starts_with(&format!("{}0F0008608648016503040100021011", kcv(0x22))));
    assert!(blob2.starts_with(&kcv(0x11)));
    // Unwrapped back: each into its own domain, with its list; an AES key answers no request.
    for (blob, id, domain) in [(&blob1, 5u8, Some(1)), (&blob2, 6, None)] {
        let blob = hex::decode(blob).unwrap();
        assert_eq!(
            send(&mut c, &cmd(Ins::UnwrapKey, id, 0x93, &blob)),
            (String::new(), "9000".into())
        );
        assert_eq!(c.state().keys[&id].policy.domain, domain);
        assert_eq!(aes_key(&c, id), aes_key(&c, id - 4));
    }
    assert_eq!(c.state().keys[&5].policy.algorithms, Some(vec![0x10, 0x11]));
    // A blob of a DKEK no domain has is refused.
    let mut foreign = hex::decode(&blob1).unwrap();
    foreign[0] ^= 1;
    refused(&mut c, &cmd(Ins::UnwrapKey, 7, 0x93, &foreign), "6A80");
}

#[test]
fn a_transport_pin_is_changed_before_it_verifies() {
    let mut c = selected();
    let data = format!("800200038106{USER_PIN}8208{SO_PIN}910103");
    assert_eq!(
        sw(&mut c, &format!("80500000{:02X}{data}", data.len() / 2)),
        "9000"
    );
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    refused(&mut c, "00200081", "6984");
    refused(&mut c, &format!("0020008106{USER_PIN}"), "6984");
    // The option is reported in the FCI.
    assert_eq!(
        send(&mut c, SELECT_AID).0,
        "6F0A820178850500030604 00".replace(' ', "")
    );
    // A wrong transport PIN costs a try; the right one sets the new PIN.
    assert_eq!(
        sw(&mut c, &format!("002400810C313131313131{}", "313233343536")),
        "63C2"
    );
    assert_eq!(
        sw(&mut c, &format!("002400810C{USER_PIN}313233343536")),
        "9000"
    );
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    assert_eq!(sw(&mut c, "00200081"), "63C3");
    assert_eq!(sw(&mut c, "0020008106313233343536"), "9000");
    // The SO sets a new PIN: a transport PIN again.
    assert_eq!(sw(&mut c, &format!("002C00810E{SO_PIN}{USER_PIN}")), "9000");
    assert_eq!(sw(&mut c, "00200081"), "6984");
}

#[test]
fn configuration_and_version_read_back() {
    let mut c = selected();
    assert_eq!(
        send(&mut c, "8050000000"),
        ("0000000104000000".into(), "9000".into())
    );
    assert_eq!(sw(&mut c, &init_with("9701 05 9501 00 9601 00")), "9000");
    let (config, _) = send(&mut c, "8050000000");
    assert_eq!(config, "0001030504000000");
    // Version at len-4 and len-3, where CardContact's Java card service reads it.
    let bytes = hex::decode(&config).unwrap();
    assert_eq!((bytes[bytes.len() - 4], bytes[bytes.len() - 3]), (4, 0));
    // Unknown tags and too many domain slots are refused.
    for extra in ["9801 00", "9701 11", "9702 0001", "A001 00"] {
        refused(&mut c, &init_with(extra), "6A80");
    }
}

#[test]
fn update_binary_at_offset_0_replaces_the_content() {
    let mut c = logged_in();
    assert_eq!(sw(&mut c, &update("2F10", 0, &[1; 300])), "9000");
    assert_eq!(sw(&mut c, &update("2F10", 0, &[2; 100])), "9000");
    assert_eq!(c.state().files[&0x2F10].data, vec![2; 100]);
    assert_eq!(sw(&mut c, &update("2F10", 100, &[3; 10])), "9000");
    assert_eq!(sw(&mut c, &update("2F10", 50, &[4; 10])), "9000");
    let expected = [vec![2; 50], vec![4; 10], vec![2; 40], vec![3; 10]].concat();
    assert_eq!(c.state().files[&0x2F10].data, expected);
}
