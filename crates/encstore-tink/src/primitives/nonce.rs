//! Where every nonce, IV and salt comes from under the `ring` and
//! `aws-lc-rs` crypto providers: the kernel's random number generator,
//! through its vDSO when the kernel has one, else one `getrandom` system
//! call per message. (Under the `fips` provider they come from the FIPS
//! module's approved DRBG instead: `provider::prim`.)
//!
//! # What this guarantees
//! - **Fork.** A forked child never repeats its parent's nonces, nor a
//!   grandchild its parent's: whichever thread forks, and however deep.
//! - **Threads.** Every thread has its own generator state, seeded
//!   independently by the kernel; no two threads share a stream.
//! - **No `unsafe` in encstore.** The vDSO call is made by the `vdso-rng`
//!   crate.
//!
//! # How
//! On Linux 6.11 and later (x86-64; arm64 from 6.12) the kernel exports
//! `getrandom` in the vDSO: a ChaCha20 generator that runs in user space on a
//! per-thread state which the kernel allocates itself (`vgetrandom_alloc`
//! flags: `MAP_DROPPABLE`, which implies `MADV_WIPEONFORK`). A child process
//! sees that state zeroed (the wipe-on-fork flag stays on the mapping, so a
//! grandchild does too), and the vDSO reseeds a zeroed state from the kernel
//! before it gives out a byte (a zero generation is the kernel's "invalid"
//! value, never a current one).
//! The same counter moves when the kernel RNG reseeds, which includes a VM
//! snapshot being restored or cloned when the hypervisor exposes a VM
//! generation ID (Linux's vmgenid driver): a protection that a user-space
//! generator, even on a wipe-on-fork page, could not give.
//! One 12-byte nonce costs 51–60 ns this way, against 380–390 ns for the
//! system call, on the project's VM (`docs/performance.md`).
//!
//! `vfork` and `posix_spawn` children (`CLONE_VM`) share the parent's memory,
//! state included, while the parent waits: a nonce drawn there advances the
//! shared state, so the parent does not repeat it either.
//!
//! Everywhere else (other kernels and architectures, or a sandbox that
//! refuses the `prctl(PR_GET_AUXV)`/`mmap` the setup needs) each nonce is one
//! `getrandom` call, through the `getrandom` crate, exactly as before. On
//! glibc 2.41 and later that call is itself served by the same vDSO.
//! [`nonce_source`] says which path the calling thread takes.
//!
//! # Why not a user-space generator of our own
//! A per-thread ChaCha20 buffer seeded from the OS would cost under 10 ns a
//! nonce, but a child process inherits the buffer and would hand out the
//! parent's next nonces: fatal for AES-GCM (a repeated nonce under one key
//! leaks the XOR of two plaintexts and the GHASH key). Detecting the fork
//! needs one of:
//! - a page marked `MADV_WIPEONFORK`: `memmap2` (0.9.12) offers no such
//!   advice at all, and `rustix`/`nix`/`libc` `madvise` are `unsafe fn`, so
//!   encstore would need `unsafe` of its own;
//! - `pthread_atfork`: only reachable through `unsafe` FFI (rand 0.8 had a
//!   hook, applied only when its next block was generated; rand 0.9 removed
//!   it), and it misses `_Fork` and raw `clone`;
//! - a `getpid` per nonce: a system call too (about 140 ns here), and a
//!   grandchild can get its grandparent's recycled pid.
//!
//! A well-kept crate with a fork-safe generator exists (aws-lc-rs, whose
//! DRBG uses `MADV_WIPEONFORK`), but its `rand::fill` measured about 900 ns
//! per 12-byte nonce on the same machine, slower than the system call, on
//! top of a C build.
//!
//! The kernel's vDSO generator is the wipe-on-fork design done by the kernel,
//! with VM-clone detection on top, so encstore uses it and owns no state.
//!
//! # Limits
//! - `vdso-rng` (0.3) is a small crate (about 950 lines) with one
//!   maintainer; its `unsafe` was read for this choice. One flaw found: it
//!   checks a raw `mmap` for `-1` where the kernel returns `-errno`, so if
//!   the pool cannot map a new page (out of memory) the process crashes
//!   instead of falling back. A crash, never a repeated nonce.
//! - The pool that hands states to threads is touched (a lock when it
//!   grows, a lock-free queue otherwise) only when a thread draws its first
//!   nonce or exits. A child forked while another thread of the parent was
//!   in the middle of that could hang the first time one of the child's
//!   threads does the same; drawing with a state a thread already has never
//!   touches the pool. Any lock held across `fork` has this property (the
//!   standard library's too).
//! - A signal handler that encrypts while its thread is drawing a nonce
//!   gets the system-call path (the thread's state is busy), never a
//!   repeated nonce.

use encstore_core::AeadError;

/// Where the calling thread's nonces come from (see [`nonce_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NonceSource {
    /// The kernel's vDSO `getrandom` (Linux 6.11+), in user space on a
    /// per-thread state the kernel wipes in a forked child.
    KernelVdso,
    /// One `getrandom` system call (or the platform's equivalent) per
    /// nonce.
    SystemCall,
}

/// Where the calling thread's nonces, IVs and salts come from. Both
/// sources are the kernel's CSPRNG and both are fork-safe; they differ in
/// cost. The answer can differ between threads only if a thread's
/// generator state could not be set up.
pub fn nonce_source() -> NonceSource {
    let mut probe = [0u8; 1];
    if vdso::fill(&mut probe) {
        NonceSource::KernelVdso
    } else {
        NonceSource::SystemCall
    }
}

/// Fills a nonce, IV or salt with fresh random bytes from the kernel
/// CSPRNG (the vDSO, or one system call). The only error is the kernel
/// refusing randomness.
pub(crate) fn fill_nonce(buf: &mut [u8]) -> Result<(), AeadError> {
    if vdso::fill(buf) {
        return Ok(());
    }
    fill_by_system_call(buf)
}

/// The fallback: one `getrandom` system call (or the platform's
/// equivalent).
fn fill_by_system_call(buf: &mut [u8]) -> Result<(), AeadError> {
    getrandom::fill(buf).map_err(|_| AeadError::Randomness)
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod vdso {
    use std::cell::RefCell;
    use std::sync::LazyLock;

    use vdso_rng::{LocalState, Pool};

    /// The process's pool of kernel-allocated generator states, or `None`
    /// if this kernel has no vDSO `getrandom` (set up once, on first use).
    static POOL: LazyLock<Option<Pool>> = LazyLock::new(|| Pool::new().ok());

    thread_local! {
        /// This thread's generator state, rented from [`POOL`] on the
        /// thread's first nonce and handed back when the thread exits.
        /// `None` until then, or if renting failed.
        static STATE: RefCell<Option<LocalState<'static>>> = const { RefCell::new(None) };
    }

    /// Fills `buf` from this thread's vDSO state. `false` (and `buf`
    /// unspecified) if there is no vDSO generator, the state is busy (a
    /// signal handler interrupted a draw) or being torn down (thread
    /// exit), or the kernel returned an error: the caller then falls back
    /// to the system call.
    pub(super) fn fill(buf: &mut [u8]) -> bool {
        let Some(pool) = POOL.as_ref() else {
            return false;
        };
        STATE
            .try_with(|cell| {
                let Ok(mut slot) = cell.try_borrow_mut() else {
                    return false;
                };
                if slot.is_none() {
                    *slot = LocalState::new(pool).ok();
                }
                match slot.as_mut() {
                    Some(state) => state.fill(buf, 0).is_ok(),
                    None => false,
                }
            })
            .unwrap_or(false)
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod vdso {
    /// No vDSO generator on this platform: always the system call.
    pub(super) fn fill(_buf: &mut [u8]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every length works, and two draws differ (a stuck or zero source
    /// fails this).
    #[test]
    fn fills_every_length_with_fresh_bytes() {
        for len in [1usize, 8, 12, 16, 24, 32, 64, 100, 1000, 5000] {
            let mut a = vec![0u8; len];
            let mut b = vec![0u8; len];
            fill_nonce(&mut a).expect("random");
            fill_nonce(&mut b).expect("random");
            if len >= 8 {
                assert_ne!(a, b, "two draws of {len} bytes are equal");
                assert!(a.iter().any(|&x| x != 0), "{len} zero bytes");
            }
        }
        let mut empty = [0u8; 0];
        fill_nonce(&mut empty).expect("an empty fill succeeds");
    }

    /// Eight threads drawing 2,000 nonces each, at the same time: all
    /// 16,000 distinct, and distinct from the main thread's. Threads that
    /// shared a state without synchronization, or were seeded alike, would
    /// repeat.
    #[test]
    fn threads_never_share_a_stream() {
        const THREADS: usize = 8;
        const EACH: usize = 2_000;
        let barrier = std::sync::Barrier::new(THREADS);
        let per_thread: Vec<Vec<[u8; 12]>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        (0..EACH)
                            .map(|_| {
                                let mut n = [0u8; 12];
                                fill_nonce(&mut n).expect("random");
                                n
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let mut seen = HashSet::new();
        for _ in 0..EACH {
            let mut n = [0u8; 12];
            fill_nonce(&mut n).expect("random");
            assert!(seen.insert(n));
        }
        for nonces in &per_thread {
            for n in nonces {
                assert!(seen.insert(*n), "a nonce was repeated across threads");
            }
        }
        assert_eq!(seen.len(), (THREADS + 1) * EACH);
    }

    /// The fallback path works on its own.
    #[test]
    fn system_call_fallback_fills() {
        let mut a = [0u8; 12];
        let mut b = [0u8; 12];
        fill_by_system_call(&mut a).expect("random");
        fill_by_system_call(&mut b).expect("random");
        assert_ne!(a, b);
    }

    /// Where the kernel has a vDSO `getrandom` (x86-64, Linux 6.11+),
    /// nonces really come from it: a silent fall back to one system call
    /// per nonce fails here.
    #[test]
    fn uses_the_vdso_where_the_kernel_has_it() {
        let Some((major, minor)) = kernel_version() else {
            println!("SKIPPED: not Linux, or /proc/sys/kernel/osrelease unreadable");
            return;
        };
        let has_vdso =
            cfg!(all(target_os = "linux", target_arch = "x86_64")) && (major, minor) >= (6, 11);
        if has_vdso {
            assert_eq!(nonce_source(), NonceSource::KernelVdso);
            // And from a fresh thread, which rents its own state.
            let other = std::thread::spawn(nonce_source).join().expect("thread");
            assert_eq!(other, NonceSource::KernelVdso);
        } else {
            println!("SKIPPED: kernel {major}.{minor} on this target has no vDSO getrandom");
        }
    }

    /// The running kernel's `(major, minor)`.
    fn kernel_version() -> Option<(u32, u32)> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let mut parts = release.trim().split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }
}
