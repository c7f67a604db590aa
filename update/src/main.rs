use std::process::ExitCode;

use clap::Parser;

use axoha_update::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Apply(_)
        | Command::Status(_)
        | Command::FactoryReset(_)
        | Command::PrepareRoot(_) => Err(anyhow::anyhow!("not implemented yet")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axoha-update: {e:#}");
            ExitCode::FAILURE
        }
    }
}
