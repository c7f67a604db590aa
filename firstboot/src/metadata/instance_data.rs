//! cloud-init instance data (`/run/cloud-init/instance-data.json`):
//! <https://cloudinit.readthedocs.io/en/latest/explanation/instancedata.html>
//!
//! We read `ds.meta_data`, the datasource's raw meta-data, which for NoCloud is the seed's
//! `meta-data` mapping; so the same `axoha:` mapping works in both places. cloud-init writes
//! a root-only `instance-data-sensitive.json` beside it with nothing redacted; we prefer that.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{bounds, Key, MetadataProvider, NoCloudMetaData, Source};
use axoha_root::{Location, RootDir, METADATA_MAX};

#[derive(Debug, Deserialize)]
struct InstanceDataFile {
    #[serde(default)]
    ds: Ds,
}

#[derive(Debug, Default, Deserialize)]
struct Ds {
    #[serde(default)]
    meta_data: Option<NoCloudMetaData>,
}

pub struct InstanceData {
    location: Option<Location>,
    /// An explicit file must exist.
    required: bool,
}

impl InstanceData {
    /// An explicit file must exist; otherwise the usual places under `root`, if present.
    pub fn locate(root: &RootDir, explicit: Option<&Path>) -> InstanceData {
        if let Some(p) = explicit {
            return InstanceData {
                location: Some(Location::Given(p.to_owned())),
                required: true,
            };
        }
        let location = [
            "run/cloud-init/instance-data-sensitive.json",
            "run/cloud-init/instance-data.json",
        ]
        .into_iter()
        .find(|p| root.exists(p))
        .map(|p| Location::InRoot(root.clone(), p.to_owned()));
        InstanceData {
            location,
            required: false,
        }
    }
}

impl MetadataProvider for InstanceData {
    fn source(&self) -> Source {
        Source::InstanceData
    }

    fn values(&self) -> Result<BTreeMap<Key, String>> {
        let Some(location) = &self.location else {
            return Ok(BTreeMap::new());
        };
        let shown = location.shown();
        let context = || format!("cloud-init instance data {}", shown.display());
        match location.read(METADATA_MAX).with_context(context)? {
            Some(bytes) => bounds::text(bytes)
                .and_then(|text| parse(&text))
                .with_context(context),
            None if self.required => {
                anyhow::bail!("cloud-init instance data {}: no such file", shown.display())
            }
            None => Ok(BTreeMap::new()),
        }
    }
}

pub fn parse(text: &str) -> Result<BTreeMap<Key, String>> {
    let file: InstanceDataFile = serde_json::from_str(text)?;
    file.ds
        .meta_data
        .map(|m| m.into_values())
        .unwrap_or_else(|| Ok(BTreeMap::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ds_meta_data_axoha() {
        let v = parse(r#"{"ds":{"meta_data":{"instance-id":"i","axoha":{"role":"secondary","vrid":9}}},"v1":{}}"#)
            .unwrap();
        assert_eq!(v[&Key::Role], "secondary");
        assert_eq!(v[&Key::Vrid], "9");
    }

    #[test]
    fn no_axoha_mapping_means_no_values() {
        assert!(parse(r#"{"ds":{"meta_data":{"instance-id":"i"}}}"#)
            .unwrap()
            .is_empty());
        assert!(parse(r#"{"v1":{}}"#).unwrap().is_empty());
    }
}
