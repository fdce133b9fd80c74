//! Wiping the key bytes of decoded tink-proto messages.

/// Decodes `bytes` into `msg` (prost's `merge`); when decoding fails
/// part-way, `wipe` is called on the partly decoded message before the
/// error is returned, so key bytes decoded before the failure do not
/// outlive it unwiped (prost's own `decode` drops the partial message as
/// is).
pub(crate) fn merge_or_wipe<M: prost::Message>(
    msg: &mut M,
    bytes: &[u8],
    wipe: impl FnOnce(&mut M),
) -> Result<(), prost::DecodeError> {
    let r = msg.merge(bytes);
    if r.is_err() {
        wipe(msg);
    }
    r
}

/// Wipes the key bytes of a `Keyset.Key` proto.
pub(crate) fn wipe_key_proto(k: &mut tink_proto::keyset::Key) {
    use zeroize::Zeroize;
    if let Some(d) = &mut k.key_data {
        d.value.zeroize();
    }
}

/// A decoded proto `Keyset` whose key bytes are wiped when it is dropped
/// (the tink-proto structs derive `Debug` with the key bytes and do not
/// zeroize: they never leave this module).
pub(crate) struct WipeOnDrop(pub(crate) tink_proto::Keyset);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        for k in &mut self.0.key {
            wipe_key_proto(k);
        }
    }
}

#[cfg(test)]
mod wipe_tests {
    #![allow(clippy::unwrap_used)]
    use prost::Message;

    use super::*;
    use crate::error::KeysetError;
    use crate::keyset::binary;

    /// A `Keyset` proto with one key whose key data is 32 bytes of 0xAA,
    /// followed by a field that is cut short: prost decodes the key, then
    /// fails.
    fn truncated_keyset() -> Vec<u8> {
        let ks = tink_proto::Keyset {
            primary_key_id: 7,
            key: vec![tink_proto::keyset::Key {
                key_data: Some(tink_proto::KeyData {
                    type_url: "type.googleapis.com/google.crypto.tink.AesGcmKey".into(),
                    value: vec![0xAA; 32],
                    key_material_type: 1,
                }),
                status: 1,
                key_id: 7,
                output_prefix_type: 1,
            }],
        };
        let mut bytes = ks.encode_to_vec();
        // Field 2 (a key), length 100, but only 3 bytes follow.
        bytes.extend_from_slice(&[0x12, 100, 1, 2, 3]);
        bytes
    }

    #[test]
    fn a_failed_keyset_decode_wipes_what_it_decoded() {
        let bytes = truncated_keyset();
        // prost leaves the key bytes decoded so far in the partial message
        // (which its `decode` drops without wiping).
        let mut plain = tink_proto::Keyset::default();
        assert!(plain.merge(&bytes[..]).is_err());
        let leaked = plain.key[0].key_data.as_ref().unwrap().value.clone();
        assert_eq!(leaked, vec![0xAA; 32]);
        // merge_or_wipe wipes them before returning the error.
        let mut msg = tink_proto::Keyset::default();
        let r = merge_or_wipe(&mut msg, &bytes, |m| {
            for k in &mut m.key {
                wipe_key_proto(k);
            }
        });
        assert!(r.is_err());
        assert!(msg.key.iter().all(|k| {
            k.key_data
                .as_ref()
                .is_none_or(|d| d.value.iter().all(|b| *b == 0))
        }));
        // And the parser built on it reports the error.
        assert!(matches!(
            binary::parse_keyset(&bytes),
            Err(KeysetError::MalformedProtobuf { .. })
        ));
    }
}
