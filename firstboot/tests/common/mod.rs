//! Shared helpers for the CLI tests: a throw-away root and a way to run the binary on it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_axoha-firstboot");

/// Node 0 of a 3-node cluster, all on the kernel command line.
pub const GOOD_CMDLINE: &str = "BOOT_IMAGE=/vmlinuz ro console=ttyS0 axoha.role=primary \
    axoha.ha_ip=192.0.2.10/24 axoha.peers=192.0.2.11,192.0.2.12 axoha.vip=198.51.100.64/24 \
    axoha.ha_if=ha0 axoha.vip_if=pub0 axoha.vrid=51 axoha.hostname=router-a";

pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        Root {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file under the root (creating parents) and returns its path.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel))
            .unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// Every file under the root with its bytes and mode, to prove nothing changed.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        use std::os::unix::fs::PermissionsExt;
        let mut out = BTreeMap::new();
        let mut stack = vec![self.path().to_owned()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let mode = meta.permissions().mode();
                if meta.is_dir() {
                    stack.push(p.clone());
                    out.insert(p, (Vec::new(), mode));
                } else if meta.is_symlink() {
                    // The link itself, never what it points to (it may dangle, or lead out).
                    let target = std::fs::read_link(&p).unwrap();
                    out.insert(p, (target.into_os_string().into_encoded_bytes(), mode));
                } else if meta.is_file() {
                    out.insert(p.clone(), (std::fs::read(&p).unwrap(), mode));
                } else {
                    // A FIFO or a device: reading it could block.
                    out.insert(p, (Vec::new(), mode));
                }
            }
        }
        out
    }

    /// Runs the binary with `--root` set to this root.
    pub fn run(&self, sub: &str, extra: &[&str]) -> Output {
        Command::new(BIN)
            .arg(sub)
            .arg("--root")
            .arg(self.path())
            .args(extra)
            .env_remove("JOURNAL_STREAM")
            .env_remove("AXOHA_BOOT")
            .output()
            .expect("running axoha-firstboot")
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
