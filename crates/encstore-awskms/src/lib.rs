//! # encstore-awskms: a key-encryption key in AWS KMS
//!
//! The key that wraps a keyset stays in AWS KMS; this crate implements
//! [`encstore_core::Kek`] with KMS `Encrypt` and `Decrypt`, exactly as
//! Google Tink's AWS KMS AEAD does, so Tink and encstore read each other's
//! wrapped keysets (and KMS-wrapped data keys).
//!
//! - [`AwsKmsUri`]: Tink's `aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID`
//!   and alias ARNs (`…:alias/NAME`). The region is the ARN's.
//! - Credentials and endpoint come from the AWS SDK's standard chain
//!   (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
//!   `AWS_PROFILE` and the shared files, web identity, ECS/EC2 roles;
//!   `AWS_ENDPOINT_URL_KMS` or `AWS_ENDPOINT_URL`); [`AwsKmsConfig`]
//!   overrides them in code and bounds the timeouts.
//! - Associated data travels as the encryption context
//!   `{"associatedData": hex(ad)}`, omitted when empty ([`encryption_context`]).
//! - [`AwsKmsError`]: one typed error per thing that can go wrong; it
//!   converts into [`encstore_core::KekError`].
//!
//! The AWS SDK is behind the `aws` feature (on by default). Without it the
//! crate still parses URIs, and [`AwsKmsKek::open`] fails with
//! [`AwsKmsError::NotCompiled`], so a binary can offer AWS KMS as an
//! optional feature without a `cfg` at the call site.
//!
//! ```no_run
//! use encstore_awskms::AwsKmsKek;
//! use encstore_core::Kek;
//!
//! # async fn demo() -> Result<(), encstore_core::KekError> {
//! let uri = "aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/encstore-kek";
//! let kek = AwsKmsKek::open(uri).await?;
//! let wrapped = kek.wrap(b"serialized keyset", b"").await?;
//! assert_eq!(kek.unwrap(&wrapped, b"").await?, b"serialized keyset");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
#[cfg(feature = "aws")]
mod kek;
#[cfg(not(feature = "aws"))]
mod stub;
#[cfg(all(feature = "aws", feature = "test-util"))]
pub mod testing;
mod uri;

pub use config::{
    AwsKmsConfig, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_OPERATION_TIMEOUT,
};
pub use error::AwsKmsError;
#[cfg(feature = "aws")]
pub use kek::AwsKmsKek;
#[cfg(not(feature = "aws"))]
pub use stub::AwsKmsKek;
pub use uri::{AwsKmsUri, KeyResource, PREFIX, encryption_context};

/// Whether this build can reach AWS KMS (the `aws` feature).
pub const AWS_SUPPORT: bool = cfg!(feature = "aws");
