//! Reading inputs and writing outputs: stdin/stdout or files, with atomic,
//! private (mode 0600) file writes.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Reads all of `path`, or stdin when `path` is `None` or `-`.
pub fn read_input(path: Option<&Path>, what: &str) -> Result<Vec<u8>> {
    match path {
        Some(p) if p != Path::new("-") => {
            fs::read(p).with_context(|| format!("cannot read {what} {}", p.display()))
        }
        _ => {
            let mut buf = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .with_context(|| format!("cannot read {what} from stdin"))?;
            Ok(buf)
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
    let mut tmp = builder
        .tempfile_in(&dir)
        .context("cannot create a temporary file next to it")?;
    tmp.write_all(data)?;
    #[cfg(unix)]
    {
        // Whatever the umask did, the file is private.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(&dir)?;
    Ok(())
}

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
