#!/usr/bin/env python3
"""Generate Tink interop vectors for encstore, using Google's Tink (Python).

Usage (from the repository root):

    python3 -m pip install tink==1.16.1 cryptography
    python3 tests/interop/generate.py            # writes tests/interop/vectors/

What it writes into ``tests/interop/vectors/`` (file names are fixed, so a
re-run replaces every file; key material and ciphertexts are fresh random
bytes each run, so a re-run changes their contents -- commit the new set as a
whole):

* ``master_*.json``      cleartext AEAD keysets used as key-encryption keys.
* ``good/<name>.*``      keysets Tink writes and uses: JSON and binary,
                         cleartext and EncryptedKeyset (with and without
                         keyset associated data), TINK/RAW/LEGACY/CRUNCHY
                         prefixes, every AEAD key type Python Tink 1.16 can
                         generate, rotated keysets, disabled and destroyed
                         keys.
* ``bad/<name>.*``       keysets a reader must refuse, each with the error
                         kind it must refuse them with.
* ``manifest.json``      the index (schema below).

Every vector is checked against Python Tink before it is written: a good
ciphertext must decrypt with Tink, a bad one must fail with Tink.  For bad
keysets, Tink's own result is recorded in ``tink_result`` ("refused: <msg>"
or "accepted"), so the rare place where encstore is deliberately stricter
than Tink is visible in the manifest.

Manifest schema (version 1)::

    {
      "schema": 1, "tink_python": "1.16.1", "generator": "tests/interop/generate.py",
      "error_kinds": {kind: description, ...},
      "masters": {name: {"file", "format"}},
      "keysets": {                         # good logical keysets
        name: {
          "description",
          "primary_key_id",
          "keys": [{"key_id", "type_url", "status", "output_prefix_type"}],
          "files": [                       # the same keyset, several encodings
            {"file", "format": "json"|"binary", "encrypted": bool,
             "master_keyset": name|null, "keyset_associated_data_hex": hex|null}
          ]
        }
      },
      "cases": [                           # ciphertexts, decrypted with every file of the keyset
        {"id", "oracle", "keyset", "written_by_key_id"|null, "plaintext_hex",
         "associated_data_hex", "ciphertext_hex",
         "expect": "ok" | "decryption_failed", "note"}
      ],
      "bad_keysets": [
        {"id", "file", "format", "encrypted", "master_keyset",
         "keyset_associated_data_hex", "expect": <error kind>,
         "tink_result", "note"}
      ]
    }

Paths in the manifest are relative to the vectors directory.  Key IDs are
unsigned 32-bit decimals.

Python Tink 1.16 has no key manager for ChaCha20Poly1305Key (only
XChaCha20Poly1305Key), so Tink cannot be the oracle for that type: the
keyset ``chacha20_poly1305_by_hand`` is built from Tink's protos and its
ciphertexts come from the ``cryptography`` package in Tink's wire layout
(prefix || 12-byte nonce || ciphertext || tag); those cases have
``"oracle": "cryptography ..."`` (every other case has ``"oracle": "tink"``,
and Tink itself decrypted, or refused, it). Without ``cryptography`` the
keyset is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys

import tink
from tink import aead, mac, cleartext_keyset_handle, secret_key_access
from tink import json_proto_keyset_format as json_format
from tink import proto_keyset_format as binary_format
from google.protobuf import json_format as pb_json
from tink.proto import aes_gcm_pb2, chacha20_poly1305_pb2, tink_pb2, xchacha20_poly1305_pb2

aead.register()
mac.register()

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "vectors")
T = aead.aead_key_templates
TYPE_PREFIX = "type.googleapis.com/google.crypto.tink."
TOKEN = secret_key_access.TOKEN

ERROR_KINDS = {
    "decryption_failed": "the ciphertext does not decrypt under any enabled key (no detail)",
    "no_primary": "the keyset names no primary key (primaryKeyId absent or 0)",
    "primary_missing": "primaryKeyId names a key that is not in the keyset",
    "primary_not_enabled": "the primary key is not ENABLED",
    "duplicate_key_id": "two keys share a key ID",
    "empty_keyset": "the keyset has no keys",
    "unknown_type_url": "a key has a type URL Tink does not know",
    "not_aead": "a key has a Tink type URL that is not an AEAD key type",
    "wrong_key_size": "a key's material has a size its type does not allow",
    "unsupported_version": "a key proto's version is above what Tink supports (0)",
    "invalid_parameter": "a key parameter is outside Tink's rules",
    "malformed_key": "a key's KeyData.value is not a valid protobuf of its type",
    "unknown_status": "a key has status UNKNOWN_STATUS",
    "unknown_prefix": "a key has output prefix type UNKNOWN_PREFIX",
    "malformed_json": "the keyset file is not valid Tink JSON",
    "malformed_protobuf": "the keyset file is not a valid binary Keyset/EncryptedKeyset",
    "keyset_decryption_failed": "an EncryptedKeyset does not decrypt (wrong master key or associated data, or tampered)",
}

# Plaintexts and associated data used for ciphertext cases.
PLAINTEXTS = {
    "empty": b"",
    "short": b"hello, encstore",
    "1kib": bytes((i * 7 + 3) & 0xFF for i in range(1024)),
    "binary": bytes([0, 255, 1, 254, 0, 0, 128, 127, 10, 13]),
}
ADS = {
    "empty": b"",
    "ascii": b"certificates/example.com/example.com.crt",
    "binary": bytes([0, 1, 2, 0xFE, 0xFF, 0]),
}


# --------------------------------------------------------------------------
# Keyset helpers: we work on tink_pb2.Keyset protos and let Tink use them.

def keyset_of(handle) -> tink_pb2.Keyset:
    return tink_pb2.Keyset.FromString(binary_format.serialize(handle, TOKEN))


def new_key(template, key_id=None, prefix=None) -> tink_pb2.Keyset.Key:
    """A fresh key generated by Tink from `template`, optionally with its
    key ID and output prefix type edited (LEGACY/CRUNCHY have no template)."""
    if prefix is not None:
        t = tink_pb2.KeyTemplate()
        t.CopyFrom(template)
        t.output_prefix_type = prefix
        template = t
    key = tink_pb2.Keyset.Key()
    key.CopyFrom(keyset_of(tink.new_keyset_handle(template)).key[0])
    if key_id is not None:
        key.key_id = key_id
    return key


def make_keyset(keys, primary_key_id) -> tink_pb2.Keyset:
    ks = tink_pb2.Keyset()
    for k in keys:
        ks.key.append(k)
    if primary_key_id is not None:
        ks.primary_key_id = primary_key_id
    return ks


def handle_of(ks: tink_pb2.Keyset):
    return cleartext_keyset_handle.from_keyset(ks)


def aead_of(ks: tink_pb2.Keyset):
    return handle_of(ks).primitive(aead.Aead)


def encrypt_with_key(ks, key: tink_pb2.Keyset.Key, pt: bytes, ad: bytes) -> bytes:
    """Encrypts with Tink's keyset AEAD after promoting `key` (enabled) in a
    copy of `ks`; with `ks` None, in a keyset of its own."""
    k = tink_pb2.Keyset.Key()
    k.CopyFrom(key)
    k.status = tink_pb2.ENABLED
    if ks is None:
        return aead_of(make_keyset([k], k.key_id)).encrypt(pt, ad)
    copy = tink_pb2.Keyset()
    copy.CopyFrom(ks)
    for i, other in enumerate(copy.key):
        if other.key_id == k.key_id:
            copy.key[i].CopyFrom(k)
    copy.primary_key_id = k.key_id
    return aead_of(copy).encrypt(pt, ad)


def tink_decrypts(ks: tink_pb2.Keyset, ct: bytes, ad: bytes):
    try:
        return aead_of(ks).decrypt(ct, ad)
    except tink.TinkError:
        return None


def prefix_name(p: int) -> str:
    return tink_pb2.OutputPrefixType.Name(p)


def status_name(s: int) -> str:
    return tink_pb2.KeyStatusType.Name(s)


def deterministic_id(label: str) -> int:
    """A fixed, label-derived key ID (so IDs are stable across re-runs where
    we choose them); never 0."""
    v = int.from_bytes(hashlib.sha256(label.encode()).digest()[:4], "big")
    return v or 1


# --------------------------------------------------------------------------
# Writers

class Writer:
    def __init__(self):
        self.manifest = {
            "schema": 1,
            "tink_python": tink.__version__ if hasattr(tink, "__version__") else "1.16.1",
            "generator": "tests/interop/generate.py",
            "error_kinds": ERROR_KINDS,
            "masters": {},
            "keysets": {},
            "cases": [],
            "bad_keysets": [],
        }
        self.masters = {}

    def write_file(self, rel: str, data) -> None:
        path = os.path.join(OUT, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = "w" if isinstance(data, str) else "wb"
        with open(path, mode) as f:
            f.write(data)

    def add_master(self, name: str, template) -> None:
        handle = tink.new_keyset_handle(template)
        rel = f"master_{name}.json"
        self.write_file(rel, json_format.serialize(handle, TOKEN))
        self.masters[name] = handle.primitive(aead.Aead)
        self.manifest["masters"][name] = {"file": rel, "format": "json"}

    def encodings(self, base: str, ks: tink_pb2.Keyset, which="all", tink_can_use=True):
        """Writes `ks` in several encodings; returns the manifest file list."""
        if not tink_can_use:
            return self.encodings_by_hand(base, ks)
        handle = handle_of(ks)
        master = "aes256_gcm"
        m = self.masters[master]
        ad = b"encstore keyset " + base.encode()
        files = []

        def add(rel, data, fmt, encrypted, ad_hex=None):
            self.write_file(rel, data)
            files.append({
                "file": rel,
                "format": fmt,
                "encrypted": encrypted,
                "master_keyset": master if encrypted else None,
                "keyset_associated_data_hex": ad_hex,
            })

        add(f"good/{base}.json", json_format.serialize(handle, TOKEN), "json", False)
        add(f"good/{base}.bin", binary_format.serialize(handle, TOKEN), "binary", False)
        if which == "all":
            add(f"good/{base}.enc.json", json_format.serialize_encrypted(handle, m, b""), "json", True, "")
            add(f"good/{base}.enc-ad.json", json_format.serialize_encrypted(handle, m, ad), "json", True, ad.hex())
            add(f"good/{base}.enc.bin", binary_format.serialize_encrypted(handle, m, b""), "binary", True, "")
            add(f"good/{base}.enc-ad.bin", binary_format.serialize_encrypted(handle, m, ad), "binary", True, ad.hex())
        # Prove Tink reads back every encoding and agrees on the keyset.
        for f in files:
            path = os.path.join(OUT, f["file"])
            data = open(path, "rb").read()
            fmt = json_format if f["format"] == "json" else binary_format
            if f["format"] == "json":
                data = data.decode()
            if f["encrypted"]:
                h = fmt.parse_encrypted(data, m, bytes.fromhex(f["keyset_associated_data_hex"]))
            else:
                h = fmt.parse(data, TOKEN)
            assert keyset_of(h) == ks, f["file"]
        return files

    def encodings_by_hand(self, base, ks):
        """Like `encodings`, for key types Python Tink cannot load: the same
        writers Tink uses (protobuf JSON and binary; the EncryptedKeyset is
        the master AEAD's encryption of the binary keyset, with keysetInfo)."""
        m = self.masters["aes256_gcm"]
        ad = b"encstore keyset " + base.encode()
        files = []
        info = tink_pb2.KeysetInfo(primary_key_id=ks.primary_key_id)
        for k in ks.key:
            info.key_info.add(type_url=k.key_data.type_url, status=k.status, key_id=k.key_id,
                              output_prefix_type=k.output_prefix_type)
        for suffix, fmt, encrypted, kad in (("json", "json", False, None), ("bin", "binary", False, None),
                                            ("enc-ad.json", "json", True, ad), ("enc.bin", "binary", True, b"")):
            if encrypted:
                enc = tink_pb2.EncryptedKeyset(encrypted_keyset=m.encrypt(ks.SerializeToString(), kad),
                                               keyset_info=info)
                data = pb_json.MessageToJson(enc) if fmt == "json" else enc.SerializeToString()
            else:
                data = pb_json.MessageToJson(ks) if fmt == "json" else ks.SerializeToString()
            rel = f"good/{base}.{suffix}"
            self.write_file(rel, data)
            files.append({"file": rel, "format": fmt, "encrypted": encrypted,
                          "master_keyset": "aes256_gcm" if encrypted else None,
                          "keyset_associated_data_hex": kad.hex() if encrypted else None})
        return files

    def add_keyset(self, name, ks, description, which="all", tink_can_use=True):
        files = self.encodings(name, ks, which, tink_can_use)
        self.manifest["keysets"][name] = {
            "description": description,
            "primary_key_id": ks.primary_key_id,
            "keys": [{
                "key_id": k.key_id,
                "type_url": k.key_data.type_url if k.HasField("key_data") else None,
                "status": status_name(k.status),
                "output_prefix_type": prefix_name(k.output_prefix_type),
            } for k in ks.key],
            "files": files,
        }

    def add_case(self, keyset_name, ks, ct, pt, ad, expect, note, key_id=None, oracle="tink"):
        if ks is not None:  # None: a key type Python Tink cannot use (see 5b)
            got = tink_decrypts(ks, ct, ad)
            if expect == "ok":
                assert got == pt, f"Tink did not decrypt good case {keyset_name}/{note}"
            else:
                assert got is None, f"Tink decrypted bad case {keyset_name}/{note}"
        n = len(self.manifest["cases"])
        self.manifest["cases"].append({
            "oracle": oracle,
            "id": f"{keyset_name}/{n:04d}",
            "keyset": keyset_name,
            "written_by_key_id": key_id,
            "plaintext_hex": pt.hex(),
            "associated_data_hex": ad.hex(),
            "ciphertext_hex": ct.hex(),
            "expect": expect,
            "note": note,
        })

    def good_cases_for_key(self, name, ks, key, all_combos=True):
        """Ciphertexts written by `key` (made primary), all decryptable by ks."""
        for pn, pt in PLAINTEXTS.items():
            for an, ad in ADS.items():
                if not all_combos and not (pn == "short" or an == "ascii"):
                    continue
                if pn == "1kib" and an != "ascii":
                    continue  # keep the vectors small
                ct = encrypt_with_key(ks, key, pt, ad)
                self.add_case(name, ks, ct, pt, ad, "ok",
                              f"key {key.key_id} ({prefix_name(key.output_prefix_type)} "
                              f"{key.key_data.type_url[len(TYPE_PREFIX):]}), plaintext {pn}, ad {an}",
                              key.key_id)

    def primary_cases(self, name, ks):
        """Ciphertexts written by Tink's own keyset primitive (the primary)."""
        a = aead_of(ks)
        for pn in ("empty", "short", "binary"):
            ct = a.encrypt(PLAINTEXTS[pn], ADS["ascii"])
            self.add_case(name, ks, ct, PLAINTEXTS[pn], ADS["ascii"], "ok",
                          f"keyset primitive (primary {ks.primary_key_id}), plaintext {pn}",
                          ks.primary_key_id)

    def add_bad_keyset(self, name, data, fmt, expect, note, encrypted=False,
                       master=None, ad_hex=None, tink_check=None):
        ext = "json" if fmt == "json" else "bin"
        stem = name[: -len("_" + ext)] if name.endswith("_" + ext) else name
        rel = f"bad/{stem}.{ext}"
        self.write_file(rel, data)
        # What does Tink itself do with it?
        try:
            if tink_check is not None:
                tink_check()
            else:
                raw = data.encode() if isinstance(data, str) else data
                f = json_format if fmt == "json" else binary_format
                arg = raw.decode("utf-8", "replace") if fmt == "json" else raw
                if encrypted:
                    h = f.parse_encrypted(arg, self.masters[master], bytes.fromhex(ad_hex))
                else:
                    h = f.parse(arg, TOKEN)
                h.primitive(aead.Aead)
            tink_result = "accepted"
        except Exception as e:  # noqa: BLE001 -- any refusal is a refusal
            tink_result = "refused: " + str(e).splitlines()[0][:200]
        self.manifest["bad_keysets"].append({
            "id": name,
            "file": rel,
            "format": fmt,
            "encrypted": encrypted,
            "master_keyset": master,
            "keyset_associated_data_hex": ad_hex,
            "expect": expect,
            "tink_result": tink_result,
            "note": note,
        })

    def finish(self):
        self.write_file("manifest.json", json.dumps(self.manifest, indent=1, sort_keys=False) + "\n")


# --------------------------------------------------------------------------

def main() -> int:
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    w = Writer()
    w.add_master("aes256_gcm", T.AES256_GCM)
    w.add_master("wrong_aes256_gcm", T.AES256_GCM)

    # 1. One key per template, TINK prefix, every encoding.
    k = new_key(T.AES256_GCM)
    ks = make_keyset([k], k.key_id)
    w.add_keyset("single_aes256_gcm", ks, "one AES256_GCM key, TINK prefix")
    w.good_cases_for_key("single_aes256_gcm", ks, k)
    w.primary_cases("single_aes256_gcm", ks)

    # 2. RAW only.
    k = new_key(T.AES128_GCM_RAW)
    ks = raw_ks = make_keyset([k], k.key_id)
    w.add_keyset("single_aes128_gcm_raw", ks, "one AES128_GCM_RAW key, RAW prefix")
    w.good_cases_for_key("single_aes128_gcm_raw", ks, k)

    # 3. LEGACY only (no Tink template: the prefix type is edited).
    k = new_key(T.AES128_GCM, prefix=tink_pb2.LEGACY)
    ks = make_keyset([k], k.key_id)
    w.add_keyset("single_aes128_gcm_legacy", ks, "one AES128_GCM key with LEGACY prefix")
    w.good_cases_for_key("single_aes128_gcm_legacy", ks, k)

    # 4. Key IDs at the edges of uint32 (Java writes them unsigned).
    k1 = new_key(T.AES256_GCM, key_id=0xFFFFFFFF)
    k2 = new_key(T.AES256_GCM, key_id=0x80000000)
    k3 = new_key(T.AES256_GCM, key_id=1)
    ks = make_keyset([k1, k2, k3], k1.key_id)
    w.add_keyset("edge_key_ids", ks, "key IDs 4294967295 (primary), 2147483648 and 1")
    for key in (k1, k2, k3):
        w.good_cases_for_key("edge_key_ids", ks, key, all_combos=False)

    # 4b. Java writes key IDs unsigned, but its reader also accepts the
    #     signed int32 spelling older writers produced; accept it too.
    #     (Python Tink refuses negative IDs, so this file is hand-written from
    #     Tink's JSON and only the ciphertexts are checked with Tink.)
    k = new_key(T.AES128_GCM, key_id=0xF0000001)
    ks = make_keyset([k], k.key_id)
    w.add_keyset("java_signed_key_id", ks, "key ID 4026531841 (0xF0000001); the .signed.json file "
                 "spells it -268435455, as old Java Tink wrote it", which="cleartext")
    signed = json_format.serialize(handle_of(ks), TOKEN).replace("4026531841", "-268435455")
    assert signed.count("-268435455") == 2
    w.write_file("good/java_signed_key_id.signed.json", signed)
    w.manifest["keysets"]["java_signed_key_id"]["files"].append({
        "file": "good/java_signed_key_id.signed.json", "format": "json", "encrypted": False,
        "master_keyset": None, "keyset_associated_data_hex": None,
        "note": "hand-edited: signed key IDs (Java Tink accepts them; Python Tink does not)",
    })
    w.good_cases_for_key("java_signed_key_id", ks, k, all_combos=False)

    # 5. Mixed: one key of every template Python Tink has, plus LEGACY and
    #    CRUNCHY variants; every key writes ciphertexts in turn.
    names = sorted(n for n in dir(T) if n.isupper() and not n.startswith("_"))
    keys = [new_key(getattr(T, n), key_id=deterministic_id("mixed/" + n)) for n in names]
    for n in ("AES128_GCM", "AES256_GCM", "AES128_GCM_SIV", "AES128_EAX",
              "AES128_CTR_HMAC_SHA256", "XCHACHA20_POLY1305"):
        keys.append(new_key(getattr(T, n), key_id=deterministic_id("mixed/legacy/" + n),
                            prefix=tink_pb2.LEGACY))
    keys.append(new_key(T.AES256_GCM, key_id=deterministic_id("mixed/crunchy"),
                        prefix=tink_pb2.CRUNCHY))
    primary = keys[0].key_id
    ks = make_keyset(keys, primary)
    w.add_keyset("mixed_all_types", ks,
                 "one key per Python Tink 1.16 AEAD template (" + ", ".join(names) +
                 ") plus LEGACY and CRUNCHY variants")
    for key in keys:
        w.good_cases_for_key("mixed_all_types", ks, key, all_combos=False)
    w.primary_cases("mixed_all_types", ks)

    # 5b. ChaCha20-Poly1305. Python Tink 1.16 has no key manager for
    #     ChaCha20Poly1305Key, so Tink cannot be the oracle here: the keys are
    #     built as Tink protos by hand and the ciphertexts are made with the
    #     `cryptography` package in Tink's wire layout (prefix || 12-byte
    #     nonce || ciphertext || 16-byte tag). The cases say so in "oracle".
    try:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    except ImportError:
        ChaCha20Poly1305 = None
    if ChaCha20Poly1305 is not None:
        cc_keys = []
        for prefix, label in ((tink_pb2.TINK, "tink"), (tink_pb2.RAW, "raw"), (tink_pb2.LEGACY, "legacy")):
            kk = tink_pb2.Keyset.Key(
                key_id=deterministic_id("chacha/" + label), status=tink_pb2.ENABLED,
                output_prefix_type=prefix)
            kk.key_data.type_url = TYPE_PREFIX + "ChaCha20Poly1305Key"
            kk.key_data.key_material_type = tink_pb2.KeyData.SYMMETRIC
            kk.key_data.value = chacha20_poly1305_pb2.ChaCha20Poly1305Key(
                version=0, key_value=os.urandom(32)).SerializeToString()
            cc_keys.append(kk)
        ks = make_keyset(cc_keys, cc_keys[0].key_id)
        w.add_keyset("chacha20_poly1305_by_hand", ks,
                     "ChaCha20Poly1305Key with TINK, RAW and LEGACY prefixes (Python Tink cannot use "
                     "this type; keyset written from protos, ciphertexts by `cryptography`)", tink_can_use=False)
        for kk in cc_keys:
            raw_key = chacha20_poly1305_pb2.ChaCha20Poly1305Key.FromString(kk.key_data.value).key_value
            prefix = {tink_pb2.TINK: b"\x01", tink_pb2.LEGACY: b"\x00", tink_pb2.RAW: None}[kk.output_prefix_type]
            head = b"" if prefix is None else prefix + kk.key_id.to_bytes(4, "big")
            for pn, an in (("empty", "empty"), ("short", "ascii"), ("1kib", "ascii"), ("binary", "binary")):
                pt, ad = PLAINTEXTS[pn], ADS[an]
                # For AEAD, LEGACY is only the 0x00 || id prefix (as the
                # Tink-made LEGACY vectors above show).
                nonce = os.urandom(12)
                ct = head + nonce + ChaCha20Poly1305(raw_key).encrypt(nonce, pt, ad)
                w.add_case("chacha20_poly1305_by_hand", None, ct, pt, ad, "ok",
                           f"key {kk.key_id} ({prefix_name(kk.output_prefix_type)} ChaCha20Poly1305Key), "
                           f"plaintext {pn}, ad {an}", kk.key_id,
                           oracle="cryptography ChaCha20Poly1305 in Tink's wire layout")
            nonce = os.urandom(12)
            good = head + nonce + ChaCha20Poly1305(raw_key).encrypt(nonce, b"x", b"")
            bad_ct = bytearray(good)
            bad_ct[-1] ^= 1
            w.add_case("chacha20_poly1305_by_hand", None, bytes(bad_ct), b"x", b"", "decryption_failed",
                       f"key {kk.key_id}: last byte flipped", None, oracle="cryptography")

    # 6. Rotated: four generations of AES256_GCM; each generation's data was
    #    written while it was primary; all still decrypt.
    gens = []
    rot_cts = []
    for i in range(4):
        key = new_key(T.AES256_GCM)
        gens.append(key)
        cur = make_keyset(list(gens), key.key_id)
        pt = f"written in generation {i}".encode()
        rot_cts.append((key.key_id, aead_of(cur).encrypt(pt, ADS["ascii"]), pt))
    ks = make_keyset(gens, gens[-1].key_id)
    w.add_keyset("rotated_4", ks, "AES256_GCM rotated 4 times; newest primary, all enabled")
    for kid, ct, pt in rot_cts:
        w.add_case("rotated_4", ks, ct, pt, ADS["ascii"], "ok", f"written when key {kid} was primary", kid)

    # 7. Rotated with a destroyed and a disabled old key, plus a RAW key.
    d1 = new_key(T.AES256_GCM)          # destroyed
    d2 = new_key(T.AES128_GCM)          # disabled
    d3 = new_key(T.XCHACHA20_POLY1305)  # enabled, old
    d4 = new_key(T.AES256_GCM_RAW)      # enabled, RAW
    d5 = new_key(T.AES256_GCM)          # primary
    pre = {}
    for key in (d1, d2, d3, d4, d5):
        pre[key.key_id] = [(pt, ad, encrypt_with_key(None, key, pt, ad))
                           for pt, ad in ((PLAINTEXTS["short"], ADS["ascii"]),
                                          (PLAINTEXTS["binary"], ADS["binary"]))]
    destroyed = tink_pb2.Keyset.Key()
    destroyed.CopyFrom(d1)
    destroyed.status = tink_pb2.DESTROYED
    destroyed.ClearField("key_data")
    d2.status = tink_pb2.DISABLED
    ks = make_keyset([destroyed, d2, d3, d4, d5], d5.key_id)
    w.add_keyset("rotated_disabled_destroyed", ks,
                 "destroyed AES256_GCM (no key data), disabled AES128_GCM, enabled XCHACHA20, "
                 "enabled AES256_GCM_RAW, primary AES256_GCM")
    for key, expect, why in ((d1, "decryption_failed", "destroyed"), (d2, "decryption_failed", "disabled"),
                             (d3, "ok", "enabled old"), (d4, "ok", "enabled RAW"), (d5, "ok", "primary")):
        for pt, ad, ct in pre[key.key_id]:
            w.add_case("rotated_disabled_destroyed", ks, ct, pt, ad, expect,
                       f"written by {why} key {key.key_id}", key.key_id)

    # 8. Bad ciphertexts against good keysets.
    mk = "mixed_all_types"
    ks_mixed = make_keyset(keys, primary)
    a = aead_of(ks_mixed)
    pt, ad = PLAINTEXTS["short"], ADS["ascii"]
    good = a.encrypt(pt, ad)

    def bad(name, ct, note, use_ad=ad, ks_=ks_mixed, kname=mk):
        w.add_case(kname, ks_, ct, pt, use_ad, "decryption_failed", note, None)

    def flip(b, i):
        b = bytearray(b)
        b[i] ^= 0x01
        return bytes(b)

    bad("tag", flip(good, len(good) - 1), "last byte (tag) flipped")
    bad("body", flip(good, 5 + 12 + 2), "ciphertext body byte flipped")
    bad("nonce", flip(good, 6), "nonce byte flipped")
    bad("keyid", flip(good, 4), "key ID in TINK prefix flipped")
    bad("prefixbyte", b"\x02" + good[1:], "TINK prefix version byte changed to 0x02")
    bad("wrongad", good, "wrong associated data", use_ad=b"certificates/other")
    bad("emptyad", good, "associated data dropped", use_ad=b"")
    bad("trunc1", good[:-1], "truncated by one byte")
    bad("trunc_prefix", good[:5], "only the 5-byte prefix")
    bad("trunc4", good[:4], "4 bytes (shorter than a prefix)")
    bad("empty", b"", "empty ciphertext")
    bad("appended", good + b"\x00", "one byte appended")
    stranger = new_key(T.AES256_GCM)
    bad("absent", encrypt_with_key(None, stranger, pt, ad), "TINK key not in the keyset")
    stranger_raw = new_key(T.AES128_GCM_RAW)
    bad("absent_raw", encrypt_with_key(None, stranger_raw, pt, ad), "RAW key not in the keyset")
    # Same key ID as a keyset key but different key material.
    impostor = new_key(T.AES256_GCM, key_id=primary)
    bad("impostor", encrypt_with_key(None, impostor, pt, ad), "TINK prefix of a keyset key, other key material")
    # RAW-keyset tampering.
    rgood = aead_of(raw_ks).encrypt(pt, ad)
    for nm, ct, note in (("tag", flip(rgood, len(rgood) - 1), "RAW: last byte flipped"),
                         ("nonce", flip(rgood, 0), "RAW: first nonce byte flipped"),
                         ("trunc", rgood[:-1], "RAW: truncated by one byte"),
                         ("short", rgood[:27], "RAW: shorter than nonce + tag"),
                         ("tinkprefixed", b"\x01" + rgood, "RAW: a TINK-looking byte prepended")):
        bad(nm, ct, note, ks_=raw_ks, kname="single_aes128_gcm_raw")
    bad("wrongad", rgood, "RAW: wrong associated data", use_ad=b"x", ks_=raw_ks, kname="single_aes128_gcm_raw")

    # 9. Bad keysets.
    base_key = new_key(T.AES128_GCM, key_id=deterministic_id("bad/base"))
    other_key = new_key(T.AES256_GCM, key_id=deterministic_id("bad/other"))

    def jb(ks_):
        # Exactly what Tink's writers do, minus their validation.
        return pb_json.MessageToJson(ks_), ks_.SerializeToString()

    def both(name, ks_, expect, note):
        j, b = jb(ks_)
        w.add_bad_keyset(name + "_json", j, "json", expect, note)
        w.add_bad_keyset(name + "_bin", b, "binary", expect, note)

    both("no_primary", make_keyset([base_key, other_key], None), "no_primary", "primaryKeyId absent")
    both("primary_missing", make_keyset([base_key], 12345), "primary_missing", "primaryKeyId 12345 is not a key")
    dk = tink_pb2.Keyset.Key(); dk.CopyFrom(base_key); dk.status = tink_pb2.DISABLED
    both("primary_disabled", make_keyset([dk, other_key], dk.key_id), "primary_not_enabled", "primary is DISABLED")
    xk = tink_pb2.Keyset.Key(); xk.CopyFrom(base_key); xk.status = tink_pb2.DESTROYED; xk.ClearField("key_data")
    both("primary_destroyed", make_keyset([xk, other_key], xk.key_id), "primary_not_enabled", "primary is DESTROYED")
    dup = tink_pb2.Keyset.Key(); dup.CopyFrom(other_key); dup.key_id = base_key.key_id
    both("duplicate_ids", make_keyset([base_key, dup], base_key.key_id), "duplicate_key_id",
         "two keys with the same ID, one primary")
    dup2 = tink_pb2.Keyset.Key(); dup2.CopyFrom(other_key); dup2.key_id = base_key.key_id; dup2.status = tink_pb2.DISABLED
    both("duplicate_ids_disabled", make_keyset([base_key, dup2], base_key.key_id), "duplicate_key_id",
         "two keys with the same ID, the second disabled (Tink accepts this; encstore refuses)")
    both("empty", make_keyset([], None), "empty_keyset", "no keys at all")

    uk = tink_pb2.Keyset.Key(); uk.CopyFrom(base_key); uk.key_data.type_url = TYPE_PREFIX + "FooBarKey"
    both("unknown_type_url", make_keyset([uk], uk.key_id), "unknown_type_url", "type URL ...FooBarKey")
    uk2 = tink_pb2.Keyset.Key(); uk2.CopyFrom(base_key); uk2.key_data.type_url = "type.example.com/AesGcmKey"
    both("foreign_type_url", make_keyset([uk2], uk2.key_id), "unknown_type_url", "type URL outside Tink's namespace")
    hk = keyset_of(tink.new_keyset_handle(mac.mac_key_templates.HMAC_SHA256_256BITTAG)).key[0]
    both("hmac_key", make_keyset([hk], hk.key_id), "not_aead", "an HmacKey (MAC, not AEAD)")
    hk2 = tink_pb2.Keyset.Key(); hk2.CopyFrom(hk); hk2.status = tink_pb2.ENABLED
    both("hmac_key_secondary", make_keyset([base_key, hk2], base_key.key_id), "not_aead",
         "an enabled HmacKey next to an AEAD primary")

    def aes_gcm_key(size, version=0, key_id=None):
        k_ = tink_pb2.Keyset.Key()
        k_.CopyFrom(base_key)
        kp = aes_gcm_pb2.AesGcmKey(version=version, key_value=os.urandom(size))
        k_.key_data.value = kp.SerializeToString()
        if key_id is not None:
            k_.key_id = key_id
        return k_

    for size in (20, 24, 0):
        kk = aes_gcm_key(size)
        both(f"aes_gcm_key_{size}_bytes", make_keyset([kk], kk.key_id), "wrong_key_size",
             f"AesGcmKey with a {size}-byte key")
    xc = tink_pb2.Keyset.Key(); xc.CopyFrom(base_key)
    xc.key_data.type_url = TYPE_PREFIX + "XChaCha20Poly1305Key"
    xc.key_data.value = xchacha20_poly1305_pb2.XChaCha20Poly1305Key(version=0, key_value=os.urandom(31)).SerializeToString()
    both("xchacha_key_31_bytes", make_keyset([xc], xc.key_id), "wrong_key_size", "XChaCha20Poly1305Key with a 31-byte key")
    kv = aes_gcm_key(16, version=1)
    both("aes_gcm_version_1", make_keyset([kv], kv.key_id), "unsupported_version", "AesGcmKey version 1")
    mkk = tink_pb2.Keyset.Key(); mkk.CopyFrom(base_key); mkk.key_data.value = b"\xff\xff\xff"
    both("aes_gcm_malformed_value", make_keyset([mkk], mkk.key_id), "malformed_key", "AesGcmKey value is not a protobuf")
    us = tink_pb2.Keyset.Key(); us.CopyFrom(base_key); us.status = tink_pb2.UNKNOWN_STATUS
    both("unknown_status", make_keyset([us, other_key], other_key.key_id), "unknown_status",
         "a non-primary key with status UNKNOWN_STATUS")
    up = tink_pb2.Keyset.Key(); up.CopyFrom(base_key); up.output_prefix_type = tink_pb2.UNKNOWN_PREFIX
    both("unknown_prefix", make_keyset([up], up.key_id), "unknown_prefix", "primary with output prefix UNKNOWN_PREFIX")

    good_json, good_bin = jb(make_keyset([base_key], base_key.key_id))
    w.add_bad_keyset("malformed_truncated_json", good_json[: len(good_json) // 2], "json", "malformed_json",
                     "a valid JSON keyset cut in half")
    w.add_bad_keyset("malformed_not_json", "this is not a keyset\n", "json", "malformed_json", "plain text")
    w.add_bad_keyset("malformed_json_array", "[1, 2, 3]\n", "json", "malformed_json", "a JSON array")
    w.add_bad_keyset("malformed_bad_base64", good_json.replace('"value": "', '"value": "!!!'), "json",
                     "malformed_json", "keyData.value is not base64")
    w.add_bad_keyset("malformed_keyid_string", good_json.replace(f'"keyId": {base_key.key_id}', '"keyId": "abc"'),
                     "json", "malformed_json", "keyId is a non-numeric string")
    w.add_bad_keyset("malformed_keyid_too_big", good_json.replace(f'"keyId": {base_key.key_id}', '"keyId": 4294967296'),
                     "json", "malformed_json", "keyId 2^32 does not fit in uint32")
    w.add_bad_keyset("malformed_truncated_bin", good_bin[: len(good_bin) - 7], "binary", "malformed_protobuf",
                     "a binary keyset with its last 7 bytes cut")
    w.add_bad_keyset("malformed_garbage_bin", bytes([0xFF] * 16 + [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), "binary",
                     "malformed_protobuf", "bytes that are not a protobuf")

    # Encrypted keysets with the wrong master key or associated data.
    hb = handle_of(make_keyset([base_key], base_key.key_id))  # noqa
    m = w.masters["aes256_gcm"]
    ad = b"encstore keyset bad"
    ej = json_format.serialize_encrypted(hb, m, ad)
    eb = binary_format.serialize_encrypted(hb, m, ad)
    w.add_bad_keyset("enc_wrong_master_json", ej, "json", "keyset_decryption_failed", "encrypted with master "
                     "aes256_gcm, read with wrong_aes256_gcm", True, "wrong_aes256_gcm", ad.hex())
    w.add_bad_keyset("enc_wrong_master_bin", eb, "binary", "keyset_decryption_failed", "encrypted with master "
                     "aes256_gcm, read with wrong_aes256_gcm", True, "wrong_aes256_gcm", ad.hex())
    w.add_bad_keyset("enc_wrong_ad_json", ej, "json", "keyset_decryption_failed", "wrong keyset associated data",
                     True, "aes256_gcm", b"other".hex())
    w.add_bad_keyset("enc_missing_ad_bin", eb, "binary", "keyset_decryption_failed", "keyset associated data omitted",
                     True, "aes256_gcm", "")
    tampered = json.loads(ej)
    raw = bytearray(__import__("base64").b64decode(tampered["encryptedKeyset"]))
    raw[-1] ^= 1
    tampered["encryptedKeyset"] = __import__("base64").b64encode(bytes(raw)).decode()
    w.add_bad_keyset("enc_tampered_json", json.dumps(tampered, indent=2), "json", "keyset_decryption_failed",
                     "encryptedKeyset with its last byte flipped", True, "aes256_gcm", ad.hex())
    # An encrypted keyset whose plaintext is not a Keyset (valid AEAD, bad payload).
    payload = m.encrypt(b"\xff\xff\xff\xff not a keyset", ad)
    ek = tink_pb2.EncryptedKeyset(encrypted_keyset=payload)
    w.add_bad_keyset("enc_payload_garbage_bin", ek.SerializeToString(), "binary", "malformed_protobuf",
                     "EncryptedKeyset that decrypts to bytes that are not a Keyset", True, "aes256_gcm", ad.hex())

    w.finish()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {len(w.manifest['keysets'])} keysets, {len(w.manifest['cases'])} cases, "
          f"{len(w.manifest['bad_keysets'])} bad keysets; {total} bytes in {OUT}")
    assert total < 2_000_000, "vectors too large"
    return 0


if __name__ == "__main__":
    sys.exit(main())
