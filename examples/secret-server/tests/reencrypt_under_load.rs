//! Re-encrypts the whole store in the background of the live server
//! (`POST /admin/reencrypt`, the library's `reencrypt_all`) while clients
//! keep writing and reading. Nothing may be lost: every secret reads back as
//! the last value written to it, and at the end every object is under the
//! new primary key, including those written before the rotation and never
//! rewritten by a client.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use encstore_tink::Keyset;
use encstore_tink::templates::by_name;

mod common;

use common::{Server, http, hup, wait_for_primary, write_keyset};

async fn json(addr: &str, method: &str, path: &str) -> serde_json::Value {
    let (st, body) = http(addr, method, path, b"").await;
    assert_eq!(
        st,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_reencryption_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let keyset_path = dir.path().join("keyset.json");
    let data = dir.path().join("data");
    let mut keyset = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
    let first = keyset.primary_key_id();
    write_keyset(&keyset_path, &keyset);

    let mut child = Command::new(env!("CARGO_BIN_EXE_secret-server"))
        .args(["--listen", "127.0.0.1:0", "--keyset"])
        .arg(&keyset_path)
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("server announces its address")
        .to_owned();
    let server = Server(child);

    // Written under the first key and never rewritten by a client: only
    // the background re-encryption moves them.
    const EARLY: usize = 300;
    for c in 0..EARLY {
        let (st, _) = http(&addr, "PUT", &format!("/secrets/early/{c}"), b"early").await;
        assert_eq!(st, 200);
    }

    // The rollout: add, deploy, promote, deploy.
    let id = keyset.add_key(&by_name("AES256_GCM").unwrap()).unwrap();
    write_keyset(&keyset_path, &keyset);
    hup(&server.0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    keyset.promote(id).unwrap();
    write_keyset(&keyset_path, &keyset);
    hup(&server.0);
    wait_for_primary(&addr, &data, id).await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients = 6;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let addr = addr.clone();
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut last = std::collections::BTreeMap::new();
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) || n < 20 {
                let key = format!("client{c}/secret{}", n % 10);
                let value = format!("value {n} of client {c}").into_bytes();
                let (st, _) = http(&addr, "PUT", &format!("/secrets/{key}"), &value).await;
                assert_eq!(st, 200, "PUT {key}");
                let (st, body) = http(&addr, "GET", &format!("/secrets/{key}"), b"").await;
                assert_eq!(st, 200, "GET {key}");
                assert_eq!(body, value, "read-your-write for {key}");
                last.insert(key, value);
                n += 1;
            }
            last
        }));
    }

    tokio::time::sleep(Duration::from_millis(100)).await;
    let (st, _) = http(&addr, "POST", "/admin/reencrypt", b"").await;
    assert_eq!(st, 202, "POST /admin/reencrypt");
    // A second start while it runs is refused, not run twice.
    let (st, _) = http(&addr, "POST", "/admin/reencrypt", b"").await;
    assert!(st == 409 || st == 202, "second POST: {st}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        let v = json(&addr, "GET", "/admin/reencrypt").await;
        if v["running"] == false && !v["last"].is_null() {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "still running: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let last = &status["last"];
    assert!(last["error"].is_null(), "{status}");
    assert_eq!(last["failed"], serde_json::json!([]), "{status}");
    assert!(last["stopped"].is_null(), "{status}");
    assert_eq!(last["primary_key_id"], id, "{status}");
    // Every early object was under the old key: the run re-encrypted them
    // all (and the progress saw every object it listed).
    assert!(
        last["reencrypted"].as_u64().unwrap() >= EARLY as u64,
        "{status}"
    );
    assert_eq!(status["done"], status["total"], "{status}");

    let mut expected = std::collections::BTreeMap::new();
    for t in tasks {
        expected.extend(t.await.unwrap());
    }
    assert_eq!(expected.len(), clients * 10);
    for (key, value) in &expected {
        let (st, body) = http(&addr, "GET", &format!("/secrets/{key}"), b"").await;
        assert_eq!(st, 200, "{key}");
        assert_eq!(&body, value, "{key} lost its last write");
    }
    for c in 0..EARLY {
        let (st, body) = http(&addr, "GET", &format!("/secrets/early/{c}"), b"").await;
        assert_eq!((st, body.as_slice()), (200, &b"early"[..]), "early/{c}");
        let raw = std::fs::read(data.join(format!("early/{c}"))).unwrap();
        assert_eq!(&raw[1..5], &id.to_be_bytes(), "early/{c} re-encrypted");
    }
    // The census through the server: nothing is left under the first key.
    let census = json(&addr, "GET", "/admin/census").await;
    assert_eq!(census["primary_key_id"], id, "{census}");
    assert!(census["by_key_id"][first.to_string()].is_null(), "{census}");
    assert_eq!(
        census["by_key_id"][id.to_string()],
        census["total"],
        "{census}"
    );
}
