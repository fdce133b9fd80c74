//! `aws-kms://` key URIs, as Tink's AWS KMS integrations read them.
//!
//! Tink takes `aws-kms://` followed by a KMS key ARN,
//! `arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID`, or an alias ARN,
//! `arn:PARTITION:kms:REGION:ACCOUNT:alias/NAME`. The ARN is sent as the
//! `KeyId` of every request, and the region is the ARN's (Tink Go:
//! `aws-kms://arn:(aws[a-zA-Z0-9-_]*):kms:([a-z0-9-]+):`). encstore also
//! checks the account and the resource, so a typo is refused here rather
//! than reported by KMS as a missing key. Parsing is pure: no I/O.

use std::fmt;

use crate::error::AwsKmsError;

/// The URI prefix, as Tink spells it.
pub const PREFIX: &str = "aws-kms://";

/// What the ARN names.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyResource {
    /// `key/KEY-ID`: one key (a UUID, or `mrk-…` for a multi-Region key).
    Key(String),
    /// `alias/NAME`: whatever key the alias points to.
    Alias(String),
}

/// A parsed `aws-kms://arn:…` URI.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsKmsUri {
    /// The ARN, exactly as written after `aws-kms://`.
    arn: String,
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    partition: String,
    /// The key's region, used for every request.
    region: String,
    /// The 12-digit account ID.
    account: String,
    /// The key or alias.
    resource: KeyResource,
}

fn invalid(msg: impl Into<String>) -> AwsKmsError {
    AwsKmsError::InvalidUri(msg.into())
}

const EXPECTED: &str = "expected aws-kms://arn:aws:kms:REGION:ACCOUNT:key/KEY-ID or aws-kms://arn:aws:kms:REGION:ACCOUNT:alias/NAME";

impl AwsKmsUri {
    /// Parses `aws-kms://arn:PARTITION:kms:REGION:ACCOUNT:key/ID` or
    /// `…:alias/NAME`.
    ///
    /// # Errors
    /// [`AwsKmsError::InvalidUri`] saying what is wrong.
    pub fn parse(uri: &str) -> Result<AwsKmsUri, AwsKmsError> {
        // Tink compares the prefix exactly (Python) or case-insensitively
        // (Go); the ARN after it is case-sensitive.
        let arn = match uri.get(..PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(PREFIX) => &uri[PREFIX.len()..],
            _ => return Err(invalid(format!("not an aws-kms:// URI ({EXPECTED})"))),
        };
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() != 6 || parts[0] != "arn" || parts[2] != "kms" {
            return Err(invalid(format!("{arn:?} is not a KMS ARN ({EXPECTED})")));
        }
        let (partition, region, account, resource) = (parts[1], parts[3], parts[4], parts[5]);
        let ok_partition = partition.starts_with("aws")
            && partition
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok_partition {
            return Err(invalid(format!(
                "the partition {partition:?} is not an AWS partition (aws, aws-cn, aws-us-gov, ...)"
            )));
        }
        let ok_region = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok_region {
            return Err(invalid(format!(
                "the region {region:?} is not a region name such as us-east-1"
            )));
        }
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid(format!(
                "the account {account:?} is not a 12-digit AWS account ID"
            )));
        }
        let resource = if let Some(id) = resource.strip_prefix("key/") {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid(format!(
                    "the key ID {id:?} is not a KMS key ID (a UUID or mrk-…)"
                )));
            }
            KeyResource::Key(id.to_owned())
        } else if let Some(name) = resource.strip_prefix("alias/") {
            let ok = !name.is_empty()
                && name.len() <= 250
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'));
            if !ok {
                return Err(invalid(format!(
                    "the alias {name:?} is not a KMS alias name (letters, digits, '/', '_', '-')"
                )));
            }
            KeyResource::Alias(name.to_owned())
        } else {
            return Err(invalid(format!(
                "the resource {resource:?} is neither key/KEY-ID nor alias/NAME ({EXPECTED})"
            )));
        };
        Ok(AwsKmsUri {
            arn: arn.to_owned(),
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            resource,
        })
    }

    /// The ARN: the `KeyId` of every request.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The partition (`aws`, `aws-cn`, ...).
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The region every request goes to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The account ID.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The key or alias the ARN names.
    pub fn resource(&self) -> &KeyResource {
        &self.resource
    }

    /// Whether the ARN names a key (not an alias). As in Tink, only then is
    /// the key ID that `Decrypt` reports checked against it.
    pub fn is_key_arn(&self) -> bool {
        matches!(self.resource, KeyResource::Key(_))
    }
}

impl fmt::Display for AwsKmsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.arn)
    }
}

impl fmt::Debug for AwsKmsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AwsKmsUri({self})")
    }
}

impl std::str::FromStr for AwsKmsUri {
    type Err = AwsKmsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AwsKmsUri::parse(s)
    }
}

/// Tink's encryption context for `associated_data`: none when it is empty,
/// else `{"associatedData": lowercase hex}` (Tink Java, Go and Python alike).
pub fn encryption_context(associated_data: &[u8]) -> Option<(&'static str, String)> {
    (!associated_data.is_empty()).then(|| ("associatedData", hex::encode(associated_data)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn err(uri: &str) -> String {
        match AwsKmsUri::parse(uri) {
            Err(AwsKmsError::InvalidUri(m)) => m,
            other => panic!("{uri}: expected InvalidUri, got {other:?}"),
        }
    }

    #[test]
    fn parses_key_and_alias_arns() {
        let u = AwsKmsUri::parse(
            "aws-kms://arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        )
        .unwrap();
        assert_eq!(
            u.arn(),
            "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        );
        assert_eq!(
            (u.partition(), u.region(), u.account()),
            ("aws", "us-west-2", "111122223333")
        );
        assert_eq!(
            u.resource(),
            &KeyResource::Key("1234abcd-12ab-34cd-56ef-1234567890ab".into())
        );
        assert!(u.is_key_arn());
        assert_eq!(
            u.to_string(),
            "aws-kms://arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        );

        let u: AwsKmsUri = "aws-kms://arn:aws-cn:kms:cn-north-1:111122223333:alias/team/kek-2026"
            .parse()
            .unwrap();
        assert_eq!(u.resource(), &KeyResource::Alias("team/kek-2026".into()));
        assert!(!u.is_key_arn());
        assert_eq!(u.region(), "cn-north-1");
        assert_eq!(
            format!("{u:?}"),
            "AwsKmsUri(aws-kms://arn:aws-cn:kms:cn-north-1:111122223333:alias/team/kek-2026)"
        );
        // Multi-Region keys, the GovCloud partition, the prefix in capitals.
        let u = AwsKmsUri::parse(
            "AWS-KMS://arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        )
        .unwrap();
        assert_eq!(u.partition(), "aws-us-gov");
    }

    #[test]
    fn refuses_malformed_uris() {
        assert!(err("hcvault://h/transit/keys/k").starts_with("not an aws-kms:// URI"));
        assert!(
            err("aws-kms:arn:aws:kms:us-east-1:111122223333:key/x")
                .starts_with("not an aws-kms:// URI")
        );
        assert!(err("aws-kms://1234abcd-12ab-34cd-56ef-1234567890ab").contains("is not a KMS ARN"));
        assert!(
            err("aws-kms://arn:aws:s3:us-east-1:111122223333:key/x").contains("is not a KMS ARN")
        );
        assert!(
            err("aws-kms://arn:aws:kms:us-east-1:111122223333:key/x:y")
                .contains("is not a KMS ARN")
        );
        assert_eq!(
            err("aws-kms://arn:gcp:kms:us-east-1:111122223333:key/x"),
            "the partition \"gcp\" is not an AWS partition (aws, aws-cn, aws-us-gov, ...)"
        );
        assert_eq!(
            err("aws-kms://arn:aws:kms:US-EAST-1:111122223333:key/x"),
            "the region \"US-EAST-1\" is not a region name such as us-east-1"
        );
        assert!(err("aws-kms://arn:aws:kms::111122223333:key/x").contains("the region \"\""));
        assert_eq!(
            err("aws-kms://arn:aws:kms:us-east-1:1234:key/x"),
            "the account \"1234\" is not a 12-digit AWS account ID"
        );
        assert_eq!(
            err("aws-kms://arn:aws:kms:us-east-1:111122223333:key/"),
            "the key ID \"\" is not a KMS key ID (a UUID or mrk-…)"
        );
        assert!(
            err("aws-kms://arn:aws:kms:us-east-1:111122223333:key/a b")
                .contains("not a KMS key ID")
        );
        assert!(
            err("aws-kms://arn:aws:kms:us-east-1:111122223333:alias/").contains("not a KMS alias")
        );
        assert!(
            err("aws-kms://arn:aws:kms:us-east-1:111122223333:alias/a?b")
                .contains("not a KMS alias")
        );
        assert!(
            err("aws-kms://arn:aws:kms:us-east-1:111122223333:grant/x")
                .starts_with("the resource \"grant/x\" is neither key/KEY-ID nor alias/NAME")
        );
    }

    #[test]
    fn encryption_context_is_tinks() {
        assert_eq!(encryption_context(b""), None);
        assert_eq!(
            encryption_context(b"ad\x00\xff"),
            Some(("associatedData", "616400ff".to_owned()))
        );
    }
}
