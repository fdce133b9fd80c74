//! Shared by the secret-server tests: the server process, keyset files,
//! a minimal HTTP client, and waiting for a reload.
#![allow(clippy::unwrap_used, dead_code)]

use std::process::{Child, Command};
use std::time::Duration;

use encstore_tink::Keyset;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn write_keyset(path: &std::path::Path, k: &Keyset) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &*k.to_json_insecure()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
pub async fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response head");
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, resp[split + 4..].to_vec())
}

/// Waits (up to 10 s) until a write through the server lands under key `id`.
pub async fn wait_for_primary(addr: &str, data: &std::path::Path, id: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (st, _) = http(addr, "PUT", "/secrets/probe/primary", b"probe").await;
        assert_eq!(st, 200, "PUT probe");
        let raw = std::fs::read(data.join("probe/primary")).unwrap();
        if raw[1..5] == id.to_be_bytes() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not reload key {id} after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn hup(child: &Child) {
    let ok = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP failed");
}
