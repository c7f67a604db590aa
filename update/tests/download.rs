//! `apply http://...`: the bundle is downloaded into var/lib/axoha/update/ (size-capped),
//! then checked like a file. The server is a thread on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::*;

/// Serves one request with `body`, announcing its length or not; returns the URL.
fn serve(body: Vec<u8>, announce: bool, status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request);
        let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        if announce {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&body);
    });
    format!("http://127.0.0.1:{port}/edge-debian-12.axoha-bundle")
}

#[test]
fn a_downloaded_bundle_is_applied_and_removed() {
    let node = Node::new();
    let bytes = std::fs::read(node.bundle(&hash("b2"))).unwrap();
    let url = serve(bytes, true, "200 OK");
    let out = node.run(&["apply", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(node.esp.join("loader/entries/axoha-2+3.conf").is_file());
    assert_eq!(
        partition(&node.disk, "usr-b").2,
        usrhash(&hash("b2")).usr_partuuid().to_string()
    );
    assert!(!node
        .root
        .join("var/lib/axoha/update/edge-debian-12.axoha-bundle")
        .exists());
}

#[test]
fn downloads_are_capped_and_checked() {
    let node = Node::new();
    // The test disk's cap: usr (2 MiB) + verity (1 MiB) + ESP (1 MiB).
    let big = vec![0u8; 4 * MIB as usize + 1];
    for (case, url, expect) in [
        (
            "announced too large",
            serve(big.clone(), true, "200 OK"),
            "a bundle for this disk is at most 4194304",
        ),
        (
            "too large",
            serve(big, false, "200 OK"),
            "larger than 4194304 bytes",
        ),
        ("not found", serve(Vec::new(), true, "404 Not Found"), "404"),
        (
            "not a bundle",
            serve(b"hello".to_vec(), true, "200 OK"),
            "truncated",
        ),
    ] {
        let before = node.snapshot();
        let out = node.run(&["apply", &url]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case}: accepted");
        assert!(
            stderr.contains(expect),
            "{case}: expected {expect:?} in {stderr}"
        );
        assert!(
            before == node.snapshot(),
            "{case}: the disk or the ESP changed"
        );
    }
}
