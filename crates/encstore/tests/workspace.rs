//! The workspace's dependency graph: no crate dev-depends on a crate that
//! depends on it (directly or not). `encstore` depends on the backend and
//! KEK crates, so their tests of `encstore` live here, not there.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

#[test]
fn no_crate_dev_depends_on_a_crate_that_depends_on_it() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // name -> (normal and build dependencies, dev-dependencies), members only.
    let mut graph: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let packages = meta["packages"].as_array().unwrap();
    let members: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    for p in packages {
        let entry = graph
            .entry(p["name"].as_str().unwrap().to_owned())
            .or_default();
        for d in p["dependencies"].as_array().unwrap() {
            let name = d["name"].as_str().unwrap().to_owned();
            if !members.contains(&name) {
                continue;
            }
            if d["kind"].as_str() == Some("dev") {
                entry.1.insert(name);
            } else {
                entry.0.insert(name);
            }
        }
    }
    assert!(graph.contains_key("encstore") && graph.contains_key("encstore-pkcs11"));
    let closure = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_owned()];
        while let Some(n) = todo.pop() {
            for d in &graph[&n].0 {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let mut cycles = Vec::new();
    for (a, (_, dev)) in &graph {
        for b in dev {
            if b != a && closure(b).contains(a) {
                cycles.push(format!("{a} dev-depends on {b}, which depends on {a}"));
            }
        }
    }
    assert!(cycles.is_empty(), "{cycles:#?}");
    // The graph this guards: encstore really depends on them.
    let enc = closure("encstore");
    for c in [
        "encstore-pkcs11",
        "encstore-objstore",
        "encstore-vault",
        "encstore-awskms",
    ] {
        assert!(
            enc.contains(c),
            "encstore no longer depends on {c}: {enc:?}"
        );
    }
}
