//! The cost of the async keyset AEAD and of KMS envelope encryption, with
//! the KMS call itself taken out: the KEK is a master keyset in memory
//! (`AeadKek`, whose futures complete at once), so what is measured is
//! encstore's own work per message.
//!
//! - `KeysetAsyncAead` on an ordinary AES-256-GCM primary against the
//!   synchronous `KeysetAead` on the same keyset (reference): the price of
//!   the async API when no KMS is involved.
//! - An envelope primary (AES-256-GCM DEKs) against the same: a fresh DEK
//!   (32 random bytes, a key schedule), its wrapping by the KEK
//!   (AES-256-GCM of the 34-byte DEK proto) and the framing, per message.
//!   A real KMS adds a network round trip (about a millisecond on a LAN)
//!   on top of this.
//!
//! The futures are polled once with a no-op waker, inside an entered (but
//! not running) tokio runtime for the KMS-call timeout's timer: they never
//! wait with an in-memory KEK, so no scheduler cost is measured.
//!
//! Run: `cargo bench -p encstore-tink --bench envelope` (or `just bench`).

#![allow(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use encstore_core::{Aead, AeadKek, Kek};
use encstore_tink::envelope::KeysetAsyncAead;
use encstore_tink::{Keyset, OutputPrefix, templates};

#[allow(dead_code)]
mod harness;

use harness::{Harness, bench};

const ROUNDS: usize = 15;
const SAMPLE_TIME: Duration = Duration::from_millis(4);
const AD: &[u8] = b"certmagic/acme/example.com.key";

/// Polls a future that completes without waiting.
fn now<T>(f: impl Future<Output = T>) -> T {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the in-memory KEK never waits"),
    }
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { ROUNDS };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _entered = rt.enter();
    let aes = templates::by_name("AES256_GCM").expect("template");
    let master = Keyset::generate(&aes).expect("master");
    let kek: Arc<dyn Kek> = Arc::new(AeadKek(Arc::new(master.aead().expect("aead"))));
    let uri = "encstore-bench://master";
    let resolver: HashMap<String, Arc<dyn Kek>> = [(uri.to_owned(), kek)].into();

    let ordinary = Keyset::generate(&aes).expect("keyset");
    let sync = ordinary.aead().expect("aead");
    let async_plain = now(KeysetAsyncAead::new(&ordinary, &resolver)).expect("async aead");
    let envelope_ks = Keyset::generate(
        &templates::kms_envelope(uri, &aes, OutputPrefix::Tink).expect("template"),
    )
    .expect("keyset");
    let async_env = now(KeysetAsyncAead::new(&envelope_ks, &resolver)).expect("async aead");

    println!("# encstore-tink envelope benchmark (one core, medians, interleaved rounds)");
    for size in [64usize, 16 << 10, 1 << 20] {
        let pt = vec![0x5au8; size];
        let ct_sync = sync.encrypt(&pt, AD).expect("encrypts");
        let ct_env = now(async_env.encrypt(&pt, AD)).expect("encrypts");
        Harness {
            rounds,
            sample_time: SAMPLE_TIME,
            min_column: false,
        }
        .run_group(
            "encrypt",
            size,
            vec![
                bench("KeysetAead::encrypt (sync) [reference]", || {
                    black_box(sync.encrypt(black_box(&pt), AD).expect("encrypts"));
                }),
                bench("KeysetAsyncAead::encrypt, ordinary key", || {
                    black_box(now(async_plain.encrypt(black_box(&pt), AD)).expect("encrypts"));
                }),
                bench(
                    "KeysetAsyncAead::encrypt, envelope key (in-memory KEK)",
                    || {
                        black_box(now(async_env.encrypt(black_box(&pt), AD)).expect("encrypts"));
                    },
                ),
            ],
        );
        Harness {
            rounds,
            sample_time: SAMPLE_TIME,
            min_column: false,
        }
        .run_group(
            "decrypt",
            size,
            vec![
                bench("KeysetAead::decrypt (sync) [reference]", || {
                    black_box(sync.decrypt(black_box(&ct_sync), AD).expect("decrypts"));
                }),
                bench("KeysetAsyncAead::decrypt, ordinary key", || {
                    black_box(now(async_plain.decrypt(black_box(&ct_sync), AD)).expect("decrypts"));
                }),
                bench(
                    "KeysetAsyncAead::decrypt, envelope key (in-memory KEK)",
                    || {
                        black_box(
                            now(async_env.decrypt(black_box(&ct_env), AD)).expect("decrypts"),
                        );
                    },
                ),
            ],
        );
    }
}
