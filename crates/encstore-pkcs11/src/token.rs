//! Loading a PKCS#11 module (once per process) and choosing the token the
//! URI names: what both opening and creating a key start with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::ck::{ck_name, one_line};
use crate::error::Pkcs11Error;
use crate::pin::{login, read_pin};
use crate::uri::Pkcs11Uri;

/// A loaded module, its token and the PIN: what both open and create need.
pub(crate) struct Conn {
    /// The module path, for Debug and messages.
    pub(crate) module_path: PathBuf,
    /// The loaded, initialised module.
    pub(crate) ctx: Pkcs11,
    /// The token's slot.
    pub(crate) slot: Slot,
    /// The token's label, for messages.
    pub(crate) token_label: String,
    /// The user PIN, zeroized on drop.
    pub(crate) pin: AuthPin,
    /// Whether the token has its own RNG (`CKF_RNG`).
    pub(crate) token_rng: bool,
}

impl Conn {
    pub(crate) fn token_err(&self, operation: &'static str, e: CkError) -> Pkcs11Error {
        Pkcs11Error::Token {
            token: format!("{:?}", self.token_label),
            operation,
            rv: ck_name(&e),
        }
    }

    pub(crate) fn login(&self, session: &Session) -> Result<(), Pkcs11Error> {
        login(session, &self.pin, &format!("{:?}", self.token_label))
    }
}

pub(crate) fn connect(
    uri: &Pkcs11Uri,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Conn, Pkcs11Error> {
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
