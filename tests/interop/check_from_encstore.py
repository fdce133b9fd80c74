#!/usr/bin/env python3
"""Reverse interop: check, with Google's Tink (Python), artifacts written by encstore.

Usage:

    python3 -m pip install tink==1.16.1 cryptography
    python3 tests/interop/check_from_encstore.py DIR

``DIR/manifest.json`` (written by ``tests/interop/reverse.sh``) lists what to
check; paths are relative to DIR::

    {
      "masters": {NAME: {"file": PATH, "format": "json"|"binary"}},
      "keysets": {
        NAME: {"file": PATH, "format": "json"|"binary",
               "master_keyset": MASTER-NAME or null,
               "keyset_associated_data_hex": HEX or null,
               "expect": {                        # optional
                 "primary_key_id": N,
                 "num_keys": N,
                 "key_ids": [N, ...]}}            # optional subset check
      },
      "cases": [
        {"keyset": NAME, "ciphertext_file": PATH, "plaintext_file": PATH,
         "associated_data_hex": HEX}
      ]
    }

For every keyset, Python Tink must parse it (cleartext, or EncryptedKeyset
decrypted with the master keyset and the keyset associated data) and build an
AEAD from it, or a StreamingAead for a keyset of streaming AEAD keys (the
encstore CLI writes no streaming ciphertexts: those keysets have no cases;
streaming ciphertexts are checked by streaming_check.py).  For every encrypted keyset, the ``keysetInfo`` that encstore
wrote in clear must be present and must agree with the decrypted keyset
(primary, and for each key: ID, type URL, status, output prefix type).  For
every case, Tink must decrypt the ciphertext to exactly the plaintext.

One exception: Python Tink 1.16 parses ChaCha20Poly1305Key keysets but has
no key manager to use them. A keyset whose live keys are all
ChaCha20Poly1305Key is parsed (and decrypted, if encrypted) by Tink, and its
ciphertexts are decrypted with the ``cryptography`` package in Tink's wire
layout; the summary line counts these.

Prints one line per failure and exits 1 if anything failed, 0 otherwise.
"""

from __future__ import annotations

import json
import os
import sys

import tink
from tink import aead, secret_key_access, streaming_aead
from tink import json_proto_keyset_format as json_format
from tink import proto_keyset_format as binary_format
from google.protobuf import json_format as pb_json
from tink.proto import tink_pb2

aead.register()
streaming_aead.register()
TOKEN = secret_key_access.TOKEN


def read(base, rel, fmt):
    with open(os.path.join(base, rel), "rb") as f:
        data = f.read()
    return data.decode("utf-8") if fmt == "json" else data


def keyset_proto(handle) -> tink_pb2.Keyset:
    return tink_pb2.Keyset.FromString(binary_format.serialize(handle, TOKEN))


def info_of_keyset(ks: tink_pb2.Keyset) -> tink_pb2.KeysetInfo:
    info = tink_pb2.KeysetInfo(primary_key_id=ks.primary_key_id)
    for k in ks.key:
        info.key_info.add(
            type_url=k.key_data.type_url if k.HasField("key_data") else "",
            status=k.status,
            key_id=k.key_id,
            output_prefix_type=k.output_prefix_type,
        )
    return info


class ChaChaFallback:
    """Python Tink 1.16 parses ChaCha20Poly1305Key keysets but has no key
    manager to use them. For a keyset whose live keys are all of that type,
    decrypt as Tink's AEAD does (prefix lookup, then RAW keys) with the
    `cryptography` package: prefix || 12-byte nonce || ciphertext || tag."""

    URL = "type.googleapis.com/google.crypto.tink.ChaCha20Poly1305Key"

    def __init__(self, keys):
        self.keys = keys  # [(prefix bytes, 32-byte key)]

    @classmethod
    def for_keyset(cls, ks):
        try:
            from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: F401
            from tink.proto import chacha20_poly1305_pb2
        except ImportError:
            return None
        keys = []
        for k in ks.key:
            if k.status == tink_pb2.DESTROYED:
                continue
            if k.key_data.type_url != cls.URL:
                return None
            if k.status != tink_pb2.ENABLED:
                continue
            proto = chacha20_poly1305_pb2.ChaCha20Poly1305Key.FromString(k.key_data.value)
            if proto.version != 0 or len(proto.key_value) != 32:
                return None
            if k.output_prefix_type == tink_pb2.TINK:
                prefix = b"\x01" + k.key_id.to_bytes(4, "big")
            elif k.output_prefix_type in (tink_pb2.LEGACY, tink_pb2.CRUNCHY):
                prefix = b"\x00" + k.key_id.to_bytes(4, "big")
            else:
                prefix = b""
            keys.append((prefix, proto.key_value))
        return cls(keys)

    def decrypt(self, ct: bytes, ad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
        for prefix, key in sorted(self.keys, key=lambda pk: pk[0] == b""):
            if prefix and not ct.startswith(prefix):
                continue
            body = ct[len(prefix):]
            if len(body) < 28:
                continue
            try:
                return ChaCha20Poly1305(key).decrypt(body[:12], body[12:], ad)
            except InvalidTag:
                continue
        raise tink.TinkError("decryption failed (ChaCha20Poly1305 fallback)")


def check(base: str) -> list[str]:
    with open(os.path.join(base, "manifest.json")) as f:
        manifest = json.load(f)
    failures: list[str] = []
    masters = {}
    for name, m in manifest.get("masters", {}).items():
        try:
            fmt = json_format if m["format"] == "json" else binary_format
            masters[name] = fmt.parse(read(base, m["file"], m["format"]), TOKEN).primitive(aead.Aead)
        except Exception as e:  # noqa: BLE001
            failures.append(f"master {name} ({m['file']}): Tink cannot use it: {e}")

    aeads = {}
    streams = 0
    checked_info = 0
    fallbacks = 0
    for name, k in manifest["keysets"].items():
        where = f"keyset {name} ({k['file']}, {k['format']})"
        fmt = json_format if k["format"] == "json" else binary_format
        try:
            data = read(base, k["file"], k["format"])
            if k.get("master_keyset"):
                ad = bytes.fromhex(k.get("keyset_associated_data_hex") or "")
                handle = fmt.parse_encrypted(data, masters[k["master_keyset"]], ad)
            else:
                handle = fmt.parse(data, TOKEN)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{where}: Tink cannot read it: {e}")
            continue
        ks = keyset_proto(handle)
        try:
            if any(x.key_data.type_url.endswith("StreamingKey") for x in ks.key):
                handle.primitive(streaming_aead.StreamingAead)
                streams += 1
            else:
                aeads[name] = handle.primitive(aead.Aead)
        except tink.TinkError as e:
            fallback = ChaChaFallback.for_keyset(ks)
            if fallback is None:
                failures.append(f"{where}: Tink cannot use it: {e}")
                continue
            aeads[name] = fallback
            fallbacks += 1
        exp = k.get("expect") or {}
        if "primary_key_id" in exp and ks.primary_key_id != exp["primary_key_id"]:
            failures.append(f"{where}: primary is {ks.primary_key_id}, expected {exp['primary_key_id']}")
        if "num_keys" in exp and len(ks.key) != exp["num_keys"]:
            failures.append(f"{where}: {len(ks.key)} keys, expected {exp['num_keys']}")
        for kid in exp.get("key_ids", []):
            if kid not in [x.key_id for x in ks.key]:
                failures.append(f"{where}: key {kid} missing")
        if k.get("master_keyset"):
            # Tink's view of the clear keysetInfo must match the keyset.
            try:
                if k["format"] == "json":
                    enc = pb_json.Parse(data, tink_pb2.EncryptedKeyset())
                else:
                    enc = tink_pb2.EncryptedKeyset.FromString(data)
            except Exception as e:  # noqa: BLE001
                failures.append(f"{where}: not an EncryptedKeyset Tink can parse: {e}")
                continue
            if not enc.HasField("keyset_info"):
                failures.append(f"{where}: EncryptedKeyset has no keysetInfo")
            elif enc.keyset_info != info_of_keyset(ks):
                failures.append(f"{where}: keysetInfo does not match the keyset:\n  "
                                f"info: {enc.keyset_info}\n  keyset: {info_of_keyset(ks)}")
            else:
                checked_info += 1

    ok = 0
    for i, c in enumerate(manifest.get("cases", [])):
        where = f"case {i} (keyset {c['keyset']}, {c['ciphertext_file']})"
        if c["keyset"] not in aeads:
            failures.append(f"{where}: keyset could not be loaded")
            continue
        with open(os.path.join(base, c["ciphertext_file"]), "rb") as f:
            ct = f.read()
        with open(os.path.join(base, c["plaintext_file"]), "rb") as f:
            pt = f.read()
        ad = bytes.fromhex(c.get("associated_data_hex") or "")
        try:
            got = aeads[c["keyset"]].decrypt(ct, ad)
        except tink.TinkError as e:
            failures.append(f"{where}: does not decrypt: {e}")
            continue
        if got != pt:
            failures.append(f"{where}: Tink decrypted {len(got)} bytes that differ from the plaintext")
            continue
        ok += 1

    print(f"check_from_encstore: {len(aeads) + streams}/{len(manifest['keysets'])} keysets read "
          f"({streams} streaming), "
          f"{checked_info} keysetInfo checked, {ok}/{len(manifest.get('cases', []))} ciphertexts decrypted"
          + (f" ({fallbacks} ChaCha20Poly1305 keysets parsed by Tink, decrypted with `cryptography`)"
             if fallbacks else ""))
    return failures


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: check_from_encstore.py DIR", file=sys.stderr)
        return 2
    failures = check(argv[1])
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    if failures:
        print(f"check_from_encstore: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
