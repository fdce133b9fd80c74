//! Key-name validation, shared by every backend.
//!
//! A key is a `/`-separated path such as `certificates/example.com/cert.pem`.
//! The same rules hold on every backend, so a key that one backend accepts
//! is accepted by all, and no key can ever name a file outside a
//! filesystem backend's root.

use std::fmt;

use crate::error::Error;

/// The longest key, in bytes (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// The longest single segment, in bytes (a filesystem's `NAME_MAX`).
pub const MAX_SEGMENT_LEN: usize = 255;

/// Segments that begin with this, in any letter case (`.EncStore-x` too),
/// are reserved for encstore's own files (temporary files, lock files,
/// metadata) and are refused as keys. Case does not matter so that no key
/// can reach those files on a case-insensitive filesystem.
pub const RESERVED_PREFIX: &str = ".encstore";

/// True when a key segment starts with [`RESERVED_PREFIX`], ignoring ASCII
/// case.
pub fn is_reserved_segment(segment: &str) -> bool {
    segment
        .as_bytes()
        .get(..RESERVED_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX.as_bytes()))
}

/// Key names longer than this many characters are shortened in messages
/// (see [`ShownKey`]).
pub const SHOWN_KEY_MAX_CHARS: usize = 100;

/// A key name as messages show it: quoted and escaped like `{:?}`, and,
/// when longer than [`SHOWN_KEY_MAX_CHARS`] characters, shortened to its
/// first 64 and last 24 characters around `…`, followed by its length in
/// bytes, so that a long (or hostile) name cannot flood a log line.
///
/// ```
/// use encstore_core::key::ShownKey;
/// assert_eq!(ShownKey("certs/a.pem").to_string(), "\"certs/a.pem\"");
/// let long = format!("certs/{}.pem", "x".repeat(500));
/// let shown = ShownKey(&long).to_string();
/// assert!(shown.starts_with("\"certs/xxx") && shown.ends_with("xxx.pem\" (510 bytes)"));
/// assert!(shown.contains('…') && shown.len() < 110);
/// ```
#[derive(Clone, Copy)]
pub struct ShownKey<'a>(pub &'a str);

impl fmt::Display for ShownKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEAD: usize = 64;
        const TAIL: usize = 24;
        let key = self.0;
        let chars = key.chars().count();
        if chars <= SHOWN_KEY_MAX_CHARS {
            return write!(f, "{key:?}");
        }
        let head: String = key.chars().take(HEAD).collect();
        let tail: String = key.chars().skip(chars - TAIL).collect();
        let short = format!("{head}…{tail}");
        write!(f, "{short:?} ({} bytes)", key.len())
    }
}

impl fmt::Debug for ShownKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a key name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidKeyReason {
    /// The key is empty.
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    TooLong,
    /// A segment is longer than [`MAX_SEGMENT_LEN`] bytes.
    SegmentTooLong,
    /// The key starts with `/`.
    LeadingSlash,
    /// The key ends with `/`.
    TrailingSlash,
    /// Two slashes in a row.
    EmptySegment,
    /// A `.` segment.
    DotSegment,
    /// A `..` segment.
    DotDotSegment,
    /// A NUL byte.
    Nul,
    /// A backslash, which some platforms treat as a separator.
    Backslash,
    /// An ASCII control character (other than NUL).
    ControlCharacter,
    /// A segment starting with `.encstore` (in any letter case), reserved for
    /// encstore's own files.
    Reserved,
}

impl fmt::Display for InvalidKeyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            InvalidKeyReason::Empty => "key is empty",
            InvalidKeyReason::TooLong => "key is longer than 1024 bytes",
            InvalidKeyReason::SegmentTooLong => "a segment is longer than 255 bytes",
            InvalidKeyReason::LeadingSlash => "key starts with '/' (keys are relative)",
            InvalidKeyReason::TrailingSlash => "key ends with '/'",
            InvalidKeyReason::EmptySegment => "key has an empty segment ('//')",
            InvalidKeyReason::DotSegment => "key has a '.' segment",
            InvalidKeyReason::DotDotSegment => "key has a '..' segment",
            InvalidKeyReason::Nul => "key contains a NUL byte",
            InvalidKeyReason::Backslash => "key contains a backslash",
            InvalidKeyReason::ControlCharacter => "key contains a control character",
            InvalidKeyReason::Reserved => {
                "segments starting with '.encstore' (in any letter case) are reserved"
            }
        };
        f.write_str(s)
    }
}

fn check(key: &str) -> Result<(), InvalidKeyReason> {
    if key.is_empty() {
        return Err(InvalidKeyReason::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(InvalidKeyReason::TooLong);
    }
    if key.starts_with('/') {
        return Err(InvalidKeyReason::LeadingSlash);
    }
    if key.ends_with('/') {
        return Err(InvalidKeyReason::TrailingSlash);
    }
    for b in key.bytes() {
        match b {
            0 => return Err(InvalidKeyReason::Nul),
            b'\\' => return Err(InvalidKeyReason::Backslash),
            0x01..=0x1f | 0x7f => return Err(InvalidKeyReason::ControlCharacter),
            _ => {}
        }
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(InvalidKeyReason::EmptySegment),
            "." => return Err(InvalidKeyReason::DotSegment),
            ".." => return Err(InvalidKeyReason::DotDotSegment),
            s if s.len() > MAX_SEGMENT_LEN => return Err(InvalidKeyReason::SegmentTooLong),
            s if is_reserved_segment(s) => return Err(InvalidKeyReason::Reserved),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a key name against the shared rules.
///
/// # Errors
/// [`Error::InvalidKey`] naming the first rule the key breaks.
pub fn validate_key(key: &str) -> Result<(), Error> {
    check(key).map_err(|reason| Error::InvalidKey {
        key: key.to_owned(),
        reason,
    })
}

/// Checks a list or delete prefix: the empty prefix (the whole store) is
/// allowed; anything else must be a valid key.
///
/// # Errors
/// [`Error::InvalidKey`] naming the first rule the prefix breaks.
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.is_empty() {
        Ok(())
    } else {
        validate_key(prefix)
    }
}

/// True when `key` lies under `prefix` by whole components: `a` is a prefix
/// of `a/b` but not of `ab/c`, and not of `a` itself. The empty prefix
/// contains every key.
pub fn is_under(prefix: &str, key: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    key.len() > prefix.len() && key.starts_with(prefix) && key.as_bytes()[prefix.len()] == b'/'
}

/// For a `key` under `prefix`, the immediate child of `prefix` on the way to
/// `key`, as a full key (`child_of("a", "a/b/c") == Some("a/b")`), and
/// whether that child is `key` itself (terminal).
pub fn child_of<'k>(prefix: &str, key: &'k str) -> Option<(&'k str, bool)> {
    if !is_under(prefix, key) {
        return None;
    }
    let start = if prefix.is_empty() {
        0
    } else {
        prefix.len() + 1
    };
    match key[start..].find('/') {
        Some(i) => Some((&key[..start + i], false)),
        None => Some((key, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for k in [
            "a",
            "a/b/c",
            "certificates/acme-v02.api.letsencrypt.org-directory/example.com/example.com.crt",
            "with space/and-dash_and.dot",
            ".hidden",
            "a/..b/c..",
            "ünïcödé/🔑",
        ] {
            assert!(validate_key(k).is_ok(), "{k:?} should be valid");
        }
    }

    #[test]
    fn refuses_each_rule_with_its_reason() {
        let long_segment = "x".repeat(MAX_SEGMENT_LEN + 1);
        let long_key = ["y"; 600].join("/");
        let cases: Vec<(&str, InvalidKeyReason)> = vec![
            ("", InvalidKeyReason::Empty),
            ("/a", InvalidKeyReason::LeadingSlash),
            ("a/", InvalidKeyReason::TrailingSlash),
            ("a//b", InvalidKeyReason::EmptySegment),
            ("./a", InvalidKeyReason::DotSegment),
            ("a/./b", InvalidKeyReason::DotSegment),
            ("..", InvalidKeyReason::DotDotSegment),
            ("a/../../etc/passwd", InvalidKeyReason::DotDotSegment),
            ("a\0b", InvalidKeyReason::Nul),
            ("a\\..\\b", InvalidKeyReason::Backslash),
            ("a\nb", InvalidKeyReason::ControlCharacter),
            ("a/\x7f", InvalidKeyReason::ControlCharacter),
            (&long_segment, InvalidKeyReason::SegmentTooLong),
            (&long_key, InvalidKeyReason::TooLong),
            (".encstore-locks/x", InvalidKeyReason::Reserved),
            ("a/.encstore-tmp.123", InvalidKeyReason::Reserved),
            (".ENCSTORE-locks/x", InvalidKeyReason::Reserved),
            ("a/.EncStore-tmp.1", InvalidKeyReason::Reserved),
            (".encSTORE", InvalidKeyReason::Reserved),
        ];
        for (key, want) in cases {
            match validate_key(key) {
                Err(Error::InvalidKey { reason, .. }) => {
                    assert_eq!(reason, want, "key {key:?}")
                }
                other => panic!("{key:?}: expected InvalidKey({want:?}), got {other:?}"),
            }
        }
    }

    #[test]
    fn prefix_allows_empty_only_as_whole_store() {
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("a/b").is_ok());
        assert!(validate_prefix("a/").is_err());
        assert!(validate_prefix("..").is_err());
    }

    #[test]
    fn prefixes_match_by_component() {
        assert!(is_under("a", "a/b"));
        assert!(is_under("a", "a/b/c"));
        assert!(!is_under("a", "ab/c"));
        assert!(!is_under("a", "a"));
        assert!(is_under("", "a"));
        assert_eq!(child_of("a", "a/b/c"), Some(("a/b", false)));
        assert_eq!(child_of("a", "a/b"), Some(("a/b", true)));
        assert_eq!(child_of("", "x/y"), Some(("x", false)));
        assert_eq!(child_of("a", "ab/c"), None);
    }

    #[test]
    fn error_message_is_specific() {
        let err = validate_key("a/../b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid key \"a/../b\": key has a '..' segment"
        );
    }
}
