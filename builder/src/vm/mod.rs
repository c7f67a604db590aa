//! The VM runner: `axoha-image boot` starts an image in QEMU with OVMF (UEFI), its seed or
//! config drive, forwards on 127.0.0.1, and optionally an OpenStack metadata service.

pub mod boot;
mod iso;
pub mod metadata_service;
