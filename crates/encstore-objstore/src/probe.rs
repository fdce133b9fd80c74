//! The conditional-write probe.
//!
//! Compare-and-swap ([`store_if`](encstore_core::Storage::store_if)) and
//! locks rest on conditional `PUT`s: `If-None-Match: *` (create only) and
//! `If-Match: <ETag>` (replace only that version). Some S3-compatible
//! servers, and proxies in front of them, accept those headers and apply
//! the `PUT` anyway; on them a compare-and-swap silently overwrites a
//! concurrent update and two processes both "hold" a lock.
//!
//! So before the first conditional write or lock, each store handle (with
//! its clones) checks the server once, on a sentinel object in its reserved
//! area, `prefix/.encstore/conditional-write-probe`:
//!
//! 1. Read the sentinel, creating it (create-only) if it is missing.
//! 2. A create-only `PUT` of the existing sentinel must fail.
//! 3. A `PUT` conditional on a wrong ETag (and version) must fail.
//!
//! Both probing writes carry the sentinel's current bytes, so even on a
//! server that ignores the conditions nothing changes but the sentinel's
//! modification time. If either write succeeds, or the store says it does
//! not implement conditional writes, `store_if`, `try_lock` and `lock`
//! fail with [`Error::Unsupported`] naming the problem; `store`, `load`
//! and the rest keep working. The outcome is cached, success included;
//! a probe that fails on its own (a network error) is not, and the next
//! conditional write probes again. Concurrent first callers wait for one
//! probe ([`tokio::sync::OnceCell`]); concurrent probes from other handles
//! or processes only ever race on the sentinel's creation, which they
//! tolerate.
//!
//! ## Conditional multipart completions
//!
//! A conditional streamed write too large for one `PUT` puts its condition
//! on the completion of a multipart upload (see `complete.rs`). Before the
//! first such write, each handle probes that too, on the same sentinel,
//! after the checks above passed:
//!
//! 4. A multipart upload of the sentinel's bytes, completed with
//!    `If-None-Match: *`, must fail.
//! 5. Another, completed with `If-Match` on a wrong ETag, must fail.
//!
//! Both uploads are then aborted. A server that ignores the conditions
//! rewrites the sentinel with its own bytes (only its ETag and time
//! change). If either completion succeeds, or the store cannot send a
//! condition with a completion at all (any store but the S3 stores this
//! crate builds), large conditional streamed writes fall back to one
//! buffered conditional `PUT` up to a bound, and are refused beyond it.
//! This stage is cached per handle like the first.

use bytes::Bytes;
use encstore_core::{Error, Result};
use object_store::path::Path;
use object_store::{
    MultipartUpload, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    UpdateVersion,
};

use crate::complete::{CompletionCondition, complete_with};
use crate::config::CompletionSupport;

use crate::error::{Class, Kind, classify};
use crate::storage::ObjectStorage;

/// The sentinel object, under the store's prefix (reserved: no key can
/// name it, and listings never show it).
pub const PROBE_OBJECT: &str = ".encstore/conditional-write-probe";

/// The sentinel's content when the probe creates it.
const SENTINEL: &[u8] = b"encstore conditional-write probe: do not modify\n";

/// What the probe found.
#[derive(Debug, Clone)]
pub(crate) enum Conditional {
    /// Both conditions were enforced.
    Honoured,
    /// The store ignores or lacks them; the reason, for the operator.
    Ignored(String),
}

impl ObjectStorage {
    /// `Ok` if the store honours conditional writes (probing once per
    /// handle); [`Error::Unsupported`] for `op` if it does not.
    pub(crate) async fn require_conditional_writes(&self, op: &'static str) -> Result<()> {
        let outcome = self
            .inner
            .conditional
            .get_or_try_init(|| self.probe_conditional_writes())
            .await?;
        match outcome {
            Conditional::Honoured => Ok(()),
            Conditional::Ignored(reason) => Err(Error::Unsupported {
                backend: self.inner.backend,
                op,
                reason: reason.clone(),
            }),
        }
    }

    /// Whether large conditional streamed writes can put their condition on
    /// a multipart completion: [`Conditional::Honoured`] once the multipart
    /// stage of the probe passed (probed once per handle, after
    /// [`require_conditional_writes`](Self::require_conditional_writes)).
    pub(crate) async fn conditional_multipart(&self) -> Result<Conditional> {
        match self.inner.completion {
            CompletionSupport::Trusted => {}
            CompletionSupport::NoConnector => {
                return Ok(Conditional::Ignored(format!(
                    "the store at {} cannot put a condition on the completion of a multipart \
                     upload (object_store offers none; this crate adds it to the S3 stores it \
                     builds itself)",
                    self.inner.address
                )));
            }
            CompletionSupport::Untrusted => {
                return Ok(Conditional::Ignored(format!(
                    "conditions on multipart completions are not relied on at {}: only AWS S3 \
                     documents them as atomic (SeaweedFS 4.48 lets racing conditional \
                     completions succeed together); conditional_completion(Enabled) turns \
                     them on for a server whose completions are atomic",
                    self.inner.address
                )));
            }
        }
        self.inner
            .conditional_multipart
            .get_or_try_init(|| self.probe_conditional_multipart())
            .await
            .cloned()
    }

    /// The reason text when the server fails the multipart stage.
    fn ignored_multipart(&self, what: &str) -> Conditional {
        let bucket = match &self.inner.bucket {
            Some(b) => format!(" (bucket {b:?})"),
            None => String::new(),
        };
        Conditional::Ignored(format!(
            "the server at {}{bucket} {what}: it does not honour conditions on multipart \
             completions (CompleteMultipartUpload with If-None-Match / If-Match)",
            self.inner.address
        ))
    }

    async fn probe_conditional_multipart(&self) -> Result<Conditional> {
        const OP: &str = "probe conditional multipart completions";
        let path = self.path(PROBE_OBJECT)?;
        let Some((body, e_tag, _)) = self.read_sentinel(OP, &path).await? else {
            return Err(Error::backend(
                self.inner.backend,
                OP,
                "the probe object vanished; retry",
            ));
        };
        let cases = [
            (
                "accepted a multipart completion with If-None-Match: * over an existing object",
                CompletionCondition::absent(),
            ),
            (
                "accepted a multipart completion conditional on an ETag that did not match \
                 (If-Match)",
                CompletionCondition::matches(&wrong_e_tag(e_tag.as_deref()))
                    .ok_or_else(|| Error::backend(self.inner.backend, OP, "bad probe ETag"))?,
            ),
        ];
        for (what, condition) in cases {
            let mut upload = self
                .inner
                .store
                .put_multipart_opts(&path, PutMultipartOptions::default())
                .await
                .map_err(|e| self.map(OP, PROBE_OBJECT, Kind::Other, e))?;
            let verdict = self
                .probe_completion(OP, &mut *upload, body.clone(), condition, what)
                .await;
            // A refused completion leaves the upload open; aborting one
            // that completed fails harmlessly.
            if let Err(e) = upload.abort().await {
                tracing::debug!(error = %e, "aborting a probe upload failed");
            }
            if let Some(v) = verdict? {
                return Ok(v);
            }
        }
        tracing::debug!(
            store = %self.inner.location,
            "the store honours conditional multipart completions"
        );
        Ok(Conditional::Honoured)
    }

    /// One probing upload: `None` when the completion was refused as it
    /// must be, else the verdict.
    async fn probe_completion(
        &self,
        op: &'static str,
        upload: &mut dyn MultipartUpload,
        body: Bytes,
        condition: CompletionCondition,
        what: &str,
    ) -> Result<Option<Conditional>> {
        upload
            .put_part(PutPayload::from(body))
            .await
            .map_err(|e| self.map(op, PROBE_OBJECT, Kind::Other, e))?;
        let done = complete_with(upload, condition).await;
        if done.attempts == 0 {
            return Ok(Some(
                self.ignored_multipart("was sent a completion without its condition"),
            ));
        }
        match done.result {
            Ok(_) => Ok(Some(self.ignored_multipart(what))),
            Err(e) => match classify(&e) {
                Class::Precondition | Class::NotFound => Ok(None),
                Class::NotImplemented => Ok(Some(self.ignored_multipart(&format!(
                    "does not implement conditional completions ({e})"
                )))),
                _ => Err(self.map(op, PROBE_OBJECT, Kind::Other, e)),
            },
        }
    }

    /// The reason text when the store fails the probe.
    fn ignored(&self, what: &str) -> Conditional {
        let bucket = match &self.inner.bucket {
            Some(b) => format!(" (bucket {b:?})"),
            None => String::new(),
        };
        Conditional::Ignored(format!(
            "the server at {}{bucket} {what}: it does not honour conditional writes \
             (If-None-Match / If-Match), so compare-and-swap writes and locks would silently \
             lose updates there. Nothing was written; plain store and load still work. Use a \
             server that implements S3 conditional writes (AWS S3, MinIO, Cloudflare R2, \
             SeaweedFS), without a proxy that drops these headers",
            self.inner.address
        ))
    }

    async fn probe_conditional_writes(&self) -> Result<Conditional> {
        const OP: &str = "probe conditional writes";
        let path = self.path(PROBE_OBJECT)?;
        let (body, e_tag, version) = match self.read_sentinel(OP, &path).await? {
            Some(s) => s,
            None => {
                let put = self
                    .inner
                    .store
                    .put_opts(
                        &path,
                        PutPayload::from_static(SENTINEL),
                        PutOptions::from(PutMode::Create),
                    )
                    .await;
                match put {
                    Ok(r) => (Bytes::from_static(SENTINEL), r.e_tag, r.version),
                    Err(e) => match classify(&e) {
                        // Another prober created it first.
                        Class::Precondition => match self.read_sentinel(OP, &path).await? {
                            Some(s) => s,
                            None => {
                                return Err(Error::backend(
                                    self.inner.backend,
                                    OP,
                                    "the probe object vanished while being created; retry",
                                ));
                            }
                        },
                        Class::NotImplemented => {
                            return Ok(self
                                .ignored(&format!("does not implement create-only writes ({e})")));
                        }
                        _ => return Err(self.map(OP, PROBE_OBJECT, Kind::Other, e)),
                    },
                }
            }
        };

        // 1. Create-only over an existing object must fail.
        let put = self
            .inner
            .store
            .put_opts(
                &path,
                PutPayload::from(body.clone()),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Err(e) if classify(&e) == Class::Precondition => {}
            Ok(_) => {
                return Ok(self.ignored(
                    "accepted a create-only write (If-None-Match: *) over an existing object",
                ));
            }
            Err(e) if classify(&e) == Class::NotImplemented => {
                return Ok(self.ignored(&format!("does not implement create-only writes ({e})")));
            }
            Err(e) => return Err(self.map(OP, PROBE_OBJECT, Kind::Other, e)),
        }

        // 2. A write conditional on a version that is not the current one
        // must fail.
        let wrong = UpdateVersion {
            e_tag: Some(wrong_e_tag(e_tag.as_deref())),
            version: version.map(|v| if v == "1" { "2".into() } else { "1".into() }),
        };
        let put = self
            .inner
            .store
            .put_opts(
                &path,
                PutPayload::from(body),
                PutOptions::from(PutMode::Update(wrong)),
            )
            .await;
        match put {
            Err(e) if matches!(classify(&e), Class::Precondition | Class::NotFound) => {}
            Ok(_) => {
                return Ok(self.ignored(
                    "accepted a write conditional on an ETag that did not match (If-Match)",
                ));
            }
            Err(e) if classify(&e) == Class::NotImplemented => {
                return Ok(
                    self.ignored(&format!("does not implement conditional replacement ({e})"))
                );
            }
            Err(e) => return Err(self.map(OP, PROBE_OBJECT, Kind::Other, e)),
        }
        tracing::debug!(store = %self.inner.location, "the store honours conditional writes");
        Ok(Conditional::Honoured)
    }

    /// The sentinel's bytes, ETag and version, or `None` if it is missing.
    async fn read_sentinel(
        &self,
        op: &'static str,
        path: &Path,
    ) -> Result<Option<(Bytes, Option<String>, Option<String>)>> {
        match self.inner.store.get(path).await {
            Ok(r) => {
                let (e_tag, version) = (r.meta.e_tag.clone(), r.meta.version.clone());
                let body = r
                    .bytes()
                    .await
                    .map_err(|e| self.map(op, PROBE_OBJECT, Kind::Other, e))?;
                Ok(Some((body, e_tag, version)))
            }
            Err(e) if classify(&e) == Class::NotFound => Ok(None),
            Err(e) => Err(self.map(op, PROBE_OBJECT, Kind::Other, e)),
        }
    }
}

/// A well-formed ETag that is not `current`.
fn wrong_e_tag(current: Option<&str>) -> String {
    let a = "\"00000000000000000000000000000000\"";
    if current == Some(a) {
        "\"11111111111111111111111111111111\"".to_owned()
    } else {
        a.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_e_tag_differs() {
        assert_ne!(wrong_e_tag(None), "");
        let a = wrong_e_tag(None);
        assert_ne!(wrong_e_tag(Some(&a)), a);
        assert_eq!(wrong_e_tag(Some("\"x\"")), a);
    }
}
