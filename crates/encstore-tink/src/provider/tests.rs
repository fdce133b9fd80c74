//! Unit tests of the providers: names, selection, the FIPS gate and each provider's checks.

use super::default::choose;
use super::*;

#[test]
fn names_round_trip_and_unknown_names_are_refused() {
    for p in ALL {
        assert_eq!(Provider::from_name(p.name()), Ok(p));
        assert_eq!(p.to_string(), p.name());
    }
    assert_eq!(
        Provider::from_name("openssl"),
        Err(ProviderError::UnknownName {
            name: "openssl".into()
        })
    );
    assert_eq!(
        Provider::from_name("openssl").unwrap_err().to_string(),
        "unknown crypto provider \"openssl\" (known: ring, aws-lc-rs, fips)"
    );
    // Names are exact: no case folding, no aliases.
    assert!(Provider::from_name("RING").is_err());
    assert!(Provider::from_name("aws-lc-rs-fips").is_err());
}

/// The compiled list follows the cargo features exactly, and every
/// provider outside it is refused by name.
#[test]
fn compiled_providers_follow_the_features() {
    assert_eq!(Provider::Ring.is_compiled(), cfg!(feature = "ring"));
    assert_eq!(
        Provider::AwsLc.is_compiled(),
        cfg!(all(feature = "aws-lc-rs", not(feature = "fips")))
    );
    assert_eq!(Provider::AwsLcFips.is_compiled(), cfg!(feature = "fips"));
    assert!(!Provider::compiled().is_empty());
    for p in ALL {
        match CryptoProvider::get(p) {
            Ok(c) => {
                assert!(p.is_compiled());
                assert_eq!(c.provider(), p);
                assert_eq!(c.fips(), p == Provider::AwsLcFips);
            }
            Err(ProviderError::NotCompiled { name, compiled }) => {
                assert!(!p.is_compiled());
                assert_eq!(name, p.name());
                for c in Provider::compiled() {
                    assert!(compiled.contains(c.name()), "{compiled}");
                }
                let msg = CryptoProvider::get(p).unwrap_err().to_string();
                assert!(msg.contains(&format!("`{}`", p.name())), "{msg}");
            }
            Err(e) => panic!("{p}: {e}"),
        }
    }
}

#[test]
fn the_build_default_prefers_fips_then_ring() {
    let expected = if cfg!(feature = "fips") {
        Provider::AwsLcFips
    } else if cfg!(feature = "ring") {
        Provider::Ring
    } else {
        Provider::AwsLc
    };
    assert_eq!(build_default(), expected);
}

/// A module that is not in FIPS mode makes the `fips` provider
/// unusable, with the module's own words in the message.
#[test]
fn the_fips_gate_refuses_a_module_not_in_fips_mode() {
    assert_eq!(fips_gate(Ok(())), Ok(()));
    let err = fips_gate(Err("FIPS mode not enabled!")).unwrap_err();
    assert_eq!(
        err,
        ProviderError::NotInFipsMode {
            reason: "FIPS mode not enabled!".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "the AWS-LC FIPS module is not in FIPS mode (FIPS mode not enabled!); refusing to run under the fips crypto provider"
    );
}

/// Under `fips` the module reports FIPS mode, and the status says so;
/// the other providers never claim it.
#[test]
fn status_reports_fips_mode_only_for_the_fips_module() {
    for p in Provider::compiled() {
        let s = CryptoProvider::get(*p).expect("compiled").status();
        assert_eq!(s.provider, *p);
        assert_eq!(s.fips_mode, *p == Provider::AwsLcFips, "{p}");
        assert_eq!(s.library_version.is_some(), *p != Provider::Ring);
        assert_eq!(s.compiled, Provider::compiled());
        let line = s.to_string();
        assert!(line.starts_with(p.name()), "{line}");
        assert!(
            line.ends_with(if s.fips_mode {
                "FIPS mode: yes"
            } else {
                "FIPS mode: no"
            }),
            "{line}"
        );
    }
}

/// Under `fips`: exactly the non-approved key types are refused, with
/// the key type and "not FIPS-approved in this build" in the message;
/// the others pass. Other providers refuse nothing.
#[test]
fn fips_refuses_exactly_the_non_approved_key_types() {
    let refused = [
        "AesGcmSivKey",
        "AesEaxKey",
        "ChaCha20Poly1305Key",
        "XChaCha20Poly1305Key",
        "XAesGcmKey",
    ];
    let approved = [
        "AesGcmKey",
        "AesCtrHmacAeadKey",
        "AesGcmHkdfStreamingKey",
        "AesCtrHmacStreamingKey",
    ];
    for p in Provider::compiled() {
        let c = CryptoProvider::get(*p).expect("compiled");
        for name in approved {
            let url = format!("{}{name}", crate::primitives::TYPE_URL_PREFIX);
            assert_eq!(c.check_key_type(&url), Ok(()), "{p} {name}");
        }
        for name in refused {
            let url = format!("{}{name}", crate::primitives::TYPE_URL_PREFIX);
            let r = c.check_key_type(&url);
            if c.fips() {
                let e = r.expect_err(name);
                assert!(
                    matches!(e, KeyError::NotFipsApproved { key_type, .. } if key_type == name)
                );
                let msg = e.to_string();
                assert!(
                    msg.starts_with(&format!("{name} is not FIPS-approved in this build")),
                    "{msg}"
                );
            } else {
                assert_eq!(r, Ok(()), "{p} {name}");
            }
        }
    }
}

#[test]
fn fips_refuses_sha1_and_keeps_sha2() {
    let ctr = |hash| KeyParams::AesCtrHmac {
        aes_key_size: 32,
        iv_size: 16,
        hmac_key_size: 32,
        hash,
        tag_size: 16,
    };
    let gcm_stream = |hkdf_hash| KeyParams::AesGcmHkdfStreaming {
        key_size: 32,
        derived_key_size: 32,
        hkdf_hash,
        ciphertext_segment_size: 4096,
    };
    let ctr_stream = |hkdf_hash, hmac_hash| KeyParams::AesCtrHmacStreaming {
        key_size: 32,
        derived_key_size: 32,
        hkdf_hash,
        hmac_hash,
        tag_size: 32,
        ciphertext_segment_size: 4096,
    };
    let sha1 = [
        (ctr(HashType::Sha1), "AesCtrHmacAeadKey"),
        (gcm_stream(HashType::Sha1), "AesGcmHkdfStreamingKey"),
        (
            ctr_stream(HashType::Sha1, HashType::Sha256),
            "AesCtrHmacStreamingKey",
        ),
        (
            ctr_stream(HashType::Sha256, HashType::Sha1),
            "AesCtrHmacStreamingKey",
        ),
        (KeyParams::ChaCha20Poly1305, "ChaCha20Poly1305Key"),
    ];
    let sha2 = [
        ctr(HashType::Sha224),
        ctr(HashType::Sha256),
        ctr(HashType::Sha384),
        ctr(HashType::Sha512),
        gcm_stream(HashType::Sha256),
        gcm_stream(HashType::Sha512),
        ctr_stream(HashType::Sha512, HashType::Sha256),
        KeyParams::AesGcm { key_size: 16 },
    ];
    for p in Provider::compiled() {
        let c = CryptoProvider::get(*p).expect("compiled");
        for params in &sha2 {
            assert_eq!(c.check_key_params(params), Ok(()), "{p} {params:?}");
        }
        for (params, name) in &sha1 {
            let r = c.check_key_params(params);
            if c.fips() {
                assert!(
                    matches!(r, Err(KeyError::NotFipsApproved { key_type, .. }) if key_type == *name),
                    "{params:?}: {r:?}"
                );
            } else {
                assert_eq!(r, Ok(()));
            }
        }
    }
}

/// `ENCSTORE_CRYPTO_PROVIDER` picks any compiled provider by name;
/// an unknown or absent one is an error naming the variable; unset or
/// blank means the build default.
#[test]
fn the_environment_variable_picks_a_compiled_provider() {
    for p in Provider::compiled() {
        let (c, how) = choose(Some(p.name())).expect("compiled");
        assert_eq!((c.provider(), how), (*p, Selection::Environment));
        let (c, _) = choose(Some(&format!(" {} ", p.name()))).expect("trimmed");
        assert_eq!(c.provider(), *p);
    }
    for unset in [None, Some(""), Some("  ")] {
        let (c, how) = choose(unset).expect("build default");
        assert_eq!(
            (c.provider(), how),
            (build_default(), Selection::BuildDefault)
        );
    }
    let e = choose(Some("rustcrypto")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ENCSTORE_CRYPTO_PROVIDER: unknown crypto provider \"rustcrypto\" (known: ring, aws-lc-rs, fips)"
    );
    for p in ALL {
        if !p.is_compiled() {
            let e = choose(Some(p.name())).unwrap_err();
            assert!(
                matches!(&e, ProviderError::Environment { source, .. }
                    if matches!(**source, ProviderError::NotCompiled { .. })),
                "{e:?}"
            );
        }
    }
}

/// The default is fixed once: a second install of another provider is
/// refused, of the same one is harmless, and the status says how it
/// was chosen.
#[test]
fn the_default_is_fixed_once() {
    let d = get_default().expect("a default");
    assert!(Provider::compiled().contains(&d.provider()));
    assert!(std::ptr::eq(get_default().expect("again"), d));
    assert!(std::ptr::eq(
        install_default(d.provider()).expect("same provider"),
        d
    ));
    for p in Provider::compiled() {
        if *p != d.provider() {
            assert_eq!(
                install_default(*p).err(),
                Some(ProviderError::AlreadyInstalled {
                    installed: d.provider(),
                    requested: *p
                })
            );
        }
    }
    let s = status().expect("status");
    assert_eq!(s.provider, d.provider());
    assert!(s.selection.is_some());
    for p in Provider::compiled() {
        if *p != d.provider() {
            let other = CryptoProvider::get(*p).expect("compiled").status();
            assert_eq!(other.selection, None, "{p} is not the default");
        }
    }
}

/// `templates::names_for` lists every template under ring and aws-lc-rs,
/// and under `fips` exactly those whose key types are approved.
#[test]
fn template_names_for_a_provider_leave_out_what_it_refuses() {
    let all: Vec<&str> = crate::templates::all_names().collect();
    for p in Provider::compiled() {
        let c = CryptoProvider::get(*p).expect("compiled");
        let names = crate::templates::names_for(c);
        if !c.fips() {
            assert_eq!(names, all, "{p}");
            continue;
        }
        for name in [
            "AES256_GCM",
            "AES128_CTR_HMAC_SHA256",
            "AES256_GCM_HKDF_1MB",
        ] {
            assert!(names.contains(&name), "{p} {name}");
        }
        for name in &all {
            let refused = ["CHACHA20", "GCM_SIV", "EAX", "XAES", "X_AES_GCM"]
                .iter()
                .any(|r| name.contains(r));
            assert_eq!(names.contains(name), !refused, "{p} {name}");
        }
    }
}
