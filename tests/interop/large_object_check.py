#!/usr/bin/env python3
"""Large stored objects, read and written by Google's Tink (Python, C++ core)
exactly as docs/format.md ("Large stored objects") tells a Tink user to.

Usage:

    python3 -m pip install tink==1.16.1
    python3 tests/interop/large_object_check.py read  KEYSET.json OBJECT KEY_NAME EXPECTED [NAMESPACE]
    python3 tests/interop/large_object_check.py write KEYSET.json PLAINTEXT KEY_NAME OBJECT [NAMESPACE]

KEYSET.json is the store's streaming keyset (cleartext Tink JSON). OBJECT is
a stored object's bytes: ``0x01 || BE32(key ID) || Tink streaming
ciphertext``. The associated data is the UTF-8 key name, or
``NAMESPACE || 0x00 || key name`` with a namespace.

``read`` checks the 5-byte prefix (byte 0 is 0x01, bytes 1-4 the ID of a key
of the streaming keyset), drops it, and decrypts the rest with Tink's
StreamingAead decrypting stream, 64 KiB at a time, comparing with EXPECTED
as it goes. ``write`` encrypts PLAINTEXT with the keyset's primary and
prepends its prefix. Prints ``ok`` on success; fails with a message
otherwise. Run by ``crates/encstore/tests/large_objects.rs``.
"""

from __future__ import annotations

import io
import sys

import tink
from tink import secret_key_access, streaming_aead
from tink import json_proto_keyset_format as json_format

streaming_aead.register()
CHUNK = 64 << 10


def load(path: str):
    with open(path) as f:
        text = f.read()
    handle = json_format.parse(text, secret_key_access.TOKEN)
    info = handle.keyset_info()
    ids = {k.key_id for k in info.key_info}
    return handle.primitive(streaming_aead.StreamingAead), ids, info.primary_key_id


def associated_data(key_name: str, namespace: str | None) -> bytes:
    name = key_name.encode()
    if namespace is None:
        return name
    return namespace.encode() + b"\x00" + name


def read(keyset: str, obj: str, key_name: str, expected: str, namespace: str | None) -> None:
    sa, ids, _ = load(keyset)
    with open(obj, "rb") as f:
        data = f.read()
    if len(data) < 5 or data[0] != 0x01:
        raise SystemExit("not a large object: byte 0 is not 0x01")
    key_id = int.from_bytes(data[1:5], "big")
    if key_id not in ids:
        raise SystemExit(f"the prefix names key {key_id}, not a key of the streaming keyset")
    ad = associated_data(key_name, namespace)
    with open(expected, "rb") as want, sa.new_decrypting_stream(io.BytesIO(data[5:]), ad) as ds:
        total = 0
        while True:
            chunk = ds.read(CHUNK)
            if not chunk:
                break
            if want.read(len(chunk)) != chunk:
                raise SystemExit(f"plaintext differs near byte {total}")
            total += len(chunk)
        if want.read(1):
            raise SystemExit(f"plaintext ends early after {total} bytes")


def write(keyset: str, plaintext: str, key_name: str, obj: str, namespace: str | None) -> None:
    sa, _, primary = load(keyset)
    out = io.BytesIO()
    close = out.close
    out.close = lambda: None  # Tink closes the destination with the stream.
    with open(plaintext, "rb") as src, sa.new_encrypting_stream(
        out, associated_data(key_name, namespace)
    ) as es:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            es.write(chunk)
    data = b"\x01" + primary.to_bytes(4, "big") + out.getvalue()
    close()
    with open(obj, "wb") as f:
        f.write(data)


def main(argv: list[str]) -> None:
    if len(argv) not in (6, 7) or argv[1] not in ("read", "write"):
        raise SystemExit(__doc__)
    namespace = argv[6] if len(argv) == 7 else None
    if argv[1] == "read":
        read(argv[2], argv[3], argv[4], argv[5], namespace)
    else:
        write(argv[2], argv[3], argv[4], argv[5], namespace)
    print("ok")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except tink.TinkError as e:
        raise SystemExit(f"Tink refused it: {e}")
