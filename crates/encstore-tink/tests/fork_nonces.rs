//! Fork safety of nonces, with a real `fork()`.
//!
//! A forked child starts with a copy of its parent's memory. A random nonce
//! generator that keeps its state in ordinary process memory therefore hands
//! the child the very nonces the parent is about to use, and two AES-GCM
//! messages under one key and one nonce leak their XOR and the GHASH key.
//! These scenarios fork for real (the `fork` crate's safe `fork()`; no
//! `unsafe` here), let parent, child and grandchild encrypt with the same
//! keyset, and check that no nonce appears twice among all of them:
//!
//! 1. the main thread forks; the child forks a grandchild; parent, child and
//!    grandchild keep encrypting;
//! 2. a spawned thread forks while three other threads encrypt;
//! 3. the control: the same check applied to `rand`'s `ThreadRng`, a
//!    user-space generator documented as *not* reseeding on fork, must find
//!    repeats, which shows that the check catches the failure it is for.
//!
//! Every process draws a few nonces before forking, so the generator state
//! the child inherits is warm. The child reports its nonces through a pipe
//! (13-byte records, written atomically) and exits.
//!
//! This is its own binary (`harness = false`): it forks only from threads it
//! started itself, never from libtest's. It prints `N passed, M failed`.

#![allow(missing_docs)]

#[cfg(unix)]
fn main() {
    unix::main();
}

#[cfg(not(unix))]
fn main() {
    println!("SKIPPED: no fork() on this platform");
}

#[cfg(unix)]
mod unix {
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use encstore_core::Aead;
    use encstore_tink::{Keyset, KeysetAead, primitives, templates};
    use rand::Rng;

    /// Nonces each process draws after the fork.
    const AFTER: usize = 64;
    /// Nonces each process draws before forking (warm state).
    const BEFORE: usize = 16;
    /// Most nonces a busy thread of scenario 2 draws.
    const BUSY_MAX: usize = 20_000;
    /// Record tags in the pipe.
    const CHILD: u8 = 1;
    const GRANDCHILD: u8 = 2;
    const DONE: u8 = 0xff;

    type Nonce = [u8; 12];

    /// A source of nonces under test.
    trait Source: Sync {
        fn draw(&self) -> Nonce;
    }

    /// encstore: the nonce of a real AES-256-GCM keyset encryption
    /// (ciphertext = 5-byte TINK prefix ‖ 12-byte IV ‖ ct ‖ tag).
    struct Encstore(KeysetAead);

    impl Source for Encstore {
        fn draw(&self) -> Nonce {
            let ct = self.0.encrypt(b"m", b"fork").expect("encrypts");
            ct[5..17].try_into().expect("12-byte IV")
        }
    }

    /// The control: `rand::rng()` (ChaCha12 in thread-local process
    /// memory, not reseeded on fork).
    struct RandThreadRng;

    impl Source for RandThreadRng {
        fn draw(&self) -> Nonce {
            let mut n = [0u8; 12];
            rand::rng().fill_bytes(&mut n);
            n
        }
    }

    /// Which process drew each nonce, keyed by nonce; a repeat is a nonce
    /// with more than one origin.
    #[derive(Default)]
    struct Seen {
        origins: HashMap<Nonce, Vec<&'static str>>,
        counts: HashMap<&'static str, usize>,
    }

    impl Seen {
        fn add(&mut self, origin: &'static str, n: Nonce) {
            self.origins.entry(n).or_default().push(origin);
            *self.counts.entry(origin).or_default() += 1;
        }

        /// Descriptions of every repeated nonce.
        fn repeats(&self) -> Vec<String> {
            self.origins
                .values()
                .filter(|o| o.len() > 1)
                .map(|o| o.join(" & "))
                .collect()
        }

        fn count(&self, origin: &str) -> usize {
            self.counts.get(origin).copied().unwrap_or(0)
        }
    }

    fn draw_n(source: &dyn Source, n: usize) -> Vec<Nonce> {
        (0..n).map(|_| source.draw()).collect()
    }

    fn write_records(w: &mut impl Write, tag: u8, nonces: &[Nonce]) {
        for n in nonces {
            let mut rec = [0u8; 13];
            rec[0] = tag;
            rec[1..].copy_from_slice(n);
            // One write of 13 bytes (< PIPE_BUF) per record: atomic, so
            // the child's and the grandchild's records never interleave.
            w.write_all(&rec).expect("pipe write");
        }
    }

    /// Runs `body` in a forked child and exits there (status 0 if it
    /// returned, 101 if it panicked); never returns in the child.
    fn in_child(body: impl FnOnce()) -> ! {
        let ok = catch_unwind(AssertUnwindSafe(body)).is_ok();
        let code = if ok { 0 } else { 101 };
        // Under the `fips` provider every thread's DRBG state is registered
        // in AWS-LC, whose exit-time clean-up (`rand_thread_local_state_clear_all`,
        // an atexit destructor) takes a lock that another thread of the
        // parent may have held at the fork: `exit()` in such a child can
        // hang forever (seen with aws-lc-fips-sys 0.14.4; `docs/threat-model.md`).
        // The child leaves by exec instead, running no exit handlers; what
        // this test checks, the nonces, was already written.
        #[cfg(feature = "fips")]
        {
            use std::os::unix::process::CommandExt;
            let _ = std::process::Command::new("/bin/sh")
                .args(["-c", &format!("exit {code}")])
                .exec();
        }
        std::process::exit(code);
    }

    /// Forks; the child runs `child` and exits. Returns the child's pid.
    fn fork_child(child: impl FnOnce()) -> i32 {
        match fork::fork().expect("fork") {
            fork::Fork::Parent(pid) => pid,
            fork::Fork::Child => in_child(child),
        }
    }

    /// Scenario 1, from the calling thread: parent → child → grandchild.
    fn forks_and_grandchild(source: &dyn Source) -> Seen {
        let mut seen = Seen::default();
        for n in draw_n(source, BEFORE) {
            seen.add("parent before fork", n);
        }
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        // The closure owns the write end: the child writes, and in the
        // parent the closure (and with it the write end) is dropped unrun,
        // so the parent's read ends when child and grandchild have exited.
        let pid = fork_child(move || {
            let mut w = writer;
            let first = draw_n(source, AFTER);
            write_records(&mut w, CHILD, &first);
            // The child, now warm itself, forks a grandchild.
            let mut gw = w.try_clone().expect("dup");
            let gpid = fork_child(move || {
                let nonces = draw_n(source, AFTER);
                write_records(&mut gw, GRANDCHILD, &nonces);
                write_records(&mut gw, DONE, &[[GRANDCHILD; 12]]);
            });
            let more = draw_n(source, AFTER);
            write_records(&mut w, CHILD, &more);
            assert_eq!(fork::waitpid(gpid).expect("waitpid"), 0, "grandchild");
            write_records(&mut w, DONE, &[[CHILD; 12]]);
        });
        for n in draw_n(source, 2 * AFTER) {
            seen.add("parent after fork", n);
        }
        collect(&mut reader, &mut seen);
        assert_eq!(fork::waitpid(pid).expect("waitpid"), 0, "child failed");
        seen
    }

    /// Scenario 2: a spawned thread forks while three others encrypt.
    fn fork_from_a_worker_thread(source: &dyn Source) -> Seen {
        let stop = AtomicBool::new(false);
        let ready = Barrier::new(4);
        std::thread::scope(|s| {
            let busy: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let mut drawn = draw_n(source, BEFORE);
                        ready.wait();
                        // Keep encrypting through the fork (bounded, so a
                        // fast generator does not fill memory).
                        while !stop.load(Ordering::Relaxed) {
                            if drawn.len() < BUSY_MAX {
                                drawn.push(source.draw());
                            } else {
                                std::thread::yield_now();
                            }
                        }
                        drawn
                    })
                })
                .collect();
            let forker = s.spawn(|| {
                let mut seen = Seen::default();
                for n in draw_n(source, BEFORE) {
                    seen.add("forking thread before fork", n);
                }
                let (mut reader, writer) = std::io::pipe().expect("pipe");
                // Fork only once every other thread is warm and drawing.
                ready.wait();
                let pid = fork_child(move || {
                    let mut w = writer;
                    let nonces = draw_n(source, AFTER);
                    write_records(&mut w, CHILD, &nonces);
                    write_records(&mut w, DONE, &[[CHILD; 12]]);
                });
                for n in draw_n(source, AFTER) {
                    seen.add("forking thread after fork", n);
                }
                collect(&mut reader, &mut seen);
                assert_eq!(fork::waitpid(pid).expect("waitpid"), 0, "child failed");
                seen
            });
            let mut seen = forker.join().expect("forking thread");
            stop.store(true, Ordering::Relaxed);
            for h in busy {
                for n in h.join().expect("busy thread") {
                    seen.add("other parent thread", n);
                }
            }
            seen
        })
    }

    /// Reads the pipe to its end (every writer gone) into `seen`.
    fn collect(reader: &mut std::io::PipeReader, seen: &mut Seen) {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).expect("pipe read");
        assert_eq!(bytes.len() % 13, 0, "torn record");
        for rec in bytes.chunks_exact(13) {
            let n: Nonce = rec[1..].try_into().expect("12 bytes");
            match rec[0] {
                CHILD => seen.add("child", n),
                GRANDCHILD => seen.add("grandchild", n),
                DONE if n == [CHILD; 12] => seen.add("child done", n),
                DONE if n == [GRANDCHILD; 12] => seen.add("grandchild done", n),
                other => panic!("unknown record tag {other}"),
            }
        }
    }

    fn encstore_source() -> Encstore {
        let keyset =
            Keyset::generate(&templates::by_name("AES256_GCM").expect("template")).expect("keyset");
        Encstore(keyset.aead().expect("aead"))
    }

    fn encstore_parent_child_grandchild_never_repeat() {
        let seen = forks_and_grandchild(&encstore_source());
        assert_eq!(seen.count("child done"), 1, "child did not finish");
        assert_eq!(
            seen.count("grandchild done"),
            1,
            "grandchild did not finish"
        );
        assert_eq!(seen.count("child"), 2 * AFTER);
        assert_eq!(seen.count("grandchild"), AFTER);
        assert_eq!(seen.count("parent after fork"), 2 * AFTER);
        assert_eq!(seen.repeats(), Vec::<String>::new(), "repeated nonces");
    }

    fn encstore_fork_from_a_worker_thread_never_repeats() {
        let seen = fork_from_a_worker_thread(&encstore_source());
        assert_eq!(seen.count("child done"), 1, "child did not finish");
        assert_eq!(seen.count("child"), AFTER);
        assert_eq!(seen.count("forking thread after fork"), AFTER);
        assert!(seen.count("other parent thread") >= 3 * BEFORE);
        assert_eq!(seen.repeats(), Vec::<String>::new(), "repeated nonces");
    }

    /// The control: a user-space generator without fork protection is
    /// caught by the same check, in both scenarios.
    fn control_rand_thread_rng_repeats_after_fork() {
        let one = forks_and_grandchild(&RandThreadRng);
        assert_eq!(one.count("child done"), 1, "child did not finish");
        let repeats = one.repeats();
        assert!(
            repeats
                .iter()
                .any(|r| r.contains("parent after fork") && r.contains("child")),
            "expected the child to repeat the parent's nonces: {repeats:?}"
        );
        assert!(
            repeats.iter().any(|r| r.contains("grandchild")),
            "expected the grandchild to repeat the child's nonces: {repeats:?}"
        );
        let two = fork_from_a_worker_thread(&RandThreadRng);
        assert!(
            two.repeats().iter().any(|r| r.contains("child")),
            "expected the worker's child to repeat its nonces"
        );
    }

    pub fn main() {
        // Like libtest: `--list` lists, other bare arguments filter by name.
        let args: Vec<String> = std::env::args().skip(1).collect();
        let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        let wanted =
            |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
        // A hung child must not hang `cargo test`.
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(120));
            eprintln!("fork_nonces: timed out after 120 s");
            std::process::exit(2);
        });
        let tests: [(&str, fn()); 3] = [
            (
                "encstore_parent_child_grandchild_never_repeat",
                encstore_parent_child_grandchild_never_repeat,
            ),
            (
                "encstore_fork_from_a_worker_thread_never_repeats",
                encstore_fork_from_a_worker_thread_never_repeats,
            ),
            (
                "control_rand_thread_rng_repeats_after_fork",
                control_rand_thread_rng_repeats_after_fork,
            ),
        ];
        if args.iter().any(|a| a == "--list") {
            for (name, _) in tests.iter().filter(|(n, _)| wanted(n)) {
                println!("{name}: test");
            }
            return;
        }
        println!(
            "fork_nonces: encstore nonce source here: {:?}",
            primitives::nonce_source()
        );
        let (mut passed, mut failed) = (0, 0);
        for (name, test) in tests.into_iter().filter(|(n, _)| wanted(n)) {
            if catch_unwind(test).is_ok() {
                println!("test {name} ... ok");
                passed += 1;
            } else {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
        println!("fork_nonces: {passed} passed, {failed} failed");
        if failed > 0 {
            std::process::exit(1);
        }
    }
}
