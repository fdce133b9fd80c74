//! Tink's KMS envelope AEAD (`encstore_tink::envelope`) over moto's KMS
//! emulator: round trips, the master-key identity of each encrypted DEK
//! (AWS KMS ciphertext blobs carry no version encstore can read), and the
//! master-key-level rewrap (unwrap then wrap through the `Kek` trait),
//! which keeps the DEK ciphertext bytes. Python Tink's side is in
//! `tink_interop.rs`.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use encstore_awskms::{AwsKmsKek, testing};
use encstore_core::{Kek, MasterKeyVersion};
use encstore_tink::KeysetEncoding;
use encstore_tink::envelope::{
    self, EnvelopeAead, EnvelopeError, KeysetAsyncAead, rewrap_envelope,
};
use encstore_tink::keyset::{Keyset, encrypted_keyset_ciphertext};
use encstore_tink::{OutputPrefix, templates};

fn tpl(name: &str) -> encstore_tink::KeyTemplate {
    templates::by_name(name).unwrap()
}

#[tokio::test]
async fn envelope_round_trips_and_rewrap_over_moto() {
    let test = "envelope_round_trips_and_rewrap_over_moto";
    let Some(t) = testing::server(test) else {
        return;
    };
    let kek = Arc::new(AwsKmsKek::open_with(&t.key_uri, t.config()).await.unwrap());
    let resolver: HashMap<String, Arc<dyn Kek>> =
        [(t.key_uri.clone(), kek.clone() as Arc<dyn Kek>)]
            .into_iter()
            .collect();
    let mut ks = Keyset::generate(
        &templates::kms_envelope(&t.key_uri, &tpl("AES256_GCM"), OutputPrefix::Tink).unwrap(),
    )
    .unwrap();
    let env_id = ks.primary_key_id();
    let raw_id = ks
        .add_key(
            &templates::kms_envelope(&t.key_uri, &tpl("CHACHA20_POLY1305"), OutputPrefix::Raw)
                .unwrap(),
        )
        .unwrap();
    let aead = KeysetAsyncAead::new(&ks, &resolver).await.unwrap();
    let big = vec![7u8; 200_000];
    for pt in [&b""[..], b"x", &big[..]] {
        let ct = aead.encrypt(pt, b"objects/a").await.unwrap();
        assert_eq!(aead.decrypt(&ct, b"objects/a").await.unwrap(), pt);
        assert!(matches!(
            aead.decrypt(&ct, b"objects/b").await,
            Err(EnvelopeError::Authentication)
        ));
    }
    let ct = aead.encrypt(b"payload", b"ad").await.unwrap();
    // The encrypted DEK is a KMS ciphertext blob the KEK unwraps with
    // empty associated data (no encryption context) to the DEK proto.
    let blob = envelope::encrypted_dek(&ct[5..]).unwrap();
    let dek = kek.unwrap(blob, b"").await.unwrap();
    let raw = encstore_tink::primitives::testing::RawPrimitive::from_key_data(
        tpl("AES256_GCM").type_url(),
        &dek,
    )
    .unwrap();
    assert_eq!(
        raw.params(),
        &encstore_tink::KeyParams::AesGcm { key_size: 32 }
    );
    let payload = envelope::split(&ct[5..]).unwrap().1;
    assert_eq!(raw.open(payload, b"ad").unwrap(), b"payload");
    let info = aead.envelope_info(&ct).unwrap();
    assert_eq!(
        (info.key_id, info.kek_uri.as_str()),
        (env_id, t.key_uri.as_str())
    );
    assert_eq!(
        info.master,
        Some(MasterKeyVersion::new(t.key_uri.clone(), None))
    );
    assert_eq!(
        aead.newest_master_version(env_id).await.unwrap(),
        Some(MasterKeyVersion::new(t.key_uri.clone(), None))
    );

    // Rewrap: a new blob, the same DEK ciphertext bytes, still decrypts.
    let r = aead.rewrap(&ct).await.unwrap();
    assert_eq!(r.key_id, env_id);
    assert_eq!(r.ciphertext[..5], ct[..5]);
    let (old_blob, old_payload) = envelope::split(&ct[5..]).unwrap();
    let (new_blob, new_payload) = envelope::split(&r.ciphertext[5..]).unwrap();
    assert_eq!(old_payload, new_payload);
    assert_ne!(old_blob, new_blob);
    assert_eq!(
        aead.decrypt(&r.ciphertext, b"ad").await.unwrap(),
        b"payload"
    );

    // The RAW key.
    ks.promote(raw_id).unwrap();
    let aead = KeysetAsyncAead::new(&ks, &resolver).await.unwrap();
    let ct = aead.encrypt(b"raw", b"").await.unwrap();
    let info = aead.envelope_info(&ct).unwrap();
    assert_eq!(
        (info.key_id, info.output_prefix),
        (raw_id, OutputPrefix::Raw)
    );
    let r = aead.rewrap(&ct).await.unwrap();
    assert_eq!(
        envelope::split(&r.ciphertext).unwrap().1,
        envelope::split(&ct).unwrap().1
    );
    assert_eq!(aead.decrypt(&r.ciphertext, b"").await.unwrap(), b"raw");

    // The bare primitive and the free rewrap; a keyset file's re-wrap.
    let single = EnvelopeAead::new(kek.clone(), &tpl("AES128_GCM_SIV")).unwrap();
    let ct = single.encrypt(b"single", b"").await.unwrap();
    let re = rewrap_envelope(&ct, &*kek).await.unwrap();
    assert_eq!(
        envelope::split(&re).unwrap().1,
        envelope::split(&ct).unwrap().1
    );
    assert_eq!(single.decrypt(&re, b"").await.unwrap(), b"single");
    let file_ks = Keyset::generate(&tpl("AES256_GCM")).unwrap();
    let file = file_ks
        .write_with_kek(KeysetEncoding::Binary, &*kek, b"ks")
        .await
        .unwrap();
    let file2 = Keyset::rewrap_encrypted(&file, &*kek, b"ks").await.unwrap();
    assert_ne!(
        encrypted_keyset_ciphertext(&file).unwrap(),
        encrypted_keyset_ciphertext(&file2).unwrap()
    );
    let back = Keyset::read_with_kek(&file2, &*kek, b"ks").await.unwrap();
    assert_eq!(back.to_json_insecure(), file_ks.to_json_insecure());
}
