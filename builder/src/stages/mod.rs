//! The build stages, in order: plan -> rootfs -> layer -> filesystems + disk -> targets.

pub mod disk;
pub mod layer;
pub mod rootfs;
