//! Loading the kernel modules shipped in the initramfs, dependencies first, as modprobe
//! would, from `modules.dep` (no modprobe or libkmod in the initramfs).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};

/// Module name as modprobe spells it: the file stem with `-` as `_`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

/// `modules.dep` as name -> (path, dependency paths).
pub fn parse_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let (m, deps) = l.split_once(':')?;
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            Some((module_name(m), (m.trim().to_owned(), deps)))
        })
        .collect()
}

/// The module paths to insert for `wanted`, each after its dependencies, no repeats.
/// modules.dep lists a module's dependencies so that loading them last-to-first works.
pub fn load_order(dep: &BTreeMap<String, (String, Vec<String>)>, wanted: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for w in wanted {
        let Some((path, deps)) = dep.get(&module_name(w)) else {
            continue; // built in, or not shipped: nothing to load
        };
        for d in deps.iter().rev().chain(std::iter::once(path)) {
            if seen.insert(d.clone()) {
                out.push(d.clone());
            }
        }
    }
    out
}

/// Inserts every module in the initramfs's `/lib/modules/VERSION`, in dependency order.
/// Failures are reported and skipped: a driver for absent hardware may refuse to load.
pub fn load_all(root: &Path) -> Result<Vec<String>> {
    let release = nix::sys::utsname::uname()?
        .release()
        .to_string_lossy()
        .into_owned();
    let dir = root.join("lib/modules").join(&release);
    let text = match std::fs::read_to_string(dir.join("modules.dep")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}/modules.dep", dir.display())),
    };
    let dep = parse_dep(&text);
    let names: Vec<&str> = dep.keys().map(String::as_str).collect();
    let mut loaded = Vec::new();
    for path in load_order(&dep, &names) {
        let f = std::fs::File::open(dir.join(&path))
            .with_context(|| format!("opening module {path}"))?;
        match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => loaded.push(module_name(&path)),
            Err(e) => crate::console::say(&format!("module {path}: {e} (skipped)")),
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
";

    #[test]
    fn dependencies_first_without_repeats() {
        let dep = parse_dep(DEP);
        let order: Vec<String> =
            load_order(&dep, &["virtio_pci", "virtio-net", "virtio_blk", "absent"])
                .iter()
                .map(|p| module_name(p))
                .collect();
        assert_eq!(
            order,
            [
                "virtio_ring",
                "virtio",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net",
                "virtio_blk"
            ]
        );
    }

    #[test]
    fn names() {
        assert_eq!(module_name("kernel/x/snd-hda.ko.xz"), "snd_hda");
    }
}
