//! The CPU level the image's packages are built for: a choice only AlmaLinux 10 offers.
//!
//! AlmaLinux 10's `x86_64` tree is built for x86-64-v3, like RHEL 10: on an older CPU (or
//! QEMU's default CPU model) its glibc stops at once with "CPU does not support x86-64-v3".
//! AlmaLinux also builds every package for x86-64-v2, in a tree of its own
//! (`MIRROR/RELEASE/{BaseOS,AppStream}/x86_64_v2/os/`) whose packages carry the architecture
//! `x86_64_v2`. Debian 12's amd64 needs only the x86-64 baseline, so it has no choice.

use serde::{Deserialize, Serialize};

use crate::profile::Profile;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Arch {
    /// The distribution's default tree (AlmaLinux 10: x86-64-v3; Debian 12: amd64).
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    /// AlmaLinux 10's tree for older CPUs (x86-64-v2: about 2009 and later).
    #[serde(rename = "x86_64_v2")]
    X86_64V2,
}

impl Arch {
    /// The name in `axoha.toml`, which is also the directory of the mirror's tree and the
    /// architecture of its packages.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::X86_64V2 => "x86_64_v2",
        }
    }

    /// The oldest CPU the profile's packages run on, as glibc names the levels.
    pub fn cpu_level(self, profile: Profile) -> &'static str {
        match (profile, self) {
            (Profile::Almalinux10, Arch::X86_64) => "x86-64-v3",
            (Profile::Almalinux10, Arch::X86_64V2) => "x86-64-v2",
            (Profile::Debian12, _) => "x86-64",
        }
    }

    /// dnf's `--forcearch` for this tree: its packages are `x86_64_v2`, which dnf on an
    /// x86_64 build host does not install by itself.
    pub fn dnf_forcearch(self) -> Option<&'static str> {
        match self {
            Arch::X86_64 => None,
            Arch::X86_64V2 => Some("x86_64_v2"),
        }
    }

    /// Whether `profile` has a tree for this architecture.
    pub fn check(self, profile: Profile) -> anyhow::Result<()> {
        if self == Arch::X86_64V2 && profile != Profile::Almalinux10 {
            anyhow::bail!(
                "arch = \"x86_64_v2\": only almalinux-10 has an x86_64_v2 tree; {}'s amd64 \
                 runs on any x86-64 CPU (leave arch = \"x86_64\")",
                profile.name()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_levels_and_profiles() {
        assert_eq!(Arch::default(), Arch::X86_64);
        assert_eq!(Arch::X86_64.cpu_level(Profile::Almalinux10), "x86-64-v3");
        assert_eq!(Arch::X86_64V2.cpu_level(Profile::Almalinux10), "x86-64-v2");
        assert_eq!(Arch::X86_64V2.dnf_forcearch(), Some("x86_64_v2"));
        assert_eq!(Arch::X86_64.dnf_forcearch(), None);
        assert!(Arch::X86_64V2.check(Profile::Almalinux10).is_ok());
        assert!(Arch::X86_64.check(Profile::Debian12).is_ok());
        let err = Arch::X86_64V2.check(Profile::Debian12).unwrap_err();
        assert!(err.to_string().contains("only almalinux-10"), "{err}");
    }
}
