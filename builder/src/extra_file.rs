//! `[[files]]` of the appliance definition: files the operator adds to the image. They may
//! add to the appliance, never undo it: a path the appliance owns or promises is refused with
//! the reason, and so is one place written twice (in any spelling, see `ImagePath`).

use std::collections::BTreeSet;
use std::fmt;

use anyhow::{bail, Error, Result};
use serde::{Deserialize, Serialize};

use crate::image_path::ImagePath;
use crate::own_files::claimed;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraFile {
    pub path: ImagePath,
    pub contents: String,
    #[serde(default)]
    pub mode: FileMode,
}

/// Permission bits of an extra file, from an octal string: no file type, no set-user or
/// set-group ID, not world-writable (a definition adds files, not a way to root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileMode(u32);

impl FileMode {
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl Default for FileMode {
    fn default() -> FileMode {
        FileMode(0o644)
    }
}

impl TryFrom<String> for FileMode {
    type Error = Error;
    fn try_from(s: String) -> Result<FileMode> {
        let m = u32::from_str_radix(&s, 8)
            .map_err(|_| anyhow::anyhow!("mode {s:?} is not an octal mode such as \"0644\""))?;
        if m > 0o7777 {
            bail!("mode {s:?} is not a file mode");
        }
        if m & 0o6000 != 0 {
            bail!("mode {s:?}: set-user-ID and set-group-ID files are refused");
        }
        // Anyone on the node could rewrite a world-writable file the image ships (a script
        // root runs, a config a daemon reads).
        if m & 0o002 != 0 {
            bail!("mode {s:?}: world-writable files are refused (others may not write)");
        }
        Ok(FileMode(m))
    }
}

impl From<FileMode> for String {
    fn from(m: FileMode) -> String {
        format!("{:04o}", m.0)
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// The set of extra files: none claimed by the appliance, no place twice, no file inside
/// another (one of them would have to be a directory). `homes` are the definition's users'
/// home directories.
pub fn check_all(files: &[ExtraFile], homes: &[String]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for f in files {
        if let Some(why) = claimed(&f.path, homes) {
            bail!(
                "files: path {:?} belongs to the appliance: {why}",
                f.path.as_str()
            );
        }
        if crate::tmpfiles::is_config(&f.path) {
            crate::tmpfiles::check(&f.path, &f.contents, homes)?;
        }
        if !seen.insert(&f.path) {
            bail!(
                "files: path {:?} is given twice (after normalizing its spelling)",
                f.path.as_str()
            );
        }
    }
    for f in files {
        if let Some(outer) = seen
            .iter()
            .find(|o| *o != &&f.path && f.path.is_within(o.as_str()))
        {
            bail!(
                "files: path {:?} is inside {:?}, which is a file too",
                f.path.as_str(),
                outer.as_str()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_that_open_a_way_to_root_are_refused() {
        for (m, why) in [
            ("4755", "set-user-ID"),
            ("2755", "set-group-ID"),
            ("0666", "world-writable"),
            ("0777", "world-writable"),
            ("1777", "world-writable"),
            ("0002", "world-writable"),
            ("10644", "not a file mode"),
            ("0x1ff", "not an octal mode"),
        ] {
            let err = FileMode::try_from(m.to_owned()).unwrap_err().to_string();
            assert!(err.contains(why), "{m}: {err}");
        }
        for m in ["0644", "0600", "0755", "0664", "0400", "1755"] {
            assert!(FileMode::try_from(m.to_owned()).is_ok(), "{m}");
        }
    }
}
