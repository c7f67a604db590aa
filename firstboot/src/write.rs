//! Writing a set of files so that a failure leaves the old files in place.
//!
//! Phase 1 writes every file to a temporary name beside its target and fsyncs it; if any of
//! that fails, the temporaries are removed and nothing visible has changed. Phase 2 renames
//! them over their targets and fsyncs the directories. Files whose bytes and mode are already
//! right are left alone, so a re-run with the same metadata changes nothing.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::render::RenderedFile;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written(PathBuf),
    Unchanged(PathBuf),
}

struct Staged {
    tmp: PathBuf,
    target: PathBuf,
}

pub fn write_files(root: &Path, files: &[RenderedFile]) -> Result<Vec<Outcome>> {
    let mut staged: Vec<Staged> = Vec::new();
    let mut outcomes = Vec::new();
    for file in files {
        let target = root.join(&file.path);
        if is_current(&target, file) {
            outcomes.push(Outcome::Unchanged(target));
            continue;
        }
        match stage(&target, file) {
            Ok(tmp) => staged.push(Staged {
                tmp,
                target: target.clone(),
            }),
            Err(e) => {
                for s in &staged {
                    let _ = fs::remove_file(&s.tmp);
                }
                return Err(e);
            }
        }
        outcomes.push(Outcome::Written(target));
    }
    for s in &staged {
        fs::rename(&s.tmp, &s.target)
            .with_context(|| format!("renaming {} into place", s.target.display()))?;
        sync_parent(&s.target)?;
    }
    Ok(outcomes)
}

fn is_current(target: &Path, file: &RenderedFile) -> bool {
    let Ok(meta) = fs::metadata(target) else {
        return false;
    };
    meta.permissions().mode() & 0o7777 == file.mode
        && fs::read(target).is_ok_and(|b| b == file.contents.as_bytes())
}

fn stage(target: &Path, file: &RenderedFile) -> Result<PathBuf> {
    let dir = target
        .parent()
        .with_context(|| format!("{} has no parent directory", target.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = target
        .file_name()
        .with_context(|| format!("{} has no file name", target.display()))?;
    let tmp = dir.join(format!(".{}.axoha-new", name.to_string_lossy()));
    let result = (|| -> Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        // The umask may have taken bits away; the mode is part of what we promise.
        f.set_permissions(fs::Permissions::from_mode(file.mode))
            .with_context(|| format!("setting mode of {}", tmp.display()))?;
        f.write_all(file.contents.as_bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, contents: &str, mode: u32) -> RenderedFile {
        RenderedFile {
            path: path.into(),
            contents: contents.into(),
            mode,
        }
    }

    #[test]
    fn writes_with_modes_and_is_idempotent() {
        let root = tempfile::tempdir().unwrap();
        let files = [
            file("etc/a.conf", "a\n", 0o640),
            file("etc/x/b", "b\n", 0o600),
        ];
        let first = write_files(root.path(), &files).unwrap();
        assert!(first.iter().all(|o| matches!(o, Outcome::Written(_))));
        let mode = fs::metadata(root.path().join("etc/x/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = write_files(root.path(), &files).unwrap();
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
        assert!(write_files(root.path(), &files).is_err());
        assert_eq!(
            fs::read_to_string(root.path().join("etc/a.conf")).unwrap(),
            "old\n"
        );
        let left: Vec<_> = fs::read_dir(root.path().join("etc")).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporaries or new files are left behind");
    }
}
