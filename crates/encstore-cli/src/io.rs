//! Reading inputs and writing outputs: stdin/stdout or files, with atomic,
//! private (mode 0600) file writes.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use encstore::keyfile::read_secret;
use zeroize::Zeroizing;

/// Reads all of `path`, or stdin when `path` is `None` or `-`, into a
/// buffer that is wiped when dropped, for secrets (keysets, values to
/// store, plaintext): unlike `read_to_end`, growing the buffer never leaves
/// an unwiped copy of the bytes read so far behind.
pub fn read_input_secret(path: Option<&Path>, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    match path {
        Some(p) if p != Path::new("-") => {
            let mut f =
                fs::File::open(p).with_context(|| format!("cannot read {what} {}", p.display()))?;
            let hint = f.metadata().map_or(0, |m| m.len());
            read_secret(&mut f, hint).with_context(|| format!("cannot read {what} {}", p.display()))
        }
        _ => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                // Otherwise the command seems to hang.
                let w = what.strip_prefix("the ").unwrap_or(what);
                eprintln!(
                    "encstore: reading the {w} from standard input (no --in given); end it with Ctrl-D"
                );
            }
            read_secret(&mut stdin.lock(), 0)
                .with_context(|| format!("cannot read {what} from stdin"))
        }
    }
}

/// The name of `path` for messages, when it names a file: `None` when it is
/// absent or `-` (stdin/stdout).
pub fn file_name(path: Option<&Path>) -> Option<String> {
    match path {
        Some(p) if p.as_os_str() != "-" => Some(p.display().to_string()),
        _ => None,
    }
}

/// Writes `data` to `path` atomically, or to stdout when `path` is `None`
/// or `-`.
///
/// A file is written to a temporary file in the same directory (created
/// with mode 0600), fsynced, renamed over `path`, and the directory is
/// fsynced, so a reader sees either the old file or the whole new one, and
/// a crash never leaves a half-written file. `path` may be the file the
/// input was read from.
pub fn write_output(path: Option<&Path>, data: &[u8], what: &str) -> Result<()> {
    match path {
        Some(p) if p != Path::new("-") => {
            write_atomic(p, data).with_context(|| format!("cannot write {what} to {}", p.display()))
        }
        _ => {
            let mut out = io::stdout().lock();
            out.write_all(data)
                .and_then(|()| out.flush())
                .with_context(|| format!("cannot write {what} to stdout"))
        }
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(data)?;
    f.commit()
}

/// A file written atomically, for outputs written piece by piece (a
/// stream): a private (mode 0600) temporary file in the same directory,
/// fsynced and renamed over the destination by [`commit`](Self::commit),
/// and the directory fsynced. Dropped without `commit`, the temporary file
/// is removed and the destination is untouched, so a failure half-way
/// never leaves a partial file.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file next to `path`.
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let dir = parent_dir(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o600));
        }
        let tmp = builder
            .tempfile_in(&dir)
            .context("cannot create a temporary file next to it")?;
        #[cfg(unix)]
        {
            // Whatever the umask did, the file is private.
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// Appends `data`.
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.tmp.write_all(data)
    }

    /// Fsyncs the file, renames it over the destination and fsyncs the
    /// directory.
    pub fn commit(self) -> Result<()> {
        self.tmp.as_file().sync_all()?;
        let dir = parent_dir(&self.path);
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        sync_dir(&dir)?;
        Ok(())
    }
}

/// Where a streamed output goes: a file written atomically, or stdout
/// (written as it comes).
pub enum Sink {
    /// `--out PATH`: replaced only by [`finish`](Sink::finish).
    File(AtomicFile, PathBuf),
    /// Standard output.
    Stdout(io::Stdout),
}

impl Sink {
    /// The sink for `path` (stdout when `None` or `-`); `what` names the
    /// output in messages.
    pub fn open(path: Option<&Path>, what: &str) -> Result<Sink> {
        match path {
            Some(p) if p != Path::new("-") => Ok(Sink::File(
                AtomicFile::create(p)
                    .with_context(|| format!("cannot write {what} to {}", p.display()))?,
                p.to_path_buf(),
            )),
            _ => Ok(Sink::Stdout(io::stdout())),
        }
    }

    /// Writes `data`; `what` names the output in messages.
    pub fn write(&mut self, data: &[u8], what: &str) -> Result<()> {
        self.write_all(data)
            .with_context(|| format!("cannot write {what} to {}", self.name()))
    }

    /// Where the output goes, for messages: the file's path, or `stdout`.
    pub fn name(&self) -> String {
        match self {
            Sink::File(_, p) => p.display().to_string(),
            Sink::Stdout(_) => "stdout".to_owned(),
        }
    }

    /// Ends the output: a file is committed (renamed into place), stdout
    /// flushed.
    pub fn finish(self, what: &str) -> Result<()> {
        match self {
            Sink::File(f, p) => f
                .commit()
                .with_context(|| format!("cannot write {what} to {}", p.display())),
            Sink::Stdout(mut out) => out
                .flush()
                .with_context(|| format!("cannot write {what} to stdout")),
        }
    }
}

/// The raw output, for the library's streaming copies: errors carry no
/// context (the caller adds [`Sink::name`]); flushing stdout flushes it, a
/// file is flushed by [`Sink::finish`].
impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f, _) => f.tmp.write(data),
            Sink::Stdout(out) => out.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(..) => Ok(()),
            Sink::Stdout(out) => out.flush(),
        }
    }
}

/// Opens `path` for reading, or stdin when `path` is `None` or `-` (with
/// the hint that stdin is being read when it is a terminal). Returns the
/// reader and, for a regular file, its size.
pub fn open_input(path: Option<&Path>, what: &str) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    match path {
        Some(p) if p != Path::new("-") => {
            let f =
                fs::File::open(p).with_context(|| format!("cannot read {what} {}", p.display()))?;
            let size = f
                .metadata()
                .ok()
                .filter(fs::Metadata::is_file)
                .map(|m| m.len());
            Ok((Box::new(f), size))
        }
        _ => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                let w = what.strip_prefix("the ").unwrap_or(what);
                eprintln!(
                    "encstore: reading the {w} from standard input (no --in given); end it with Ctrl-D"
                );
            }
            Ok((Box::new(stdin), None))
        }
    }
}

/// Reads into a buffer until it is full or the input ends.
pub use encstore_tink::streaming::read_full;

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Parses `--…-hex` input: hex digits, case-insensitive; whitespace ignored.
pub fn parse_hex(flag: &str, s: &str) -> Result<Vec<u8>> {
    let cleaned: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&cleaned).map_err(|e| anyhow::anyhow!("{flag} is not valid hex: {e}"))
}

/// The bytes of a `--X STR` / `--X-hex HEX` pair (empty when neither).
pub fn text_or_hex(text: Option<&str>, hex_value: Option<&str>, hex_flag: &str) -> Result<Vec<u8>> {
    match (text, hex_value) {
        (Some(t), _) => Ok(t.as_bytes().to_vec()),
        (None, Some(h)) => parse_hex(hex_flag, h),
        (None, None) => Ok(Vec::new()),
    }
}
