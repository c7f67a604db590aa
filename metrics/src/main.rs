use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use axoha_metrics::cli::Cli;
use axoha_metrics::facts::{gather, node_config, FactPaths};
use axoha_metrics::serve::{self, ServeOptions};
use axoha_metrics::{banner, expose};

fn run(cli: Cli) -> Result<()> {
    let paths = FactPaths {
        node: cli.node.paths(),
        run_dir: cli.run_dir,
    };
    if cli.serve {
        return serve::run(ServeOptions {
            paths,
            listen: cli.listen,
            banner: cli.banner,
        });
    }
    let config = node_config(&paths);
    let facts = gather(&paths, config, None);
    if cli.print_banner {
        print!("{}", banner::render(&facts));
    } else {
        print!("{}", expose::encode(&facts)?);
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axoha-metrics: {e:#}");
            ExitCode::FAILURE
        }
    }
}
