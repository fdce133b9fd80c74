//! The DEK template and the `KmsEnvelopeAeadKey` proto: parsing and
//! validation with Tink's rules, and fresh DEKs.

use prost::Message;
use zeroize::Zeroizing;

use super::{DEK_TYPES, TYPE_URL};
use crate::error::KeyError;
use crate::primitives::{self, KeyParams, RawAead};
use crate::provider::CryptoProvider;
use crate::templates::KeyTemplate;

/// Short key type name for errors.
const KEY_TYPE: &str = "KmsEnvelopeAeadKey";

/// The template of an envelope key's data-encryption keys: one of Tink's
/// envelope DEK types ([`DEK_TYPES`]) and a key format Tink accepts.
///
/// The DEK's output prefix type is ignored, as Tink ignores it: a DEK
/// always encrypts without a prefix. Holds no key material.
///
/// Its DEKs are made and used by the crypto provider it was built with
/// (under `fips`, only FIPS-approved DEK types are accepted).
#[derive(Clone)]
pub struct DekTemplate {
    /// Makes the DEKs and their AEADs.
    provider: &'static CryptoProvider,
    /// The DEK type URL, one of [`DEK_TYPES`].
    type_url: String,
    /// The serialized DEK key format (`AesGcmKeyFormat`, ...).
    key_format: Vec<u8>,
    /// What the template makes, for listings and policies.
    params: KeyParams,
}

impl PartialEq for DekTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.provider.provider() == other.provider.provider()
            && self.type_url == other.type_url
            && self.key_format == other.key_format
            && self.params == other.params
    }
}

impl Eq for DekTemplate {}

impl std::fmt::Debug for DekTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DekTemplate")
            .field("params", &self.params)
            .finish()
    }
}

impl DekTemplate {
    /// Checks a DEK template with Tink's rules: its type must be one of
    /// [`DEK_TYPES`] and its key format valid for that type (as Tink, it
    /// makes one throwaway key to be sure). The template's output prefix
    /// is ignored.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedDek`] for another key type;
    /// [`KeyError::InvalidDekTemplate`] for a key format the type refuses
    /// or (under the `fips` provider) a DEK type that is not FIPS-approved;
    /// [`KeyError::Randomness`]; [`KeyError::Provider`] when the process
    /// has no usable crypto provider.
    pub fn new(template: &KeyTemplate) -> Result<DekTemplate, KeyError> {
        let provider = crate::provider::get_default().map_err(KeyError::Provider)?;
        DekTemplate::with_provider(provider, template)
    }

    /// As [`DekTemplate::new`], with DEKs made and used by `provider`.
    ///
    /// # Errors
    /// As [`DekTemplate::new`].
    pub fn with_provider(
        provider: &'static CryptoProvider,
        template: &KeyTemplate,
    ) -> Result<DekTemplate, KeyError> {
        DekTemplate::from_parts(provider, template.type_url(), template.key_format())
    }

    pub(crate) fn from_parts(
        provider: &'static CryptoProvider,
        type_url: &str,
        key_format: &[u8],
    ) -> Result<DekTemplate, KeyError> {
        if !DEK_TYPES.contains(&type_url) {
            return Err(KeyError::UnsupportedDek {
                type_url: type_url.to_owned(),
            });
        }
        // A refusal by the `fips` provider stays itself, naming the DEK's
        // key type.
        let invalid = |e: KeyError| match e {
            KeyError::Randomness => KeyError::Randomness,
            e @ KeyError::NotFipsApproved { .. } => e,
            e => KeyError::InvalidDekTemplate { dek: Box::new(e) },
        };
        // As Tink's KmsEnvelopeAead constructors: make one DEK, so that a
        // bad template fails now rather than at the first encryption.
        let value =
            primitives::new_key_data_value(provider, type_url, key_format).map_err(invalid)?;
        let (params, _) =
            primitives::primitive_from_key_data(provider, type_url, &value).map_err(invalid)?;
        Ok(DekTemplate {
            provider,
            type_url: type_url.to_owned(),
            key_format: key_format.to_vec(),
            params,
        })
    }

    /// The crypto provider that makes and uses the DEKs.
    pub fn provider(&self) -> &'static CryptoProvider {
        self.provider
    }

    /// The DEK type URL.
    pub fn type_url(&self) -> &str {
        &self.type_url
    }

    /// The serialized DEK key format.
    pub fn key_format(&self) -> &[u8] {
        &self.key_format
    }

    /// What the DEKs are (type and parameters).
    pub fn params(&self) -> &KeyParams {
        &self.params
    }

    /// A fresh DEK: its serialized key proto (what Tink wraps, Tink's
    /// `KeyData.value`) and its AEAD.
    pub(crate) fn new_dek(&self) -> Result<NewDek, KeyError> {
        let value =
            primitives::new_key_data_value(self.provider, &self.type_url, &self.key_format)?;
        let (_, aead) = primitives::primitive_from_key_data(self.provider, &self.type_url, &value)?;
        Ok((value, aead))
    }

    /// The AEAD of an unwrapped DEK (a serialized key proto of this type,
    /// as Tink parses it: its parameters come from the DEK itself).
    pub(crate) fn dek_aead(&self, dek: &[u8]) -> Result<Box<dyn RawAead>, KeyError> {
        primitives::primitive_from_key_data(self.provider, &self.type_url, dek)
            .map(|(_, aead)| aead)
    }

    fn to_proto(&self) -> tink_proto::KeyTemplate {
        tink_proto::KeyTemplate {
            type_url: self.type_url.clone(),
            value: self.key_format.clone(),
            // Tink Java writes RAW here (`createKeyTemplate`); every Tink
            // ignores it.
            output_prefix_type: tink_proto::OutputPrefixType::Raw as i32,
        }
    }
}

/// A fresh DEK's serialized key proto and its AEAD.
pub(crate) type NewDek = (Zeroizing<Vec<u8>>, Box<dyn RawAead>);

/// A live `KmsEnvelopeAeadKey`: where its KEK is and what its DEKs are.
/// No key material: the KEK lives in a KMS.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct EnvelopeKey {
    /// `KmsEnvelopeAeadKeyFormat.kek_uri`, as written.
    pub(crate) kek_uri: String,
    /// `KmsEnvelopeAeadKeyFormat.dek_template`, validated.
    pub(crate) dek: DekTemplate,
}

impl std::fmt::Debug for EnvelopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeKey")
            .field("kek_uri", &super::shown_uri(&self.kek_uri))
            .field("dek", &self.dek)
            .finish()
    }
}

impl EnvelopeKey {
    /// The key's parameters for listings.
    pub(crate) fn params(&self) -> KeyParams {
        KeyParams::KmsEnvelope {
            kek_uri: super::shown_uri(&self.kek_uri),
            dek: Box::new(self.dek.params.clone()),
        }
    }
}

/// Checks a `KmsEnvelopeAeadKeyFormat` (the key's `params`, or a
/// template's format) as Tink does: a DEK template of a supported type
/// with a valid key format. The KEK URI is not checked (Tink does not
/// either); it is resolved when the keyset's async AEAD is built. The DEKs
/// are made by `provider`.
fn check_format(
    provider: &'static CryptoProvider,
    format: &tink_proto::KmsEnvelopeAeadKeyFormat,
) -> Result<EnvelopeKey, KeyError> {
    let dek = format
        .dek_template
        .as_ref()
        .ok_or_else(|| KeyError::InvalidParameter {
            key_type: KEY_TYPE,
            what: "dek_template is missing".to_owned(),
        })?;
    let dek = DekTemplate::from_parts(provider, &dek.type_url, &dek.value)?;
    Ok(EnvelopeKey {
        kek_uri: format.kek_uri.clone(),
        dek,
    })
}

/// Parses a `KmsEnvelopeAeadKey` (`KeyData.value`) with Tink's rules:
/// version 0 (Tink Java and Go refuse others), params present, a
/// supported DEK type and a valid DEK key format (one `provider` accepts).
pub(crate) fn parse_key(
    provider: &'static CryptoProvider,
    value: &[u8],
) -> Result<(KeyParams, EnvelopeKey), KeyError> {
    let key = tink_proto::KmsEnvelopeAeadKey::decode(value)
        .map_err(|_| KeyError::MalformedKey { key_type: KEY_TYPE })?;
    if key.version > 0 {
        return Err(KeyError::UnsupportedVersion {
            key_type: KEY_TYPE,
            version: key.version,
        });
    }
    let format = key
        .params
        .as_ref()
        .ok_or_else(|| KeyError::InvalidParameter {
            key_type: KEY_TYPE,
            what: "params (KmsEnvelopeAeadKeyFormat) is missing".to_owned(),
        })?;
    let parsed = check_format(provider, format)?;
    Ok((parsed.params(), parsed))
}

/// A new `KmsEnvelopeAeadKey` from a template's `KmsEnvelopeAeadKeyFormat`:
/// as Tink, no key material is made, the key only names the KEK and the
/// DEK template.
pub(crate) fn new_key(
    provider: &'static CryptoProvider,
    key_format: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let format = tink_proto::KmsEnvelopeAeadKeyFormat::decode(key_format).map_err(|_| {
        KeyError::MalformedKey {
            key_type: "KmsEnvelopeAeadKeyFormat",
        }
    })?;
    check_format(provider, &format)?;
    let key = tink_proto::KmsEnvelopeAeadKey {
        version: 0,
        params: Some(format),
    };
    Ok(Zeroizing::new(key.encode_to_vec()))
}

/// The serialized `KmsEnvelopeAeadKeyFormat` (Tink's envelope key format)
/// for `kek_uri` and `dek` (written with a RAW DEK prefix, as Tink Java
/// does); [`crate::templates::kms_envelope`] wraps it in a template.
pub fn key_format(kek_uri: &str, dek: &DekTemplate) -> Vec<u8> {
    tink_proto::KmsEnvelopeAeadKeyFormat {
        kek_uri: kek_uri.to_owned(),
        dek_template: Some(dek.to_proto()),
    }
    .encode_to_vec()
}

/// Whether `type_url` is the envelope key type.
pub(crate) fn is_envelope(type_url: &str) -> bool {
    type_url == TYPE_URL
}
