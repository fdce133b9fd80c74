//! Any bytes given to the JSON keyset readers (cleartext and encrypted):
//! never a panic, and a keyset that parses writes back and parses again to
//! the same keyset.
#![no_main]

use encstore_tink::{Keyset, KeysetProtection};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = Keyset::from_json_insecure(data) {
        let again = Keyset::from_json_insecure(&k.to_json_insecure()).expect("round trip");
        assert_eq!(again.info(), k.info());
    }
    let _ = Keyset::read(data, KeysetProtection::Cleartext);
    let _ = encstore_tink::detect_format(data);
});
