//! Writing a set of files so that a failure leaves the old set in place.
//!
//! 1. Stage: every file goes to a temporary name beside its target (pid and a random part in
//!    the name, so two runs never share one) and is fsynced. A failure removes the
//!    temporaries: nothing visible has changed.
//! 2. Keep: every existing target gets a second name (a hard link), so it can be put back.
//!    A target that is a directory is refused here, before anything was renamed.
//! 3. Commit: renames over the targets, in order. If one fails, the renames before it are
//!    undone from the kept names: the old set is back. Then directories are fsynced and the
//!    kept names removed.
//!
//! Files whose bytes and mode are already right are left alone, so a re-run with the same
//! metadata changes nothing. Every path is resolved inside the root (`root.rs`).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rustix::fs::FileType;

use crate::render::RenderedFile;
use axoha_root::{Dir, RootDir};

/// The largest file we compare before rewriting it; ours are a few KiB.
const COMPARE_MAX: u64 = 1024 * 1024;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written(PathBuf),
    Unchanged(PathBuf),
}

/// One file on its way in: its directory, final name, temporary and kept names.
struct Staged {
    dir: usize,
    name: Vec<u8>,
    tmp: Vec<u8>,
    kept: Option<Vec<u8>>,
    shown: PathBuf,
}

/// The directories of the set, opened once each, and those we had to create (removed
/// again when the run changes nothing after all).
struct Dirs(Vec<(String, Dir)>, Vec<String>);

impl Dirs {
    fn get(&mut self, root: &RootDir, rel: &str) -> Result<usize> {
        if let Some(i) = self.0.iter().position(|(r, _)| r == rel) {
            return Ok(i);
        }
        let dir = root.create_dir_all(rel, &mut self.1)?;
        self.0.push((rel.to_owned(), dir));
        Ok(self.0.len() - 1)
    }

    fn remove_created(&self, root: &RootDir) {
        for rel in self.1.iter().rev() {
            root.remove_empty_dir(rel);
        }
    }
}

fn split(path: &str) -> Result<(&str, &OsStr)> {
    let p = Path::new(path);
    let name = p
        .file_name()
        .with_context(|| format!("{path} has no file name"))?;
    let dir = p.parent().and_then(Path::to_str).unwrap_or("");
    Ok((if dir.is_empty() { "." } else { dir }, name))
}

pub fn write_files(root: &RootDir, files: &[RenderedFile]) -> Result<Vec<Outcome>> {
    write_files_with(root, files, |dir, from, to| dir.rename(from, to))
}

/// [`write_files`] with the commit step's rename passed in, so a test can make it fail.
fn write_files_with(
    root: &RootDir,
    files: &[RenderedFile],
    mut rename: impl FnMut(&Dir, &OsStr, &OsStr) -> io::Result<()>,
) -> Result<Vec<Outcome>> {
    let mut dirs = Dirs(Vec::new(), Vec::new());
    let mut staged: Vec<Staged> = Vec::new();
    let mut outcomes = Vec::new();
    let prepared = (|| -> Result<()> {
        for file in files {
            let (dir_rel, name) = split(&file.path)?;
            let dir = dirs.get(root, dir_rel)?;
            let d = &dirs.0[dir].1;
            let shown = root.shown(&file.path);
            if d.read_regular(name, COMPARE_MAX)
                .is_some_and(|(bytes, mode)| mode == file.mode && bytes == file.contents.as_bytes())
            {
                outcomes.push(Outcome::Unchanged(shown));
                continue;
            }
            if d.file_type(name) == Some(FileType::Directory) {
                bail!("{} is a directory, not a file", shown.display());
            }
            let tmp = d.write_temp(name, file.contents.as_bytes(), file.mode)?;
            staged.push(Staged {
                dir,
                name: name.as_bytes().to_vec(),
                tmp,
                kept: None,
                shown: shown.clone(),
            });
            outcomes.push(Outcome::Written(shown));
        }
        for s in &mut staged {
            let d = &dirs.0[s.dir].1;
            let name = OsStr::from_bytes(&s.name);
            if d.file_type(name).is_some() {
                s.kept = Some(d.keep(name)?);
            }
        }
        Ok(())
    })();
    if let Err(e) = prepared {
        discard(&dirs, &staged);
        dirs.remove_created(root);
        return Err(e.context("nothing was changed"));
    }

    for (i, s) in staged.iter().enumerate() {
        let d = &dirs.0[s.dir].1;
        if let Err(e) = rename(d, OsStr::from_bytes(&s.tmp), OsStr::from_bytes(&s.name)) {
            let error = anyhow!(e).context(format!("renaming {} into place", s.shown.display()));
            return Err(match roll_back(&dirs, &staged[..i]) {
                Ok(()) => {
                    discard(&dirs, &staged);
                    dirs.remove_created(root);
                    error.context("the previous files were put back")
                }
                Err(undo) => error.context(format!(
                    "putting the previous files back failed too ({undo:#}): some files are \
                     new and some old"
                )),
            });
        }
    }
    for (_, d) in &dirs.0 {
        d.sync()?;
    }
    for s in &staged {
        if let Some(kept) = &s.kept {
            dirs.0[s.dir].1.unlink(OsStr::from_bytes(kept))?;
        }
    }
    Ok(outcomes)
}

/// Undoes the renames of `done`, last first.
fn roll_back(dirs: &Dirs, done: &[Staged]) -> Result<()> {
    for s in done.iter().rev() {
        let d = &dirs.0[s.dir].1;
        let name = OsStr::from_bytes(&s.name);
        match &s.kept {
            Some(kept) => d
                .rename(OsStr::from_bytes(kept), name)
                .with_context(|| format!("restoring {}", s.shown.display()))?,
            None => d.unlink(name)?,
        }
    }
    for (_, d) in &dirs.0 {
        d.sync()?;
    }
    Ok(())
}

/// Removes temporaries and kept names (best effort: they are hidden files with our suffix).
fn discard(dirs: &Dirs, staged: &[Staged]) {
    for s in staged {
        let d = &dirs.0[s.dir].1;
        let _ = d.unlink(OsStr::from_bytes(&s.tmp));
        if let Some(kept) = &s.kept {
            let _ = d.unlink(OsStr::from_bytes(kept));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn file(path: &str, contents: &str, mode: u32) -> RenderedFile {
        RenderedFile {
            path: path.into(),
            contents: contents.into(),
            mode,
        }
    }

    fn open(root: &tempfile::TempDir) -> RootDir {
        RootDir::open(root.path()).unwrap()
    }

    #[test]
    fn writes_with_modes_and_is_idempotent() {
        let root = tempfile::tempdir().unwrap();
        let files = [
            file("etc/a.conf", "a\n", 0o640),
            file("etc/x/b", "b\n", 0o600),
        ];
        let first = write_files(&open(&root), &files).unwrap();
        assert!(first.iter().all(|o| matches!(o, Outcome::Written(_))));
        let mode = fs::metadata(root.path().join("etc/x/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = write_files(&open(&root), &files).unwrap();
        assert!(second.iter().all(|o| matches!(o, Outcome::Unchanged(_))));
    }

    #[test]
    fn a_failure_while_staging_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/a.conf"), "old\n").unwrap();
        // "etc/a.conf/b" cannot be created: a.conf is a file, not a directory.
        let files = [
            file("etc/new.conf", "new\n", 0o644),
            file("etc/a.conf/b", "x", 0o644),
        ];
        assert!(write_files(&open(&root), &files).is_err());
        assert_eq!(
            fs::read_to_string(root.path().join("etc/a.conf")).unwrap(),
            "old\n"
        );
        let left: Vec<_> = fs::read_dir(root.path().join("etc")).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporaries or new files are left behind");
    }

    /// A rename that fails in the middle of the set: the ones before it are undone.
    #[test]
    fn a_failed_rename_puts_the_old_set_back() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/a"), "old a\n").unwrap();
        fs::write(root.path().join("etc/c"), "old c\n").unwrap();
        let files = [
            file("etc/a", "new a\n", 0o644),
            file("etc/b", "new b\n", 0o644),
            file("etc/c", "new c\n", 0o644),
        ];
        let mut calls = 0;
        let err = write_files_with(&open(&root), &files, |dir, from, to| {
            calls += 1;
            if calls == 3 {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            dir.rename(from, to)
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("put back"), "{err:#}");
        let mut names: Vec<String> = fs::read_dir(root.path().join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(
            fs::read_to_string(root.path().join("etc/a")).unwrap(),
            "old a\n"
        );
        assert_eq!(
            fs::read_to_string(root.path().join("etc/c")).unwrap(),
            "old c\n"
        );
    }

    #[test]
    fn a_directory_in_place_of_a_file_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc/b/sub")).unwrap();
        fs::write(root.path().join("etc/a"), "old a\n").unwrap();
        let files = [file("etc/a", "new a\n", 0o644), file("etc/b", "b\n", 0o644)];
        let err = write_files(&open(&root), &files).unwrap_err();
        assert!(format!("{err:#}").contains("is a directory"), "{err:#}");
        assert_eq!(
            fs::read_to_string(root.path().join("etc/a")).unwrap(),
            "old a\n"
        );
        assert_eq!(fs::read_dir(root.path().join("etc")).unwrap().count(), 2);
    }
}
