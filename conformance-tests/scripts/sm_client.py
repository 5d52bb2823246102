#!/usr/bin/python3
"""Secure messaging with a SmartCard-HSM's device key, written from BSI TR-03110 and ISO
7816-4 with Python's `cryptography`, independent of the emulator's code: chip authentication
(id-CA-ECDH-AES-CBC-CMAC-128), then commands wrapped in secure messaging, every answer's MAC
checked here.

    sm_client.py session --reader R [--pin PIN] [--sign KEYID] [--session-pin [--show-session-pin]] [--tamper]

Prints one line per step, `name key=value ...`, for the calling test to assert:

- `ca`: MSE SET AT and GENERAL AUTHENTICATE status words, whether the token verified;
- `verify`: VERIFY of the user PIN inside the channel (answer MAC checked, inner SW);
- `session_pin`: GENERATE SESSION PIN inside the channel; then a plain VERIFY with it;
- `sign`: a signature by key KEYID inside the channel, checked with the key's CV request;
- `tamper`: a command with a wrong MAC (the card answers 6988 and ends the channel), then a
  protected command again (6882: no channel);
- `plain_ends`: after a plain SELECT, a protected command is refused (6882)."""

import argparse
import hashlib
import sys

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pka_client import SELECT, Card, request_key, tlv, tlv_find, tlv_read, verified

OID_CA = bytes.fromhex("04007F00070202030202")


def pad(data):
    data = data + b"\x80"
    return data + b"\x00" * (-len(data) % 16)


def unpad(data):
    stripped = data.rstrip(b"\x00")
    assert stripped.endswith(b"\x80"), "bad padding"
    return stripped[:-1]


def aes_cmac(key, data):
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def aes_cbc(key, iv, data, decrypt=False):
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def parse_all(data):
    out, at = [], 0
    while at < len(data):
        tag, value, at = tlv_read(data, at)
        out.append((tag, value))
    return out


class Channel:
    def __init__(self, connection, kenc, kmac):
        self.connection, self.kenc, self.kmac, self.ssc = connection, kenc, kmac, 0

    def iv(self):
        block = self.ssc.to_bytes(16, "big")
        return aes_cbc(self.kenc, b"\x00" * 16, block)

    def mac(self, data):
        return aes_cmac(self.kmac, self.ssc.to_bytes(16, "big") + data)[:8]

    def transmit(self, cla, ins, p1, p2, data=b"", le=None, tamper=False):
        """Sends the command in secure messaging; (plain answer data, inner SW, MAC ok)."""
        self.ssc += 1
        cla |= 0x0C
        objects = b""
        if data:
            cryptogram = aes_cbc(self.kenc, self.iv(), pad(data))
            objects += tlv(0x85, cryptogram) if ins & 1 else tlv(0x87, b"\x01" + cryptogram)
        if le is not None:
            objects += tlv(0x97, bytes([le & 0xFF]) if le <= 256 else le.to_bytes(2, "big")[-2:])
        mac_input = pad(bytes([cla, ins, p1, p2])) + (pad(objects) if objects else b"")
        mac = bytearray(self.mac(mac_input))
        if tamper:
            mac[0] ^= 1
        body = objects + tlv(0x8E, bytes(mac))
        apdu = bytes([cla, ins, p1, p2, 0x00]) + len(body).to_bytes(2, "big") + body + b"\x00\x00"
        answer, sw1, sw2 = self.connection.transmit(list(apdu))
        answer = bytes(answer)
        outer = "%02X%02X" % (sw1, sw2)
        self.ssc += 1
        if not answer:
            return b"", outer, None
        found = dict(parse_all(answer))
        # The MAC object comes last; it authenticates everything before it.
        assert answer[-10:-8] == b"\x8E\x08", answer.hex()
        authenticated = answer[:-10]
        mac_ok = self.mac(pad(authenticated)) == found.get(0x8E)
        plain = b""
        if 0x87 in found:
            plain = unpad(aes_cbc(self.kenc, self.iv_for_response(), found[0x87][1:], decrypt=True))
        return plain, found[0x99].hex().upper(), mac_ok

    def iv_for_response(self):
        return aes_cbc(self.kenc, b"\x00" * 16, self.ssc.to_bytes(16, "big"))


def chip_authentication(card):
    """Runs CA; (channel or None, status words, token verified)."""
    chain = card.read_file(0x2F02)
    _, device, _ = tlv_read(chain)
    _, body, _ = tlv_read(device)
    device_point = tlv_find(tlv_find(body, 0x7F49), 0x86)
    curve = ec.BrainpoolP256R1()
    device_key = ec.EllipticCurvePublicKey.from_encoded_point(curve, device_point)
    ephemeral = ec.generate_private_key(curve)
    point = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    _, mse = card.send(bytes([0x00, 0x22, 0x41, 0xA4, 12]) + tlv(0x80, OID_CA))
    data = tlv(0x7C, tlv(0x80, point))
    answer, ga = card.send(bytes([0x00, 0x86, 0x00, 0x00, len(data)]) + data + b"\x00")
    if ga != "9000":
        return None, mse, ga, False
    inner = tlv_find(answer, 0x7C)
    nonce, token = tlv_find(inner, 0x81), tlv_find(inner, 0x82)
    secret = ephemeral.exchange(ec.ECDH(), device_key)
    kenc = hashlib.sha1(secret + nonce + b"\x00\x00\x00\x01").digest()[:16]
    kmac = hashlib.sha1(secret + nonce + b"\x00\x00\x00\x02").digest()[:16]
    expected = aes_cmac(kmac, tlv(0x7F49, tlv(0x06, OID_CA) + tlv(0x86, point)))[:8]
    return Channel(card.connection, kenc, kmac), mse, ga, expected == token


def session(args):
    card = Card(args.reader)
    _, sw = card.send(SELECT)
    channel, mse, ga, token_ok = chip_authentication(card)
    print("ca mse=%s ga=%s token_verified=%s" % (mse, ga, str(token_ok).lower()))
    if channel is None:
        return
    _, sw, mac_ok = channel.transmit(0x00, 0x20, 0x00, 0x81, args.pin.encode())
    print("verify sw=%s mac_verified=%s" % (sw, str(mac_ok).lower()))
    if args.sign is not None:
        key_id = int(args.sign, 16)
        # READ BINARY of the key's CV request, in the channel (odd INS: 85).
        request = b""
        while True:
            part, sw, mac_ok = channel.transmit(0x00, 0xB1, 0xCE, key_id, b"\x54\x02" + len(request).to_bytes(2, "big"), le=256)
            request += part
            if sw != "9000" or len(part) < 256:
                break
        _, public_key = request_key(request)
        message = b"signed in secure messaging"
        digest = hashlib.sha256(message).digest()
        der, sw, mac_ok = channel.transmit(0x80, 0x68, key_id, 0x70, digest, le=256)
        good = sw == "9000" and verified(public_key, message, der)
        print("sign sw=%s mac_verified=%s verified=%s" % (sw, str(mac_ok).lower(), str(good).lower()))
    if args.session_pin:
        pin, sw, mac_ok = channel.transmit(0x80, 0x5A, 0x01, 0x81, le=256)
        print("session_pin sw=%s mac_verified=%s length=%d" % (sw, str(mac_ok).lower(), len(pin)))
        if args.show_session_pin:
            # For the test that looks for it in the data trace (it must not be there).
            print("session_pin_value=%s" % pin.hex().upper())
        if sw == "9000":
            # A plain command ends the channel; the session PIN stands for the PIN after it.
            card.send(SELECT)
            _, plain_sw = card.send(bytes([0x00, 0x20, 0x00, 0x81, len(pin)]) + pin)
            _, wrong_sw = card.send(bytes([0x00, 0x20, 0x00, 0x81, len(pin)]) + bytes(b ^ 1 for b in pin))
            print("session_pin_verify sw=%s wrong=%s" % (plain_sw, wrong_sw))
            return
    if args.tamper:
        _, sw, _ = channel.transmit(0x00, 0x20, 0x00, 0x81, tamper=True)
        _, again, _ = channel.transmit(0x00, 0x20, 0x00, 0x81)
        print("tamper sw=%s again=%s" % (sw, again))
        return
    card.send(SELECT)
    _, sw, _ = channel.transmit(0x00, 0x20, 0x00, 0x81)
    print("plain_ends sw=%s" % sw)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("session")
    run.add_argument("--reader", type=int, default=0)
    run.add_argument("--pin", default="648219")
    run.add_argument("--sign")
    run.add_argument("--session-pin", action="store_true")
    run.add_argument("--show-session-pin", action="store_true")
    run.add_argument("--tamper", action="store_true")
    args = parser.parse_args()
    session(args)


if __name__ == "__main__":
    sys.exit(main())
