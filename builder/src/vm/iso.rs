//! Files of a NoCloud seed or config drive ISO, read back on the build host (xorriso) for what
//! the VM runner needs from them: MAC addresses, the VIP, the metadata service's document.

use std::path::Path;

use axoha_disk::tool::{command, run};

/// A file of a metadata ISO (extracted once into `tmp`), if it has one.
pub fn from_iso(iso: &Path, inside: &str, tmp: &Path) -> Option<String> {
    let out = tmp.join(inside.replace('/', "_"));
    if !out.exists() {
        run(command("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(iso)
            .arg("-extract")
            .arg(format!("/{inside}"))
            .arg(&out))
        .ok()?;
    }
    std::fs::read_to_string(&out).ok()
}
