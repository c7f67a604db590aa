//! `prepare-root ROOT`, run in the initrd once /sysroot and /sysroot/usr are mounted: a
//! factory reset when the flag file or `axoha.factory_reset` asks for one, then the /etc
//! update from the (possibly new) /usr's factory /etc.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use axoha_firstboot::root::{read_given, RootDir, CMDLINE_MAX};

use crate::cmdline::Cmdline;
use crate::{etc_update, factory, paths};

pub struct PrepareRootOptions {
    pub root: PathBuf,
    pub cmdline: PathBuf,
}

pub fn prepare_root(opts: &PrepareRootOptions) -> Result<()> {
    let root = RootDir::open(&opts.root)?;
    let cmdline = Cmdline::parse(&String::from_utf8_lossy(&read_given(
        &opts.cmdline,
        CMDLINE_MAX,
    )?));
    let flagged = root.exists(paths::FACTORY_RESET_FLAG);
    let mut changed = false;
    if flagged || cmdline.factory_reset() {
        println!(
            "factory reset asked for by {}",
            if flagged {
                paths::FACTORY_RESET_FLAG
            } else {
                crate::cmdline::FACTORY_RESET_ARG
            }
        );
        factory::reset(&root)?;
        changed = true;
    }
    changed |= etc_update::run(&root)?;
    // Files written here from the initrd carry no SELinux label: relabel at this boot.
    if changed && root.is_file("etc/selinux/config") {
        let dir = root.open_dir(".")?.expect("the root exists");
        let name = OsStr::new(".autorelabel");
        let tmp = dir.write_temp(name, b"", 0o644)?;
        dir.rename(OsStr::from_bytes(&tmp), name)
            .context("writing /.autorelabel")?;
        dir.sync()?;
    }
    Ok(())
}
