//! Stable identifiers derived from a seed, so rebuilding the same definition gives the same
//! filesystem UUIDs, partition GUIDs and ext4 hash seed.

use sha2::{Digest, Sha256};

/// A version-4-shaped UUID from `sha256(seed || "/" || purpose)`.
pub fn derived(seed: &str, purpose: &str) -> String {
    let digest = Sha256::digest(format!("{seed}/{purpose}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

/// A FAT volume id (8 hex digits) from the same scheme.
pub fn fat_volume_id(seed: &str) -> String {
    derived(seed, "esp-volume-id")[..8].to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn stable_and_distinct() {
        assert_eq!(super::derived("a", "root"), super::derived("a", "root"));
        assert_ne!(super::derived("a", "root"), super::derived("a", "esp"));
        assert_eq!(super::derived("a", "root").len(), 36);
    }
}
