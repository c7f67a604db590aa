//! One look at the node: [`gather`] calls the same functions the two `status` commands and
//! `health` call (`axoha_firstboot::status::gather`/`paths`, `health::observe`/`judge`,
//! `axoha_update::status::gather`), so the endpoint, the banner and the commands never
//! disagree. A part that cannot be read says why; nothing fails the whole look.

use std::path::PathBuf;
use std::time::Duration;

use axoha_firstboot::config::NodeConfig;
use axoha_firstboot::health::{self, Observed, Verdict};
use axoha_firstboot::sources::SourcePaths;
use axoha_firstboot::status::{self as pair, RunDir};
use axoha_root::RootDir;
use axoha_update::node::NodePaths;
use axoha_update::status;

use crate::heard;

/// Where the facts are read from (the defaults: the running node's).
#[derive(Clone, Debug)]
pub struct FactPaths {
    pub node: NodePaths,
    /// The notify script's directory, when not `run/axoha` under the root.
    pub run_dir: Option<PathBuf>,
}

impl FactPaths {
    pub fn sources(&self) -> SourcePaths {
        SourcePaths {
            root: self.node.root.clone(),
            ..SourcePaths::live()
        }
    }
}

/// Everything one scrape shows; a part that could not be read says why.
pub struct Facts {
    /// The node's config from its metadata sources (as `axoha-firstboot status` reads it).
    pub config: Result<NodeConfig, String>,
    pub pair: Result<pair::Status, String>,
    /// The heartbeat paths as the background listener last saw them (`None`: not listened,
    /// as in a one-off print).
    pub heard: Option<Result<Vec<heard::Seen>, String>>,
    pub health: Result<(Observed, Verdict), String>,
    pub first_boot_done: bool,
    pub update: Result<status::Status, String>,
}

/// The node's config, as `axoha-firstboot status` resolves it.
pub fn node_config(paths: &FactPaths) -> Result<NodeConfig, String> {
    let resolved = paths.sources().resolve().map_err(|e| format!("{e:#}"))?;
    NodeConfig::from_resolved(&resolved).map_err(|p| format!("{p}"))
}

/// One look at the node. `config`: resolved once by the caller (the server keeps it).
pub fn gather(
    paths: &FactPaths,
    config: Result<NodeConfig, String>,
    heard: Option<Result<Vec<heard::Seen>, String>>,
) -> Facts {
    let root = RootDir::open(&paths.node.root).map_err(|e| format!("{e:#}"));
    let run_dir =
        RunDir::open(&paths.node.root, paths.run_dir.as_deref()).map_err(|e| format!("{e:#}"));
    let pair = match (&config, &root, &run_dir) {
        (Ok(c), Ok(root), Ok(run_dir)) => {
            let drain = axoha_firstboot::drain::read(root).ok();
            pair::gather(c, run_dir, Duration::ZERO, drain).map_err(|e| format!("{e:#}"))
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e.clone()),
    };
    let health = match (&root, &run_dir) {
        (Ok(root), Ok(run_dir)) => {
            let o = health::observe(root, run_dir);
            let v = health::judge(&o);
            Ok((o, v))
        }
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
    };
    let first_boot_done = root
        .as_ref()
        .is_ok_and(|r| r.exists(axoha_firstboot::render::STAMP));
    Facts {
        config,
        pair,
        heard,
        health,
        first_boot_done,
        update: status::gather(&paths.node).map_err(|e| format!("{e:#}")),
    }
}
