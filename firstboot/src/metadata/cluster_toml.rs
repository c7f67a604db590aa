//! `cluster.toml`: cluster-wide defaults baked into the image (`/usr/lib/axoha/cluster.toml`)
//! and the operator's override (`/etc/axoha/cluster.toml`). Both are optional.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{AxohaKeys, Key, MetadataProvider, Source};

pub struct ClusterToml {
    path: PathBuf,
    source: Source,
}

impl ClusterToml {
    pub fn new(path: PathBuf, source: Source) -> Self {
        ClusterToml { path, source }
    }
}

impl MetadataProvider for ClusterToml {
    fn source(&self) -> Source {
        self.source
    }

    fn values(&self) -> Result<BTreeMap<Key, String>> {
        let text = match std::fs::read_to_string(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            other => other.with_context(|| format!("reading {}", self.path.display()))?,
        };
        parse(&text).with_context(|| format!("{}: invalid cluster.toml", self.path.display()))
    }
}

pub fn parse(text: &str) -> Result<BTreeMap<Key, String>> {
    let keys: AxohaKeys = toml::from_str(text)?;
    Ok(keys.into_values())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_health_table() {
        let v = parse(
            "vrid = 51\nadvert_int = 0.2\npeers = [\"192.0.2.11\", \"192.0.2.12\"]\n[health]\nfall = 3\n",
        )
        .unwrap();
        assert_eq!(v[&Key::Vrid], "51");
        assert_eq!(v[&Key::AdvertInt], "0.2");
        assert_eq!(v[&Key::Peers], "192.0.2.11,192.0.2.12");
        assert_eq!(v[&Key::HealthFall], "3");
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let err = format!("{:#}", parse("vrid = 1\nvird = 2\n").unwrap_err());
        assert!(err.contains("vird") && err.contains("line 2"), "{err}");
    }
}
