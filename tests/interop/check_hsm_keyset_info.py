#!/usr/bin/env python3
"""Python Tink reads the keysetInfo of an HSM-wrapped keyset written by encstore.

Usage: check_hsm_keyset_info.py KEYSET FORMAT EXPECTED_INFO_JSON

KEYSET is an EncryptedKeyset written by `encstore ... --master-key-uri pkcs11:...`
(FORMAT json or binary). Tink cannot decrypt it (that needs the HSM key), but
it must parse it as Tink's EncryptedKeyset and find the keysetInfo that
`encstore list-keyset --json` reports (EXPECTED_INFO_JSON, a file).
Exit status 0 on success, 1 with a message otherwise.
"""
import json
import sys

from google.protobuf import json_format as pb_json
from tink.proto import tink_pb2


def main(argv):
    path, fmt, expected_path = argv[1:4]
    with open(path, "rb") as f:
        data = f.read()
    if fmt == "json":
        enc = pb_json.Parse(data.decode(), tink_pb2.EncryptedKeyset())
    else:
        enc = tink_pb2.EncryptedKeyset.FromString(data)
    if not enc.encrypted_keyset:
        print(f"{path}: no encryptedKeyset")
        return 1
    if not enc.HasField("keyset_info"):
        print(f"{path}: no keysetInfo")
        return 1
    with open(expected_path) as f:
        want = json.load(f)
    info = enc.keyset_info
    got_keys = [
        {
            "keyId": k.key_id,
            "status": tink_pb2.KeyStatusType.Name(k.status),
            "outputPrefixType": tink_pb2.OutputPrefixType.Name(k.output_prefix_type),
            "typeUrl": k.type_url,
        }
        for k in info.key_info
    ]
    want_keys = [
        {f: k[f] for f in ("keyId", "status", "outputPrefixType", "typeUrl")}
        for k in want["keyInfo"]
    ]
    if info.primary_key_id != want["primaryKeyId"] or got_keys != want_keys:
        print(f"{path}: Tink reads keysetInfo {got_keys} (primary {info.primary_key_id}), "
              f"encstore lists {want_keys} (primary {want['primaryKeyId']})")
        return 1
    print(f"check_hsm_keyset_info: {path}: Tink reads keysetInfo of {len(got_keys)} keys, "
          f"primary {info.primary_key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
