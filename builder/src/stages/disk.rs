//! Stages 4 and 5, filesystems and disk: root ext4 + ESP, a GPT disk, then the targets.

use std::path::Path;

use anyhow::Result;

use axoha_disk::esp::Esp;
use axoha_disk::ext4::Ext4;
use axoha_disk::gpt::{Layout, Partition, Placed, ESP_TYPE, ROOT_X86_64_TYPE};
use axoha_disk::uuid;

pub const ESP_SIZE: u64 = 128 << 20;

/// Identifiers derived from the definition's hash: same definition, same disk.
pub struct Ids {
    pub disk: String,
    pub esp_part: String,
    pub root_part: String,
    pub root_fs: String,
    pub root_hash_seed: String,
    pub esp_volume: String,
}

impl Ids {
    pub fn from_seed(seed: &str) -> Ids {
        Ids {
            disk: uuid::derived(seed, "disk"),
            esp_part: uuid::derived(seed, "esp-partition"),
            root_part: uuid::derived(seed, "root-partition"),
            root_fs: uuid::derived(seed, "root-filesystem"),
            root_hash_seed: uuid::derived(seed, "root-hash-seed"),
            esp_volume: uuid::fat_volume_id(seed),
        }
    }
}

/// Builds the raw disk at `raw` from the root tree and the staged ESP tree: the GPT first,
/// then each filesystem made in place at its partition's offset.
pub fn assemble(
    ids: &Ids,
    disk_bytes: u64,
    epoch: i64,
    tree: &Path,
    esp_tree: &Path,
    raw: &Path,
) -> Result<Vec<Placed>> {
    let root_size = disk_bytes - ESP_SIZE - (4 << 20);
    let layout = Layout {
        disk_guid: ids.disk.clone(),
        partitions: vec![
            Partition {
                name: "ESP",
                type_guid: ESP_TYPE,
                uuid: ids.esp_part.clone(),
                size_bytes: ESP_SIZE,
            },
            Partition {
                name: "root",
                type_guid: ROOT_X86_64_TYPE,
                uuid: ids.root_part.clone(),
                size_bytes: root_size,
            },
        ],
    };
    let f = std::fs::File::create(raw)?;
    f.set_len(layout.disk_size())?;
    drop(f);
    let placed = layout.write(raw)?;
    Esp {
        volume_id: ids.esp_volume.clone(),
        size_bytes: ESP_SIZE,
        epoch,
    }
    .build(esp_tree, raw, placed[0].offset)?;
    Ext4 {
        label: "axoha-root".into(),
        uuid: ids.root_fs.clone(),
        hash_seed: ids.root_hash_seed.clone(),
        size_bytes: root_size,
        epoch,
    }
    .build(tree, raw, placed[1].offset)?;
    Ok(placed)
}
