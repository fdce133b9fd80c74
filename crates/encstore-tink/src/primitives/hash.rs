//! The hash functions of Tink's keys: HMAC (AES-CTR-HMAC AEAD, segment
//! HMAC of AES-CTR-HMAC streaming keys) and HKDF (streaming keys).

use std::fmt;

/// A hash function a key uses for HMAC or HKDF: Tink's `HashType` without
/// `UNKNOWN_HASH`. Which ones a key type allows is that key type's rule
/// (streaming keys: SHA1, SHA256 and SHA512).
///
/// Displays as Tink's name (`SHA256`), as [`HashType::as_str`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HashType {
    /// SHA-1 (legacy use only; refused by the `fips` provider).
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashType {
    /// Every hash, in Tink's order.
    pub const ALL: [HashType; 5] = [
        HashType::Sha1,
        HashType::Sha224,
        HashType::Sha256,
        HashType::Sha384,
        HashType::Sha512,
    ];

    /// Tink's name: `SHA1`, `SHA224`, `SHA256`, `SHA384` or `SHA512`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HashType::Sha1 => "SHA1",
            HashType::Sha224 => "SHA224",
            HashType::Sha256 => "SHA256",
            HashType::Sha384 => "SHA384",
            HashType::Sha512 => "SHA512",
        }
    }

    /// The digest size in bytes (the longest HMAC tag it gives).
    pub const fn output_size(self) -> usize {
        match self {
            HashType::Sha1 => 20,
            HashType::Sha224 => 28,
            HashType::Sha256 => 32,
            HashType::Sha384 => 48,
            HashType::Sha512 => 64,
        }
    }

    /// The hash of a Tink `HashType` number; `None` for `UNKNOWN_HASH` and
    /// numbers Tink does not define.
    pub(crate) fn from_proto(v: i32) -> Option<HashType> {
        use tink_proto::HashType as Proto;
        match Proto::try_from(v).ok()? {
            Proto::Sha1 => Some(HashType::Sha1),
            Proto::Sha224 => Some(HashType::Sha224),
            Proto::Sha256 => Some(HashType::Sha256),
            Proto::Sha384 => Some(HashType::Sha384),
            Proto::Sha512 => Some(HashType::Sha512),
            Proto::UnknownHash => None,
        }
    }
}

/// A hash name that is none of Tink's (see `FromStr for HashType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHashName(pub String);

impl fmt::Display for UnknownHashName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = HashType::ALL.iter().map(|h| h.as_str()).collect();
        write!(
            f,
            "unknown hash {:?}: expected one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownHashName {}

impl std::str::FromStr for HashType {
    type Err = UnknownHashName;

    /// Tink's name, in any case (`SHA256`, `sha256`); other spellings
    /// (`SHA-256`) are refused rather than guessed.
    fn from_str(s: &str) -> Result<HashType, UnknownHashName> {
        HashType::ALL
            .into_iter()
            .find(|h| h.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownHashName(s.to_owned()))
    }
}

impl fmt::Display for HashType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_any_case_and_other_spellings_are_refused() {
        for h in HashType::ALL {
            assert_eq!(h.as_str().parse::<HashType>(), Ok(h));
            assert_eq!(h.as_str().to_lowercase().parse::<HashType>(), Ok(h));
        }
        let e = "SHA-256".parse::<HashType>().unwrap_err();
        assert_eq!(e, UnknownHashName("SHA-256".into()));
        assert_eq!(
            e.to_string(),
            "unknown hash \"SHA-256\": expected one of SHA1, SHA224, SHA256, SHA384, SHA512"
        );
        assert!("".parse::<HashType>().is_err());
    }

    #[test]
    fn names_sizes_and_proto_numbers_are_tinks() {
        use tink_proto::HashType as Proto;
        let all = [
            (HashType::Sha1, "SHA1", 20, Proto::Sha1),
            (HashType::Sha224, "SHA224", 28, Proto::Sha224),
            (HashType::Sha256, "SHA256", 32, Proto::Sha256),
            (HashType::Sha384, "SHA384", 48, Proto::Sha384),
            (HashType::Sha512, "SHA512", 64, Proto::Sha512),
        ];
        for (h, name, size, proto) in all {
            assert_eq!(h.as_str(), name);
            assert_eq!(h.to_string(), name);
            assert_eq!(proto.as_str_name(), name);
            assert_eq!(h.output_size(), size);
            assert_eq!(HashType::from_proto(proto as i32), Some(h));
        }
        assert_eq!(HashType::from_proto(Proto::UnknownHash as i32), None);
        assert_eq!(HashType::from_proto(99), None);
    }
}
