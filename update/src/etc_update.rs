//! The /etc three-way update after a new /usr: `var/lib/axoha/etc-base.json` records the
//! factory /etc the node's /etc came from; when the new image's factory /etc differs, files
//! the node never changed take the new factory version, files it changed are kept (logged),
//! files gone from the factory and unchanged on the node are removed. Then the base is
//! rewritten. The decision ([`plan`]) is pure; reading and writing go through `root.rs`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use axoha_root::{Last, RootDir};
use rustix::fs::FileType;
use serde::{Deserialize, Serialize};

use crate::digest::{copy_hashing, Sha256};
use crate::paths;
use crate::tree_copy::copy_node;

pub const BASE_FORMAT: u32 = 1;
/// The most etc-base.json may hold.
const BASE_MAX: u64 = 16 << 20;

/// What one path of an /etc is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Item {
    /// A regular file: its contents' sha256 (64 lowercase hex).
    Sha256(String),
    /// A symbolic link: its target as written.
    Link(String),
    /// Anything else on the node (a directory where the factory has a file, a device...).
    #[serde(skip)]
    Other,
}

/// `etc-base.json`: every regular file and link of a factory /etc, by path relative to /etc.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcBase {
    pub format: u32,
    pub files: BTreeMap<String, Item>,
}

impl EtcBase {
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut json = serde_json::to_vec_pretty(self).context("serializing etc-base.json")?;
        json.push(b'\n');
        Ok(json)
    }

    pub fn from_json(bytes: &[u8]) -> Result<EtcBase> {
        let base: EtcBase = serde_json::from_slice(bytes).context("parsing etc-base.json")?;
        if base.format != BASE_FORMAT {
            bail!("etc-base.json format {} is not {BASE_FORMAT}", base.format);
        }
        for (path, item) in &base.files {
            if let Item::Sha256(h) = item {
                Sha256::parse(h, &format!("etc-base.json files.{path}.sha256"))?;
            }
            if path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
            {
                bail!("etc-base.json path {path:?} is not a plain relative path");
            }
        }
        Ok(base)
    }
}

/// What the update does with one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Copy the new factory version (new, or unchanged on the node).
    Take(String),
    /// Gone from the factory, unchanged on the node.
    Remove(String),
    /// Changed on the node and in the factory: the node's is kept.
    Keep(String),
}

/// The three-way decision per path: `base` (factory the node came from), `new` (factory
/// now), `current` (the node's /etc, for the paths of either).
pub fn plan(
    base: &BTreeMap<String, Item>,
    new: &BTreeMap<String, Item>,
    current: &BTreeMap<String, Item>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let paths: std::collections::BTreeSet<&String> = base.keys().chain(new.keys()).collect();
    for path in paths {
        let (b, n, c) = (base.get(path), new.get(path), current.get(path));
        if b == n || c == n {
            continue;
        }
        if c == b {
            actions.push(match n {
                Some(_) => Action::Take(path.clone()),
                None => Action::Remove(path.clone()),
            });
        } else {
            actions.push(Action::Keep(path.clone()));
        }
    }
    actions
}

/// What is at `rel` in `root` (links not followed); `None` when nothing.
fn item_at(root: &RootDir, rel: &str) -> Result<Option<Item>> {
    let Some(stat) = root.lstat(rel)? else {
        return Ok(None);
    };
    Ok(Some(match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {
            let mut file = root
                .open_regular(rel, Last::NoFollow)?
                .with_context(|| format!("{} vanished", root.shown(rel).display()))?;
            let bytes = file
                .metadata()
                .with_context(|| format!("inspecting {}", root.shown(rel).display()))?
                .len();
            let what = root.shown(rel).display().to_string();
            Item::Sha256(copy_hashing(&mut file as &mut dyn Read, None, bytes, &what)?.to_string())
        }
        FileType::Symlink => Item::Link(root.read_link(rel)?.to_string_lossy().into_owned()),
        _ => Item::Other,
    }))
}

/// Every regular file and link under directory `rel` of `root`, by path relative to it.
pub fn scan(root: &RootDir, rel: &str) -> Result<BTreeMap<String, Item>> {
    fn walk(root: &RootDir, top: &str, sub: &str, out: &mut BTreeMap<String, Item>) -> Result<()> {
        let dir = if sub.is_empty() {
            top.to_owned()
        } else {
            format!("{top}/{sub}")
        };
        for name in root.list(&dir)? {
            let path = if sub.is_empty() {
                name.clone()
            } else {
                format!("{sub}/{name}")
            };
            let full = format!("{top}/{path}");
            let is_dir = root
                .lstat(&full)?
                .is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
            if is_dir {
                walk(root, top, &path, out)?;
            } else if let Some(item) = item_at(root, &full)?.filter(|i| *i != Item::Other) {
                out.insert(path, item);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, rel, "", &mut out)?;
    Ok(out)
}

/// The `etc-base.json` of a factory /etc (`usr/share/axoha/factory/etc` of a tree): what the
/// builder writes to `var/lib/axoha/etc-base.json`.
pub fn base_of(root: &Path) -> Result<EtcBase> {
    let root = RootDir::open(root)?;
    Ok(EtcBase {
        format: BASE_FORMAT,
        files: scan(&root, &format!("{}/etc", paths::FACTORY))?,
    })
}

/// Creates the parent directories of `etc/<path>` like the factory's.
fn parents(root: &RootDir, path: &str) -> Result<axoha_root::Dir> {
    let mut dir = root
        .open_dir("etc")?
        .context("the root has no etc directory")?;
    let mut factory = format!("{}/etc", paths::FACTORY);
    let comps: Vec<&str> = path.split('/').collect();
    for comp in &comps[..comps.len() - 1] {
        factory = format!("{factory}/{comp}");
        let mode = root.lstat(&factory)?.map_or(0o755, |s| s.st_mode & 0o7777);
        let name = OsStr::new(comp);
        if dir.file_type(name).is_none() {
            dir.mkdir(name, mode)?;
            if let Some(s) = root.lstat(&factory)? {
                dir.chown(name, s.st_uid, s.st_gid)?;
            }
        }
        dir = dir.sub(name)?;
    }
    Ok(dir)
}

/// Runs the update on `root`; returns whether anything in /etc changed.
pub fn run(root: &RootDir) -> Result<bool> {
    let factory_etc = format!("{}/etc", paths::FACTORY);
    if root.lstat(&factory_etc)?.is_none() {
        println!("no factory /etc in this image: /etc left as it is");
        return Ok(false);
    }
    let new = scan(root, &factory_etc)?;
    let base = match root.read(paths::ETC_BASE, BASE_MAX, Last::NoFollow)? {
        Some(bytes) => {
            EtcBase::from_json(&bytes)
                .with_context(|| format!("reading {}", root.shown(paths::ETC_BASE).display()))?
                .files
        }
        None => {
            println!(
                "no {}: taking the image's factory /etc as the base",
                paths::ETC_BASE
            );
            write_base(root, &new)?;
            return Ok(false);
        }
    };
    if base == new {
        return Ok(false);
    }
    let mut current = BTreeMap::new();
    for path in base.keys().chain(new.keys()) {
        if let Some(item) = item_at(root, &format!("etc/{path}"))? {
            current.insert(path.clone(), item);
        }
    }
    let mut changed = false;
    let mut kept = String::new();
    for action in plan(&base, &new, &current) {
        match action {
            Action::Take(path) => {
                let dir = parents(root, &path)?;
                let name = OsStr::new(path.rsplit('/').next().expect("a name"));
                copy_node(root, &format!("{factory_etc}/{path}"), &dir, name)?;
                dir.sync()?;
                println!("/etc/{path}: new factory version");
                changed = true;
            }
            Action::Remove(path) => {
                root.remove_file(&format!("etc/{path}"))?;
                println!("/etc/{path}: removed (gone from the factory, unchanged here)");
                changed = true;
            }
            Action::Keep(path) => {
                println!("/etc/{path}: changed on this node and in the factory; this node's kept");
                kept.push_str(&format!("/etc/{path}\n"));
            }
        }
    }
    // What this update kept, for `status` and the metrics endpoint (before the base: a crash
    // between the two repeats the plan, which writes the same list).
    replace(root, paths::ETC_KEPT, kept.as_bytes())?;
    write_base(root, &new)?;
    Ok(changed)
}

fn write_base(root: &RootDir, files: &BTreeMap<String, Item>) -> Result<()> {
    let json = EtcBase {
        format: BASE_FORMAT,
        files: files.clone(),
    }
    .to_json()?;
    replace(root, paths::ETC_BASE, &json).context("writing etc-base.json")
}

/// `rel` replaced by `bytes` at once (a temporary, renamed over it, the directory synced).
pub fn replace(root: &RootDir, rel: &str, bytes: &[u8]) -> Result<()> {
    let path = Path::new(rel);
    let dir = root.create_dir_all(
        &path.parent().expect("a parent").to_string_lossy(),
        &mut Vec::new(),
    )?;
    let name = path.file_name().expect("a name");
    let tmp = dir.write_temp(name, bytes, 0o644)?;
    let tmp = OsStr::from_bytes(&tmp);
    if let Err(e) = dir.rename(tmp, name) {
        let _ = dir.unlink(tmp);
        return Err(anyhow::Error::from(e).context(format!("replacing {rel}")));
    }
    dir.sync()
}

/// The /etc paths the last update kept over the image's (changed on this node and in the
/// factory), one per line in `paths::ETC_KEPT`; none when no update kept any.
pub fn kept(root: &RootDir) -> Result<Vec<String>> {
    Ok(root
        .read(paths::ETC_KEPT, BASE_MAX, Last::NoFollow)?
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(h: char) -> Item {
        Item::Sha256(h.to_string().repeat(64))
    }

    #[test]
    fn three_way() {
        let m = |v: &[(&str, Item)]| -> BTreeMap<String, Item> {
            v.iter().map(|(k, i)| (k.to_string(), i.clone())).collect()
        };
        let base = m(&[
            ("same", f('1')),
            ("upd", f('1')),
            ("mine", f('1')),
            ("gone", f('1')),
            ("gone-mine", f('1')),
        ]);
        let new = m(&[
            ("same", f('1')),
            ("upd", f('2')),
            ("mine", f('2')),
            ("added", f('3')),
        ]);
        let cur = m(&[
            ("same", f('1')),
            ("upd", f('1')),
            ("mine", f('9')),
            ("gone", f('1')),
            ("gone-mine", f('9')),
        ]);
        assert_eq!(
            plan(&base, &new, &cur),
            [
                Action::Take("added".into()),
                Action::Remove("gone".into()),
                Action::Keep("gone-mine".into()),
                Action::Keep("mine".into()),
                Action::Take("upd".into()),
            ]
        );
    }
}
