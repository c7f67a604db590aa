//! `axoha-image`: builds the axoha appliance image (see ARCHITECTURE.md).

mod arch;
mod build;
mod build_cache;
mod cli;
mod cluster;
mod dead_work;
mod definition;
mod extra_file;
mod fetch;
mod image_path;
mod inspect;
mod installed;
mod manifest;
mod own_files;
mod plan;
mod profile;
mod progress;
mod pxe;
mod secure_boot;
mod selinux_mode;
mod stages;
mod tmpfiles;
mod tree;
mod uki;
mod unit_search;
mod users;
mod vm;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use cli::{BootArgs, BuildArgs, Cli, Command, DefinitionArgs, PxeConfigArgs, SeedArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => run_build(args),
        Command::Rootfs(args) => run_rootfs(args),
        Command::Keygen { out } => run_keygen(&out),
        Command::Inspect { image } => inspect::inspect(&image).map(|s| print!("{s}")),
        Command::Boot(args) => run_boot(args),
        Command::Seed(args) => run_seed(args),
        Command::PxeConfig(args) => run_pxe_config(args),
        Command::RespondMetadata { file } => vm::metadata_service::respond(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axoha-image: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `keygen --out DIR`: the directory made if needed (private: it holds the secret keys), then
/// the update key pair (the updater refuses to overwrite one) and the Secure Boot key set
/// (`secure-boot/`, never overwritten either).
fn run_keygen(out: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out)
        .with_context(|| format!("creating {}", out.display()))?;
    axoha_update::bundle::generate_keypair(out)?;
    println!("{}", out.join("axoha-update.pub").display());
    let set = secure_boot::generate(out, "axoha")?;
    println!("{}", set.display());
    Ok(())
}

fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"))
        .join("axoha")
}

/// The definition with the command line applied, planned (see `plan::load`).
fn load_plan(args: &DefinitionArgs, progress: &mut progress::Progress) -> Result<plan::Plan> {
    plan::load(
        &plan::Overrides {
            config: args.config.clone(),
            profile: args.profile,
            mirror: args.mirror.clone(),
            axorouter: args.axorouter.clone(),
            axorouter_sha256: args.axorouter_sha256.clone(),
            demo: args.demo,
            cache: args.cache.clone().unwrap_or_else(default_cache),
            firstboot_bin: args.firstboot_bin.clone(),
            update_bin: args.update_bin.clone(),
            metrics_bin: args.metrics_bin.clone(),
        },
        progress,
    )
}

fn run_rootfs(args: cli::RootfsArgs) -> Result<()> {
    let mut progress = progress::Progress::new(2);
    let plan = load_plan(&args.definition, &mut progress)?;
    if let Some(out) = &args.floor_command {
        let argv = match plan.profile {
            profile::Profile::Debian12 => stages::mmdebstrap::floor_command(&plan, out),
            profile::Profile::Almalinux10 => stages::dnf::floor_command(&plan, out)?,
        };
        for arg in argv {
            println!("{arg}");
        }
        return Ok(());
    }
    let args = args.definition;
    let cache = args.cache.unwrap_or_else(default_cache);
    let cached = build::rootfs_stage(&plan, &cache, &mut progress)?;
    let scratch = stages::rootfs::Scratch::of(&cached)?;
    let tree = tree::Tree::open(scratch.path())?;
    installed::check_axorouter(plan.profile, plan.axorouter.standin, &tree)?;
    progress.finish();
    println!("{}", cached.display());
    for (name, version) in installed::package_list(&tree)? {
        println!("{name} {version}");
    }
    Ok(())
}

fn run_build(args: BuildArgs) -> Result<()> {
    let mut progress = progress::Progress::new(5);
    let plan = load_plan(&args.definition, &mut progress)?;
    let artifacts = build::build(
        &plan,
        &build::BuildOptions {
            targets: args.target,
            output: args.output,
            cache: args.definition.cache.unwrap_or_else(default_cache),
            installer: match args.installer_bin {
                Some(p) => p,
                None => plan::next_to_this_program("axoha-install")?,
            },
            signing_key: args.signing_key,
        },
        &mut progress,
    )?;
    progress.finish();
    if let Some(path) = args.timings_json {
        let json: serde_json::Map<String, serde_json::Value> = progress
            .timings
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for a in artifacts {
        println!("{}", a.display());
    }
    Ok(())
}

/// `mcast:PORT` of `--net`.
fn mcast_port(flag: &str, value: Option<&str>) -> Result<Option<u16>> {
    let Some(n) = value else {
        return Ok(None);
    };
    let port = n
        .strip_prefix("mcast:")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p >= 1024)
        .with_context(|| format!("{flag} {n:?}: expected mcast:PORT with PORT >= 1024"))?;
    Ok(Some(port))
}

fn run_boot(args: BootArgs) -> Result<()> {
    let net_mcast_port = mcast_port("--net", args.net.as_deref())?;
    let vip_pair = match args.vip_net.as_deref() {
        None => None,
        Some(v) => Some(vm::boot::parse_vip_pair(v)?),
    };
    let vm = vm::boot::start(&vm::boot::BootOptions {
        image: args.image,
        seed: args.seed,
        metadata_service: args.metadata_service,
        kargs: args.kargs,
        net_mcast_port,
        vip_pair,
        serial_log: args.serial_log,
        memory_mib: args.memory,
        accel: args.accel,
        mac: args.mac,
        ssh_port: args.ssh,
        forwards: args.forward.clone(),
        forwards_to: args.forward_to.clone(),
        secure_boot: match (args.secure_boot, args.secure_boot_setup_mode) {
            (Some(set), _) => Some(vm::boot::SecureBootFirmware::Enrolled(set)),
            (None, true) => Some(vm::boot::SecureBootFirmware::SetupMode),
            (None, false) => None,
        },
        disk: args.disk,
    })?;
    build::install_signal_handlers();
    // Until QEMU exits, or SIGINT/SIGTERM: then the VM is killed and its temporary disk removed.
    let mut vm = vm;
    loop {
        if let Some(status) = vm.try_wait()? {
            if !status.success() {
                anyhow::bail!("qemu exited with {status}");
            }
            return Ok(());
        }
        if build::interrupted() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn run_seed(args: SeedArgs) -> Result<()> {
    let cluster = cluster::description::load(&args.cluster)?;
    let secrets = cluster::node::Secrets::load(args.secrets.as_deref())?;
    let names: Vec<String> = match args.node {
        Some(n) => vec![n],
        None => cluster.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    // Validate every node before writing any seed.
    let rendered = names
        .iter()
        .map(|n| cluster::seed::render_as(args.format, &cluster, n, &secrets).map(|f| (n, f)))
        .collect::<Result<Vec<_>>>()?;
    for (name, files) in rendered {
        let iso = cluster::seed::write_iso(&files, &args.output, name)?;
        println!("{}", iso.display());
    }
    Ok(())
}

fn run_pxe_config(args: PxeConfigArgs) -> Result<()> {
    let written = cluster::pxe_config::run(&cluster::pxe_config::Options {
        cluster: args.cluster,
        output: args.output,
        bundle_url: args.bundle_url,
        bundle: args.bundle,
        disk: args.disk,
        kargs: args.kargs,
    })?;
    for p in written {
        println!("{}", p.display());
    }
    Ok(())
}
