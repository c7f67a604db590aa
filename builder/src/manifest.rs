//! `manifest.json`: what went into a build and what came out.

use std::path::Path;

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
                "metrics_sha256": plan.metrics.sha256,
                "source_date_epoch": plan.source_date_epoch,
                "rootfs_key": plan.rootfs_key,
                "build_key": plan.build_key,
                "tools": plan.tools,
                // Signed for a db certificate (its hash), or unsigned: `inspect` says which.
                "secure_boot": match &plan.signer {
                    Some(s) => serde_json::json!({
                        "signed": true,
                        "db_certificate_sha256": s.certificate_sha256,
                        "db_certificate_subject": s.subject,
                        // systemd-boot's key enrolment from the ESP: off, manual or force.
                        "enrol": s.enrolment.as_ref().map_or("off", |e| e.mode.name()),
                    }),
                    None => serde_json::json!({ "signed": false }),
                },
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

    /// The artifacts an earlier build of the same build key left in the output (another target:
    /// `--target qcow2`, then `--target pxe`) stay listed in the manifest and SHA256SUMS, when
    /// they are still there with their recorded size and this build does not replace them.
    pub fn keep_earlier_artifacts(&mut self, output: &Path) {
        let Ok(text) = std::fs::read_to_string(output.join("manifest.json")) else {
            return;
        };
        let Ok(earlier) = serde_json::from_str::<Manifest>(&text) else {
            return;
        };
        if earlier.inputs.get("build_key") != self.inputs.get("build_key") {
            return;
        }
        // By first component: a new `pxe/` replaces every file of the old one.
        let top = |file: &str| file.split('/').next().unwrap_or_default().to_owned();
        let replaced = |file: &str| self.artifacts.iter().any(|a| top(&a.file) == top(file));
        let kept: Vec<Artifact> = earlier
            .artifacts
            .into_iter()
            .filter(|a| !replaced(&a.file))
            .filter(|a| std::fs::metadata(output.join(&a.file)).is_ok_and(|m| m.len() == a.bytes))
            .collect();
        self.artifacts.extend(kept);
    }
}
