//! Streaming AEAD over real files: a ciphertext written to a tokio file
//! with `EncryptingWriter`, read back by byte ranges through a
//! `RangedRead` over the file (positioned reads), and by the async
//! `DecryptingReader`; a truncated file is refused at its end.
#![allow(clippy::unwrap_used)]

use std::io::SeekFrom;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use encstore_tink::streaming::RangedRead;
use encstore_tink::{Keyset, StreamingError, templates};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::Mutex;

/// A tokio file read by ranges (seek + read_exact), counting the bytes
/// it serves.
struct FileRanges {
    file: Mutex<tokio::fs::File>,
    size: u64,
    served: AtomicU64,
}

impl FileRanges {
    async fn open(path: &std::path::Path) -> Self {
        let file = tokio::fs::File::open(path).await.unwrap();
        let size = file.metadata().await.unwrap().len();
        FileRanges {
            file: Mutex::new(file),
            size,
            served: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl RangedRead for FileRanges {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read_range(&self, range: Range<u64>) -> std::io::Result<Bytes> {
        let mut f = self.file.lock().await;
        f.seek(SeekFrom::Start(range.start)).await?;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        f.read_exact(&mut buf).await?;
        self.served.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(Bytes::from(buf))
    }
}

fn pt(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn file_round_trip_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["AES256_GCM_HKDF_4KB", "AES128_CTR_HMAC_SHA256_1MB"] {
        let s = Keyset::generate(&templates::by_name(name).unwrap())
            .unwrap()
            .streaming_aead()
            .unwrap();
        let path = dir.path().join(name);
        let data = pt(3 * (1 << 20) + 12_345);
        let file = tokio::fs::File::create(&path).await.unwrap();
        let mut w = s.encrypting_writer(file, b"obj").unwrap();
        for chunk in data.chunks(70_001) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
        let size = tokio::fs::metadata(&path).await.unwrap().len();
        assert_eq!(size, s.layout().ciphertext_size(data.len() as u64).unwrap());

        // Async reader over the file.
        let f = tokio::fs::File::open(&path).await.unwrap();
        let mut out = Vec::new();
        s.decrypting_reader(f, b"obj")
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, data, "{name}");

        // Ranges: only the covering segments are read from the file.
        let src = Arc::new(FileRanges::open(&path).await);
        let r = s.open_ranged(Arc::clone(&src), b"obj").await.unwrap();
        assert_eq!(r.plaintext_size(), data.len() as u64);
        let header = src.served.load(Ordering::Relaxed);
        assert_eq!(header, 40, "open reads the header only");
        for (a, b) in [
            (0u64, 10u64),
            (5000, 9000),
            (1 << 20, (1 << 20) + 1),
            (data.len() as u64 - 100, data.len() as u64),
        ] {
            let cr = r.ciphertext_range(a..b).unwrap();
            let before = src.served.load(Ordering::Relaxed);
            let got = r.read_range(a..b).await.unwrap();
            assert_eq!(got, data[a as usize..b as usize], "{name} {a}..{b}");
            assert_eq!(
                src.served.load(Ordering::Relaxed) - before,
                cr.bytes.end - cr.bytes.start,
                "{name} {a}..{b}: exactly the covering segments"
            );
            assert!(cr.segments.end - cr.segments.start <= 2);
        }
    }
}

#[tokio::test]
async fn truncated_file_fails_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = Keyset::generate(&templates::by_name("AES128_GCM_HKDF_4KB").unwrap())
        .unwrap()
        .streaming_aead()
        .unwrap();
    let data = pt(50_000);
    let ct = s.encrypt(&data, b"obj").unwrap();
    let l = s.layout();
    let cut = l.segment_ciphertext_range(5, ct.len() as u64).unwrap().end;
    let path = dir.path().join("cut");
    tokio::fs::write(&path, &ct[..cut as usize]).await.unwrap();
    // The async reader delivers the genuine segments, then fails.
    let f = tokio::fs::File::open(&path).await.unwrap();
    let mut out = Vec::new();
    let e = s
        .decrypting_reader(f, b"obj")
        .read_to_end(&mut out)
        .await
        .unwrap_err();
    assert_eq!(
        e.get_ref().unwrap().downcast_ref::<StreamingError>(),
        Some(&StreamingError::SegmentAuthentication { segment: 5 })
    );
    assert_eq!(out, data[..l.segment_plaintext_range(5).start as usize]);
    // Random access: the middle is genuine, the end is refused.
    let r = s
        .open_ranged(FileRanges::open(&path).await, b"obj")
        .await
        .unwrap();
    assert_eq!(r.read_range(100..200).await.unwrap(), data[100..200]);
    let n = r.plaintext_size();
    assert!(r.read_range(n - 1..n).await.is_err());
    assert!(r.verified_plaintext_size().await.is_err());
}
