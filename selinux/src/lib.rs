//! The SELinux policy module that lets keepalived's health check query AxoRouter, and the
//! steps that compile it and install it into an image's policy store.
//!
//! The check axoha renders into `keepalived.conf` is
//! `/usr/bin/systemctl is-active --quiet axorouter.service`. keepalived runs it in its own
//! domain, `keepalived_t`, which the Fedora/RHEL targeted policy does not allow to run
//! systemctl or to talk to systemd; the module `keepalived_axorouter`
//! (`selinux/keepalived_axorouter.te`, embedded in this crate) adds exactly those rules.
//!
//! The module uses Fedora/RHEL policy types that Debian's reference policy lacks; a debian-12
//! image with SELinux installs [`RHEL_TYPES_NAME`] first, which declares them (and nothing
//! else), so the module links there too. Compiling it needs no policy at all
//! (`checkmodule -M -m` builds a standalone module whose `require` block is resolved at
//! install time), so it compiles on any build host that has the tools:
//!
//! | step | tool | Debian package | RHEL package |
//! |---|---|---|---|
//! | `.te` -> `.mod` | `checkmodule` | `checkpolicy` | `checkpolicy` |
//! | `.mod` -> `.pp` | `semodule_package` | `semodule-utils` | `policycoreutils` |
//! | install | `semodule` | `policycoreutils` | `policycoreutils` |

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

/// The name of the policy module, as declared by `module NAME VERSION;` in the source. The
/// compiled package is `NAME.pp`: semodule takes a module's name from its file name, so the
/// two must agree.
pub const MODULE_NAME: &str = "keepalived_axorouter";

/// The policy source of [`MODULE_NAME`], `selinux/keepalived_axorouter.te`.
pub const MODULE_SOURCE: &str = include_str!("../keepalived_axorouter.te");

/// The module that declares, on Debian's reference policy, the Fedora/RHEL types
/// [`MODULE_NAME`] requires (`selinux/rhel_types.te`): declarations only, so our module links
/// there; its rules then have no process to apply to (Debian runs keepalived in `initrc_t`).
pub const RHEL_TYPES_NAME: &str = "axoha_rhel_types";

/// The policy source of [`RHEL_TYPES_NAME`].
pub const RHEL_TYPES_SOURCE: &str = include_str!("../rhel_types.te");

/// The first four bytes of every SELinux policy module package (`.pp`): the magic
/// `0xf97cff8f`, stored little-endian.
pub const PACKAGE_MAGIC: [u8; 4] = 0xf97c_ff8f_u32.to_le_bytes();

/// Compiles the embedded module [`MODULE_SOURCE`] and returns the path of
/// `out_dir/keepalived_axorouter.pp`.
///
/// See [`compile_source`] for the steps, the tools needed and the guarantees on failure.
pub fn compile_module(out_dir: &Path) -> Result<PathBuf> {
    compile_source(MODULE_NAME, MODULE_SOURCE, out_dir)
}

/// Compiles [`RHEL_TYPES_SOURCE`] into `out_dir/axoha_rhel_types.pp` (see [`compile_source`]).
pub fn compile_rhel_types(out_dir: &Path) -> Result<PathBuf> {
    compile_source(RHEL_TYPES_NAME, RHEL_TYPES_SOURCE, out_dir)
}

/// Compiles the policy module `name` from the type-enforcement source `source` into
/// `out_dir/NAME.pp` and returns that path.
///
/// The source is written to a private temporary directory as `NAME.te`, then compiled there
/// with
///
/// ```text
/// checkmodule -M -m -o NAME.mod NAME.te
/// semodule_package -o NAME.pp -m NAME.mod
/// ```
///
/// The package is copied into `out_dir` under a temporary name, synced, and renamed to
/// `NAME.pp` at the end, replacing any earlier package of that name. `out_dir` is created
/// when missing, but only once compilation has succeeded.
///
/// # Errors
///
/// - `name` is not a valid module name, or `source` does not declare `module NAME ...;`;
/// - `checkmodule` or `semodule_package` is not installed (the message names the Debian
///   package that provides it) or fails (the message includes what it printed);
/// - the temporary directory or `out_dir` cannot be written.
///
/// On error `out_dir` receives nothing: no package, no temporary file.
pub fn compile_source(name: &str, source: &str, out_dir: &Path) -> Result<PathBuf> {
    compile_with_contexts(name, source, None, out_dir)
}

/// [`compile_source`] with file contexts: `file_contexts` (the text of an `.fc` file, contexts
/// written out, no m4 macros) goes into the package with `semodule_package -f`, so installing
/// the module also labels the paths it names. Our own module has none; tests use this for
/// stand-ins of a policy's own modules.
pub fn compile_with_contexts(
    name: &str,
    source: &str,
    file_contexts: Option<&str>,
    out_dir: &Path,
) -> Result<PathBuf> {
    check_module_name(name)?;
    match declared_module_name(source) {
        Some(declared) if declared == name => {}
        Some(declared) => bail!(
            "the policy source declares module `{declared}` but is compiled as `{name}`: \
             the package file name must equal the module name"
        ),
        None => bail!("the policy source for `{name}` has no `module {name} VERSION;` statement"),
    }

    let work = TempDir::new("axoha-selinux")
        .context("creating a temporary directory to compile the SELinux module in")?;
    let te = format!("{name}.te");
    let module = format!("{name}.mod");
    let package = format!("{name}.pp");
    fs::write(work.path().join(&te), source)
        .with_context(|| format!("writing {}", work.path().join(&te).display()))?;

    run_tool(
        "checkmodule",
        "checkpolicy",
        ["-M", "-m", "-o", &module, &te],
        work.path(),
    )
    .with_context(|| format!("compiling SELinux module `{name}` ({te} -> {module})"))?;
    let fc = format!("{name}.fc");
    let mut package_args = vec!["-o", package.as_str(), "-m", module.as_str()];
    if let Some(contexts) = file_contexts {
        fs::write(work.path().join(&fc), contexts)
            .with_context(|| format!("writing {}", work.path().join(&fc).display()))?;
        package_args.extend(["-f", fc.as_str()]);
    }
    run_tool(
        "semodule_package",
        "semodule-utils",
        package_args,
        work.path(),
    )
    .with_context(|| format!("packaging SELinux module `{name}` ({module} -> {package})"))?;

    let built = work.path().join(&package);
    let bytes = fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    if !bytes.starts_with(&PACKAGE_MAGIC) {
        bail!(
            "semodule_package wrote {} but it does not start with the SELinux module package \
             magic 0xf97cff8f",
            built.display()
        );
    }

    fs::create_dir_all(out_dir)
        .with_context(|| format!("creating output directory {}", out_dir.display()))?;
    let dest = out_dir.join(&package);
    write_atomically(&dest, &bytes)
        .with_context(|| format!("writing SELinux module package {}", dest.display()))?;
    Ok(dest)
}

/// Installs the module package `pp` into the policy store of the image tree `root`, for the
/// policy `policy` (e.g. `targeted`), without loading it into the running kernel:
///
/// ```text
/// semodule -p ROOT -n -s POLICY -i PP
/// ```
///
/// The builder calls this for RHEL-family images, whose policy package provides the store.
/// `ROOT` must hold the store `ROOT/var/lib/selinux/POLICY` and should hold
/// `ROOT/etc/selinux/semanage.conf` (libsemanage falls back to the build host's
/// `/etc/selinux/semanage.conf` when it is missing, which may not suit the image). semodule
/// rebuilds the policy from the store, so the store must resolve every type the module
/// requires: this fails, loudly, on a policy that lacks them (Debian's reference policy).
/// The package's file name must be `NAME.pp`, NAME being the module name.
///
/// # Errors
///
/// The store is missing, `semodule` is not installed (the message names the Debian package
/// `policycoreutils`), or it fails (the message includes what it printed).
pub fn install_module(root: &Path, policy: &str, pp: &Path) -> Result<()> {
    check_policy_name(policy)?;
    let store = root.join("var/lib/selinux").join(policy);
    if !store.is_dir() {
        bail!(
            "no SELinux policy store {} in the image root: is the `{policy}` policy package \
             installed there?",
            store.display()
        );
    }
    if !pp.is_file() {
        bail!("SELinux module package {} does not exist", pp.display());
    }
    let args: [&OsStr; 7] = [
        "-p".as_ref(),
        root.as_os_str(),
        "-n".as_ref(),
        "-s".as_ref(),
        policy.as_ref(),
        "-i".as_ref(),
        pp.as_os_str(),
    ];
    let installed = run_tool("semodule", "policycoreutils", args, Path::new("/"));
    if let Err(err) = installed {
        let unresolved = unresolved_statement(&format!("{err:#}"), pp);
        let err = match unresolved {
            Some(Unresolved::Type(t)) => err.context(format!(
                "the `{policy}` policy of the image has no type `{t}`, which the module requires \
                 (a Fedora/RHEL targeted policy has it)"
            )),
            Some(Unresolved::Statement(s)) => {
                err.context(format!("the `{policy}` policy cannot resolve `{s}`"))
            }
            None => err,
        };
        return Err(err).with_context(|| {
            format!(
                "installing SELinux module {} into policy `{policy}` of {}",
                pp.display(),
                root.display()
            )
        });
    }
    Ok(())
}

/// What semodule could not resolve, read back from the module itself.
#[derive(Debug, PartialEq, Eq)]
enum Unresolved {
    /// A required type the policy lacks.
    Type(String),
    /// Any other statement, as CIL.
    Statement(String),
}

/// semodule reports a failed link as `Failed to resolve ... at .../NAME/cil:LINE`, pointing
/// into a temporary copy it removes again. The same CIL comes from the package through
/// libsemanage's converter (`/usr/libexec/selinux/hll/pp`), so the line can still be named.
fn unresolved_statement(message: &str, pp: &Path) -> Option<Unresolved> {
    let line: usize = message
        .split("/cil:")
        .nth(1)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    let cil = Command::new("/usr/libexec/selinux/hll/pp")
        .arg(pp)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let statement = String::from_utf8_lossy(&cil.stdout)
        .lines()
        .nth(line.checked_sub(1)?)?
        .trim()
        .to_owned();
    Some(parse_unresolved(&statement))
}

fn parse_unresolved(statement: &str) -> Unresolved {
    match statement
        .strip_prefix("(typeattributeset cil_gen_require ")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        Some(t) => Unresolved::Type(t.to_owned()),
        None => Unresolved::Statement(statement.to_owned()),
    }
}

/// Sets the SELinux label of every file in the image tree `root` from the file contexts of
/// its `policy` (`setfiles -r ROOT FILE_CONTEXTS ROOT`), so a first boot needs no relabel
/// (and no extra reboot). The labels are `security.selinux` extended attributes, which
/// `tar --selinux` and `mkfs.ext4 -d` carry into the image; the build host's own SELinux
/// state does not matter. setfiles only writes labels that differ, so relabelling a tree that
/// shares inodes with an already labelled copy leaves that copy as it was.
pub fn label_tree(root: &Path, policy: &str) -> Result<()> {
    check_policy_name(policy)?;
    let contexts = root
        .join("etc/selinux")
        .join(policy)
        .join("contexts/files/file_contexts");
    if !contexts.is_file() {
        bail!(
            "no file contexts {} in the image root: is the `{policy}` policy package installed \
             there?",
            contexts.display()
        );
    }
    let args: [&OsStr; 4] = [
        "-r".as_ref(),
        root.as_os_str(),
        contexts.as_os_str(),
        root.as_os_str(),
    ];
    run_tool("setfiles", "policycoreutils", args, Path::new("/"))
        .with_context(|| format!("labelling {} with policy `{policy}`", root.display()))?;
    Ok(())
}

fn check_policy_name(policy: &str) -> Result<()> {
    if policy.is_empty() || policy.contains('/') || policy == "." || policy == ".." {
        bail!("invalid SELinux policy name {policy:?}");
    }
    Ok(())
}

/// Module names are identifiers: they become file names and policy symbols.
fn check_module_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        bail!("invalid SELinux module name {name:?}: use letters, digits and `_`");
    }
    Ok(())
}

/// The NAME of the first `module NAME VERSION;` statement, comments (`#` to end of line)
/// ignored.
fn declared_module_name(source: &str) -> Option<&str> {
    let mut words = source
        .lines()
        .map(|line| line.split_once('#').map_or(line, |(code, _)| code))
        .flat_map(str::split_whitespace);
    if words.next()? != "module" {
        return None;
    }
    words.next()
}

/// Runs `program args` in `dir`; succeeds only on exit status 0. `package` is the Debian
/// package providing `program`, for the error when it is missing.
fn run_tool<I, S>(program: &str, package: &str, args: I, dir: &Path) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = match Command::new(program).args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            bail!("`{program}` was not found in PATH: install it (Debian package `{package}`)")
        }
        // What a PATH lookup says when it found nothing but one of PATH's directories could
        // not be searched by this user (e.g. /root/... in root's PATH kept under sudo -u).
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            bail!(
                "`{program}` could not be run ({err}): not in a PATH directory this user may \
                 search, or not executable; install it (Debian package `{package}`)"
            )
        }
        Err(err) => return Err(err).with_context(|| format!("running `{program}`")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut printed = String::new();
        for text in [stderr.trim(), stdout.trim()] {
            if !text.is_empty() {
                printed.push('\n');
                printed.push_str(text);
            }
        }
        if printed.is_empty() {
            printed.push_str(" (it printed nothing)");
        }
        bail!("`{program}` failed ({}):{printed}", output.status);
    }
    Ok(output)
}

/// Writes `bytes` to `dest` through a temporary file in the same directory, synced and then
/// renamed, so `dest` is either absent, the old file, or the complete new one. The temporary
/// file is removed on failure.
fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest
        .parent()
        .context("destination has no parent directory")?;
    let file_name = dest
        .file_name()
        .context("destination has no file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", unique_suffix()));
    let result = (|| -> Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A suffix no other call in this process, and most likely no other process, uses.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory under the system temporary directory, removed with its contents on drop.
/// (The `tempfile` crate is only a dev-dependency of this crate.)
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<Self> {
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let path = base.join(format!("{prefix}-{}", unique_suffix()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self(path)),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => {
                    return Err(err).with_context(|| format!("creating {}", path.display()))
                }
            }
        }
        bail!("could not create a unique directory in {}", base.display())
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn compiles_the_embedded_module_into_a_package() {
        let out = tempfile::tempdir().unwrap();
        let pp = compile_module(out.path()).unwrap();
        assert_eq!(pp, out.path().join("keepalived_axorouter.pp"));
        let bytes = fs::read(&pp).unwrap();
        assert!(bytes.len() > PACKAGE_MAGIC.len(), "package is empty");
        assert_eq!(bytes[..4], [0x8f, 0xff, 0x7c, 0xf9]);
        assert_eq!(bytes[..4], PACKAGE_MAGIC);
        // Nothing but the package: no temporary file left behind.
        assert_eq!(entries(out.path()), ["keepalived_axorouter.pp"]);
    }

    #[test]
    fn recompiling_replaces_the_package() {
        let out = tempfile::tempdir().unwrap();
        let first = fs::read(compile_module(out.path()).unwrap()).unwrap();
        let second = fs::read(compile_module(out.path()).unwrap()).unwrap();
        assert_eq!(first, second, "compilation is not deterministic");
        assert_eq!(entries(out.path()), ["keepalived_axorouter.pp"]);
    }

    #[test]
    fn creates_a_missing_output_directory() {
        let out = tempfile::tempdir().unwrap();
        let nested = out.path().join("a/b");
        let pp = compile_module(&nested).unwrap();
        assert!(pp.is_file());
    }

    #[test]
    fn the_source_declares_the_module_name_and_version() {
        assert_eq!(declared_module_name(MODULE_SOURCE), Some(MODULE_NAME));
        assert!(MODULE_SOURCE.contains("module keepalived_axorouter 1.0;"));
        for rule in [
            "allow keepalived_t systemd_systemctl_exec_t:file { execute execute_no_trans getattr open read map };",
            "allow keepalived_t init_t:unix_stream_socket connectto;",
            "allow keepalived_t init_t:system status;",
            "allow keepalived_t systemd_unit_file_t:service status;",
            // At least what the public guide's module grants.
            "allow keepalived_t systemd_generator_unit_file_t:service status;",
            "allow keepalived_t syslogd_var_run_t:dir read;",
        ] {
            assert!(MODULE_SOURCE.contains(rule), "missing rule: {rule}");
        }
    }

    #[test]
    fn a_syntax_error_fails_naming_checkmodule_and_writes_nothing() {
        let out = tempfile::tempdir().unwrap();
        let broken = MODULE_SOURCE.replace(
            "allow keepalived_t init_t:system status;",
            "allow keepalived_t init_t:system { status ;",
        );
        assert_ne!(broken, MODULE_SOURCE);
        let err = compile_source(MODULE_NAME, &broken, out.path()).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("checkmodule"), "{message}");
        // The tool's own diagnostic is part of the error.
        assert!(message.contains("syntax error"), "{message}");
        assert!(entries(out.path()).is_empty(), "{:?}", entries(out.path()));
    }

    #[test]
    fn failure_leaves_a_missing_output_directory_missing() {
        let out = tempfile::tempdir().unwrap();
        let nested = out.path().join("pp");
        let err = compile_source("broken", "module broken 1.0;\nallow;\n", &nested).unwrap_err();
        assert!(format!("{err:#}").contains("checkmodule"), "{err:#}");
        assert!(!nested.exists());
    }

    #[test]
    fn the_declared_name_must_match() {
        let out = tempfile::tempdir().unwrap();
        let err = compile_source("other_name", MODULE_SOURCE, out.path()).unwrap_err();
        assert!(format!("{err:#}").contains("declares module `keepalived_axorouter`"));
        assert!(compile_source("../evil", MODULE_SOURCE, out.path()).is_err());
        assert!(compile_source("x", "# only a comment\n", out.path()).is_err());
        assert!(entries(out.path()).is_empty());
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            run_tool("axoha-no-such-tool", "some-package", ["--help"], dir.path()).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("axoha-no-such-tool"), "{message}");
        assert!(message.contains("`some-package`"), "{message}");
    }

    #[test]
    fn install_requires_the_policy_store() {
        let root = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let pp = compile_module(out.path()).unwrap();
        let err = install_module(root.path(), "targeted", &pp).unwrap_err();
        assert!(
            format!("{err:#}").contains("var/lib/selinux/targeted"),
            "{err:#}"
        );
        assert!(install_module(root.path(), "../x", &pp).is_err());
    }

    #[test]
    fn unresolved_requirements_are_named() {
        assert_eq!(
            parse_unresolved("(typeattributeset cil_gen_require keepalived_t)"),
            Unresolved::Type("keepalived_t".into())
        );
        assert_eq!(
            parse_unresolved("(allow a b (file (read)))"),
            Unresolved::Statement("(allow a b (file (read)))".into())
        );
        let out = tempfile::tempdir().unwrap();
        let pp = compile_module(out.path()).unwrap();
        // Line 1 of the module's CIL is its first required type.
        let message = "Failed to resolve typeattributeset statement at /x/tmp/modules/400/keepalived_axorouter/cil:1";
        assert_eq!(
            unresolved_statement(message, &pp),
            Some(Unresolved::Type("keepalived_t".into()))
        );
        assert_eq!(unresolved_statement("semodule: Failed!", &pp), None);
    }

    #[test]
    fn module_name_and_comments_parse() {
        assert_eq!(
            declared_module_name("# module nope 1;\n  module  yes_1 1.0;"),
            Some("yes_1")
        );
        assert_eq!(declared_module_name("policy_module(x, 1.0)"), None);
        assert!(check_module_name("keepalived_axorouter").is_ok());
        for bad in ["", "1abc", "a-b", "a/b", "a b"] {
            assert!(check_module_name(bad).is_err(), "{bad}");
        }
    }
}
