//! A node in files: a 6-partition GPT disk image made with sfdisk, an ESP directory, a root
//! directory with the image's key and profile, a kernel command line; bundles made with the
//! library the builder uses. Shared with axoha-metrics' tests (`#[path]`), which add their
//! own binary's `command`, as `mod.rs` adds axoha-update's.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use axoha_update::bundle::{self, ManifestBase, Payloads};
use axoha_update::node::NodePaths;
use axoha_update::usrhash::UsrHash;

pub const STATE_UUID: &str = "5ea7e000-0000-4000-8000-000000000006";
pub const MIB: u64 = 1 << 20;
/// Sizes of the test disk's partitions (MiB): ESP, usr-a, usr-a-verity, usr-b, usr-b-verity.
pub const USR_MIB: u64 = 2;

pub fn hash(fill: &str) -> String {
    fill.repeat(64 / fill.len())
}

pub fn usrhash(text: &str) -> UsrHash {
    UsrHash::parse(text).unwrap()
}

pub struct Node {
    pub dir: tempfile::TempDir,
    pub disk: PathBuf,
    pub esp: PathBuf,
    pub root: PathBuf,
    pub cmdline: PathBuf,
    pub keys: PathBuf,
    pub running: String,
}

/// The stdout of a command that must have succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running a command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Node {
    /// Slot a running `running` (its PARTUUIDs set from it), the initial entry `axoha.conf`.
    pub fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let running = hash("a1");
        let h = usrhash(&running);
        let disk = p.join("disk.img");
        std::fs::File::create(&disk)
            .unwrap()
            .set_len(16 * MIB)
            .unwrap();
        let layout = format!(
            "label: gpt\nfirst-lba: 2048\n\
             size=1MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"ESP\"\n\
             size={USR_MIB}MiB, type=8484680C-9521-48C6-9C11-B0720656F69E, name=\"usr-a\", uuid={}\n\
             size=1MiB, type=77FF5F63-E7B6-4633-ACF4-1565B864C0E6, name=\"usr-a-verity\", uuid={}\n\
             size={USR_MIB}MiB, type=8484680C-9521-48C6-9C11-B0720656F69E, name=\"usr-b\", uuid=b0000000-0000-4000-8000-000000000004\n\
             size=1MiB, type=77FF5F63-E7B6-4633-ACF4-1565B864C0E6, name=\"usr-b-verity\", uuid=b0000000-0000-4000-8000-000000000005\n\
             type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=\"state\", uuid={STATE_UUID}\n",
            h.usr_partuuid(),
            h.verity_partuuid()
        );
        let mut child = Command::new("sfdisk")
            .arg("-q")
            .arg(&disk)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(layout.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        // Slot a's contents: something to find unchanged.
        let part = partition(&disk, "usr-a");
        write_at(&disk, part.0, &vec![0xaa; 4096]);

        let esp = p.join("esp");
        std::fs::create_dir_all(esp.join("loader/entries")).unwrap();
        std::fs::create_dir_all(esp.join("axoha/a")).unwrap();
        std::fs::write(esp.join("axoha/a/vmlinuz"), b"old kernel").unwrap();
        std::fs::write(esp.join("axoha/a/initrd.img"), b"old initrd").unwrap();
        std::fs::write(
            esp.join("loader/entries/axoha-1.conf"),
            format!(
                "title axoha edge (slot a)\nlinux /axoha/a/vmlinuz\ninitrd /axoha/a/initrd.img\noptions usrhash={running} root=PARTUUID={STATE_UUID} rw console=ttyS0 axoha.role=primary\n"
            ),
        )
        .unwrap();

        let keys = p.join("keys");
        std::fs::create_dir(&keys).unwrap();
        bundle::generate_keypair(&keys).unwrap();
        let root = p.join("root");
        std::fs::create_dir_all(root.join("usr/lib/axoha")).unwrap();
        std::fs::write(root.join("usr/lib/axoha/profile"), "debian-12\n").unwrap();
        // The running image's baked manifest: its definition's kernel_cmdline is what an
        // update replaces with the bundle's.
        let public = bundle::public_key_of(&keys.join("axoha-update.key")).unwrap();
        std::fs::write(root.join("usr/lib/axoha/update.pub"), format!("{public}\n")).unwrap();

        let node = Node {
            cmdline: p.join("cmdline"),
            dir,
            disk,
            esp,
            root,
            keys,
            running,
        };
        node.set_running(&node.running.clone());
        node.set_image("edge", "1.0");
        node
    }

    /// The running image's baked manifest (as the builder writes it): its name, version and
    /// build key; its definition's kernel_cmdline is what an update replaces with the
    /// bundle's.
    pub fn set_image(&self, name: &str, version: &str) {
        std::fs::write(
            self.root.join("usr/lib/axoha/manifest.json"),
            format!(
                r#"{{"inputs":{{"definition":{{"name":"{name}","version":"{version}","kernel_cmdline":"console=ttyS0"}},"build_key":"{}","axoha_image_version":"0.1.0"}}}}"#,
                "f".repeat(64)
            ),
        )
        .unwrap();
    }

    /// The running boot's command line, as systemd-boot passes it.
    pub fn set_running(&self, usrhash: &str) {
        std::fs::write(
            &self.cmdline,
            format!(
                "initrd=\\axoha\\a\\initrd.img usrhash={usrhash} root=PARTUUID={STATE_UUID} rw console=ttyS0 axoha.role=primary\n"
            ),
        )
        .unwrap();
    }

    pub fn secret_key(&self) -> PathBuf {
        self.keys.join("axoha-update.key")
    }

    /// Payload files of `tag`'s build, usr.img `usr_bytes` long.
    pub fn payloads(&self, tag: &str, usr_bytes: usize) -> Payloads {
        let dir = self.dir.path().join(format!("payloads-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        let fill = |name: &str, n: usize| {
            let path = dir.join(name);
            let bytes: Vec<u8> = (0..n)
                .map(|i| (i * 31 + tag.len() * 7 + name.len()) as u8)
                .collect();
            std::fs::write(&path, bytes).unwrap();
            path
        };
        Payloads {
            usr_img: fill("usr.img", usr_bytes),
            usr_verity: fill("usr.verity", 8192 + 17),
            vmlinuz: fill("vmlinuz", 3000 + tag.len()),
            initrd: fill("initrd.img", 5000 + tag.len()),
            uki: None,
        }
    }

    pub fn base(&self, usrhash: &str) -> ManifestBase {
        ManifestBase {
            profile: "debian-12".into(),
            name: "edge".into(),
            version: "2.0".into(),
            build_key: "k".repeat(16),
            usrhash: usrhash.into(),
            kernel_cmdline: "console=ttyS0".into(),
        }
    }

    /// A good bundle of `usrhash`.
    pub fn bundle(&self, usrhash: &str) -> PathBuf {
        self.bundle_of(usrhash, "edge", "2.0")
    }

    /// A good bundle of `usrhash` for appliance `name` at `version`.
    pub fn bundle_of(&self, usrhash: &str, name: &str, version: &str) -> PathBuf {
        let out = self
            .dir
            .path()
            .join(format!("{}-{name}-{version}.axoha-bundle", &usrhash[..8]));
        let mut base = self.base(usrhash);
        base.name = name.into();
        base.version = version.into();
        bundle::write(
            &out,
            base,
            &self.payloads(usrhash, MIB as usize + 123),
            &self.secret_key(),
        )
        .unwrap();
        out
    }

    /// The updater's options that point it at this node.
    pub fn node_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        for (opt, path) in [
            ("--disk", &self.disk),
            ("--esp", &self.esp),
            ("--cmdline", &self.cmdline),
            ("--root", &self.root),
        ] {
            args.push(opt.into());
            args.push(path.into());
        }
        args
    }

    /// The same paths as the library takes them.
    pub fn paths(&self) -> NodePaths {
        NodePaths {
            disk: Some(self.disk.clone()),
            esp: self.esp.clone(),
            cmdline: self.cmdline.clone(),
            root: self.root.clone(),
        }
    }

    /// Everything apply may write: the disk's bytes and every file of the ESP.
    pub fn snapshot(&self) -> (Vec<u8>, BTreeMap<PathBuf, Vec<u8>>) {
        let mut files = BTreeMap::new();
        walk(&self.esp, &self.esp, &mut files);
        (std::fs::read(&self.disk).unwrap(), files)
    }
}

fn walk(top: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        let rel = path.strip_prefix(top).unwrap().to_owned();
        if e.file_type().unwrap().is_dir() {
            out.insert(rel, b"<dir>".to_vec());
            walk(top, &path, out);
        } else {
            out.insert(rel, std::fs::read(&path).unwrap());
        }
    }
}

/// (byte offset, bytes, PARTUUID) of the partition named `name`.
pub fn partition(disk: &Path, name: &str) -> (u64, u64, String) {
    let out = sh(Command::new("sfdisk").arg("--json").arg(disk));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
        .clone();
    (
        p["start"].as_u64().unwrap() * 512,
        p["size"].as_u64().unwrap() * 512,
        p["uuid"].as_str().unwrap().to_lowercase(),
    )
}

pub fn write_at(disk: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(disk)
        .unwrap()
        .write_at(bytes, offset)
        .unwrap();
}

pub fn read_at(disk: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; len];
    std::fs::File::open(disk)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}
