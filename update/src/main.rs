use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use axoha_update::apply::{apply, remember, ApplyOptions, Force};
use axoha_update::cli::{Cli, Command};
use axoha_update::node::{Node, NodePaths};
use axoha_update::prepare_root::{prepare_root, PrepareRootOptions};
use axoha_update::{factory, memory, paths, status};

/// `record`: the memory brought up to date; each failure seen for the first time and the
/// verdict said on stdout (the console, via the unit).
fn record(paths: &NodePaths) -> Result<()> {
    let node = Node::load(paths)?;
    let _lock = node.root.lock(paths::APPLY_LOCK)?;
    let (memory, fresh) = remember(&node)?;
    for hash in fresh {
        println!(
            "axoha-update: the update to {} failed {} and used up its boot tries; the node fell back to {} on slot {}",
            memory::describe(&memory.images, hash),
            memory::times(memory.failed[&hash].tries),
            memory::describe(&memory.images, node.running_hash),
            node.running
        );
    }
    let entries = node.entries()?;
    let (_, line) = memory::outcome(&memory, &entries, node.running_hash, node.running);
    println!("axoha-update: {line}");
    Ok(())
}

fn run(cli: Cli) -> Result<u8> {
    let node = cli.node.paths();
    match cli.command {
        Command::Apply(a) => apply(&ApplyOptions {
            node,
            bundle: a.bundle,
            tries: a.tries,
            reboot: a.reboot,
            force: Force {
                downgrade: a.allow_downgrade,
                retry_failed: a.retry_failed,
                other_name: a.allow_other_name,
            },
        })
        .map(|()| 0),
        Command::Record => record(&node).map(|()| 0),
        Command::Status(s) => {
            let st = status::gather(&node)?;
            if s.check {
                println!("{}", st.summary);
                return Ok(st.exit_code);
            }
            if s.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&st).context("serializing status")?
                );
            } else {
                print!("{}", status::render(&st));
            }
            Ok(0)
        }
        Command::FactoryReset(f) => {
            factory::request(&node.root)?;
            println!("factory reset requested: the next boot starts from the factory state");
            if f.reboot {
                axoha_update::apply::reboot()?;
            }
            Ok(0)
        }
        Command::PrepareRoot(p) => prepare_root(&PrepareRootOptions {
            root: p.root,
            cmdline: node.cmdline,
        })
        .map(|()| 0),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("axoha-update: {e:#}");
            ExitCode::FAILURE
        }
    }
}
