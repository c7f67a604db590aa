//! The build stages, in order: plan -> rootfs -> layer -> filesystems + disk -> targets.

mod api_filesystems;
pub mod disk;
pub mod dnf;
pub mod esp;
pub mod factory;
pub mod initrd;
pub mod layer;
pub mod mmdebstrap;
pub mod rootfs;
