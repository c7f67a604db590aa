//! `[cluster]`: the image-wide defaults of cluster.toml, typed by axoha-firstboot's own keys.

use anyhow::{bail, Context, Result};

use axoha_firstboot::metadata::{AxohaKeys, Key, RawMetadata, Resolved, Source};

/// A `[cluster]` table first boot accepts as `/usr/lib/axoha/cluster.toml`: its keys and
/// values are axoha-firstboot's, no secrets (the image is shared), nothing per node.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "toml::Table", into = "toml::Table")]
pub struct ClusterDefaults(toml::Table);

impl ClusterDefaults {
    pub fn table(&self) -> &toml::Table {
        &self.0
    }
}

impl TryFrom<toml::Table> for ClusterDefaults {
    type Error = String;

    fn try_from(table: toml::Table) -> Result<ClusterDefaults, String> {
        check(&table).map_err(|e| format!("{e:#}"))?;
        Ok(ClusterDefaults(table))
    }
}

impl From<ClusterDefaults> for toml::Table {
    fn from(c: ClusterDefaults) -> toml::Table {
        c.0
    }
}

fn check(table: &toml::Table) -> Result<()> {
    let keys: AxohaKeys = table.clone().try_into().context("[cluster]")?;
    let layer = RawMetadata {
        source: Source::BakedClusterToml,
        values: keys.into_values().context("[cluster]")?,
    };
    for key in layer.values.keys() {
        if !Source::BakedClusterToml.may_set(*key) {
            bail!("[cluster] {key}: secrets are never baked into a shared image");
        }
    }
    let resolved = Resolved::merge([layer]);
    axoha_firstboot::config::check_values(&resolved)
        .map_err(|p| anyhow::anyhow!("[cluster] {p}"))?;
    if resolved.get(Key::Role).is_some() || resolved.get(Key::HaIp).is_some() {
        bail!(
            "[cluster]: role and ha_ip are per node (kernel command line or seed), not image-wide"
        );
    }
    Ok(())
}
