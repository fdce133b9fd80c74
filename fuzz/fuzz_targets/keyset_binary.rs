//! Any bytes given to the binary keyset readers (Keyset and
//! EncryptedKeyset): never a panic, and what parses round-trips.
#![no_main]

use encstore_tink::{Keyset, KeysetProtection};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = Keyset::from_binary_insecure(data) {
        let again = Keyset::from_binary_insecure(&k.to_binary_insecure()).expect("round trip");
        assert_eq!(again.info(), k.info());
    }
    let _ = Keyset::read(data, KeysetProtection::Cleartext);
});
