//! Trust between cards: certificate verification into the session's key store, and n-of-m
//! public-key authentication with keys on custodian cards of the same PKI. Every status word,
//! and that a refused command changes nothing. (The signatures are checked against Python's
//! `cryptography` in the conformance tests.)

use super::*;
use crate::applet::command::Ins;
use crate::crypto::cvc;
use crate::crypto::ec::Curve;
use crate::model::pki::Pki;
use crate::testkit::invariants::Snapshot;
use crate::tools::host;

fn cmd(ins: Ins, p1: u8, p2: u8, data: &[u8]) -> String {
    hex::encode(&host::command(ins, p1, p2, data))
}

/// A card of `pki`, selected.
fn card_of(pki: &Pki) -> Card {
    let mut c = Card::open_issued(Box::new(MemoryStore::default()), None, Some(pki)).unwrap();
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    c
}

/// INITIALIZE with the wiki's PINs, `options` and `extra` TLVs (hex), then SELECT.
fn initialize(c: &mut Card, options: &str, extra: &str) {
    let data = format!("8002{options}8106{USER_PIN}8208{SO_PIN}910103{extra}");
    assert_eq!(
        sw(c, &format!("80500000{:02X}{data}", data.len() / 2)),
        "9000"
    );
    assert_eq!(sw(c, SELECT_AID), "9000");
}

fn refused(c: &mut Card, apdu: &str, status: &str) {
    let before = Snapshot::of(c);
    assert_eq!(sw(c, apdu), status, "{apdu}");
    assert_eq!(Snapshot::of(c), before, "{apdu} changed the card");
}

/// MSE SET `81 xx` naming `chr`.
fn mse(p2: u8, chr: &[u8]) -> String {
    cmd(
        Ins::ManageSecurityEnvironment,
        0x81,
        p2,
        &crate::apdu::tlv::encode(0x83, chr),
    )
}

fn verify_certificate(certificate: &[u8]) -> String {
    cmd(Ins::PerformSecurityOperation, 0x00, 0xBE, certificate)
}

/// The device certificate and the issuer certificate of a card (its `2F02`).
fn chain(c: &Card) -> (Vec<u8>, Vec<u8>) {
    let data = &c.state().files[&crate::model::objects::EF_DEVICE_CERTIFICATES].data;
    let (_, rest) = cvc::decode(data).unwrap();
    let device_len = data.len() - rest.len();
    (data[..device_len].to_vec(), rest.to_vec())
}

/// Verifies `peer`'s chain on `c` the way OpenSC does: issuer under the root, then the device.
fn verify_chain_of(c: &mut Card, peer: &Card) {
    let (device, issuer) = chain(peer);
    let (issuer_cert, _) = cvc::decode(&issuer).unwrap();
    let (device_cert, _) = cvc::decode(&device).unwrap();
    assert_eq!(sw(c, &mse(0xB6, issuer_cert.car)), "9000");
    assert_eq!(sw(c, &verify_certificate(&issuer)), "9000");
    assert_eq!(sw(c, &mse(0xB6, device_cert.car)), "9000");
    assert_eq!(sw(c, &verify_certificate(&device)), "9000");
    assert_eq!(sw(c, &mse(0xB6, device_cert.chr)), "9000");
}

fn device_chr(c: &Card) -> Vec<u8> {
    c.state()
        .identity
        .as_ref()
        .unwrap()
        .device_chr
        .as_bytes()
        .to_vec()
}

#[test]
fn a_chain_of_the_same_pki_verifies_and_its_keys_become_selectable() {
    let pki = Pki::from_seed(11).unwrap();
    let (mut a, b) = (card_of(&pki), card_of(&pki));
    let (device, _) = chain(&b);
    let (device_cert, _) = cvc::decode(&device).unwrap();
    // Not known before its certificate verified.
    assert_eq!(sw(&mut a, &mse(0xB6, device_cert.chr)), "6A88");
    verify_chain_of(&mut a, &b);
    // A SELECT forgets what was verified.
    assert_eq!(sw(&mut a, SELECT_AID), "9000");
    assert_eq!(sw(&mut a, &mse(0xB6, device_cert.chr)), "6A88");
}

#[test]
fn foreign_tampered_and_misaddressed_certificates_are_refused() {
    let pki = Pki::from_seed(11).unwrap();
    let mut a = card_of(&pki);
    let foreign = card_of(&Pki::from_seed(12).unwrap());
    let (_, foreign_issuer) = chain(&foreign);
    let (foreign_issuer_cert, _) = cvc::decode(&foreign_issuer).unwrap();
    // Another PKI's root is unknown here.
    refused(&mut a, &mse(0xB6, foreign_issuer_cert.car), "6A88");
    // No verifier selected yet.
    refused(&mut a, &verify_certificate(&foreign_issuer), "6985");
    // Under our root: the CAR names another root.
    assert_eq!(sw(&mut a, &mse(0xB6, pki.root.chr.as_bytes())), "9000");
    refused(&mut a, &verify_certificate(&foreign_issuer), "6A80");
    // Our own issuer certificate with one signature byte changed.
    let mut tampered = pki.issuer.certificate.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    refused(&mut a, &verify_certificate(&tampered), "6300");
    assert_eq!(sw(&mut a, &mse(0xB6, pki.issuer.chr.as_bytes())), "6A88");
    // Not a certificate at all.
    refused(
        &mut a,
        &verify_certificate(&[0x7F, 0x21, 0x01, 0x00]),
        "6A80",
    );
    // Parameters.
    refused(
        &mut a,
        &cmd(Ins::PerformSecurityOperation, 0x00, 0xAE, &[1]),
        "6A86",
    );
    refused(
        &mut a,
        &cmd(Ins::ManageSecurityEnvironment, 0x81, 0xB8, &[0x83, 1, 1]),
        "6A86",
    );
    refused(
        &mut a,
        &cmd(Ins::ManageSecurityEnvironment, 0x81, 0xB6, &[0x84, 1, 1]),
        "6A80",
    );
}

#[test]
fn a_device_key_cannot_certify() {
    let pki = Pki::from_seed(11).unwrap();
    let (mut a, b) = (card_of(&pki), card_of(&pki));
    verify_chain_of(&mut a, &b);
    // The verifier is now b's device key: a "certificate" under its name is refused because
    // a device is no certification authority, whatever its signature.
    let chr = String::from_utf8(device_chr(&b)).unwrap();
    let point = b.state().keys[&0].ec_public_point().unwrap();
    let body = cvc::Body {
        car: &chr,
        public_key: &cvc::ec_public_key(cvc::OID_TA_ECDSA_SHA256, &point, None),
        chr: "ZZEMFORGED00001",
        role: 0,
        effective: [2, 6, 0, 1, 0, 1],
        expiry: [3, 0, 0, 1, 0, 1],
    }
    .encode();
    refused(
        &mut a,
        &verify_certificate(&cvc::certificate(&body, &[1; 64])),
        "6985",
    );
}

/// ECDSA-Sig-Value DER to plain r ‖ s of `len` bytes each.
fn plain_signature(der: &[u8], len: usize) -> Vec<u8> {
    let (seq, _) = crate::apdu::tlv::read(der).unwrap();
    let (r, rest) = crate::apdu::tlv::read(seq.value).unwrap();
    let (s, _) = crate::apdu::tlv::read(rest).unwrap();
    let mut out = Vec::new();
    for v in [r.value, s.value] {
        let v = &v[v.len().saturating_sub(len)..];
        out.extend(std::iter::repeat_n(0, len - v.len()));
        out.extend_from_slice(v);
    }
    out
}

#[test]
fn a_real_cards_chain_verifies_under_cardcontacts_root() {
    let mut a = card_of(&Pki::from_seed(11).unwrap());
    let real =
        include_bytes!("../../../../fixtures/real-card/nitrokey-hsm2-DENK0404144-fw4.1-EF2F02.bin");
    let (_, issuer) = cvc::decode(real).unwrap();
    let device = &real[..real.len() - issuer.len()];
    assert_eq!(sw(&mut a, &mse(0xB6, b"DESRCACC100001")), "9000");
    assert_eq!(sw(&mut a, &verify_certificate(issuer)), "9000");
    assert_eq!(sw(&mut a, &mse(0xB6, b"DEDINK0400001")), "9000");
    assert_eq!(sw(&mut a, &verify_certificate(device)), "9000");
    assert_eq!(sw(&mut a, &mse(0xB6, b"DENK040414400000")), "9000");
    // The device certificate's key is the one that signed this card's CV requests.
    let request = include_bytes!(
        "../../../../fixtures/real-card/nitrokey-hsm2-DENK0404144-fw4.1-CE03-prime256v1.bin"
    );
    let parsed = cvc::decode_authenticated_request(request).unwrap();
    assert_eq!(parsed.outer_car, b"DENK040414400000");
    let key = a.applet().session().verifier.as_ref().unwrap().key.clone();
    assert!(key.verifies(parsed.outer_signed, parsed.outer_signature));
}

/// A custodian card of `pki`: initialised, logged in, with an EC key 1 of `curve`; its
/// authenticated request (what `sc-hsm-tool --export-for-pub-key-auth` exports).
fn custodian(pki: &Pki, curve: Curve, chr: &[u8]) -> (Card, Vec<u8>) {
    let mut c = card_of(pki);
    initialize(&mut c, "0001", "");
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "9000");
    let body = cvc::generate_request(b"UTCA00001", &cvc::ec_key_template(curve), chr);
    let (request, status) = send(&mut c, &cmd(Ins::GenerateKeyPair, 1, 0, &body));
    assert_eq!(status, "9000");
    (c, hex::decode(&request).unwrap())
}

/// The custodian's signature over SHA-256(`target` device CHR ‖ `challenge`), plain r ‖ s.
fn sign_challenge(custodian: &mut Card, target_chr: &[u8], challenge: &[u8]) -> Vec<u8> {
    let digest = crate::crypto::hash::Hash::Sha256.digest(&[target_chr, challenge].concat());
    let (der, status) = send(custodian, &cmd(Ins::Sign, 1, 0x70, &digest));
    assert_eq!(status, "9000");
    let der = hex::decode(&der).unwrap();
    plain_signature(&der, 32)
}

/// Registers `request` of `custodian` on `target`; the status it answers.
fn register(target: &mut Card, custodian: &Card, request: &[u8]) -> (String, String) {
    verify_chain_of(target, custodian);
    send(
        target,
        &cmd(Ins::ManagePublicKeyAuthentication, 0, 0, request),
    )
}

fn authenticate(target: &mut Card, custodian: &mut Card, chr: &[u8]) -> String {
    assert_eq!(sw(target, &mse(0xA4, chr)), "9000");
    let (challenge, status) = send(target, "0084000008");
    assert_eq!(status, "9000");
    let signature = sign_challenge(
        custodian,
        &device_chr(target),
        &hex::decode(&challenge).unwrap(),
    );
    sw(target, &cmd(Ins::ExternalAuthenticate, 0, 0, &signature))
}

/// A status query of `80 54`.
fn pka_status(c: &mut Card) -> (String, String) {
    send(c, "8054000000")
}

#[test]
fn two_of_three_custodians_authenticate_the_user() {
    let pki = Pki::from_seed(21).unwrap();
    let mut target = card_of(&pki);
    initialize(&mut target, "0001", "93020302");
    assert_eq!(pka_status(&mut target), ("03030200".into(), "9000".into()));
    let names: [&[u8]; 3] = [b"ZZEMCUST100001", b"ZZEMCUST200001", b"ZZEMCUST300001"];
    let curves = [Curve::BrainpoolP256r1, Curve::Secp256r1, Curve::Secp256k1];
    let mut custodians = Vec::new();
    for (i, (name, curve)) in names.iter().zip(curves).enumerate() {
        let (c, request) = custodian(&pki, curve, name);
        let (status, sw) = register(&mut target, &c, &request);
        assert_eq!(sw, "9000");
        assert_eq!(status, format!("03{:02X}0200", 2 - i));
        custodians.push((c, request));
    }
    // All slots taken: one more is refused, and the card is unchanged.
    let (extra, extra_request) = custodian(&pki, Curve::Secp256r1, b"ZZEMCUST400001");
    verify_chain_of(&mut target, &extra);
    refused(
        &mut target,
        &cmd(Ins::ManagePublicKeyAuthentication, 0, 0, &extra_request),
        "6985",
    );
    // Registrations are persistent; authentication is not.
    assert_eq!(sw(&mut target, SELECT_AID), "9000");
    assert_eq!(pka_status(&mut target), ("03000200".into(), "9000".into()));
    // A private object needs the user: not yet.
    let read_private = "00B1CD01 04 54020000 06";
    assert_eq!(sw(&mut target, &update("CD01", 0, b"secret")), "6982");
    assert_eq!(
        authenticate(&mut target, &mut custodians[0].0, names[0]),
        "9000"
    );
    assert_eq!(pka_status(&mut target), ("03000201".into(), "9000".into()));
    assert_eq!(sw(&mut target, &update("CD01", 0, b"secret")), "6982");
    assert_eq!(
        authenticate(&mut target, &mut custodians[2].0, names[2]),
        "9000"
    );
    assert_eq!(pka_status(&mut target), ("03000202".into(), "9000".into()));
    assert_eq!(sw(&mut target, &update("CD01", 0, b"secret")), "9000");
    assert_eq!(sw(&mut target, read_private), "9000");
    // SELECT drops it.
    assert_eq!(sw(&mut target, SELECT_AID), "9000");
    assert_eq!(pka_status(&mut target), ("03000200".into(), "9000".into()));
    assert_eq!(sw(&mut target, read_private), "6982");
    // The PIN still works on its own (option 0010 is not set).
    assert_eq!(sw(&mut target, &format!("0020008106{USER_PIN}")), "9000");
    assert_eq!(sw(&mut target, read_private), "9000");
}

#[test]
fn bad_signatures_replays_and_unknown_keys_change_nothing() {
    let pki = Pki::from_seed(22).unwrap();
    let mut target = card_of(&pki);
    initialize(&mut target, "0001", "93020101");
    let name: &[u8] = b"ZZEMCUST100001";
    let (mut c, request) = custodian(&pki, Curve::Secp256r1, name);
    // Without the custodian's device key as verifier.
    refused(
        &mut target,
        &cmd(Ins::ManagePublicKeyAuthentication, 0, 0, &request),
        "6985",
    );
    // A request whose outer signature was tampered with.
    let mut bad = request.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    verify_chain_of(&mut target, &c);
    refused(
        &mut target,
        &cmd(Ins::ManagePublicKeyAuthentication, 0, 0, &bad),
        "6300",
    );
    refused(
        &mut target,
        &cmd(Ins::ManagePublicKeyAuthentication, 0, 0, &[0x67, 0]),
        "6A80",
    );
    // Staged in 2F10 (writing it needs the PIN) and registered with a case 1 APDU (with Le,
    // `80 54 00 00` is the status).
    assert_eq!(sw(&mut target, &format!("0020008106{USER_PIN}")), "9000");
    assert_eq!(sw(&mut target, &update("2F10", 0, &request)), "9000");
    assert_eq!(sw(&mut target, SELECT_AID), "9000");
    verify_chain_of(&mut target, &c);
    assert_eq!(sw(&mut target, "80540000"), "9000");
    assert_eq!(pka_status(&mut target), ("01000100".into(), "9000".into()));
    // Replacing needs option 0008.
    refused(
        &mut target,
        &cmd(Ins::ManagePublicKeyAuthentication, 1, 0, &request),
        "6986",
    );
    // Unknown key, no challenge, wrong signature, replay.
    refused(&mut target, &mse(0xA4, b"ZZEMNOBODY00001"), "6A88");
    assert_eq!(sw(&mut target, &mse(0xA4, name)), "9000");
    refused(
        &mut target,
        &cmd(Ins::ExternalAuthenticate, 0, 0, &[1; 64]),
        "6985",
    );
    let (challenge, _) = send(&mut target, "0084000008");
    let challenge = hex::decode(&challenge).unwrap();
    let wrong = sign_challenge(&mut c, b"ZZEMSOMEONEELSE0", &challenge);
    assert_eq!(
        sw(&mut target, &cmd(Ins::ExternalAuthenticate, 0, 0, &wrong)),
        "6300"
    );
    let right = sign_challenge(&mut c, &device_chr(&target), &challenge);
    // The challenge went with the failed attempt.
    assert_eq!(
        sw(&mut target, &cmd(Ins::ExternalAuthenticate, 0, 0, &right)),
        "6985"
    );
    assert_eq!(pka_status(&mut target), ("01000100".into(), "9000".into()));
    assert_eq!(authenticate(&mut target, &mut c, name), "9000");
    assert_eq!(pka_status(&mut target), ("01000101".into(), "9000".into()));
}

#[test]
fn pin_and_keys_both_needed_with_option_0010_and_replace_with_0008() {
    let pki = Pki::from_seed(23).unwrap();
    let mut target = card_of(&pki);
    initialize(&mut target, "0019", "93020101");
    let name: &[u8] = b"ZZEMCUST100001";
    let (mut c, request) = custodian(&pki, Curve::Secp256r1, name);
    let (_, status) = register(&mut target, &c, &request);
    assert_eq!(status, "9000");
    let write_private = update("CD01", 0, b"secret");
    assert_eq!(authenticate(&mut target, &mut c, name), "9000");
    assert_eq!(sw(&mut target, &write_private), "6982");
    assert_eq!(sw(&mut target, &format!("0020008106{USER_PIN}")), "9000");
    assert_eq!(sw(&mut target, &write_private), "9000");
    // The PIN alone is not enough either.
    assert_eq!(sw(&mut target, SELECT_AID), "9000");
    assert_eq!(sw(&mut target, &format!("0020008106{USER_PIN}")), "9000");
    assert_eq!(sw(&mut target, &write_private), "6982");
    // Replace slot 0 with another custodian's key: needs the user, then takes effect.
    let (new, new_request) = custodian(&pki, Curve::Secp256r1, b"ZZEMCUST200001");
    verify_chain_of(&mut target, &new);
    refused(
        &mut target,
        &cmd(Ins::ManagePublicKeyAuthentication, 1, 0, &new_request),
        "6982",
    );
    assert_eq!(authenticate(&mut target, &mut c, name), "9000");
    verify_chain_of(&mut target, &new);
    refused(
        &mut target,
        &cmd(Ins::ManagePublicKeyAuthentication, 1, 1, &new_request),
        "6A86",
    );
    assert_eq!(
        send(
            &mut target,
            &cmd(Ins::ManagePublicKeyAuthentication, 1, 0, &new_request)
        ),
        ("01000100".into(), "9000".into())
    );
    assert_eq!(sw(&mut target, &mse(0xA4, name)), "6A88");
    // A card without public-key authentication.
    let mut plain = card_of(&pki);
    initialize(&mut plain, "0001", "");
    refused(&mut plain, "8054000000", "6D00");
}

#[test]
fn reinitialisation_forgets_registered_keys() {
    let pki = Pki::from_seed(24).unwrap();
    let mut target = card_of(&pki);
    initialize(&mut target, "0001", "93020101");
    let (c, request) = custodian(&pki, Curve::Secp256r1, b"ZZEMCUST100001");
    assert_eq!(register(&mut target, &c, &request).1, "9000");
    initialize(&mut target, "0001", "93020201");
    assert_eq!(pka_status(&mut target), ("02020100".into(), "9000".into()));
    initialize(&mut target, "0001", "");
    assert!(target.state().pka.is_none());
}

/// A card of `pki` with two key domain slots, an XKEK domain 1 named `uid` and an EC key
/// `kid` of `curve` in it; the key's authenticated request.
fn xkek_member(pki: &Pki, uid: &[u8], kid: u8, curve: Curve) -> (Card, Vec<u8>) {
    let mut c = card_of(pki);
    initialize(&mut c, "0001", "970102");
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "9000");
    let (status, sw_) = send(&mut c, &cmd(Ins::ManageKeyDomain, 2, 1, uid));
    assert_eq!(sw_, "9000");
    assert_eq!(status, format!("00010000000000000000{}", hex::encode(uid)));
    let mut body =
        cvc::generate_request(b"UTCA00001", &cvc::ec_key_template(curve), b"ZZEMXKEK00001");
    body.extend_from_slice(&[0x92, 0x01, 0x01]);
    let (request, status) = send(&mut c, &cmd(Ins::GenerateKeyPair, kid, 0, &body));
    assert_eq!(status, "9000");
    (c, hex::decode(&request).unwrap())
}

fn derive(c: &mut Card, kid: u8, request: &[u8]) -> String {
    sw(c, &cmd(Ins::Decipher, kid, 0x84, request))
}

fn domain_status(c: &mut Card, kd: u8) -> String {
    send(c, &cmd(Ins::ManageKeyDomain, 0, kd, &[])).0
}

#[test]
fn two_cards_agree_an_xkek_and_move_a_key_in_its_domain() {
    let pki = Pki::from_seed(31).unwrap();
    let uid = b"classroom-1";
    let (mut a, request_a) = xkek_member(&pki, uid, 1, Curve::BrainpoolP256r1);
    let (mut b, request_b) = xkek_member(&pki, uid, 1, Curve::BrainpoolP256r1);
    // Without the peer's chain verified, nothing is agreed.
    refused(&mut a, &cmd(Ins::Decipher, 1, 0x84, &request_b), "6985");
    verify_chain_of(&mut a, &b);
    assert_eq!(sw(&mut a, &format!("0020008106{USER_PIN}")), "9000");
    assert_eq!(derive(&mut a, 1, &request_b), "9000");
    verify_chain_of(&mut b, &a);
    assert_eq!(sw(&mut b, &format!("0020008106{USER_PIN}")), "9000");
    // B takes A's request from 2F10, as a host limited to short APDUs would stage it.
    assert_eq!(sw(&mut b, &update("2F10", 0, &request_a)), "9000");
    assert_eq!(derive(&mut b, 1, &[]), "9000");
    let (status_a, status_b) = (domain_status(&mut a, 1), domain_status(&mut b, 1));
    assert_eq!(status_a, status_b);
    assert!(status_a.starts_with("0000") && !status_a[4..20].chars().all(|c| c == '0'));
    assert!(status_a.ends_with(&hex::encode(uid)));
    // A key made in the domain on A, wrapped, and unwrapped on B: the same key.
    let mut body = cvc::generate_request(
        b"UTCA00001",
        &cvc::ec_key_template(Curve::Secp256r1),
        b"ZZEMMOVE00001",
    );
    body.extend_from_slice(&[0x92, 0x01, 0x01]);
    assert_eq!(
        send(&mut a, &cmd(Ins::GenerateKeyPair, 2, 0, &body)).1,
        "9000"
    );
    let (blob, status) = send(&mut a, &cmd(Ins::WrapKey, 2, 0x92, &[]));
    assert_eq!(status, "9000");
    let blob = hex::decode(&blob).unwrap();
    assert_eq!(sw(&mut b, &cmd(Ins::UnwrapKey, 5, 0x93, &blob)), "9000");
    assert_eq!(
        b.state().keys[&5].ec_public_point().unwrap(),
        a.state().keys[&2].ec_public_point().unwrap()
    );
    assert_eq!(b.state().keys[&5].policy.domain, Some(1));
}

#[test]
fn xkek_refusals_change_nothing() {
    let pki = Pki::from_seed(32).unwrap();
    let (mut a, _) = xkek_member(&pki, b"uid", 1, Curve::BrainpoolP256r1);
    let (b, request_b) = xkek_member(&pki, b"uid", 1, Curve::Secp256r1);
    let (foreign, foreign_request) = xkek_member(
        &Pki::from_seed(33).unwrap(),
        b"uid",
        1,
        Curve::BrainpoolP256r1,
    );
    // A foreign card's chain does not verify here, so its request is not taken.
    let (_, foreign_issuer) = chain(&foreign);
    let (issuer_cert, _) = cvc::decode(&foreign_issuer).unwrap();
    refused(&mut a, &mse(0xB6, issuer_cert.car), "6A88");
    refused(
        &mut a,
        &cmd(Ins::Decipher, 1, 0x84, &foreign_request),
        "6985",
    );
    // A peer of the same PKI, but its key is on another curve.
    verify_chain_of(&mut a, &b);
    assert_eq!(sw(&mut a, &format!("0020008106{USER_PIN}")), "9000");
    refused(&mut a, &cmd(Ins::Decipher, 1, 0x84, &request_b), "6A80");
    // No such key; the device key; a request signed by someone else.
    refused(&mut a, &cmd(Ins::Decipher, 9, 0x84, &request_b), "6A88");
    refused(&mut a, &cmd(Ins::Decipher, 0, 0x84, &request_b), "6A88");
    refused(
        &mut a,
        &cmd(Ins::Decipher, 1, 0x84, &foreign_request),
        "6A80",
    );
    // An XKEK domain takes no DKEK share, and is created once, and not in domain 0.
    refused(
        &mut a,
        &cmd(Ins::ManageKeyDomain, 0, 1, &[0x11; 32]),
        "6986",
    );
    refused(&mut a, &cmd(Ins::ManageKeyDomain, 2, 1, b"again"), "6A89");
    refused(&mut a, &cmd(Ins::ManageKeyDomain, 2, 0, b"zero"), "6A86");
    refused(&mut a, &cmd(Ins::ManageKeyDomain, 2, 1, &[]), "6700");
    refused(&mut a, &cmd(Ins::ManageKeyDomain, 2, 1, &[1; 33]), "6700");
    let _ = b;
}

#[test]
fn a_key_outside_an_xkek_domain_agrees_nothing() {
    let pki = Pki::from_seed(34).unwrap();
    let (mut a, _) = xkek_member(&pki, b"uid", 1, Curve::BrainpoolP256r1);
    let (b, request_b) = xkek_member(&pki, b"uid", 1, Curve::BrainpoolP256r1);
    let body = cvc::generate_request(
        b"UTCA00001",
        &cvc::ec_key_template(Curve::BrainpoolP256r1),
        b"ZZEMPLAIN0001",
    );
    assert_eq!(
        send(&mut a, &cmd(Ins::GenerateKeyPair, 3, 0, &body)).1,
        "9000"
    );
    verify_chain_of(&mut a, &b);
    assert_eq!(sw(&mut a, &format!("0020008106{USER_PIN}")), "9000");
    refused(&mut a, &cmd(Ins::Decipher, 3, 0x84, &request_b), "6985");
}
