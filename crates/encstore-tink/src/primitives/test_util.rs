//! Checks shared by the per-key-type unit tests.

use encstore_core::AeadError;

use super::RawAead;
use crate::provider::CryptoProvider;

/// The provider a key type's unit tests run under: the process default
/// when it allows the type (so `--features aws-lc-rs` or `fips` test their
/// own implementations), else the first implementation that has it (a
/// `fips` build tests the implementations of the types it refuses on the
/// AWS-LC code path without the FIPS checks).
pub(super) fn provider_for(key_type: &str) -> &'static CryptoProvider {
    let default = crate::provider::get_default().expect("a default provider");
    if default.check_key_type(key_type).is_ok() {
        return default;
    }
    crate::provider::test_implementations()
        .into_iter()
        .find(|p| p.check_key_type(key_type).is_ok())
        .expect("some implementation has every key type")
}

/// Decodes hex, panicking on bad test data.
pub(super) fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("valid hex in test vector")
}

/// Encrypts and decrypts several sizes, after a prefix and without one,
/// through `open_in_place` and `open`; checks the overhead and that two
/// encryptions of the same message differ (fresh randomness).
pub(super) fn check_roundtrip(p: &dyn RawAead, overhead: usize) {
    assert_eq!(p.overhead(), overhead);
    for len in [0usize, 1, 15, 16, 17, 64, 1000, 17_000] {
        let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        for prefix in [&b""[..], &b"\x01\x02\x03\x04\x05"[..]] {
            let mut out = prefix.to_vec();
            p.seal_append(&pt, b"ad", &mut out).expect("seals");
            assert_eq!(&out[..prefix.len()], prefix);
            assert_eq!(out.len(), prefix.len() + len + overhead);
            assert_eq!(p.open(&out[prefix.len()..], b"ad").expect("opens"), pt);
            let mut buf = out.clone();
            p.open_in_place(&mut buf, prefix.len(), b"ad")
                .expect("opens in place");
            assert_eq!(buf, pt);
        }
        let mut a = Vec::new();
        let mut b = Vec::new();
        p.seal_append(&pt, b"", &mut a).expect("seals");
        p.seal_append(&pt, b"", &mut b).expect("seals");
        assert_ne!(a, b, "two encryptions must use fresh randomness");
    }
}

/// Flips each bit position's byte of a short ciphertext, truncates it, and
/// changes the associated data: every variant must fail with
/// `Authentication`, and nothing else.
pub(super) fn check_tamper_and_ad(p: &dyn RawAead) {
    let mut ct = Vec::new();
    p.seal_append(b"attack at dawn!", b"key/name", &mut ct)
        .expect("seals");
    for i in 0..ct.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = ct.clone();
            bad[i] ^= bit;
            assert_eq!(
                p.open(&bad, b"key/name"),
                Err(AeadError::Authentication),
                "byte {i}"
            );
        }
    }
    for len in 0..ct.len() {
        assert_eq!(
            p.open(&ct[..len], b"key/name"),
            Err(AeadError::Authentication),
            "len {len}"
        );
    }
    let mut longer = ct.clone();
    longer.push(0);
    assert_eq!(p.open(&longer, b"key/name"), Err(AeadError::Authentication));
    for ad in [&b""[..], b"key/namf", b"key/name\0", b"key/nam"] {
        assert_eq!(p.open(&ct, ad), Err(AeadError::Authentication));
    }
    assert_eq!(p.open(&ct, b"key/name").expect("opens"), b"attack at dawn!");
}
