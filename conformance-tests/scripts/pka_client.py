#!/usr/bin/python3
"""A PC/SC client of the test suite's own, independent of the emulator's code: public-key
authentication (n-of-m) of a SmartCard-HSM with keys on custodian cards, through pcscd.

    pka_client.py authenticate --target R --custodian R[:KEYID] ... [--sign-with KEYID]
    pka_client.py verify-chain --reader R [--root FILE]
    pka_client.py xkek --first R --second R --uid HEX

xkek makes the two cards agree an XKEK key domain 1 named UID: each creates the domain
(80 52 02 01) and an EC P-256 key 1 in it, verifies the other's device chain (MSE SET 81 B6,
PSO VERIFY CERTIFICATE) and derives the XKEK from the other's request (DECIPHER 84); then
the first makes key 2 in the domain, wraps it, the second unwraps it as key 5 and signs with
it, and the signature is checked here against the first card's request for key 2.

verify-chain reads the card's device certificate chain (EF 2F02) and verifies it here, under
the root CV certificate FILE (`sc-hsm-emulator pki export`): root self-signature, issuer
under root, device under issuer (ECDSA-SHA-256, plain r || s, the curve of the root).

For each custodian, in one session of the target card: MSE SET 81 A4 with the custodian key's
holder reference (from the custodian's CV request in EF CExx), GET CHALLENGE, then the
custodian card signs SHA-256(target device CHR || challenge) (SIGN 80 68 KEYID 70, after
VERIFY of the user PIN); the signature is checked here with Python's `cryptography` against
the public key of the request, converted to plain r || s, and sent with EXTERNAL AUTHENTICATE.
The same signature is sent a second time (a replay). Then MANAGE PKA status, and with
--sign-with a signature by a target key, checked against that key's request.

Prints one line per step, `name key=value ...`: every status word, so the calling test
asserts them."""

import argparse
import hashlib
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from smartcard.System import readers

SELECT = bytes.fromhex("00A404000BE82B0601040181C31F0201") + b"\x00"

# Named curves by their prime (what a CV request's 7F49 carries as tag 81).
CURVES = {
    "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF": ec.SECP256R1(),
    "A9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377": ec.BrainpoolP256R1(),
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F": ec.SECP256K1(),
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF": ec.SECP384R1(),
}


def tlv_read(data, at=0):
    """One BER-TLV at `at`: (tag, value, next offset)."""
    tag = data[at]
    at += 1
    if tag & 0x1F == 0x1F:
        tag = (tag << 8) | data[at]
        at += 1
    length = data[at]
    at += 1
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[at : at + n], "big")
        at += n
    return tag, data[at : at + length], at + length


def tlv_find(data, wanted):
    at = 0
    while at < len(data):
        tag, value, at = tlv_read(data, at)
        if tag == wanted:
            return value
    return None


class Card:
    def __init__(self, reader):
        self.connection = readers()[reader].createConnection()
        self.connection.connect()

    def send(self, apdu):
        data, sw1, sw2 = self.connection.transmit(list(apdu))
        return bytes(data), "%02X%02X" % (sw1, sw2)

    def must(self, apdu):
        data, sw = self.send(apdu)
        if sw != "9000":
            raise SystemExit("%s answered %s" % (apdu.hex(), sw))
        return data

    def read_file(self, fid):
        out = b""
        while True:
            cmd = bytes([0x00, 0xB1, fid >> 8, fid & 0xFF, 0x04, 0x54, 0x02]) + len(out).to_bytes(2, "big") + b"\x00"
            data, sw = self.send(cmd)
            out += data
            if sw != "9000" or len(data) < 256:
                return out


def request_key(request):
    """CHR and public key of an authenticated request 67 { 7F21 { 7F4E {..} 5F37 } 42 5F37 }."""
    _, outer, _ = tlv_read(request)
    _, certificate, _ = tlv_read(outer)
    _, body, _ = tlv_read(certificate)
    public = tlv_find(body, 0x7F49)
    chr_ = tlv_find(body, 0x5F20)
    curve = CURVES[tlv_find(public, 0x81).hex().upper()]
    point = tlv_find(public, 0x86)
    return chr_, ec.EllipticCurvePublicKey.from_encoded_point(curve, point)


def device_chr(card):
    chain = card.read_file(0x2F02)
    _, certificate, _ = tlv_read(chain)
    _, body, _ = tlv_read(certificate)
    return tlv_find(body, 0x5F20)


def plain(der, size):
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def verified(public_key, message, der):
    try:
        public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def authenticate(args):
    target = Card(args.target)
    target.must(SELECT)
    target_chr = device_chr(target)
    out = {"device_chr": target_chr.decode(), "custodians": []}
    for spec in args.custodian:
        reader, _, key_id = spec.partition(":")
        key_id = int(key_id or "1", 16)
        custodian = Card(int(reader))
        custodian.must(SELECT)
        chr_, public_key = request_key(custodian.read_file(0xCE00 | key_id))
        step = {"reader": int(reader), "chr": chr_.decode()}
        step["mse"] = target.send(bytes([0x00, 0x22, 0x81, 0xA4, len(chr_) + 2, 0x83, len(chr_)]) + chr_)[1]
        challenge, step["challenge"] = target.send(bytes.fromhex("0084000008"))
        message = target_chr + challenge
        custodian.must(bytes.fromhex("0020008106") + args.pin.encode())
        digest = hashlib.sha256(message).digest()
        der = custodian.must(bytes([0x80, 0x68, key_id, 0x70, len(digest)]) + digest + b"\x00")
        step["signature_verified"] = verified(public_key, message, der)
        signature = plain(der, (public_key.curve.key_size + 7) // 8)
        apdu = bytes([0x00, 0x82, 0x00, 0x00, len(signature)]) + signature
        step["external_authenticate"] = target.send(apdu)[1]
        step["replay"] = target.send(apdu)[1]
        status, sw = target.send(bytes.fromhex("8054000004"))
        step["status"] = status.hex().upper()
        step["status_sw"] = sw
        out["custodians"].append(step)
    if args.sign_with is not None:
        key_id = int(args.sign_with, 16)
        _, public_key = request_key(target.read_file(0xCE00 | key_id))
        message = b"signed after public-key authentication"
        digest = hashlib.sha256(message).digest()
        der, sw = target.send(bytes([0x80, 0x68, key_id, 0x70, len(digest)]) + digest + b"\x00")
        out["sign"] = sw
        out["sign_verified"] = sw == "9000" and verified(public_key, message, der)
    print("target device_chr=%s" % out["device_chr"])
    for step in out["custodians"]:
        print("custodian " + " ".join("%s=%s" % (k, str(v).lower() if isinstance(v, bool) else v) for k, v in step.items()))
    if "sign" in out:
        print("sign sw=%s verified=%s" % (out["sign"], str(out["sign_verified"]).lower()))


def cv_certificate(data):
    """(body TLV bytes, CAR, CHR, 7F49 content, signature) of the 7F21 at the start of data;
    and the rest."""
    _, value, end = tlv_read(data)
    _, body, body_end = tlv_read(value)
    signature = tlv_find(value[body_end:], 0x5F37)
    fields = (value[:body_end], tlv_find(body, 0x42), tlv_find(body, 0x5F20), tlv_find(body, 0x7F49), signature)
    return fields, data[end:]


def cv_verified(curve, point, body, signature):
    size = len(signature) // 2
    der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
    return verified(ec.EllipticCurvePublicKey.from_encoded_point(curve, point), body, der)


def verify_chain(args):
    card = Card(args.reader)
    card.must(SELECT)
    chain = card.read_file(0x2F02)
    device, rest = cv_certificate(chain)
    issuer, _ = cv_certificate(rest)
    if args.root is None:
        for name, subject in [("issuer", issuer), ("device", device)]:
            print("%s chr=%s car=%s" % (name, subject[2].decode(), subject[1].decode()))
        return
    root, _ = cv_certificate(open(args.root, "rb").read())
    curve = CURVES[tlv_find(root[3], 0x81).hex().upper()]
    checks = [
        ("root", root, root),
        ("issuer", root, issuer),
        ("device", issuer, device),
    ]
    for name, signer, subject in checks:
        linked = subject[1] == signer[2]
        good = linked and cv_verified(curve, tlv_find(signer[3], 0x86), subject[0], subject[4])
        print("%s chr=%s car=%s verified=%s" % (name, subject[2].decode(), subject[1].decode(), str(good).lower()))


# NIST P-256 domain parameters (SEC 2), as GENERATE requests carry them.
P256 = {
    0x81: "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF",
    0x82: "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC",
    0x83: "5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B",
    0x84: "046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"
    "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5",
    0x85: "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551",
    0x87: "01",
}


def tlv(tag, value):
    """One BER-TLV (tags of one or two bytes)."""
    head = tag.to_bytes(2 if tag > 0xFF else 1, "big")
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return head + length + value


def extended(header, data, le=True):
    """An extended APDU: header (4 bytes), data, Le 0000 if `le`."""
    if not data:
        return bytes(header) + b"\x00\x00\x00"
    out = bytes(header) + b"\x00" + len(data).to_bytes(2, "big") + data
    return out + (b"\x00\x00" if le else b"")


def generate_request(chr_, domain):
    """GENERATE ASYMMETRIC KEY PAIR data for a P-256 key in key domain `domain`."""
    key = tlv(0x06, bytes.fromhex("04007F00070202020203"))
    for tag in sorted(P256):
        key += tlv(tag, bytes.fromhex(P256[tag]))
    body = tlv(0x5F29, b"\x00") + tlv(0x42, b"UTCA00001") + tlv(0x7F49, key) + tlv(0x5F20, chr_)
    return body + bytes([0x92, 0x01, domain])


def verify_chain_on(card, peer):
    """Has `card` verify `peer`'s device chain and select its device key; the status words."""
    chain = peer.read_file(0x2F02)
    device_tlv_end = tlv_read(chain)[2]
    device_tlv, issuer_tlv = chain[:device_tlv_end], chain[device_tlv_end:]
    device, _ = cv_certificate(device_tlv)
    issuer, _ = cv_certificate(issuer_tlv)
    steps = []
    for chr_, certificate in [(issuer[1], issuer_tlv), (device[1], device_tlv), (device[2], None)]:
        steps.append(card.send(bytes([0x00, 0x22, 0x81, 0xB6, len(chr_) + 2, 0x83, len(chr_)]) + chr_)[1])
        if certificate is not None:
            steps.append(card.send(extended([0x00, 0x2A, 0x00, 0xBE], certificate, le=False))[1])
    return steps


def xkek(args):
    uid = bytes.fromhex(args.uid)
    cards = [Card(args.first), Card(args.second)]
    requests = []
    for reader, card in zip([args.first, args.second], cards):
        card.must(SELECT)
        card.must(bytes.fromhex("0020008106") + args.pin.encode())
        status, sw = card.send(bytes([0x80, 0x52, 0x02, 0x01, len(uid)]) + uid + b"\x00")
        request, gen = card.send(extended([0x00, 0x46, 0x01, 0x00], generate_request(b"ZZEMXKEK00001", 1)))
        print("create reader=%d sw=%s status=%s generate=%s" % (reader, sw, status.hex().upper(), gen))
        requests.append(request)
    for i, (reader, card) in enumerate(zip([args.first, args.second], cards)):
        peer = cards[1 - i]
        steps = verify_chain_on(card, peer)
        derive = card.send(extended([0x80, 0x62, 0x01, 0x84], requests[1 - i], le=False))[1]
        status, _ = card.send(bytes.fromhex("8052000100"))
        print("derive reader=%d chain=%s sw=%s status=%s" % (reader, ",".join(steps), derive, status.hex().upper()))
    first, second = cards
    request, gen = first.send(extended([0x00, 0x46, 0x02, 0x00], generate_request(b"ZZEMMOVE00001", 1)))
    _, public_key = request_key(request)
    blob, wrap = first.send(extended([0x80, 0x72, 0x02, 0x92], b""))
    _, unwrap = second.send(extended([0x80, 0x74, 0x05, 0x93], blob))
    message = b"moved between two cards in an XKEK domain"
    digest = hashlib.sha256(message).digest()
    der, sign = second.send(bytes([0x80, 0x68, 0x05, 0x70, len(digest)]) + digest + b"\x00")
    good = sign == "9000" and verified(public_key, message, der)
    print("move generate=%s wrap=%s unwrap=%s sign=%s verified=%s" % (gen, wrap, unwrap, sign, str(good).lower()))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    auth = commands.add_parser("authenticate")
    auth.add_argument("--target", type=int, required=True)
    auth.add_argument("--custodian", action="append", default=[])
    auth.add_argument("--pin", default="648219")
    auth.add_argument("--sign-with")
    chain = commands.add_parser("verify-chain")
    chain.add_argument("--reader", type=int, required=True)
    chain.add_argument("--root", help="without it, only the names are printed")
    agree = commands.add_parser("xkek")
    agree.add_argument("--first", type=int, required=True)
    agree.add_argument("--second", type=int, required=True)
    agree.add_argument("--uid", required=True)
    agree.add_argument("--pin", default="648219")
    args = parser.parse_args()
    if args.command == "xkek":
        xkek(args)
    elif args.command == "authenticate":
        authenticate(args)
    elif args.command == "verify-chain":
        verify_chain(args)


if __name__ == "__main__":
    sys.exit(main())
