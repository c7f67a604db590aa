//! Disk assembly (filesystems, GPT, ESP, bootloader, qcow2, PXE artifacts).
//!
//! Empty on purpose until the image-build issue lands: nothing here pretends to work.
