//! The definition's `selinux` key: whether SELinux runs on the node, and in which mode.

use serde::{Deserialize, Serialize};

/// `selinux = "permissive" | "enforcing"`. Unset: almalinux-10 runs enforcing (its policy
/// package's own default), debian-12 runs no SELinux (`Profile::default_selinux`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SelinuxMode {
    /// Denials are logged, nothing is refused.
    Permissive,
    /// Denials are refused.
    Enforcing,
}

impl SelinuxMode {
    pub fn name(self) -> &'static str {
        match self {
            SelinuxMode::Permissive => "permissive",
            SelinuxMode::Enforcing => "enforcing",
        }
    }

    /// `/etc/selinux/config`, read by PID 1 when it loads the policy: the mode and the
    /// policy's name (`targeted`, `default`). The mode is here and not on the kernel command
    /// line (`enforcing=`), so an operator can switch a node with the usual tools.
    pub fn config_file(self, policy: &str) -> String {
        format!(
            "# Written by axoha-image (the definition's selinux = \"{mode}\").\n\
             SELINUX={mode}\n\
             SELINUXTYPE={policy}\n",
            mode = self.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_mode_and_policy() {
        let text = SelinuxMode::Permissive.config_file("default");
        assert!(
            text.contains("\nSELINUX=permissive\nSELINUXTYPE=default\n"),
            "{text}"
        );
        assert!(SelinuxMode::Enforcing
            .config_file("targeted")
            .contains("\nSELINUX=enforcing\n"));
    }
}
