//! `manifest.json`: what went into a build and what came out.

use serde::{Deserialize, Serialize};

use crate::plan::Plan;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
}

/// The manifest: `inputs` is also baked into the image as /usr/lib/axoha/manifest.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub demo: bool,
    pub profile: String,
    pub inputs: serde_json::Value,
    pub packages: Vec<Package>,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

impl Manifest {
    pub fn new(plan: &Plan, packages: Vec<(String, String)>) -> Manifest {
        Manifest {
            name: plan.artifact_name.clone(),
            demo: plan.axorouter.standin,
            profile: plan.profile.name().into(),
            inputs: serde_json::json!({
                "definition": plan.definition,
                "definition_sha256": plan.definition_sha256,
                "release": plan.release,
                "arch": plan.arch.name(),
                // What the image needs of a machine: the operator's first question.
                "cpu_level": plan.arch.cpu_level(plan.profile),
                "mirror": plan.mirror,
                "axorouter": plan.axorouter,
                "axorouter_note": if plan.axorouter.standin {
                    "DEMO: the axoha test stand-in, not AxoRouter"
                } else {
                    "AxoRouter package supplied by the operator"
                },
                "firstboot_sha256": plan.firstboot.sha256,
                "update_sha256": plan.update.sha256,
                "source_date_epoch": plan.source_date_epoch,
                "rootfs_key": plan.rootfs_key,
                "build_key": plan.build_key,
                "tools": plan.tools,
                "axoha_image_version": env!("CARGO_PKG_VERSION"),
            }),
            packages: packages
                .into_iter()
                .map(|(name, version)| Package { name, version })
                .collect(),
            artifacts: Vec::new(),
        }
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serializes");
        s.push('\n');
        s
    }
}
