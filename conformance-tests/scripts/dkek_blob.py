#!/usr/bin/python3
"""An independent implementation of the SmartCard-HSM wrapped-key blob (WRAP / UNWRAP KEY).

Written against the format description in the project's notes, with the `cryptography`
package (OpenSSL), so the emulator's blobs are not only checked against the emulator itself.

    dkek_blob.py decode DKEK_HEX BLOB_FILE
        Checks KCV and CMAC, decrypts, and prints the fields as JSON (hex strings). For RSA it
        also prints the public key as PEM; for EC the public point.
    dkek_blob.py encode DKEK_HEX KEY_PEM TYPE OUT_FILE [ALGORITHMS_HEX]
        Wraps an OpenSSL private key (PEM, unencrypted) as TYPE 5 (RSA), 6 (RSA CRT) or 12 (EC).
    dkek_blob.py encode-aes DKEK_HEX KEY_HEX OUT_FILE [ALGORITHMS_HEX]
        Wraps an AES key (16, 24 or 32 bytes) as type 15.
    dkek_blob.py share-decrypt PASSWORD SHARE_FILE
        Decrypts an sc-hsm-tool DKEK share file and prints the share as hex.
"""
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives import cmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

RSA_OID = bytes.fromhex("04007F00070202020102")
EC_OID = bytes.fromhex("04007F00070202020203")
AES_OID = bytes.fromhex("6086480165030401")


def derive(dkek, counter):
    return hashlib.sha256(dkek + counter.to_bytes(4, "big")).digest()


def kcv(dkek):
    return hashlib.sha256(dkek).digest()[:8]


def be(n, length=None):
    if length is None:
        length = max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(length, "big")


def read_field(data, pos):
    length = int.from_bytes(data[pos:pos + 2], "big")
    return data[pos + 2:pos + 2 + length], pos + 2 + length


def field(value):
    return len(value).to_bytes(2, "big") + value


def decode(dkek, blob):
    if len(blob) < 8 + 1 + 8 + 16:
        raise ValueError("blob too short")
    if blob[:8] != kcv(dkek):
        raise ValueError("KCV does not match the DKEK")
    mac = cmac.CMAC(algorithms.AES(derive(dkek, 2)))
    mac.update(blob[:-16])
    mac.verify(blob[-16:])
    key_type = blob[8]
    pos = 9
    oid, pos = read_field(blob, pos)
    algorithms_list, pos = read_field(blob, pos)
    access, pos = read_field(blob, pos)
    key_oid, pos = read_field(blob, pos)
    encrypted = blob[pos:-16]
    if len(encrypted) % 16:
        raise ValueError("encrypted part is not a multiple of 16 bytes")
    decryptor = Cipher(algorithms.AES(derive(dkek, 1)), modes.CBC(bytes(16))).decryptor()
    plain = decryptor.update(encrypted) + decryptor.finalize()
    out = {
        "type": key_type,
        "oid": oid.hex(),
        "algorithms": algorithms_list.hex(),
        "access_conditions": access.hex(),
        "key_oid": key_oid.hex(),
        "random": plain[:8].hex(),
        "size": int.from_bytes(plain[8:10], "big"),
    }
    pos = 10
    if key_type == 15:
        # AES: the size field is the key length in bytes, the key follows without a length.
        length = out["size"]
        if length not in (16, 24, 32):
            raise ValueError(f"AES key of {length} bytes")
        out["key"] = plain[10:10 + length].hex()
        pos = 10 + length
    names = {5: ["d", "n", "e"], 6: ["dp", "dq", "p", "pq", "q", "n", "e"], 15: [],
             12: ["a", "b", "prime", "order", "generator", "d", "q"]}.get(key_type)
    if names is None:
        raise ValueError(f"unknown key type {key_type}")
    for name in names:
        value, pos = read_field(plain, pos)
        out[name] = value.hex()
    padding = plain[pos:]
    if not padding or padding[0] != 0x80 or any(padding[1:]) or len(plain) % 16:
        raise ValueError("bad ISO 7816-4 padding")
    out["padding_length"] = len(padding)
    if key_type in (5, 6):
        n = int(out["n"], 16)
        e = int(out["e"], 16)
        if key_type == 6:
            p, q = int(out["p"], 16), int(out["q"], 16)
            if p * q != n:
                raise ValueError("p * q != n")
            if int(out["pq"], 16) != pow(q, -1, p):
                raise ValueError("pq is not q^-1 mod p")
        public = rsa.RSAPublicNumbers(e, n).public_key()
        out["public_pem"] = public.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    if key_type == 12:
        for name, params in CURVES.items():
            if int(out["prime"], 16) == params["p"] and int(out["order"], 16) == params["n"]:
                curve = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1(),
                         "secp256k1": ec.SECP256K1()}[name]
                private = ec.derive_private_key(int(out["d"], 16), curve)
                public = private.public_key()
                point = public.public_bytes(serialization.Encoding.X962,
                                            serialization.PublicFormat.UncompressedPoint)
                if out["q"] and bytes.fromhex(out["q"]) != point:
                    raise ValueError("the public point is not d * G")
                out["curve"] = name
                out["public_pem"] = public.public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return out


def encode(dkek, key, key_type, algorithms_list=b"", random=None):
    random = random if random is not None else os.urandom(8)
    if key_type in (5, 6):
        numbers = key.private_numbers()
        pub = numbers.public_numbers
        size = pub.n.bit_length()
        oid = RSA_OID
        if key_type == 5:
            fields = [numbers.d, pub.n, pub.e]
        else:
            fields = [numbers.dmp1, numbers.dmq1, numbers.p, numbers.iqmp, numbers.q, pub.n, pub.e]
        body = b"".join(field(be(v)) for v in fields)
    elif key_type == 12:
        numbers = key.private_numbers()
        name = key.curve.name
        params = CURVES[name]
        flen = (params["bits"] + 7) // 8
        oid = EC_OID
        size = params["bits"]
        point = b"\x04" + be(numbers.public_numbers.x, flen) + be(numbers.public_numbers.y, flen)
        body = b"".join(field(v) for v in [
            be(params["a"], flen), be(params["b"], flen), be(params["p"], flen),
            be(params["n"]), b"\x04" + be(params["gx"], flen) + be(params["gy"], flen),
            be(numbers.private_value), point])
    elif key_type == 15:
        oid = AES_OID
        size = len(key)
        if size not in (16, 24, 32):
            raise ValueError("an AES key has 16, 24 or 32 bytes")
        body = key
    else:
        raise ValueError("type must be 5, 6, 12 or 15")
    plain = random + size.to_bytes(2, "big") + body + b"\x80"
    plain += bytes(-len(plain) % 16)
    encryptor = Cipher(algorithms.AES(derive(dkek, 1)), modes.CBC(bytes(16))).encryptor()
    encrypted = encryptor.update(plain) + encryptor.finalize()
    blob = kcv(dkek) + bytes([key_type]) + field(oid) + field(algorithms_list) + field(b"") + field(b"") + encrypted
    mac = cmac.CMAC(algorithms.AES(derive(dkek, 2)))
    mac.update(blob)
    return blob + mac.finalize()


# Domain parameters of the curves used with `encode` (SEC 2, RFC 5639).
CURVES = {
    "secp256r1": dict(bits=256,
                      p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
                      a=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC,
                      b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
                      gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
                      gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
                      n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551),
    "secp384r1": dict(bits=384,
                      p=int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF", 16),
                      a=int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFC", 16),
                      b=int("B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF", 16),
                      gx=int("AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7", 16),
                      gy=int("3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F", 16),
                      n=int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)),
    "secp256k1": dict(bits=256,
                      p=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F, a=0, b=7,
                      gx=0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
                      gy=0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
                      n=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141),
}


def share_decrypt(password, data):
    """sc-hsm-tool's share file: "Salted__" || salt || AES-256-CBC, key/IV from EVP_BytesToKey(MD5, 10M)."""
    if data[:8] != b"Salted__" or len(data) != 64:
        raise ValueError("not a DKEK share file")
    salt = data[8:16]
    material = b""
    block = b""
    while len(material) < 48:
        block = hashlib.md5(block + password + salt).digest()
        for _ in range(10_000_000 - 1):
            block = hashlib.md5(block).digest()
        material += block
    decryptor = Cipher(algorithms.AES(material[:32]), modes.CBC(material[32:48])).decryptor()
    plain = decryptor.update(data[16:]) + decryptor.finalize()
    pad = plain[-1]
    if pad != 16 or plain[-16:] != bytes([16]) * 16:
        raise ValueError("wrong password")
    return plain[:32]


def main(argv):
    if len(argv) >= 3 and argv[1] == "decode":
        dkek = bytes.fromhex(argv[2])
        with open(argv[3], "rb") as f:
            print(json.dumps(decode(dkek, f.read()), indent=1))
    elif len(argv) >= 6 and argv[1] == "encode":
        dkek = bytes.fromhex(argv[2])
        with open(argv[3], "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        algs = bytes.fromhex(argv[6]) if len(argv) > 6 else b""
        with open(argv[5], "wb") as f:
            f.write(encode(dkek, key, int(argv[4]), algs))
    elif len(argv) >= 5 and argv[1] == "encode-aes":
        algs = bytes.fromhex(argv[5]) if len(argv) > 5 else b""
        with open(argv[4], "wb") as f:
            f.write(encode(bytes.fromhex(argv[2]), bytes.fromhex(argv[3]), 15, algs))
    elif len(argv) == 4 and argv[1] == "share-decrypt":
        with open(argv[3], "rb") as f:
            print(share_decrypt(argv[2].encode(), f.read()).hex())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (ValueError, Exception) as e:  # every refusal is an exit code, not a traceback
        print(f"dkek_blob.py: {e.__class__.__name__}: {e}", file=sys.stderr)
        sys.exit(1)
