//! [`Pkcs11Kek`]: an AES-256 key inside a PKCS#11 token, used as a KEK.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use encstore_core::{Kek, KekError};
use zeroize::Zeroizing;

use crate::error::Pkcs11Error;
use crate::uri::{PinSource, Pkcs11Uri};

/// Length of the GCM nonce at the front of a wrapped keyset.
pub const IV_LEN: usize = 12;
/// Length of the GCM tag at the end of a wrapped keyset.
pub const TAG_LEN: usize = 16;

/// A key-encryption key that lives in a PKCS#11 token (an HSM, or SoftHSM2).
///
/// [`Kek::wrap`] runs `CKM_AES_GCM` inside the token and returns
/// `IV (12 bytes) || ciphertext || tag (16 bytes)`; the IV comes from the
/// token's random number generator (`C_GenerateRandom`), or from the
/// operating system's CSPRNG when the token has none. If the token replaces
/// the IV with one of its own choosing (as FIPS-mode HSMs do), the one it
/// used is what is written. [`Kek::unwrap`] is the inverse; a wrong key,
/// wrong associated data or any tampering gives [`KekError::Authentication`].
/// The key bytes never leave the token.
///
/// The KEK keeps one logged-in read-only session behind a mutex, and reopens
/// it (logging in again with the PIN, which it keeps in zeroizing memory)
/// if the token closes it or logs the user out. PKCS#11 calls block, so the
/// async methods run them on tokio's blocking pool.
///
/// `Debug` shows the token, key and module, never the PIN:
/// `Pkcs11Kek { token: "encstore", key: "kek-2026", module: "/usr/lib/softhsm/libsofthsm2.so" }`.
#[derive(Clone)]
pub struct Pkcs11Kek {
    /// Shared with the blocking tasks that run the PKCS#11 calls.
    inner: Arc<Inner>,
}

struct Inner {
    /// The parsed URI: which token and key, for re-finding after a reconnect.
    uri: Pkcs11Uri,
    /// What was loaded, for Debug and messages.
    module_path: PathBuf,
    /// The loaded, initialised module; shared process-wide per module path.
    ctx: Pkcs11,
    /// The token's slot.
    slot: Slot,
    /// The token's label, for messages.
    token_label: String,
    /// The user PIN, kept (zeroized on drop) so the KEK can log in again.
    pin: AuthPin,
    /// Whether the token has its own RNG (`CKF_RNG`) to draw IVs from.
    token_rng: bool,
    /// The logged-in session and the key handle valid in it; `None` after a
    /// failure, so the next operation reconnects.
    live: Mutex<Option<Live>>,
}

/// A logged-in session and the key's handle in it.
struct Live {
    session: Session,
    key: ObjectHandle,
}

impl fmt::Debug for Pkcs11Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Kek")
            .field("token", &self.inner.token_label)
            .field("key", &DisplayAsDebug(&self.inner.uri.key_description()))
            .field("module", &self.inner.module_path)
            .finish()
    }
}

struct DisplayAsDebug<'a>(&'a str);
impl fmt::Debug for DisplayAsDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Pkcs11Kek {
    /// Opens the key that `uri` names: loads the module, finds the token,
    /// logs in as the user with the PIN from `pin-source` (or
    /// `ENCSTORE_PKCS11_PIN_FILE`), and checks that exactly one object
    /// matches `object=`/`id=` and that it is an AES secret key allowed to
    /// encrypt and decrypt.
    ///
    /// This blocks (module loading, login); from async code call it inside
    /// `tokio::task::spawn_blocking`. The error converts into
    /// [`KekError`] with `?`.
    pub fn open(uri: &str) -> Result<Self, Pkcs11Error> {
        Self::open_with_env(uri, &|k| std::env::var(k).ok())
    }

    /// Creates a new AES-256 key in the token, with the URI's `object=` as
    /// its label (and `id=` as its `CKA_ID` if given), then opens it.
    ///
    /// The key is generated in the token (`CKM_AES_KEY_GEN`) as a private,
    /// sensitive, non-extractable token object allowed to encrypt and decrypt
    /// only. Refuses with [`Pkcs11Error::KeyExists`] if any object already
    /// has that label (or id). Blocks, like [`Pkcs11Kek::open`].
    pub fn create_master_key(uri: &str) -> Result<Self, Pkcs11Error> {
        let env = |k: &str| std::env::var(k).ok();
        let parsed = Pkcs11Uri::parse(uri)?;
        let Some(label) = parsed.object.clone() else {
            return Err(Pkcs11Error::InvalidUri(
                "creating a master key needs object=LABEL in the URI".to_owned(),
            ));
        };
        let conn = connect(&parsed, &env)?;
        {
            let session = conn
                .ctx
                .open_rw_session(conn.slot)
                .map_err(|e| conn.token_err("opening a session", e))?;
            conn.login(&session)?;
            let mut taken = session
                .find_objects(&[Attribute::Label(label.clone().into_bytes())])
                .map_err(|e| conn.token_err("searching for the key", e))?;
            if let Some(id) = &parsed.id {
                taken.extend(
                    session
                        .find_objects(&[Attribute::Id(id.clone())])
                        .map_err(|e| conn.token_err("searching for the key", e))?,
                );
            }
            if !taken.is_empty() {
                return Err(Pkcs11Error::KeyExists {
                    token: format!("{:?}", conn.token_label),
                    key: parsed.key_description(),
                });
            }
            let mut template = vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Sign(false),
                Attribute::Verify(false),
                Attribute::Derive(false),
                Attribute::Label(label.into_bytes()),
            ];
            if let Some(id) = &parsed.id {
                template.push(Attribute::Id(id.clone()));
            }
            session
                .generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(|e| conn.token_err("generating the AES key", e))?;
            tracing::info!(token = %conn.token_label, key = %parsed.key_description(), "created PKCS#11 master key");
        }
        Self::finish_open(parsed, conn)
    }

    /// [`Pkcs11Kek::open`] with an explicit environment lookup (for tests).
    pub(crate) fn open_with_env(
        uri: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Pkcs11Error> {
        let parsed = Pkcs11Uri::parse(uri)?;
        let conn = connect(&parsed, env)?;
        Self::finish_open(parsed, conn)
    }

    fn finish_open(uri: Pkcs11Uri, conn: Conn) -> Result<Self, Pkcs11Error> {
        let inner = Inner {
            uri,
            module_path: conn.module_path,
            ctx: conn.ctx,
            slot: conn.slot,
            token_label: conn.token_label,
            pin: conn.pin,
            token_rng: conn.token_rng,
            live: Mutex::new(None),
        };
        let live = inner.connect_live()?;
        *inner.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(live);
        tracing::debug!(token = %inner.token_label, key = %inner.uri.key_description(), "opened PKCS#11 KEK");
        Ok(Pkcs11Kek {
            inner: Arc::new(inner),
        })
    }

    /// The URI this KEK was opened from (it never contains a PIN).
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.inner.uri
    }

    /// Blocking [`Kek::wrap`], typed error.
    pub fn wrap_blocking(&self, plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        self.inner.wrap(plaintext, ad)
    }

    /// Blocking [`Kek::unwrap`], typed error.
    pub fn unwrap_blocking(&self, ciphertext: &[u8], ad: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        self.inner.unwrap(ciphertext, ad)
    }
}

#[async_trait]
impl Kek for Pkcs11Kek {
    async fn wrap(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        let inner = Arc::clone(&self.inner);
        let pt = Zeroizing::new(plaintext.to_vec());
        let ad = associated_data.to_vec();
        tokio::task::spawn_blocking(move || inner.wrap(&pt, &ad))
            .await
            .map_err(join_error)?
            .map_err(KekError::from)
    }

    async fn unwrap(&self, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KekError> {
        let inner = Arc::clone(&self.inner);
        let ct = ciphertext.to_vec();
        let ad = associated_data.to_vec();
        tokio::task::spawn_blocking(move || inner.unwrap(&ct, &ad))
            .await
            .map_err(join_error)?
            .map_err(KekError::from)
    }
}

fn join_error(e: tokio::task::JoinError) -> KekError {
    KekError::failed(format!("the PKCS#11 worker task did not finish: {e}"))
}

impl Inner {
    fn wrap(&self, plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let out = self.with_live("wrap", |session, key| {
            let mut iv = [0u8; IV_LEN];
            self.fill_iv(session, &mut iv)?;
            let ct = {
                let params = GcmParams::new(&mut iv, ad, (TAG_LEN as u64 * 8).into())?;
                session.encrypt(&Mechanism::AesGcm(params), key, plaintext)?
            };
            let mut out = Vec::with_capacity(IV_LEN + ct.len());
            out.extend_from_slice(&iv);
            out.extend_from_slice(&ct);
            Ok(out)
        })?;
        if out.len() != IV_LEN + plaintext.len() + TAG_LEN {
            return Err(self.op_error(
                "wrap",
                format!(
                    "the token returned {} bytes of AES-GCM output for {} bytes of input",
                    out.len() - IV_LEN,
                    plaintext.len()
                ),
            ));
        }
        Ok(out)
    }

    fn unwrap(&self, ciphertext: &[u8], ad: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        if ciphertext.len() < IV_LEN + TAG_LEN {
            return Err(Pkcs11Error::Authentication);
        }
        let (iv, body) = ciphertext.split_at(IV_LEN);
        self.with_live("unwrap", |session, key| {
            let mut iv = <[u8; IV_LEN]>::try_from(iv)?;
            let params = GcmParams::new(&mut iv, ad, (TAG_LEN as u64 * 8).into())?;
            match session.decrypt(&Mechanism::AesGcm(params), key, body) {
                // The spec's answer to a bad tag is CKR_ENCRYPTED_DATA_INVALID,
                // but SoftHSM2 (and some HSMs) say CKR_GENERAL_ERROR or
                // CKR_FUNCTION_FAILED. Tell a bad tag from a broken token by
                // checking that the key still works: if it encrypts, the
                // token is healthy and the ciphertext was at fault.
                Err(e @ CkError::Pkcs11(RvError::GeneralError | RvError::FunctionFailed, _)) => {
                    if key_still_works(session, key) {
                        Err(CkError::Pkcs11(
                            RvError::EncryptedDataInvalid,
                            Function::Decrypt,
                        ))
                    } else {
                        Err(e)
                    }
                }
                other => other,
            }
        })
    }

    /// Draws the IV from the token's RNG, or from the OS if the token has none.
    fn fill_iv(&self, session: &Session, iv: &mut [u8]) -> cryptoki::error::Result<()> {
        if self.token_rng {
            match session.generate_random_slice(iv) {
                Ok(()) => return Ok(()),
                Err(CkError::Pkcs11(RvError::FunctionNotSupported | RvError::RandomNoRng, _)) => {}
                Err(e) => return Err(e),
            }
        }
        getrandom::fill(iv)
            .map_err(|_| CkError::Pkcs11(RvError::RandomNoRng, Function::GenerateRandom))
    }

    /// Runs `f` on the logged-in session, reconnecting once if the token
    /// closed the session, logged the user out or invalidated the handle.
    fn with_live<T>(
        &self,
        operation: &'static str,
        f: impl Fn(&Session, ObjectHandle) -> cryptoki::error::Result<T>,
    ) -> Result<T, Pkcs11Error> {
        let mut guard = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let mut retried = false;
        loop {
            if guard.is_none() {
                // Only after a failure: the first session is made by open().
                match self.connect_live() {
                    Ok(live) => *guard = Some(live),
                    Err(Pkcs11Error::Token {
                        operation: step,
                        rv,
                        ..
                    }) => {
                        return Err(self.op_error(
                            operation,
                            format!("reconnecting to the token, {step} failed ({rv})"),
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(live) = guard.as_ref() else {
                continue;
            };
            match f(&live.session, live.key) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let rv = match &e {
                        CkError::Pkcs11(rv, _) => Some(*rv),
                        _ => None,
                    };
                    if operation == "unwrap"
                        && matches!(
                            rv,
                            Some(RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange)
                        )
                    {
                        return Err(Pkcs11Error::Authentication);
                    }
                    let reconnectable = matches!(
                        rv,
                        Some(
                            RvError::SessionHandleInvalid
                                | RvError::SessionClosed
                                | RvError::UserNotLoggedIn
                                | RvError::ObjectHandleInvalid
                                | RvError::KeyHandleInvalid
                        )
                    );
                    // Whatever happened, do not reuse this session.
                    *guard = None;
                    if reconnectable && !retried {
                        retried = true;
                        tracing::warn!(token = %self.token_label, %operation, error = %ck_name(&e), "PKCS#11 session lost; reconnecting");
                        continue;
                    }
                    return Err(self.op_error(operation, explain(&e)));
                }
            }
        }
    }

    fn op_error(&self, operation: &'static str, reason: String) -> Pkcs11Error {
        Pkcs11Error::Operation {
            operation,
            token: format!("{:?}", self.token_label),
            key: self.uri.key_description(),
            reason,
        }
    }

    /// Opens a session, logs in and finds the key.
    fn connect_live(&self) -> Result<Live, Pkcs11Error> {
        let token = format!("{:?}", self.token_label);
        let token_err = |operation: &'static str, e: CkError| Pkcs11Error::Token {
            token: token.clone(),
            operation,
            rv: ck_name(&e),
        };
        let session = self
            .ctx
            .open_ro_session(self.slot)
            .map_err(|e| token_err("opening a session", e))?;
        login(&session, &self.pin, &token)?;
        let key = self.uri.key_description();
        let mut template = Vec::new();
        if let Some(l) = &self.uri.object {
            template.push(Attribute::Label(l.clone().into_bytes()));
        }
        if let Some(id) = &self.uri.id {
            template.push(Attribute::Id(id.clone()));
        }
        let found = session
            .find_objects(&template)
            .map_err(|e| token_err("searching for the key", e))?;
        let handle = match found.as_slice() {
            [] => return Err(Pkcs11Error::KeyNotFound { token, key }),
            [one] => *one,
            many => {
                return Err(Pkcs11Error::AmbiguousKey {
                    token,
                    key,
                    count: many.len(),
                });
            }
        };
        let attrs = session
            .get_attributes(
                handle,
                &[
                    AttributeType::Class,
                    AttributeType::KeyType,
                    AttributeType::Encrypt,
                    AttributeType::Decrypt,
                ],
            )
            .map_err(|e| token_err("reading the key's attributes", e))?;
        let (mut class, mut key_type, mut encrypt, mut decrypt) = (None, None, false, false);
        for a in attrs {
            match a {
                Attribute::Class(c) => class = Some(c),
                Attribute::KeyType(k) => key_type = Some(k),
                Attribute::Encrypt(b) => encrypt = b,
                Attribute::Decrypt(b) => decrypt = b,
                _ => {}
            }
        }
        if class != Some(ObjectClass::SECRET_KEY) || key_type != Some(KeyType::AES) {
            return Err(Pkcs11Error::NotAesKey {
                token,
                key,
                found: describe_object(class, key_type),
            });
        }
        let missing = match (encrypt, decrypt) {
            (true, true) => None,
            (false, true) => Some("CKA_ENCRYPT"),
            (true, false) => Some("CKA_DECRYPT"),
            (false, false) => Some("CKA_ENCRYPT and CKA_DECRYPT"),
        };
        if let Some(missing) = missing {
            return Err(Pkcs11Error::KeyUsage {
                token,
                key,
                missing,
            });
        }
        Ok(Live {
            session,
            key: handle,
        })
    }
}

/// Whether `key` can still encrypt in `session` (a health probe: one GCM
/// encryption of nothing under a fresh IV, which reveals nothing).
fn key_still_works(session: &Session, key: ObjectHandle) -> bool {
    let mut iv = [0u8; IV_LEN];
    if getrandom::fill(&mut iv).is_err() {
        return false;
    }
    let Ok(params) = GcmParams::new(&mut iv, &[], (TAG_LEN as u64 * 8).into()) else {
        return false;
    };
    session
        .encrypt(&Mechanism::AesGcm(params), key, &[])
        .is_ok_and(|tag| tag.len() == TAG_LEN)
}

fn describe_object(class: Option<ObjectClass>, key_type: Option<KeyType>) -> String {
    let kt = |k: KeyType| {
        if k == KeyType::DES3 {
            "DES3".to_owned()
        } else if k == KeyType::GENERIC_SECRET {
            "generic".to_owned()
        } else if k == KeyType::AES {
            "AES".to_owned()
        } else {
            k.to_string()
        }
    };
    match (class, key_type) {
        (Some(c), Some(k)) if c == ObjectClass::SECRET_KEY => format!("a {} secret key", kt(k)),
        (Some(c), Some(k)) if c == ObjectClass::PRIVATE_KEY => format!("a {} private key", kt(k)),
        (Some(c), Some(k)) if c == ObjectClass::PUBLIC_KEY => format!("a {} public key", kt(k)),
        (Some(c), _) => format!("an object of class {c}"),
        (None, _) => "an object of unknown class".to_owned(),
    }
}

/// A loaded module, its token and the PIN: what both open and create need.
struct Conn {
    module_path: PathBuf,
    ctx: Pkcs11,
    slot: Slot,
    token_label: String,
    pin: AuthPin,
    token_rng: bool,
}

impl Conn {
    fn token_err(&self, operation: &'static str, e: CkError) -> Pkcs11Error {
        Pkcs11Error::Token {
            token: format!("{:?}", self.token_label),
            operation,
            rv: ck_name(&e),
        }
    }

    fn login(&self, session: &Session) -> Result<(), Pkcs11Error> {
        login(session, &self.pin, &format!("{:?}", self.token_label))
    }
}

fn login(session: &Session, pin: &AuthPin, token: &str) -> Result<(), Pkcs11Error> {
    login_outcome(session.login(UserType::User, Some(pin)), token)
}

/// What a `C_Login` result means for the user. Kept apart so that
/// `CKR_PIN_LOCKED`, which SoftHSM2 never returns, is tested too.
fn login_outcome(result: cryptoki::error::Result<()>, token: &str) -> Result<(), Pkcs11Error> {
    match result {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(
            RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
            _,
        )) => Err(Pkcs11Error::WrongPin {
            token: token.to_owned(),
        }),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Pkcs11Error::PinLocked {
            token: token.to_owned(),
        }),
        Err(e) => Err(Pkcs11Error::Token {
            token: token.to_owned(),
            operation: "logging in",
            rv: ck_name(&e),
        }),
    }
}

fn connect(uri: &Pkcs11Uri, env: &dyn Fn(&str) -> Option<String>) -> Result<Conn, Pkcs11Error> {
    let module_path = uri.resolve_module(env)?;
    let pin_source = uri.resolve_pin_source(env)?;
    let ctx = load_module(&module_path)?;
    let (slot, token_label, token_rng) = find_token(&ctx, uri, &module_path)?;
    check_gcm(&ctx, slot, &token_label)?;
    let pin = read_pin(&pin_source, env)?;
    Ok(Conn {
        module_path,
        ctx,
        slot,
        token_label,
        pin,
        token_rng,
    })
}

/// Refuses a token that cannot do AES-GCM encryption and decryption.
fn check_gcm(ctx: &Pkcs11, slot: Slot, token_label: &str) -> Result<(), Pkcs11Error> {
    let unsupported = || Pkcs11Error::Unsupported {
        token: format!("{token_label:?}"),
        mechanism: "CKM_AES_GCM encryption and decryption",
    };
    match ctx.get_mechanism_info(slot, MechanismType::AES_GCM) {
        Ok(info) if info.encrypt() && info.decrypt() => Ok(()),
        Ok(_) | Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => Err(unsupported()),
        Err(e) => Err(Pkcs11Error::Token {
            token: format!("{token_label:?}"),
            operation: "reading the AES-GCM mechanism information",
            rv: ck_name(&e),
        }),
    }
}

/// Loads and initialises a module once per process. Contexts are kept for
/// the life of the process and never finalised: `C_Finalize` would end every
/// other KEK's sessions on the same module.
fn load_module(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    if !path.is_file() {
        return Err(Pkcs11Error::ModuleNotFound {
            path: path.to_owned(),
        });
    }
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let load_err = |reason: String| Pkcs11Error::ModuleLoad {
        path: path.to_owned(),
        reason,
    };
    let ctx = match modules.get(&key) {
        Some(ctx) => ctx.clone(),
        None => {
            let ctx = Pkcs11::new(&key).map_err(|e| load_err(one_line(&e.to_string())))?;
            modules.insert(key, ctx.clone());
            ctx
        }
    };
    // Initialise it if nobody has, or again if someone finalised it.
    match ctx.get_library_info() {
        Ok(_) => Ok(ctx),
        Err(CkError::Pkcs11(RvError::CryptokiNotInitialized, _)) => {
            match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
                Err(e) => Err(load_err(format!(
                    "initialising it failed ({})",
                    ck_name(&e)
                ))),
            }
        }
        Err(e) => Err(load_err(format!(
            "reading its information failed ({})",
            ck_name(&e)
        ))),
    }
}

fn find_token(
    ctx: &Pkcs11,
    uri: &Pkcs11Uri,
    module: &Path,
) -> Result<(Slot, String, bool), Pkcs11Error> {
    let module_err = |operation: &'static str, e: CkError| Pkcs11Error::Module {
        path: module.to_owned(),
        operation,
        rv: ck_name(&e),
    };
    let wanted = uri.token_description();
    if uri.library_manufacturer.is_some() || uri.library_description.is_some() {
        let info = ctx
            .get_library_info()
            .map_err(|e| module_err("reading the module information", e))?;
        let lib_ok = eq_opt(&uri.library_manufacturer, info.manufacturer_id())
            && eq_opt(&uri.library_description, info.library_description());
        if !lib_ok {
            return Err(Pkcs11Error::TokenNotFound {
                wanted: format!(
                    "{wanted} (library-manufacturer/library-description do not match the module)"
                ),
                module: module.to_owned(),
                available: Vec::new(),
            });
        }
    }
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(|e| module_err("listing tokens", e))?;
    let mut available = Vec::new();
    let mut matches = Vec::new();
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| module_err("reading token information", e))?;
        let label = info.label().trim_end().to_owned();
        let mut ok = eq_opt(&uri.token, &label)
            && eq_opt(&uri.manufacturer, info.manufacturer_id())
            && eq_opt(&uri.serial, info.serial_number())
            && eq_opt(&uri.model, info.model())
            && uri.slot_id.is_none_or(|id| id == slot.id());
        if ok && (uri.slot_description.is_some() || uri.slot_manufacturer.is_some()) {
            let s = ctx
                .get_slot_info(slot)
                .map_err(|e| module_err("reading slot information", e))?;
            ok = eq_opt(&uri.slot_description, s.slot_description())
                && eq_opt(&uri.slot_manufacturer, s.manufacturer_id());
        }
        if ok {
            matches.push((slot, label.clone(), info.rng()));
        }
        available.push(label);
    }
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(Pkcs11Error::TokenNotFound {
            wanted,
            module: module.to_owned(),
            available,
        }),
        count => Err(Pkcs11Error::AmbiguousToken { wanted, count }),
    }
}

fn eq_opt(want: &Option<String>, have: &str) -> bool {
    want.as_deref().is_none_or(|w| w == have.trim_end())
}

/// Reads the PIN into zeroizing memory. The error names the source, never
/// its content.
fn read_pin(
    source: &PinSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuthPin, Pkcs11Error> {
    let err = |reason: String| Pkcs11Error::PinSource {
        source_name: source.to_string(),
        reason,
    };
    let raw: Zeroizing<Vec<u8>> = match source {
        PinSource::File(path) => {
            let bytes =
                Zeroizing::new(std::fs::read(path).map_err(|e| err(one_line(&e.to_string())))?);
            warn_if_readable_by_others(path);
            bytes
        }
        PinSource::Env(var) => {
            let v =
                Zeroizing::new(env(var).ok_or_else(|| err("the variable is not set".to_owned()))?);
            Zeroizing::new(v.as_bytes().to_vec())
        }
    };
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let pin =
        std::str::from_utf8(&raw[..end]).map_err(|_| err("the PIN is not UTF-8".to_owned()))?;
    if pin.is_empty() {
        return Err(err("it is empty".to_owned()));
    }
    Ok(AuthPin::from(String::from(pin)))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(path = %path.display(), "the PKCS#11 PIN file is readable by every user; chmod 0600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// `CKR_…`-style name of a cryptoki error, short and on one line.
fn ck_name(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("{} from C_{func:?}", rv_name(*rv)),
        CkError::LibraryLoading(l) => one_line(&l.to_string()),
        other => one_line(&other.to_string()),
    }
}

fn rv_name(rv: RvError) -> String {
    // RvError's Debug is the CamelCase of the CKR_ name; turn it back.
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The reason text for a mid-operation failure.
fn explain(e: &CkError) -> String {
    let hint = match e {
        CkError::Pkcs11(RvError::CryptokiNotInitialized, _) => {
            " (the module was finalised by another part of this process; open the KEK again)"
        }
        CkError::Pkcs11(RvError::SessionHandleInvalid | RvError::SessionClosed, _) => {
            " (the token closed the session)"
        }
        CkError::Pkcs11(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid, _) => {
            " (the key object is no longer on the token)"
        }
        CkError::Pkcs11(RvError::DeviceRemoved | RvError::TokenNotPresent, _) => {
            " (the token was removed)"
        }
        _ => "",
    };
    format!("{}{hint}", ck_name(e))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs11_kek_is_send_and_sync() {
        fn assert<T: Send + Sync + 'static>() {}
        assert::<Pkcs11Kek>();
        assert::<Pkcs11Error>();
    }

    #[test]
    fn wrong_and_locked_pins_are_told_apart() {
        let t = "\"encstore\"";
        let e = login_outcome(
            Err(CkError::Pkcs11(RvError::PinIncorrect, Function::Login)),
            t,
        )
        .unwrap_err();
        assert!(matches!(e, Pkcs11Error::WrongPin { .. }), "{e:?}");
        let e = login_outcome(Err(CkError::Pkcs11(RvError::PinLocked, Function::Login)), t)
            .unwrap_err();
        assert!(matches!(e, Pkcs11Error::PinLocked { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "PKCS#11 token \"encstore\": the user PIN is locked (CKR_PIN_LOCKED); the token's security officer must reset it"
        );
        login_outcome(Ok(()), t).unwrap();
        login_outcome(
            Err(CkError::Pkcs11(
                RvError::UserAlreadyLoggedIn,
                Function::Login,
            )),
            t,
        )
        .unwrap();
        let e = login_outcome(
            Err(CkError::Pkcs11(RvError::DeviceError, Function::Login)),
            t,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "PKCS#11 token \"encstore\": logging in failed (CKR_DEVICE_ERROR from C_Login)"
        );
    }

    #[test]
    fn rv_names_match_pkcs11() {
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(rv_name(RvError::PinLocked), "CKR_PIN_LOCKED");
        assert_eq!(
            rv_name(RvError::SessionHandleInvalid),
            "CKR_SESSION_HANDLE_INVALID"
        );
    }

    #[test]
    fn missing_module_is_reported() {
        let e = Pkcs11Kek::open_with_env(
            "pkcs11:token=t;object=k?module-path=/nonexistent/libnope.so&pin-source=env:X",
            &|_| None,
        )
        .unwrap_err();
        assert!(matches!(e, Pkcs11Error::ModuleNotFound { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "PKCS#11 module /nonexistent/libnope.so not found"
        );
        let k: KekError = e.into();
        assert!(matches!(k, KekError::Unavailable(_)));
    }

    #[test]
    fn a_file_that_is_not_a_module_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake.so");
        std::fs::write(&fake, b"not an ELF file").unwrap();
        let uri = format!(
            "pkcs11:token=t;object=k?module-path={}&pin-source=env:X",
            fake.display()
        );
        let e = Pkcs11Kek::open_with_env(&uri, &|_| None).unwrap_err();
        assert!(matches!(e, Pkcs11Error::ModuleLoad { .. }), "{e:?}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn pin_sources_are_read_and_trimmed_without_leaking() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pin");
        std::fs::write(&f, b"PIN-SENTINEL-7391\r\n").unwrap();
        let pin = read_pin(&PinSource::File(f.clone()), &|_| None).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(pin.expose_secret(), "PIN-SENTINEL-7391");
        assert!(!format!("{pin:?}").contains("PIN-SENTINEL"));

        std::fs::write(&f, b"\n").unwrap();
        let e = read_pin(&PinSource::File(f.clone()), &|_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read the PKCS#11 PIN from file:{}: it is empty",
                f.display()
            )
        );
        let e = read_pin(&PinSource::File(dir.path().join("absent")), &|_| None).unwrap_err();
        assert!(matches!(e, Pkcs11Error::PinSource { .. }));

        let env = |k: &str| (k == "HSM_PIN").then(|| "PIN-SENTINEL-7391".to_owned());
        let pin = read_pin(&PinSource::Env("HSM_PIN".into()), &env).unwrap();
        assert_eq!(pin.expose_secret(), "PIN-SENTINEL-7391");
        let e = read_pin(&PinSource::Env("OTHER".into()), &env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read the PKCS#11 PIN from env:OTHER: the variable is not set"
        );
    }
}
