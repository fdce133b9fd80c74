//! The timing harness shared by the benches (`mod harness;` in each): a
//! bench binary without criterion. Every case of a group runs in
//! interleaved rounds (round 1 of each case, then round 2 of each, …), so
//! slow drifts of a shared machine hit all cases alike; each case reports
//! the median of its samples, and its ratio to the group's reference (its
//! first case) measured in the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ring::aead::{Aad, LessSafeKey, Nonce};

/// One benchmark case: a name and one operation to time.
pub struct Case<'a> {
    name: String,
    op: Box<dyn FnMut() + 'a>,
}

/// Makes a benchmark case from a closure doing one operation.
pub fn bench<'a>(name: impl Into<String>, op: impl FnMut() + 'a) -> Case<'a> {
    Case {
        name: name.into(),
        op: Box::new(op),
    }
}

/// How a bench measures its groups.
pub struct Harness {
    /// Samples per case; the median is reported.
    pub rounds: usize,
    /// Target wall time of one sample.
    pub sample_time: Duration,
    /// Whether the table has a last column with the fastest sample.
    pub min_column: bool,
}

impl Harness {
    /// How many iterations make one sample last about `sample_time`.
    fn calibrate(&self, op: &mut dyn FnMut()) -> u64 {
        let mut iters = 1u64;
        loop {
            let start = Instant::now();
            for _ in 0..iters {
                op();
            }
            let elapsed = start.elapsed();
            if elapsed >= self.sample_time / 4 || iters >= 1 << 30 {
                let per = elapsed.as_secs_f64() / iters as f64;
                return ((self.sample_time.as_secs_f64() / per) as u64).max(1);
            }
            iters *= 4;
        }
    }

    /// Runs `cases` interleaved and prints one row per case: median time
    /// per operation, throughput for `bytes`-byte messages, the ratio of its
    /// throughput to the reference's (1.00 = as fast as the reference), the
    /// difference in ns/op and, with `min_column`, the fastest sample. The
    /// reference is the first case, or a repeat of it named
    /// `[reference, repeated]` if faster.
    pub fn run_group(&self, title: &str, bytes: usize, mut cases: Vec<Case<'_>>) {
        let rounds = self.rounds;
        let iters: Vec<u64> = cases
            .iter_mut()
            .map(|c| self.calibrate(&mut *c.op))
            .collect();
        let mut samples = vec![Vec::with_capacity(rounds); cases.len()];
        for _ in 0..rounds {
            for (i, case) in cases.iter_mut().enumerate() {
                let start = Instant::now();
                for _ in 0..iters[i] {
                    (case.op)();
                }
                samples[i].push(start.elapsed().as_secs_f64() * 1e9 / iters[i] as f64);
            }
        }
        let medians: Vec<f64> = samples
            .iter_mut()
            .map(|s| {
                s.sort_by(f64::total_cmp);
                s[s.len() / 2]
            })
            .collect();
        // A case named "[reference, repeated]" runs the same operation as the
        // first on other buffers, and the faster of the two is the reference
        // (guards against a placement or position artifact).
        let reference = cases
            .iter()
            .zip(&medians)
            .filter(|(c, _)| c.name.contains("[reference, repeated]"))
            .map(|(_, &m)| m)
            .fold(medians[0], f64::min);
        println!("\n### {title}, {}\n", human(bytes));
        if self.min_column {
            println!(
                "| case | ns/op (median of {rounds}) | GB/s | vs reference | Δ ns/op | min ns/op |"
            );
            println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        } else {
            println!("| case | ns/op (median of {rounds}) | GB/s | vs reference | Δ ns/op |");
            println!("| --- | ---: | ---: | ---: | ---: |");
        }
        for ((case, &ns), sorted) in cases.iter().zip(&medians).zip(&samples) {
            let gbps = bytes as f64 / ns;
            let ratio = reference / ns;
            let row = format!(
                "| {} | {ns:.0} | {gbps:.2} | {ratio:.2} | {:+.0} |",
                case.name,
                ns - reference
            );
            if self.min_column {
                println!("{row} {:.0} |", sorted[0]);
            } else {
                println!("{row}");
            }
        }
    }
}

fn human(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A counter nonce for the raw-ring reference (pure cipher cost).
pub fn counter_nonce(n: &mut u64) -> Nonce {
    *n += 1;
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// The ring reference for encryption: seals `buf` in place under the next
/// counter nonce (the same buffer every time), tag separate.
pub fn ring_seal_in_place<'a>(
    key: &'a LessSafeKey,
    n: &'a mut u64,
    ad: &'a [u8],
    buf: &'a mut [u8],
) -> impl FnMut() + 'a {
    move || {
        let tag = key
            .seal_in_place_separate_tag(counter_nonce(n), Aad::from(ad), buf)
            .expect("seals");
        let _ = black_box(tag);
    }
}

/// `ct ‖ tag` of `pt` under the all-zero nonce: the input of the ring
/// decryption references.
pub fn ring_seal_zero_nonce(key: &LessSafeKey, pt: &[u8], ad: &[u8]) -> Vec<u8> {
    let mut ct = pt.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(ad),
            &mut ct,
        )
        .expect("seals");
    ct.extend_from_slice(tag.as_ref());
    ct
}

/// The ring reference for decryption: copies `ct` (from
/// [`ring_seal_zero_nonce`]) into the reused `buf` and opens it in place.
pub fn ring_open_reused<'a>(
    key: &'a LessSafeKey,
    ct: &'a [u8],
    ad: &'a [u8],
    buf: &'a mut Vec<u8>,
) -> impl FnMut() + 'a {
    move || {
        buf.clear();
        buf.extend_from_slice(black_box(ct));
        let pt = key
            .open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::from(ad), buf)
            .expect("opens");
        black_box(pt);
    }
}

/// ring decryption of a new copy of `ct` (to_vec + open + truncate).
pub fn ring_open_owned_copy<'a>(
    key: &'a LessSafeKey,
    ct: &'a [u8],
    ad: &'a [u8],
) -> impl FnMut() + 'a {
    move || {
        let mut v = black_box(ct).to_vec();
        let len = key
            .open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::from(ad), &mut v)
            .expect("opens")
            .len();
        v.truncate(len);
        black_box(v);
    }
}
