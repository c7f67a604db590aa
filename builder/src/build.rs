//! `axoha-image build`: runs the stages and publishes the artifacts atomically.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use axoha_boot_contract::layout::Slot;
use axoha_disk::hash::sha256_file;
use axoha_disk::{qcow2, sparse};

use crate::build_cache;
use crate::dead_work;
use crate::installed;
use crate::manifest::{Artifact, Manifest};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::pxe;
use crate::stages::{disk, esp, factory, initrd, layer, rootfs};
use crate::tree::Tree;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Target {
    Qcow2,
    Raw,
    Pxe,
    /// A signed update bundle (`NAME-PROFILE.axoha-bundle`) for `axoha-update apply`.
    Bundle,
}

impl Target {
    pub fn extension(self) -> &'static str {
        match self {
            Target::Qcow2 => "qcow2",
            Target::Raw => "raw",
            Target::Pxe => "pxe",
            Target::Bundle => "axoha-bundle",
        }
    }
}

pub struct BuildOptions {
    pub targets: Vec<Target>,
    pub output: PathBuf,
    pub cache: PathBuf,
    /// The axoha-install binary for `--target pxe` (the initramfs's /init).
    pub installer: PathBuf,
    /// The secret key that signs `--target bundle`.
    pub signing_key: Option<PathBuf>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT/SIGTERM end the build at the next stage; the work directory is removed on the way out.
#[allow(unsafe_code)]
pub fn install_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// The build's private directory inside the output directory; removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    /// `OUTPUT/.axoha-build-PID`, fresh, after removing those of builds that were killed.
    fn create(output: &Path) -> Result<WorkDir> {
        dead_work::remove(output, ".axoha-build-", ".axoha-build-");
        let work = WorkDir(output.join(format!(".axoha-build-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(&work.0);
        std::fs::create_dir_all(&work.0)
            .with_context(|| format!("creating {}", work.0.display()))?;
        Ok(work)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn artifact_path(output: &Path, plan: &Plan, t: Target) -> PathBuf {
    match t {
        Target::Pxe => output.join("pxe"),
        _ => output.join(format!("{}.{}", plan.artifact_name, t.extension())),
    }
}

/// True when the output already holds this exact build (same build key, artifacts intact).
fn up_to_date(plan: &Plan, opts: &BuildOptions) -> bool {
    // The installer binary and the signing key are not part of the build key: a PXE bundle
    // and an update bundle are always rebuilt.
    if opts.targets.contains(&Target::Pxe) || opts.targets.contains(&Target::Bundle) {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(opts.output.join("manifest.json")) else {
        return false;
    };
    let Ok(m) = serde_json::from_str::<Manifest>(&text) else {
        return false;
    };
    if m.inputs.get("build_key").and_then(|v| v.as_str()) != Some(plan.build_key.as_str()) {
        return false;
    }
    opts.targets.iter().all(|t| {
        let path = artifact_path(&opts.output, plan, *t);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        m.artifacts
            .iter()
            .any(|a| a.file == name && std::fs::metadata(&path).is_ok_and(|md| md.len() == a.bytes))
    })
}

/// Stage 2 with its progress line: the cached rootfs tree, made when missing.
pub fn rootfs_stage(plan: &Plan, cache: &Path, progress: &mut Progress) -> Result<PathBuf> {
    progress.stage("rootfs");
    let activity = progress.activity(
        &format!("{} from {}", plan.profile.name(), plan.mirror),
        None,
    );
    let (tree, hit) = rootfs::ensure(plan, cache)?;
    drop(activity);
    progress.note(&format!(
        "{} {}",
        if hit { "cache hit" } else { "built and cached" },
        tree.display()
    ));
    Ok(tree)
}

/// The build, stage by stage: output checked, work directory made; then either the cached
/// build of the same key (`build_cache.rs`) or rootfs, appliance layer, filesystems and disk
/// (stored in the cache); targets; everything published at once.
pub fn build(plan: &Plan, opts: &BuildOptions, progress: &mut Progress) -> Result<Vec<PathBuf>> {
    check_options(plan, opts)?;
    std::fs::create_dir_all(&opts.output)
        .with_context(|| format!("creating {}", opts.output.display()))?;
    if up_to_date(plan, opts) {
        progress.note("up to date: the output already holds this build (same inputs)");
        return Ok(opts
            .targets
            .iter()
            .map(|t| artifact_path(&opts.output, plan, *t))
            .collect());
    }
    install_signal_handlers();
    let work = WorkDir::create(&opts.output)?;
    let place = build_cache::Place::of(&opts.cache, plan)?;
    let entry = match place.find() {
        Some(entry) => {
            progress.note(&format!(
                "disk: cache hit {} (same build key, builder and tools)",
                entry.path("").display()
            ));
            // rootfs, appliance layer, filesystems and disk
            progress.skip(3);
            entry
        }
        None => {
            let rootfs = rootfs_stage(plan, &opts.cache, progress)?;
            check_interrupt()?;
            let mut layered = layer_stage(plan, opts, &rootfs, &work, progress)?;
            check_interrupt()?;
            let usrhash = disk_stage(plan, &mut layered, &work, progress)?;
            check_interrupt()?;
            let slot = layered.esp.join(Slot::A.esp_dir());
            place
                .store(build_cache::Parts {
                    disk: &work.0.join("disk.raw"),
                    usr_img: &work.0.join("usr.img"),
                    usr_verity: &work.0.join("usr.verity"),
                    usrhash: &usrhash,
                    vmlinuz: &slot.join("vmlinuz"),
                    initrd: &slot.join("initrd.img"),
                    uki: plan
                        .signer
                        .as_ref()
                        .map(|_| slot.join("linux.efi"))
                        .as_deref(),
                    manifest: &layered.manifest,
                })
                .context("keeping the disk in the cache")?
        }
    };
    let mut manifest = entry.manifest.clone();
    let made = targets_stage(plan, opts, &entry, &work, &mut manifest, progress)?;
    manifest.keep_earlier_artifacts(&opts.output);
    publish(opts, &work, &manifest, made)
}

fn check_options(plan: &Plan, opts: &BuildOptions) -> Result<()> {
    let bundle = opts.targets.contains(&Target::Bundle);
    match (&opts.signing_key, bundle) {
        (None, true) => {
            bail!("--target bundle needs --signing-key FILE (a key pair from `axoha-image keygen`)")
        }
        (Some(_), false) => bail!("--signing-key is only for --target bundle"),
        (Some(key), true) => {
            let Some(wanted) = &plan.definition.update.public_key else {
                bail!(
                    "--target bundle: the definition has no [update] public_key, so its images \
                     accept no bundle; put the signing key's public key there"
                );
            };
            let public = axoha_update::bundle::public_key_of(key)
                .with_context(|| format!("--signing-key {}", key.display()))?;
            if public != wanted.as_str() {
                bail!(
                    "--signing-key {}: its public key {public} is not the definition's [update] \
                     public_key {wanted}: nodes of this image would refuse the bundle",
                    key.display()
                );
            }
        }
        (None, false) => {}
    }
    if opts.targets.contains(&Target::Pxe) && !opts.installer.is_file() {
        bail!(
            "--target pxe needs the installer binary {} (cargo build --release -p axoha-install, or --installer-bin)",
            opts.installer.display()
        );
    }
    Ok(())
}

/// What the layer stage leaves for the disk and targets: the layered tree, the ESP tree, the
/// disk identifiers and the manifest so far.
struct Layered {
    tree: PathBuf,
    esp: PathBuf,
    ids: disk::Ids,
    manifest: Manifest,
    initrd: initrd::Pending,
    /// A signed image's UKI stub and os-release, kept before /usr leaves the tree.
    uki_parts: Option<crate::uki::Parts>,
}

/// The cached tree hard-linked into the work directory, our layer on it, the initrd started
/// (cached, or dracut beside the rest), the ESP's loader and kernel, then the factory copy of
/// the state tree.
fn layer_stage(
    plan: &Plan,
    opts: &BuildOptions,
    rootfs: &Path,
    work: &WorkDir,
    progress: &mut Progress,
) -> Result<Layered> {
    progress.stage("appliance layer");
    let tree_path = work.0.join("tree");
    rootfs::link_copy(rootfs, &tree_path)?;
    let tree = Tree::open(&tree_path)?;
    installed::check_axorouter(plan.profile, plan.axorouter.standin, &tree)?;
    let manifest = Manifest::new(plan, installed::package_list(&tree)?);
    let appliance = format!("{} {}", plan.definition.name, plan.profile.name());
    let ids = disk::Ids::from_seed(&plan.definition_sha256, &appliance);
    layer::apply(plan, &tree, &manifest.to_json())?;
    let boot = esp::boot_files(&tree)?;
    let initrd = initrd::Pending::start(plan, &tree, &boot.version, &opts.cache, &work.0)?;
    let esp_path = work.0.join("esp");
    esp::fill_esp(
        &boot,
        &Tree::create(&esp_path)?,
        plan.signer.as_ref().and_then(|s| s.enrolment.as_ref()),
    )?;
    esp::drop_boot_copies(&tree, &boot)?;
    factory::apply(&tree)?;
    layer::label(plan, &tree)?;
    let uki_parts = match plan.signer {
        Some(_) => Some(crate::uki::Parts::keep(&tree_path, &work.0)?),
        None => None,
    };
    Ok(Layered {
        tree: tree_path,
        esp: esp_path,
        ids,
        manifest,
        initrd,
        uki_parts,
    })
}

/// /usr as squashfs + verity, slot A's loader entry with its root hash, the state ext4 from
/// the rest of the tree, the ESP, the GPT: `disk.raw`, `usr.img` and `usr.verity` in the work
/// directory. Returns the root hash.
fn disk_stage(
    plan: &Plan,
    layered: &mut Layered,
    work: &WorkDir,
    progress: &mut Progress,
) -> Result<String> {
    progress.stage("filesystems and disk");
    let started = Instant::now();
    let activity = progress.activity("/usr squashfs and verity", None);
    let slot = plan.definition.usr_slot_size.bytes();
    let usr = disk::usr_image(
        &layered.ids,
        &layered.tree,
        &work.0,
        slot,
        plan.source_date_epoch,
        plan.definition.usr_compression_level.get(),
    )?;
    drop(activity);
    progress.note(&format!(
        "usr: squashfs {} bytes, verity root hash {} ({:.1?})",
        std::fs::metadata(&usr.squashfs)?.len(),
        usr.root_hash.as_str(),
        started.elapsed()
    ));
    check_interrupt()?;
    let initrd = layered.initrd.finish(progress)?;
    check_interrupt()?;
    esp::add_initrd(&initrd, &Tree::open(&layered.esp)?)?;
    let options = esp::slot_a_options(
        usr.root_hash.as_str(),
        &layered.ids.state_part,
        &plan.definition.boot_cmdline(),
    );
    if let (Some(signer), Some(parts)) = (&plan.signer, &layered.uki_parts) {
        let activity = progress.activity("signed systemd-boot and UKI", None);
        esp::sign_slot_a(
            &layered.esp,
            parts,
            signer,
            &options,
            &work.0,
            plan.source_date_epoch,
        )?;
        drop(activity);
    }
    esp::write_entry(
        &Tree::open(&layered.esp)?,
        &format!("axoha {}", plan.artifact_name),
        &options,
        plan.signer.is_some(),
    )?;
    let activity = progress.activity("state ext4, ESP and GPT", None);
    let raw = work.0.join("disk.raw");
    disk::assemble(
        &layered.ids,
        disk::Sizes {
            disk: plan.definition.disk_size.bytes(),
            usr_slot: slot,
        },
        plan.source_date_epoch,
        &usr,
        &layered.tree,
        &layered.esp,
        &raw,
    )?;
    std::fs::remove_dir_all(&layered.tree)
        .with_context(|| format!("removing {}", layered.tree.display()))?;
    drop(activity);
    Ok(usr.root_hash.as_str().to_owned())
}

/// Each target made from the build's cached disk and payloads, hashed into the manifest:
/// (path in the work directory, published name).
fn targets_stage(
    plan: &Plan,
    opts: &BuildOptions,
    entry: &build_cache::Entry,
    work: &WorkDir,
    manifest: &mut Manifest,
    progress: &mut Progress,
) -> Result<Vec<(PathBuf, String)>> {
    progress.stage("targets");
    let mut made = Vec::new();
    let mut targets = opts.targets.clone();
    targets.sort();
    targets.dedup();
    let raw = entry.path(build_cache::DISK);
    for t in &targets {
        if *t == Target::Bundle {
            let (path, name) = bundle_target(plan, opts, entry, work, manifest, progress)?;
            made.push((path, name));
            check_interrupt()?;
            continue;
        }
        if *t == Target::Pxe {
            let pxe_dir = work.0.join("pxe");
            pxe_target(plan, opts, entry, &pxe_dir, manifest, progress)?;
            made.push((pxe_dir, "pxe".to_owned()));
            check_interrupt()?;
            continue;
        }
        let name = format!("{}.{}", plan.artifact_name, t.extension());
        let path = work.0.join(&name);
        let started = Instant::now();
        match t {
            // A sparse copy: the cached disk stays the cache's.
            Target::Raw => sparse::copy(&raw, &path)?,
            Target::Qcow2 => {
                let bar = progress.activity(&name, Some(100));
                qcow2::convert(&raw, &path, |p| bar.set(p as u64))?
            }
            Target::Pxe | Target::Bundle => unreachable!("handled above"),
        }
        record_artifact(&path, &name, started, manifest, progress)?;
        made.push((path, name));
        check_interrupt()?;
    }
    Ok(made)
}

/// A made artifact's size and sha256 into the manifest, with its progress line (time since
/// `started`).
fn record_artifact(
    path: &Path,
    name: &str,
    started: Instant,
    manifest: &mut Manifest,
    progress: &mut Progress,
) -> Result<()> {
    let sha256 = sha256_file(path)?;
    let bytes = std::fs::metadata(path)?.len();
    progress.note(&format!(
        "{name}: {bytes} bytes, sha256 {sha256} ({:.1?})",
        started.elapsed()
    ));
    manifest.artifacts.push(Artifact {
        file: name.to_owned(),
        sha256,
        bytes,
    });
    Ok(())
}

/// The signed update bundle from slot A's payloads (the squashfs and verity tree the disk got,
/// the ESP's kernel and initrd, a signed image's UKI), in the manifest.
fn bundle_target(
    plan: &Plan,
    opts: &BuildOptions,
    entry: &build_cache::Entry,
    work: &WorkDir,
    manifest: &mut Manifest,
    progress: &mut Progress,
) -> Result<(PathBuf, String)> {
    let started = Instant::now();
    let name = format!("{}.{}", plan.artifact_name, Target::Bundle.extension());
    let path = work.0.join(&name);
    let usrhash =
        std::fs::read_to_string(entry.path(build_cache::USRHASH)).context("the root hash")?;
    let key = opts.signing_key.as_deref().context("--signing-key")?;
    let activity = progress.activity(&name, None);
    axoha_update::bundle::write(
        &path,
        axoha_update::bundle::ManifestBase {
            profile: plan.profile.name().to_owned(),
            name: plan.definition.name.as_str().to_owned(),
            version: bundle_version(plan),
            build_key: plan.build_key.clone(),
            usrhash: usrhash.trim().to_owned(),
            kernel_cmdline: plan.definition.boot_cmdline(),
        },
        &axoha_update::bundle::Payloads {
            usr_img: entry.path(build_cache::USR_IMG),
            usr_verity: entry.path(build_cache::USR_VERITY),
            vmlinuz: entry.path(build_cache::VMLINUZ),
            initrd: entry.path(build_cache::INITRD),
            // A signed image's slot boots its UKI: a signed node takes nothing else.
            uki: plan
                .signer
                .as_ref()
                .map(|s| axoha_update::bundle::SignedUki {
                    path: entry.path(build_cache::UKI),
                    db_certificate_sha256: s.certificate_sha256.clone(),
                }),
        },
        key,
    )
    .context("writing the update bundle")?;
    drop(activity);
    record_artifact(&path, &name, started, manifest, progress)?;
    Ok((path, name))
}

/// The bundle's `version`: the definition's `version`, else axoha-image's version and the
/// build key's first 12 digits as build metadata (the updater's one rule, `version::of_build`,
/// which the node applies to its baked manifest too).
fn bundle_version(plan: &Plan) -> String {
    axoha_update::version::of_build(
        plan.definition.version.as_ref().map_or("", |v| v.as_str()),
        env!("CARGO_PKG_VERSION"),
        &plan.build_key,
    )
}

/// The PXE bundle: its boot files (kernel, installer initramfs, UKI) from the cached rootfs
/// tree, its compressed disk from the build cache when an earlier build made it, else
/// compressed now and kept there; every bundle file in the manifest.
fn pxe_target(
    plan: &Plan,
    opts: &BuildOptions,
    entry: &build_cache::Entry,
    pxe_dir: &Path,
    manifest: &mut Manifest,
    progress: &mut Progress,
) -> Result<()> {
    let started = Instant::now();
    // The distribution's kernel and modules: the layer adds none, and the cached tree is only
    // read here.
    let (rootfs, _) = rootfs::ensure(plan, &opts.cache)?;
    let boot = esp::boot_files(&Tree::open(&rootfs)?)?;
    pxe::write_boot_half(
        &rootfs,
        &boot,
        &opts.installer,
        plan.source_date_epoch,
        plan.signer.as_ref(),
        pxe_dir,
    )
    .context("PXE bundle: kernel, installer initramfs, UKI")?;
    progress.note(&format!(
        "pxe: kernel, installer initramfs, UKI ({:.1?})",
        started.elapsed()
    ));
    check_interrupt()?;
    let started = Instant::now();
    if entry.copy_pxe_disk(pxe_dir, &pxe::DISK_FILES)? {
        progress.note(&format!(
            "pxe/disk.raw.zst: cache hit ({:.1?})",
            started.elapsed()
        ));
    } else {
        let activity = progress.activity("pxe/disk.raw.zst", None);
        let (sha, _) = pxe::compress_disk(&entry.path(build_cache::DISK), pxe_dir)?;
        drop(activity);
        entry.keep_pxe_disk(pxe_dir, &pxe::DISK_FILES)?;
        progress.note(&format!(
            "pxe/disk.raw.zst: sha256 {sha} ({:.1?})",
            started.elapsed()
        ));
    }
    for f in pxe::FILES {
        let p = pxe_dir.join(f);
        manifest.artifacts.push(Artifact {
            file: format!("pxe/{f}"),
            sha256: sha256_file(&p)?,
            bytes: std::fs::metadata(&p)?.len(),
        });
    }
    Ok(())
}

/// Artifacts first, then the checksums and the manifest that describe them, each renamed
/// into the output directory; returns the artifacts' published paths.
fn publish(
    opts: &BuildOptions,
    work: &WorkDir,
    manifest: &Manifest,
    mut made: Vec<(PathBuf, String)>,
) -> Result<Vec<PathBuf>> {
    let artifacts = made.len();
    let sums: String = manifest
        .artifacts
        .iter()
        .map(|a| format!("{}  {}\n", a.sha256, a.file))
        .collect();
    std::fs::write(work.0.join("SHA256SUMS"), sums).context("writing SHA256SUMS")?;
    std::fs::write(work.0.join("manifest.json"), manifest.to_json())
        .context("writing manifest.json")?;
    made.push((work.0.join("SHA256SUMS"), "SHA256SUMS".into()));
    made.push((work.0.join("manifest.json"), "manifest.json".into()));
    let mut published = Vec::new();
    for (path, name) in made {
        let dest = opts.output.join(&name);
        if dest.is_dir() {
            // A previous bundle: replaced as a whole, never merged.
            std::fs::remove_dir_all(&dest)
                .with_context(|| format!("replacing {}", dest.display()))?;
        }
        std::fs::rename(&path, &dest).with_context(|| format!("publishing {}", dest.display()))?;
        published.push(dest);
    }
    published.truncate(artifacts);
    Ok(published)
}
