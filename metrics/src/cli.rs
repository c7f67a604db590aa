//! The command line: clap types only. `main.rs` turns them into the calls of the modules that
//! do the work.
//!
//! `axoha-metrics` prints one scrape on stdout; `--print-banner` prints the login banner
//! instead; `--serve` serves the metrics over HTTP until killed, and with `--banner` also
//! keeps the login banner up to date (what axoha-metrics.service runs).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use axoha_update::cli::NodeArgs;

/// The node's state as Prometheus metrics: one scrape on stdout, or --serve them over HTTP
/// (axoha-metrics.service).
#[derive(Debug, Parser)]
#[command(name = "axoha-metrics", version)]
pub struct Cli {
    /// Where the node's image state is (the updater's own hidden options, for tests).
    #[command(flatten)]
    pub node: NodeArgs,
    /// Serve http://ADDRESS:PORT/metrics until killed, listening to the heartbeat paths in
    /// the background.
    #[arg(long)]
    pub serve: bool,
    /// Where to listen (default: every address, on the metrics port).
    #[arg(long, value_name = "ADDRESS:PORT", requires = "serve")]
    pub listen: Option<SocketAddr>,
    /// Also keep the login banner (/run/issue.d/axoha.issue, /run/motd.d/axoha) up to date.
    #[arg(long, requires = "serve")]
    pub banner: bool,
    /// Print the login banner instead of the metrics.
    #[arg(long, conflicts_with = "serve")]
    pub print_banner: bool,
    /// The notify script's directory (default: run/axoha under the root). For tests.
    #[arg(long, hide = true, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn banner_and_listen_need_serve() {
        for args in [
            &["axoha-metrics", "--banner"][..],
            &["axoha-metrics", "--listen", "127.0.0.1:9650"],
            &["axoha-metrics", "--serve", "--print-banner"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
        let cli = Cli::try_parse_from(["axoha-metrics", "--serve", "--banner"]).unwrap();
        assert!(cli.serve && cli.banner && !cli.print_banner);
    }
}
