//! [`AwsKmsKek`] without the AWS SDK (the `aws` feature is off): the same
//! API, and opening a key says the build lacks AWS KMS support.

use std::convert::Infallible;
use std::fmt;

use async_trait::async_trait;
use encstore_core::{Kek, KekError};
use zeroize::Zeroizing;

use crate::config::AwsKmsConfig;
use crate::error::AwsKmsError;
use crate::uri::AwsKmsUri;

/// A KMS key used as a key-encryption key. This build has no AWS SDK, so
/// no value of this type can exist: [`AwsKmsKek::open`] parses the URI and
/// returns [`AwsKmsError::NotCompiled`].
pub struct AwsKmsKek {
    never: Infallible,
}

impl AwsKmsKek {
    /// Parses `uri`, then fails with [`AwsKmsError::NotCompiled`].
    ///
    /// # Errors
    /// [`AwsKmsError::InvalidUri`] or [`AwsKmsError::NotCompiled`].
    pub async fn open(uri: &str) -> Result<AwsKmsKek, AwsKmsError> {
        Self::open_with(uri, AwsKmsConfig::new()).await
    }

    /// As [`AwsKmsKek::open`].
    ///
    /// # Errors
    /// As [`AwsKmsKek::open`].
    pub async fn open_with(uri: &str, _config: AwsKmsConfig) -> Result<AwsKmsKek, AwsKmsError> {
        AwsKmsUri::parse(uri)?;
        Err(AwsKmsError::NotCompiled)
    }

    /// The parsed URI.
    pub fn uri(&self) -> &AwsKmsUri {
        match self.never {}
    }

    /// `Encrypt` (unreachable in this build).
    ///
    /// # Errors
    /// None: no value of this type exists.
    pub async fn encrypt(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, AwsKmsError> {
        match self.never {}
    }

    /// `Decrypt` (unreachable in this build).
    ///
    /// # Errors
    /// None: no value of this type exists.
    pub async fn decrypt(&self, _: &[u8], _: &[u8]) -> Result<Zeroizing<Vec<u8>>, AwsKmsError> {
        match self.never {}
    }
}

impl fmt::Debug for AwsKmsKek {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}

#[async_trait]
impl Kek for AwsKmsKek {
    async fn wrap(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, KekError> {
        match self.never {}
    }

    async fn unwrap(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, KekError> {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_says_the_build_lacks_aws() {
        let e = AwsKmsKek::open("aws-kms://arn:aws:kms:us-east-1:111122223333:key/abc")
            .await
            .unwrap_err();
        assert!(matches!(e, AwsKmsError::NotCompiled), "{e:?}");
        let e = AwsKmsKek::open("aws-kms://nope").await.unwrap_err();
        assert!(matches!(e, AwsKmsError::InvalidUri(_)), "{e:?}");
    }
}
