#!/usr/bin/python3
"""Independent results for the 4.x card's symmetric and derivation commands, with the
`cryptography` package (OpenSSL), from the definitions in the project's notes: the tests
compare what the card answered with what this prints.

    card_crypto.py cbc-encrypt KEY_HEX DATA_HEX     AES-CBC, IV 0, no padding
    card_crypto.py cbc-decrypt KEY_HEX DATA_HEX
    card_crypto.py cmac KEY_HEX DATA_HEX            AES-CMAC (16 bytes)
    card_crypto.py hkdf KEY_HEX INFO_HEX            HKDF-SHA256, no salt, info, L = len(info)
    card_crypto.py ec-add CURVE D_HEX S_HEX         (d + s) mod n, its public point, and the
                                                    public key as PEM, as JSON
"""
import json
import sys

from cryptography.hazmat.primitives import cmac, hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Group orders (SEC 2, RFC 5639) and the curves of `cryptography`.
CURVES = {
    "prime256v1": (0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551, ec.SECP256R1()),
    "secp384r1": (int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16),
                  ec.SECP384R1()),
    "brainpoolP256r1": (0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7, ec.BrainpoolP256R1()),
}


def cbc(key, data, encrypt):
    cipher = Cipher(algorithms.AES(key), modes.CBC(bytes(16)))
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


def main(argv):
    if len(argv) != 4 and not (len(argv) == 5 and argv[1] == "ec-add"):
        print(__doc__, file=sys.stderr)
        return 2
    op = argv[1]
    if op == "ec-add":
        order, curve = CURVES[argv[2]]
        d = (int(argv[3], 16) + int(argv[4], 16)) % order
        public = ec.derive_private_key(d, curve).public_key()
        point = public.public_bytes(serialization.Encoding.X962,
                                    serialization.PublicFormat.UncompressedPoint)
        pem = public.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        length = (order.bit_length() + 7) // 8
        print(json.dumps({"d": d.to_bytes(length, "big").hex(), "point": point.hex(),
                          "public_pem": pem}))
        return 0
    key, data = bytes.fromhex(argv[2]), bytes.fromhex(argv[3])
    if op == "cbc-encrypt":
        out = cbc(key, data, True)
    elif op == "cbc-decrypt":
        out = cbc(key, data, False)
    elif op == "cmac":
        mac = cmac.CMAC(algorithms.AES(key))
        mac.update(data)
        out = mac.finalize()
    elif op == "hkdf":
        out = HKDF(hashes.SHA256(), len(data), None, data).derive(key)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(out.hex().upper())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as e:  # every refusal is an exit code, not a traceback
        print(f"card_crypto.py: {e.__class__.__name__}: {e}", file=sys.stderr)
        sys.exit(1)
