//! The streaming decryptor on any input, for a keyset of four streaming
//! keys with small segments (AES-GCM-HKDF and AES-CTR-HMAC, 128- and
//! 256-bit, so inputs reach several segments):
//!
//! - raw bytes as a ciphertext: never a panic, never a success (it would
//!   be a forgery); the one-shot, push (in input-driven chunks),
//!   random-access and segment decryptors agree;
//! - a genuine ciphertext altered by input-driven edits (flips, cuts,
//!   insertions, segment swaps): it decrypts to exactly the original
//!   plaintext or is refused, by every decryptor, and a refusal never
//!   releases plaintext past the first altered segment;
//! - the segment arithmetic on input-driven sizes and ranges never panics
//!   and stays consistent.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use encstore_tink::{Keyset, KeysetStreamingAead, SegmentLayout};
use libfuzzer_sys::fuzz_target;
use prost::Message;

const GCM: &str = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey";
const CTR: &str = "type.googleapis.com/google.crypto.tink.AesCtrHmacStreamingKey";

struct Fixture {
    aead: KeysetStreamingAead,
    /// Genuine ciphertexts of `plaintext`, one per key (each key primary).
    genuine: Vec<Vec<u8>>,
    plaintext: Vec<u8>,
    rt: tokio::runtime::Runtime,
}

fn key(id: u32, url: &str, value: Vec<u8>) -> tink_proto::keyset::Key {
    tink_proto::keyset::Key {
        key_data: Some(tink_proto::KeyData {
            type_url: url.to_owned(),
            value,
            key_material_type: tink_proto::key_data::KeyMaterialType::Symmetric as i32,
        }),
        status: tink_proto::KeyStatusType::Enabled as i32,
        key_id: id,
        output_prefix_type: tink_proto::OutputPrefixType::Raw as i32,
    }
}

fn gcm(derived: u32, segment: u32) -> Vec<u8> {
    tink_proto::AesGcmHkdfStreamingKey {
        version: 0,
        params: Some(tink_proto::AesGcmHkdfStreamingParams {
            ciphertext_segment_size: segment,
            derived_key_size: derived,
            hkdf_hash_type: tink_proto::HashType::Sha256 as i32,
        }),
        key_value: vec![derived as u8; derived as usize],
    }
    .encode_to_vec()
}

fn ctr(derived: u32, tag: u32, segment: u32) -> Vec<u8> {
    tink_proto::AesCtrHmacStreamingKey {
        version: 0,
        params: Some(tink_proto::AesCtrHmacStreamingParams {
            ciphertext_segment_size: segment,
            derived_key_size: derived,
            hkdf_hash_type: tink_proto::HashType::Sha1 as i32,
            hmac_params: Some(tink_proto::HmacParams {
                hash: tink_proto::HashType::Sha256 as i32,
                tag_size: tag,
            }),
        }),
        key_value: vec![tag as u8; 32],
    }
    .encode_to_vec()
}

fn keyset(primary: u32) -> Keyset {
    let ks = tink_proto::Keyset {
        primary_key_id: primary,
        key: vec![
            key(1, GCM, gcm(16, 64)),
            key(2, GCM, gcm(32, 97)),
            key(3, CTR, ctr(16, 16, 80)),
            key(4, CTR, ctr(32, 10, 60)),
        ],
    };
    Keyset::from_binary_insecure(&ks.encode_to_vec()).expect("valid keyset")
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let plaintext: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let genuine = (1..=4)
            .map(|p| {
                keyset(p)
                    .streaming_aead()
                    .expect("streaming")
                    .encrypt(&plaintext, b"ad")
                    .expect("encrypt")
            })
            .collect();
        Fixture {
            aead: keyset(1).streaming_aead().expect("streaming"),
            genuine,
            plaintext,
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
        }
    })
}

/// Decrypts `ct` with the one-shot, push, random-access and segment
/// decryptors and checks they agree; returns the one-shot result.
fn decrypt_all_ways(f: &Fixture, ct: &[u8], ad: &[u8], chunk: usize) -> Option<Vec<u8>> {
    let one = f.aead.decrypt(ct, ad).ok();
    let mut dec = f.aead.decryptor(ad);
    let mut out = Vec::new();
    let mut push_ok = true;
    for c in ct.chunks(chunk.max(1)) {
        if dec.update(c, &mut out).is_err() {
            push_ok = false;
            break;
        }
    }
    let push = (push_ok && dec.finish_into(&mut out).is_ok()).then_some(out);
    assert_eq!(one, push, "one-shot and push decryptors disagree");
    let ranged = f.rt.block_on(async {
        let r = f.aead.open_ranged(Bytes::copy_from_slice(ct), ad).await.ok()?;
        r.read_all().await.ok().map(|b| b.to_vec())
    });
    assert_eq!(one, ranged, "one-shot and random-access decryptors disagree");
    let segments = segment_decrypt(f, ct, ad);
    if one.is_some() && uniform_layouts(f, ct) {
        assert_eq!(one, segments, "one-shot and segment decryptors disagree");
    } else if segments.is_some() {
        // Cut with the first candidate's layout, the segment decryptor
        // may refuse a genuine ciphertext of another layout, but never
        // accepts anything else.
        assert_eq!(one, segments, "the segment decryptor accepted a forgery");
    }
    one
}

/// Whether every key with this ciphertext's header length has one
/// segment size (then the segment decryptor's cut is the right one).
fn uniform_layouts(f: &Fixture, ct: &[u8]) -> bool {
    let Some(&h) = ct.first() else { return true };
    let mut sizes = f
        .aead
        .key_layouts()
        .filter(|(_, l)| l.header_len() == u64::from(h))
        .map(|(_, l)| l.ciphertext_segment_size());
    let first = sizes.next();
    sizes.all(|s| Some(s) == first)
}

/// Decrypts `ct` with the segment decryptor, each segment opened in its
/// own buffer, cut by the decryptor's layout.
fn segment_decrypt(f: &Fixture, ct: &[u8], ad: &[u8]) -> Option<Vec<u8>> {
    let h = usize::from(*ct.first()?);
    let mut dec = f.aead.segment_decryptor(ct.get(..h)?, ad).ok()?;
    let l = dec.layout();
    let n = ct.len() as u64;
    let count = l.segment_count(n).ok()?;
    let mut out = Vec::new();
    for i in 0..count {
        let r = l.segment_ciphertext_range(i, n).ok()?;
        let mut seg = ct[r.start as usize..r.end as usize].to_vec();
        dec.open_segment(&mut seg, i + 1 == count).ok()?;
        out.extend_from_slice(&seg);
    }
    assert!(dec.is_done());
    Some(out)
}

fn check_layout(data: &[u8]) {
    let n = |i: usize| {
        let mut b = [0u8; 8];
        for (j, x) in data.iter().skip(i).take(8).enumerate() {
            b[j] = *x;
        }
        u64::from_le_bytes(b)
    };
    let Some(l) = SegmentLayout::new(n(0) % 64 + 1, n(8) % 5000 + 1, n(16) % 64 + 1) else {
        return;
    };
    let size = n(24) >> (n(32) % 64);
    if let Ok(pt) = l.plaintext_size(size) {
        assert!(l.ciphertext_size(pt).expect("fits") <= size);
        let (a, b) = (n(40) % (pt + 1), n(48) % (pt + 2));
        if let Ok(r) = l.ciphertext_range(a.min(b)..a.max(b), size) {
            assert!(r.bytes.end <= size && r.bytes.start <= r.bytes.end);
            assert!(r.segments.end <= l.segment_count(size).expect("valid"));
        }
    }
    if let Ok(ct) = l.ciphertext_size(size) {
        assert_eq!(l.plaintext_size(ct), Ok(size));
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(mode >> 2) + 1;
    match mode & 3 {
        // Raw bytes: never decrypt.
        0 | 1 => {
            let ad: &[u8] = if mode & 1 == 0 { b"ad" } else { b"" };
            assert!(
                decrypt_all_ways(f, rest, ad, chunk).is_none(),
                "decrypted bytes that encrypt never produced"
            );
        }
        // Edits of a genuine ciphertext.
        2 => {
            let Some((&which, edits)) = rest.split_first() else {
                return;
            };
            let mut ct = f.genuine[usize::from(which) % 4].clone();
            for e in edits.chunks(3) {
                let pos = usize::from(e[0]) | usize::from(*e.get(1).unwrap_or(&0)) << 8;
                let v = *e.get(2).unwrap_or(&1);
                match v % 4 {
                    0 if !ct.is_empty() => {
                        let i = pos % ct.len();
                        ct[i] ^= v | 1;
                    }
                    1 => ct.truncate(pos % (ct.len() + 1)),
                    2 => ct.insert(pos % (ct.len() + 1), v),
                    _ => {
                        // Swap two 16-byte blocks.
                        if ct.len() >= 32 {
                            let a = pos % (ct.len() - 15);
                            let b = usize::from(v) % (ct.len() - 15);
                            let block: Vec<u8> = ct[a..a + 16].to_vec();
                            ct.copy_within(b..b + 16, a);
                            ct[b..b + 16].copy_from_slice(&block);
                        }
                    }
                }
            }
            if let Some(pt) = decrypt_all_ways(f, &ct, b"ad", chunk) {
                assert_eq!(pt, f.plaintext, "an altered ciphertext decrypted to something else");
            }
        }
        _ => check_layout(rest),
    }
});
