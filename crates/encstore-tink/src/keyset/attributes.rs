//! What a key is marked with: its status, its output prefix type, and
//! the primitive of its keyset.

use std::fmt;

/// The status of a key in a keyset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// The key decrypts (and, if primary, encrypts).
    Enabled,
    /// The key keeps its material but is not used.
    Disabled,
    /// The key material is gone; only the ID remains.
    Destroyed,
}

impl KeyStatus {
    /// Tink's name for the status: `ENABLED`, `DISABLED` or `DESTROYED`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Enabled => "ENABLED",
            KeyStatus::Disabled => "DISABLED",
            KeyStatus::Destroyed => "DESTROYED",
        }
    }

    pub(crate) fn from_proto(v: i32) -> Option<Self> {
        match tink_proto::KeyStatusType::try_from(v).ok()? {
            tink_proto::KeyStatusType::Enabled => Some(KeyStatus::Enabled),
            tink_proto::KeyStatusType::Disabled => Some(KeyStatus::Disabled),
            tink_proto::KeyStatusType::Destroyed => Some(KeyStatus::Destroyed),
            tink_proto::KeyStatusType::UnknownStatus => None,
        }
    }

    pub(crate) fn to_proto(self) -> i32 {
        (match self {
            KeyStatus::Enabled => tink_proto::KeyStatusType::Enabled,
            KeyStatus::Disabled => tink_proto::KeyStatusType::Disabled,
            KeyStatus::Destroyed => tink_proto::KeyStatusType::Destroyed,
        }) as i32
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The primitive a keyset's keys implement. A keyset holds keys of one
/// primitive only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrimitiveKind {
    /// AEAD keys (`AesGcmKey`, `XChaCha20Poly1305Key`, ...):
    /// [`Keyset::aead`](super::Keyset::aead).
    Aead,
    /// Streaming AEAD keys (`AesGcmHkdfStreamingKey`,
    /// `AesCtrHmacStreamingKey`): [`Keyset::streaming_aead`](super::Keyset::streaming_aead).
    StreamingAead,
}

impl PrimitiveKind {
    /// A short name: `AEAD` or `streaming AEAD`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrimitiveKind::Aead => "AEAD",
            PrimitiveKind::StreamingAead => "streaming AEAD",
        }
    }
}

impl fmt::Display for PrimitiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a key marks its ciphertexts (Tink's `OutputPrefixType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputPrefix {
    /// `0x01` followed by the big-endian key ID (5 bytes).
    Tink,
    /// `0x00` followed by the big-endian key ID (5 bytes).
    Legacy,
    /// `0x00` followed by the big-endian key ID (5 bytes), like LEGACY.
    Crunchy,
    /// No prefix.
    Raw,
}

impl OutputPrefix {
    /// Tink's name: `TINK`, `LEGACY`, `CRUNCHY` or `RAW`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputPrefix::Tink => "TINK",
            OutputPrefix::Legacy => "LEGACY",
            OutputPrefix::Crunchy => "CRUNCHY",
            OutputPrefix::Raw => "RAW",
        }
    }

    /// The prefix bytes a key with this type and ID puts before its
    /// ciphertexts (empty for RAW).
    pub fn prefix_bytes(self, key_id: u32) -> Vec<u8> {
        let (buf, len) = self.prefix_array(key_id);
        buf[..len].to_vec()
    }

    /// The prefix as a fixed array and its length (0 or 5).
    pub(crate) fn prefix_array(self, key_id: u32) -> ([u8; 5], usize) {
        let id = key_id.to_be_bytes();
        match self {
            OutputPrefix::Tink => ([0x01, id[0], id[1], id[2], id[3]], 5),
            OutputPrefix::Legacy | OutputPrefix::Crunchy => ([0x00, id[0], id[1], id[2], id[3]], 5),
            OutputPrefix::Raw => ([0; 5], 0),
        }
    }

    pub(crate) fn from_proto(v: i32) -> Option<Self> {
        match tink_proto::OutputPrefixType::try_from(v).ok()? {
            tink_proto::OutputPrefixType::Tink => Some(OutputPrefix::Tink),
            tink_proto::OutputPrefixType::Legacy => Some(OutputPrefix::Legacy),
            tink_proto::OutputPrefixType::Crunchy => Some(OutputPrefix::Crunchy),
            tink_proto::OutputPrefixType::Raw => Some(OutputPrefix::Raw),
            tink_proto::OutputPrefixType::UnknownPrefix => None,
        }
    }

    pub(crate) fn to_proto(self) -> i32 {
        (match self {
            OutputPrefix::Tink => tink_proto::OutputPrefixType::Tink,
            OutputPrefix::Legacy => tink_proto::OutputPrefixType::Legacy,
            OutputPrefix::Crunchy => tink_proto::OutputPrefixType::Crunchy,
            OutputPrefix::Raw => tink_proto::OutputPrefixType::Raw,
        }) as i32
    }
}

impl fmt::Display for OutputPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
