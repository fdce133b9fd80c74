//! `store put`, `get`, `ls`, `rm` and `stat`.

use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use encstore::concurrency::map_bounded;
use encstore::open::StoreLocation;
use encstore::{DEFAULT_STREAMING_THRESHOLD, EncryptedStorage, ObjectClass, PREFIX_LESS};
use encstore_core::{Error, ObjectInfo, ShownKey, Storage};
use futures_util::StreamExt;
use serde_json::json;

use super::{object_error, open_backend, open_store, progress, trim_slash, with_keyset_path};
use crate::cli::{StoreGet, StoreKeysetArgs, StoreLs, StorePut, StoreRm, StoreStat};
use crate::commands::note;
use crate::parse::ByteRange;
use crate::text::{count, rfc3339};
use crate::{io, keysets};

pub(super) async fn put(c: &StorePut) -> Result<()> {
    if c.keyset.streaming_keyset.is_some() {
        return put_streaming(c).await;
    }
    if let Some(size) = c
        .input
        .as_deref()
        .and_then(|p| std::fs::metadata(p).ok())
        .filter(|m| m.is_file() && m.len() > DEFAULT_STREAMING_THRESHOLD as u64)
        .map(|m| m.len())
    {
        note(&format!(
            "warning: no --streaming-keyset (or ENCSTORE_STREAMING_KEYSET): the value ({}) is read into memory and stored as one AEAD ciphertext; with a streaming keyset it is streamed in constant memory as a large object",
            count(size, "byte")
        ));
    }
    let value = io::read_input_secret(c.input.as_deref(), "the value")?;
    put_bytes(&c.store.store, &c.keyset, &c.key, value).await
}

/// How much of the input `store put` reads at once when it streams.
const PUT_CHUNK: usize = 256 * 1024;

/// `store put` with a streaming keyset: the value is read on a blocking
/// thread and handed to the library a chunk at a time (a bounded queue),
/// which stores it as a small object (one AEAD ciphertext, as without a
/// streaming keyset) when it ends within the streaming threshold (1 MiB),
/// and otherwise streams it in constant memory as a large object.
async fn put_streaming(c: &StorePut) -> Result<()> {
    let location = &c.store.store;
    let key = &c.key;
    let store = open_store(location, &c.keyset, false, true).await?;
    let threshold = store.streaming_threshold();
    let (mut reader, size) = io::open_input(c.input.as_deref(), "the value")?;
    let what = io::file_name(c.input.as_deref()).unwrap_or_else(|| "stdin".to_owned());
    let store_error = |e: Error| anyhow!("cannot store {} in {location}: {e}", ShownKey(key));
    // The bar appears once the value is known to be large (a small one is
    // stored at once); the reading thread makes it.
    let shown_bar = Arc::new(std::sync::OnceLock::<Option<indicatif::ProgressBar>>::new());
    let reader_bar = Arc::clone(&shown_bar);
    let (tx, rx) = tokio::sync::mpsc::channel::<encstore_core::Result<Bytes>>(2);
    // The end of a pipe may come from Ctrl-C itself (it also stops the
    // command writing into the pipe): the body ends (and the library
    // commits the value) only after a moment in which that Ctrl-C drops the
    // write instead.
    let end_of_input = move || {
        if size.is_none() {
            std::thread::sleep(crate::commands::SIGNAL_GRACE);
        }
    };
    let feeder = tokio::task::spawn_blocking(move || {
        let mut sent = 0usize;
        loop {
            let mut buf = vec![0u8; PUT_CHUNK];
            let got = match io::read_full(&mut reader, &mut buf) {
                Ok(got) => got,
                Err(e) => {
                    let _ = tx.blocking_send(Err(Error::backend(
                        "encstore",
                        "read the value",
                        format!("{what}: {e}"),
                    )));
                    return;
                }
            };
            buf.truncate(got);
            // The chunks that may still make up a small value are wiped
            // when the library drops them. Later ones are not (a 1 GiB
            // value would cost seconds of byte-by-byte volatile writes in
            // a debug build, and the library's segment buffers hold the
            // same bytes); the value stays in this process only.
            let chunk = if sent <= threshold {
                Bytes::from_owner(zeroize::Zeroizing::new(buf))
            } else {
                Bytes::from(buf)
            };
            sent = sent.saturating_add(got);
            if sent > threshold {
                let bar = reader_bar.get_or_init(|| {
                    let bar = progress::byte_bar(size, "put");
                    // What was read before the value was known to be large.
                    if let Some(b) = &bar {
                        b.inc((sent - got) as u64);
                    }
                    bar
                });
                if let Some(b) = bar {
                    b.inc(got as u64);
                }
            }
            if got > 0 && tx.blocking_send(Ok(chunk)).is_err() {
                return;
            }
            if got < PUT_CHUNK {
                end_of_input();
                return;
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    // Ctrl-C drops the write: nothing is stored (the library's streamed
    // writes are atomic; an S3 multipart upload is aborted).
    let result = tokio::select! {
        r = store.store_stream_by_size(key, Box::pin(body)) => r,
        _ = tokio::signal::ctrl_c() => {
            if let Some(Some(b)) = shown_bar.get() {
                b.abandon();
            }
            return Err(anyhow::Error::new(super::Interrupted(format!(
                "interrupted; {} was not stored (it keeps its old value, if it had one)",
                ShownKey(key)
            ))));
        }
    };
    // The reading thread ends once the body is dropped (its sends fail).
    let _ = feeder.await;
    let bar = shown_bar.get().cloned().flatten();
    match result {
        Ok(()) => {
            if let Some(b) = bar {
                b.finish();
            }
            Ok(())
        }
        Err(e) => {
            if let Some(b) = bar {
                b.abandon();
            }
            Err(store_error(e))
        }
    }
}

/// Stores `value` under `key` (also used by `quickstart`). The value is
/// wiped once the last reference to it (in the library, or on the blocking
/// pool) is dropped.
pub async fn put_bytes(
    location: &StoreLocation,
    keyset: &StoreKeysetArgs,
    key: &str,
    value: zeroize::Zeroizing<Vec<u8>>,
) -> Result<()> {
    let store = open_store(location, keyset, false, true).await?;
    store
        .store(key, Bytes::from_owner(value))
        .await
        .map_err(|e| anyhow!("cannot store {} in {location}: {e}", ShownKey(key)))
}

/// Why `key` could not be read: the library's explanation when it has one
/// (a key not ENABLED, an unknown key ID, ...), else the error.
async fn unreadable(store: &EncryptedStorage, c: &StoreGet, e: &Error) -> anyhow::Error {
    match store.explain_unreadable(&c.key).await {
        Some(why) => anyhow!("{}: {why}", ShownKey(&c.key)),
        None => anyhow!(
            "{}",
            with_keyset_path(
                &object_error(&c.key, &c.store.store, e).to_string(),
                &c.keyset.keyset
            )
        ),
    }
}

pub(super) async fn get(c: &StoreGet) -> Result<()> {
    let store = open_store(&c.store.store, &c.keyset, c.allow_plaintext, false).await?;
    if let Some(range) = c.range {
        return get_range(&store, c, range).await;
    }
    if c.keyset.streaming_keyset.is_some() {
        return get_streaming(&store, c).await;
    }
    let value = match store.load(&c.key).await {
        Ok(v) => v,
        Err(e) => return Err(unreadable(&store, c, &e).await),
    };
    // The library hands the plaintext over without a copy; this takes the
    // buffer back (no copy when it is the only reference) to wipe it.
    let value = zeroize::Zeroizing::new(Vec::from(value));
    io::write_output(c.output.as_deref(), &value, "the value")
}

/// `store get` with a streaming keyset: the value is streamed (a large
/// object segment by segment, in constant memory) to stdout, or to a
/// temporary file renamed over `--out` once the whole value decrypted.
async fn get_streaming(store: &EncryptedStorage, c: &StoreGet) -> Result<()> {
    let what = "the value";
    let stream = match store.load_stream(&c.key).await {
        Ok(s) => s,
        Err(e) => return Err(unreadable(store, c, &e).await),
    };
    let size = stream.size;
    let mut sink = io::Sink::open(c.output.as_deref(), what)?;
    let bar = progress::byte_bar(Some(size), "get");
    let mut body = stream.body;
    let mut written = 0u64;
    let work = async {
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => return Err(unreadable(store, c, &e).await),
            };
            sink.write(&chunk, what)?;
            written += chunk.len() as u64;
            if let Some(b) = &bar {
                b.inc(chunk.len() as u64);
            }
        }
        if written != size {
            bail!(
                "{}: the store returned {written} bytes of a {size}-byte value",
                ShownKey(&c.key)
            );
        }
        Ok(())
    };
    // Ctrl-C drops the output: the temporary file of --out is removed.
    let result: Result<()> = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::Error::new(super::Interrupted(
            match io::file_name(c.output.as_deref()) {
                Some(p) => format!("interrupted; {p} was not written"),
                None => "interrupted; stdout has only part of the value".to_owned(),
            },
        ))),
    };
    if let Some(b) = &bar {
        if result.is_ok() {
            b.finish();
        } else {
            b.abandon();
        }
    }
    result?;
    sink.finish(what)
}

/// `store get --range START-END`: exactly the bytes START to END
/// (inclusive) of the value, clamped to its end as HTTP does. A range
/// that starts at or after the end of the value is refused
/// (unsatisfiable, as HTTP's 416).
async fn get_range(store: &EncryptedStorage, c: &StoreGet, range: ByteRange) -> Result<()> {
    let unsatisfiable = |size: u64| {
        let valid = if size == 0 {
            "it is empty, so no range is satisfiable".to_owned()
        } else {
            format!("its bytes are 0 to {}", size - 1)
        };
        anyhow!(
            "range {range} is not satisfiable: {} holds {} ({valid})",
            ShownKey(&c.key),
            count(size, "byte")
        )
    };
    let read = match store.load_range(&c.key, range.to_range()).await {
        Ok(r) => r,
        Err(Error::RangeNotSatisfiable { size, .. }) => return Err(unsatisfiable(size)),
        Err(e) => return Err(unreadable(store, c, &e).await),
    };
    if range.start >= read.size {
        return Err(unsatisfiable(read.size));
    }
    let bytes = zeroize::Zeroizing::new(Vec::from(read.bytes));
    io::write_output(c.output.as_deref(), &bytes, "the range")
}

pub(super) async fn ls(c: &StoreLs) -> Result<()> {
    let location = &c.store.store;
    let backend = open_backend(location, false).await?;
    let prefix = trim_slash(c.prefix.as_deref().unwrap_or(""));
    let keys = backend.list(prefix, c.recursive).await.map_err(|e| {
        if prefix.is_empty() {
            anyhow!("cannot list {location}: {e}")
        } else {
            anyhow!("cannot list {} in {location}: {e}", ShownKey(prefix))
        }
    })?;
    if keys.is_empty() && !prefix.is_empty() {
        // An object, not a prefix: say so rather than print nothing.
        if let Ok(info) = backend.stat(prefix).await
            && info.terminal
        {
            note(&format!(
                "{} is an object, not a prefix: nothing is listed under it (see `encstore store stat`)",
                ShownKey(prefix)
            ));
        }
    }
    // A non-recursive listing mixes objects and prefixes: mark the
    // prefixes with a trailing `/`, as `ls -F` does.
    let marks: Vec<bool> = if c.recursive {
        vec![false; keys.len()]
    } else {
        prefix_marks(&backend, &keys, location).await?
    };
    let mut out = String::new();
    for (k, is_prefix) in keys.iter().zip(marks) {
        out.push_str(k);
        if is_prefix {
            out.push('/');
        }
        out.push('\n');
    }
    io::write_output(None, out.as_bytes(), "the listing")
}

/// For each listed name, whether it is a prefix (stat says not terminal).
/// A name deleted meanwhile is shown as an object.
async fn prefix_marks(
    backend: &Arc<dyn Storage>,
    keys: &[String],
    location: &StoreLocation,
) -> Result<Vec<bool>> {
    let stats = map_bounded(keys.iter().cloned(), 16, |key| {
        let backend = Arc::clone(backend);
        async move { backend.stat(&key).await.map(|info| !info.terminal) }
    })
    .await;
    stats
        .into_iter()
        .map(|r| match r {
            Ok(is_prefix) => Ok(is_prefix),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(anyhow!("cannot list {location}: {e}")),
        })
        .collect()
}

/// Opens the store at `location` and stats `key` in it.
async fn open_and_stat(
    location: &StoreLocation,
    key: &str,
) -> Result<(Arc<dyn Storage>, ObjectInfo)> {
    let backend = open_backend(location, false).await?;
    let info = backend
        .stat(key)
        .await
        .map_err(|e| object_error(key, location, &e))?;
    Ok((backend, info))
}

pub(super) async fn rm(c: &StoreRm) -> Result<()> {
    let key = trim_slash(&c.key);
    let (backend, info) = open_and_stat(&c.store.store, key).await?;
    if !info.terminal && !c.recursive {
        bail!(
            "{} is a prefix with keys under it; add --recursive to delete them all",
            ShownKey(key)
        );
    }
    backend.delete(key).await.map_err(|e| {
        anyhow!(
            "cannot delete {} from {}: {e}",
            ShownKey(key),
            c.store.store
        )
    })
}

/// The key ID in a Tink prefix, if the head has one.
fn prefix_key_id(head: &[u8]) -> Option<u32> {
    encstore_tink::parse_prefix(head).map(|(_, key_id)| key_id)
}

/// What `store stat` found in an object.
#[derive(Debug, Default)]
struct Content {
    /// `ciphertext`, `plaintext` or `prefix_less_unattributed`.
    class: &'static str,
    /// The key ID: from the Tink prefix, or the RAW key that decrypts it.
    key_id: Option<u32>,
    /// With a keyset: the key's status, or `UNKNOWN` for a key ID the
    /// keyset does not have.
    key_status: Option<&'static str>,
    /// With a keyset: whether a RAW key decrypts it.
    raw: Option<bool>,
    /// Whether a keyset was used.
    checked: bool,
}

pub(super) async fn stat(c: &StoreStat) -> Result<()> {
    let location = &c.store.store;
    let key = trim_slash(&c.key);
    let (backend, info) = open_and_stat(location, key).await?;
    let content = if info.terminal {
        Some(stat_content(c, &backend, key).await?)
    } else {
        None
    };
    let modified = info.modified.map(rfc3339);
    let text = if c.json {
        let mut v = json!({
            "key": info.key,
            "size": info.size,
            "modified": modified,
            "terminal": info.terminal,
            "kind": if info.terminal { "object" } else { "prefix" },
            "key_id": content.as_ref().and_then(|x| x.key_id),
            "content": content.as_ref().map(|x| x.class),
        });
        if let (Some(x), Some(o)) = (&content, v.as_object_mut())
            && x.checked
        {
            o.insert("key_status".into(), x.key_status.into());
            o.insert("raw".into(), x.raw.into());
        }
        format!("{v}\n")
    } else {
        let mut s = format!("key:      {}\n", info.key);
        match &content {
            None => {
                s.push_str("kind:     prefix (keys below it; list them with `encstore store ls`)\n")
            }
            Some(x) => {
                s.push_str("kind:     object\n");
                let what = match x.class {
                    "ciphertext" => "ciphertext",
                    "plaintext" => "plaintext",
                    _ => "no Tink prefix",
                };
                s.push_str(&format!(
                    "size:     {} ({what})\n",
                    count(info.size, "byte")
                ));
            }
        }
        if let Some(m) = &modified {
            s.push_str(&format!("modified: {m}\n"));
        }
        if let Some(x) = &content {
            s.push_str(&content_line(x));
        }
        s
    };
    io::write_output(None, text.as_bytes(), "the stat")
}

/// What the object at `key` holds: from its first five bytes, or, with
/// `--keyset`, from the keyset's classification of the whole object.
async fn stat_content(c: &StoreStat, backend: &Arc<dyn Storage>, key: &str) -> Result<Content> {
    let location = &c.store.store;
    let Some(path) = &c.keyset else {
        let head = backend
            .load_head(key, 5)
            .await
            .map_err(|e| object_error(key, location, &e))?;
        let key_id = prefix_key_id(&head);
        return Ok(Content {
            class: if key_id.is_some() {
                "ciphertext"
            } else {
                "plaintext"
            },
            key_id,
            ..Content::default()
        });
    };
    let keyset = keysets::load_file(path, c.keyset_format, &c.master).await?;
    let streaming = match &c.streaming_keyset {
        Some(spath) => Some((
            keysets::load_file(spath, c.streaming_keyset_format, &c.master).await?,
            spath.as_path(),
        )),
        None => None,
    };
    let store = super::with_keyset(backend, &keyset, streaming, path).await?;
    // As the census: the whole object is read only when its class depends
    // on more than its head (a RAW key to try), never for an object whose
    // prefix names a key (a large object may be gigabytes).
    let class = store
        .object_class(key)
        .await
        .and_then(|class| {
            class.ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })
        })
        .map_err(|e| object_error(key, location, &e))?;
    // The class says what the head alone would: only a prefixed object
    // can be under a key or an unknown key ID, and only an unprefixed one
    // plaintext or unattributed.
    let checked = Content {
        checked: true,
        raw: Some(false),
        ..Content::default()
    };
    Ok(match class {
        ObjectClass::Key {
            key_id,
            status,
            raw,
        } => Content {
            class: "ciphertext",
            key_id: Some(key_id),
            key_status: Some(status.as_str()),
            raw: Some(raw),
            ..checked
        },
        ObjectClass::UnknownKeyId { key_id } => Content {
            class: "ciphertext",
            key_id: Some(key_id),
            key_status: Some("UNKNOWN"),
            ..checked
        },
        ObjectClass::PrefixLessUnattributed => Content {
            class: "prefix_less_unattributed",
            ..checked
        },
        _ => Content {
            class: "plaintext",
            ..checked
        },
    })
}

/// The `key ID:` line of `store stat`.
fn content_line(x: &Content) -> String {
    let line = match (x.class, x.key_id, x.key_status, x.raw) {
        ("plaintext", _, _, _) if x.checked => {
            "none: plaintext (no Tink prefix, and the keyset holds no RAW key)".to_owned()
        }
        ("plaintext", _, _, _) => "none: plaintext (no Tink prefix; a ciphertext under a RAW key has none either: add --keyset to tell them apart)".to_owned(),
        ("prefix_less_unattributed", _, _, _) => format!("none: {PREFIX_LESS}"),
        (_, Some(id), Some(status), Some(true)) => {
            format!("{id} (RAW key, found by decrypting it; {status} in the keyset)")
        }
        (_, Some(id), Some("UNKNOWN"), _) => format!(
            "{id} (from its Tink prefix; the keyset does not have this key)"
        ),
        (_, Some(id), Some(status), _) => {
            format!("{id} (from its Tink prefix; {status} in the keyset)")
        }
        (_, Some(id), None, _) => format!("{id} (from its Tink prefix)"),
        _ => "none".to_owned(),
    };
    format!("key ID:   {line}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_key_ids() {
        assert_eq!(prefix_key_id(&[1, 0, 0, 1, 0, 9]), Some(256));
        assert_eq!(prefix_key_id(&[0, 0xff, 0xff, 0xff, 0xff]), Some(u32::MAX));
        assert_eq!(prefix_key_id(b"hello"), None);
        assert_eq!(prefix_key_id(&[1, 2, 3]), None);
    }
}
