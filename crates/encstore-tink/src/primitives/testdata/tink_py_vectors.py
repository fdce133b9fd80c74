#!/usr/bin/env python3
"""Known-answer vectors for encstore-tink's raw AEAD primitives, made by
Google's Tink (PyPI `tink==1.16.1`, the C++ core).

For each key type and parameter set, Tink generates a key (RAW output
prefix, so the ciphertext is the primitive's raw layout) and encrypts a
fixed plaintext under a fixed associated data. The output records the
serialized key proto (`KeyData.value`) and the ciphertext, so the Rust
test proves both key-proto parsing and ciphertext layout byte for byte.

It also records which key protos Tink itself refuses (`tink_refuses`), so
the Rust test can check that encstore refuses the same ones.

Regenerate: python3 tink_py_vectors.py > tink_py_vectors.json

Reverse direction (encstore encrypts, Tink decrypts):
  ENCSTORE_TINK_PY_OUT=/tmp/ours.json \
    cargo test -p encstore-tink --lib -- --ignored encrypt_for_tink_py
  python3 tink_py_vectors.py --verify /tmp/ours.json
"""

import io
import json

import tink
from tink import aead, cleartext_keyset_handle
from tink.proto import (
    aes_ctr_hmac_aead_pb2,
    aes_ctr_pb2,
    aes_eax_pb2,
    aes_gcm_pb2,
    aes_gcm_siv_pb2,
    common_pb2,
    hmac_pb2,
    tink_pb2,
    x_aes_gcm_pb2,
    xchacha20_poly1305_pb2,
)

aead.register()
PREFIX = "type.googleapis.com/google.crypto.tink."
PLAINTEXT = b"encstore: byte-compatible with Tink 1.16"
AD = b"certmagic/acme/example.com.key"


def template(type_name, fmt):
    return tink_pb2.KeyTemplate(
        type_url=PREFIX + type_name,
        value=fmt.SerializeToString(),
        output_prefix_type=tink_pb2.RAW,
    )


def ctr_hmac_format(aes, iv, hmac_key, hash_type, tag):
    return aes_ctr_hmac_aead_pb2.AesCtrHmacAeadKeyFormat(
        aes_ctr_key_format=aes_ctr_pb2.AesCtrKeyFormat(
            params=aes_ctr_pb2.AesCtrParams(iv_size=iv), key_size=aes
        ),
        hmac_key_format=hmac_pb2.HmacKeyFormat(
            params=hmac_pb2.HmacParams(hash=hash_type, tag_size=tag),
            key_size=hmac_key,
        ),
    )


CASES = [
    ("AesGcmKey", aes_gcm_pb2.AesGcmKeyFormat(key_size=16)),
    ("AesGcmKey", aes_gcm_pb2.AesGcmKeyFormat(key_size=32)),
    ("AesGcmSivKey", aes_gcm_siv_pb2.AesGcmSivKeyFormat(key_size=16)),
    ("AesGcmSivKey", aes_gcm_siv_pb2.AesGcmSivKeyFormat(key_size=32)),
    ("AesEaxKey", aes_eax_pb2.AesEaxKeyFormat(key_size=16, params=aes_eax_pb2.AesEaxParams(iv_size=12))),
    ("AesEaxKey", aes_eax_pb2.AesEaxKeyFormat(key_size=16, params=aes_eax_pb2.AesEaxParams(iv_size=16))),
    ("AesEaxKey", aes_eax_pb2.AesEaxKeyFormat(key_size=32, params=aes_eax_pb2.AesEaxParams(iv_size=12))),
    ("AesEaxKey", aes_eax_pb2.AesEaxKeyFormat(key_size=32, params=aes_eax_pb2.AesEaxParams(iv_size=16))),
    ("AesCtrHmacAeadKey", ctr_hmac_format(16, 16, 32, common_pb2.SHA256, 16)),
    ("AesCtrHmacAeadKey", ctr_hmac_format(32, 16, 32, common_pb2.SHA256, 32)),
    ("AesCtrHmacAeadKey", ctr_hmac_format(16, 12, 16, common_pb2.SHA1, 10)),
    ("AesCtrHmacAeadKey", ctr_hmac_format(32, 13, 20, common_pb2.SHA224, 28)),
    ("AesCtrHmacAeadKey", ctr_hmac_format(16, 14, 48, common_pb2.SHA384, 48)),
    ("AesCtrHmacAeadKey", ctr_hmac_format(32, 15, 64, common_pb2.SHA512, 64)),
    ("XChaCha20Poly1305Key", xchacha20_poly1305_pb2.XChaCha20Poly1305KeyFormat()),
]
for salt in range(8, 13):
    CASES.append(
        ("XAesGcmKey", x_aes_gcm_pb2.XAesGcmKeyFormat(params=x_aes_gcm_pb2.XAesGcmParams(salt_size=salt)))
    )


def generate(type_name, fmt):
    handle = tink.new_keyset_handle(template(type_name, fmt))
    out = io.BytesIO()
    cleartext_keyset_handle.write(tink.BinaryKeysetWriter(out), handle)
    keyset = tink_pb2.Keyset.FromString(out.getvalue())
    key_data = keyset.key[0].key_data
    primitive = handle.primitive(aead.Aead)
    return {
        "type_url": key_data.type_url,
        "key_value": key_data.value.hex(),
        "plaintext": PLAINTEXT.hex(),
        "associated_data": AD.hex(),
        "ciphertext": primitive.encrypt(PLAINTEXT, AD).hex(),
    }


def key_keyset(type_name, key_proto):
    keyset = tink_pb2.Keyset(
        primary_key_id=1,
        key=[
            tink_pb2.Keyset.Key(
                key_data=tink_pb2.KeyData(
                    type_url=PREFIX + type_name,
                    value=key_proto.SerializeToString(),
                    key_material_type=tink_pb2.KeyData.SYMMETRIC,
                ),
                status=tink_pb2.ENABLED,
                key_id=1,
                output_prefix_type=tink_pb2.RAW,
            )
        ],
    )
    return keyset


def tink_accepts(type_name, key_proto):
    """Whether Tink builds an AEAD from this key proto."""
    try:
        handle = cleartext_keyset_handle.from_keyset(key_keyset(type_name, key_proto))
        handle.primitive(aead.Aead)
        return True
    except tink.TinkError:
        return False


def probes():
    """Key protos at and just beyond each of Tink's validation limits."""
    out = []

    def probe(type_name, key_proto, what):
        out.append({
            "what": what,
            "type_url": PREFIX + type_name,
            "key_value": key_proto.SerializeToString().hex(),
            "tink_accepts": tink_accepts(type_name, key_proto),
        })

    for n in (15, 16, 24, 32, 33):
        probe("AesGcmKey", aes_gcm_pb2.AesGcmKey(key_value=bytes(n)), f"AES-GCM key {n} bytes")
        probe("AesGcmSivKey", aes_gcm_siv_pb2.AesGcmSivKey(key_value=bytes(n)), f"AES-GCM-SIV key {n} bytes")
        probe("AesEaxKey", aes_eax_pb2.AesEaxKey(key_value=bytes(n), params=aes_eax_pb2.AesEaxParams(iv_size=16)), f"AES-EAX key {n} bytes")
    probe("AesGcmKey", aes_gcm_pb2.AesGcmKey(version=1, key_value=bytes(16)), "AES-GCM version 1")
    probe("AesGcmSivKey", aes_gcm_siv_pb2.AesGcmSivKey(version=1, key_value=bytes(16)), "AES-GCM-SIV version 1")
    for iv in (0, 11, 12, 13, 15, 16, 17):
        probe("AesEaxKey", aes_eax_pb2.AesEaxKey(key_value=bytes(16), params=aes_eax_pb2.AesEaxParams(iv_size=iv)), f"AES-EAX iv {iv}")
    probe("AesEaxKey", aes_eax_pb2.AesEaxKey(version=1, key_value=bytes(16), params=aes_eax_pb2.AesEaxParams(iv_size=16)), "AES-EAX version 1")

    def ctr(aes=16, iv=16, hmac_key=32, hash_type=common_pb2.SHA256, tag=16, v=0, av=0, hv=0):
        return aes_ctr_hmac_aead_pb2.AesCtrHmacAeadKey(
            version=v,
            aes_ctr_key=aes_ctr_pb2.AesCtrKey(version=av, params=aes_ctr_pb2.AesCtrParams(iv_size=iv), key_value=bytes(aes)),
            hmac_key=hmac_pb2.HmacKey(version=hv, params=hmac_pb2.HmacParams(hash=hash_type, tag_size=tag), key_value=bytes(hmac_key)),
        )

    for aes in (15, 16, 24, 32, 33):
        probe("AesCtrHmacAeadKey", ctr(aes=aes), f"CTR-HMAC AES key {aes}")
    for iv in (11, 12, 16, 17):
        probe("AesCtrHmacAeadKey", ctr(iv=iv), f"CTR-HMAC iv {iv}")
    for hk in (15, 16, 100):
        probe("AesCtrHmacAeadKey", ctr(hmac_key=hk), f"CTR-HMAC hmac key {hk}")
    for h, name, max_tag in ((common_pb2.SHA1, "SHA1", 20), (common_pb2.SHA224, "SHA224", 28), (common_pb2.SHA256, "SHA256", 32), (common_pb2.SHA384, "SHA384", 48), (common_pb2.SHA512, "SHA512", 64)):
        for tag in (9, 10, max_tag, max_tag + 1):
            probe("AesCtrHmacAeadKey", ctr(hash_type=h, tag=tag), f"CTR-HMAC {name} tag {tag}")
    probe("AesCtrHmacAeadKey", ctr(hash_type=common_pb2.UNKNOWN_HASH), "CTR-HMAC unknown hash")
    probe("AesCtrHmacAeadKey", ctr(v=1), "CTR-HMAC version 1")
    probe("AesCtrHmacAeadKey", ctr(av=1), "CTR-HMAC AES key version 1")
    probe("AesCtrHmacAeadKey", ctr(hv=1), "CTR-HMAC HMAC key version 1")
    for n in (16, 31, 32, 33):
        probe("XChaCha20Poly1305Key", xchacha20_poly1305_pb2.XChaCha20Poly1305Key(key_value=bytes(n)), f"XChaCha key {n}")
    probe("XChaCha20Poly1305Key", xchacha20_poly1305_pb2.XChaCha20Poly1305Key(version=1, key_value=bytes(32)), "XChaCha version 1")
    for n in (16, 31, 32, 33):
        probe("XAesGcmKey", x_aes_gcm_pb2.XAesGcmKey(key_value=bytes(n), params=x_aes_gcm_pb2.XAesGcmParams(salt_size=12)), f"XAES key {n}")
    for salt in (0, 7, 8, 12, 13):
        probe("XAesGcmKey", x_aes_gcm_pb2.XAesGcmKey(key_value=bytes(32), params=x_aes_gcm_pb2.XAesGcmParams(salt_size=salt)), f"XAES salt {salt}")
    probe("XAesGcmKey", x_aes_gcm_pb2.XAesGcmKey(version=1, key_value=bytes(32), params=x_aes_gcm_pb2.XAesGcmParams(salt_size=12)), "XAES version 1")
    return out


def verify(path):
    """Decrypts encstore's ciphertexts with Tink; exits non-zero on failure."""
    import sys
    cases = json.load(open(path))
    for case in cases:
        type_name = case["type_url"][len(PREFIX):]
        keyset = tink_pb2.Keyset(
            primary_key_id=1,
            key=[tink_pb2.Keyset.Key(
                key_data=tink_pb2.KeyData(
                    type_url=case["type_url"],
                    value=bytes.fromhex(case["key_value"]),
                    key_material_type=tink_pb2.KeyData.SYMMETRIC,
                ),
                status=tink_pb2.ENABLED,
                key_id=1,
                output_prefix_type=tink_pb2.RAW,
            )],
        )
        primitive = cleartext_keyset_handle.from_keyset(keyset).primitive(aead.Aead)
        pt = primitive.decrypt(bytes.fromhex(case["ciphertext"]), bytes.fromhex(case["associated_data"]))
        if pt != bytes.fromhex(case["plaintext"]):
            sys.exit(f"{type_name}: wrong plaintext")
    print(f"Tink decrypted all {len(cases)} encstore ciphertexts")


import sys
if len(sys.argv) == 3 and sys.argv[1] == "--verify":
    verify(sys.argv[2])
    sys.exit(0)

print(json.dumps({
    "generator": "tink_py_vectors.py with tink " + getattr(tink, "__version__", "1.16.1"),
    "vectors": [generate(t, f) for t, f in CASES],
    "probes": probes(),
}, indent=1))
