//! Rotates the keyset (add, deploy, promote; SIGHUP each time) while clients
//! keep writing and reading secrets. Nothing may be lost: every secret reads
//! back as the last value written to it, and the data ends up under several
//! keys, proving the rotations happened mid-flight.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_keys_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let keyset_path = dir.path().join("keyset.json");
    let data = dir.path().join("data");
    let mut keyset = Keyset::generate(&by_name("AES256_GCM").unwrap()).unwrap();
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

    // Written before any rotation and never rewritten: must stay readable.
    for c in 0..4 {
        let (st, _) = http(&addr, "PUT", &format!("/secrets/early/{c}"), b"early").await;
        assert_eq!(st, 200);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let clients = 8;
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

    // Rotate by the rollout rule, several times, while the clients run.
    let mut key_ids = vec![keyset.primary_key_id()];
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let id = keyset.add_key(&by_name("AES256_GCM").unwrap()).unwrap();
        write_keyset(&keyset_path, &keyset);
        hup(&server.0);
        tokio::time::sleep(Duration::from_millis(150)).await;
        keyset.promote(id).unwrap();
        write_keyset(&keyset_path, &keyset);
        hup(&server.0);
        // The reload happens when the server handles the signal: wait until
        // new writes are under the promoted key before touching the file
        // again.
        wait_for_primary(&addr, &data, id).await;
        key_ids.push(id);
    }
    // A broken keyset on SIGHUP is refused; the server keeps serving.
    std::fs::write(&keyset_path, b"not a keyset").unwrap();
    hup(&server.0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    write_keyset(&keyset_path, &keyset);
    stop.store(true, Ordering::SeqCst);

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

    for c in 0..4 {
        let (st, body) = http(&addr, "GET", &format!("/secrets/early/{c}"), b"").await;
        assert_eq!((st, body.as_slice()), (200, &b"early"[..]));
        let raw = std::fs::read(data.join(format!("early/{c}"))).unwrap();
        assert_eq!(
            &raw[1..5],
            &key_ids[0].to_be_bytes(),
            "early objects stay under the first key"
        );
    }

    // The latest writes are under the last promoted key: the rotations took
    // effect while requests were in flight.
    let mut seen = std::collections::BTreeSet::new();
    for key in expected.keys() {
        let raw = std::fs::read(data.join(key)).unwrap();
        assert_eq!(raw[0], 0x01);
        let id = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
        assert!(key_ids.contains(&id), "object under a key we never made");
        seen.insert(id);
    }
    let last_id = *key_ids.last().unwrap();
    assert!(
        seen.contains(&last_id),
        "no object under the last primary {last_id}: {seen:?}"
    );
}
