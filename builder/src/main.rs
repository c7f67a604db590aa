//! `axoha-image`: the appliance image builder.
//!
//! Not implemented yet (see the image-build issue). The command exists so the CLI shape is
//! fixed early; every subcommand says plainly that it does nothing yet and exits non-zero.

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "axoha-image",
    version,
    about = "Build the axoha appliance image"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an appliance image (not implemented yet).
    Build {
        #[arg(long, value_enum)]
        target: Target,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    Qcow2,
    Raw,
    Pxe,
}

fn main() -> std::process::ExitCode {
    let Cli { command } = Cli::parse();
    match command {
        Command::Build { .. } => {
            eprintln!("axoha-image build: not implemented yet; see README.md (image build is the next issue)");
            std::process::ExitCode::from(2)
        }
    }
}
