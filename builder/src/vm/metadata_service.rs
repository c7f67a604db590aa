//! `axoha-image boot --metadata-service ISO`: the OpenStack metadata service for one VM, so
//! the path a node takes on OpenStack without a config drive can be tried (and tested) here.
//!
//! The document is the `meta_data.json` of a config drive made by `seed --format
//! configdrive`. It is served on the VIP NIC's isolated user network (QEMU's `restrict=on`:
//! nothing leaves QEMU), which is then 169.254.0.0/16 (QEMU forwards only addresses inside
//! its user network; so no `--ssh`/`--forward` with it): the guest's DHCP lease comes from
//! QEMU's own DHCP server, and a TCP
//! connection to 169.254.169.254:80 is handed by QEMU's `guestfwd` to a process of ours, this
//! binary's hidden `respond-metadata` subcommand, which answers one HTTP request on its stdin
//! and stdout, as Nova's metadata API would. No socket on this machine is opened for it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where Nova serves the document.
const SERVICE: &str = "169.254.169.254:80";
const PATH: &str = "/openstack/latest/meta_data.json";
/// The most of a request we read (first boot's is about 150 bytes).
const REQUEST_MAX: usize = 8 * 1024;

/// The `guestfwd` option that serves the drive's `meta_data.json` (extracted into `tmp`).
pub fn guestfwd(drive: &Path, tmp: &Path) -> Result<String> {
    let doc =
        super::iso::from_iso(drive, "openstack/latest/meta_data.json", tmp).with_context(|| {
            format!(
                "--metadata-service {}: no openstack/latest/meta_data.json in it (make one with \
                 `seed --format configdrive`)",
                drive.display()
            )
        })?;
    let file = tmp.join("meta_data.json");
    std::fs::write(&file, doc).with_context(|| format!("writing {}", file.display()))?;
    let exe: PathBuf = std::env::current_exe().context("this program's path")?;
    for p in [&exe, &file] {
        let s = p.to_string_lossy();
        // QEMU's option syntax splits on commas; its exec forwarding splits on white space.
        if s.contains(',') || s.chars().any(char::is_whitespace) {
            bail!("--metadata-service: {s:?} holds a comma or a space, which QEMU's guestfwd cannot take");
        }
    }
    Ok(format!(
        ",guestfwd=tcp:{SERVICE}-cmd:{} respond-metadata {}",
        exe.display(),
        file.display()
    ))
}

/// `respond-metadata FILE`: one HTTP answer on stdout to the request on stdin.
pub fn respond(file: &Path) -> Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    let mut stdin = std::io::stdin().lock();
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < REQUEST_MAX {
        let n = stdin.read(&mut buf).context("reading the request")?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let answer = answer(&request, &std::fs::read(file)?);
    let mut out = std::io::stdout().lock();
    out.write_all(&answer)
        .and_then(|()| out.flush())
        .context("writing the answer")
}

/// The answer to `request` (pure): the document for a GET of its path, else 404.
fn answer(request: &[u8], doc: &[u8]) -> Vec<u8> {
    let line = request.split(|b| *b == b'\r').next().unwrap_or_default();
    let wanted = line.starts_with(format!("GET {PATH} HTTP/1.").as_bytes());
    let (status, body): (&str, &[u8]) = if wanted {
        ("200 OK", doc)
    } else {
        ("404 Not Found", b"")
    };
    let mut out = format!(
        "HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_the_document_and_nothing_else() {
        let get = format!("GET {PATH} HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n");
        let a = answer(get.as_bytes(), b"{}");
        assert!(a.starts_with(b"HTTP/1.0 200 OK\r\n"));
        assert!(a.ends_with(b"Content-Length: 2\r\n\r\n{}"));
        for other in [
            "GET /openstack/latest/user_data HTTP/1.0\r\n\r\n",
            "POST /openstack/latest/meta_data.json HTTP/1.0\r\n\r\n",
            "",
        ] {
            assert!(answer(other.as_bytes(), b"{}").starts_with(b"HTTP/1.0 404"));
        }
    }
}
