//! Property tests of everything the installer parses from the network, the command line or
//! the written image: whatever the bytes, no panic (PID 1 must never die) and quick answers.
//! Small case counts keep the suite fast on two cores.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::{cmdline, disk, http, tftp};
use axoha_dhcp as dhcp;

const CASES: u32 = 256;
const QUICK: Duration = Duration::from_millis(200);

fn quick<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    out
}

/// A DHCP reply around arbitrary options: right magic, xid and MAC, so the options parser
/// runs instead of the early outs.
fn dhcp_reply(options: Vec<u8>) -> Vec<u8> {
    let mut p = dhcp::request(dhcp::DISCOVER, 7, MAC, None, dhcp::Identity::PxeClient);
    p.truncate(240);
    p[0] = 2;
    p.extend(options);
    p
}

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x0a, 0, 0x0a];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn dhcp_replies(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        quick(|| dhcp::parse_reply(&bytes, 7, MAC));
    }

    #[test]
    fn dhcp_options(options in proptest::collection::vec(any::<u8>(), 0..1260)) {
        quick(|| dhcp::parse_reply(&dhcp_reply(options), 7, MAC));
    }

    #[test]
    fn tftp_packets(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        quick(|| {
            if let Some(tftp::Packet::Oack { blksize, .. }) = tftp::parse(&bytes) {
                let _ = tftp::accepted_blksize(blksize);
            }
        });
    }

    #[test]
    fn tftp_oacks(fields in proptest::collection::vec("[a-zA-Z0-9]{0,24}", 0..12)) {
        let mut p = vec![0u8, 6];
        for f in &fields {
            p.extend_from_slice(f.as_bytes());
            p.push(0);
        }
        quick(|| tftp::parse(&p));
    }

    #[test]
    fn http_heads(head in "(HTTP/1\\.[01] [0-9]{1,5} [ -~]{0,20}\r\n)?([A-Za-z-]{0,20}:[ -~]{0,40}\r\n){0,8}") {
        let _ = quick(|| http::parse_head(&head));
    }

    #[test]
    fn http_response_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..20_000)) {
        quick(|| {
            if let Ok(head) = http::read_head(&mut std::io::Cursor::new(&bytes)) {
                let _ = http::parse_head(&head);
            }
        });
    }

    #[test]
    fn command_lines(line in "[ -~\t\n]{0,400}") {
        quick(|| {
            if let Ok(p) = cmdline::Params::parse(&line) {
                let _ = p.node_file_path("52:54:00:0a:00:0a");
                if let Some(u) = &p.url {
                    let _ = cmdline::Url::parse(u).map(|u| u.file_name().to_owned());
                }
            }
        });
    }

    #[test]
    fn urls(url in "(tftp|http)://[ -~]{0,60}") {
        let _ = quick(|| cmdline::Url::parse(&url).map(|u| u.file_name().to_owned()));
    }

    #[test]
    fn gpt_headers(
        fields in proptest::collection::vec(any::<u8>(), 96),
        entry in proptest::collection::vec(any::<u8>(), 128),
        esp in any::<bool>(),
    ) {
        let mut d = vec![0u8; 34 * 512];
        d[512..608].copy_from_slice(&fields);
        d[512..520].copy_from_slice(b"EFI PART");
        d[1024..1152].copy_from_slice(&entry);
        if esp {
            d[1024..1040].copy_from_slice(&disk::ESP_TYPE_BYTES);
        }
        let _ = quick(|| disk::find_esp(&d));
    }
}
