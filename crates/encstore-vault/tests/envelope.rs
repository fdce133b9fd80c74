//! Tink's KMS envelope AEAD (`encstore_tink::envelope`) over a real
//! OpenBao transit key: round trips, the master-key version of each
//! encrypted DEK across `bao write -f transit/keys/NAME/rotate`, the
//! master-key-level rewrap (transit's `rewrap` endpoint: a token that may
//! only rewrap does it), and a keyset file's own re-wrap. Python Tink's
//! side is in `tink_interop.rs`.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use encstore_core::{Kek, KekError, MasterKeyVersion};
use encstore_tink::KeysetEncoding;
use encstore_tink::envelope::{
    self, EnvelopeAead, EnvelopeError, KeysetAsyncAead, rewrap_envelope,
};
use encstore_tink::keyset::{Keyset, encrypted_keyset_ciphertext};
use encstore_tink::{KeyStatus, OutputPrefix, templates};
use encstore_vault::testing::{self, unique_name};
use encstore_vault::{VaultError, VaultKek, ciphertext_key_version};
use secrecy::SecretString;

fn tpl(name: &str) -> encstore_tink::KeyTemplate {
    templates::by_name(name).unwrap()
}

#[tokio::test]
async fn envelope_round_trips_versions_rewrap_over_openbao() {
    let test = "envelope_round_trips_versions_rewrap_over_openbao";
    let Some(v) = testing::server(test) else {
        return;
    };
    let name = unique_name("envelope");
    let uri = v.uri(&name);
    let kek = Arc::new(
        VaultKek::create_master_key_with(&uri, v.config())
            .await
            .unwrap(),
    );
    let resolver: HashMap<String, Arc<dyn Kek>> = [(uri.clone(), kek.clone() as Arc<dyn Kek>)]
        .into_iter()
        .collect();
    // An envelope primary (TINK), an ordinary key, a RAW envelope key.
    let mut ks = Keyset::generate(
        &templates::kms_envelope(&uri, &tpl("AES256_GCM"), OutputPrefix::Tink).unwrap(),
    )
    .unwrap();
    let env_id = ks.primary_key_id();
    let aes_id = ks.add_key(&tpl("AES128_GCM")).unwrap();
    let raw_id = ks
        .add_key(
            &templates::kms_envelope(&uri, &tpl("XCHACHA20_POLY1305"), OutputPrefix::Raw).unwrap(),
        )
        .unwrap();
    let aead = KeysetAsyncAead::new(&ks, &resolver).await.unwrap();

    // Round trips, several sizes.
    let big = vec![0x5a; 300_000];
    for pt in [&b""[..], b"x", &big[..]] {
        let ct = aead.encrypt(pt, b"objects/a").await.unwrap();
        assert_eq!(aead.decrypt(&ct, b"objects/a").await.unwrap(), pt);
        assert!(matches!(
            aead.decrypt(&ct, b"objects/b").await,
            Err(EnvelopeError::Authentication)
        ));
    }
    // The encrypted DEK is transit's ciphertext, under version 1.
    let v1 = aead.encrypt(b"under v1", b"ad").await.unwrap();
    let dek = envelope::encrypted_dek(&v1[5..]).unwrap();
    assert!(
        dek.starts_with(b"vault:v1:"),
        "{:?}",
        String::from_utf8_lossy(dek)
    );
    let info = aead
        .envelope_info(&v1[..v1.len().min(envelope::MAX_HEAD_LEN)])
        .unwrap();
    assert_eq!(info.key_id, env_id);
    assert_eq!(info.kek_uri, uri);
    assert_eq!(info.status, KeyStatus::Enabled);
    assert_eq!(
        info.master,
        Some(MasterKeyVersion::new(uri.clone(), Some(1)))
    );
    // The RAW envelope key, and a keyset file wrapped by the same key.
    ks.promote(raw_id).unwrap();
    let raw_aead = KeysetAsyncAead::new(&ks, &resolver).await.unwrap();
    let raw_v1 = raw_aead.encrypt(b"raw under v1", b"").await.unwrap();
    let raw_info = raw_aead.envelope_info(&raw_v1).unwrap();
    assert_eq!(
        (raw_info.key_id, raw_info.output_prefix),
        (raw_id, OutputPrefix::Raw)
    );
    assert_eq!(
        raw_info.master,
        Some(MasterKeyVersion::new(uri.clone(), Some(1)))
    );
    let file_ks = Keyset::generate(&tpl("AES256_GCM")).unwrap();
    let file_v1 = file_ks
        .write_with_kek(KeysetEncoding::Json, &*kek, b"")
        .await
        .unwrap();
    let wrapped = encrypted_keyset_ciphertext(&file_v1).unwrap();
    assert_eq!(
        kek.describe_wrapped(&wrapped),
        Some(MasterKeyVersion::new(uri.clone(), Some(1)))
    );

    assert_eq!(
        aead.newest_master_version(env_id).await.unwrap(),
        Some(MasterKeyVersion::new(uri.clone(), Some(1)))
    );
    assert!(matches!(
        aead.newest_master_version(aes_id).await,
        Err(EnvelopeError::NotEnvelope)
    ));

    // The master key rotates.
    v.bao_ok(&["write", "-f", &format!("transit/keys/{name}/rotate")]);
    assert_eq!(
        aead.newest_master_version(env_id).await.unwrap(),
        Some(MasterKeyVersion::new(uri.clone(), Some(2)))
    );
    let v2 = aead.encrypt(b"under v2", b"ad").await.unwrap();
    assert_eq!(
        aead.envelope_info(&v2).unwrap().master,
        Some(MasterKeyVersion::new(uri.clone(), Some(2)))
    );
    assert_eq!(aead.decrypt(&v1, b"ad").await.unwrap(), b"under v1");

    // Master-key-level rewrap: only the encrypted DEK changes.
    let r = aead.rewrap(&v1).await.unwrap();
    assert_eq!(r.key_id, env_id);
    assert_eq!(r.before, Some(MasterKeyVersion::new(uri.clone(), Some(1))));
    assert_eq!(r.after, Some(MasterKeyVersion::new(uri.clone(), Some(2))));
    assert_eq!(r.ciphertext[..5], v1[..5]);
    assert_eq!(
        envelope::split(&r.ciphertext[5..]).unwrap().1,
        envelope::split(&v1[5..]).unwrap().1,
        "the DEK ciphertext bytes are kept"
    );
    assert!(
        envelope::encrypted_dek(&r.ciphertext[5..])
            .unwrap()
            .starts_with(b"vault:v2:")
    );
    assert_eq!(
        aead.decrypt(&r.ciphertext, b"ad").await.unwrap(),
        b"under v1"
    );
    let raw_r = raw_aead.rewrap(&raw_v1).await.unwrap();
    assert_eq!(raw_r.key_id, raw_id);
    assert_eq!(
        raw_r.after,
        Some(MasterKeyVersion::new(uri.clone(), Some(2)))
    );
    assert_eq!(
        raw_aead.decrypt(&raw_r.ciphertext, b"").await.unwrap(),
        b"raw under v1"
    );

    // The rewrap goes through transit's rewrap endpoint: a token that may
    // read the key and rewrap, but neither decrypt nor encrypt, does it.
    let policy = unique_name("rewrap-only");
    let hcl = format!(
        "path \"transit/keys/{name}\" {{ capabilities = [\"read\"] }}\npath \"transit/rewrap/{name}\" {{ capabilities = [\"update\"] }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.hcl");
    std::fs::write(&file, hcl).unwrap();
    v.bao_ok(&["policy", "write", &policy, file.to_str().unwrap()]);
    let token = v
        .bao_ok(&[
            "token",
            "create",
            &format!("-policy={policy}"),
            "-field=token",
        ])
        .trim()
        .to_owned();
    let rewrap_only = VaultKek::open_with(&uri, v.config().token(SecretString::from(token)))
        .await
        .unwrap();
    let single = EnvelopeAead::new(kek.clone(), &tpl("AES128_EAX")).unwrap();
    let single_v2 = single.encrypt(b"single", b"").await.unwrap();
    let re = rewrap_envelope(&single_v2, &rewrap_only).await.unwrap();
    assert_eq!(
        envelope::split(&re).unwrap().1,
        envelope::split(&single_v2).unwrap().1
    );
    assert_eq!(single.decrypt(&re, b"").await.unwrap(), b"single");
    let limited = EnvelopeAead::new(Arc::new(rewrap_only), &tpl("AES128_EAX")).unwrap();
    match limited.decrypt(&re, b"").await {
        Err(EnvelopeError::Kek { error, .. }) => assert!(
            matches!(
                error.downcast_ref::<VaultError>(),
                Some(VaultError::PermissionDenied { .. })
            ),
            "{error:?}"
        ),
        other => panic!("expected a permission error, got {other:?}"),
    }

    // The keyset file's own wrapping moves to version 2.
    let file_v2 = Keyset::rewrap_encrypted(&file_v1, &*kek, b"")
        .await
        .unwrap();
    let wrapped = encrypted_keyset_ciphertext(&file_v2).unwrap();
    assert_eq!(ciphertext_key_version(&wrapped).unwrap(), 2);
    let back = Keyset::read_with_kek(&file_v2, &*kek, b"").await.unwrap();
    assert_eq!(back.to_json_insecure(), file_ks.to_json_insecure());

    // Now nothing needs version 1: raise min_decryption_version. What was
    // rewrapped still decrypts; what was not is refused with Vault's
    // typed error (never taken for tampering).
    v.bao_ok(&[
        "write",
        &format!("transit/keys/{name}/config"),
        "min_decryption_version=2",
    ]);
    assert_eq!(
        aead.decrypt(&r.ciphertext, b"ad").await.unwrap(),
        b"under v1"
    );
    assert_eq!(aead.decrypt(&v2, b"ad").await.unwrap(), b"under v2");
    assert_eq!(
        raw_aead.decrypt(&raw_r.ciphertext, b"").await.unwrap(),
        b"raw under v1"
    );
    Keyset::read_with_kek(&file_v2, &*kek, b"").await.unwrap();
    let e = aead.decrypt(&v1, b"ad").await.unwrap_err();
    match &e {
        EnvelopeError::Kek {
            kek_uri,
            error: KekError::Failed(_),
        } => {
            assert_eq!(*kek_uri, uri);
            assert!(matches!(
                e_vault(&e),
                Some(VaultError::KeyVersionTooOld { version: 1, .. })
            ));
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.is_authentication());
    assert!(!format!("{e} {e:?}").contains(&v.token));
    // The ordinary key is untouched by all this.
    ks.promote(aes_id).unwrap();
    let plain = KeysetAsyncAead::new(&ks, &resolver).await.unwrap();
    let ct = plain.encrypt(b"local", b"").await.unwrap();
    assert_eq!(plain.decrypt(&ct, b"").await.unwrap(), b"local");
    assert!(matches!(
        plain.rewrap(&ct).await,
        Err(EnvelopeError::NotEnvelope)
    ));
}

fn e_vault(e: &EnvelopeError) -> Option<&VaultError> {
    match e {
        EnvelopeError::Kek { error, .. } => error.downcast_ref::<VaultError>(),
        _ => None,
    }
}
