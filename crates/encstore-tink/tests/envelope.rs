//! Tink's KMS envelope AEAD (`KmsEnvelopeAeadKey`) without any service:
//! the key type in keysets (validation as Tink's), the wire format checked
//! by hand, and the envelope AEADs over a real master-keyset KEK
//! (`AeadKek`, what `encstore` uses for a master keyset file). The KMS
//! services (OpenBao, moto) and Python Tink are exercised by
//! `crates/encstore-vault/tests/` and `crates/encstore-awskms/tests/`.
#![allow(clippy::unwrap_used)]

mod keyset_util;
mod provider_util;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use encstore_core::{AeadKek, Kek, KekError, MasterKeyVersion};
use encstore_tink::KeysetEncoding;
use encstore_tink::envelope::{
    self, DEK_TYPES, EnvelopeAead, EnvelopeError, EnvelopeOptions, KeysetAsyncAead, MAX_HEAD_LEN,
    rewrap_envelope,
};
use encstore_tink::error::{KeyError, KeysetError};
use encstore_tink::primitives::testing::RawPrimitive;
use encstore_tink::{
    CiphertextKey, KeyParams, KeyStatus, KeyTemplate, Keyset, OutputPrefix, PrimitiveKind,
    templates,
};
use keyset_util::{key_json_material, keyset_json, tpl};
use prost::Message;

const KEK_URI: &str = "hcvault://vault.example:8200/transit/keys/envelope";
const KEK_URI_2: &str = "aws-kms://arn:aws:kms:us-east-1:000000000000:key/other";

/// The DEK templates, one per allowed DEK type.
const DEK_TEMPLATES: [&str; 6] = [
    "AES256_GCM",
    "AES128_GCM_SIV",
    "AES256_CTR_HMAC_SHA256",
    "AES128_EAX",
    "CHACHA20_POLY1305",
    "XCHACHA20_POLY1305",
];

/// `name` if the process's crypto provider accepts its key type, else
/// `instead` (under `fips`, an approved DEK type of another kind, so that
/// the tests that are about the envelope and not about the DEK type run
/// under every provider; the refusals are checked by
/// `every_tink_dek_type_is_allowed_and_nothing_else`).
fn or_approved(name: &'static str, instead: &'static str) -> &'static str {
    if provider_util::refuses_template(name) {
        assert!(!provider_util::refuses_template(instead), "{instead}");
        instead
    } else {
        name
    }
}

/// The DEK templates the process's provider accepts (all of them, but
/// under `fips`).
fn usable_dek_templates() -> Vec<&'static str> {
    DEK_TEMPLATES
        .into_iter()
        .filter(|n| !provider_util::refuses_template(n))
        .collect()
}

/// A master-keyset KEK (a real one: `AeadKek` over an AES-256-GCM keyset).
fn master() -> Arc<AeadKek> {
    let ks = Keyset::generate(&tpl("AES256_GCM")).unwrap();
    Arc::new(AeadKek(Arc::new(ks.aead().unwrap())))
}

/// A KEK that counts its calls and records the associated data it was
/// given, around a real master-keyset KEK.
#[derive(Debug)]
struct Counting {
    inner: Arc<AeadKek>,
    wraps: AtomicUsize,
    unwraps: AtomicUsize,
    ads: Mutex<Vec<Vec<u8>>>,
}

impl Counting {
    fn new() -> Arc<Counting> {
        Arc::new(Counting {
            inner: master(),
            wraps: AtomicUsize::new(0),
            unwraps: AtomicUsize::new(0),
            ads: Mutex::new(Vec::new()),
        })
    }
    fn calls(&self) -> (usize, usize) {
        (
            self.wraps.load(Ordering::SeqCst),
            self.unwraps.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl Kek for Counting {
    async fn wrap(&self, pt: &[u8], ad: &[u8]) -> Result<Vec<u8>, KekError> {
        self.wraps.fetch_add(1, Ordering::SeqCst);
        self.ads.lock().unwrap().push(ad.to_vec());
        self.inner.wrap(pt, ad).await
    }
    async fn unwrap(&self, ct: &[u8], ad: &[u8]) -> Result<Vec<u8>, KekError> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.ads.lock().unwrap().push(ad.to_vec());
        self.inner.unwrap(ct, ad).await
    }
    /// "Version" = the first byte of the wrapped DEK (a Tink prefix
    /// byte), to see that descriptions reach the KEK.
    fn describe_wrapped(&self, wrapped: &[u8]) -> Option<MasterKeyVersion> {
        let id = u32::from_be_bytes(wrapped.get(1..5)?.try_into().ok()?);
        Some(MasterKeyVersion::new("counting", Some(id)))
    }
}

fn envelope_template(kek_uri: &str, dek: &str, prefix: OutputPrefix) -> KeyTemplate {
    templates::kms_envelope(kek_uri, &tpl(dek), prefix).unwrap()
}

fn resolver(keks: &[(&str, Arc<dyn Kek>)]) -> HashMap<String, Arc<dyn Kek>> {
    keks.iter()
        .map(|(u, k)| ((*u).to_owned(), Arc::clone(k)))
        .collect()
}

// ------------------------------------------------------------- key type

#[test]
fn templates_make_envelope_keys_that_round_trip_in_every_format() {
    for prefix in [OutputPrefix::Tink, OutputPrefix::Raw] {
        let t = envelope_template(KEK_URI, "AES128_GCM", prefix);
        assert_eq!(t.type_url(), envelope::TYPE_URL);
        assert_eq!(t.primitive(), PrimitiveKind::Aead);
        // KmsEnvelopeAeadKeyFormat { kek_uri, dek_template { AesGcmKey,
        // AesGcmKeyFormat{key_size 16}, RAW } }, as Tink serializes it.
        let format = tink_proto::KmsEnvelopeAeadKeyFormat::decode(t.key_format()).unwrap();
        assert_eq!(format.kek_uri, KEK_URI);
        let dek = format.dek_template.unwrap();
        assert_eq!(
            dek.type_url,
            "type.googleapis.com/google.crypto.tink.AesGcmKey"
        );
        assert_eq!(dek.value, [0x10, 16]);
        assert_eq!(
            dek.output_prefix_type,
            tink_proto::OutputPrefixType::Raw as i32
        );

        let ks = Keyset::generate(&t).unwrap();
        let info = ks.info();
        assert_eq!(info.keys[0].output_prefix, prefix);
        assert_eq!(
            info.keys[0].params,
            Some(KeyParams::KmsEnvelope {
                kek_uri: KEK_URI.into(),
                dek: Box::new(KeyParams::AesGcm { key_size: 16 }),
            })
        );
        // The key material type is REMOTE, and stays so through JSON and
        // binary.
        let json = ks.to_json_insecure();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.contains("\"keyMaterialType\":\"REMOTE\""), "{text}");
        let back = Keyset::from_json_insecure(&json).unwrap();
        assert_eq!(back.to_json_insecure().as_slice(), json.as_slice());
        let bin = ks.to_binary_insecure();
        let proto = tink_proto::Keyset::decode(bin.as_slice()).unwrap();
        assert_eq!(
            proto.key[0].key_data.as_ref().unwrap().key_material_type,
            tink_proto::key_data::KeyMaterialType::Remote as i32
        );
        // KmsEnvelopeAeadKey { version 0, params: the format }.
        let key = tink_proto::KmsEnvelopeAeadKey::decode(
            proto.key[0].key_data.as_ref().unwrap().value.as_slice(),
        )
        .unwrap();
        assert_eq!(key.version, 0);
        assert_eq!(key.params.unwrap().encode_to_vec(), t.key_format());
        assert_eq!(
            Keyset::from_binary_insecure(&bin).unwrap().info(),
            ks.info()
        );
    }
}

#[test]
fn every_tink_dek_type_is_allowed_and_nothing_else() {
    let allowed: Vec<String> = DEK_TEMPLATES
        .iter()
        .map(|n| tpl(n).type_url().to_owned())
        .collect();
    let mut sorted = allowed.clone();
    sorted.sort();
    let mut listed: Vec<String> = DEK_TYPES.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(sorted, listed);
    let fips = provider_util::provider().fips();
    for name in DEK_TEMPLATES {
        if provider_util::refuses_template(name) {
            // Under `fips`: an envelope whose DEKs the module does not
            // approve is refused, naming the DEK's key type, whether as a
            // template or as an envelope AEAD.
            assert!(fips, "{name}");
            let dek = tpl(name);
            let e = templates::kms_envelope(KEK_URI, &dek, OutputPrefix::Tink).unwrap_err();
            assert!(
                matches!(e, KeysetError::Template(KeyError::NotFipsApproved { .. })),
                "{name}: {e:?}"
            );
            assert!(
                e.to_string().contains("is not FIPS-approved in this build"),
                "{e}"
            );
            let e = EnvelopeAead::new(master(), &dek).unwrap_err();
            assert!(
                matches!(
                    e,
                    EnvelopeError::DekTemplate(KeyError::NotFipsApproved { .. })
                ),
                "{name}: {e:?}"
            );
            continue;
        }
        let t = envelope_template(KEK_URI, name, OutputPrefix::Tink);
        Keyset::generate(&t).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Under `fips`: AES-GCM and AES-CTR-HMAC (SHA-256) DEKs only.
    assert_eq!(
        usable_dek_templates(),
        if fips {
            vec!["AES256_GCM", "AES256_CTR_HMAC_SHA256"]
        } else {
            DEK_TEMPLATES.to_vec()
        }
    );
    for name in [
        "XAES_256_GCM_192_BIT_NONCE",
        "AES128_GCM_HKDF_4KB",
        "AES256_CTR_HMAC_SHA256_1MB",
    ] {
        let dek = tpl(name);
        assert_eq!(
            templates::kms_envelope(KEK_URI, &dek, OutputPrefix::Tink).unwrap_err(),
            KeysetError::Template(KeyError::UnsupportedDek {
                type_url: dek.type_url().to_owned()
            }),
            "{name}"
        );
    }
    // A DEK template whose key format its type refuses (AES-GCM with a
    // 24-byte key: Tink 1.16 allows 16 and 32).
    let bad = KeyTemplate::new(
        "type.googleapis.com/google.crypto.tink.AesGcmKey",
        tink_proto::AesGcmKeyFormat {
            key_size: 24,
            version: 0,
        }
        .encode_to_vec(),
        OutputPrefix::Raw,
    );
    assert!(matches!(
        templates::kms_envelope(KEK_URI, &bad, OutputPrefix::Tink),
        Err(KeysetError::Template(KeyError::InvalidDekTemplate { dek }))
            if matches!(*dek, KeyError::WrongKeySize { size: 24, .. })
    ));
    for prefix in [OutputPrefix::Legacy, OutputPrefix::Crunchy] {
        assert!(matches!(
            templates::kms_envelope(KEK_URI, &tpl("AES256_GCM"), prefix),
            Err(KeysetError::Template(KeyError::InvalidParameter { .. }))
        ));
        // Also a template built by hand.
        let t =
            envelope_template(KEK_URI, "AES256_GCM", OutputPrefix::Tink).with_output_prefix(prefix);
        assert!(matches!(
            Keyset::generate(&t),
            Err(KeysetError::Template(KeyError::InvalidParameter { .. }))
        ));
    }
}

/// A JSON keyset with one envelope key built by hand.
fn envelope_keyset_json(value: &[u8], prefix: &str, material: &str) -> String {
    keyset_json(
        42,
        &[key_json_material(
            42,
            "ENABLED",
            prefix,
            envelope::TYPE_URL,
            value,
            material,
        )],
    )
}

fn envelope_key_value(
    version: u32,
    format: Option<tink_proto::KmsEnvelopeAeadKeyFormat>,
) -> Vec<u8> {
    tink_proto::KmsEnvelopeAeadKey {
        version,
        params: format,
    }
    .encode_to_vec()
}

fn format_of(dek: &KeyTemplate) -> tink_proto::KmsEnvelopeAeadKeyFormat {
    tink_proto::KmsEnvelopeAeadKeyFormat {
        kek_uri: KEK_URI.into(),
        dek_template: Some(tink_proto::KeyTemplate {
            type_url: dek.type_url().into(),
            value: dek.key_format().into(),
            output_prefix_type: tink_proto::OutputPrefixType::Tink as i32,
        }),
    }
}

fn read_err(json: &str) -> KeysetError {
    Keyset::from_json_insecure(json.as_bytes()).unwrap_err()
}

#[test]
fn envelope_keys_are_validated_as_tink_does() {
    let good = envelope_key_value(0, Some(format_of(&tpl("AES256_GCM"))));
    // REMOTE (what Tink writes) and SYMMETRIC (Tink Java's old
    // KeyManager.newKeyData) are read; TINK and RAW prefixes.
    for (prefix, material) in [("TINK", "REMOTE"), ("RAW", "REMOTE"), ("TINK", "SYMMETRIC")] {
        let ks =
            Keyset::from_json_insecure(envelope_keyset_json(&good, prefix, material).as_bytes())
                .unwrap_or_else(|e| panic!("{prefix} {material}: {e}"));
        // The DEK template's own TINK prefix is ignored, as Tink does.
        assert!(matches!(
            ks.info().keys[0].params,
            Some(KeyParams::KmsEnvelope { .. })
        ));
    }
    let key_err = |json: String| match read_err(&json) {
        KeysetError::Key { key_id: 42, source } => source,
        other => panic!("{other:?}"),
    };
    // Other key material types are refused, as for every key.
    assert_eq!(
        read_err(&envelope_keyset_json(&good, "TINK", "ASYMMETRIC_PRIVATE")),
        KeysetError::WrongKeyMaterialType {
            key_id: 42,
            found: "ASYMMETRIC_PRIVATE".into()
        }
    );
    // ... and REMOTE is for envelope keys only.
    let aes = tink_proto::AesGcmKey {
        version: 0,
        key_value: vec![7; 32],
    }
    .encode_to_vec();
    assert_eq!(
        read_err(&keyset_json(
            42,
            &[key_json_material(
                42,
                "ENABLED",
                "TINK",
                keyset_util::AES_GCM_URL,
                &aes,
                "REMOTE"
            )]
        )),
        KeysetError::WrongKeyMaterialType {
            key_id: 42,
            found: "REMOTE".into()
        }
    );
    // LEGACY and CRUNCHY prefixes: Tink Java and C++ refuse them.
    for prefix in ["LEGACY", "CRUNCHY"] {
        assert!(matches!(
            key_err(envelope_keyset_json(&good, prefix, "REMOTE")),
            KeyError::InvalidParameter { key_type: "KmsEnvelopeAeadKey", what } if what.contains(prefix)
        ));
    }
    // Version 1.
    assert_eq!(
        key_err(envelope_keyset_json(
            &envelope_key_value(1, Some(format_of(&tpl("AES256_GCM")))),
            "TINK",
            "REMOTE"
        )),
        KeyError::UnsupportedVersion {
            key_type: "KmsEnvelopeAeadKey",
            version: 1
        }
    );
    // No params; no DEK template.
    assert!(matches!(
        key_err(envelope_keyset_json(
            &envelope_key_value(0, None),
            "TINK",
            "REMOTE"
        )),
        KeyError::InvalidParameter { .. }
    ));
    let mut no_dek = format_of(&tpl("AES256_GCM"));
    no_dek.dek_template = None;
    assert!(matches!(
        key_err(envelope_keyset_json(
            &envelope_key_value(0, Some(no_dek)),
            "TINK",
            "REMOTE"
        )),
        KeyError::InvalidParameter { .. }
    ));
    // A DEK type Tink does not allow, and a bad DEK format.
    let xaes = tpl("XAES_256_GCM_192_BIT_NONCE");
    assert_eq!(
        key_err(envelope_keyset_json(
            &envelope_key_value(0, Some(format_of(&xaes))),
            "TINK",
            "REMOTE"
        )),
        KeyError::UnsupportedDek {
            type_url: xaes.type_url().into()
        }
    );
    let mut bad_size = format_of(&tpl("AES256_GCM"));
    bad_size.dek_template.as_mut().unwrap().value = vec![0x10, 20];
    assert!(matches!(
        key_err(envelope_keyset_json(
            &envelope_key_value(0, Some(bad_size)),
            "TINK",
            "REMOTE"
        )),
        KeyError::InvalidDekTemplate { .. }
    ));
    // Not a protobuf.
    assert_eq!(
        key_err(envelope_keyset_json(b"\xff\xff\xff", "TINK", "REMOTE")),
        KeyError::MalformedKey {
            key_type: "KmsEnvelopeAeadKey"
        }
    );
}

#[test]
fn the_sync_aead_refuses_enabled_envelope_keys_and_points_at_the_async_one() {
    let mut ks = Keyset::generate(&envelope_template(
        KEK_URI,
        "AES256_GCM",
        OutputPrefix::Tink,
    ))
    .unwrap();
    let env_id = ks.primary_key_id();
    let e = ks.aead().unwrap_err();
    assert_eq!(e, KeysetError::NeedsAsyncAead { key_id: env_id });
    assert!(e.to_string().contains("KeysetAsyncAead"), "{e}");
    // Not primary but enabled: still refused (its ciphertexts need a KMS).
    let aes = ks.rotate(&tpl("AES256_GCM")).unwrap();
    assert_eq!(
        ks.aead().unwrap_err(),
        KeysetError::NeedsAsyncAead { key_id: env_id }
    );
    // Disabled: the sync AEAD is fine, and names the envelope key's
    // ciphertexts as not enabled.
    ks.disable(env_id).unwrap();
    let aead = ks.aead().unwrap();
    assert_eq!(aead.primary_key_id(), aes);
    // A keyset holds one primitive: envelope keys are AEAD keys.
    assert_eq!(
        ks.add_key(&tpl("AES128_GCM_HKDF_4KB")).unwrap_err(),
        KeysetError::TemplatePrimitive {
            template: PrimitiveKind::StreamingAead,
            keyset: PrimitiveKind::Aead
        }
    );
    let mut streaming = Keyset::generate(&tpl("AES128_GCM_HKDF_4KB")).unwrap();
    assert!(matches!(
        streaming.add_key(&envelope_template(
            KEK_URI,
            "AES256_GCM",
            OutputPrefix::Tink
        )),
        Err(KeysetError::TemplatePrimitive { .. })
    ));
    // Debug names the type, never more than the URI.
    let dbg = format!("{ks:?}");
    assert!(dbg.contains("KmsEnvelopeAeadKey"), "{dbg}");
}

// ---------------------------------------------------------- wire format

#[tokio::test]
async fn the_ciphertext_is_tinks_envelope_layout() {
    let kek = Counting::new();
    for name in usable_dek_templates() {
        let aead = EnvelopeAead::new(kek.clone(), &tpl(name)).unwrap();
        let (w0, u0) = kek.calls();
        let ct = aead
            .encrypt(b"envelope plaintext", b"obj/name")
            .await
            .unwrap();
        // One KMS call per encryption, with empty associated data.
        assert_eq!(kek.calls(), (w0 + 1, u0), "{name}");
        assert_eq!(kek.ads.lock().unwrap().last().unwrap(), b"");
        // BE32(len) || encrypted DEK || DEK ciphertext, taken apart by
        // hand: the KEK unwraps the DEK, a serialized key proto of the
        // template's type, and that key alone decrypts the rest.
        let len = u32::from_be_bytes(ct[..4].try_into().unwrap()) as usize;
        let (wrapped, payload) = ct[4..].split_at(len);
        let dek = kek.inner.unwrap(wrapped, b"").await.unwrap();
        let raw = RawPrimitive::from_key_data(tpl(name).type_url(), &dek).unwrap();
        assert_eq!(
            raw.open(payload, b"obj/name").unwrap(),
            b"envelope plaintext"
        );
        assert_eq!(payload.len(), 18 + raw.overhead());
        assert_eq!(envelope::encrypted_dek(&ct).unwrap(), wrapped);
        // Decryption: one KMS call.
        let (w1, u1) = kek.calls();
        assert_eq!(
            aead.decrypt(&ct, b"obj/name").await.unwrap(),
            b"envelope plaintext"
        );
        assert_eq!(kek.calls(), (w1, u1 + 1));
        assert_eq!(kek.ads.lock().unwrap().last().unwrap(), b"");
        // A fresh DEK every time.
        let ct2 = aead
            .encrypt(b"envelope plaintext", b"obj/name")
            .await
            .unwrap();
        let dek2 = kek
            .inner
            .unwrap(envelope::encrypted_dek(&ct2).unwrap(), b"")
            .await
            .unwrap();
        assert_ne!(dek, dek2, "{name}");
    }
}

#[tokio::test]
async fn tampering_and_wrong_associated_data_are_refused() {
    let kek = master();
    let aead = EnvelopeAead::new(kek.clone(), &tpl("AES256_GCM")).unwrap();
    let ct = aead.encrypt(b"secret", b"ad").await.unwrap();
    assert!(matches!(
        aead.decrypt(&ct, b"other").await,
        Err(EnvelopeError::Authentication)
    ));
    for i in [4, 10, ct.len() - 20, ct.len() - 1] {
        let mut bad = ct.clone();
        bad[i] ^= 1;
        let e = aead.decrypt(&bad, b"ad").await.unwrap_err();
        assert!(e.is_authentication(), "byte {i}: {e:?}");
    }
    // A length field that is 0, too large or past the end: no KMS call.
    for head in [[0, 0, 0, 0], [0, 0, 0x10, 1], [0, 0, 0x0f, 0xff]] {
        let mut bad = ct.clone();
        bad[..4].copy_from_slice(&head);
        assert!(matches!(
            aead.decrypt(&bad, b"ad").await,
            Err(EnvelopeError::Malformed { .. })
        ));
    }
    // Another master key: its KEK does not unwrap the DEK.
    let other = EnvelopeAead::new(master(), &tpl("AES256_GCM")).unwrap();
    assert!(matches!(
        other.decrypt(&ct, b"ad").await,
        Err(EnvelopeError::Authentication)
    ));
    // A DEK template of another type: the DEK is not a valid key of it.
    let gcm_siv = EnvelopeAead::new(
        kek.clone(),
        &tpl(or_approved("AES256_GCM_SIV", "AES256_GCM")),
    )
    .unwrap();
    let ct_siv = gcm_siv.encrypt(b"x", b"").await.unwrap();
    let ctr = EnvelopeAead::new(kek, &tpl("AES128_CTR_HMAC_SHA256")).unwrap();
    assert!(matches!(
        ctr.decrypt(&ct_siv, b"").await,
        Err(EnvelopeError::InvalidDek { .. })
    ));
    // Unsupported DEK templates are refused when the AEAD is built.
    assert!(matches!(
        EnvelopeAead::new(master(), &tpl("XAES_256_GCM_192_BIT_NONCE")),
        Err(EnvelopeError::DekTemplate(KeyError::UnsupportedDek { .. }))
    ));
}

/// A KEK whose wraps are too long for Tink's format, or empty.
#[derive(Debug)]
struct Oversized(usize);

#[async_trait]
impl Kek for Oversized {
    async fn wrap(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, KekError> {
        Ok(vec![1; self.0])
    }
    async fn unwrap(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, KekError> {
        Err(KekError::Authentication)
    }
}

#[tokio::test]
async fn encrypted_deks_outside_1_to_4096_bytes_are_refused() {
    for len in [0, 4097] {
        let aead = EnvelopeAead::new(Arc::new(Oversized(len)), &tpl("AES256_GCM")).unwrap();
        assert!(matches!(
            aead.encrypt(b"x", b"").await,
            Err(EnvelopeError::EncryptedDekSize { len: l, .. }) if l == len
        ));
    }
    let aead = EnvelopeAead::new(Arc::new(Oversized(4096)), &tpl("AES256_GCM")).unwrap();
    assert_eq!(aead.encrypt(b"x", b"").await.unwrap()[..4], [0, 0, 0x10, 0]);
}

// ------------------------------------------------------ keyset-level AEAD

/// A keyset with: an ordinary AES-GCM key (TINK), an envelope key (TINK),
/// an envelope key under another KEK (RAW) and an ordinary RAW key.
/// Returns the keyset and the IDs in that order.
fn mixed_keyset() -> (Keyset, [u32; 4]) {
    let mut ks = Keyset::generate(&tpl("AES256_GCM")).unwrap();
    let aes = ks.primary_key_id();
    let env = ks
        .add_key(&envelope_template(
            KEK_URI,
            "AES256_GCM",
            OutputPrefix::Tink,
        ))
        .unwrap();
    let env_raw = ks
        .add_key(&envelope_template(
            KEK_URI_2,
            or_approved("XCHACHA20_POLY1305", "AES128_CTR_HMAC_SHA256"),
            OutputPrefix::Raw,
        ))
        .unwrap();
    let raw = ks.add_key(&tpl("AES128_GCM_RAW")).unwrap();
    (ks, [aes, env, env_raw, raw])
}

#[tokio::test]
async fn a_mixed_keyset_encrypts_with_each_primary_and_decrypts_everything() {
    let (mut ks, ids) = mixed_keyset();
    let k1 = Counting::new();
    let k2 = Counting::new();
    let keks = resolver(&[(KEK_URI, k1.clone()), (KEK_URI_2, k2.clone())]);
    let mut cts = Vec::new();
    for id in ids {
        ks.promote(id).unwrap();
        let aead = KeysetAsyncAead::new(&ks, &keks).await.unwrap();
        assert_eq!(aead.primary_key_id(), id);
        assert_eq!(aead.primary_is_envelope(), id == ids[1] || id == ids[2]);
        assert!(aead.has_envelope_keys());
        let before = (k1.calls(), k2.calls());
        let ct = aead.encrypt(b"mixed", b"name").await.unwrap();
        let after = (k1.calls(), k2.calls());
        // Only envelope primaries call a KMS, once.
        match id {
            i if i == ids[1] => assert_eq!(after.0.0, before.0.0 + 1),
            i if i == ids[2] => assert_eq!(after.1.0, before.1.0 + 1),
            _ => assert_eq!(after, before),
        }
        // The TINK keys (the first two) put their prefix in front.
        if id == ids[0] || id == ids[1] {
            assert_eq!(ct[..5], OutputPrefix::Tink.prefix_bytes(id)[..]);
        }
        cts.push((id, ct));
    }
    // Every ciphertext decrypts whoever is primary now.
    let aead = KeysetAsyncAead::new(&ks, &keks).await.unwrap();
    for (id, ct) in &cts {
        assert_eq!(
            aead.decrypt(ct, b"name").await.unwrap(),
            b"mixed",
            "key {id}"
        );
        let e = aead.decrypt(ct, b"wrong").await.unwrap_err();
        // A ciphertext that starts with 0x00 or 0x01 reads as a LEGACY or
        // TINK prefix. When that names no key of this keyset (as for the
        // sync AEAD, and Tink), the unknown key ID is what is reported when
        // nothing decrypts: always for the RAW envelope ciphertext, which
        // starts with BE32(len) = 0x00 0x00 ..., and for the RAW AES-GCM
        // one when its random IV happens to start with 0x00 or 0x01.
        let named = u32::from_be_bytes(ct[1..5].try_into().unwrap());
        let names_a_key = ct[0] == 0x01 && (named == ids[0] || named == ids[1]);
        if matches!(ct[0], 0x00 | 0x01) && !names_a_key {
            assert!(
                matches!(e, EnvelopeError::UnknownKeyId { key_id } if key_id == named),
                "key {id}: {e:?}"
            );
        } else {
            assert!(
                matches!(e, EnvelopeError::Authentication),
                "key {id}: {e:?}"
            );
        }
        if *id == ids[2] {
            assert_eq!(ct[..2], [0, 0], "BE32(len) of the encrypted DEK");
        }
    }
    // The envelope ciphertext with a TINK prefix is found by its prefix:
    // exactly one unwrap.
    let (_, u) = k1.calls();
    aead.decrypt(&cts[1].1, b"name").await.unwrap();
    assert_eq!(k1.calls().1, u + 1);
    // classify reads prefixes as the sync AEAD does.
    assert_eq!(
        aead.classify(&cts[1].1),
        CiphertextKey::Prefixed {
            key_id: ids[1],
            prefix: OutputPrefix::Tink,
            status: Some(KeyStatus::Enabled)
        }
    );
    assert_eq!(aead.classify(&cts[2].1[..3]), CiphertextKey::Unprefixed);
    // An unknown key ID.
    let mut unknown = cts[0].1.clone();
    unknown[1..5].copy_from_slice(&7u32.to_be_bytes());
    assert!(matches!(
        aead.decrypt(&unknown, b"name").await,
        Err(EnvelopeError::UnknownKeyId { key_id: 7 })
    ));
    // The envelope key disabled: its ciphertexts are refused, the KEK of a
    // disabled key is not even opened.
    ks.promote(ids[0]).unwrap();
    ks.disable(ids[1]).unwrap();
    let only_second = resolver(&[(KEK_URI_2, k2.clone())]);
    let aead = KeysetAsyncAead::new(&ks, &only_second).await.unwrap();
    assert!(matches!(
        aead.decrypt(&cts[1].1, b"name").await,
        Err(EnvelopeError::UnknownKeyId { key_id }) if key_id == ids[1]
    ));
    assert_eq!(aead.decrypt(&cts[2].1, b"name").await.unwrap(), b"mixed");
}

#[tokio::test]
async fn resolvers_open_each_master_key_once_and_failures_name_the_key() {
    let (mut ks, ids) = mixed_keyset();
    // A second envelope key under the first KEK.
    ks.add_key(&envelope_template(
        KEK_URI,
        or_approved("AES128_EAX", "AES128_GCM"),
        OutputPrefix::Tink,
    ))
    .unwrap();
    let opened = Arc::new(Mutex::new(Vec::<String>::new()));
    let k1: Arc<dyn Kek> = master();
    let k2: Arc<dyn Kek> = master();
    let log = Arc::clone(&opened);
    let by_closure = move |uri: &str| -> Result<Arc<dyn Kek>, KekError> {
        log.lock().unwrap().push(uri.to_owned());
        match uri {
            KEK_URI => Ok(Arc::clone(&k1)),
            KEK_URI_2 => Ok(Arc::clone(&k2)),
            _ => Err(KekError::invalid_uri("unknown")),
        }
    };
    let aead = KeysetAsyncAead::new(&ks, &by_closure).await.unwrap();
    assert_eq!(*opened.lock().unwrap(), [KEK_URI, KEK_URI_2]);
    let ct = aead.encrypt(b"x", b"").await.unwrap();
    assert_eq!(aead.decrypt(&ct, b"").await.unwrap(), b"x");
    // A map without the second URI: the error names the key and URI.
    let partial = resolver(&[(KEK_URI, master())]);
    match KeysetAsyncAead::new(&ks, &partial).await {
        Err(e @ EnvelopeError::Resolve { .. }) => {
            let EnvelopeError::Resolve {
                key_id, kek_uri, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(*key_id, ids[2]);
            assert_eq!(kek_uri, KEK_URI_2);
            assert!(e.to_string().contains("no master key is configured"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A streaming keyset is not an AEAD keyset.
    let streaming = Keyset::generate(&tpl("AES128_GCM_HKDF_4KB")).unwrap();
    assert!(matches!(
        KeysetAsyncAead::new(&streaming, &partial).await,
        Err(EnvelopeError::Keyset(KeysetError::WrongPrimitive { .. }))
    ));
    // An ordinary keyset needs no resolver entry at all.
    let plain = Keyset::generate(&tpl("AES256_GCM")).unwrap();
    let empty: HashMap<String, Arc<dyn Kek>> = HashMap::new();
    let aead = KeysetAsyncAead::new(&plain, &empty).await.unwrap();
    assert!(!aead.has_envelope_keys());
    let ct = aead.encrypt(b"plain", b"a").await.unwrap();
    let sync = plain.aead().unwrap();
    assert_eq!(
        encstore_core::Aead::decrypt(&sync, &ct, b"a").unwrap(),
        b"plain"
    );
}

/// A KEK that is down (unreachable), or slow.
#[derive(Debug)]
struct Down {
    delay: Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    inner: Arc<AeadKek>,
    fail: bool,
}

impl Down {
    fn new(delay: Duration, fail: bool) -> Arc<Down> {
        Arc::new(Down {
            delay,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            inner: master(),
            fail,
        })
    }
    async fn pass<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let r = f.await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection refused")]
struct Refused;

#[async_trait]
impl Kek for Down {
    async fn wrap(&self, pt: &[u8], ad: &[u8]) -> Result<Vec<u8>, KekError> {
        self.pass(self.inner.wrap(pt, ad)).await
    }
    async fn unwrap(&self, ct: &[u8], ad: &[u8]) -> Result<Vec<u8>, KekError> {
        if self.fail {
            return Err(KekError::unavailable(Refused));
        }
        self.pass(self.inner.unwrap(ct, ad)).await
    }
}

#[tokio::test]
async fn a_kms_failure_is_reported_as_such_not_as_tampering() {
    let (mut ks, ids) = mixed_keyset();
    ks.promote(ids[1]).unwrap();
    let ok = resolver(&[(KEK_URI, master()), (KEK_URI_2, master())]);
    let inner = master();
    let writer_keks = resolver(&[(KEK_URI, inner.clone()), (KEK_URI_2, master())]);
    let writer = KeysetAsyncAead::new(&ks, &writer_keks).await.unwrap();
    let ct = writer.encrypt(b"x", b"").await.unwrap();
    // Another KEK under the same URI: not authentic.
    let reader = KeysetAsyncAead::new(&ks, &ok).await.unwrap();
    assert!(matches!(
        reader.decrypt(&ct, b"").await,
        Err(EnvelopeError::Authentication)
    ));
    // A KEK that is down: the KMS error, with the URI.
    let down = Down::new(Duration::ZERO, true);
    let keks = resolver(&[(KEK_URI, down), (KEK_URI_2, master())]);
    let reader = KeysetAsyncAead::new(&ks, &keks).await.unwrap();
    let e = reader.decrypt(&ct, b"").await.unwrap_err();
    assert!(
        matches!(&e, EnvelopeError::Kek { kek_uri, error: KekError::Unavailable(_) } if kek_uri == KEK_URI),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("master key {KEK_URI}: connection refused")
    );
    assert!(!e.is_authentication());
}

#[tokio::test]
async fn kms_calls_are_bounded_in_number_and_time() {
    let slow = Down::new(Duration::from_millis(30), false);
    let options = EnvelopeOptions::new().max_concurrent_kms_calls(3);
    let aead =
        Arc::new(EnvelopeAead::with_options(slow.clone(), &tpl("AES128_GCM"), &options).unwrap());
    let mut tasks = Vec::new();
    for i in 0..12u8 {
        let aead = Arc::clone(&aead);
        tasks.push(tokio::spawn(async move {
            let ct = aead.encrypt(&[i], b"").await.unwrap();
            aead.decrypt(&ct, b"").await.unwrap()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), [i as u8]);
    }
    assert_eq!(slow.max_in_flight.load(Ordering::SeqCst), 3);

    let stuck = Down::new(Duration::from_secs(30), false);
    let options = EnvelopeOptions::new().kms_call_timeout(Duration::from_millis(50));
    let aead = EnvelopeAead::with_options(stuck, &tpl("AES128_GCM"), &options).unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        aead.encrypt(b"x", b"").await,
        Err(EnvelopeError::KmsTimeout { after, .. }) if after == Duration::from_millis(50)
    ));
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ------------------------------------------- master-key versions, rewrap

#[tokio::test]
async fn rewrap_changes_only_the_encrypted_dek_and_keeps_the_payload_bytes() {
    let (mut ks, ids) = mixed_keyset();
    let k1 = master();
    let k2 = master();
    let keks = resolver(&[(KEK_URI, k1.clone()), (KEK_URI_2, k2.clone())]);
    let mut cts = Vec::new();
    for id in [ids[1], ids[2]] {
        ks.promote(id).unwrap();
        let aead = KeysetAsyncAead::new(&ks, &keks).await.unwrap();
        cts.push(aead.encrypt(b"payload", b"name").await.unwrap());
    }
    let aead = KeysetAsyncAead::new(&ks, &keks).await.unwrap();
    for (ct, id) in cts.iter().zip([ids[1], ids[2]]) {
        let prefix_len = if id == ids[1] { 5 } else { 0 };
        let info = aead
            .envelope_info(&ct[..ct.len().min(MAX_HEAD_LEN)])
            .unwrap();
        assert_eq!(info.key_id, id);
        let r = aead.rewrap(ct).await.unwrap();
        assert_eq!(r.key_id, id);
        let new = &r.ciphertext;
        // Same prefix, same DEK ciphertext bytes, a new encrypted DEK.
        assert_eq!(new[..prefix_len], ct[..prefix_len]);
        let (old_dek, old_payload) = envelope::split(&ct[prefix_len..]).unwrap();
        let (new_dek, new_payload) = envelope::split(&new[prefix_len..]).unwrap();
        assert_eq!(old_payload, new_payload);
        assert_ne!(old_dek, new_dek);
        assert_eq!(aead.decrypt(new, b"name").await.unwrap(), b"payload");
    }
    // An ordinary key's ciphertext is not an envelope.
    ks.promote(ids[0]).unwrap();
    let aead = KeysetAsyncAead::new(&ks, &keks).await.unwrap();
    let plain = aead.encrypt(b"p", b"").await.unwrap();
    assert!(matches!(
        aead.rewrap(&plain).await,
        Err(EnvelopeError::NotEnvelope)
    ));
    assert!(matches!(
        aead.envelope_info(&plain),
        Err(EnvelopeError::NotEnvelope)
    ));

    // The free function, on a raw envelope ciphertext: the DEK moves to
    // whatever the KEK wraps with now, the payload stays.
    let single = EnvelopeAead::new(k1.clone(), &tpl("AES256_GCM")).unwrap();
    let ct = single.encrypt(b"raw", b"").await.unwrap();
    let re = rewrap_envelope(&ct, &*k1).await.unwrap();
    assert_eq!(
        envelope::split(&re).unwrap().1,
        envelope::split(&ct).unwrap().1
    );
    assert_eq!(single.decrypt(&re, b"").await.unwrap(), b"raw");
    assert!(matches!(
        rewrap_envelope(&ct, &*k2).await,
        Err(EnvelopeError::Authentication)
    ));
}

#[tokio::test]
async fn envelope_info_names_the_key_and_the_kek_description() {
    let mut ks = Keyset::generate(&envelope_template(
        KEK_URI,
        "AES256_GCM",
        OutputPrefix::Tink,
    ))
    .unwrap();
    let id = ks.primary_key_id();
    let kek = Counting::new();
    let keks = resolver(&[(KEK_URI, kek.clone())]);
    let aead = KeysetAsyncAead::new(&ks, &keks).await.unwrap();
    let ct = aead.encrypt(&vec![0; 10_000], b"").await.unwrap();
    // From the head only.
    let info = aead.envelope_info(&ct[..MAX_HEAD_LEN]).unwrap();
    assert_eq!(info.key_id, id);
    assert_eq!(info.output_prefix, OutputPrefix::Tink);
    assert_eq!(info.status, KeyStatus::Enabled);
    assert_eq!(info.kek_uri, KEK_URI);
    // Counting describes a master keyset's wrapping by the master key ID
    // in its Tink prefix.
    let wrapped = envelope::encrypted_dek(&ct[5..]).unwrap();
    let master_id = u32::from_be_bytes(wrapped[1..5].try_into().unwrap());
    assert_eq!(
        info.master,
        Some(MasterKeyVersion::new("counting", Some(master_id)))
    );
    // A disabled envelope key: known, but its KEK is not open.
    ks.rotate(&tpl("AES256_GCM")).unwrap();
    ks.disable(id).unwrap();
    let aead = KeysetAsyncAead::new(&ks, &keks).await.unwrap();
    let info = aead.envelope_info(&ct).unwrap();
    assert_eq!((info.status, info.master), (KeyStatus::Disabled, None));
}

// ------------------------------------------------- encrypted keysets

#[tokio::test]
async fn encrypted_keysets_rewrap_and_tell_their_wrapping() {
    let ks = Keyset::generate(&tpl("AES256_GCM")).unwrap();
    // A master keyset with two keys: rotating it is a master-key rotation.
    let mut master_ks = Keyset::generate(&tpl("AES256_GCM")).unwrap();
    let old_id = master_ks.primary_key_id();
    let kek_old = AeadKek(Arc::new(master_ks.aead().unwrap()));
    let new_id = master_ks.rotate(&tpl("AES256_GCM")).unwrap();
    let kek_new = AeadKek(Arc::new(master_ks.aead().unwrap()));
    for binary in [false, true] {
        let file = if binary {
            ks.write_with_kek(KeysetEncoding::Binary, &kek_old, b"ks ad")
                .await
                .unwrap()
        } else {
            ks.write_with_kek(KeysetEncoding::Json, &kek_old, b"ks ad")
                .await
                .unwrap()
        };
        let wrapped = encstore_tink::keyset::encrypted_keyset_ciphertext(&file).unwrap();
        assert_eq!(wrapped[1..5], old_id.to_be_bytes());
        let re = Keyset::rewrap_encrypted(&file, &kek_new, b"ks ad")
            .await
            .unwrap();
        assert_eq!(
            encstore_tink::detect_format(&re),
            encstore_tink::detect_format(&file)
        );
        let rewrapped = encstore_tink::keyset::encrypted_keyset_ciphertext(&re).unwrap();
        assert_eq!(rewrapped[1..5], new_id.to_be_bytes());
        let back = Keyset::read_with_kek(&re, &kek_new, b"ks ad")
            .await
            .unwrap();
        assert_eq!(back.to_json_insecure(), ks.to_json_insecure());
        let mut expected = ks.info();
        for k in &mut expected.keys {
            k.params = None;
        }
        assert_eq!(
            encstore_tink::keyset::encrypted_keyset_info(&re).unwrap(),
            Some(expected)
        );
        // The wrong associated data or master key: nothing is returned.
        assert_eq!(
            Keyset::rewrap_encrypted(&file, &kek_new, b"other")
                .await
                .unwrap_err(),
            KeysetError::Decryption
        );
        let stranger = AeadKek(Arc::new(
            Keyset::generate(&tpl("AES256_GCM"))
                .unwrap()
                .aead()
                .unwrap(),
        ));
        assert_eq!(
            Keyset::rewrap_encrypted(&file, &stranger, b"ks ad")
                .await
                .unwrap_err(),
            KeysetError::Decryption
        );
    }
    assert_eq!(
        Keyset::rewrap_encrypted(&ks.to_json_insecure(), &kek_new, b"")
            .await
            .unwrap_err(),
        KeysetError::UnexpectedCleartext
    );
}

// ------------------------------------------------- Send, Sync, Debug

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<EnvelopeAead>();
    send_sync::<KeysetAsyncAead>();
    send_sync::<EnvelopeError>();
};

/// The futures can go to `tokio::spawn` (checked at compile time).
#[allow(dead_code)]
fn futures_are_send(a: &KeysetAsyncAead, e: &EnvelopeAead) {
    fn send<T: Send>(_: T) {}
    send(a.encrypt(b"", b""));
    send(a.decrypt(b"", b""));
    send(a.rewrap(b""));
    send(a.newest_master_version(1));
    send(e.encrypt(b"", b""));
    send(e.decrypt(b"", b""));
    send(e.rewrap(b""));
    send(rewrap_envelope(b"", &**e.kek()));
    send(KeysetAsyncAead::new(
        &Keyset::generate(&tpl("AES256_GCM")).unwrap(),
        &HashMap::<String, Arc<dyn Kek>>::new(),
    ));
}

#[tokio::test]
async fn debug_shows_ids_and_types_never_keys() {
    let mut ks = Keyset::generate(&envelope_template(
        KEK_URI,
        "AES128_GCM",
        OutputPrefix::Tink,
    ))
    .unwrap();
    let env = ks.primary_key_id();
    let aes = ks.add_key(&tpl("AES256_GCM")).unwrap();
    let keks = resolver(&[(KEK_URI, master())]);
    let aead = KeysetAsyncAead::new(&ks, &keks).await.unwrap();
    assert_eq!(
        format!("{aead:?}"),
        format!(
            "KeysetAsyncAead {{ primary_key_id: {env}, enabled_key_ids: [{env}, {aes}], envelope_key_ids: [{env}] }}"
        )
    );
    // The KEK's own Debug (a master keyset: key IDs only) and the DEK type.
    let single = EnvelopeAead::new(master(), &tpl("AES128_GCM")).unwrap();
    let dbg = format!("{single:?}");
    assert!(
        dbg.starts_with("EnvelopeAead { kek: \"AeadKek(KeysetAead {"),
        "{dbg}"
    );
    assert!(
        dbg.ends_with("dek: DekTemplate { params: AesGcm { key_size: 16 } } }"),
        "{dbg}"
    );
    // A PKCS#11 URI's pin-value never shows, in listings or errors.
    let pinned = "pkcs11:token=t;object=k?pin-value=1234";
    let ks =
        Keyset::generate(&envelope_template(pinned, "AES128_GCM", OutputPrefix::Tink)).unwrap();
    let listed = format!("{:?} {:?}", ks.info(), ks);
    assert!(!listed.contains("1234"), "{listed}");
    assert!(listed.contains("pin-value=REDACTED"), "{listed}");
    let none: HashMap<String, Arc<dyn Kek>> = HashMap::new();
    let e = KeysetAsyncAead::new(&ks, &none).await.unwrap_err();
    assert!(!format!("{e} {e:?}").contains("1234"), "{e:?}");
}

/// A KEK failure while a keyset is read keeps its type: the
/// `KeysetError::Kek` message is the KEK's, `kek_error()` is the typed
/// `KekError` whose `downcast_ref` reaches the KEK's own error, and the
/// `source()` chain goes on with that error's sources, each line once.
#[tokio::test]
async fn a_kek_failure_reading_a_keyset_keeps_its_type_and_source_chain() {
    use encstore_tink::error::SharedKekError;
    use std::error::Error as _;

    /// A KEK error with a source of its own, like a KMS client's error
    /// that keeps an I/O error.
    #[derive(Debug, thiserror::Error)]
    #[error("KMS unreachable")]
    struct Unreachable(#[source] std::io::Error);

    /// A master key that is down.
    #[derive(Debug)]
    struct Gone;

    #[async_trait]
    impl Kek for Gone {
        async fn wrap(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, KekError> {
            Err(KekError::unavailable(Unreachable(std::io::Error::other(
                "connection reset",
            ))))
        }
        async fn unwrap(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, KekError> {
            Err(KekError::unavailable(Unreachable(std::io::Error::other(
                "connection reset",
            ))))
        }
    }

    let ks = Keyset::generate(&tpl("AES128_GCM")).unwrap();
    let wrapped = ks
        .write_with_kek(KeysetEncoding::Json, master().as_ref(), b"ks ad")
        .await
        .unwrap();
    let e = Keyset::read_with_kek(&wrapped, &Gone, b"ks ad")
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "master key: KMS unreachable");
    let kek = e.kek_error().expect("the typed KekError");
    assert!(matches!(kek, KekError::Unavailable(_)), "{e:?}");
    assert!(kek.downcast_ref::<Unreachable>().is_some());
    // The chain, as anyhow's `{:#}` prints it: each message once.
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    assert_eq!(
        parts.join(": "),
        "master key: KMS unreachable: connection reset"
    );
    assert!(
        e.source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some()
    );
    // Writing fails the same way, and nothing is returned to write.
    let w = ks
        .write_with_kek(KeysetEncoding::Binary, &Gone, b"ks ad")
        .await
        .unwrap_err();
    assert!(matches!(w.kek_error(), Some(KekError::Unavailable(_))));
    // Clone keeps the same error; equality is by KekError variant.
    assert_eq!(e.clone(), e);
    let KeysetError::Kek { error } = &e else {
        panic!("{e:?}")
    };
    assert!(error.kek_error().downcast_ref::<Unreachable>().is_some());
    let same_kind = KeysetError::Kek {
        error: SharedKekError::new(KekError::unavailable(Refused)),
    };
    assert_eq!(e, same_kind);
    let other_kind = KeysetError::Kek {
        error: KekError::failed(Refused).into(),
    };
    assert_ne!(e, other_kind);
    // An authentication failure is still a decryption error, not a KEK one.
    let e = Keyset::read_with_kek(&wrapped, master().as_ref(), b"ks ad")
        .await
        .unwrap_err();
    assert_eq!(e, KeysetError::Decryption);
    assert!(e.kek_error().is_none());
}
