//! Reliability tests with real processes: SIGKILL during writes, concurrent
//! writers, lock-protected and compare-and-swap counters, and a lock holder
//! paused with SIGSTOP past its lease.
//!
//! The child processes are this same test binary, re-executed with
//! `--exact child_process_entry --ignored` and an environment variable
//! (`ENCSTORE_FS_CHILD`) naming the role to play; see
//! [`child_process_entry`].
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use encstore_core::{Error, Storage, WriteCondition};
use encstore_fs::FsStorage;

const CHILD_ENV: &str = "ENCSTORE_FS_CHILD";
const ROOT_ENV: &str = "ENCSTORE_FS_ROOT";
/// Every child exits on its own after this long, so a failed parent never
/// leaves processes behind for long.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Checkable values: the content is derived from (key, writer, generation),
// with a header naming them, so a reader can verify every byte.

const MAGIC: &[u8; 4] = b"ESFT";
const HEADER: usize = 4 + 8 + 8 + 8;

fn seed(key: &str, writer: u64, generation: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ writer.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ generation.rotate_left(29)
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn make_value(key: &str, writer: u64, generation: u64, min: usize, max: usize) -> Vec<u8> {
    let mut state = seed(key, writer, generation);
    let len = min + (splitmix(&mut state) as usize) % (max - min + 1);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&writer.to_le_bytes());
    v.extend_from_slice(&generation.to_le_bytes());
    v.extend_from_slice(&(len as u64).to_le_bytes());
    while v.len() < len {
        let word = splitmix(&mut state).to_le_bytes();
        let take = (len - v.len()).min(8);
        v.extend_from_slice(&word[..take]);
    }
    v
}

/// Checks that `bytes` is exactly a value written for `key`, and returns its
/// (writer, generation).
fn check_value(key: &str, bytes: &[u8], min: usize, max: usize) -> (u64, u64) {
    assert!(
        bytes.len() >= HEADER && &bytes[..4] == MAGIC,
        "{key}: not a whole value (len {})",
        bytes.len()
    );
    let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    let (writer, generation, len) = (word(4), word(12), word(20));
    assert_eq!(len as usize, bytes.len(), "{key}: torn value (length)");
    let want = make_value(key, writer, generation, min, max);
    assert!(want == bytes, "{key}: torn or corrupt value (content)");
    (writer, generation)
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
    /// returns that line.
    fn expect_line(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if line.starts_with(prefix) {
                return line;
            }
        }
        panic!("child exited without printing {prefix:?}");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_success(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// A small xorshift RNG for kill timings, seeded from the OS.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        Rng(u64::from_le_bytes(b) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every `.encstore-tmp.*` file under `dir`, found by walking the disk.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let ft = entry.file_type().unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if ft.is_dir() {
            out.extend(temp_files(&entry.path()));
        } else if name.starts_with(".encstore-tmp.") {
            out.push(entry.path());
        }
    }
    out
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name).unwrap().parse().unwrap()
}

fn env_keys() -> Vec<String> {
    std::env::var("KEYS")
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// The child side.

/// Child-process entry point, not a test of its own: the tests below
/// re-execute this binary with `--exact child_process_entry --ignored` and
/// `ENCSTORE_FS_CHILD=<role>`. Without that variable (for example under
/// `cargo test -- --ignored`) it does nothing.
#[test]
#[ignore = "child-process entry point for the multi-process tests"]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let root = PathBuf::from(std::env::var(ROOT_ENV).unwrap());
    let lease = Duration::from_millis(
        std::env::var("LEASE_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5000),
    );
    let store = FsStorage::builder(&root).lease(lease).build().unwrap();
    let deadline = Instant::now() + CHILD_LIFETIME;
    runtime().block_on(async move {
        match role.as_str() {
            "torture" => child_torture(&store, deadline).await,
            "writer" => child_writer(&store).await,
            "lock-counter" => child_lock_counter(&store).await,
            "cas-counter" => child_cas_counter(&store).await,
            "holder" => child_holder(&store, deadline).await,
            "quiet-holder" => child_quiet_holder(&store, deadline).await,
            other => panic!("unknown child role {other:?}"),
        }
    });
}

/// Writes large values to the keys in a loop until killed.
async fn child_torture(store: &FsStorage, deadline: Instant) {
    let keys = env_keys();
    let base = env_u64("GEN_BASE");
    let (min, max) = (env_u64("MIN") as usize, env_u64("MAX") as usize);
    println!("STARTED");
    let mut generation = base;
    while Instant::now() < deadline {
        for key in &keys {
            let v = make_value(key, 1, generation, min, max);
            store.store(key, Bytes::from(v)).await.unwrap();
        }
        generation += 1;
    }
}

/// Writes every key `ITER` times, as writer `WRITER`.
async fn child_writer(store: &FsStorage) {
    let keys = env_keys();
    let (writer, iterations) = (env_u64("WRITER"), env_u64("ITER"));
    let (min, max) = (env_u64("MIN") as usize, env_u64("MAX") as usize);
    for generation in 0..iterations {
        for key in &keys {
            let v = make_value(key, writer, generation, min, max);
            store.store(key, Bytes::from(v)).await.unwrap();
        }
    }
    println!("DONE");
}

/// Increments `counter` `ITER` times, each under `lock("counter-lock")`.
async fn child_lock_counter(store: &FsStorage) {
    for _ in 0..env_u64("ITER") {
        let lease = store.lock("counter-lock").await.unwrap();
        let n: u64 = match store.load("counter").await {
            Ok(b) => std::str::from_utf8(&b).unwrap().parse().unwrap(),
            Err(Error::NotFound { .. }) => 0,
            Err(e) => panic!("{e}"),
        };
        store
            .store("counter", Bytes::from((n + 1).to_string()))
            .await
            .unwrap();
        store.unlock(lease).await.unwrap();
    }
    println!("DONE");
}

/// Increments `cas-counter` `ITER` times with `store_if`, retrying on
/// precondition failures; prints how many retries it needed.
async fn child_cas_counter(store: &FsStorage) {
    let mut conflicts = 0u64;
    for _ in 0..env_u64("ITER") {
        loop {
            let v = store.load_versioned("cas-counter").await.unwrap();
            let n: u64 = std::str::from_utf8(&v.value).unwrap().parse().unwrap();
            let next = Bytes::from((n + 1).to_string());
            match store
                .store_if("cas-counter", next, &WriteCondition::Matches(v.version))
                .await
            {
                Ok(_) => break,
                Err(Error::PreconditionFailed { .. }) => conflicts += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }
    println!("DONE conflicts={conflicts}");
}

/// Takes `stop-lock`, reports it, waits for the `GO` file (the parent
/// SIGSTOPs this process meanwhile), lets its renewal run, then reports
/// whether it still believes it holds the lock and what `unlock` said.
async fn child_holder(store: &FsStorage, deadline: Instant) {
    let go = PathBuf::from(std::env::var("GO").unwrap());
    let lease = store.try_lock("stop-lock").await.unwrap();
    println!("ACQUIRED");
    while !go.exists() {
        assert!(Instant::now() < deadline, "parent never said go");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give the (overdue) renewal task time to run and find the lock lost.
    tokio::time::sleep(store.lease_duration()).await;
    println!("HELD={}", lease.is_held());
    match store.unlock(lease).await {
        Ok(()) => println!("UNLOCK=ok"),
        Err(Error::LockNotHeld { .. }) => println!("UNLOCK=LockNotHeld"),
        Err(e) => println!("UNLOCK=error {e}"),
    }
}

/// Takes `clock-lock`, reports it, and keeps it (renewing) until killed.
async fn child_quiet_holder(store: &FsStorage, deadline: Instant) {
    let lease = store.try_lock("clock-lock").await.unwrap();
    println!("ACQUIRED");
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(lease);
}

// ---------------------------------------------------------------------------
// The tests.

/// A child writing large values (256 KiB to 1 MiB) to four keys, one of them
/// in freshly created directories, is SIGKILLed at random moments 55 times.
/// After each kill every key holds one complete value (every byte checked),
/// never older than the one seen before the kill; `list` shows exactly the
/// keys and no temporary file. The temporary files the kills leave behind
/// are invisible, survive a sweep while fresh, and are swept once stale.
#[test]
fn sigkill_during_writes_never_tears_a_value() {
    const ROUNDS: u64 = 55;
    const MIN: usize = 256 << 10;
    const MAX: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let keys = ["k0", "t/k1", "t/deep/er/k2", "t/k3"];
    let rt = runtime();
    let store = FsStorage::new(&root).unwrap();
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for key in keys {
        let v = make_value(key, 1, 0, MIN, MAX);
        rt.block_on(store.store(key, Bytes::from(v))).unwrap();
        last.insert(key, 0);
    }
    let mut rng = Rng::new();
    let (mut advanced, mut temps_seen) = (0, 0);
    let started = Instant::now();
    for round in 1..=ROUNDS {
        let mut child = ChildProc::spawn(
            "torture",
            &root,
            &[
                ("KEYS", keys.join(",")),
                ("GEN_BASE", (round << 32).to_string()),
                ("MIN", MIN.to_string()),
                ("MAX", MAX.to_string()),
            ],
        );
        child.expect_line("STARTED");
        std::thread::sleep(Duration::from_millis(5 + rng.below(150)));
        child.child.kill().unwrap();
        let status = child.child.wait().unwrap();
        assert!(!status.success(), "the child must die by the signal");

        for key in keys {
            let bytes = rt.block_on(store.load(key)).unwrap();
            let (writer, generation) = check_value(key, &bytes, MIN, MAX);
            assert_eq!(writer, 1);
            let prev = last[key];
            assert!(
                generation >= prev,
                "{key}: went back from generation {prev:#x} to {generation:#x}"
            );
            assert!(generation < (round + 1) << 32, "{key}: from the future");
            if generation != prev {
                advanced += 1;
            }
            last.insert(key, generation);
        }
        let mut listed = rt.block_on(store.list("", true)).unwrap();
        listed.sort();
        let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        want.sort();
        assert_eq!(listed, want, "list shows exactly the keys");
        assert_eq!(
            rt.block_on(store.list("t", false)).unwrap(),
            vec!["t/deep", "t/k1", "t/k3"]
        );
        temps_seen += temp_files(&root).len();
    }
    eprintln!(
        "{ROUNDS} kills in {:?}: {advanced} key updates observed, {temps_seen} leftover temp files seen",
        started.elapsed()
    );
    assert!(advanced > 0, "the child never managed to write");
    assert!(temps_seen > 0, "no kill ever landed mid-write");

    // Fresh leftovers are kept (a live writer may own them) ...
    let leftovers = temp_files(&root);
    rt.block_on(store.list("", true)).unwrap();
    assert_eq!(
        temp_files(&root),
        leftovers,
        "fresh temp files are not swept"
    );
    // ... and swept once older than the stale age.
    let sweeper = FsStorage::builder(&root)
        .stale_temp_age(Duration::ZERO)
        .build()
        .unwrap();
    rt.block_on(sweeper.list("", true)).unwrap();
    assert_eq!(
        temp_files(&root),
        Vec::<PathBuf>::new(),
        "stale temp files are swept"
    );
    for key in keys {
        let bytes = rt.block_on(store.load(key)).unwrap();
        check_value(key, &bytes, MIN, MAX);
    }
}

/// Three processes overwrite the same three keys 25 times each while the
/// parent keeps reading them: every read, and every final value, is one
/// whole value that one of the writers wrote.
#[test]
fn concurrent_writer_processes_never_tear_a_value() {
    const WRITERS: u64 = 3;
    const ITER: u64 = 25;
    const MIN: usize = 16 << 10;
    const MAX: usize = 128 << 10;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let keys = ["c/k0", "c/k1", "c/sub/k2"];
    let rt = runtime();
    let store = FsStorage::new(&root).unwrap();
    let children: Vec<ChildProc> = (1..=WRITERS)
        .map(|w| {
            ChildProc::spawn(
                "writer",
                &root,
                &[
                    ("KEYS", keys.join(",")),
                    ("WRITER", w.to_string()),
                    ("ITER", ITER.to_string()),
                    ("MIN", MIN.to_string()),
                    ("MAX", MAX.to_string()),
                ],
            )
        })
        .collect();
    let mut reads = 0;
    let mut writers_seen = std::collections::BTreeSet::new();
    // Read while the writers run (until they all exit).
    let mut children: Vec<ChildProc> = children;
    while children
        .iter_mut()
        .any(|c| c.child.try_wait().unwrap().is_none())
    {
        for key in keys {
            match rt.block_on(store.load(key)) {
                Ok(bytes) => {
                    let (w, g) = check_value(key, &bytes, MIN, MAX);
                    assert!((1..=WRITERS).contains(&w) && g < ITER);
                    writers_seen.insert(w);
                    reads += 1;
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    for c in children {
        c.wait_success();
    }
    for key in keys {
        let bytes = rt.block_on(store.load(key)).unwrap();
        let (w, g) = check_value(key, &bytes, MIN, MAX);
        assert!((1..=WRITERS).contains(&w), "{key}: writer {w}");
        assert_eq!(
            g,
            ITER - 1,
            "{key}: the last value is some writer's last write"
        );
    }
    assert_eq!(rt.block_on(store.list("c", true)).unwrap(), keys.to_vec());
    assert!(
        temp_files(&root).is_empty(),
        "no temp file left by clean exits"
    );
    eprintln!("{reads} concurrent reads checked; writers seen: {writers_seen:?}");
    assert!(reads > 0);
}

/// Two processes each increment a counter 100 times under `lock()`: the
/// final count is exactly 200, so the lock excluded them every time.
#[test]
fn lock_protected_counter_across_processes_loses_nothing() {
    const PROCS: u64 = 2;
    const ITER: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = FsStorage::new(&root).unwrap();
    let children: Vec<ChildProc> = (0..PROCS)
        .map(|_| ChildProc::spawn("lock-counter", &root, &[("ITER", ITER.to_string())]))
        .collect();
    for c in children {
        c.wait_success();
    }
    let rt = runtime();
    let n = rt.block_on(store.load("counter")).unwrap();
    assert_eq!(std::str::from_utf8(&n).unwrap(), (PROCS * ITER).to_string());
    // Every lock was released: it is free now.
    let lease = rt.block_on(store.try_lock("counter-lock")).unwrap();
    rt.block_on(store.unlock(lease)).unwrap();
}

/// Three processes each increment a counter 40 times with `store_if`
/// (compare-and-swap on the version, retrying on PreconditionFailed): the
/// final count is exactly 120, so no conditional write ever overwrote a
/// value it had not read.
#[test]
fn store_if_counter_across_processes_loses_nothing() {
    const PROCS: u64 = 3;
    const ITER: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let rt = runtime();
    let store = FsStorage::new(&root).unwrap();
    rt.block_on(store.store_if("cas-counter", Bytes::from("0"), &WriteCondition::Absent))
        .unwrap();
    let children: Vec<ChildProc> = (0..PROCS)
        .map(|_| ChildProc::spawn("cas-counter", &root, &[("ITER", ITER.to_string())]))
        .collect();
    let mut conflicts = Vec::new();
    for mut c in children {
        conflicts.push(c.expect_line("DONE"));
        c.wait_success();
    }
    eprintln!("{conflicts:?}");
    let n = rt.block_on(store.load("cas-counter")).unwrap();
    assert_eq!(std::str::from_utf8(&n).unwrap(), (PROCS * ITER).to_string());
}

/// A holder with a 1 s lease is SIGSTOPped right after acquiring; after
/// 1.6 s another instance takes the lock over. The holder is resumed
/// (SIGCONT): its renewal finds the lock lost, it no longer believes it
/// holds it, and its `unlock` fails with LockNotHeld without touching the
/// successor's lock file, which the successor still holds (a third instance
/// gets LockHeld) and then releases normally.
#[test]
fn paused_holder_does_not_break_its_successors_lock() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let go = dir.path().join("go");
    let lease_ms = 1000u64;
    let rt = runtime();
    let successor = FsStorage::builder(&root)
        .lease(Duration::from_millis(lease_ms))
        .build()
        .unwrap();
    let third = FsStorage::builder(&root)
        .lease(Duration::from_millis(lease_ms))
        .build()
        .unwrap();
    let lock_file = successor.lock_file_path("stop-lock").unwrap();
    let token_in_file = || -> String {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&lock_file).unwrap()).unwrap();
        json["token"].as_str().unwrap().to_owned()
    };

    let mut holder = ChildProc::spawn(
        "holder",
        &root,
        &[
            ("LEASE_MS", lease_ms.to_string()),
            ("GO", go.display().to_string()),
        ],
    );
    holder.expect_line("ACQUIRED");
    // Stop it at once: its first renewal is a third of a lease away, so it
    // is not inside a lock critical section.
    signal(holder.pid(), "-STOP");
    let stopped_token = token_in_file();
    assert!(matches!(
        rt.block_on(successor.try_lock("stop-lock")),
        Err(Error::LockHeld { .. })
    ));
    std::thread::sleep(Duration::from_millis(lease_ms * 16 / 10));

    let lease = rt.block_on(successor.try_lock("stop-lock")).unwrap();
    assert_eq!(token_in_file(), lease.token());
    assert_ne!(stopped_token, lease.token());

    std::fs::write(&go, b"go").unwrap();
    signal(holder.pid(), "-CONT");
    assert_eq!(holder.expect_line("HELD="), "HELD=false");
    assert_eq!(holder.expect_line("UNLOCK="), "UNLOCK=LockNotHeld");
    holder.wait_success();

    // The successor's lock is intact, and stays renewed.
    assert_eq!(token_in_file(), lease.token());
    assert!(lease.is_held());
    assert!(matches!(
        rt.block_on(third.try_lock("stop-lock")),
        Err(Error::LockHeld { .. })
    ));
    rt.block_on(successor.unlock(lease)).unwrap();
    assert!(!lock_file.exists());
    let lease = rt.block_on(third.try_lock("stop-lock")).unwrap();
    rt.block_on(third.unlock(lease)).unwrap();
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The lock record's expiry, and its file's inode.
fn record_expiry(lock_file: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::open(lock_file).unwrap();
    let ino = file.metadata().unwrap().ino();
    let json: serde_json::Value = serde_json::from_reader(file).unwrap();
    (json["expires_unix_ms"].as_u64().unwrap(), ino)
}

/// A past expiry with as many digits as `expiry` (so the record keeps its
/// length): 10^(digits-1) ms, in 2001 for today's 13-digit values.
fn forged_expiry(expiry: u64) -> u64 {
    10u64.pow(expiry.to_string().len() as u32 - 1)
}

/// Rewrites the expiry in the lock record to one long past, in place (same
/// inode, same length, no truncation), as a contender whose clock jumped far
/// ahead would see it. Returns the forged record's inode.
fn forge_expiry(lock_file: &Path) -> u64 {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lock_file)
        .unwrap();
    let bytes = std::fs::read(lock_file).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let expiry = json["expires_unix_ms"].as_u64().unwrap();
    let forged = text.replace(
        &format!("\"expires_unix_ms\":{expiry}"),
        &format!("\"expires_unix_ms\":{}", forged_expiry(expiry)),
    );
    assert_eq!(forged.len(), text.len());
    file.write_all_at(forged.as_bytes(), 0).unwrap();
    file.metadata().unwrap().ino()
}

/// A live holder keeps its lock whatever the record's wall-clock expiry
/// says. A holder in another process takes a lock with a 2 s lease; for 1.5
/// leases the parent keeps rewriting the expiry in the holder's current
/// record to a moment in 2001 (what a contender whose clock jumped ahead by
/// decades would see) and tries to take the lock: LockHeld every time, since
/// the holder's kernel lock is held. Then the holder is SIGKILLed right
/// after a genuine renewal: the lock is still refused while that record's
/// expiry lies ahead, and taken over once it has passed.
#[test]
fn live_holder_keeps_its_lock_whatever_the_record_says() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let lease = Duration::from_millis(2000);
    let rt = runtime();
    let acquirer = FsStorage::builder(&root).lease(lease).build().unwrap();
    let lock_file = acquirer.lock_file_path("clock-lock").unwrap();
    let mut holder = ChildProc::spawn(
        "quiet-holder",
        &root,
        &[("LEASE_MS", lease.as_millis().to_string())],
    );
    holder.expect_line("ACQUIRED");

    let started = Instant::now();
    let (mut attempts, mut refused_forged) = (0, 0);
    while started.elapsed() < lease * 3 / 2 {
        let forged_ino = forge_expiry(&lock_file);
        attempts += 1;
        match rt.block_on(acquirer.try_lock("clock-lock")) {
            Err(Error::LockHeld { .. }) => {}
            Ok(_) => panic!(
                "attempt {attempts}: took a live holder's lock because its record's expiry had passed"
            ),
            Err(e) => panic!("{e}"),
        }
        // Count the attempts that saw the forged record (no renewal between).
        let (expiry, ino) = record_expiry(&lock_file);
        if ino == forged_ino && expiry < now_ms() {
            refused_forged += 1;
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    eprintln!("{attempts} attempts, {refused_forged} of them on a forged, expired record");
    assert!(
        refused_forged >= 5,
        "too few attempts saw the forged record: {refused_forged} of {attempts}"
    );

    // Wait for a genuine renewal, then kill the holder at once.
    let (expiry, _) = loop {
        let (expiry, ino) = record_expiry(&lock_file);
        if expiry > now_ms() {
            break (expiry, ino);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    holder.child.kill().unwrap();
    assert!(!holder.child.wait().unwrap().success());
    assert!(now_ms() < expiry, "the genuine record expired already");
    assert!(
        matches!(
            rt.block_on(acquirer.try_lock("clock-lock")),
            Err(Error::LockHeld { .. })
        ),
        "a dead holder's lock is still held until its record expires"
    );
    let lease = rt.block_on(acquirer.lock("clock-lock")).unwrap();
    let taken_at = now_ms();
    assert!(
        taken_at >= expiry,
        "taken over at {taken_at}, before the dead holder's expiry {expiry}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&lock_file).unwrap()).unwrap();
    assert_eq!(json["token"].as_str().unwrap(), lease.token());
    rt.block_on(acquirer.unlock(lease)).unwrap();
}
