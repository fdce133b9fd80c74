//! Command-line syntax (clap derive).
//!
//! Flag names follow Tinkey (`--in`, `--in-format`, `--out`, `--out-format`,
//! `--key-template`, `--key-id`, `--master-key-uri`, `--new-master-key-uri`)
//! because operators script against them: flags may be added, never renamed.
//!
//! The keyset commands are top-level subcommands, as in Tinkey. The store
//! commands live under `encstore store ...` ([`StoreCommand`]).

mod store;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use encstore::open::{MasterKeyUri, StoreLocation};

use crate::parse::{self, PolicyArg};

pub use store::{
    StoreCommand, StoreGet, StoreKeysetArgs, StoreLs, StorePut, StoreRewrap, StoreRewrapDeks,
    StoreRm, StoreStat, StoreStatus, StoreVerify,
};

/// encstore: client-side encryption for storage, with Tink keysets.
#[derive(Debug, Parser)]
#[command(name = "encstore", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a keyset with one key, generated from a key template.
    CreateKeyset(CreateKeyset),
    /// Add a key (ENABLED, not primary) generated from a key template.
    AddKey(KeyTemplateCommand),
    /// Add a key from a key template and make it the primary (see the
    /// warning it prints: prefer add-key, deploy, then promote-key).
    RotateKeyset(KeyTemplateCommand),
    /// Make an ENABLED key the primary.
    PromoteKey(KeyIdForceCommand),
    /// Disable a key (it no longer decrypts). The primary cannot be disabled.
    /// With --store, refuses while objects are still under the key.
    DisableKey(RetireKeyCommand),
    /// Enable a disabled key.
    EnableKey(KeyIdForceCommand),
    /// Destroy a key's material, keeping its ID. The primary cannot be destroyed.
    /// With --store, refuses while objects are still under the key.
    DestroyKey(RetireKeyCommand),
    /// Delete a key from the keyset. The primary cannot be deleted.
    /// With --store, refuses while objects are still under the key.
    DeleteKey(RetireKeyCommand),
    /// Print the keyset's info: key IDs, types, statuses, prefixes, primary.
    /// Never prints key material.
    ListKeyset(ListKeyset),
    /// Change a keyset's format, or its master key (encrypt, re-encrypt or
    /// decrypt it).
    ConvertKeyset(ConvertKeyset),
    /// List the key template names accepted by --key-template.
    ListKeyTemplates,
    /// Encrypt data with a keyset's primary key. With a streaming AEAD
    /// keyset, streams input of any size in constant memory and writes
    /// Tink's streaming ciphertext.
    Encrypt(Crypt),
    /// Decrypt data with a keyset. Writes nothing unless decryption
    /// succeeds (with a streaming keyset and stdout as the output, each
    /// segment's plaintext is written once it authenticated, and a
    /// ciphertext altered or cut short further on fails at its end with
    /// exit status 1: check it).
    Decrypt(Crypt),
    /// Re-wrap an encrypted keyset under its master key's newest version
    /// (after a master-key rotation such as `bao write -f
    /// transit/keys/NAME/rotate`): Vault transit's rewrap endpoint, unwrap
    /// and wrap for other master keys. The keys inside do not change; the
    /// result is checked to unwrap to the same keyset before it is written.
    RewrapKeyset(RewrapKeyset),
    /// Create a master key: a non-extractable AES-256 key in an HSM
    /// (pkcs11:, labelled by the URI's object=), or a Vault/OpenBao transit
    /// key (hcvault://, type aes256-gcm96, not exportable). Refuses if the
    /// key exists.
    CreateMasterKey(CreateMasterKey),
    /// Commands on an encrypted store: put, get, ls, rm, stat, status,
    /// rewrap, verify.
    #[command(subcommand)]
    Store(StoreCommand),
    /// A guided tour: create a keyset, store secrets, rotate, re-encrypt,
    /// verify and disable the old key, printing each command it runs.
    Quickstart(Quickstart),
    /// Show the crypto provider in use (ring, aws-lc-rs or fips), whether
    /// the FIPS module is in FIPS mode, and the providers compiled in.
    /// ENCSTORE_CRYPTO_PROVIDER picks one when several are compiled in.
    Providers,
}

/// `disable-key`, `destroy-key`, `delete-key`: a key ID command with the
/// store check.
#[derive(Debug, Clone, Args)]
pub struct RetireKeyCommand {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub key: KeyIdCommand,
    /// Check this store first (a directory, file:///abs/path,
    /// s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or
    /// memory:///): refuse while objects are still under the key.
    #[arg(long, value_name = "LOCATION", env = "ENCSTORE_STORE", value_parser = parse::store())]
    pub store: Option<StoreLocation>,
    /// Go ahead even though the store still has objects under the key
    /// (they will no longer decrypt). It does not allow replacing an
    /// existing --out file: that is --overwrite.
    #[arg(long)]
    pub force: bool,
}

/// `promote-key`, `enable-key`: a key ID command whose --force replaces an
/// existing --out file.
#[derive(Debug, Clone, Args)]
pub struct KeyIdForceCommand {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub key: KeyIdCommand,
    /// Replace the --out file if it exists and is not the --in file (same
    /// as --overwrite).
    #[arg(long)]
    pub force: bool,
}

/// `create-master-key`.
#[derive(Debug, Clone, Args)]
pub struct CreateMasterKey {
    /// The key to create, such as
    /// `pkcs11:token=encstore;object=kek-2026?module-path=...&pin-source=file:...`
    /// or `hcvault://vault.internal:8200/transit/keys/kek-2026`.
    #[arg(long, value_name = "URI", value_parser = parse::master_key_uri())]
    pub master_key_uri: MasterKeyUri,
}

/// `quickstart`.
#[derive(Debug, Clone, Args)]
pub struct Quickstart {
    /// Where to put the tour's keyset (DIR/keysets/quickstart.json) and store
    /// (DIR/demo-store). Default: the current directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `rewrap-keyset`.
#[derive(Debug, Clone, Args)]
pub struct RewrapKeyset {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keyset: KeysetInOut,
    /// Replace the --out file if it exists and is not the --in file (same
    /// as --overwrite).
    #[arg(long)]
    pub force: bool,
}

/// Keyset serialization format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Tink's JSON keyset format.
    #[default]
    Json,
    /// Tink's binary (protobuf) keyset format.
    Binary,
}

/// How a keyset is protected at rest: options shared by every command that
/// reads or writes a keyset.
#[derive(Debug, Clone, Args, Default)]
pub struct MasterKeyArgs {
    /// A cleartext Tink AEAD keyset file used as the key-encryption key; the
    /// keyset is read and written as an EncryptedKeyset.
    #[arg(long, value_name = "PATH", conflicts_with = "master_key_uri")]
    pub master_keyset: Option<PathBuf>,
    /// Format of the --master-keyset file (default: detected from its content).
    #[arg(long, value_enum, value_name = "FORMAT", requires = "master_keyset")]
    pub master_keyset_format: Option<Format>,
    /// A KMS or HSM key used as the key-encryption key: `pkcs11:...` (an
    /// HSM), `hcvault://HOST[:PORT]/MOUNT/keys/NAME` (Vault or OpenBao
    /// transit; token from VAULT_TOKEN) or `aws-kms://arn:aws:kms:...`.
    #[arg(long, value_name = "URI", value_parser = parse::master_key_uri())]
    pub master_key_uri: Option<MasterKeyUri>,
    /// Associated data binding the encrypted keyset (UTF-8 text).
    #[arg(
        long,
        value_name = "STR",
        conflicts_with = "keyset_associated_data_hex"
    )]
    pub keyset_associated_data: Option<String>,
    /// Associated data binding the encrypted keyset, in hex.
    #[arg(long, value_name = "HEX")]
    pub keyset_associated_data_hex: Option<String>,
}

/// `--in`/`--in-format`: where a keyset is read from.
#[derive(Debug, Clone, Args)]
pub struct KeysetIn {
    /// The keyset to read (default: stdin).
    #[arg(long = "in", value_name = "PATH")]
    pub input: Option<PathBuf>,
    /// Format of the input keyset (default: detected from its content, as
    /// for every command that reads a keyset).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub in_format: Option<Format>,
}

/// `--out`/`--out-format`: where a keyset is written to.
#[derive(Debug, Clone, Args)]
pub struct KeysetOut {
    /// Where to write the keyset (default: stdout). May name the --in file:
    /// then the file is locked for the whole command and replaced only if
    /// nobody changed it meanwhile. Writes are atomic; a replaced file keeps
    /// its owner, group and mode, a new one gets mode 0600; a symbolic link
    /// is written through to its target.
    #[arg(long = "out", value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Replace the --out file if it exists and is not the --in file
    /// (otherwise refused, so that no keyset is overwritten by mistake).
    #[arg(long)]
    pub overwrite: bool,
    /// Format of the output keyset (default: JSON, as Tinkey; when --out
    /// is the --in file, that file's own format, so that an edit never
    /// converts it).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub out_format: Option<Format>,
}

/// `--in`/`--in-format`, `--out`/`--out-format` and the master key: the
/// options of every command that reads a keyset and writes it back.
#[derive(Debug, Clone, Args)]
pub struct KeysetInOut {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub input: KeysetIn,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: KeysetOut,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub master: MasterKeyArgs,
}

/// `create-keyset`.
#[derive(Debug, Clone, Args)]
pub struct CreateKeyset {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub key: NewKeyArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub out: KeysetOut,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub master: MasterKeyArgs,
    /// Replace the --out file if it exists (same as --overwrite).
    #[arg(long)]
    pub force: bool,
}

/// The key a command generates: `create-keyset`, `add-key`,
/// `rotate-keyset`.
#[derive(Debug, Clone, Args)]
pub struct NewKeyArgs {
    /// Key template name (see list-key-templates), such as AES256_GCM.
    #[arg(long, value_name = "NAME")]
    pub key_template: String,
    /// Make the key a KMS envelope key (Tink's KmsEnvelopeAeadKey): no key
    /// material in the keyset; every encryption makes a fresh DEK from
    /// --key-template (AES256_GCM, ...; its _RAW variant makes a RAW
    /// envelope key) and has this master key wrap it (`hcvault://…`,
    /// `aws-kms://…`). The master key is opened first: it must exist.
    #[arg(long, value_name = "URI", value_parser = parse::master_key_uri())]
    pub envelope_kek_uri: Option<MasterKeyUri>,
    /// Key policy: a preset (tink, fips, modern) or a JSON policy file.
    /// Keys outside it are refused. Default: tink (every key type Tink
    /// supports).
    #[arg(long, value_name = "NAME|PATH", value_parser = parse::policy())]
    pub policy: Option<PolicyArg>,
}

/// `add-key`, `rotate-keyset`.
#[derive(Debug, Clone, Args)]
pub struct KeyTemplateCommand {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub key: NewKeyArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keyset: KeysetInOut,
    /// Replace the --out file if it exists and is not the --in file (same
    /// as --overwrite).
    #[arg(long)]
    pub force: bool,
}

/// `promote-key`, `disable-key`, `enable-key`, `destroy-key`, `delete-key`.
#[derive(Debug, Clone, Args)]
pub struct KeyIdCommand {
    /// The key's ID, unsigned decimal (as list-keyset prints it).
    #[arg(long, value_name = "ID")]
    pub key_id: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keyset: KeysetInOut,
}

/// `list-keyset`.
#[derive(Debug, Clone, Args)]
pub struct ListKeyset {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub input: KeysetIn,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub master: MasterKeyArgs,
    /// Print the keyset info as JSON, in the shape of Tink's `keysetInfo`.
    #[arg(long)]
    pub json: bool,
}

/// `convert-keyset`.
#[derive(Debug, Clone, Args)]
pub struct ConvertKeyset {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keyset: KeysetInOut,
    /// Encrypt the output with this cleartext master keyset. Without
    /// --new-master-keyset or --new-master-key-uri the output is cleartext.
    #[arg(long, value_name = "PATH", conflicts_with = "new_master_key_uri")]
    pub new_master_keyset: Option<PathBuf>,
    /// Format of the --new-master-keyset file (default: detected).
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        requires = "new_master_keyset"
    )]
    pub new_master_keyset_format: Option<Format>,
    /// Encrypt the output with this KMS or HSM key.
    #[arg(long, value_name = "URI", value_parser = parse::master_key_uri())]
    pub new_master_key_uri: Option<MasterKeyUri>,
    /// Associated data for the output keyset (default: the input's
    /// --keyset-associated-data).
    #[arg(
        long,
        value_name = "STR",
        conflicts_with = "new_keyset_associated_data_hex"
    )]
    pub new_keyset_associated_data: Option<String>,
    /// Associated data for the output keyset, in hex.
    #[arg(long, value_name = "HEX")]
    pub new_keyset_associated_data_hex: Option<String>,
    /// Replace the --out file if it exists and is not the --in file (same
    /// as --overwrite).
    #[arg(long)]
    pub force: bool,
}

/// `encrypt`, `decrypt`.
#[derive(Debug, Clone, Args)]
pub struct Crypt {
    /// The keyset file.
    #[arg(long, value_name = "PATH")]
    pub keyset: PathBuf,
    /// Key policy: a preset (tink, fips, modern) or a JSON policy file.
    /// Keys outside it are refused. Default: tink (every key type Tink
    /// supports).
    #[arg(long, value_name = "NAME|PATH", value_parser = parse::policy())]
    pub policy: Option<PolicyArg>,
    /// Format of the keyset file (default: detected from its content).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub keyset_format: Option<Format>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub master: MasterKeyArgs,
    /// Associated data (UTF-8 text). Default: empty.
    #[arg(long, value_name = "STR", conflicts_with = "associated_data_hex")]
    pub associated_data: Option<String>,
    /// Associated data, in hex.
    #[arg(long, value_name = "HEX")]
    pub associated_data_hex: Option<String>,
    /// Input file (default: stdin).
    #[arg(long = "in", value_name = "PATH")]
    pub input: Option<PathBuf>,
    /// Output file (default: stdout). Written atomically, mode 0600, and
    /// only after the whole operation succeeded.
    #[arg(long = "out", value_name = "PATH")]
    pub output: Option<PathBuf>,
}
