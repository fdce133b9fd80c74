//! Any bytes given to the keyset AEAD's decrypt, for a keyset holding every
//! AEAD key type with TINK, LEGACY and RAW prefixes: never a panic, never a
//! success on data that was not produced by encrypt (checked by re-encrypting
//! nothing: a successful decrypt of random bytes would be a forgery, so it is
//! a crash).
#![no_main]

use std::sync::OnceLock;

use encstore_core::Aead;
use encstore_tink::{Keyset, KeysetAead, OutputPrefix};
use encstore_tink::templates::by_name;
use libfuzzer_sys::fuzz_target;

fn aead() -> &'static KeysetAead {
    static A: OnceLock<KeysetAead> = OnceLock::new();
    A.get_or_init(|| {
        let mut k = Keyset::generate(&by_name("AES128_GCM").unwrap()).unwrap();
        for name in encstore_tink::templates::NAMES {
            let t = by_name(name).unwrap();
            k.add_key(&t).unwrap();
            if t.output_prefix() == OutputPrefix::Tink {
                k.add_key(&t.with_output_prefix(OutputPrefix::Legacy)).unwrap();
            }
        }
        k.aead().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let a = aead();
    let split = data.first().map(|b| (*b as usize) % 8).unwrap_or(0).min(data.len());
    let (ad, ct) = data.split_at(split);
    assert!(a.decrypt(ct, ad).is_err(), "decrypted bytes that encrypt never produced");
    assert!(a.decrypt_owned(ct.to_vec(), ad).is_err());
});
