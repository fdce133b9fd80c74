#!/usr/bin/env python3
"""Streaming AEAD interop with Google's Tink (Python, C++ core).

Usage:

    python3 -m pip install tink==1.16.1
    python3 tests/interop/streaming_check.py JOBS.json RESULTS.json

Run by ``crates/encstore-tink/tests/streaming_interop.rs``, which writes the
keysets, plaintexts and ciphertexts, and checks the results. One Python
process does every job, so Tink is imported once.

``JOBS.json`` (paths absolute or relative to the file's directory)::

    {
      "keysets": {NAME: {"file": PATH, "format": "json"|"binary",
                         "master": PATH-of-cleartext-JSON-AEAD-keyset|null,
                         "keyset_ad_hex": HEX|null}},
      "jobs": [
        {"id": ID, "op": "encrypt", "keyset": NAME, "in": PLAINTEXT-PATH,
         "out": CIPHERTEXT-PATH, "ad_hex": HEX},
        {"id": ID, "op": "decrypt", "keyset": NAME, "in": CIPHERTEXT-PATH,
         "expect": PLAINTEXT-PATH, "ad_hex": HEX}
      ],
      "probes": [
        {"id": ID, "type_url": URL, "key_value_hex": HEX,
         "output_prefix": "RAW"|"TINK"|"LEGACY"|"CRUNCHY"}
      ]
    }

``RESULTS.json``::

    {"keysets": {NAME: "ok" | "error: MSG"},
     "jobs": {ID: "ok" | "mismatch" | "error: MSG"},
     "probes": {ID: "accepted" | "refused: MSG"}}

A keyset is "ok" when Tink parses it (an EncryptedKeyset is decrypted with
the master keyset's AEAD and the keyset associated data) and builds a
``StreamingAead`` from it. An encrypt job writes Tink's ciphertext; a
decrypt job reads the whole plaintext with Tink's decrypting stream and
compares it with the expected file ("mismatch" if it differs; "error" if
Tink refused the ciphertext). A probe builds a one-key keyset around the
key and asks Tink for a ``StreamingAead``, then encrypts and decrypts a few
bytes with it.
"""

from __future__ import annotations

import io
import json
import os
import sys

import tink
from tink import aead, secret_key_access, streaming_aead
from tink import json_proto_keyset_format as json_format
from tink import proto_keyset_format as binary_format
from tink.proto import tink_pb2

aead.register()
streaming_aead.register()
TOKEN = secret_key_access.TOKEN

PREFIXES = {
    "RAW": tink_pb2.RAW,
    "TINK": tink_pb2.TINK,
    "LEGACY": tink_pb2.LEGACY,
    "CRUNCHY": tink_pb2.CRUNCHY,
}


def err(e: Exception) -> str:
    return "error: " + (str(e).splitlines() or [type(e).__name__])[0][:300]


def load_keyset(base: str, spec: dict):
    path = os.path.join(base, spec["file"])
    with open(path, "rb") as f:
        data = f.read()
    master = spec.get("master")
    if master is None:
        if spec["format"] == "json":
            return json_format.parse(data.decode(), TOKEN)
        return binary_format.parse(data, TOKEN)
    with open(os.path.join(base, master)) as f:
        kek = json_format.parse(f.read(), TOKEN).primitive(aead.Aead)
    ad = bytes.fromhex(spec.get("keyset_ad_hex") or "")
    if spec["format"] == "json":
        return json_format.parse_encrypted(data.decode(), kek, ad)
    return binary_format.parse_encrypted(data, kek, ad)


def encrypt(sa, plaintext: bytes, ad: bytes) -> bytes:
    out = io.BytesIO()
    # Tink closes the destination when the encrypting stream is closed;
    # keep the bytes before that.
    close = out.close
    out.close = lambda: None
    with sa.new_encrypting_stream(out, ad) as es:
        es.write(plaintext)
    data = out.getvalue()
    close()
    return data


def decrypt(sa, ciphertext: bytes, ad: bytes) -> bytes:
    with sa.new_decrypting_stream(io.BytesIO(ciphertext), ad) as ds:
        return ds.read()


def run_job(base, job, prims) -> str:
    sa = prims.get(job["keyset"])
    if sa is None:
        return "error: keyset did not load"
    ad = bytes.fromhex(job["ad_hex"])
    with open(os.path.join(base, job["in"]), "rb") as f:
        data = f.read()
    if job["op"] == "encrypt":
        ct = encrypt(sa, data, ad)
        with open(os.path.join(base, job["out"]), "wb") as f:
            f.write(ct)
        return "ok"
    pt = decrypt(sa, data, ad)
    with open(os.path.join(base, job["expect"]), "rb") as f:
        return "ok" if pt == f.read() else "mismatch"


def run_probe(probe) -> str:
    ks = tink_pb2.Keyset(primary_key_id=1)
    key = ks.key.add()
    key.key_id = 1
    key.status = tink_pb2.ENABLED
    key.output_prefix_type = PREFIXES[probe.get("output_prefix", "RAW")]
    key.key_data.type_url = probe["type_url"]
    key.key_data.value = bytes.fromhex(probe["key_value_hex"])
    key.key_data.key_material_type = tink_pb2.KeyData.SYMMETRIC
    handle = binary_format.parse(ks.SerializeToString(), TOKEN)
    sa = handle.primitive(streaming_aead.StreamingAead)
    pt = b"probe plaintext " * 9
    if decrypt(sa, encrypt(sa, pt, b"ad"), b"ad") != pt:
        return "refused: round trip mismatch"
    return "accepted"


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    jobs_path, results_path = sys.argv[1], sys.argv[2]
    base = os.path.dirname(os.path.abspath(jobs_path))
    with open(jobs_path) as f:
        spec = json.load(f)
    results = {"keysets": {}, "jobs": {}, "probes": {}}
    prims = {}
    for name, ks in spec.get("keysets", {}).items():
        try:
            prims[name] = load_keyset(base, ks).primitive(streaming_aead.StreamingAead)
            results["keysets"][name] = "ok"
        except Exception as e:  # noqa: BLE001 - every refusal is a result
            results["keysets"][name] = err(e)
    for job in spec.get("jobs", []):
        try:
            results["jobs"][job["id"]] = run_job(base, job, prims)
        except Exception as e:  # noqa: BLE001
            results["jobs"][job["id"]] = err(e)
    for probe in spec.get("probes", []):
        try:
            results["probes"][probe["id"]] = run_probe(probe)
        except Exception as e:  # noqa: BLE001
            results["probes"][probe["id"]] = "refused: " + err(e)[7:]
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
