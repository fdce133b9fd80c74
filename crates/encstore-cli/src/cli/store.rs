//! The syntax of `encstore store ...`: [`StoreCommand`], its subcommands,
//! and the `--store` and keyset options they share.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use encstore::open::StoreLocation;

use crate::parse::{self, PolicyArg};

use super::{Format, MasterKeyArgs};

/// `--store LOCATION`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The store: a directory, `file:///abs/path`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix`, or `memory:///` (an
    /// empty in-memory store that lasts one command, for trying things).
    #[arg(long, value_name = "LOCATION", env = "ENCSTORE_STORE", value_parser = parse::store())]
    pub store: StoreLocation,
}

/// `--keyset PATH` (and `--streaming-keyset PATH`) and how to open them,
/// for the store commands.
#[derive(Debug, Clone, Args)]
pub struct StoreKeysetArgs {
    /// The keyset file (AEAD keys: small objects).
    #[arg(long, value_name = "PATH", env = "ENCSTORE_KEYSET")]
    pub keyset: PathBuf,
    /// Format of the keyset file (default: detected from its content).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub keyset_format: Option<Format>,
    /// The streaming keyset file (streaming AEAD keys: large objects,
    /// docs/format.md). Opened with the same master key options as
    /// --keyset. Without it, large objects cannot be written or read.
    #[arg(long, value_name = "PATH", env = "ENCSTORE_STREAMING_KEYSET")]
    pub streaming_keyset: Option<PathBuf>,
    /// Format of the streaming keyset file (default: detected from its
    /// content).
    #[arg(long, value_enum, value_name = "FORMAT", requires = "streaming_keyset")]
    pub streaming_keyset_format: Option<Format>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub master: MasterKeyArgs,
    /// Key policy: a preset (tink, fips, modern) or a JSON policy file.
    /// Default: tink (every key type Tink supports).
    #[arg(long, value_name = "NAME|PATH", value_parser = parse::policy())]
    pub policy: Option<PolicyArg>,
}

/// `encstore store ...`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Encrypt a value (stdin by default) and store it under KEY.
    Put(StorePut),
    /// Load and decrypt KEY (to stdout by default). Writes nothing unless
    /// decryption succeeds.
    Get(StoreGet),
    /// List the keys under PREFIX (default: the top level). Prefixes (keys
    /// with keys below them) end with a `/`.
    Ls(StoreLs),
    /// Delete KEY (a prefix only with --recursive).
    Rm(StoreRm),
    /// Show an object's size, modification time and key ID (or that it is
    /// plaintext, or a prefix).
    Stat(StoreStat),
    /// The key census: how many objects are under each key of the keyset.
    Status(StoreStatus),
    /// Re-encrypt every object that is not under the primary key.
    ///
    /// Each object is re-encrypted with a conditional write (a value a
    /// server writes meanwhile is never overwritten), then re-checked: it
    /// must decrypt and be under the primary. The run holds the store-wide
    /// lock `encstore-rewrap`: a second rewrap waits for the first (saying
    /// so), or fails at once with --no-wait. It is safe to kill at any
    /// moment; run it again to finish. A killed rewrap's lock expires after
    /// the backend's lease (60 s on the filesystem backend;
    /// ENCSTORE_LOCK_LEASE_SECS overrides it, and every process sharing the
    /// store must then use the same value). Progress goes to stderr (a bar
    /// on a terminal, plain lines otherwise); the summary to stdout. Exits
    /// non-zero if any object failed.
    Rewrap(StoreRewrap),
    /// Re-wrap the encrypted DEK of every KMS envelope object under its
    /// master key's newest version (after `bao write -f
    /// transit/keys/NAME/rotate`), without decrypting or rewriting the
    /// payloads: Vault transit's rewrap endpoint, unwrap and wrap for
    /// other KMSs. Holds the same store-wide lock as `store rewrap`; each
    /// object is written back with a conditional write; safe to stop or
    /// kill at any moment and run again (what is done is skipped). Exits
    /// non-zero if any object failed.
    RewrapDeks(StoreRewrapDeks),
    /// Decrypt every object; report every failure.
    Verify(StoreVerify),
}

/// `store put`.
#[derive(Debug, Clone, Args)]
pub struct StorePut {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keyset: StoreKeysetArgs,
    /// The key name, such as certs/example.com.key.
    pub key: String,
    /// Read the value from this file (default: stdin). With
    /// --streaming-keyset, a value of more than 1 MiB is streamed in
    /// constant memory and stored as a large object.
    #[arg(long = "in", value_name = "PATH")]
    pub input: Option<PathBuf>,
}

/// `store get`.
#[derive(Debug, Clone, Args)]
pub struct StoreGet {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keyset: StoreKeysetArgs,
    /// The key name.
    pub key: String,
    /// Write the value to this file (default: stdout), atomically, mode
    /// 0600, only once it decrypted (a large object is streamed to a
    /// temporary file, renamed into place once its last segment
    /// authenticated).
    #[arg(long = "out", value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Print only the bytes START to END of the value, both inclusive and
    /// counted from 0, as an HTTP range (`0-99` is the first 100 bytes;
    /// `START-` runs to the end). Of a large object, only the segments
    /// covering the range are read.
    #[arg(long, value_name = "START-END", value_parser = parse::byte_range, allow_hyphen_values = true)]
    pub range: Option<parse::ByteRange>,
    /// Migration mode: return an object stored before encryption (plaintext).
    #[arg(long)]
    pub allow_plaintext: bool,
}

/// `store ls`.
#[derive(Debug, Clone, Args)]
pub struct StoreLs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    /// List under this prefix (default: the whole store); a trailing `/`
    /// is accepted (`certs/` is `certs`).
    pub prefix: Option<String>,
    /// List every key below the prefix, not only its direct children.
    #[arg(long, short = 'r')]
    pub recursive: bool,
}

/// `store rm`.
#[derive(Debug, Clone, Args)]
pub struct StoreRm {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    /// The key name (or a prefix, with --recursive).
    pub key: String,
    /// Delete a prefix and everything under it.
    #[arg(long, short = 'r')]
    pub recursive: bool,
}

/// `store stat`.
#[derive(Debug, Clone, Args)]
pub struct StoreStat {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    /// The key name (a trailing `/` is accepted for a prefix).
    pub key: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also read the object with this keyset: tells a plaintext object
    /// from a ciphertext under a RAW key (neither has a Tink prefix) and
    /// shows its key's status. Not taken from ENCSTORE_KEYSET.
    #[arg(long, value_name = "PATH")]
    pub keyset: Option<PathBuf>,
    /// Format of the --keyset file (default: detected from its content).
    #[arg(long, value_enum, value_name = "FORMAT", requires = "keyset")]
    pub keyset_format: Option<Format>,
    /// With --keyset: also look a large object's key up in this streaming
    /// keyset, to show its status. Not taken from
    /// ENCSTORE_STREAMING_KEYSET.
    #[arg(long, value_name = "PATH", requires = "keyset")]
    pub streaming_keyset: Option<PathBuf>,
    /// Format of the --streaming-keyset file (default: detected from its
    /// content).
    #[arg(long, value_enum, value_name = "FORMAT", requires = "streaming_keyset")]
    pub streaming_keyset_format: Option<Format>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub master: MasterKeyArgs,
}

/// `store status`.
#[derive(Debug, Clone, Args)]
pub struct StoreStatus {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keyset: StoreKeysetArgs,
    /// Count only under this prefix (default: the whole store).
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub prefix: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `store rewrap`.
#[derive(Debug, Clone, Args)]
pub struct StoreRewrap {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keyset: StoreKeysetArgs,
    /// Report what would be re-encrypted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Objects re-encrypted at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Migration mode: also encrypt plaintext objects (stored before
    /// encryption was turned on).
    #[arg(long)]
    pub allow_plaintext: bool,
    /// Fail at once if another rewrap holds the store's rewrap lock, instead
    /// of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `store rewrap-deks`.
#[derive(Debug, Clone, Args)]
pub struct StoreRewrapDeks {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keyset: StoreKeysetArgs,
    /// Objects handled at once (each is one KMS call when its DEK needs
    /// re-wrapping).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Fail at once if another rewrap holds the store's rewrap lock, instead
    /// of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `store verify`.
#[derive(Debug, Clone, Args)]
pub struct StoreVerify {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keyset: StoreKeysetArgs,
    /// Accept plaintext objects (migration mode); they are counted apart.
    #[arg(long)]
    pub allow_plaintext: bool,
    /// Objects decrypted at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}
