//! Streamed writes and reads, and ranged reads, on the filesystem backend:
//!
//! - a 1 GiB object written, read, read by ranges and rewrapped (a
//!   versioned stream piped into a conditional streamed write) in a child
//!   process whose peak resident memory (`VmHWM`) stays small, with a
//!   control child showing that the measure sees a collected body;
//! - writers SIGKILLed mid-stream: the key keeps its old value whole and no
//!   temporary file is listed;
//! - dropped and failing streamed writes: no temporary file is left on disk;
//! - ranged reads read only the range (`rchar` of `/proc/self/io`);
//! - objects replaced while streamed (the old value, whole), or modified in
//!   place by another program (the stream fails);
//! - a streamed write keeps the replaced file's mode.
//!
//! Child processes are this test binary, re-executed with
//! `--exact child_process_entry --ignored` and `ENCSTORE_FS_STREAM_CHILD`
//! naming the role.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use encstore_core::stream::Stream;
use encstore_core::{
    ByteStream, Error, Lease, ObjectInfo, Result, Storage, Version, Versioned, WriteCondition,
};
use encstore_fs::FsStorage;
use futures_util::StreamExt;

const CHILD_ENV: &str = "ENCSTORE_FS_STREAM_CHILD";
const ROOT_ENV: &str = "ENCSTORE_FS_ROOT";
/// Values are made of 1 MiB units.
const UNIT: usize = 1 << 20;
/// Peak resident memory allowed to a child streaming 1 GiB.
const MEMORY_LIMIT_KB: u64 = 64 << 10;

// ---------------------------------------------------------------------------
// Checkable values: unit `i` of the value with seed `s` is a fixed 1 MiB
// pseudo-random block whose first 8 bytes are replaced by `i ^ s`, so a
// reader can tell every unit's place and generation apart.

fn block() -> &'static [u8] {
    static BLOCK: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK.get_or_init(|| {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut v = Vec::with_capacity(UNIT);
        while v.len() < UNIT {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            v.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        v
    })
}

fn stamp(seed: u64, i: u64) -> [u8; 8] {
    (i ^ seed).to_le_bytes()
}

fn unit(seed: u64, i: u64) -> Vec<u8> {
    let mut v = block().to_vec();
    v[..8].copy_from_slice(&stamp(seed, i));
    v
}

/// The expected bytes `start..end` of the value with `seed`.
fn expected(seed: u64, start: usize, end: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(end - start);
    let mut at = start;
    while at < end {
        let i = at / UNIT;
        let u = unit(seed, i as u64);
        let stop = end.min((i + 1) * UNIT);
        out.extend_from_slice(&u[at - i * UNIT..stop - i * UNIT]);
        at = stop;
    }
    out
}

fn value(seed: u64, units: u64) -> Bytes {
    Bytes::from(expected(seed, 0, units as usize * UNIT))
}

/// A body of `units` units with `seed`, generated as it is read (one unit
/// at a time). With `pause_after`, it yields that many units and then never
/// again (it stays pending, as a stalled producer would).
struct Generated {
    seed: u64,
    next: u64,
    units: u64,
    pause_after: Option<u64>,
}

impl Generated {
    fn body(seed: u64, units: u64) -> ByteStream {
        Box::pin(Generated {
            seed,
            next: 0,
            units,
            pause_after: None,
        })
    }
}

impl Stream for Generated {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.pause_after == Some(self.next) {
            return Poll::Pending;
        }
        if self.next == self.units {
            return Poll::Ready(None);
        }
        let u = unit(self.seed, self.next);
        self.next += 1;
        Poll::Ready(Some(Ok(Bytes::from(u))))
    }
}

/// Checks a stream of arbitrary chunks against the value with `seed`, one
/// unit at a time (constant memory).
struct Checker {
    seed: u64,
    units: u64,
    buf: Vec<u8>,
}

impl Checker {
    fn new(seed: u64) -> Checker {
        Checker {
            seed,
            units: 0,
            buf: Vec::with_capacity(UNIT),
        }
    }

    fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let n = (UNIT - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.buf.len() == UNIT {
                assert!(
                    self.buf == unit(self.seed, self.units),
                    "unit {} differs from seed {:#x}'s",
                    self.units,
                    self.seed
                );
                self.units += 1;
                self.buf.clear();
            }
        }
    }

    /// The number of whole units seen; fails on a partial one.
    fn finish(self) -> u64 {
        assert!(self.buf.is_empty(), "a partial unit at the end");
        self.units
    }
}

/// Reads `body` through a [`Checker`]: the number of units.
async fn check_body(mut body: ByteStream, seed: u64) -> u64 {
    let mut c = Checker::new(seed);
    while let Some(chunk) = body.next().await {
        c.feed(&chunk.unwrap());
    }
    c.finish()
}

/// Rewrites the unit stamps of a stream from seed `from` to seed `to`
/// (copying only the chunks that hold a stamp byte).
struct Restamp {
    inner: ByteStream,
    offset: u64,
    from: u64,
    to: u64,
}

impl Stream for Restamp {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(c))) => c,
            other => return other,
        };
        let (start, end) = (self.offset, self.offset + item.len() as u64);
        self.offset = end;
        let unit = UNIT as u64;
        let mut out: Option<BytesMut> = None;
        let mut u = start / unit;
        while u * unit < end {
            for b in 0..8u64 {
                let at = u * unit + b;
                if (start..end).contains(&at) {
                    let buf = out.get_or_insert_with(|| BytesMut::from(&item[..]));
                    let i = (at - start) as usize;
                    assert_eq!(buf[i], stamp(self.from, u)[b as usize], "stamp of unit {u}");
                    buf[i] = stamp(self.to, u)[b as usize];
                }
            }
            u += 1;
        }
        Poll::Ready(Some(Ok(out.map_or(item, BytesMut::freeze))))
    }
}

/// A store that implements only the required methods of [`Storage`], by
/// delegating to an [`FsStorage`]: its streamed methods are the trait's
/// defaults, which hold the whole value in memory.
#[derive(Debug)]
struct Defaults(FsStorage);

#[async_trait]
impl Storage for Defaults {
    async fn store(&self, key: &str, value: Bytes) -> Result<()> {
        self.0.store(key, value).await
    }
    async fn store_if(&self, key: &str, value: Bytes, c: &WriteCondition) -> Result<Version> {
        self.0.store_if(key, value, c).await
    }
    async fn load_versioned(&self, key: &str) -> Result<Versioned> {
        self.0.load_versioned(key).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &str, recursive: bool) -> Result<Vec<String>> {
        self.0.list(prefix, recursive).await
    }
    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        self.0.stat(key).await
    }
    async fn try_lock(&self, name: &str) -> Result<Lease> {
        self.0.try_lock(name).await
    }
    async fn unlock(&self, lease: Lease) -> Result<()> {
        self.0.unlock(lease).await
    }
    fn lease_duration(&self) -> Duration {
        self.0.lease_duration()
    }
}

// ---------------------------------------------------------------------------
// Process plumbing.

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct ChildProc {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl ChildProc {
    fn spawn(role: &str, root: &Path, env: &[(&str, String)]) -> ChildProc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process_entry",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(CHILD_ENV, role)
            .env(ROOT_ENV, root)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        ChildProc { child, lines }
    }

    /// Reads the child's stdout until a line starting with `prefix`, and
    /// returns the rest of that line.
    fn expect_line(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
        panic!("child exited without printing {prefix:?}");
    }

    fn expect_u64(&mut self, prefix: &str) -> u64 {
        self.expect_line(prefix).trim().parse().unwrap()
    }

    fn wait_success(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

/// Every `.encstore-tmp.*` file under `dir`, with its size.
fn temp_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let ft = entry.file_type().unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if ft.is_dir() {
            out.extend(temp_files(&entry.path()));
        } else if name.starts_with(".encstore-tmp.") {
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((entry.path(), len));
        }
    }
    out
}

/// A field of `/proc/self/status` or `/proc/self/io`.
fn proc_field(file: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("{file} has no {field}"));
    line.trim().trim_end_matches(" kB").trim().parse().unwrap()
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------
// The child side.

/// Child-process entry point, not a test of its own (see the module docs).
/// Without `ENCSTORE_FS_STREAM_CHILD` it does nothing.
#[test]
#[ignore = "child-process entry point for the streaming tests"]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let root = PathBuf::from(std::env::var(ROOT_ENV).unwrap());
    let store = FsStorage::new(&root).unwrap();
    runtime().block_on(async move {
        match role.as_str() {
            "big" => child_big(&store).await,
            "collect" => child_collect(store).await,
            "stream-writer" => child_stream_writer(&store).await,
            "range-io" => child_range_io(&store).await,
            other => panic!("unknown child role {other:?}"),
        }
    });
}

const SEED_A: u64 = 0xa11c_e000_0000_0001;
const SEED_B: u64 = 0xb0b0_0000_0000_0002;

/// Streams `UNITS` units in and out of the store, checking every byte, and
/// prints its peak resident memory: a streamed write, a streamed read,
/// ranged reads, a rewrap (versioned read piped into a conditional write),
/// and a final streamed read of the rewrapped value.
async fn child_big(store: &FsStorage) {
    let units = env_u64("UNITS");
    let size = units * UNIT as u64;
    let key = "big/object";
    store
        .store_stream(key, Generated::body(SEED_A, units))
        .await
        .unwrap();
    assert_eq!(store.stat(key).await.unwrap().size, size);

    let s = store.load_stream(key).await.unwrap();
    assert_eq!(s.size, size);
    assert_eq!(check_body(s.body, SEED_A).await, units);

    let half = size / 2;
    for r in [
        0..4096,
        half - 3..half + 4093,
        size - 100..size + 100,
        size..size,
    ] {
        let got = store.load_range(key, r.clone()).await.unwrap();
        assert_eq!(got.size, size);
        let want = expected(SEED_A, r.start as usize, r.end.min(size) as usize);
        assert!(got.bytes == want, "load_range {r:?}");
    }

    let vs = store.load_stream_versioned(key).await.unwrap();
    assert_eq!(vs.stream.size, size);
    let body: ByteStream = Box::pin(Restamp {
        inner: vs.stream.body,
        offset: 0,
        from: SEED_A,
        to: SEED_B,
    });
    store
        .store_stream_if(key, body, &WriteCondition::Matches(vs.version))
        .await
        .unwrap();

    let s = store.load_stream(key).await.unwrap();
    assert_eq!(check_body(s.body, SEED_B).await, units);
    println!("VMHWM={}", proc_field("/proc/self/status", "VmHWM:"));
}

/// The control: the same streamed write of `UNITS` units through the
/// trait's default implementation (which collects the body), then its peak
/// resident memory.
async fn child_collect(store: FsStorage) {
    let units = env_u64("UNITS");
    let store = Defaults(store);
    store
        .store_stream("big/object", Generated::body(SEED_A, units))
        .await
        .unwrap();
    println!("VMHWM={}", proc_field("/proc/self/status", "VmHWM:"));
}

/// Writes `KEY` from an endless body (`store_stream`, or `store_stream_if`
/// at the current version with `MODE=cas`). With `PAUSE=N`, the body stalls
/// after N units; otherwise it goes on (up to 4 GiB) until the process is
/// killed.
async fn child_stream_writer(store: &FsStorage) {
    let key = std::env::var("KEY").unwrap();
    let pause = std::env::var("PAUSE").ok().map(|p| p.parse().unwrap());
    let body: ByteStream = Box::pin(Generated {
        seed: SEED_B,
        next: 0,
        units: 4096,
        pause_after: pause,
    });
    println!("STARTED");
    let r = if std::env::var("MODE").unwrap() == "cas" {
        let v = store.load_versioned(&key).await.unwrap().version;
        store
            .store_stream_if(&key, body, &WriteCondition::Matches(v))
            .await
            .map(|_| ())
    } else {
        store.store_stream(&key, body).await
    };
    panic!("the endless write returned: {r:?}");
}

/// Stores 64 units, then prints how many bytes the process read
/// (`rchar`) for a 4 KiB ranged read in the middle, for `load_head` of 5
/// bytes, and for a whole `load`.
async fn child_range_io(store: &FsStorage) {
    let units = 64u64;
    store
        .store_stream("r", Generated::body(SEED_A, units))
        .await
        .unwrap();
    let rchar = || proc_field("/proc/self/io", "rchar:");
    let mid = 32 * UNIT as u64 - 100;

    let before = rchar();
    let got = store.load_range("r", mid..mid + 4096).await.unwrap();
    let range_read = rchar() - before;
    assert!(got.bytes == expected(SEED_A, mid as usize, mid as usize + 4096));
    assert_eq!(got.size, units * UNIT as u64);

    let before = rchar();
    let head = store.load_head("r", 5).await.unwrap();
    let head_read = rchar() - before;
    assert_eq!(&head[..], &expected(SEED_A, 0, 5)[..]);

    let before = rchar();
    let all = store.load("r").await.unwrap();
    let load_read = rchar() - before;
    assert_eq!(all.len(), 64 * UNIT);
    println!("RANGE={range_read}");
    println!("HEAD={head_read}");
    println!("LOAD={load_read}");
}

// ---------------------------------------------------------------------------
// The tests.

/// A child process writes 1 GiB with `store_stream`, reads it back with
/// `load_stream` and `load_range` (every byte checked), rewraps it (a
/// versioned stream piped through a transformation into `store_stream_if`
/// at that version) and reads the result back: its peak resident memory
/// stays under 64 MiB. A control child writing only 256 MiB through the
/// trait's default (collecting) implementation peaks above 256 MiB, so the
/// measure does see a body held in memory.
#[test]
fn gib_streams_through_in_constant_memory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    FsStorage::new(&root).unwrap();

    let mut child = ChildProc::spawn("big", &root, &[("UNITS", "1024".into())]);
    let peak = child.expect_u64("VMHWM=");
    child.wait_success();
    eprintln!("streaming 1 GiB: peak RSS {peak} kB");
    assert!(
        peak < MEMORY_LIMIT_KB,
        "streaming 1 GiB peaked at {peak} kB of resident memory"
    );

    let control_root = dir.path().join("control");
    FsStorage::new(&control_root).unwrap();
    let mut child = ChildProc::spawn("collect", &control_root, &[("UNITS", "256".into())]);
    let control = child.expect_u64("VMHWM=");
    child.wait_success();
    eprintln!("collecting 256 MiB: peak RSS {control} kB");
    assert!(
        control > 256 << 10,
        "the default implementation collected 256 MiB yet peaked at {control} kB"
    );
}

/// A child writing a large stream to a key that holds a 3 MiB value is
/// SIGKILLed mid-stream: once stalled after 24 MiB (`store_stream`), once
/// while it is still writing (`store_stream_if` at the current version).
/// Each time its temporary file held at least 8 MiB when the kill landed;
/// afterwards the key holds its old value whole (every byte checked), its
/// version is unchanged, `list` shows only the key, and the leftover
/// temporary files are swept once stale.
#[test]
fn sigkill_mid_stream_keeps_the_old_value_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let rt = runtime();
    let store = FsStorage::new(&root).unwrap();
    let key = "dir/big";
    rt.block_on(store.store(key, value(SEED_A, 3))).unwrap();
    let version = rt.block_on(store.load_versioned(key)).unwrap().version;

    for (mode, pause) in [("plain", Some(24)), ("cas", None)] {
        let mut env = vec![("KEY", key.to_owned()), ("MODE", mode.to_owned())];
        if let Some(p) = pause {
            env.push(("PAUSE", p.to_string()));
        }
        // The temporary files already there (the previous round's) are
        // listed before the child starts: listed after, a child that had
        // already created its own would have it counted as a leftover.
        let leftovers: Vec<PathBuf> = temp_files(&root).into_iter().map(|(p, _)| p).collect();
        let mut child = ChildProc::spawn("stream-writer", &root, &env);
        child.expect_line("STARTED");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let staged = temp_files(&root)
                .into_iter()
                .any(|(p, len)| !leftovers.contains(&p) && len >= 8 << 20);
            if staged {
                break;
            }
            assert!(Instant::now() < deadline, "the child never wrote 8 MiB");
            assert!(
                child.child.try_wait().unwrap().is_none(),
                "the child exited"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        child.child.kill().unwrap();
        assert!(!child.child.wait().unwrap().success());

        let now = rt.block_on(store.load_versioned(key)).unwrap();
        let mut c = Checker::new(SEED_A);
        c.feed(&now.value);
        assert_eq!(c.finish(), 3, "{mode}: the old value, whole");
        assert_eq!(now.version, version, "{mode}: the version did not change");
        assert_eq!(rt.block_on(store.list("", true)).unwrap(), vec![key]);
        assert_eq!(rt.block_on(store.list("dir", false)).unwrap(), vec![key]);
    }
    assert_eq!(temp_files(&root).len(), 2, "each kill left its temp file");
    let sweeper = FsStorage::builder(&root)
        .stale_temp_age(Duration::ZERO)
        .build()
        .unwrap();
    rt.block_on(sweeper.list("", true)).unwrap();
    assert!(temp_files(&root).is_empty(), "stale temp files are swept");
    let mut c = Checker::new(SEED_A);
    c.feed(&rt.block_on(store.load(key)).unwrap());
    assert_eq!(c.finish(), 3);
}

/// A streamed write whose task is aborted after its temporary file holds
/// 4 MiB (the body then waits for more) leaves no temporary file on disk
/// the moment the abort completes, and the key's value and version
/// unchanged; likewise for `store_stream_if`, and for a new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_stream_write_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = FsStorage::new(&root).unwrap();
    store.store("k", Bytes::from_static(b"old")).await.unwrap();
    let version = store.load_versioned("k").await.unwrap().version;
    for (key, cond) in [
        ("k", None),
        ("k", Some(WriteCondition::Matches(version.clone()))),
        ("new/k", Some(WriteCondition::Absent)),
    ] {
        let body: ByteStream = Box::pin(Generated {
            seed: SEED_A,
            next: 0,
            units: 100,
            pause_after: Some(4),
        });
        let task = {
            let store = store.clone();
            tokio::spawn(async move {
                match cond {
                    None => store.store_stream(key, body).await.map(|_| ()),
                    Some(c) => store.store_stream_if(key, body, &c).await.map(|_| ()),
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !temp_files(&root).iter().any(|(_, len)| *len == 4 << 20) {
            assert!(Instant::now() < deadline, "the write never staged 4 MiB");
            if task.is_finished() {
                panic!("the write ended: {:?}", task.await);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(
            temp_files(&root),
            Vec::new(),
            "{key}: the temp file is gone"
        );
        let now = store.load_versioned("k").await.unwrap();
        assert_eq!((&now.value[..], &now.version), (&b"old"[..], &version));
        assert!(!store.exists("new/k").await.unwrap());
    }
}

/// A body that fails after 3 MiB: the write returns the body's error, and
/// by then no temporary file is left on disk; the key keeps its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_stream_write_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = FsStorage::new(&root).unwrap();
    store.store("k", Bytes::from_static(b"old")).await.unwrap();
    for cas in [false, true] {
        let body: ByteStream = Box::pin(Generated::body(SEED_A, 3).chain(
            futures_util::stream::iter([Err(Error::not_found("the producer's own error"))]),
        ));
        let r = if cas {
            let v = store.load_versioned("k").await.unwrap().version;
            store
                .store_stream_if("k", body, &WriteCondition::Matches(v))
                .await
                .map(|_| ())
        } else {
            store.store_stream("k", body).await
        };
        match r {
            Err(Error::NotFound { key }) => assert_eq!(key, "the producer's own error"),
            other => panic!("expected the body's error, got {other:?}"),
        }
        assert_eq!(temp_files(&root), Vec::new());
        assert_eq!(&store.load("k").await.unwrap()[..], b"old");
    }
}

/// A streamed write replacing an object keeps its mode (0640 here), and a
/// streamed write of a new object gets the store's (0600 under a ROOT the
/// store created).
#[tokio::test]
async fn stream_write_keeps_the_replaced_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::new(dir.path().join("root")).unwrap();
    store.store("k", Bytes::from_static(b"old")).await.unwrap();
    let path = store.root().join("k");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    store
        .store_stream("k", Generated::body(SEED_A, 2))
        .await
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&path), 0o640);
    store
        .store_stream("fresh", Generated::body(SEED_A, 1))
        .await
        .unwrap();
    assert_eq!(mode(&store.root().join("fresh")), 0o600);
}

/// A ranged read of 4 KiB in the middle of a 64 MiB object makes the
/// process read only about that much (`rchar`), as does `load_head` of 5
/// bytes; a whole `load` reads all 64 MiB, so the counter does see reads.
#[test]
fn ranged_reads_read_only_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    FsStorage::new(&root).unwrap();
    let mut child = ChildProc::spawn("range-io", &root, &[]);
    let range = child.expect_u64("RANGE=");
    let head = child.expect_u64("HEAD=");
    let load = child.expect_u64("LOAD=");
    child.wait_success();
    eprintln!("bytes read: range {range}, head {head}, load {load}");
    assert!(
        (4096..64 << 10).contains(&range),
        "a 4 KiB range read {range} bytes"
    );
    assert!(
        (5..64 << 10).contains(&head),
        "load_head(5) read {head} bytes"
    );
    assert!(load >= 64 << 20, "a whole load read only {load} bytes");
}

/// An object replaced (by `store`, a rename) after its stream was opened
/// and its first chunk read: the stream goes on reading the old file and
/// yields the old value whole, for `load_stream` and
/// `load_stream_versioned` alike; the new value is in place afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_while_streamed_yields_the_old_value_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::new(dir.path().join("root")).unwrap();
    for versioned in [false, true] {
        store.store("k", value(SEED_A, 4)).await.unwrap();
        let mut s = if versioned {
            store.load_stream_versioned("k").await.unwrap().stream
        } else {
            store.load_stream("k").await.unwrap()
        };
        let mut c = Checker::new(SEED_A);
        c.feed(&s.body.next().await.unwrap().unwrap());
        store.store("k", value(SEED_B, 4)).await.unwrap();
        while let Some(chunk) = s.body.next().await {
            c.feed(&chunk.unwrap());
        }
        assert_eq!(c.finish(), 4);
        let mut c = Checker::new(SEED_B);
        c.feed(&store.load("k").await.unwrap());
        assert_eq!(c.finish(), 4);
    }
}

/// Drains `body`: the bytes before the error, and the error.
async fn drain_to_error(mut body: ByteStream) -> (usize, Error) {
    let mut n = 0;
    while let Some(item) = body.next().await {
        match item {
            Ok(c) => n += c.len(),
            Err(e) => {
                assert!(body.next().await.is_none(), "nothing after the error");
                return (n, e);
            }
        }
    }
    panic!("the stream ended without an error after {n} bytes");
}

fn assert_modified_in_place(e: &Error) {
    match e {
        Error::Backend {
            backend: "fs",
            source,
            ..
        } => assert!(source.to_string().contains("modified in place"), "{source}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

/// Another program modifying an object in place while it is streamed (which
/// encstore never does): the stream fails instead of ending normally, and
/// never yields the whole size. Truncated: `load_stream` fails. The same
/// bytes rewritten with other content (same size): a versioned stream fails
/// on the content hash, and a plain one on the changed times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modified_in_place_fails_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::new(dir.path().join("root")).unwrap();
    let path = store.root().join("k");
    let size = 4 * UNIT;

    store.store("k", value(SEED_A, 4)).await.unwrap();
    let mut s = store.load_stream("k").await.unwrap();
    s.body.next().await.unwrap().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(UNIT as u64)
        .unwrap();
    let (n, e) = drain_to_error(s.body).await;
    assert!(n < size, "truncated: yielded {n} bytes");
    assert_modified_in_place(&e);

    for versioned in [true, false] {
        store.store("k", value(SEED_A, 4)).await.unwrap();
        // Past the filesystem's timestamp granularity, so that the times
        // of the in-place write differ from the store's.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut s = if versioned {
            store.load_stream_versioned("k").await.unwrap().stream
        } else {
            store.load_stream("k").await.unwrap()
        };
        s.body.next().await.unwrap().unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&unit(SEED_B, 2), 2 * UNIT as u64).unwrap();
        drop(f);
        let (n, e) = drain_to_error(s.body).await;
        assert!(n < size, "versioned={versioned}: yielded {n} bytes");
        assert_modified_in_place(&e);
    }
}

/// The version `store_stream_if` returns is the one `load_versioned` and
/// `load_stream_versioned` then report, and it differs from the version of
/// the same bytes written again (a new file).
#[tokio::test]
async fn streamed_versions_agree_with_loaded_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStorage::new(dir.path().join("root")).unwrap();
    let v1 = store
        .store_stream_if("k", Generated::body(SEED_A, 3), &WriteCondition::Absent)
        .await
        .unwrap();
    assert_eq!(store.load_versioned("k").await.unwrap().version, v1);
    assert_eq!(store.load_stream_versioned("k").await.unwrap().version, v1);
    let v2 = store
        .store_stream_if(
            "k",
            Generated::body(SEED_A, 3),
            &WriteCondition::Matches(v1.clone()),
        )
        .await
        .unwrap();
    assert_ne!(v1, v2, "the same bytes written again get a new version");
    assert_eq!(store.load_stream_versioned("k").await.unwrap().version, v2);
}
