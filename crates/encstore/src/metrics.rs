//! Cheap counters a server can export (Prometheus, OpenTelemetry, logs).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use encstore_core::ErrorKind;

#[derive(Debug, Default)]
struct KeyCounters {
    encrypted: AtomicU64,
    decrypted: AtomicU64,
}

/// Counters for one [`EncryptedStorage`](crate::EncryptedStorage) (shared by
/// its clones). Updating a counter is an atomic add under a read lock.
#[derive(Debug, Default)]
pub struct Metrics {
    by_key: RwLock<BTreeMap<u32, Arc<KeyCounters>>>,
    failures: RwLock<BTreeMap<&'static str, Arc<AtomicU64>>>,
    plaintext_reads: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    policy_refusals: AtomicU64,
}

/// A point-in-time copy of [`Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Objects encrypted, by the key ID that encrypted them.
    pub encrypted_by_key_id: BTreeMap<u32, u64>,
    /// Objects decrypted, by the key ID that decrypted them.
    pub decrypted_by_key_id: BTreeMap<u32, u64>,
    /// Failures by error kind (`authentication`, `unknown_key_id`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Plaintext objects returned in migration mode.
    pub plaintext_reads: u64,
    /// Successful keyset reloads.
    pub reloads: u64,
    /// Failed keyset reloads (the old keyset was kept).
    pub reload_failures: u64,
    /// Operations or keysets refused by the policy.
    pub policy_refusals: u64,
}

impl Metrics {
    fn key(&self, id: u32) -> Arc<KeyCounters> {
        if let Ok(m) = self.by_key.read()
            && let Some(c) = m.get(&id)
        {
            return Arc::clone(c);
        }
        let mut m = self.by_key.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(m.entry(id).or_default())
    }

    pub(crate) fn encrypted(&self, key_id: u32) {
        self.key(key_id).encrypted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn decrypted(&self, key_id: u32) {
        self.key(key_id).decrypted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failure(&self, kind: ErrorKind) {
        let name = kind.as_str();
        if let Ok(m) = self.failures.read()
            && let Some(c) = m.get(name)
        {
            c.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut m = self.failures.write().unwrap_or_else(|p| p.into_inner());
        m.entry(name).or_default().fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn plaintext_read(&self) {
        self.plaintext_reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reloaded(&self, ok: bool) {
        if ok {
            self.reloads.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reload_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn policy_refused(&self) {
        self.policy_refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut s = MetricsSnapshot::default();
        if let Ok(m) = self.by_key.read() {
            for (id, c) in m.iter() {
                let e = c.encrypted.load(Ordering::Relaxed);
                let d = c.decrypted.load(Ordering::Relaxed);
                if e > 0 {
                    s.encrypted_by_key_id.insert(*id, e);
                }
                if d > 0 {
                    s.decrypted_by_key_id.insert(*id, d);
                }
            }
        }
        if let Ok(m) = self.failures.read() {
            for (k, c) in m.iter() {
                s.failures
                    .insert((*k).to_owned(), c.load(Ordering::Relaxed));
            }
        }
        s.plaintext_reads = self.plaintext_reads.load(Ordering::Relaxed);
        s.reloads = self.reloads.load(Ordering::Relaxed);
        s.reload_failures = self.reload_failures.load(Ordering::Relaxed);
        s.policy_refusals = self.policy_refusals.load(Ordering::Relaxed);
        s
    }
}
