//! Interop with tink-rust 0.3 (`tink-core`, `tink-aead`), in process, on the
//! same cleartext JSON keyset:
//!
//! - every key type and parameter set both implementations support, with
//!   every output prefix (TINK, LEGACY, CRUNCHY, RAW): tink-rust decrypts
//!   what encstore encrypts and encstore decrypts what tink-rust encrypts,
//!   for plaintexts of 0, 1, 17 and 4099 bytes, with and without associated
//!   data, and both refuse tampered ciphertexts and the wrong associated
//!   data;
//! - keysets of many keys (every shared type with every prefix): each
//!   key's ciphertexts decrypt in both while another key is primary; a
//!   disabled or destroyed key's ciphertexts are refused by both;
//! - keysets tink-rust generates with its own templates and its
//!   `keyset::Manager` load in encstore with the same keys;
//! - every encstore template is either shared (and checked) or of a type
//!   tink-rust 0.3 cannot use (AES-EAX, X-AES-GCM), and every AEAD key type
//!   tink-rust registers is either shared or refused by encstore with a
//!   clear error (KMS envelope).
//!
//! With the `tink-rust` feature, `mod adapter` checks `TinkRustAead`:
//! code written for tink-rust's `tink_core::Aead` runs on encstore's keyset
//! AEAD and interoperates with tink-rust's own primitive.

mod provider_util;

use encstore_core::{Aead, AeadError};
use encstore_tink::error::KeysetError;
use encstore_tink::{
    HashType, KeyParams, KeyStatus, KeyTemplate, Keyset, KeysetAead, OutputPrefix, templates,
};
use prost::Message;
use tink_core::keyset::{Handle, JsonReader, JsonWriter, Manager, insecure};
use zeroize::Zeroizing;

// ------------------------------------------------------------------ tables

/// Every output prefix type.
const PREFIXES: [OutputPrefix; 4] = [
    OutputPrefix::Tink,
    OutputPrefix::Legacy,
    OutputPrefix::Crunchy,
    OutputPrefix::Raw,
];

/// Plaintext sizes: empty, one byte, not a block multiple, several pages.
const SIZES: [usize; 4] = [0, 1, 17, 4096 + 3];

/// Associated data: empty and not.
const ADS: [&[u8]; 2] = [b"", b"certmagic/acme/example.com.key"];

/// How to make an encstore template for a shared key type.
#[derive(Clone, Copy)]
enum Source {
    /// An encstore template by its Tinkey name.
    Named(&'static str),
    /// An `AesCtrHmacAeadKey` format no template names.
    CtrHmac {
        aes_key_size: u32,
        iv_size: u32,
        hmac_key_size: u32,
        hash: tink_proto::HashType,
        tag_size: u32,
    },
}

/// A key type and parameter set that both encstore and tink-rust 0.3
/// support, and the parameters encstore lists for such a key.
struct Shared {
    source: Source,
    params: KeyParams,
}

impl Shared {
    fn template(&self, prefix: OutputPrefix) -> KeyTemplate {
        match self.source {
            Source::Named(name) => templates::by_name(name)
                .expect("encstore template")
                .with_output_prefix(prefix),
            Source::CtrHmac {
                aes_key_size,
                iv_size,
                hmac_key_size,
                hash,
                tag_size,
            } => KeyTemplate::new(
                tink_aead::AES_CTR_HMAC_AEAD_TYPE_URL,
                ctr_hmac_format(aes_key_size, iv_size, hmac_key_size, hash, tag_size)
                    .encode_to_vec(),
                prefix,
            ),
        }
    }

    fn label(&self) -> String {
        match self.source {
            Source::Named(name) => name.to_owned(),
            Source::CtrHmac {
                aes_key_size,
                iv_size,
                hmac_key_size,
                hash,
                tag_size,
            } => format!(
                "AES{}_CTR_HMAC_{} (iv {iv_size}, hmac key {hmac_key_size}, tag {tag_size})",
                aes_key_size * 8,
                hash.as_str_name()
            ),
        }
    }
}

fn ctr_hmac_format(
    aes_key_size: u32,
    iv_size: u32,
    hmac_key_size: u32,
    hash: tink_proto::HashType,
    tag_size: u32,
) -> tink_proto::AesCtrHmacAeadKeyFormat {
    tink_proto::AesCtrHmacAeadKeyFormat {
        aes_ctr_key_format: Some(tink_proto::AesCtrKeyFormat {
            params: Some(tink_proto::AesCtrParams { iv_size }),
            key_size: aes_key_size,
        }),
        hmac_key_format: Some(tink_proto::HmacKeyFormat {
            params: Some(tink_proto::HmacParams {
                hash: hash as i32,
                tag_size,
            }),
            key_size: hmac_key_size,
            version: 0,
        }),
    }
}

fn ctr_hmac_params(
    aes_key_size: usize,
    iv_size: usize,
    hmac_key_size: usize,
    hash: HashType,
    tag_size: usize,
) -> KeyParams {
    KeyParams::AesCtrHmac {
        aes_key_size,
        iv_size,
        hmac_key_size,
        hash,
        tag_size,
    }
}

/// The shared key types: every encstore template of a type tink-rust
/// registers, plus AES-CTR-HMAC with every hash both support (SHA1, SHA224,
/// SHA256, SHA384, SHA512), IV sizes 12 to 16 and tags from the minimum
/// (10 bytes) to the full hash.
fn all_shared() -> Vec<Shared> {
    use tink_proto::HashType::{Sha1, Sha224, Sha384, Sha512};
    let named = |name, params| Shared {
        source: Source::Named(name),
        params,
    };
    let ctr = |aes, iv, hmac, hash: tink_proto::HashType, tag, name| Shared {
        source: Source::CtrHmac {
            aes_key_size: aes,
            iv_size: iv,
            hmac_key_size: hmac,
            hash,
            tag_size: tag,
        },
        params: ctr_hmac_params(aes as usize, iv as usize, hmac as usize, name, tag as usize),
    };
    vec![
        named("AES128_GCM", KeyParams::AesGcm { key_size: 16 }),
        named("AES256_GCM", KeyParams::AesGcm { key_size: 32 }),
        named("AES128_GCM_SIV", KeyParams::AesGcmSiv { key_size: 16 }),
        named("AES256_GCM_SIV", KeyParams::AesGcmSiv { key_size: 32 }),
        named(
            "AES128_CTR_HMAC_SHA256",
            ctr_hmac_params(16, 16, 32, HashType::Sha256, 16),
        ),
        named(
            "AES256_CTR_HMAC_SHA256",
            ctr_hmac_params(32, 16, 32, HashType::Sha256, 32),
        ),
        ctr(16, 12, 16, Sha1, 10, HashType::Sha1),
        ctr(32, 13, 28, Sha224, 28, HashType::Sha224),
        ctr(16, 14, 48, Sha384, 24, HashType::Sha384),
        ctr(32, 15, 64, Sha512, 64, HashType::Sha512),
        named("CHACHA20_POLY1305", KeyParams::ChaCha20Poly1305),
        named("XCHACHA20_POLY1305", KeyParams::XChaCha20Poly1305),
    ]
}

/// The shared types the process's crypto provider allows: all of them,
/// except under `fips` (see `fips_refuses_the_types_it_does_not_approve`).
fn shared() -> Vec<Shared> {
    all_shared()
        .into_iter()
        .filter(|s| !fips_refuses(s))
        .collect()
}

/// Whether the provider refuses to create this shared type (`fips`:
/// not an approved type, or SHA-1).
fn fips_refuses(s: &Shared) -> bool {
    matches!(Keyset::generate(&s.template(OutputPrefix::Tink)),
        Err(e) if provider_util::is_fips_refusal(&e))
}

/// The AEAD key types tink-rust 0.3's `tink_aead::init()` registers.
const TINK_RUST_AEAD_TYPES: [&str; 6] = [
    tink_aead::AES_CTR_HMAC_AEAD_TYPE_URL,
    tink_aead::AES_GCM_TYPE_URL,
    tink_aead::AES_GCM_SIV_TYPE_URL,
    tink_aead::CHA_CHA20_POLY1305_TYPE_URL,
    tink_aead::X_CHA_CHA20_POLY1305_TYPE_URL,
    tink_aead::KMS_ENVELOPE_AEAD_TYPE_URL,
];

/// encstore key types tink-rust 0.3 has no key manager for, and why.
const NOT_IN_TINK_RUST: [(&str, &str); 2] = [
    (
        "type.googleapis.com/google.crypto.tink.AesEaxKey",
        "tink-rust ports Tink Go 1.6, which has no AES-EAX",
    ),
    (
        "type.googleapis.com/google.crypto.tink.XAesGcmKey",
        "X-AES-GCM is newer than Tink 1.6",
    ),
];

/// A tink-rust template: its function's name, the function, and the
/// parameters encstore must list for its keys.
type TinkRustTemplate = (&'static str, fn() -> tink_proto::KeyTemplate, KeyParams);

/// tink-rust's own templates: all of `tink_aead`'s but the KMS envelope
/// one.
fn tink_rust_templates() -> Vec<TinkRustTemplate> {
    all_tink_rust_templates()
        .into_iter()
        .filter(|(_, t, _)| !provider_util::refuses_type(&t().type_url))
        .collect()
}

/// Every tink-rust template (see [`tink_rust_templates`]).
fn all_tink_rust_templates() -> Vec<TinkRustTemplate> {
    vec![
        (
            "aes128_gcm",
            tink_aead::aes128_gcm_key_template,
            KeyParams::AesGcm { key_size: 16 },
        ),
        (
            "aes256_gcm",
            tink_aead::aes256_gcm_key_template,
            KeyParams::AesGcm { key_size: 32 },
        ),
        (
            "aes256_gcm_no_prefix",
            tink_aead::aes256_gcm_no_prefix_key_template,
            KeyParams::AesGcm { key_size: 32 },
        ),
        (
            "aes128_gcm_siv",
            tink_aead::aes128_gcm_siv_key_template,
            KeyParams::AesGcmSiv { key_size: 16 },
        ),
        (
            "aes256_gcm_siv",
            tink_aead::aes256_gcm_siv_key_template,
            KeyParams::AesGcmSiv { key_size: 32 },
        ),
        (
            "aes256_gcm_siv_no_prefix",
            tink_aead::aes256_gcm_siv_no_prefix_key_template,
            KeyParams::AesGcmSiv { key_size: 32 },
        ),
        (
            "aes128_ctr_hmac_sha256",
            tink_aead::aes128_ctr_hmac_sha256_key_template,
            ctr_hmac_params(16, 16, 32, HashType::Sha256, 16),
        ),
        (
            "aes256_ctr_hmac_sha256",
            tink_aead::aes256_ctr_hmac_sha256_key_template,
            ctr_hmac_params(32, 16, 32, HashType::Sha256, 32),
        ),
        (
            "aes256_ctr_hmac_sha512",
            tink_aead::aes256_ctr_hmac_sha512_key_template,
            ctr_hmac_params(32, 16, 64, HashType::Sha512, 64),
        ),
        (
            "cha_cha20_poly1305",
            tink_aead::cha_cha20_poly1305_key_template,
            KeyParams::ChaCha20Poly1305,
        ),
        (
            "x_cha_cha20_poly1305",
            tink_aead::x_cha_cha20_poly1305_key_template,
            KeyParams::XChaCha20Poly1305,
        ),
    ]
}

fn proto_prefix(prefix: OutputPrefix) -> tink_proto::OutputPrefixType {
    match prefix {
        OutputPrefix::Tink => tink_proto::OutputPrefixType::Tink,
        OutputPrefix::Legacy => tink_proto::OutputPrefixType::Legacy,
        OutputPrefix::Crunchy => tink_proto::OutputPrefixType::Crunchy,
        OutputPrefix::Raw => tink_proto::OutputPrefixType::Raw,
    }
}

// ------------------------------------------------------- keyset transfer

/// encstore's keyset as cleartext Tink JSON, read by tink-rust's
/// `JsonReader` and `insecure::read`.
fn tink_handle(keyset: &Keyset) -> Handle {
    tink_aead::init();
    let json = keyset.to_json_insecure();
    insecure::read(&mut JsonReader::new(&json[..]))
        .unwrap_or_else(|e| panic!("tink-rust does not read encstore's JSON keyset: {e}"))
}

/// tink-rust's AEAD for encstore's keyset.
fn tink_aead_for(keyset: &Keyset) -> Box<dyn tink_core::Aead> {
    tink_aead::new(&tink_handle(keyset))
        .unwrap_or_else(|e| panic!("tink-rust has no AEAD for encstore's keyset: {e}"))
}

/// tink-rust's keyset as cleartext JSON (`JsonWriter`, `insecure::write`).
fn tink_json(handle: &Handle) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::new());
    insecure::write(handle, &mut JsonWriter::new(&mut *buf)).expect("tink-rust writes JSON");
    buf
}

/// tink-rust's keyset, read by encstore.
fn encstore_keyset(handle: &Handle) -> Keyset {
    Keyset::from_json_insecure(&tink_json(handle))
        .unwrap_or_else(|e| panic!("encstore does not read tink-rust's JSON keyset: {e}"))
}

fn plaintext(len: usize) -> Vec<u8> {
    let mut pt = vec![0u8; len];
    getrandom::fill(&mut pt).expect("random");
    pt
}

// --------------------------------------------------------------- checks

/// One side of an interop check: encstore's keyset AEAD, or a tink-rust
/// `Aead` (tink-rust's own, or encstore's through the adapter).
trait Side {
    fn name(&self) -> &'static str;
    fn seal(&self, pt: &[u8], ad: &[u8]) -> Vec<u8>;
    fn open(&self, ct: &[u8], ad: &[u8]) -> Result<Vec<u8>, String>;
}

struct Encstore<'a>(&'a KeysetAead);

impl Side for Encstore<'_> {
    fn name(&self) -> &'static str {
        "encstore"
    }
    fn seal(&self, pt: &[u8], ad: &[u8]) -> Vec<u8> {
        self.0.encrypt(pt, ad).expect("encstore encrypts")
    }
    /// Both decrypt paths (borrowed and owned) must agree.
    fn open(&self, ct: &[u8], ad: &[u8]) -> Result<Vec<u8>, String> {
        let borrowed = self.0.decrypt(ct, ad);
        let owned = self.0.decrypt_owned(ct.to_vec(), ad);
        assert_eq!(borrowed, owned, "decrypt and decrypt_owned disagree");
        borrowed.map_err(|e| e.to_string())
    }
}

struct TinkRust<'a>(&'static str, &'a dyn tink_core::Aead);

impl Side for TinkRust<'_> {
    fn name(&self) -> &'static str {
        self.0
    }
    fn seal(&self, pt: &[u8], ad: &[u8]) -> Vec<u8> {
        self.1
            .encrypt(pt, ad)
            .unwrap_or_else(|e| panic!("{} encrypts: {e}", self.0))
    }
    fn open(&self, ct: &[u8], ad: &[u8]) -> Result<Vec<u8>, String> {
        self.1.decrypt(ct, ad).map_err(|e| e.to_string())
    }
}

/// Corrupted forms of `ct` (whose first `prefix_len` bytes are the output
/// prefix): a flipped bit at the first byte after the prefix (the nonce or
/// IV), in the middle and in the last byte (the tag), the last byte cut
/// off, and the prefix alone.
fn tampered(ct: &[u8], prefix_len: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for pos in [prefix_len, (prefix_len + ct.len()) / 2, ct.len() - 1] {
        let mut t = ct.to_vec();
        t[pos] ^= 0x01;
        out.push((format!("bit flipped at byte {pos}"), t));
    }
    out.push(("last byte cut".into(), ct[..ct.len() - 1].to_vec()));
    out.push(("prefix only".into(), ct[..prefix_len].to_vec()));
    out
}

/// Different associated data of the same kind.
fn other_ad(ad: &[u8]) -> Vec<u8> {
    if ad.is_empty() {
        b"x".to_vec()
    } else {
        ad[..ad.len() - 1].to_vec()
    }
}

/// `a` encrypts and `b` decrypts, and the reverse, for every size and
/// associated data; the ciphertexts start with `prefix` and have the same
/// length from both. Every tampered ciphertext and wrong associated data is
/// refused by both.
fn interop(label: &str, a: &dyn Side, b: &dyn Side, prefix: &[u8]) {
    for size in SIZES {
        for ad in ADS {
            let pt = plaintext(size);
            let what = format!("{label}, {size}-byte plaintext, {}-byte AD", ad.len());
            let ct_a = a.seal(&pt, ad);
            let ct_b = b.seal(&pt, ad);
            assert_eq!(
                ct_a.len(),
                ct_b.len(),
                "{what}: {} and {} ciphertexts differ in length",
                a.name(),
                b.name()
            );
            for (writer, ct) in [(a, &ct_a), (b, &ct_b)] {
                assert_eq!(
                    &ct[..prefix.len()],
                    prefix,
                    "{what}: {} output prefix",
                    writer.name()
                );
                for reader in [a, b] {
                    let ctx = format!("{what}: {} reads {}", reader.name(), writer.name());
                    match reader.open(ct, ad) {
                        Ok(got) => assert!(got == pt, "{ctx}: wrong plaintext"),
                        Err(e) => panic!("{ctx}: {e}"),
                    }
                    assert!(
                        reader.open(ct, &other_ad(ad)).is_err(),
                        "{ctx}: wrong AD accepted"
                    );
                    for (how, t) in tampered(ct, prefix.len()) {
                        assert!(
                            reader.open(&t, ad).is_err(),
                            "{ctx}: tampered ciphertext ({how}) accepted"
                        );
                    }
                }
            }
            assert_ne!(
                ct_a, ct_b,
                "{what}: two encryptions are equal (nonce reuse?)"
            );
        }
    }
}

/// A ciphertext with the prefix's key ID changed: encstore names the key
/// ID it does not have; tink-rust refuses it too.
fn check_unknown_key_id(label: &str, es: &KeysetAead, tr: &dyn tink_core::Aead, ct: &[u8]) {
    let mut t = ct.to_vec();
    t[4] ^= 0x80;
    let other = u32::from_be_bytes([t[1], t[2], t[3], t[4]]);
    assert_eq!(
        es.decrypt(&t, b"ad"),
        Err(AeadError::UnknownKeyId { key_id: other }),
        "{label}"
    );
    assert!(tr.decrypt(&t, b"ad").is_err(), "{label}");
}

// ---------------------------------------------------------------- tests

#[test]
fn every_shared_type_and_prefix_both_ways() {
    for shared in shared() {
        for prefix in PREFIXES {
            let label = format!("{} {prefix}", shared.label());
            let keyset = Keyset::generate(&shared.template(prefix))
                .unwrap_or_else(|e| panic!("{label}: encstore generates: {e}"));
            assert_eq!(
                keyset.info().keys[0].params.as_ref(),
                Some(&shared.params),
                "{label}"
            );
            let es = keyset.aead().expect("aead");
            let tr = tink_aead_for(&keyset);
            let key_id = keyset.primary_key_id();
            interop(
                &label,
                &Encstore(&es),
                &TinkRust("tink-rust", &*tr),
                &prefix.prefix_bytes(key_id),
            );
            if prefix != OutputPrefix::Raw {
                let ct = es.encrypt(b"pt", b"ad").expect("encrypt");
                check_unknown_key_id(&label, &es, &*tr, &ct);
            }
        }
    }
}

#[test]
fn tink_rust_generated_keysets_load_in_encstore() {
    tink_aead::init();
    for (name, template, params) in tink_rust_templates() {
        // The template as tink-rust defines it, then with every prefix.
        let own = template().output_prefix_type;
        let prefixes = std::iter::once(None).chain(PREFIXES.map(Some));
        for prefix in prefixes {
            let mut t = template();
            if let Some(p) = prefix {
                t.output_prefix_type = proto_prefix(p) as i32;
            }
            let label = format!("tink-rust {name}, prefix {:?}", prefix.map(proto_prefix));
            let handle = Handle::new(&t).unwrap_or_else(|e| panic!("{label}: {e}"));
            let keyset = encstore_keyset(&handle);
            let tink_info = handle.keyset_info();
            let info = keyset.info();
            assert_eq!(info.primary_key_id, tink_info.primary_key_id, "{label}");
            assert_eq!(info.keys.len(), 1, "{label}");
            let key = &info.keys[0];
            assert_eq!(key.key_id, tink_info.primary_key_id, "{label}");
            assert_eq!(key.type_url, t.type_url, "{label}");
            assert_eq!(key.status, KeyStatus::Enabled, "{label}");
            assert_eq!(
                proto_prefix(key.output_prefix) as i32,
                t.output_prefix_type,
                "{label}"
            );
            assert_eq!(key.params.as_ref(), Some(&params), "{label}");
            if prefix.is_none() {
                let expected = if name.ends_with("_no_prefix") {
                    tink_proto::OutputPrefixType::Raw
                } else {
                    tink_proto::OutputPrefixType::Tink
                };
                assert_eq!(own, expected as i32, "{label}");
            }
            let es = keyset.aead().expect("aead");
            let tr = tink_aead::new(&handle).expect("tink-rust aead");
            interop(
                &label,
                &TinkRust("tink-rust", &*tr),
                &Encstore(&es),
                &key.output_prefix.prefix_bytes(key.key_id),
            );
            // encstore writes the keyset back; tink-rust reads it and
            // decrypts with it what it encrypted before.
            let ct = tr.encrypt(b"round trip", b"ad").expect("encrypt");
            let back = tink_aead_for(&keyset);
            assert_eq!(back.decrypt(&ct, b"ad").expect(&label), b"round trip");
        }
    }
}

/// A keyset with one key of every shared type with every prefix.
fn big_encstore_keyset() -> (Keyset, Vec<(u32, String, OutputPrefix)>) {
    let mut keyset: Option<Keyset> = None;
    let mut keys = Vec::new();
    for shared in shared() {
        for prefix in PREFIXES {
            let t = shared.template(prefix);
            let id = match &mut keyset {
                None => {
                    let k = Keyset::generate(&t).expect("generate");
                    let id = k.primary_key_id();
                    keyset = Some(k);
                    id
                }
                Some(k) => k.add_key(&t).expect("add"),
            };
            keys.push((id, format!("{} {prefix}", shared.label()), prefix));
        }
    }
    (keyset.expect("keys"), keys)
}

#[test]
fn multi_key_keysets_from_encstore() {
    let (mut keyset, keys) = big_encstore_keyset();
    assert_eq!(keyset.len(), shared().len() * PREFIXES.len());
    let ad = b"multi-key";
    // Each key encrypts once in each implementation while it is primary.
    let mut cts = Vec::new();
    for (id, label, prefix) in &keys {
        keyset.promote(*id).expect("promote");
        let es = keyset.aead().expect("aead");
        let tr = tink_aead_for(&keyset);
        let pt = format!("under key {id}: {label}").into_bytes();
        for (writer, ct) in [
            ("encstore", es.encrypt(&pt, ad).expect("encrypt")),
            ("tink-rust", tr.encrypt(&pt, ad).expect("encrypt")),
        ] {
            assert_eq!(
                &ct[..prefix.prefix_bytes(*id).len()],
                &prefix.prefix_bytes(*id)[..],
                "{label} by {writer}"
            );
            cts.push((
                *id,
                *prefix,
                format!("{label}, written by {writer}"),
                pt.clone(),
                ct,
            ));
        }
    }
    // Another key is primary: every ciphertext, from every key, decrypts in
    // both.
    let primary = keys[keys.len() / 2].0;
    keyset.promote(primary).expect("promote");
    let es = keyset.aead().expect("aead");
    let tr = tink_aead_for(&keyset);
    for (_, _, label, pt, ct) in &cts {
        assert_eq!(&es.decrypt(ct, ad).expect(label), pt, "encstore: {label}");
        assert_eq!(&tr.decrypt(ct, ad).expect(label), pt, "tink-rust: {label}");
    }

    // Disable one key of each prefix type and destroy another: both refuse
    // their ciphertexts and still decrypt every other key's.
    let pick = |prefix: OutputPrefix, nth: usize| {
        keys.iter()
            .filter(|(id, _, p)| *p == prefix && *id != primary)
            .nth(nth)
            .map(|k| k.0)
            .expect("a key")
    };
    let disabled: Vec<u32> = PREFIXES.iter().map(|&p| pick(p, 0)).collect();
    let destroyed: Vec<u32> = PREFIXES.iter().map(|&p| pick(p, 1)).collect();
    for &id in &disabled {
        keyset.disable(id).expect("disable");
    }
    for &id in &destroyed {
        keyset.destroy(id).expect("destroy");
    }
    let es = keyset.aead().expect("aead");
    let tr = tink_aead_for(&keyset);
    // tink-rust reads the statuses encstore wrote.
    let tink_info = tink_handle(&keyset).keyset_info();
    for k in &tink_info.key_info {
        let expected = if disabled.contains(&k.key_id) {
            tink_proto::KeyStatusType::Disabled
        } else if destroyed.contains(&k.key_id) {
            tink_proto::KeyStatusType::Destroyed
        } else {
            tink_proto::KeyStatusType::Enabled
        };
        assert_eq!(k.status, expected as i32, "key {}", k.key_id);
    }
    let mut refused = 0;
    for (id, prefix, label, pt, ct) in &cts {
        if disabled.contains(id) || destroyed.contains(id) {
            refused += 1;
            let e = es.decrypt(ct, ad).expect_err(label);
            // A RAW key's ciphertext names no key (its first bytes are
            // random, and may look like any prefix).
            if *prefix != OutputPrefix::Raw {
                assert_eq!(e, AeadError::UnknownKeyId { key_id: *id }, "{label}");
            }
            assert!(tr.decrypt(ct, ad).is_err(), "tink-rust: {label}");
        } else {
            assert_eq!(&es.decrypt(ct, ad).expect(label), pt, "encstore: {label}");
            assert_eq!(&tr.decrypt(ct, ad).expect(label), pt, "tink-rust: {label}");
        }
    }
    assert_eq!(refused, 2 * 2 * PREFIXES.len());
}

#[test]
fn multi_key_keysets_from_tink_rust() {
    tink_aead::init();
    let ad = b"tink-rust manager";
    let mut manager = Manager::new();
    let mut cts = Vec::new();
    let mut ids = Vec::new();
    // Every tink-rust template with every prefix; each new key becomes
    // primary and encrypts once.
    for (name, template, _) in tink_rust_templates() {
        for prefix in PREFIXES {
            let mut t = template();
            t.output_prefix_type = proto_prefix(prefix) as i32;
            let id = manager.rotate(&t).expect("rotate");
            let aead = tink_aead::new(&manager.handle().expect("handle")).expect("aead");
            let label = format!("tink-rust {name} {prefix} (key {id})");
            let pt = label.clone().into_bytes();
            let ct = aead.encrypt(&pt, ad).expect("encrypt");
            assert_eq!(
                &ct[..prefix.prefix_bytes(id).len()],
                &prefix.prefix_bytes(id)[..]
            );
            ids.push((id, prefix));
            cts.push((id, label, pt, ct));
        }
    }
    // Make a middle key primary again and disable one key of each prefix.
    let primary = ids[ids.len() / 3].0;
    manager.set_primary(primary).expect("set primary");
    let disabled: Vec<u32> = PREFIXES
        .iter()
        .map(|&p| {
            ids.iter()
                .find(|(id, q)| *q == p && *id != primary)
                .expect("key")
                .0
        })
        .collect();
    for &id in &disabled {
        manager.disable(id).expect("disable");
    }
    let handle = manager.handle().expect("handle");
    let keyset = encstore_keyset(&handle);
    let info = keyset.info();
    assert_eq!(info.primary_key_id, primary);
    assert_eq!(info.keys.len(), ids.len());
    for (k, (id, prefix)) in info.keys.iter().zip(&ids) {
        assert_eq!((k.key_id, k.output_prefix), (*id, *prefix));
        let status = if disabled.contains(id) {
            KeyStatus::Disabled
        } else {
            KeyStatus::Enabled
        };
        assert_eq!(k.status, status, "key {id}");
    }
    let es = keyset.aead().expect("aead");
    let tr = tink_aead::new(&handle).expect("aead");
    for (id, label, pt, ct) in &cts {
        if disabled.contains(id) {
            assert!(es.decrypt(ct, ad).is_err(), "encstore: {label}");
            assert!(tr.decrypt(ct, ad).is_err(), "tink-rust: {label}");
        } else {
            assert_eq!(&es.decrypt(ct, ad).expect(label), pt, "encstore: {label}");
        }
    }
    // And encstore's ciphertexts with that keyset decrypt in tink-rust.
    let ct = es.encrypt(b"from encstore", ad).expect("encrypt");
    assert_eq!(tr.decrypt(&ct, ad).expect("tink-rust"), b"from encstore");
}

/// tink-rust's `Manager::destroy` removes the key data (`keyData` is
/// `null` in its JSON); encstore reads such a keyset and never decrypts
/// with the destroyed key. tink-rust 0.3 itself then refuses to build an
/// AEAD from its own keyset (its `validate_key` wants key data on every
/// key), while it accepts encstore's destroyed keys, which keep an empty
/// `keyData` as Tink Java writes them.
#[test]
fn destroyed_keys_between_the_two() {
    tink_aead::init();
    let mut manager = Manager::new();
    let old = manager
        .rotate(&tink_aead::aes256_gcm_key_template())
        .expect("rotate");
    let old_ct = tink_aead::new(&manager.handle().expect("handle"))
        .expect("aead")
        .encrypt(b"old", b"")
        .expect("encrypt");
    manager
        .rotate(&tink_aead::aes128_gcm_key_template())
        .expect("rotate");
    manager.destroy(old).expect("destroy");
    let handle = manager.handle().expect("handle");
    let json = tink_json(&handle);
    let text = std::str::from_utf8(&json).expect("utf-8");
    assert!(text.contains("\"keyData\": null"), "{text}");
    assert!(
        tink_aead::new(&handle).is_err(),
        "tink-rust now builds an AEAD from a keyset with a destroyed key: update these docs"
    );

    let mut keyset = Keyset::from_json_insecure(&json).expect("encstore reads it");
    let info = keyset.info();
    assert_eq!(info.keys[0].key_id, old);
    assert_eq!(info.keys[0].status, KeyStatus::Destroyed);
    assert_eq!(info.keys[0].params, None);
    let es = keyset.aead().expect("aead");
    assert_eq!(
        es.decrypt(&old_ct, b""),
        Err(AeadError::UnknownKeyId { key_id: old })
    );
    // Written back by encstore, tink-rust builds its AEAD, which refuses
    // the destroyed key's ciphertext and reads the primary's.
    keyset
        .rotate(&templates::by_name("AES256_GCM").expect("template"))
        .expect("rotate");
    let tr = tink_aead_for(&keyset);
    assert!(tr.decrypt(&old_ct, b"").is_err());
    let ct = keyset
        .aead()
        .expect("aead")
        .encrypt(b"new", b"")
        .expect("encrypt");
    assert_eq!(tr.decrypt(&ct, b"").expect("decrypts"), b"new");
}

/// encstore's template names split exactly into shared types (checked
/// both ways here with their named prefix) and types tink-rust 0.3 lacks
/// (which it refuses); tink-rust's AEAD key types split into shared and
/// KMS envelope (checked by `kms_envelope_keysets_interoperate_with_tink_rust`).
#[test]
fn key_type_coverage_is_exhaustive() {
    tink_aead::init();
    let shared_urls: Vec<String> = all_shared()
        .iter()
        .map(|s| s.template(OutputPrefix::Tink).type_url().to_owned())
        .collect();
    let lacks = |url: &str| NOT_IN_TINK_RUST.iter().any(|(u, _)| *u == url);
    for name in templates::NAMES {
        let t = templates::by_name(name).expect("template");
        let url = t.type_url();
        if provider_util::refuses_template(name) {
            provider_util::assert_fips_refusal(Keyset::generate(&t), name);
            continue;
        }
        let keyset = Keyset::generate(&t).expect("generate");
        let registered = tink_core::registry::get_key_manager(url).is_ok();
        if shared_urls.iter().any(|u| u == url) {
            assert!(!lacks(url), "{name}");
            assert!(registered, "{name}: tink-rust has no key manager");
            let es = keyset.aead().expect("aead");
            let tr = tink_aead_for(&keyset);
            interop(
                name,
                &Encstore(&es),
                &TinkRust("tink-rust", &*tr),
                &t.output_prefix().prefix_bytes(keyset.primary_key_id()),
            );
        } else {
            assert!(
                lacks(url),
                "{name} ({url}) is a new encstore key type: add it to the interop table \
                 or to NOT_IN_TINK_RUST"
            );
            assert!(!registered, "{name}: tink-rust now supports {url}");
            // tink-rust reads the keyset but cannot build its AEAD.
            let handle = tink_handle(&keyset);
            assert!(tink_aead::new(&handle).is_err(), "{name}");
        }
    }
    for url in TINK_RUST_AEAD_TYPES {
        assert!(
            tink_core::registry::get_key_manager(url).is_ok(),
            "{url} is not registered by tink_aead::init()"
        );
        if url == tink_aead::KMS_ENVELOPE_AEAD_TYPE_URL {
            // Checked by `kms_envelope_keysets_interoperate_with_tink_rust`.
            continue;
        }
        assert!(
            shared_urls.iter().any(|u| u == url),
            "{url} is missing from the interop table"
        );
    }
}

/// Under `fips`, exactly the shared types that are not FIPS-approved
/// (AES-GCM-SIV, ChaCha20, XChaCha20, AES-CTR-HMAC with SHA-1) are refused
/// when encstore creates them and when it reads tink-rust's keysets of
/// them; under the other providers nothing is refused.
#[test]
fn fips_refuses_the_types_it_does_not_approve() {
    tink_aead::init();
    let fips = provider_util::provider().fips();
    let refused: Vec<String> = all_shared()
        .iter()
        .filter(|s| fips_refuses(s))
        .map(Shared::label)
        .collect();
    if !fips {
        assert!(refused.is_empty(), "{refused:?}");
        return;
    }
    assert_eq!(
        refused,
        [
            "AES128_GCM_SIV",
            "AES256_GCM_SIV",
            "AES128_CTR_HMAC_SHA1 (iv 12, hmac key 16, tag 10)",
            "CHACHA20_POLY1305",
            "XCHACHA20_POLY1305"
        ]
    );
    let mut read_refused = 0;
    for (name, template, _) in all_tink_rust_templates() {
        if !provider_util::refuses_type(&template().type_url) {
            continue;
        }
        let handle = Handle::new(&template()).expect("tink-rust generates");
        provider_util::assert_fips_refusal(Keyset::from_json_insecure(&tink_json(&handle)), name);
        read_refused += 1;
    }
    assert_eq!(read_refused, 5, "SIV x3, ChaCha20, XChaCha20");
}

/// The URI of the master key both sides use for KMS envelope keys: a
/// master keyset, reached through tink-rust's KMS client registry on one
/// side and encstore's resolver on the other.
const MASTER_KMS_URI: &str = "encstore-test-master://envelope";

/// The master keyset (cleartext JSON), made once per process.
fn master_keyset_json() -> &'static [u8] {
    static MASTER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    MASTER.get_or_init(|| {
        Keyset::generate(&templates::by_name("AES256_GCM").expect("template"))
            .expect("generates")
            .to_json_insecure()
            .to_vec()
    })
}

/// tink-rust's KMS client for [`MASTER_KMS_URI`]: tink-rust's own AEAD of
/// the master keyset.
struct MasterKms;

impl tink_core::registry::KmsClient for MasterKms {
    fn supported(&self, key_uri: &str) -> bool {
        key_uri == MASTER_KMS_URI
    }
    fn get_aead(&self, _: &str) -> Result<Box<dyn tink_core::Aead>, tink_core::TinkError> {
        let handle = insecure::read(&mut JsonReader::new(master_keyset_json()))?;
        tink_aead::new(&handle)
    }
}

/// tink-rust's KMS envelope keys (key material REMOTE: the key names a KMS
/// key URI; the key-encryption key lives in the KMS).
///
/// This test used to pin encstore's refusal of them
/// (`kms_envelope_keysets_are_refused_by_encstore`: `WrongKeyMaterialType`
/// REMOTE, then `UnsupportedAead`). The change is deliberate: encstore now
/// implements Tink's `KmsEnvelopeAeadKey` (`encstore_tink::envelope`, issue
/// "Tink's KMS envelope key type"), so it reads them, keeps them REMOTE,
/// refuses them in the synchronous AEAD (they need KMS calls) and, through
/// its async AEAD, decrypts what tink-rust encrypts and the reverse, for
/// every DEK type tink-rust has.
#[tokio::test]
async fn kms_envelope_keysets_interoperate_with_tink_rust() {
    tink_aead::init();
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| tink_core::registry::register_kms_client(MasterKms));
    let master = Keyset::from_json_insecure(master_keyset_json()).expect("master");
    let kek: std::sync::Arc<dyn encstore_core::Kek> = std::sync::Arc::new(encstore_core::AeadKek(
        std::sync::Arc::new(master.aead().expect("master AEAD")),
    ));
    let resolver: std::collections::HashMap<String, std::sync::Arc<dyn encstore_core::Kek>> =
        [(MASTER_KMS_URI.to_owned(), kek)].into_iter().collect();
    let deks = [
        (
            tink_aead::aes128_gcm_key_template(),
            KeyParams::AesGcm { key_size: 16 },
        ),
        (
            tink_aead::aes256_gcm_siv_key_template(),
            KeyParams::AesGcmSiv { key_size: 32 },
        ),
        (
            tink_aead::aes128_ctr_hmac_sha256_key_template(),
            ctr_hmac_params(16, 16, 32, HashType::Sha256, 16),
        ),
        (
            tink_aead::cha_cha20_poly1305_key_template(),
            KeyParams::ChaCha20Poly1305,
        ),
        (
            tink_aead::x_cha_cha20_poly1305_key_template(),
            KeyParams::XChaCha20Poly1305,
        ),
    ];
    let mut fips_refused = 0;
    for (dek, dek_params) in deks {
        let refused = provider_util::refuses_type(&dek.type_url);
        let t = tink_aead::kms_envelope_aead_key_template(MASTER_KMS_URI, dek);
        if refused {
            // Under `fips`, an envelope key whose DEKs are of a type the
            // module does not approve is refused when read, naming the
            // DEK's key type.
            let handle = Handle::new(&t).expect("tink-rust makes the key");
            provider_util::assert_fips_refusal(
                Keyset::from_json_insecure(&tink_json(&handle)),
                &format!("envelope with DEK {dek_params:?}"),
            );
            fips_refused += 1;
            continue;
        }
        for prefix in [
            tink_proto::OutputPrefixType::Raw,
            tink_proto::OutputPrefixType::Tink,
        ] {
            let mut t = t.clone();
            t.output_prefix_type = prefix as i32;
            let handle = Handle::new(&t).expect("tink-rust makes the key");
            let key_id = handle.keyset_info().primary_key_id;
            let json = tink_json(&handle);
            let text = std::str::from_utf8(&json).expect("utf-8");
            assert!(text.contains("\"REMOTE\""), "{text}");
            let ks = Keyset::from_json_insecure(&json).expect("encstore reads it");
            assert_eq!(
                ks.info().keys[0].params,
                Some(KeyParams::KmsEnvelope {
                    kek_uri: MASTER_KMS_URI.into(),
                    dek: Box::new(dek_params.clone()),
                })
            );
            // Written back as read: REMOTE, byte for byte.
            assert_eq!(
                Keyset::from_json_insecure(&ks.to_json_insecure())
                    .expect("again")
                    .info(),
                ks.info()
            );
            assert!(
                std::str::from_utf8(&ks.to_json_insecure())
                    .expect("utf-8")
                    .contains("\"REMOTE\"")
            );
            // The synchronous AEAD cannot call a KMS: a typed refusal.
            assert_eq!(
                ks.aead().expect_err("refused"),
                KeysetError::NeedsAsyncAead { key_id }
            );
            let ours = encstore_tink::KeysetAsyncAead::new(&ks, &resolver)
                .await
                .expect("async AEAD");
            let theirs = tink_aead::new(&handle).expect("tink-rust AEAD");
            for (pt, ad) in [(&b""[..], &b""[..]), (b"envelope", b"name/of/object")] {
                let ct = theirs.encrypt(pt, ad).expect("tink-rust encrypts");
                assert_eq!(ours.decrypt(&ct, ad).await.expect("encstore decrypts"), pt);
                let ct = ours.encrypt(pt, ad).await.expect("encstore encrypts");
                assert_eq!(theirs.decrypt(&ct, ad).expect("tink-rust decrypts"), pt);
                if prefix == tink_proto::OutputPrefixType::Tink {
                    assert_eq!(ct[..5], OutputPrefix::Tink.prefix_bytes(key_id)[..]);
                }
                assert!(theirs.decrypt(&ct, b"other").is_err());
            }
        }
    }
    // Under `fips`: the AES-GCM-SIV, ChaCha20 and XChaCha20 DEKs.
    let expected_refused = if provider_util::provider().fips() {
        3
    } else {
        0
    };
    assert_eq!(fips_refused, expected_refused);
    // Relabelled SYMMETRIC (what Tink Java's old KeyManager.newKeyData
    // wrote for this type), it still reads.
    let t = tink_aead::kms_envelope_aead_key_template(
        MASTER_KMS_URI,
        tink_aead::aes128_gcm_key_template(),
    );
    let json = tink_json(&Handle::new(&t).expect("key"));
    let relabelled = std::str::from_utf8(&json)
        .expect("utf-8")
        .replace("\"REMOTE\"", "\"SYMMETRIC\"");
    Keyset::from_json_insecure(relabelled.as_bytes()).expect("SYMMETRIC envelope key");
}

// --------------------------------------------------------------- adapter

/// `TinkRustAead`: encstore's keyset AEAD behind `tink_core::Aead`.
#[cfg(feature = "tink-rust")]
mod adapter {
    use std::sync::Arc;

    use base64::Engine as _;
    use encstore_tink::tink_rust::TinkRustAead;

    use super::*;

    /// Code written for tink-rust, unaware of encstore: a record store that
    /// holds its primitive as `Box<dyn tink_core::Aead>`, clones it with
    /// `box_clone`, and binds each record to its name.
    struct RecordStore {
        aead: Box<dyn tink_core::Aead>,
        records: Vec<(String, Vec<u8>)>,
    }

    impl RecordStore {
        fn new(aead: Box<dyn tink_core::Aead>) -> Self {
            RecordStore {
                aead,
                records: Vec::new(),
            }
        }
        fn put(&mut self, name: &str, value: &[u8]) -> Result<(), tink_core::TinkError> {
            let ct = self.aead.encrypt(value, name.as_bytes())?;
            self.records.push((name.to_owned(), ct));
            Ok(())
        }
        fn get(&self, name: &str) -> Result<Vec<u8>, tink_core::TinkError> {
            let (_, ct) = self
                .records
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| tink_core::TinkError::new("no such record"))?;
            self.aead.decrypt(ct, name.as_bytes())
        }
        fn fork(&self) -> RecordStore {
            RecordStore {
                aead: self.aead.box_clone(),
                records: self.records.clone(),
            }
        }
    }

    /// Generic tink-rust-style code: any `tink_core::Aead`.
    fn seal_all<A: tink_core::Aead + ?Sized>(aead: &A, items: &[&[u8]]) -> Vec<Vec<u8>> {
        items
            .iter()
            .map(|pt| aead.encrypt(pt, b"batch").expect("encrypts"))
            .collect()
    }

    #[test]
    fn code_written_for_tink_rust_runs_on_the_adapter() {
        let keyset = Keyset::generate(&templates::by_name("AES256_GCM").expect("t")).expect("g");
        let mut store = RecordStore::new(TinkRustAead::from_keyset(&keyset).expect("a").boxed());
        store.put("a", b"alpha").expect("put");
        store.put("b", b"").expect("put");
        assert_eq!(store.get("a").expect("get"), b"alpha");
        assert_eq!(store.get("b").expect("get"), b"");
        // The stored records are plain Tink ciphertexts of that keyset.
        let es = keyset.aead().expect("aead");
        assert_eq!(es.decrypt(&store.records[0].1, b"a").expect("es"), b"alpha");
        // A box_clone shares the keys.
        let mut fork = store.fork();
        fork.put("c", b"gamma").expect("put");
        assert_eq!(
            store.aead.decrypt(&fork.records[2].1, b"c").expect("d"),
            b"gamma"
        );
        // Records are bound to their names.
        fork.records[0].0 = "b".into();
        assert!(fork.get("b").is_err());

        let adapter = TinkRustAead::from(keyset.aead().expect("aead"));
        let cts = seal_all(&adapter, &[b"x", b"yy"]);
        let boxed: Box<dyn tink_core::Aead> = adapter.boxed();
        let more = seal_all(&*boxed, &[b"zzz"]);
        for (ct, pt) in cts.iter().chain(&more).zip([&b"x"[..], b"yy", b"zzz"]) {
            assert_eq!(es.decrypt(ct, b"batch").expect("es"), pt);
        }
    }

    #[test]
    fn adapter_interops_with_tink_rust_on_every_shared_type_and_prefix() {
        for shared in shared() {
            for prefix in PREFIXES {
                let label = format!("adapter, {} {prefix}", shared.label());
                let keyset = Keyset::generate(&shared.template(prefix)).expect("generate");
                let adapter = TinkRustAead::from_keyset(&keyset).expect("adapter");
                let tr = tink_aead_for(&keyset);
                interop(
                    &label,
                    &TinkRust("encstore via TinkRustAead", &adapter),
                    &TinkRust("tink-rust", &*tr),
                    &prefix.prefix_bytes(keyset.primary_key_id()),
                );
            }
        }
        // And on a keyset tink-rust generated, with two keys.
        tink_aead::init();
        let mut manager = Manager::new();
        // Two key types (AES-GCM and AES-CTR-HMAC under `fips`).
        let fips = super::provider_util::provider().fips();
        manager
            .rotate(&if fips {
                tink_aead::aes128_gcm_key_template()
            } else {
                tink_aead::cha_cha20_poly1305_key_template()
            })
            .expect("rotate");
        let old = tink_aead::new(&manager.handle().expect("h")).expect("a");
        let old_ct = old.encrypt(b"old", b"").expect("encrypt");
        manager
            .rotate(&if fips {
                tink_aead::aes256_ctr_hmac_sha256_key_template()
            } else {
                tink_aead::aes256_gcm_siv_key_template()
            })
            .expect("rotate");
        let handle = manager.handle().expect("handle");
        let adapter = TinkRustAead::from_keyset(&encstore_keyset(&handle)).expect("adapter");
        let tr = tink_aead::new(&handle).expect("aead");
        assert_eq!(
            tink_core::Aead::decrypt(&adapter, &old_ct, b"").expect("d"),
            b"old"
        );
        let primary = handle.keyset_info().primary_key_id;
        interop(
            "adapter, tink-rust keyset",
            &TinkRust("encstore via TinkRustAead", &adapter),
            &TinkRust("tink-rust", &*tr),
            &OutputPrefix::Tink.prefix_bytes(primary),
        );
    }

    /// Any encstore AEAD can be wrapped, shared with `from_arc`, and used
    /// from many threads (tink-rust's own `Box<dyn Aead>` is not `Send`).
    #[test]
    fn adapter_wraps_any_encstore_aead_and_crosses_threads() {
        let name = if super::provider_util::refuses_template("XCHACHA20_POLY1305") {
            "AES256_GCM"
        } else {
            "XCHACHA20_POLY1305"
        };
        let keyset = Keyset::generate(&templates::by_name(name).expect("t")).expect("generate");
        let shared: Arc<dyn Aead> = Arc::new(keyset.aead().expect("aead"));
        let adapter = TinkRustAead::from_arc(Arc::clone(&shared));
        assert!(Arc::ptr_eq(adapter.encstore_aead(), &shared));
        let handles: Vec<_> = (0..4u8)
            .map(|i| {
                let a = adapter.clone();
                std::thread::spawn(move || {
                    let ct = tink_core::Aead::encrypt(&a, &[i; 33], &[i]).expect("encrypts");
                    (i, ct)
                })
            })
            .collect();
        let tr = tink_aead_for(&keyset);
        for h in handles {
            let (i, ct) = h.join().expect("thread");
            assert_eq!(tr.decrypt(&ct, &[i]).expect("tink-rust"), [i; 33]);
            assert_eq!(shared.decrypt(&ct, &[i]).expect("encstore"), [i; 33]);
        }
    }

    /// The key bytes of a one-key keyset, decoded from its JSON.
    fn aes_gcm_key_bytes(keyset: &Keyset) -> Zeroizing<Vec<u8>> {
        let json: serde_json::Value =
            serde_json::from_slice(&keyset.to_json_insecure()).expect("json");
        let value = base64::engine::general_purpose::STANDARD
            .decode(json["key"][0]["keyData"]["value"].as_str().expect("value"))
            .expect("base64");
        let key = tink_proto::AesGcmKey::decode(&value[..]).expect("AesGcmKey");
        Zeroizing::new(key.key_value.clone())
    }

    /// None of the secrets in any of the forms a formatter could print
    /// them: raw bytes as `{:?}`, hex, base64.
    fn assert_no_secret(what: &str, text: &str, secrets: &[&[u8]]) {
        for s in secrets {
            let forms = [
                format!("{:?}", s),
                format!("{:?}", &s[..8]).trim_end_matches(']').to_owned(),
                hex::encode(s),
                base64::engine::general_purpose::STANDARD.encode(s),
            ];
            for form in forms {
                assert!(!text.contains(&form), "{what} leaks a secret: {text}");
            }
        }
    }

    #[test]
    fn adapter_errors_and_debug_hold_no_secrets() {
        let keyset = Keyset::generate(&templates::by_name("AES256_GCM").expect("t")).expect("g");
        let key = aes_gcm_key_bytes(&keyset);
        let pt = b"a plaintext that must never be printed".to_vec();
        let adapter = TinkRustAead::from_keyset(&keyset).expect("adapter");
        let id = keyset.primary_key_id();

        let debug = format!("{adapter:?}");
        assert!(debug.starts_with("TinkRustAead(KeysetAead"), "{debug}");
        assert!(debug.contains(&id.to_string()), "{debug}");
        assert_no_secret("Debug", &debug, &[&key]);
        let boxed_debug = format!("{:?}", adapter.clone());
        assert_eq!(boxed_debug, debug);

        let ct = tink_core::Aead::encrypt(&adapter, &pt, b"ad").expect("encrypt");
        // Wrong associated data, tampering: an authentication failure.
        let mut tampered = ct.clone();
        *tampered.last_mut().expect("tag") ^= 1;
        for (what, c, ad) in [
            ("wrong AD", &ct, &b"da"[..]),
            ("tampered", &tampered, &b"ad"[..]),
        ] {
            let e = tink_core::Aead::decrypt(&adapter, c, ad).expect_err(what);
            let text = format!("{e} {e:?}");
            assert!(
                e.to_string()
                    .starts_with("aead::decrypt: decryption failed: ciphertext is not authentic"),
                "{what}: {e}"
            );
            assert_no_secret(what, &text, &[&key, &pt, &ct[5..]]);
        }
        // A ciphertext for a key this keyset lacks says which key ID.
        let mut foreign = ct.clone();
        foreign[1..5].copy_from_slice(&(id ^ 1).to_be_bytes());
        let e = tink_core::Aead::decrypt(&adapter, &foreign, b"ad").expect_err("foreign");
        assert_eq!(
            e.to_string(),
            format!(
                "aead::decrypt: ciphertext names key ID {}, which is not an enabled key of \
                 this keyset",
                id ^ 1
            )
        );
        // Too short to be a ciphertext at all.
        assert!(tink_core::Aead::decrypt(&adapter, &[], b"").is_err());
        assert!(tink_core::Aead::decrypt(&adapter, &ct[..5], b"ad").is_err());
    }

    /// The encrypt-side error mapping, with an encstore AEAD that refuses
    /// to encrypt (as a compliance policy wrapper does). Decrypt-side
    /// refusals are covered against tink-rust by `interop` above.
    #[test]
    fn adapter_maps_encrypt_errors() {
        #[derive(Debug)]
        struct Refuses;
        impl Aead for Refuses {
            fn encrypt(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, AeadError> {
                Err(AeadError::NoPrimary)
            }
            fn decrypt(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, AeadError> {
                Err(AeadError::Authentication)
            }
        }
        let adapter = TinkRustAead::new(Refuses);
        let e = tink_core::Aead::encrypt(&adapter, b"secret", b"").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "aead::encrypt: the keyset has no enabled primary key to encrypt with"
        );
    }
}
