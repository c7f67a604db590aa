use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use axoha_update::apply::{apply, ApplyOptions};
use axoha_update::cli::{Cli, Command, NodeArgs};
use axoha_update::node::NodePaths;
use axoha_update::prepare_root::{prepare_root, PrepareRootOptions};
use axoha_update::{factory, status};

fn node_paths(args: &NodeArgs) -> NodePaths {
    NodePaths {
        disk: args.disk.clone(),
        esp: args.esp.clone(),
        cmdline: args.cmdline.clone(),
        root: args.root.clone(),
    }
}

fn run(cli: Cli) -> Result<()> {
    let node = node_paths(&cli.node);
    match cli.command {
        Command::Apply(a) => apply(&ApplyOptions {
            node,
            bundle: a.bundle,
            tries: a.tries,
            reboot: a.reboot,
        }),
        Command::Status(s) => {
            let st = status::gather(&node)?;
            if s.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&st).context("serializing status")?
                );
            } else {
                print!("{}", status::render(&st));
            }
            Ok(())
        }
        Command::FactoryReset(f) => {
            factory::request(&node.root)?;
            println!("factory reset requested: the next boot starts from the factory state");
            if f.reboot {
                axoha_update::apply::reboot()?;
            }
            Ok(())
        }
        Command::PrepareRoot(p) => prepare_root(&PrepareRootOptions {
            root: p.root,
            cmdline: node.cmdline,
        }),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axoha-update: {e:#}");
            ExitCode::FAILURE
        }
    }
}
