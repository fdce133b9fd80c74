#!/usr/bin/env python3
"""Google's Tink against encstore's Vault and AWS KMS key-encryption keys.

    python3 tests/interop/kms_interop.py MANIFEST.json

Driven by crates/encstore-vault/tests/tink_interop.rs and
crates/encstore-awskms/tests/tink_interop.rs, which write the manifest and
the files it names, run this script, and check what it wrote. Needs
`pip install 'tink[hcvault,awskms]==1.16.1' hvac boto3`.

The manifest (JSON):
  "kms": "hcvault" or "awskms"
  "hcvault": {"address": "https://HOST:PORT", "cacert": PATH, "key_path": "MOUNT/keys/NAME"}
             the token is in the environment variable ENCSTORE_INTEROP_VAULT_TOKEN
  "awskms": {"endpoint": URL, "region": R, "access_key_id": ID, "key_uri": "aws-kms://arn:..."}
             the secret is in ENCSTORE_INTEROP_AWS_SECRET_ACCESS_KEY
  "read":  [{"keyset": PATH, "keyset_ad_hex": H, "ciphertext": PATH, "ad_hex": H,
             "plaintext_hex": H, "primary_key_id": N}]
           encstore wrapped the keyset with its KEK and encrypted the ciphertext
           with the keyset: Tink must open the keyset with its own KMS AEAD
           and decrypt the ciphertext to the plaintext.
  "write": [{"keyset_out": PATH, "keyset_ad_hex": H, "ciphertext_out": PATH,
             "ad_hex": H, "plaintext_hex": H}]
           Tink generates an AES256_GCM keyset, wraps it with its KMS AEAD and
           encrypts the plaintext with it, for encstore to read.
  "raw_decrypt": [{"ciphertext": PATH, "ad_hex": H, "plaintext_hex": H}]
           what encstore's KEK wrapped; Tink's KMS AEAD must decrypt it.
  "raw_encrypt": [{"out": PATH, "ad_hex": H, "plaintext_hex": H}]
           Tink's KMS AEAD encrypts, for encstore's KEK to decrypt.
  "refused": [{"ad_hex": H}]
           Tink's KMS AEAD must refuse to encrypt with this associated data.

KMS envelope AEAD (Tink's KmsEnvelopeAeadKey); the KMS AEAD above is the
key-encryption key:
  "envelope_kek_uri": URI
           the kek_uri the envelope keysets name (hcvault://... or
           aws-kms://...). A Tink KmsClient for it is registered: Tink's own
           awskms client (bound to the URI) for AWS KMS; for Vault, whose
           Python integration has no KmsClient, a client bound to the URI
           that returns tink.integration.hcvault's AEAD.
  "envelope_read": [{"keyset": PATH, "no_secret": BOOL, "ciphertext": PATH,
                     "ad_hex": H, "plaintext_hex": H}]
           encstore wrote the cleartext JSON keyset (envelope keys, maybe
           with ordinary keys) and the ciphertext: Tink parses the keyset
           (parse_without_secret when no_secret: an envelope-only keyset
           holds no secret) and decrypts with its keyset AEAD.
  "envelope_write": [{"dek_template": NAME, "prefix": "TINK"|"RAW",
                      "keyset_out": PATH, "ciphertext_out": PATH,
                      "ad_hex": H, "plaintext_hex": H}]
           Tink makes a keyset from create_kms_envelope_aead_key_template
           (kek URI, aead_key_templates.NAME) with that output prefix,
           writes it without secret, and encrypts with it.
  "envelope_raw_decrypt": [{"dek_template": NAME, "ciphertext": PATH,
                            "ad_hex": H, "plaintext_hex": H}]
           aead.KmsEnvelopeAead(aead_key_templates.NAME, KMS AEAD) decrypts
           what encstore's EnvelopeAead wrote (no output prefix).
  "envelope_raw_encrypt": [{"dek_template": NAME, "out": PATH, "ad_hex": H,
                            "plaintext_hex": H}]
           the same Tink primitive encrypts, for encstore to decrypt.

Prints one line per failure and exits 1 if any check failed.
"""

import json
import os
import sys

import tink
from tink import aead
from tink import secret_key_access
from tink.proto import tink_pb2


def kms_aead(manifest):
    kind = manifest["kms"]
    if kind == "hcvault":
        import hvac
        from tink.integration import hcvault

        cfg = manifest["hcvault"]
        client = hvac.Client(
            url=cfg["address"],
            token=os.environ["ENCSTORE_INTEROP_VAULT_TOKEN"],
            verify=cfg["cacert"],
        )
        return hcvault.new_aead(cfg["key_path"], client)
    if kind == "awskms":
        import boto3
        from tink.integration import awskms

        cfg = manifest["awskms"]
        client = boto3.client(
            "kms",
            endpoint_url=cfg["endpoint"],
            region_name=cfg["region"],
            aws_access_key_id=cfg["access_key_id"],
            aws_secret_access_key=os.environ["ENCSTORE_INTEROP_AWS_SECRET_ACCESS_KEY"],
        )
        uri = cfg["key_uri"]
        return awskms.new_client(boto3_client=client, key_uri=uri).get_aead(uri)
    raise SystemExit(f"unknown kms {kind!r}")


def register_envelope_client(manifest, remote):
    """A Tink KmsClient for the envelope keysets' kek_uri."""
    uri = manifest.get("envelope_kek_uri")
    if not uri:
        return
    if manifest["kms"] == "awskms":
        import boto3
        from tink.integration import awskms

        cfg = manifest["awskms"]
        client = boto3.client(
            "kms",
            endpoint_url=cfg["endpoint"],
            region_name=cfg["region"],
            aws_access_key_id=cfg["access_key_id"],
            aws_secret_access_key=os.environ["ENCSTORE_INTEROP_AWS_SECRET_ACCESS_KEY"],
        )
        tink.register_kms_client(awskms.new_client(boto3_client=client, key_uri=uri))
        return

    class BoundClient(tink.KmsClient):
        def does_support(self, key_uri):
            return key_uri == uri

        def get_aead(self, key_uri):
            if key_uri != uri:
                raise tink.TinkError("unsupported key URI " + key_uri)
            return remote

    tink.register_kms_client(BoundClient())


def dek_template(name):
    return getattr(aead.aead_key_templates, name)


def main():
    manifest = json.load(open(sys.argv[1]))
    aead.register()
    remote = kms_aead(manifest)
    register_envelope_client(manifest, remote)
    failures = []
    checks = 0

    for case in manifest.get("read", []):
        checks += 1
        name = os.path.basename(case["keyset"])
        try:
            handle = tink.json_proto_keyset_format.parse_encrypted(
                open(case["keyset"]).read(),
                remote,
                bytes.fromhex(case["keyset_ad_hex"]),
            )
            info = handle.keyset_info()
            if info.primary_key_id != case["primary_key_id"]:
                failures.append(
                    f"read {name}: primary key {info.primary_key_id}, expected {case['primary_key_id']}"
                )
            primitive = handle.primitive(aead.Aead)
            pt = primitive.decrypt(
                open(case["ciphertext"], "rb").read(), bytes.fromhex(case["ad_hex"])
            )
            if pt.hex() != case["plaintext_hex"]:
                failures.append(f"read {name}: wrong plaintext")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures.append(f"read {name}: {type(e).__name__}: {e}")

    for case in manifest.get("write", []):
        checks += 1
        name = os.path.basename(case["keyset_out"])
        try:
            handle = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
            text = tink.json_proto_keyset_format.serialize_encrypted(
                handle, remote, bytes.fromhex(case["keyset_ad_hex"])
            )
            ct = handle.primitive(aead.Aead).encrypt(
                bytes.fromhex(case["plaintext_hex"]), bytes.fromhex(case["ad_hex"])
            )
            open(case["keyset_out"], "w").write(text)
            open(case["ciphertext_out"], "wb").write(ct)
        except Exception as e:  # noqa: BLE001
            failures.append(f"write {name}: {type(e).__name__}: {e}")

    for case in manifest.get("raw_decrypt", []):
        checks += 1
        name = os.path.basename(case["ciphertext"])
        try:
            pt = remote.decrypt(
                open(case["ciphertext"], "rb").read(), bytes.fromhex(case["ad_hex"])
            )
            if pt.hex() != case["plaintext_hex"]:
                failures.append(f"raw_decrypt {name}: wrong plaintext")
        except Exception as e:  # noqa: BLE001
            failures.append(f"raw_decrypt {name}: {type(e).__name__}: {e}")

    for case in manifest.get("raw_encrypt", []):
        checks += 1
        name = os.path.basename(case["out"])
        try:
            ct = remote.encrypt(
                bytes.fromhex(case["plaintext_hex"]), bytes.fromhex(case["ad_hex"])
            )
            open(case["out"], "wb").write(ct)
        except Exception as e:  # noqa: BLE001
            failures.append(f"raw_encrypt {name}: {type(e).__name__}: {e}")

    for case in manifest.get("refused", []):
        checks += 1
        try:
            remote.encrypt(b"x", bytes.fromhex(case["ad_hex"]))
            failures.append(f"refused {case['ad_hex']}: Tink encrypted, expected a refusal")
        except tink.TinkError:
            pass

    for case in manifest.get("envelope_read", []):
        checks += 1
        name = os.path.basename(case["ciphertext"])
        try:
            text = open(case["keyset"]).read()
            if case["no_secret"]:
                handle = tink.json_proto_keyset_format.parse_without_secret(text)
            else:
                handle = tink.json_proto_keyset_format.parse(
                    text, secret_key_access.TOKEN
                )
            pt = handle.primitive(aead.Aead).decrypt(
                open(case["ciphertext"], "rb").read(), bytes.fromhex(case["ad_hex"])
            )
            if pt.hex() != case["plaintext_hex"]:
                failures.append(f"envelope_read {name}: wrong plaintext")
        except Exception as e:  # noqa: BLE001
            failures.append(f"envelope_read {name}: {type(e).__name__}: {e}")

    prefixes = {"TINK": tink_pb2.TINK, "RAW": tink_pb2.RAW}
    for case in manifest.get("envelope_write", []):
        checks += 1
        name = os.path.basename(case["keyset_out"])
        try:
            template = aead.aead_key_templates.create_kms_envelope_aead_key_template(
                manifest["envelope_kek_uri"], dek_template(case["dek_template"])
            )
            template.output_prefix_type = prefixes[case["prefix"]]
            handle = tink.new_keyset_handle(template)
            text = tink.json_proto_keyset_format.serialize_without_secret(handle)
            ct = handle.primitive(aead.Aead).encrypt(
                bytes.fromhex(case["plaintext_hex"]), bytes.fromhex(case["ad_hex"])
            )
            open(case["keyset_out"], "w").write(text)
            open(case["ciphertext_out"], "wb").write(ct)
        except Exception as e:  # noqa: BLE001
            failures.append(f"envelope_write {name}: {type(e).__name__}: {e}")

    for case in manifest.get("envelope_raw_decrypt", []):
        checks += 1
        name = os.path.basename(case["ciphertext"])
        try:
            primitive = aead.KmsEnvelopeAead(dek_template(case["dek_template"]), remote)
            pt = primitive.decrypt(
                open(case["ciphertext"], "rb").read(), bytes.fromhex(case["ad_hex"])
            )
            if pt.hex() != case["plaintext_hex"]:
                failures.append(f"envelope_raw_decrypt {name}: wrong plaintext")
        except Exception as e:  # noqa: BLE001
            failures.append(f"envelope_raw_decrypt {name}: {type(e).__name__}: {e}")

    for case in manifest.get("envelope_raw_encrypt", []):
        checks += 1
        name = os.path.basename(case["out"])
        try:
            primitive = aead.KmsEnvelopeAead(dek_template(case["dek_template"]), remote)
            ct = primitive.encrypt(
                bytes.fromhex(case["plaintext_hex"]), bytes.fromhex(case["ad_hex"])
            )
            open(case["out"], "wb").write(ct)
        except Exception as e:  # noqa: BLE001
            failures.append(f"envelope_raw_encrypt {name}: {type(e).__name__}: {e}")

    for f in failures:
        print(f)
    print(f"{checks - len(failures)}/{checks} checks passed", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
