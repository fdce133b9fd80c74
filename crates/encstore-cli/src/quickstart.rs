//! `encstore quickstart`: the whole key-rotation story on a local store,
//! printing each step and the exact `encstore` command it runs.
//!
//! Every step (except storing the secrets, whose values go through stdin in
//! real use) runs by parsing the printed command line with the same parser
//! as the real binary and running it in-process, so what the tour shows is
//! exactly what it does.
//!
//! Files: `DIR/keysets/quickstart.json` (a cleartext keyset: development
//! only) and the store `DIR/demo-store/` (DIR defaults to the current
//! directory). It is re-runnable: each run starts fresh, deleting the keyset
//! file and the `quickstart/` keys of an earlier run (nothing else).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use encstore_tink::keyset::Keyset;

use crate::cli::{Cli, Command, Quickstart, StoreKeysetArgs};
use crate::text::sh as shell_word;

/// The secrets the tour stores: (key, value).
const SECRETS: &[(&str, &str)] = &[
    (
        "quickstart/certs/example.com.key",
        "-----BEGIN PRIVATE KEY----- (demo) -----END PRIVATE KEY-----",
    ),
    (
        "quickstart/certs/example.com.crt",
        "-----BEGIN CERTIFICATE----- (demo) -----END CERTIFICATE-----",
    ),
    (
        "quickstart/acme/account.json",
        "{\"contact\":\"mailto:ops@example.com\"}",
    ),
    ("quickstart/db/password", "correct horse battery staple"),
    ("quickstart/api/token", "tok_3f9a1c0e7b"),
];

fn say(text: &str) {
    println!("{text}");
}

fn step(n: u32, title: &str, why: &str) {
    println!();
    println!("== Step {n}/8: {title}");
    for line in why.lines() {
        println!("   {line}");
    }
}

/// Prints `$ encstore ARGS` and runs it in-process.
async fn run_cmd(args: &[String]) -> Result<()> {
    let shown: Vec<String> = args.iter().map(|a| shell_word(a)).collect();
    println!("$ encstore {}", shown.join(" "));
    let mut argv = vec!["encstore".to_owned()];
    argv.extend(args.iter().cloned());
    let cli = Cli::try_parse_from(&argv).map_err(|e| anyhow!("quickstart: bad command: {e}"))?;
    if matches!(cli.command, Command::Quickstart(_)) {
        bail!("quickstart cannot run itself");
    }
    Box::pin(crate::commands::run(cli.command)).await
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn read_keyset(path: &Path) -> Result<Keyset> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    Keyset::from_json_insecure(&bytes).map_err(|e| anyhow!("keyset {}: {e}", path.display()))
}

/// Prints the `store put` command that stores `value` under `key` (its value
/// through stdin, as in real use) and stores it.
async fn put_secret(st: &str, keyset: &StoreKeysetArgs, key: &str, value: &str) -> Result<()> {
    println!(
        "$ printf %s {} | encstore store put --store {} --keyset {} {key}",
        shell_word(value),
        shell_word(st),
        shell_word(&s(&keyset.keyset))
    );
    let location: encstore::open::StoreLocation = st.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::store::objects::put_bytes(
        &location,
        keyset,
        key,
        zeroize::Zeroizing::new(value.as_bytes().to_vec()),
    )
    .await
}

/// Runs the tour.
pub async fn run(c: &Quickstart) -> Result<()> {
    let dir = c.dir.clone().unwrap_or_default();
    let keyset_dir = dir.join("keysets");
    let keyset = keyset_dir.join("quickstart.json");
    let store = dir.join("demo-store");
    std::fs::create_dir_all(&keyset_dir)
        .with_context(|| format!("cannot create {}", keyset_dir.display()))?;
    // The tour's store is meant to be new: no "creating a new store" warning.
    std::fs::create_dir_all(&store)
        .with_context(|| format!("cannot create {}", store.display()))?;
    let (k, st) = (s(&keyset), s(&store));

    say("encstore quickstart: key rotation on a local encrypted store, step by step.");
    say(&format!("Keyset: {k} (cleartext: for development only)"));
    say(&format!("Store:  {st} (the filesystem backend)"));
    say("Each step prints the command it runs; run them yourself with `encstore ...`.");

    // Start fresh: only what an earlier run of the tour created.
    if keyset.exists() {
        std::fs::remove_file(&keyset)
            .with_context(|| format!("cannot remove {}", keyset.display()))?;
    }
    if store.is_dir() {
        let backend =
            crate::store::open_backend(&encstore::open::StoreLocation::directory(&store), false)
                .await?;
        match backend.delete("quickstart").await {
            Ok(()) | Err(encstore_core::Error::NotFound { .. }) => {}
            Err(e) => bail!("cannot clear the earlier tour's objects in {st}: {e}"),
        }
    }

    step(
        1,
        "create a keyset",
        "A keyset holds keys; its primary key encrypts, and every key it holds decrypts\nwhat it encrypted (each object's 5-byte prefix names its key).",
    );
    run_cmd(&args(&[
        "create-keyset",
        "--key-template",
        "AES256_GCM",
        "--out",
        &k,
    ]))
    .await?;
    let old = read_keyset(&keyset)?.primary_key_id();
    run_cmd(&args(&["list-keyset", "--in", &k])).await?;

    step(
        2,
        "store a handful of secrets",
        "Each value is encrypted with the primary key; its key name is the associated\ndata, so an object copied to another name does not decrypt.",
    );
    let store_args = StoreKeysetArgs {
        keyset: keyset.clone(),
        keyset_format: None,
        master: crate::cli::MasterKeyArgs::default(),
        policy: None,
    };
    for (key, value) in SECRETS {
        put_secret(&st, &store_args, key, value).await?;
    }
    run_cmd(&args(&["store", "ls", "--store", &st, "--recursive"])).await?;
    run_cmd(&args(&[
        "store",
        "get",
        "--store",
        &st,
        "--keyset",
        &k,
        SECRETS[3].0,
    ]))
    .await?;
    println!();

    step(
        3,
        "rotate the key",
        "The rollout rule (docs/rotation.md): first ADD the new key and deploy the keyset\nto every reader; only then PROMOTE it, so no reader meets data under a key it\ndoes not have yet.",
    );
    run_cmd(&args(&[
        "add-key",
        "--key-template",
        "AES256_GCM",
        "--in",
        &k,
        "--out",
        &k,
    ]))
    .await?;
    let new = read_keyset(&keyset)?
        .info()
        .keys
        .iter()
        .map(|key| key.key_id)
        .find(|id| *id != old)
        .ok_or_else(|| anyhow!("add-key added no key"))?;
    say("   (here you would deploy the keyset to every reader)");
    run_cmd(&args(&[
        "promote-key",
        "--key-id",
        &new.to_string(),
        "--in",
        &k,
        "--out",
        &k,
    ]))
    .await?;
    run_cmd(&args(&["list-keyset", "--in", &k])).await?;

    step(
        4,
        "the census: objects under two keys",
        "New writes use the new primary; old objects stay under the old key until\nre-encrypted. A server writes one more secret now, with the new keyset.",
    );
    let (extra_key, extra_value) = (
        "quickstart/certs/new.example.com.key",
        "written after the rotation",
    );
    put_secret(&st, &store_args, extra_key, extra_value).await?;
    run_cmd(&args(&["store", "status", "--store", &st, "--keyset", &k])).await?;

    step(
        5,
        "re-encrypt",
        "rewrap re-encrypts every object not under the primary, with conditional writes\n(it never overwrites what a server writes meanwhile), holding a store-wide lock.\nIt is safe to interrupt and re-run. --dry-run shows what it would do.",
    );
    run_cmd(&args(&[
        "store",
        "rewrap",
        "--store",
        &st,
        "--keyset",
        &k,
        "--dry-run",
    ]))
    .await?;
    run_cmd(&args(&["store", "rewrap", "--store", &st, "--keyset", &k])).await?;

    step(
        6,
        "the census: everything under one key",
        "Nothing is left under the old key.",
    );
    run_cmd(&args(&["store", "status", "--store", &st, "--keyset", &k])).await?;

    step(
        7,
        "verify every object",
        "verify decrypts every object and names each one that fails.",
    );
    run_cmd(&args(&["store", "verify", "--store", &st, "--keyset", &k])).await?;

    step(
        8,
        "disable the old key",
        "With --store, disable-key first checks that no object is under the key (and\nrefuses otherwise, printing the rewrap command). Later, destroy or delete it.",
    );
    run_cmd(&args(&[
        "disable-key",
        "--key-id",
        &old.to_string(),
        "--store",
        &st,
        "--in",
        &k,
        "--out",
        &k,
    ]))
    .await?;
    run_cmd(&args(&["store", "status", "--store", &st, "--keyset", &k])).await?;

    println!();
    say(&format!(
        "Done: key {old} is DISABLED, every object is under key {new} and decrypts."
    ));
    say("Next: docs/rotation.md (rolling out across a fleet), docs/key-management.md");
    say("(keep the keyset wrapped by an HSM: --master-key-uri pkcs11:...).");
    Ok(())
}
