//! `VaultKek` against a real OpenBao server (`bao server -dev -dev-tls`):
//! the shared one from `scripts/openbao.sh`, with a fresh key name per test,
//! or a private one for the test that seals its server. No mocks.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use encstore_core::{Kek, KekError};
use encstore_tink::KeysetEncoding;
use encstore_tink::keyset::Keyset;
use encstore_vault::testing::{self, BaoDevServer, TestVault, unique_name};
use encstore_vault::{VaultConfig, VaultError, VaultKek, ciphertext_key_version};
use secrecy::SecretString;

/// Checks that nothing a caller could print about `e` shows the token and
/// that the message is one line.
fn check_message(v: &TestVault, e: &VaultError) {
    let all = format!("{e} {e:?}");
    assert!(!all.contains(&v.token), "token leaked: {all}");
    assert!(!e.to_string().contains('\n'), "multi-line message: {e}");
}

async fn create(v: &TestVault, prefix: &str) -> (String, VaultKek) {
    let name = unique_name(prefix);
    let kek = VaultKek::create_master_key_with(&v.uri(&name), v.config())
        .await
        .unwrap();
    (name, kek)
}

async fn open_err(uri: &str, config: VaultConfig) -> VaultError {
    VaultKek::open_with(uri, config).await.unwrap_err()
}

#[tokio::test]
async fn create_master_key_then_refuse_duplicate() {
    let Some(v) = testing::server("create_master_key_then_refuse_duplicate") else {
        return;
    };
    let (name, kek) = create(&v, "create").await;
    assert_eq!(
        format!("{kek:?}"),
        format!(
            "VaultKek {{ uri: \"hcvault://{}/transit/keys/{name}\", namespace: None }}",
            v.host_port
        )
    );
    // What transit says about it: aes256-gcm96, not exportable, version 1.
    let info = kek.key_info().await.unwrap();
    assert_eq!(info.key_type, "aes256-gcm96");
    assert!(!info.exportable && !info.derived);
    assert_eq!((info.latest_version, info.min_decryption_version), (1, 1));
    assert!(info.binds_associated_data());
    let out = v.bao_ok(&["read", "-field=exportable", &format!("transit/keys/{name}")]);
    assert_eq!(out.trim(), "false");
    let out = v.bao_ok(&[
        "read",
        "-field=allow_plaintext_backup",
        &format!("transit/keys/{name}"),
    ]);
    assert_eq!(out.trim(), "false");

    let wrapped = kek.wrap(b"keyset", b"").await.unwrap();
    let again = VaultKek::open_with(&v.uri(&name), v.config())
        .await
        .unwrap();
    assert_eq!(again.unwrap(&wrapped, b"").await.unwrap(), b"keyset");

    let e = VaultKek::create_master_key_with(&v.uri(&name), v.config())
        .await
        .unwrap_err();
    check_message(&v, &e);
    assert!(matches!(e, VaultError::KeyExists { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "Vault server https://{}: transit key {name:?} already exists at transit/; refusing to create another",
            v.host_port
        )
    );
    // The refusal changed nothing: still version 1, old data still readable.
    assert_eq!(kek.key_info().await.unwrap().latest_version, 1);
    assert_eq!(kek.unwrap(&wrapped, b"").await.unwrap(), b"keyset");
}

#[tokio::test]
async fn wrap_unwrap_round_trip_with_and_without_associated_data() {
    let Some(v) = testing::server("wrap_unwrap_round_trip_with_and_without_associated_data") else {
        return;
    };
    let (_, kek) = create(&v, "roundtrip").await;
    for (pt, ad) in [
        (&b"serialized keyset"[..], &b""[..]),
        (b"serialized keyset", b"keyset associated data"),
        (b"", b""),
        (b"", b"ad"),
        (&[0x5a; 70_000][..], b"big"),
        (&[0u8, 0xff, 0x80][..], &[0u8, 0xff][..]),
    ] {
        let w1 = kek.wrap(pt, ad).await.unwrap();
        let w2 = kek.wrap(pt, ad).await.unwrap();
        assert!(
            w1.starts_with(b"vault:v1:"),
            "{:?}",
            String::from_utf8_lossy(&w1[..12])
        );
        assert_eq!(ciphertext_key_version(&w1).unwrap(), 1);
        assert_ne!(w1, w2, "random nonces");
        assert_eq!(kek.unwrap(&w1, ad).await.unwrap(), pt);
        assert_eq!(kek.unwrap(&w2, ad).await.unwrap(), pt);
        // The typed calls agree with the trait.
        assert_eq!(kek.decrypt(&w1, ad).await.unwrap().as_slice(), pt);
    }
}

#[tokio::test]
async fn wrong_associated_data_tampering_and_other_keys_fail_authentication() {
    let Some(v) =
        testing::server("wrong_associated_data_tampering_and_other_keys_fail_authentication")
    else {
        return;
    };
    let (_, kek) = create(&v, "auth").await;
    let (_, other) = create(&v, "auth-other").await;
    let auth =
        |r: Result<Vec<u8>, KekError>| assert!(matches!(r, Err(KekError::Authentication)), "{r:?}");
    let w = kek.wrap(b"serialized keyset", b"ad").await.unwrap();
    let w0 = kek.wrap(b"serialized keyset", b"").await.unwrap();
    // The associated data is bound by the server, both ways.
    auth(kek.unwrap(&w, b"other ad").await);
    auth(kek.unwrap(&w, b"").await);
    auth(kek.unwrap(&w0, b"ad").await);
    // A ciphertext of another transit key.
    auth(other.unwrap(&w0, b"").await);
    // Tampering: a flipped base64 character, truncation, garbage.
    let s = String::from_utf8(w.clone()).unwrap();
    let mut t = s.clone().into_bytes();
    let i = t.len() - 5;
    t[i] = if t[i] == b'A' { b'B' } else { b'A' };
    auth(kek.unwrap(&t, b"ad").await);
    auth(kek.unwrap(&w[..w.len() - 4], b"ad").await);
    auth(kek.unwrap(b"vault:v1:AAAA", b"ad").await);
    auth(kek.unwrap(b"", b"ad").await);
    auth(kek.unwrap(b"\x0a\x0b binary", b"ad").await);
    // A version the key never had.
    auth(
        kek.unwrap(s.replacen("vault:v1:", "vault:v7:", 1).as_bytes(), b"ad")
            .await,
    );
    let e = kek.decrypt(b"not transit", b"").await.unwrap_err();
    assert!(matches!(e, VaultError::NotTransitCiphertext), "{e:?}");
    // Still usable afterwards.
    assert_eq!(kek.unwrap(&w, b"ad").await.unwrap(), b"serialized keyset");
}

#[tokio::test]
async fn rotation_key_versions_and_rewrap() {
    let Some(v) = testing::server("rotation_key_versions_and_rewrap") else {
        return;
    };
    let (name, kek) = create(&v, "rotate").await;
    let old = kek.wrap(b"keyset", b"").await.unwrap();
    let old_ad = kek.wrap(b"keyset", b"ad").await.unwrap();
    v.bao_ok(&["write", "-f", &format!("transit/keys/{name}/rotate")]);
    assert_eq!(kek.key_info().await.unwrap().latest_version, 2);

    // New wraps use the newest version; old ones still unwrap.
    let new = kek.wrap(b"keyset", b"").await.unwrap();
    assert_eq!(ciphertext_key_version(&new).unwrap(), 2);
    assert_eq!(ciphertext_key_version(&old).unwrap(), 1);
    assert_eq!(kek.unwrap(&old, b"").await.unwrap(), b"keyset");

    // Rewrap through transit's rewrap endpoint (empty associated data).
    let re = kek.rewrap_ciphertext(&old, b"").await.unwrap();
    assert_eq!(ciphertext_key_version(&re).unwrap(), 2);
    assert_ne!(re, old);
    assert_eq!(kek.unwrap(&re, b"").await.unwrap(), b"keyset");

    // With associated data: still bound afterwards.
    let re_ad = kek.rewrap_ciphertext(&old_ad, b"ad").await.unwrap();
    assert_eq!(ciphertext_key_version(&re_ad).unwrap(), 2);
    assert_eq!(kek.unwrap(&re_ad, b"ad").await.unwrap(), b"keyset");
    assert!(matches!(
        kek.unwrap(&re_ad, b"").await,
        Err(KekError::Authentication)
    ));
    // Rewrapping with the wrong associated data fails and produces nothing.
    let e = kek.rewrap_ciphertext(&old_ad, b"wrong").await.unwrap_err();
    assert!(matches!(e, VaultError::Authentication), "{e:?}");
    let e = kek.rewrap_ciphertext(&old_ad, b"").await.unwrap_err();
    assert!(matches!(e, VaultError::Authentication), "{e:?}");
    let e = kek.rewrap_ciphertext(b"garbage", b"").await.unwrap_err();
    assert!(matches!(e, VaultError::NotTransitCiphertext), "{e:?}");

    // Once min_decryption_version passes version 1, the old ciphertext is
    // refused with its own error, and the rewrapped ones still work.
    v.bao_ok(&[
        "write",
        &format!("transit/keys/{name}/config"),
        "min_decryption_version=2",
    ]);
    let e = kek.decrypt(&old, b"").await.unwrap_err();
    check_message(&v, &e);
    assert!(
        matches!(
            e,
            VaultError::KeyVersionTooOld {
                version: 1,
                min_decryption_version: Some(2),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "Vault transit key {name:?}: the data was wrapped with key version 1, below the key's min_decryption_version (2); lower min_decryption_version to read it, then rewrap it under the newest version"
        )
    );
    let e = kek.rewrap_ciphertext(&old, b"").await.unwrap_err();
    assert!(
        matches!(e, VaultError::KeyVersionTooOld { version: 1, .. }),
        "{e:?}"
    );
    // Through the Kek trait: a Failed whose source is the typed error.
    match kek.unwrap(&old_ad, b"ad").await {
        Err(KekError::Failed(s)) => assert!(matches!(
            s.downcast_ref::<VaultError>(),
            Some(VaultError::KeyVersionTooOld { version: 1, .. })
        )),
        other => panic!("expected Failed with a VaultError source, got {other:?}"),
    }
    assert_eq!(kek.unwrap(&re, b"").await.unwrap(), b"keyset");
    assert_eq!(kek.unwrap(&new, b"").await.unwrap(), b"keyset");
}

#[tokio::test]
async fn missing_key_and_mount_are_refused_and_nothing_is_created() {
    let Some(v) = testing::server("missing_key_and_mount_are_refused_and_nothing_is_created")
    else {
        return;
    };
    let name = unique_name("absent");
    let e = open_err(&v.uri(&name), v.config()).await;
    check_message(&v, &e);
    assert!(matches!(e, VaultError::KeyNotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "Vault server https://{}: no transit key {name:?} at transit/ (create it with encstore create-master-key)",
            v.host_port
        )
    );
    assert!(matches!(KekError::from(e), KekError::Unavailable(_)));
    // Nothing was created by trying.
    let out = v.bao(&["read", &format!("transit/keys/{name}")]);
    assert!(!out.status.success(), "the key exists now");

    // A key deleted after opening: wrap refuses instead of letting transit
    // create a fresh key of that name.
    let (gone, kek) = create(&v, "deleted").await;
    let w = kek.wrap(b"k", b"").await.unwrap();
    v.bao_ok(&[
        "write",
        &format!("transit/keys/{gone}/config"),
        "deletion_allowed=true",
    ]);
    v.bao_ok(&["delete", &format!("transit/keys/{gone}")]);
    let e = kek.encrypt(b"k", b"").await.unwrap_err();
    assert!(matches!(e, VaultError::KeyNotFound { .. }), "{e:?}");
    let e = kek.decrypt(&w, b"").await.unwrap_err();
    assert!(matches!(e, VaultError::KeyNotFound { .. }), "{e:?}");
    let out = v.bao(&["read", &format!("transit/keys/{gone}")]);
    assert!(!out.status.success(), "wrap re-created the deleted key");

    // No engine at that mount.
    let uri = format!("hcvault://{}/no-such-mount/keys/k", v.host_port);
    let e = open_err(&uri, v.config()).await;
    check_message(&v, &e);
    assert!(matches!(e, VaultError::MountNotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "Vault server https://{}: no secrets engine is mounted at no-such-mount/ (enable transit there: bao secrets enable -path=no-such-mount transit)",
            v.host_port
        )
    );
    let e = VaultKek::create_master_key_with(&uri, v.config())
        .await
        .unwrap_err();
    assert!(matches!(e, VaultError::MountNotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn wrong_expired_and_underprivileged_tokens() {
    let Some(v) = testing::server("wrong_expired_and_underprivileged_tokens") else {
        return;
    };
    let (name, kek) = create(&v, "tokens").await;
    let w = kek.wrap(b"keyset", b"").await.unwrap();
    let with_token = |t: &str| v.config().token(SecretString::from(t.to_owned()));

    // A wrong token.
    let wrong = "s.WRONG-TOKEN-SENTINEL";
    let e = open_err(&v.uri(&name), with_token(wrong)).await;
    check_message(&v, &e);
    assert!(!format!("{e} {e:?}").contains(wrong));
    assert!(matches!(e, VaultError::TokenRejected { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "Vault server https://{} refused the token (403 permission denied): it is wrong, expired or revoked; set VAULT_TOKEN (or BAO_TOKEN)",
            v.host_port
        )
    );
    let e = VaultKek::create_master_key_with(&v.uri("x"), with_token(wrong))
        .await
        .unwrap_err();
    assert!(matches!(e, VaultError::TokenRejected { .. }), "{e:?}");

    // A token that expires while the KEK is open.
    let short = v
        .bao_ok(&["token", "create", "-ttl=3s", "-field=token"])
        .trim()
        .to_owned();
    let kek_short = VaultKek::open_with(&v.uri(&name), with_token(&short))
        .await
        .unwrap();
    assert_eq!(kek_short.unwrap(&w, b"").await.unwrap(), b"keyset");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let e = kek_short.decrypt(&w, b"").await.unwrap_err();
    assert!(matches!(e, VaultError::TokenRejected { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains(&short));
    let e = kek_short.encrypt(b"x", b"").await.unwrap_err();
    assert!(matches!(e, VaultError::TokenRejected { .. }), "{e:?}");

    // A valid token whose policy may read the key but not encrypt: the
    // error names the path and capability instead of blaming the token.
    let policy = unique_name("read-only");
    let hcl = format!("path \"transit/keys/{name}\" {{ capabilities = [\"read\"] }}\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.hcl");
    std::fs::write(&file, hcl).unwrap();
    v.bao_ok(&["policy", "write", &policy, file.to_str().unwrap()]);
    let limited = v
        .bao_ok(&[
            "token",
            "create",
            &format!("-policy={policy}"),
            "-field=token",
        ])
        .trim()
        .to_owned();
    let kek_ro = VaultKek::open_with(&v.uri(&name), with_token(&limited))
        .await
        .unwrap();
    let e = kek_ro.encrypt(b"x", b"").await.unwrap_err();
    assert!(
        matches!(&e, VaultError::PermissionDenied { path, capability: "update", .. } if *path == format!("transit/encrypt/{name}")),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "Vault server https://{}: the token may not use transit/encrypt/{name} (403 permission denied); its policy needs update on it",
            v.host_port
        )
    );
    let e = kek_ro.decrypt(&w, b"").await.unwrap_err();
    assert!(matches!(e, VaultError::PermissionDenied { .. }), "{e:?}");
    // And a token that may not even read the key cannot open it.
    let none = v
        .bao_ok(&["token", "create", "-policy=default", "-field=token"])
        .trim()
        .to_owned();
    let e = open_err(&v.uri(&name), with_token(&none)).await;
    assert!(
        matches!(
            &e,
            VaultError::PermissionDenied {
                capability: "read",
                ..
            }
        ),
        "{e:?}"
    );
    // No token at all.
    let e = open_err(&v.uri(&name), VaultConfig::new().ca_cert_file(&v.ca_cert)).await;
    assert!(matches!(e, VaultError::NoToken), "{e:?}");
}

#[tokio::test]
async fn unreachable_servers_fail_within_the_timeouts() {
    let Some(v) = testing::server("unreachable_servers_fail_within_the_timeouts") else {
        return;
    };
    // A closed port: connection refused, at once.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let uri = format!("hcvault://127.0.0.1:{closed}/transit/keys/k");
    let start = Instant::now();
    let e = open_err(&uri, v.config()).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    check_message(&v, &e);
    assert!(matches!(e, VaultError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "Vault server https://127.0.0.1:{closed} is unreachable: "
        )),
        "{e}"
    );
    assert!(matches!(KekError::from(e), KekError::Unavailable(_)));

    // A server that accepts TCP connections and never answers: bounded by
    // the connect timeout (TLS never completes), never a hang.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let uri = format!("hcvault://127.0.0.1:{port}/transit/keys/k");
    let config = v
        .config()
        .connect_timeout(Duration::from_millis(800))
        .request_timeout(Duration::from_secs(2));
    let start = Instant::now();
    let e = open_err(&uri, config).await;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(
        matches!(&e, VaultError::Unreachable { reason, .. } if reason.contains("connect timeout")),
        "{e:?}"
    );
    drop(silent);

    // An unresolvable host name.
    let e = open_err(
        "hcvault://no-such-host.invalid:8200/transit/keys/k",
        v.config(),
    )
    .await;
    assert!(matches!(e, VaultError::Unreachable { .. }), "{e:?}");
}

#[tokio::test]
async fn tls_failures_are_reported_as_such() {
    let Some(v) = testing::server("tls_failures_are_reported_as_such") else {
        return;
    };
    let (name, _) = create(&v, "tls").await;
    // The system roots do not trust the dev server's CA.
    let e = open_err(&v.uri(&name), v.config().system_roots()).await;
    check_message(&v, &e);
    assert!(matches!(e, VaultError::Tls { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "TLS with Vault server https://{} failed: invalid peer certificate",
            v.host_port
        )),
        "{e}"
    );
    assert!(
        e.to_string().ends_with("(check VAULT_CACERT / BAO_CACERT)"),
        "{e}"
    );
    // Another CA: a private server's.
    if let Some(other) = BaoDevServer::start("tls_failures_are_reported_as_such") {
        let e = open_err(&v.uri(&name), v.config().ca_cert_file(&other.vault.ca_cert)).await;
        assert!(matches!(e, VaultError::Tls { .. }), "{e:?}");
    }
    // A CA file that is missing, or not PEM.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.pem");
    let e = open_err(&v.uri(&name), v.config().ca_cert_file(&missing)).await;
    assert!(matches!(e, VaultError::CaCert { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "cannot use the Vault CA certificate file {}: ",
            missing.display()
        )),
        "{e}"
    );
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let e = open_err(&v.uri(&name), v.config().ca_cert_file(&junk)).await;
    assert!(matches!(e, VaultError::CaCert { .. }), "{e:?}");
    assert!(
        e.to_string().ends_with("it holds no PEM certificate"),
        "{e}"
    );
}

#[tokio::test]
async fn unsuitable_keys_are_refused() {
    let Some(v) = testing::server("unsuitable_keys_are_refused") else {
        return;
    };
    // A derived key needs a context Tink never sends.
    let derived = unique_name("derived");
    v.bao_ok(&[
        "write",
        "-f",
        &format!("transit/keys/{derived}"),
        "type=aes256-gcm96",
        "derived=true",
    ]);
    let e = open_err(&v.uri(&derived), v.config()).await;
    assert!(matches!(e, VaultError::KeyUnsuitable { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "Vault transit key {derived:?} cannot wrap keysets: it is a derived key (derived=true); Tink and encstore send no derivation context, so use a key with derived=false"
        )
    );
    // A signing key cannot encrypt.
    let signing = unique_name("ed25519");
    v.bao_ok(&[
        "write",
        "-f",
        &format!("transit/keys/{signing}"),
        "type=ed25519",
    ]);
    let e = open_err(&v.uri(&signing), v.config()).await;
    assert!(matches!(e, VaultError::KeyUnsuitable { .. }), "{e:?}");
    assert!(
        e.to_string()
            .ends_with("its type ed25519 cannot both encrypt and decrypt"),
        "{e}"
    );

    // An RSA key encrypts, but cannot bind associated data: refused, not
    // silently dropped; empty associated data works.
    let rsa = unique_name("rsa");
    v.bao_ok(&[
        "write",
        "-f",
        &format!("transit/keys/{rsa}"),
        "type=rsa-2048",
    ]);
    let kek = VaultKek::open_with(&v.uri(&rsa), v.config()).await.unwrap();
    let e = kek.encrypt(b"keyset", b"ad").await.unwrap_err();
    assert!(
        matches!(e, VaultError::AssociatedDataUnsupported { .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "Vault transit key {rsa:?} cannot bind associated data: its type rsa-2048 is not an AEAD; use empty associated data or an AEAD key (aes256-gcm96)"
        )
    );
    let w = kek.wrap(b"keyset", b"").await.unwrap();
    assert_eq!(kek.unwrap(&w, b"").await.unwrap(), b"keyset");
    // Decrypting with associated data: the server refuses it too.
    let e = kek.decrypt(&w, b"ad").await.unwrap_err();
    assert!(
        matches!(e, VaultError::AssociatedDataUnsupported { .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn namespaces_select_where_the_key_lives() {
    let Some(v) = testing::server("namespaces_select_where_the_key_lives") else {
        return;
    };
    let ns = unique_name("ns");
    v.bao_ok(&["namespace", "create", &ns]);
    let in_ns = |args: &[&str]| {
        // `-namespace` is a flag of each subcommand: put it after the verb.
        let (verb, rest) = args.split_at(if args[0] == "secrets" { 2 } else { 1 });
        let mut b: Vec<&str> = verb.to_vec();
        b.push("-namespace");
        b.push(ns.as_str());
        b.extend_from_slice(rest);
        v.bao_ok(&b)
    };
    in_ns(&["secrets", "enable", "transit"]);
    let name = unique_name("nskey");
    let config = v.config().namespace(Some(ns.clone()));
    let kek = VaultKek::create_master_key_with(&v.uri(&name), config.clone())
        .await
        .unwrap();
    assert_eq!(
        format!("{kek:?}"),
        format!(
            "VaultKek {{ uri: \"hcvault://{}/transit/keys/{name}\", namespace: Some({ns:?}) }}",
            v.host_port
        )
    );
    let w = kek.wrap(b"keyset", b"").await.unwrap();
    assert_eq!(kek.unwrap(&w, b"").await.unwrap(), b"keyset");
    // The key is in the namespace, not in the root.
    in_ns(&["read", &format!("transit/keys/{name}")]);
    let e = open_err(&v.uri(&name), v.config()).await;
    assert!(matches!(e, VaultError::KeyNotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn keysets_round_trip_through_the_vault_kek() {
    let Some(v) = testing::server("keysets_round_trip_through_the_vault_kek") else {
        return;
    };
    let (_, kek) = create(&v, "keyset").await;
    let template = encstore_tink::templates::by_name("AES256_GCM").unwrap();
    let ks = Keyset::generate(&template).unwrap();
    for ad in [&b""[..], b"keyset ad"] {
        let json = ks
            .write_with_kek(KeysetEncoding::Json, &kek, ad)
            .await
            .unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"encryptedKeyset\""), "{text}");
        let back = Keyset::read_with_kek(&json, &kek, ad).await.unwrap();
        assert_eq!(back.info(), ks.info());
        assert_eq!(*back.to_json_insecure(), *ks.to_json_insecure());
        let bin = ks
            .write_with_kek(KeysetEncoding::Binary, &kek, ad)
            .await
            .unwrap();
        let back = Keyset::read_with_kek(&bin, &kek, ad).await.unwrap();
        assert_eq!(*back.to_json_insecure(), *ks.to_json_insecure());
    }
    let json = ks
        .write_with_kek(KeysetEncoding::Json, &kek, b"a")
        .await
        .unwrap();
    assert!(Keyset::read_with_kek(&json, &kek, b"b").await.is_err());
}

// ----------------------------------------------------------------- env

const CHILD_VAR: &str = "ENCSTORE_VAULT_TEST_CHILD";

/// Runs `test` again in a child process with exactly these Vault
/// variables (all others removed), so `VaultKek::open` reads them from the
/// environment without `unsafe` `set_var`.
fn run_child(test: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, test);
    for var in [
        "VAULT_TOKEN",
        "BAO_TOKEN",
        "VAULT_CACERT",
        "BAO_CACERT",
        "VAULT_NAMESPACE",
        "BAO_NAMESPACE",
        "VAULT_CLIENT_TIMEOUT",
        "BAO_CLIENT_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {test} {env:?} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

/// In the child: what the environment leads to, given as `EXPECT`.
async fn child_body() {
    let uri = std::env::var("ENCSTORE_VAULT_TEST_URI").unwrap();
    let expect = std::env::var("ENCSTORE_VAULT_TEST_EXPECT").unwrap();
    let r = VaultKek::open(&uri).await;
    match (expect.as_str(), r) {
        ("ok", Ok(kek)) => {
            let w = kek.wrap(b"from env", b"").await.unwrap();
            assert_eq!(kek.unwrap(&w, b"").await.unwrap(), b"from env");
        }
        ("no-token", Err(VaultError::NoToken)) => {}
        ("token-rejected", Err(VaultError::TokenRejected { .. })) => {}
        ("tls", Err(VaultError::Tls { .. })) => {}
        ("bad-timeout", Err(e @ VaultError::InvalidEnv { .. })) => {
            assert_eq!(
                e.to_string(),
                "VAULT_CLIENT_TIMEOUT: \"soon\" is not a timeout (seconds, or a number with s, ms or m, above zero)"
            );
        }
        (want, got) => panic!("expected {want}, got {got:?}"),
    }
}

#[tokio::test]
async fn configuration_from_the_environment() {
    if std::env::var(CHILD_VAR).as_deref() == Ok("configuration_from_the_environment") {
        child_body().await;
        return;
    }
    let Some(v) = testing::server("configuration_from_the_environment") else {
        return;
    };
    let (name, _) = create(&v, "env").await;
    let uri = v.uri(&name);
    let ca = v.ca_cert.to_str().unwrap();
    let t = "configuration_from_the_environment";
    let run = |expect: &str, env: &[(&str, &str)]| {
        let mut all = vec![
            ("ENCSTORE_VAULT_TEST_URI", uri.as_str()),
            ("ENCSTORE_VAULT_TEST_EXPECT", expect),
        ];
        all.extend_from_slice(env);
        run_child(t, &all);
    };
    run("ok", &[("VAULT_TOKEN", &v.token), ("VAULT_CACERT", ca)]);
    // OpenBao's names work too.
    run("ok", &[("BAO_TOKEN", &v.token), ("BAO_CACERT", ca)]);
    // VAULT_* wins over BAO_*.
    run(
        "token-rejected",
        &[
            ("VAULT_TOKEN", "wrong"),
            ("BAO_TOKEN", &v.token),
            ("BAO_CACERT", ca),
        ],
    );
    run(
        "ok",
        &[
            ("VAULT_TOKEN", &v.token),
            ("BAO_TOKEN", "wrong"),
            ("VAULT_CACERT", ca),
        ],
    );
    // An empty variable counts as unset.
    run("no-token", &[("VAULT_TOKEN", ""), ("VAULT_CACERT", ca)]);
    run("no-token", &[("VAULT_CACERT", ca)]);
    // Without a CA file, the system roots are used (and do not trust it).
    run("tls", &[("VAULT_TOKEN", &v.token)]);
    run(
        "bad-timeout",
        &[
            ("VAULT_TOKEN", &v.token),
            ("VAULT_CACERT", ca),
            ("VAULT_CLIENT_TIMEOUT", "soon"),
        ],
    );
}

/// Last, on its own server: sealing it must not disturb the other tests.
#[tokio::test]
async fn sealed_server() {
    let Some(server) = BaoDevServer::start("sealed_server") else {
        return;
    };
    let v = &server.vault;
    let (name, kek) = create(v, "sealed").await;
    let w = kek.wrap(b"keyset", b"").await.unwrap();
    v.bao_ok(&["operator", "seal"]);
    let e = kek.decrypt(&w, b"").await.unwrap_err();
    check_message(v, &e);
    assert!(matches!(e, VaultError::Sealed { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "Vault server https://{} is sealed; unseal it (bao operator unseal / vault operator unseal) and retry",
            v.host_port
        )
    );
    let e = kek.encrypt(b"keyset", b"").await.unwrap_err();
    assert!(matches!(e, VaultError::Sealed { .. }), "{e:?}");
    let e = open_err(&v.uri(&name), v.config()).await;
    assert!(matches!(e, VaultError::Sealed { .. }), "{e:?}");
    let e = VaultKek::create_master_key_with(&v.uri("new"), v.config())
        .await
        .unwrap_err();
    assert!(matches!(e, VaultError::Sealed { .. }), "{e:?}");
    assert!(matches!(KekError::from(e), KekError::Unavailable(_)));
}
