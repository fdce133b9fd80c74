//! Crypto providers through the public API: keysets keep the provider they
//! were made with, every provider reads every other's ciphertexts, and the
//! `fips` provider refuses the key types it does not approve when a key is
//! created, read and used. Runs under every build (default `ring`,
//! `--features aws-lc-rs`, `--features fips`, with or without ring).

mod provider_util;

use encstore_core::Aead;
use encstore_tink::provider::{self, CryptoProvider, Provider};
use encstore_tink::{KeyError, Keyset, KeysetError, templates};
use encstore_tink::{KeysetEncoding, KeysetProtection};

fn compiled() -> Vec<&'static CryptoProvider> {
    Provider::compiled()
        .iter()
        .map(|p| CryptoProvider::get(*p).expect("compiled"))
        .collect()
}

fn tpl(name: &str) -> encstore_tink::KeyTemplate {
    templates::by_name(name).expect("template")
}

/// A keyset made under a provider keeps it (keys added later too), and
/// every other provider reads the same bytes and decrypts its ciphertexts,
/// for every template both allow.
#[test]
fn keysets_keep_their_provider_and_interoperate() {
    let mut checked = 0;
    for name in templates::NAMES {
        for p in compiled() {
            if p.check_key_type(tpl(name).type_url()).is_err() {
                continue;
            }
            let mut ks = Keyset::generate_with_provider(&tpl(name), p).expect("generate");
            assert!(std::ptr::eq(ks.provider(), p));
            ks.rotate(&tpl(name)).expect("rotate");
            assert!(std::ptr::eq(ks.provider(), p), "rotate keeps the provider");
            let ct = ks
                .aead()
                .expect("aead")
                .encrypt(b"across", b"ad")
                .expect("encrypt");
            for q in compiled() {
                if q.check_key_type(tpl(name).type_url()).is_err() {
                    continue;
                }
                let other = ks.with_provider(q).expect("another provider");
                assert!(std::ptr::eq(other.provider(), q));
                assert_eq!(other.info(), ks.info());
                assert_eq!(*other.to_binary_insecure(), *ks.to_binary_insecure());
                let aead = other.aead().expect("aead");
                assert_eq!(aead.decrypt(&ct, b"ad").expect(name), b"across");
                let back = aead.encrypt(b"back", b"ad").expect("encrypt");
                assert_eq!(
                    ks.aead().expect("aead").decrypt(&back, b"ad").expect(name),
                    b"back"
                );
                // Read explicitly under `q`, from the same bytes.
                let read = Keyset::read_with_provider(
                    &ks.to_json_insecure(),
                    KeysetProtection::Cleartext,
                    q,
                )
                .expect("read under q");
                assert!(std::ptr::eq(read.provider(), q));
                assert_eq!(
                    read.aead().expect("aead").decrypt(&ct, b"ad").expect(name),
                    b"across"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "{checked}");
}

/// The default provider is what the plain readers and `generate` use.
#[test]
fn plain_constructors_use_the_process_default() {
    let d = provider::get_default().expect("default");
    let ks = Keyset::generate(&tpl("AES256_GCM")).expect("generate");
    assert!(std::ptr::eq(ks.provider(), d));
    let read = Keyset::from_json_insecure(&ks.to_json_insecure()).expect("read");
    assert!(std::ptr::eq(read.provider(), d));
    let s = provider::status().expect("status");
    assert_eq!(s.provider, d.provider());
    assert_eq!(s.fips_mode, d.fips());
    if d.fips() {
        assert!(
            s.randomness.contains("FIPS module's DRBG"),
            "{}",
            s.randomness
        );
        assert!(s.library_version.is_some());
    }
}

/// A keyset of Tink's own making with ChaCha20-Poly1305 keys
/// (`tests/interop/vectors`), as cleartext JSON.
fn chacha_keyset_json() -> Vec<u8> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop/vectors/good/chacha20_poly1305_by_hand.json");
    std::fs::read(dir).expect("interop vector")
}

fn assert_refused_naming(r: Result<Keyset, KeysetError>, key_type: &str) {
    let e = r.expect_err("refused");
    assert!(provider_util::is_fips_refusal(&e), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("{key_type} is not FIPS-approved in this build")),
        "{msg}"
    );
}

/// Under `fips`: refused at creation (generate, add, rotate), at load
/// (every reader) and at use (a keyset made under another provider moved
/// to `fips`), naming the key type; nothing changes on refusal.
#[test]
fn fips_refuses_non_approved_key_types_at_create_load_and_use() {
    let Ok(fips) = CryptoProvider::get(Provider::AwsLcFips) else {
        assert!(!Provider::AwsLcFips.is_compiled());
        println!("not a fips build: nothing to refuse");
        return;
    };
    // Create.
    for (name, key_type) in [
        ("CHACHA20_POLY1305", "ChaCha20Poly1305Key"),
        ("XCHACHA20_POLY1305", "XChaCha20Poly1305Key"),
        ("AES128_GCM_SIV", "AesGcmSivKey"),
        ("AES256_EAX", "AesEaxKey"),
        ("XAES_256_GCM_192_BIT_NONCE", "XAesGcmKey"),
    ] {
        assert_refused_naming(Keyset::generate_with_provider(&tpl(name), fips), key_type);
    }
    let mut ks = Keyset::generate_with_provider(&tpl("AES256_GCM"), fips).expect("approved");
    let before = ks.info();
    let e = ks.add_key(&tpl("CHACHA20_POLY1305")).expect_err("refused");
    assert!(provider_util::is_fips_refusal(&e), "{e:?}");
    assert!(ks.rotate(&tpl("XCHACHA20_POLY1305")).is_err());
    assert_eq!(
        ks.info(),
        before,
        "a refused key leaves the keyset as it was"
    );

    // Load: every reader, cleartext and encrypted.
    let chacha = chacha_keyset_json();
    assert_refused_naming(
        Keyset::read_with_provider(&chacha, KeysetProtection::Cleartext, fips),
        "ChaCha20Poly1305Key",
    );
    if provider::get_default().expect("default").fips() {
        assert_refused_naming(Keyset::from_json_insecure(&chacha), "ChaCha20Poly1305Key");
        assert_refused_naming(
            Keyset::read(&chacha, KeysetProtection::Cleartext),
            "ChaCha20Poly1305Key",
        );
    }
    let kek = ks.aead().expect("kek");
    // Wrap the ChaCha keyset under the approved KEK with another provider
    // if this build has one, then read it back under `fips`.
    if let Ok(ring) = CryptoProvider::get(Provider::Ring) {
        let plain = Keyset::read_with_provider(&chacha, KeysetProtection::Cleartext, ring)
            .expect("ring reads it");
        let wrapped = plain
            .write(
                KeysetEncoding::Json,
                KeysetProtection::encrypted(&kek, b"ad"),
            )
            .expect("wrap");
        assert_refused_naming(
            Keyset::read_with_provider(&wrapped, KeysetProtection::encrypted(&kek, b"ad"), fips),
            "ChaCha20Poly1305Key",
        );

        // Use: a keyset read under ring cannot be moved to `fips`, even
        // with the ChaCha20 key only DISABLED.
        assert_refused_naming(plain.with_provider(fips), "ChaCha20Poly1305Key");
        let mut mixed = Keyset::generate_with_provider(&tpl("AES256_GCM"), ring).expect("ring");
        let id = mixed
            .add_key(&tpl("CHACHA20_POLY1305"))
            .expect("ring allows it");
        mixed.disable(id).expect("disable");
        let e = mixed.with_provider(fips).expect_err("refused");
        assert!(
            matches!(e, KeysetError::Key { key_id, source: KeyError::NotFipsApproved { .. } } if key_id == id),
            "{e:?}"
        );
        mixed.delete(id).expect("delete");
        let moved = mixed.with_provider(fips).expect("AES-GCM alone moves");
        assert!(moved.provider().fips());
    }
}

/// KMS envelope keys: the DEKs are made and used by the keyset's provider
/// (their `DekTemplate` carries it), every provider decrypts every other's
/// envelopes, and under `fips` an envelope whose DEK type is not approved
/// is refused when made, read or moved to it, naming the DEK's key type.
#[tokio::test]
async fn envelope_deks_use_the_keysets_provider() {
    use std::collections::HashMap;
    use std::sync::Arc;

    use encstore_core::{AeadKek, Kek};
    use encstore_tink::envelope::{self, DekTemplate};
    use encstore_tink::{KeyTemplate, KeysetAsyncAead, OutputPrefix};

    const URI: &str = "test-kek://providers";
    let d = provider::get_default().expect("default");
    let dek = DekTemplate::new(&tpl("AES256_GCM")).expect("DEK template");
    assert!(std::ptr::eq(dek.provider(), d));
    let master = Keyset::generate(&tpl("AES256_GCM")).expect("master");
    let kek: Arc<dyn Kek> = Arc::new(AeadKek(Arc::new(master.aead().expect("aead"))));
    let resolver: HashMap<String, Arc<dyn Kek>> = [(URI.to_owned(), kek)].into();
    // An envelope template whose DEK template was checked by `p`.
    let envelope_template = |p: &'static CryptoProvider, dek: &str| {
        let dek = DekTemplate::with_provider(p, &tpl(dek)).expect("DEK template");
        assert!(std::ptr::eq(dek.provider(), p));
        KeyTemplate::new(
            envelope::TYPE_URL,
            envelope::key_format(URI, &dek),
            OutputPrefix::Tink,
        )
    };
    let mut checked = 0;
    for p in compiled() {
        for dek in ["AES256_GCM", "AES128_CTR_HMAC_SHA256"] {
            let ks = Keyset::generate_with_provider(&envelope_template(p, dek), p).expect(dek);
            let ct = KeysetAsyncAead::new(&ks, &resolver)
                .await
                .expect("async AEAD")
                .encrypt(b"enveloped", b"ad")
                .await
                .expect("encrypt");
            for q in compiled() {
                let other = ks.with_provider(q).expect("another provider");
                let aead = KeysetAsyncAead::new(&other, &resolver)
                    .await
                    .expect("async AEAD");
                assert_eq!(aead.decrypt(&ct, b"ad").await.expect(dek), b"enveloped");
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "{checked}");

    let (Ok(fips), Ok(ring)) = (
        CryptoProvider::get(Provider::AwsLcFips),
        CryptoProvider::get(Provider::Ring),
    ) else {
        return;
    };
    // Made: the DEK template itself is refused.
    let e = DekTemplate::with_provider(fips, &tpl("CHACHA20_POLY1305")).expect_err("refused");
    assert!(
        matches!(
            e,
            KeyError::NotFipsApproved {
                key_type: "ChaCha20Poly1305Key",
                ..
            }
        ),
        "{e:?}"
    );
    // Read and moved: an envelope key with ChaCha20 DEKs, made under ring.
    let chacha =
        Keyset::generate_with_provider(&envelope_template(ring, "CHACHA20_POLY1305"), ring)
            .expect("ring allows it");
    assert_refused_naming(
        Keyset::read_with_provider(
            &chacha.to_json_insecure(),
            KeysetProtection::Cleartext,
            fips,
        ),
        "ChaCha20Poly1305Key",
    );
    assert_refused_naming(chacha.with_provider(fips), "ChaCha20Poly1305Key");
}
