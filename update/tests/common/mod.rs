//! The test node (`node.rs`) with axoha-update's binary, and bundles' tar entries taken apart
//! for the hostile corpus.

#![allow(dead_code)]

mod node;

use std::process::{Command, Output};

pub use node::*;

impl Node {
    /// `axoha-update ARGS` on this node, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_axoha-update"));
        cmd.args(self.node_args()).args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

/// A tar entry: its 512-byte header and its data (padding not included).
#[derive(Clone)]
pub struct Entry {
    pub header: [u8; 512],
    pub data: Vec<u8>,
}

impl Entry {
    pub fn new(name: &str, data: Vec<u8>) -> Entry {
        Entry {
            header: axoha_update::tar::header(name, data.len() as u64).unwrap(),
            data,
        }
    }

    pub fn name(&self) -> String {
        let end = self.header[..100]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(100);
        String::from_utf8_lossy(&self.header[..end]).into_owned()
    }

    /// Sets raw header bytes at `at` and fixes the checksum.
    pub fn set(&mut self, at: usize, bytes: &[u8]) -> &mut Entry {
        self.header[at..at + bytes.len()].copy_from_slice(bytes);
        fix_checksum(&mut self.header);
        self
    }

    pub fn set_name(&mut self, name: &str) -> &mut Entry {
        let mut field = [0u8; 100];
        field[..name.len()].copy_from_slice(name.as_bytes());
        self.set(0, &field)
    }

    pub fn set_size(&mut self, size: u64) -> &mut Entry {
        self.set(124, format!("{size:011o}\0").as_bytes())
    }
}

pub fn fix_checksum(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// The entries of a bundle we wrote.
pub fn split(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let header: [u8; 512] = bytes[at..at + 512].try_into().unwrap();
        if header.iter().all(|&b| b == 0) {
            return out;
        }
        let size = u64::from_str_radix(std::str::from_utf8(&header[124..135]).unwrap(), 8).unwrap()
            as usize;
        out.push(Entry {
            header,
            data: bytes[at + 512..at + 512 + size].to_vec(),
        });
        at += 512 + size.div_ceil(512) * 512;
    }
}

/// A tar of `entries` (each data padded), with the end blocks.
pub fn join(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.header);
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}
