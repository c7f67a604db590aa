//! Disk assembly for axoha images, without loop mounts (the build kernels have neither loop
//! devices we may use nor vfat): filesystems are built from directory trees by `mkfs.ext4 -d`
//! and `mkfs.vfat` + mtools, the GPT by `sfdisk` on a plain file, and partitions are copied
//! into place with sparse writes. Every step is deterministic given its seeds and
//! `SOURCE_DATE_EPOCH`, so two builds of the same inputs are bit-identical.

pub mod cpio;
pub mod elf;
pub mod esp;
pub mod ext4;
pub mod gpt;
pub mod hash;
pub mod qcow2;
pub mod qemu;
pub mod sparse;
pub mod squashfs;
pub mod tool;
pub mod uuid;
pub mod verity;
