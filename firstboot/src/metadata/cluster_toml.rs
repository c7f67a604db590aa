//! `cluster.toml`: cluster-wide defaults baked into the image (`/usr/lib/axoha/cluster.toml`)
//! and the operator's override (`/etc/axoha/cluster.toml`). Both are optional.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context, Result};

use super::{bounds, AxohaKeys, Key, MetadataProvider, Source};
use axoha_root::{Location, METADATA_MAX};

pub struct ClusterToml {
    location: Location,
    source: Source,
}

impl ClusterToml {
    pub fn new(location: Location, source: Source) -> Self {
        ClusterToml { location, source }
    }
}

impl MetadataProvider for ClusterToml {
    fn source(&self) -> Source {
        self.source
    }

    fn values(&self) -> Result<BTreeMap<Key, String>> {
        let shown = self.location.shown();
        let Some(bytes) = self.location.read(METADATA_MAX)? else {
            return Ok(BTreeMap::new());
        };
        bounds::text(bytes)
            .and_then(|text| parse(&text))
            .with_context(|| format!("{}: invalid cluster.toml", shown.display()))
    }
}

pub fn parse(text: &str) -> Result<BTreeMap<Key, String>> {
    let keys: AxohaKeys = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let values = keys.into_values()?;
    super::spelling::check_toml(text)?;
    Ok(values)
}

/// The parser's message and the line, without the excerpt of the file that toml's own
/// Display adds: the excerpt could carry anything the file holds onto the console.
fn toml_error(text: &str, e: &toml::de::Error) -> anyhow::Error {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            anyhow!("line {line}: {}", e.message())
        }
        None => anyhow!("{}", e.message()),
    }
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
