//! `Pkcs11Kek` against a real PKCS#11 module: SoftHSM2, one fresh token per
//! test (see `encstore_pkcs11::testing::hsm_test`). No mocks.
#![allow(clippy::unwrap_used)]

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use encstore_core::{Kek, KekError};
use encstore_pkcs11::testing::{Hsm, PIN, TOKEN, assert_no_pin, hsm_test};
use encstore_pkcs11::{IV_LEN, Pkcs11Error, Pkcs11Kek, Pkcs11Uri, TAG_LEN};

/// Opens and checks that neither Debug nor Display of the error shows a PIN.
fn open_err(uri: &str) -> Pkcs11Error {
    let e = Pkcs11Kek::open(uri).unwrap_err();
    assert_no_pin(&format!("{e} {e:?}"));
    assert!(!e.to_string().contains('\n'), "multi-line message: {e}");
    e
}

fn kek_failed_source(e: &KekError) -> &Pkcs11Error {
    match e {
        KekError::Failed(inner) => inner
            .downcast_ref::<Pkcs11Error>()
            .expect("a Pkcs11Error source"),
        other => panic!("expected KekError::Failed, got {other:?}"),
    }
}

/// Generates a token secret key through the admin session.
fn make_key(hsm: &Hsm, mech: Mechanism<'_>, extra: Vec<Attribute>) {
    let (_ctx, s) = hsm.admin();
    let mut t = vec![Attribute::Token(true), Attribute::Private(true)];
    t.extend(extra);
    s.generate_key(&mech, &t).unwrap();
}

#[test]
fn create_master_key_then_refuse_duplicate() {
    hsm_test(
        "create_master_key_then_refuse_duplicate",
        |hsm| async move {
            let kek = Pkcs11Kek::create_master_key(&hsm.uri("kek-2026")).unwrap();
            assert_eq!(
                format!("{kek:?}"),
                format!(
                    "Pkcs11Kek {{ token: \"encstore\", key: \"kek-2026\", module: {:?} }}",
                    hsm.module
                )
            );
            let wrapped = kek.wrap(b"keyset", b"").await.unwrap();
            // A second KEK opened from the same URI uses the same key.
            let again = Pkcs11Kek::open(&hsm.uri("kek-2026")).unwrap();
            assert_eq!(again.unwrap(&wrapped, b"").await.unwrap(), b"keyset");

            let e = Pkcs11Kek::create_master_key(&hsm.uri("kek-2026")).unwrap_err();
            assert!(matches!(e, Pkcs11Error::KeyExists { .. }), "{e:?}");
            assert_eq!(
                e.to_string(),
                "PKCS#11 token \"encstore\": an object with the label or id of key \"kek-2026\" already exists; refusing to create another"
            );
            assert_no_pin(&format!("{e:?}"));
            // The refusal did not create a second object: opening is not ambiguous.
            Pkcs11Kek::open(&hsm.uri("kek-2026")).unwrap();
        },
    );
}

#[test]
fn master_key_is_sensitive_and_not_extractable() {
    hsm_test(
        "master_key_is_sensitive_and_not_extractable",
        |hsm| async move {
            Pkcs11Kek::create_master_key(&hsm.uri("kek-attrs")).unwrap();
            let (_ctx, s) = hsm.admin();
            let found = s
                .find_objects(&[Attribute::Label(b"kek-attrs".to_vec())])
                .unwrap();
            assert_eq!(found.len(), 1);
            let attrs = s
                .get_attributes(
                    found[0],
                    &[
                        AttributeType::Class,
                        AttributeType::KeyType,
                        AttributeType::ValueLen,
                        AttributeType::Token,
                        AttributeType::Private,
                        AttributeType::Sensitive,
                        AttributeType::AlwaysSensitive,
                        AttributeType::Extractable,
                        AttributeType::NeverExtractable,
                        AttributeType::Encrypt,
                        AttributeType::Decrypt,
                        AttributeType::Wrap,
                        AttributeType::Unwrap,
                    ],
                )
                .unwrap();
            let mut seen = 0;
            for a in attrs {
                seen += 1;
                match a {
                    Attribute::Class(c) => assert_eq!(c, ObjectClass::SECRET_KEY),
                    Attribute::KeyType(k) => assert_eq!(k, KeyType::AES),
                    Attribute::ValueLen(l) => assert_eq!(u64::from(l), 32),
                    Attribute::Token(b)
                    | Attribute::Private(b)
                    | Attribute::Sensitive(b)
                    | Attribute::AlwaysSensitive(b)
                    | Attribute::NeverExtractable(b)
                    | Attribute::Encrypt(b)
                    | Attribute::Decrypt(b) => assert!(b, "expected true"),
                    Attribute::Extractable(b) | Attribute::Wrap(b) | Attribute::Unwrap(b) => {
                        assert!(!b, "expected false")
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(seen, 13);
            // The key bytes cannot be read out.
            let value = s.get_attributes(found[0], &[AttributeType::Value]);
            assert!(
                !matches!(&value, Ok(v) if !v.is_empty()),
                "CKA_VALUE was readable: {value:?}"
            );
            // Nor wrapped out under another key.
            let exporter = s
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &[
                        Attribute::ValueLen(32.into()),
                        Attribute::Wrap(true),
                        Attribute::Token(false),
                    ],
                )
                .unwrap();
            assert!(
                s.wrap_key(&Mechanism::AesKeyWrapPad, exporter, found[0])
                    .is_err()
            );
        },
    );
}

#[test]
fn wrap_unwrap_round_trip_with_and_without_associated_data() {
    hsm_test(
        "wrap_unwrap_round_trip_with_and_without_associated_data",
        |hsm| async move {
            Pkcs11Kek::create_master_key(&hsm.uri("kek-rt")).unwrap();
            // Module and PIN from ENCSTORE_PKCS11_MODULE / ENCSTORE_PKCS11_PIN_FILE.
            let kek = Pkcs11Kek::open("pkcs11:token=encstore;object=kek-rt").unwrap();
            for (pt, ad) in [
                (&b"serialized keyset"[..], &b""[..]),
                (b"serialized keyset", b"keyset associated data"),
                (b"", b""),
                (&[0x5a; 70_000][..], b"big"),
            ] {
                let w1 = kek.wrap(pt, ad).await.unwrap();
                let w2 = kek.wrap(pt, ad).await.unwrap();
                assert_eq!(w1.len(), IV_LEN + pt.len() + TAG_LEN);
                assert_ne!(w1[..IV_LEN], w2[..IV_LEN], "IVs must differ");
                assert_ne!(w1, w2);
                if !pt.is_empty() {
                    assert_ne!(&w1[IV_LEN..IV_LEN + pt.len()], pt, "not encrypted");
                }
                assert_eq!(kek.unwrap(&w1, ad).await.unwrap(), pt);
                assert_eq!(kek.unwrap(&w2, ad).await.unwrap(), pt);
            }
            // Blocking, typed variants agree with the async ones.
            let w = kek.wrap_blocking(b"x", b"ad").unwrap();
            assert_eq!(kek.unwrap(&w, b"ad").await.unwrap(), b"x");
        },
    );
}

#[test]
fn wrong_associated_data_and_tampering_fail_authentication() {
    hsm_test(
        "wrong_associated_data_and_tampering_fail_authentication",
        |hsm| async move {
            let kek = Pkcs11Kek::create_master_key(&hsm.uri("kek-auth")).unwrap();
            let w = kek.wrap(b"serialized keyset", b"ad").await.unwrap();
            let auth = |r: Result<Vec<u8>, KekError>| {
                assert!(matches!(r, Err(KekError::Authentication)), "{r:?}")
            };
            auth(kek.unwrap(&w, b"other ad").await);
            auth(kek.unwrap(&w, b"").await);
            for i in [
                0,
                IV_LEN - 1,
                IV_LEN,
                IV_LEN + 5,
                w.len() - TAG_LEN,
                w.len() - 1,
            ] {
                let mut t = w.clone();
                t[i] ^= 0x01;
                auth(kek.unwrap(&t, b"ad").await);
            }
            auth(kek.unwrap(&w[..w.len() - 1], b"ad").await);
            auth(kek.unwrap(&w[..IV_LEN + TAG_LEN - 1], b"ad").await);
            auth(kek.unwrap(b"", b"ad").await);
            let mut longer = w.clone();
            longer.push(0);
            auth(kek.unwrap(&longer, b"ad").await);
            // Still usable afterwards.
            assert_eq!(kek.unwrap(&w, b"ad").await.unwrap(), b"serialized keyset");
            assert_eq!(
                kek.unwrap_blocking(&w, b"x").unwrap_err().to_string(),
                "the keyset could not be unwrapped: wrong master key or associated data, or the data was tampered with"
            );
        },
    );
}

#[test]
fn another_hsm_key_cannot_unwrap() {
    hsm_test("another_hsm_key_cannot_unwrap", |hsm| async move {
        let a = Pkcs11Kek::create_master_key(&hsm.uri("kek-a")).unwrap();
        let b = Pkcs11Kek::create_master_key(&hsm.uri("kek-b")).unwrap();
        let w = a.wrap(b"keyset", b"").await.unwrap();
        assert!(matches!(
            b.unwrap(&w, b"").await,
            Err(KekError::Authentication)
        ));
        assert_eq!(a.unwrap(&w, b"").await.unwrap(), b"keyset");
    });
}

#[test]
fn key_selected_by_id() {
    hsm_test("key_selected_by_id", |hsm| async move {
        let with_id = hsm
            .uri("kek-id")
            .replacen(";object=kek-id", ";object=kek-id;id=%01%A2", 1);
        let kek = Pkcs11Kek::create_master_key(&with_id).unwrap();
        let w = kek.wrap(b"k", b"").await.unwrap();
        // Found by id alone.
        let by_id = hsm.uri("x").replacen(";object=x", ";id=%01%a2", 1);
        let kek2 = Pkcs11Kek::open(&by_id).unwrap();
        assert_eq!(
            format!("{kek2:?}"),
            format!(
                "Pkcs11Kek {{ token: \"encstore\", key: id=01a2, module: {:?} }}",
                hsm.module
            )
        );
        assert_eq!(kek2.unwrap(&w, b"").await.unwrap(), b"k");
        // The same id under another label is refused at creation.
        let clash = hsm
            .uri("other")
            .replacen(";object=other", ";object=other;id=%01%a2", 1);
        assert!(matches!(
            Pkcs11Kek::create_master_key(&clash),
            Err(Pkcs11Error::KeyExists { .. })
        ));
    });
}

#[test]
fn configuration_errors_are_distinct_and_clear() {
    hsm_test(
        "configuration_errors_are_distinct_and_clear",
        |hsm| async move {
            Pkcs11Kek::create_master_key(&hsm.uri("kek-cfg")).unwrap();
            let module = hsm.module.display().to_string();

            // Wrong PIN.
            let bad = hsm.write_file("bad-pin", "PIN-WRONG-0000\n");
            let uri = format!(
                "pkcs11:token=encstore;object=kek-cfg?module-path={module}&pin-source=file:{}",
                bad.display()
            );
            let e = open_err(&uri);
            assert!(matches!(e, Pkcs11Error::WrongPin { .. }), "{e:?}");
            assert_eq!(
                e.to_string(),
                "PKCS#11 token \"encstore\": the user PIN is incorrect (CKR_PIN_INCORRECT)"
            );
            assert!(matches!(KekError::from(e), KekError::Unavailable(_)));
            // The URI's pin-source wins over ENCSTORE_PKCS11_PIN_FILE (which is right).
            let e = open_err(&format!(
                "pkcs11:token=encstore;object=kek-cfg?pin-source=file:{}",
                bad.display()
            ));
            assert!(matches!(e, Pkcs11Error::WrongPin { .. }), "{e:?}");
            // pin-source=env:VAR reads that variable (not set here).
            let e = open_err(&format!(
                "pkcs11:token=encstore;object=kek-cfg?module-path={module}&pin-source=env:ENCSTORE_TEST_NO_SUCH_VAR"
            ));
            assert_eq!(
                e.to_string(),
                "cannot read the PKCS#11 PIN from env:ENCSTORE_TEST_NO_SUCH_VAR: the variable is not set"
            );
            // PIN file missing.
            let e = open_err(&format!(
                "pkcs11:token=encstore;object=kek-cfg?pin-source=file:{}/absent",
                hsm.dir.display()
            ));
            assert!(matches!(e, Pkcs11Error::PinSource { .. }), "{e:?}");

            // Token not found: the message lists what is there.
            let e = open_err(
                &hsm.uri("kek-cfg")
                    .replacen("token=encstore", "token=nope", 1),
            );
            assert!(matches!(e, Pkcs11Error::TokenNotFound { .. }), "{e:?}");
            assert_eq!(
                e.to_string(),
                format!(
                    "PKCS#11 token \"nope\" not found in module {module} (it offers: \"encstore\")"
                )
            );
            // Other token attributes take part in matching.
            let e = open_err(&hsm.uri("kek-cfg").replacen(
                "token=encstore",
                "token=encstore;serial=0000",
                1,
            ));
            assert!(matches!(e, Pkcs11Error::TokenNotFound { .. }), "{e:?}");
            let ok = hsm.uri("kek-cfg").replacen(
                "token=encstore",
                "token=encstore;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;type=secret-key",
                1,
            );
            Pkcs11Kek::open(&ok).unwrap();

            // Module missing.
            let e = open_err(&format!(
                "pkcs11:token=encstore;object=kek-cfg?module-path=/nonexistent/libpkcs11.so&pin-source=file:{}",
                hsm.pin_file.display()
            ));
            assert_eq!(
                e.to_string(),
                "PKCS#11 module /nonexistent/libpkcs11.so not found"
            );

            // Key not found.
            let e = open_err(&hsm.uri("no-such-key"));
            assert!(matches!(e, Pkcs11Error::KeyNotFound { .. }), "{e:?}");
            assert_eq!(
                e.to_string(),
                "PKCS#11 token \"encstore\": no key \"no-such-key\" (create it with encstore create-master-key)"
            );

            // pin-value is refused before anything is loaded.
            let e = open_err(&format!("{}&pin-value={PIN}", hsm.uri("kek-cfg")));
            assert!(matches!(e, Pkcs11Error::PinInUri), "{e:?}");
            assert!(matches!(KekError::from(e), KekError::InvalidUri(_)));
        },
    );
}

#[test]
fn keys_that_cannot_be_keks_are_refused() {
    hsm_test("keys_that_cannot_be_keks_are_refused", |hsm| async move {
        let label = |l: &str| Attribute::Label(l.as_bytes().to_vec());
        make_key(
            &hsm,
            Mechanism::Des3KeyGen,
            vec![
                label("des3"),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        );
        make_key(
            &hsm,
            Mechanism::GenericSecretKeyGen,
            vec![label("generic"), Attribute::ValueLen(32.into())],
        );
        let aes = |l: &str, enc: bool, dec: bool| {
            vec![
                label(l),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(enc),
                Attribute::Decrypt(dec),
            ]
        };
        make_key(&hsm, Mechanism::AesKeyGen, aes("no-encrypt", false, true));
        make_key(&hsm, Mechanism::AesKeyGen, aes("no-decrypt", true, false));
        make_key(&hsm, Mechanism::AesKeyGen, aes("no-use", false, false));
        let mut dup1 = aes("dup", true, true);
        dup1.push(Attribute::Id(vec![1]));
        let mut dup2 = aes("dup", true, true);
        dup2.push(Attribute::Id(vec![2]));
        make_key(&hsm, Mechanism::AesKeyGen, dup1);
        make_key(&hsm, Mechanism::AesKeyGen, dup2);

        let e = open_err(&hsm.uri("des3"));
        assert_eq!(
            e.to_string(),
            "PKCS#11 token \"encstore\": key \"des3\" is a DES3 secret key, not an AES secret key"
        );
        assert!(matches!(e, Pkcs11Error::NotAesKey { .. }));
        let e = open_err(&hsm.uri("generic"));
        assert_eq!(
            e.to_string(),
            "PKCS#11 token \"encstore\": key \"generic\" is a generic secret key, not an AES secret key"
        );
        let e = open_err(&hsm.uri("no-encrypt"));
        assert_eq!(
            e.to_string(),
            "PKCS#11 token \"encstore\": key \"no-encrypt\" lacks CKA_ENCRYPT, so it cannot wrap keysets"
        );
        let e = open_err(&hsm.uri("no-decrypt"));
        assert!(
            matches!(
                e,
                Pkcs11Error::KeyUsage {
                    missing: "CKA_DECRYPT",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = open_err(&hsm.uri("no-use"));
        assert!(
            matches!(
                e,
                Pkcs11Error::KeyUsage {
                    missing: "CKA_ENCRYPT and CKA_DECRYPT",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = open_err(&hsm.uri("dup"));
        assert_eq!(
            e.to_string(),
            "PKCS#11 token \"encstore\": 2 objects match key \"dup\"; add id= to the URI to pick one"
        );
        assert!(matches!(e, Pkcs11Error::AmbiguousKey { count: 2, .. }));
        // id= disambiguates.
        let one = Pkcs11Kek::open(
            &hsm.uri("dup")
                .replacen(";object=dup", ";object=dup;id=%02", 1),
        )
        .unwrap();
        let w = one.wrap(b"k", b"").await.unwrap();
        assert_eq!(one.unwrap(&w, b"").await.unwrap(), b"k");
        // create_master_key refuses a label held by a non-AES object too.
        assert!(matches!(
            Pkcs11Kek::create_master_key(&hsm.uri("des3")),
            Err(Pkcs11Error::KeyExists { .. })
        ));
    });
}

#[test]
fn key_destroyed_under_an_open_kek() {
    hsm_test("key_destroyed_under_an_open_kek", |hsm| async move {
        let kek = Pkcs11Kek::create_master_key(&hsm.uri("kek-gone")).unwrap();
        let w = kek.wrap(b"keyset", b"").await.unwrap();
        {
            let (_ctx, s) = hsm.admin();
            let h = s
                .find_objects(&[Attribute::Label(b"kek-gone".to_vec())])
                .unwrap();
            s.destroy_object(h[0]).unwrap();
        }
        let e = kek.wrap(b"keyset", b"").await.unwrap_err();
        assert_no_pin(&format!("{e} {e:?}"));
        assert_eq!(
            e.to_string(),
            "PKCS#11 token \"encstore\": no key \"kek-gone\" (create it with encstore create-master-key)"
        );
        let e = kek.unwrap(&w, b"").await.unwrap_err();
        assert!(matches!(e, KekError::Unavailable(_)), "{e:?}");
    });
}

#[test]
fn module_finalized_under_an_open_kek() {
    hsm_test("module_finalized_under_an_open_kek", |hsm| async move {
        let kek = Pkcs11Kek::create_master_key(&hsm.uri("kek-fin")).unwrap();
        let w = kek.wrap(b"keyset", b"").await.unwrap();
        // Another part of the process finalises the module: every session dies.
        let (ctx, session) = hsm.admin();
        drop(session);
        ctx.finalize().unwrap();

        let e = kek.wrap(b"keyset", b"").await.unwrap_err();
        assert_no_pin(&format!("{e} {e:?}"));
        let src = kek_failed_source(&e);
        assert!(
            matches!(
                src,
                Pkcs11Error::Operation {
                    operation: "wrap",
                    ..
                }
            ),
            "{src:?}"
        );
        // The IV is drawn from the token first, so that is the call that
        // fails. KekError displays the PKCS#11 error transparently.
        assert_eq!(
            e.to_string(),
            "PKCS#11 wrap with key \"kek-fin\" on token \"encstore\" failed mid-operation: CKR_CRYPTOKI_NOT_INITIALIZED from C_GenerateRandom (the module was finalised by another part of this process; open the KEK again)"
        );
        let e = kek.unwrap(&w, b"").await.unwrap_err();
        assert!(matches!(
            kek_failed_source(&e),
            Pkcs11Error::Operation {
                operation: "unwrap",
                ..
            }
        ));

        // Opening again re-initialises the module and works.
        let kek = Pkcs11Kek::open(&hsm.uri("kek-fin")).unwrap();
        assert_eq!(kek.unwrap(&w, b"").await.unwrap(), b"keyset");
    });
}

#[test]
fn token_directory_deleted_under_an_open_kek() {
    hsm_test(
        "token_directory_deleted_under_an_open_kek",
        |hsm| async move {
            let kek = Pkcs11Kek::create_master_key(&hsm.uri("kek-rm")).unwrap();
            let w = kek.wrap(b"keyset", b"").await.unwrap();
            std::fs::remove_dir_all(hsm.dir.join("tokens")).unwrap();
            std::fs::create_dir(hsm.dir.join("tokens")).unwrap();
            // SoftHSM2 notices on the next call; the KEK tries to reconnect, the
            // login fails, and the caller gets a mid-operation failure.
            let r = kek.unwrap(&w, b"").await;
            let r2 = kek.wrap(b"keyset", b"").await;
            for (res, op) in [(&r, "unwrap"), (&r2, "wrap")] {
                let e = res.as_ref().unwrap_err();
                match kek_failed_source(e) {
                    Pkcs11Error::Operation {
                        operation, reason, ..
                    } => {
                        assert_eq!(*operation, op);
                        assert!(reason.starts_with("reconnecting to the token"), "{reason}");
                    }
                    other => panic!("{other:?}"),
                }
            }
            // A fresh open fails cleanly, naming the module.
            let e = Pkcs11Kek::open(&hsm.uri("kek-rm")).unwrap_err();
            assert!(matches!(e, Pkcs11Error::Module { .. }), "{e:?}");
            assert_no_pin(&format!("{r:?} {r2:?} {e} {e:?}"));
        },
    );
}

#[test]
fn reconnects_after_logout_and_closed_sessions() {
    hsm_test(
        "reconnects_after_logout_and_closed_sessions",
        |hsm| async move {
            let kek = Pkcs11Kek::create_master_key(&hsm.uri("kek-re")).unwrap();
            let w = kek.wrap(b"keyset", b"").await.unwrap();
            // Someone logs the application out of the token.
            {
                let (_ctx, s) = hsm.admin();
                s.logout().unwrap();
            }
            assert_eq!(kek.unwrap(&w, b"").await.unwrap(), b"keyset");
            let w2 = kek.wrap(b"keyset 2", b"").await.unwrap();
            assert_eq!(kek.unwrap(&w2, b"").await.unwrap(), b"keyset 2");
        },
    );
}

#[test]
fn concurrent_use_from_many_tasks() {
    hsm_test("concurrent_use_from_many_tasks", |hsm| async move {
        let kek = std::sync::Arc::new(Pkcs11Kek::create_master_key(&hsm.uri("kek-par")).unwrap());
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let kek = kek.clone();
            tasks.push(tokio::spawn(async move {
                let pt = vec![i; 100 + i as usize];
                let ad = [i];
                let w = kek.wrap(&pt, &ad).await.unwrap();
                assert_eq!(kek.unwrap(&w, &ad).await.unwrap(), pt);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // As a trait object too.
        let dynkek: std::sync::Arc<dyn Kek> = kek;
        let w = dynkek.wrap(b"k", b"").await.unwrap();
        assert_eq!(dynkek.unwrap(&w, b"").await.unwrap(), b"k");
    });
}

#[test]
fn nothing_shows_the_pin() {
    hsm_test("nothing_shows_the_pin", |hsm| async move {
        let uri = hsm.uri("kek-pin");
        let mut shown = Vec::new();
        // pin-source=env:VAR naming a variable that holds a wrong PIN. This
        // comes first: once a session of this process is logged in, PKCS#11
        // answers a further login with CKR_USER_ALREADY_LOGGED_IN without
        // checking the PIN.
        let via_env =
            format!("pkcs11:token={TOKEN};object=kek-pin?pin-source=env:ENCSTORE_PKCS11_TEST_DIR");
        let e = Pkcs11Kek::open(&via_env).unwrap_err();
        assert!(matches!(e, Pkcs11Error::WrongPin { .. }), "{e:?}");
        shown.push(format!("{e} {e:?}"));
        shown.push(KekError::from(e).to_string());

        let kek = Pkcs11Kek::create_master_key(&uri).unwrap();
        let parsed = Pkcs11Uri::parse(&uri).unwrap();
        assert_eq!(format!("{parsed:?}"), format!("Pkcs11Uri({:?})", uri));
        shown.extend([
            format!("{kek:?}"),
            format!("{:?}", kek.uri()),
            kek.uri().to_string(),
            format!("{parsed:?}"),
            parsed.to_string(),
        ]);
        let w = kek.wrap(b"k", b"").await.unwrap();
        let e = kek.unwrap(&w, b"nope").await.unwrap_err();
        shown.push(format!("{e} {e:?}"));
        for s in &shown {
            assert_no_pin(s);
        }
    });
}

#[test]
fn key_made_by_pkcs11_tool_is_usable() {
    hsm_test("key_made_by_pkcs11_tool_is_usable", |hsm| async move {
        // Operators may create the key with OpenSC's pkcs11-tool instead of
        // encstore create-master-key; that key works too.
        if std::process::Command::new("pkcs11-tool")
            .arg("--help")
            .output()
            .is_err()
        {
            let msg = "pkcs11-tool (opensc) is not installed; run `scripts/softhsm.sh install`";
            assert!(
                std::env::var("ENCSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{msg}"
            );
            eprintln!("SKIPPED: {msg}");
            return;
        }
        let out = std::process::Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&hsm.module)
            .args([
                "--token-label",
                TOKEN,
                "--login",
                "--pin",
                PIN,
                "--keygen",
                "--key-type",
                "AES:32",
                "--label",
                "kek-opensc",
                "--usage-decrypt",
                "--sensitive",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pkcs11-tool --keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kek = Pkcs11Kek::open(&hsm.uri("kek-opensc")).unwrap();
        let w = kek.wrap(b"keyset", b"ad").await.unwrap();
        assert_eq!(kek.unwrap(&w, b"ad").await.unwrap(), b"keyset");
    });
}
