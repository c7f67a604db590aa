//! The disk every node has (design.md "Immutable /usr"): the ESP, two /usr slots each with its
//! dm-verity partition, and the state partition last. The partitions are found by their GPT
//! names (fstab names them too), and each slot boots the kernel and initrd in its own
//! directory on the ESP.

use std::fmt;

/// GPT name of the EFI system partition (fstab mounts it at /efi by this name).
pub const ESP_NAME: &str = "ESP";
/// GPT name of the state partition: `/` (with /etc and /var), last on the disk.
pub const STATE_NAME: &str = "state";
/// Where each slot's kernel and initrd live on the ESP: `axoha/<slot>/`.
pub const ESP_SLOTS: &str = "axoha";
/// The node file on the ESP: the node's `axoha.KEY=VALUE` metadata, one argument a line (or
/// several on one, split like a command line), written by the PXE installer and `axoha-image
/// boot --karg` under Secure Boot. First boot reads it as a source of its own, right below the
/// kernel command line: under Secure Boot a signed UKI's command line is the image's alone
/// (docs/secure-boot.md).
pub const NODE_FILE: &str = "axoha/node.conf";

/// One of the two /usr partition pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// The lower-case letter used in paths (`/efi/axoha/b/`) and titles.
    pub fn letter(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// GPT name of its usr partition.
    pub fn usr_name(self) -> &'static str {
        match self {
            Slot::A => "usr-a",
            Slot::B => "usr-b",
        }
    }

    /// GPT name of its verity partition.
    pub fn verity_name(self) -> &'static str {
        match self {
            Slot::A => "usr-a-verity",
            Slot::B => "usr-b-verity",
        }
    }

    /// Its directory on the ESP (`axoha/a`).
    pub fn esp_dir(self) -> String {
        format!("{ESP_SLOTS}/{}", self.letter())
    }

    /// Its kernel, relative to the ESP's root.
    pub fn kernel(self) -> String {
        format!("{}/vmlinuz", self.esp_dir())
    }

    /// Its initrd, relative to the ESP's root.
    pub fn initrd(self) -> String {
        format!("{}/initrd.img", self.esp_dir())
    }

    /// Its signed unified kernel image (systemd-stub, os-release, command line, kernel and
    /// initrd in one PE file), relative to the ESP's root: what a Secure Boot image's entry
    /// boots (docs/secure-boot.md).
    pub fn uki(self) -> String {
        format!("{}/linux.efi", self.esp_dir())
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.letter())
    }
}

/// The GPT names in partition order (partition 1 is the ESP, 6 the state).
pub const PARTITION_NAMES: [&str; 6] = [
    ESP_NAME,
    "usr-a",
    "usr-a-verity",
    "usr-b",
    "usr-b-verity",
    STATE_NAME,
];

/// Partition numbers (1-based, as the GPT and the spec count them).
pub const PART_ESP: usize = 1;
pub const PART_USR_A: usize = 2;
pub const PART_USR_A_VERITY: usize = 3;
pub const PART_STATE: usize = 6;

/// The ESP's size: two slots' kernels and initrds (about 50 MiB each) and an update's
/// temporary copies.
pub const ESP_SIZE: u64 = 256 << 20;
/// Each slot's verity partition: the hash tree is about 0.8 % of the data (8 MiB for 1 GiB).
pub const VERITY_SIZE: u64 = 16 << 20;
/// The GPT's 1 MiB before the first partition and the backup GPT after the last.
pub const GPT_OVERHEAD: u64 = 2 << 20;

/// The state partition's size for a disk of `disk_bytes` with slots of `slot_bytes`, or
/// `None` when nothing is left for it (checked: no size can wrap).
pub fn state_bytes(disk_bytes: u64, slot_bytes: u64) -> Option<u64> {
    let fixed = ESP_SIZE + 2 * VERITY_SIZE + GPT_OVERHEAD;
    let used = slot_bytes.checked_mul(2)?.checked_add(fixed)?;
    disk_bytes.checked_sub(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_order() {
        assert_eq!(
            PARTITION_NAMES,
            [
                ESP_NAME,
                Slot::A.usr_name(),
                Slot::A.verity_name(),
                Slot::B.usr_name(),
                Slot::B.verity_name(),
                STATE_NAME
            ]
        );
        for (number, name) in [
            (PART_ESP, ESP_NAME),
            (PART_USR_A, Slot::A.usr_name()),
            (PART_USR_A_VERITY, Slot::A.verity_name()),
            (PART_STATE, STATE_NAME),
        ] {
            assert_eq!(PARTITION_NAMES[number - 1], name);
        }
        assert_eq!(Slot::B.initrd(), "axoha/b/initrd.img");
        assert_eq!(Slot::A.other(), Slot::B);
    }

    #[test]
    fn state_size() {
        assert!(state_bytes(4 << 30, 1 << 30).unwrap() >= 1 << 30);
        assert!(state_bytes(3 << 30, 1 << 30).unwrap() < 1 << 30);
        assert_eq!(state_bytes(1 << 30, 1 << 30), None);
        assert_eq!(state_bytes(u64::MAX, u64::MAX / 2 + 1), None);
        assert_eq!(state_bytes(u64::MAX, u64::MAX), None);
    }
}
