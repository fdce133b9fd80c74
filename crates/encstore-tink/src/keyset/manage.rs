//! Creating keysets and managing their keys.

use std::collections::HashSet;

use tink_proto::key_data::KeyMaterialType;
use zeroize::Zeroizing;

use super::key::{Key, build_key, new_key};
use super::{KeyStatus, Keyset, default_provider};
use crate::error::KeysetError;
use crate::provider::CryptoProvider;
use crate::templates::KeyTemplate;

impl Keyset {
    // ----------------------------------------------------------- manage

    /// Creates a keyset with one new key from `template`, as its primary.
    pub fn generate(template: &KeyTemplate) -> Result<Keyset, KeysetError> {
        Keyset::generate_with_provider(template, default_provider()?)
    }

    /// [`Keyset::generate`] with `provider` (see [`crate::provider`]):
    /// the new key's material and primitive come from it, and so do those
    /// of keys added later.
    ///
    /// # Errors
    /// Those of [`Keyset::generate`]; under `fips`, a template of a key type
    /// that is not FIPS-approved fails with [`KeysetError::Template`] and
    /// [`KeyError::NotFipsApproved`](crate::error::KeyError::NotFipsApproved).
    pub fn generate_with_provider(
        template: &KeyTemplate,
        provider: &'static CryptoProvider,
    ) -> Result<Keyset, KeysetError> {
        let key = new_key(provider, template, &HashSet::new())?;
        let id = key.id;
        Ok(Keyset {
            primary_key_id: id,
            keys: vec![key],
            provider,
        })
    }

    /// The provider this keyset's primitives come from.
    pub fn provider(&self) -> &'static CryptoProvider {
        self.provider
    }

    /// This keyset with every key's primitive built again by `provider`:
    /// the same keys, IDs, statuses and bytes. Under `fips` this is where a
    /// keyset read under another provider is checked: a key that is not
    /// FIPS-approved (ENABLED or DISABLED) is refused.
    ///
    /// # Errors
    /// [`KeysetError::Key`] naming the key and, under `fips`,
    /// [`KeyError::NotFipsApproved`](crate::error::KeyError::NotFipsApproved) naming its type.
    pub fn with_provider(&self, provider: &'static CryptoProvider) -> Result<Keyset, KeysetError> {
        let mut keys = self.keys.clone();
        for k in &mut keys {
            if k.primitive.is_some() {
                let (params, primitive) =
                    build_key(provider, &k.type_url, &k.value).map_err(|source| {
                        KeysetError::Key {
                            key_id: k.id,
                            source,
                        }
                    })?;
                k.params = Some(params);
                k.primitive = Some(primitive);
            }
        }
        Ok(Keyset {
            primary_key_id: self.primary_key_id,
            keys,
            provider,
        })
    }

    /// Adds a new ENABLED key from `template` (not primary) and returns its
    /// ID: random from the OS CSPRNG, non-zero and unique in the keyset.
    ///
    /// # Errors
    /// [`KeysetError::TemplatePrimitive`] when the template makes keys of
    /// another primitive than the keyset's (a streaming template for an
    /// AEAD keyset, or the reverse); the template's errors.
    pub fn add_key(&mut self, template: &KeyTemplate) -> Result<u32, KeysetError> {
        let ids: HashSet<u32> = self.keys.iter().map(|k| k.id).collect();
        let key = new_key(self.provider, template, &ids)?;
        let keyset = self.primitive();
        if let Some(p) = &key.primitive
            && p.kind() != keyset
        {
            return Err(KeysetError::TemplatePrimitive {
                template: p.kind(),
                keyset,
            });
        }
        let id = key.id;
        self.keys.push(key);
        Ok(id)
    }

    /// Adds a new key from `template` and makes it the primary (Tink's
    /// `rotate`). Returns its ID.
    pub fn rotate(&mut self, template: &KeyTemplate) -> Result<u32, KeysetError> {
        let id = self.add_key(template)?;
        self.primary_key_id = id;
        Ok(id)
    }

    /// Makes key `key_id` the primary. It must be ENABLED.
    pub fn promote(&mut self, key_id: u32) -> Result<(), KeysetError> {
        let key = self.find(key_id)?;
        if key.status != KeyStatus::Enabled {
            return Err(KeysetError::KeyNotEnabled {
                key_id,
                status: key.status,
            });
        }
        self.primary_key_id = key_id;
        Ok(())
    }

    /// Enables key `key_id` (ENABLED or DISABLED; a DESTROYED key cannot be
    /// enabled).
    pub fn enable(&mut self, key_id: u32) -> Result<(), KeysetError> {
        let key = self.find_mut(key_id)?;
        if key.status == KeyStatus::Destroyed {
            return Err(KeysetError::KeyDestroyed {
                key_id,
                operation: "enable",
            });
        }
        key.status = KeyStatus::Enabled;
        Ok(())
    }

    /// Disables key `key_id`. Not the primary; not a DESTROYED key.
    pub fn disable(&mut self, key_id: u32) -> Result<(), KeysetError> {
        self.refuse_primary(key_id, "disable")?;
        let key = self.find_mut(key_id)?;
        if key.status == KeyStatus::Destroyed {
            return Err(KeysetError::KeyDestroyed {
                key_id,
                operation: "disable",
            });
        }
        key.status = KeyStatus::Disabled;
        Ok(())
    }

    /// Destroys key `key_id`: wipes and drops its key data, keeps its ID,
    /// status DESTROYED. Not the primary. Destroying a destroyed key is
    /// allowed (Tink allows it too).
    pub fn destroy(&mut self, key_id: u32) -> Result<(), KeysetError> {
        self.refuse_primary(key_id, "destroy")?;
        let key = self.find_mut(key_id)?;
        key.status = KeyStatus::Destroyed;
        key.type_url.clear();
        key.material_type = KeyMaterialType::UnknownKeymaterial as i32;
        key.value = Zeroizing::new(Vec::new());
        key.has_key_data = false;
        key.params = None;
        key.primitive = None;
        Ok(())
    }

    /// Deletes key `key_id` from the keyset. Not the primary.
    pub fn delete(&mut self, key_id: u32) -> Result<(), KeysetError> {
        self.refuse_primary(key_id, "delete")?;
        let pos = self
            .keys
            .iter()
            .position(|k| k.id == key_id)
            .ok_or(KeysetError::KeyNotFound { key_id })?;
        self.keys.remove(pos);
        Ok(())
    }

    fn refuse_primary(&self, key_id: u32, operation: &'static str) -> Result<(), KeysetError> {
        if key_id == self.primary_key_id {
            return Err(KeysetError::PrimaryKey { key_id, operation });
        }
        Ok(())
    }

    fn find(&self, key_id: u32) -> Result<&Key, KeysetError> {
        self.keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or(KeysetError::KeyNotFound { key_id })
    }

    fn find_mut(&mut self, key_id: u32) -> Result<&mut Key, KeysetError> {
        self.keys
            .iter_mut()
            .find(|k| k.id == key_id)
            .ok_or(KeysetError::KeyNotFound { key_id })
    }
}
