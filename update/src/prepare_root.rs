//! `prepare-root ROOT`, run in the initrd once /sysroot and /sysroot/usr are mounted: a
//! factory reset when the flag file or `axoha.factory_reset` asks for one (the argument
//! writes the flag first), a check that the root has what every boot needs, then the /etc
//! update from the (possibly new) /usr's factory /etc.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use axoha_root::{read_given, RootDir, CMDLINE_MAX};

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
        // The flag is durable before the first deletion: the argument is typed once, at
        // this boot, and a reset cut short must be done again at the next.
        factory::reset(
            &root,
            (!flagged).then_some(crate::cmdline::FACTORY_RESET_ARG),
        )?;
        changed = true;
    }
    // Before the /etc update, which would take a root without them as its new base.
    factory::check_complete(&root)?;
    // A failed /etc update must not stop the boot: every file it replaced was replaced whole
    // (temp + rename), the base is rewritten only after all of them, so the next boot tries
    // again; meanwhile the node runs with the /etc it had, which is better than a boot that
    // never reaches its services (the initrd deadline would reboot a blessed entry forever).
    // A failed factory reset above is different: that root is not safe to boot.
    match etc_update::run(&root) {
        Ok(c) => changed |= c,
        Err(e) => eprintln!(
            "axoha: /etc update from the new /usr failed, booting with /etc as it was: {e:#}"
        ),
    }
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
