//! The Parquet crate (a client nobody here wrote) through
//! EncryptedObjectStore: its async writer writes a multi-row-group file,
//! and `ParquetObjectReader` reads back one column of one row group with a
//! projection. The bytes fetched from the inner store are a small fraction
//! of the object (range reads of the covering segments), and nothing
//! stored is plaintext. Over SeaweedFS (skipped without it, failing under
//! `ENCSTORE_REQUIRE_SERVICES=1`) and over the in-memory store.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::{Counting, keys_with, unique};
use encstore_object_store::EncryptedObjectStore;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
// parquet 60 deprecates ParquetObjectReader (in favour of hand-written
// `AsyncFileReader`s); it is still the reader the object_store ecosystem
// ships, and the one the issue names.
use parquet::arrow::ProjectionMask;
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::file::properties::WriterProperties;

const ROWS_PER_GROUP: usize = 131_072;
const GROUPS: usize = 8;

fn value_of(i: usize) -> f64 {
    (i as f64) * 0.5 + ((i * 7919) % 1000) as f64
}

fn batch(schema: &Arc<Schema>, start: usize, n: usize) -> RecordBatch {
    let ids: Int64Array = (start..start + n).map(|i| i as i64).collect();
    let values: Float64Array = (start..start + n).map(value_of).collect();
    let names: StringArray = (start..start + n)
        .map(|i| Some(format!("row-{i}")))
        .collect();
    let payload: Int64Array = (start..start + n)
        .map(|i| (i as i64).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as i64))
        .collect();
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(ids),
            Arc::new(values),
            Arc::new(names),
            Arc::new(payload),
        ],
    )
    .unwrap()
}

/// Writes the file through EncryptedObjectStore over `inner`, reads one
/// column of one row group back, and checks the values, the bytes fetched
/// and the ciphertext.
#[allow(deprecated)]
async fn roundtrip(inner: Arc<dyn ObjectStore>) {
    let counting = Arc::new(Counting::new(inner.clone()));
    // 1 MiB segments: the production template.
    let (_, _, keys) = keys_with("AES256_GCM_HKDF_1MB");
    let store: Arc<dyn ObjectStore> = Arc::new(EncryptedObjectStore::new(counting.clone(), keys));
    let path = Path::from("tables/events/part-0.parquet");

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("payload", DataType::Int64, false),
    ]));
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        .set_dictionary_enabled(false)
        .build();
    // object_store's BufWriter (what parquet 60 recommends): a multipart
    // upload through EncryptedObjectStore.
    let writer = object_store::buffered::BufWriter::new(store.clone(), path.clone());
    let mut w = AsyncArrowWriter::try_new(writer, schema.clone(), Some(props)).unwrap();
    let step = 65_536;
    for start in (0..ROWS_PER_GROUP * GROUPS).step_by(step) {
        w.write(&batch(&schema, start, step)).await.unwrap();
    }
    w.close().await.unwrap();

    // The object's plaintext size, as head and list report it.
    let meta = store.head(&path).await.unwrap();
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, meta.size);
    let stored = inner.head(&path).await.unwrap().size;
    assert!(
        stored > meta.size && meta.size > 16 << 20,
        "{stored} {}",
        meta.size
    );

    // One column ("value") of one row group (3), with a projection.
    counting.reset();
    let reader = ParquetObjectReader::new(store.clone(), path.clone()).with_file_size(meta.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await.unwrap();
    assert_eq!(builder.metadata().num_row_groups(), GROUPS);
    let mask = ProjectionMask::roots(builder.parquet_schema(), [1]);
    let stream = builder
        .with_projection(mask)
        .with_row_groups(vec![3])
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    let mut n = 0;
    for b in &batches {
        assert_eq!(b.num_columns(), 1);
        let col = b.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..col.len() {
            assert_eq!(col.value(i), value_of(3 * ROWS_PER_GROUP + n + i));
        }
        n += col.len();
    }
    assert_eq!(n, ROWS_PER_GROUP);
    let fetched = counting.bytes();
    eprintln!(
        "parquet projection read: {fetched} of {stored} stored bytes ({:.1}%), {} GETs",
        100.0 * fetched as f64 / stored as f64,
        counting.gets()
    );
    // The footer's segment and the column chunk's (1 MiB) segments: well
    // under a fifth of the 36 MiB object, never a whole download.
    assert!(fetched * 5 < stored, "fetched {fetched} of {stored}");

    // The same read without a known size (a suffix read of the footer).
    counting.reset();
    let reader = ParquetObjectReader::new(store.clone(), path.clone());
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await.unwrap();
    let mask = ProjectionMask::roots(builder.parquet_schema(), [0]);
    let batches: Vec<RecordBatch> = builder
        .with_projection(mask)
        .with_row_groups(vec![GROUPS - 1])
        .build()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let first = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(first.value(0), ((GROUPS - 1) * ROWS_PER_GROUP) as i64);
    assert!(counting.bytes() * 5 < stored, "{}", counting.bytes());

    // Nothing stored is plaintext: no Parquet magic, no row text.
    let raw = inner.get(&path).await.unwrap().bytes().await.unwrap();
    assert!(!raw.starts_with(b"PAR1") && !raw.ends_with(b"PAR1"));
    assert!(!raw.windows(10).any(|w| w == b"row-123456"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_roundtrip_over_seaweedfs() {
    let prefix = unique("parquet");
    let Some((s3, _)) = common::s3("parquet_roundtrip_over_seaweedfs", &prefix) else {
        return;
    };
    let inner: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(s3, prefix.as_str()));
    roundtrip(inner.clone()).await;
    inner
        .delete(&Path::from("tables/events/part-0.parquet"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_roundtrip_over_memory() {
    roundtrip(Arc::new(object_store::memory::InMemory::new())).await;
}
