//! What a dynamically linked x86-64 ELF needs to run: its interpreter (PT_INTERP) and its
//! DT_NEEDED libraries, read from the file itself (running the image's ld.so would execute
//! foreign code on the build host; ldd does exactly that).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Deps {
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
}

// Every offset comes from the file (a package's binary may be hostile): read with `get` and
// computed with checked arithmetic, so a huge value is "truncated", never a wrap or a panic.
fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..)?.get(..2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..)?.get(..4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..)?.get(..8)?.try_into().ok()?))
}
/// `base + k * step` in bounds of usize, from file values.
fn at(base: u64, k: usize, step: usize) -> Option<usize> {
    usize::try_from(base)
        .ok()?
        .checked_add(k.checked_mul(step)?)
}
fn cstr(b: &[u8], o: usize) -> Option<String> {
    let s = b.get(o..)?;
    let end = s.iter().position(|c| *c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// Parses a 64-bit little-endian ELF (pure).
pub fn deps(b: &[u8]) -> Result<Deps> {
    if b.get(0..6) != Some(b"\x7fELF\x02\x01") {
        bail!("not a 64-bit little-endian ELF file");
    }
    let bad = || anyhow::anyhow!("truncated ELF file");
    let phoff = u64_at(b, 0x20).ok_or_else(bad)?;
    let phentsize = u16_at(b, 0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(b, 0x38).ok_or_else(bad)? as usize;
    // (type, offset, vaddr, filesz) per program header.
    let phs: Vec<(u32, u64, u64, u64)> = (0..phnum)
        .map(|i| {
            let p = at(phoff, i, phentsize)?;
            Some((
                u32_at(b, p)?,
                u64_at(b, p.checked_add(8)?)?,
                u64_at(b, p.checked_add(16)?)?,
                u64_at(b, p.checked_add(32)?)?,
            ))
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let to_offset = |vaddr: u64| {
        phs.iter()
            .find(|(t, _, va, sz)| *t == 1 && vaddr >= *va && vaddr - va < *sz)
            .and_then(|(_, off, va, _)| usize::try_from((vaddr - va).checked_add(*off)?).ok())
    };
    let mut out = Deps::default();
    for &(t, off, _, _) in &phs {
        match t {
            3 => out.interpreter = Some(cstr(b, at(off, 0, 0).ok_or_else(bad)?).ok_or_else(bad)?),
            2 => {
                let (mut needed, mut strtab) = (Vec::new(), None);
                let mut p = at(off, 0, 0).ok_or_else(bad)?;
                loop {
                    let tag = u64_at(b, p).ok_or_else(bad)?;
                    let val = u64_at(b, p.checked_add(8).ok_or_else(bad)?).ok_or_else(bad)?;
                    match tag {
                        0 => break,
                        1 => needed.push(val),
                        5 => strtab = Some(val),
                        _ => {}
                    }
                    p = p.checked_add(16).ok_or_else(bad)?;
                }
                let base = strtab
                    .and_then(to_offset)
                    .context("ELF without a string table")?;
                for n in needed {
                    let o = at(n, 0, 0).and_then(|n| n.checked_add(base));
                    out.needed
                        .push(cstr(b, o.ok_or_else(bad)?).ok_or_else(bad)?);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Library directories searched in a tree, in the order Debian's and Fedora's ld.so use.
const LIB_DIRS: [&str; 6] = [
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib64",
    "usr/lib64",
    "lib",
    "usr/lib",
];

/// Resolves `rel` inside `tree`, following symlinks as the target system would: absolute
/// link targets point into `tree`, never at the build host's own files.
pub fn in_tree(tree: &Path, rel: &str) -> Result<PathBuf> {
    let mut parts: Vec<String> = rel
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    parts.reverse();
    let mut at = PathBuf::new();
    let mut links = 0;
    while let Some(c) = parts.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        let next = at.join(&c);
        match std::fs::read_link(tree.join(&next)) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    bail!("{rel}: too many symlinks in the tree");
                }
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    at = PathBuf::new();
                }
                parts.extend(
                    t.split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(str::to_owned),
                );
            }
            Err(_) => at = next,
        }
    }
    Ok(tree.join(at))
}

/// Files `binary` needs from `tree`, as (path in the tree, path to give it in the target),
/// following the libraries' own dependencies.
pub fn closure(tree: &Path, binary: &[u8]) -> Result<Vec<(PathBuf, String)>> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    let first = deps(binary)?;
    if let Some(interp) = &first.interpreter {
        let rel = interp.trim_start_matches('/');
        out.push((in_tree(tree, rel)?, rel.to_owned()));
    }
    let mut todo = first.needed;
    while let Some(name) = todo.pop() {
        if out
            .iter()
            .any(|(_, t)| t.rsplit('/').next() == Some(name.as_str()))
        {
            continue;
        }
        let (dir, found) = LIB_DIRS
            .iter()
            .filter_map(|d| Some((d, in_tree(tree, &format!("{d}/{name}")).ok()?)))
            .find(|(_, p)| p.is_file())
            .with_context(|| format!("library {name} is not in the image tree"))?;
        let bytes =
            std::fs::read(&found).with_context(|| format!("reading {}", found.display()))?;
        todo.extend(deps(&bytes)?.needed);
        out.push((found, format!("{dir}/{name}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_test_binary() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let d = super::deps(&me).unwrap();
        assert!(d.interpreter.unwrap().contains("ld-linux"));
        assert!(
            d.needed.iter().any(|n| n.starts_with("libc.so")),
            "{:?}",
            d.needed
        );
        assert!(super::deps(b"#!/bin/sh").is_err());
    }

    /// Header values at their extremes: an error, never a panic or a wrapped offset.
    #[test]
    fn hostile_offsets_are_errors() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        for (at, value) in [
            (0x20, u64::MAX),     // e_phoff
            (0x20, u64::MAX - 7), // e_phoff, so that + 8 would wrap
            (0x20, 1 << 62),
        ] {
            let mut b = me[..4096.min(me.len())].to_vec();
            b[at..at + 8].copy_from_slice(&value.to_le_bytes());
            assert!(super::deps(&b).is_err(), "e_phoff {value:#x}");
        }
        let mut b = me[..4096.min(me.len())].to_vec();
        b[0x36..0x38].copy_from_slice(&u16::MAX.to_le_bytes()); // e_phentsize
        b[0x38..0x3a].copy_from_slice(&u16::MAX.to_le_bytes()); // e_phnum
        assert!(super::deps(&b).is_err());
    }

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib/x")).unwrap();
        std::fs::write(t.path().join("usr/lib/x/ld.so"), b"").unwrap();
        std::os::unix::fs::symlink("usr/lib", t.path().join("lib")).unwrap();
        std::fs::create_dir(t.path().join("lib64")).unwrap();
        std::os::unix::fs::symlink("/lib/x/ld.so", t.path().join("lib64/ld.so")).unwrap();
        assert_eq!(
            super::in_tree(t.path(), "lib64/ld.so").unwrap(),
            t.path().join("usr/lib/x/ld.so")
        );
    }

    #[test]
    fn closure_from_the_host_root() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let c = super::closure(std::path::Path::new("/"), &me).unwrap();
        assert!(c.iter().any(|(_, t)| t.ends_with("/libc.so.6")), "{c:?}");
    }
}
