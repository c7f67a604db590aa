//! Names of temporary files: a write goes to a random temporary name and is renamed over
//! its target, so a reader never sees half a file.

use std::ffi::OsStr;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::ffi::OsStrExt;

/// Whether `name` is one of [`Dir::write_temp`]'s temporaries (`.NAME.axoha-new-PID-RANDOM`):
/// left behind only by a process killed while writing, removed by the next one that holds
/// the lock of whatever it wrote.
pub fn is_temp_name(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b".") else {
        return false;
    };
    let Some(at) = rest.windows(11).rposition(|w| w == b".axoha-new-") else {
        return false;
    };
    let tail = &rest[at + 11..];
    let Some(dash) = tail.iter().position(|b| *b == b'-') else {
        return false;
    };
    let (pid, random) = (&tail[..dash], &tail[dash + 1..]);
    at > 0
        && !pid.is_empty()
        && pid.iter().all(u8::is_ascii_digit)
        && random.len() == 16
        && random.iter().all(|b| b.is_ascii_hexdigit())
}

/// A random name for a temporary file: two runs at once never share one.
pub(crate) fn temp_name(name: &OsStr, purpose: &str) -> Vec<u8> {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let mut tmp = b".".to_vec();
    tmp.extend_from_slice(name.as_bytes());
    tmp.extend_from_slice(
        format!(".axoha-{purpose}-{}-{random:016x}", std::process::id()).as_bytes(),
    );
    tmp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_recognized() {
        let t = temp_name(OsStr::new("initrd.img"), "new");
        assert!(is_temp_name(&t));
        assert!(!is_temp_name(&temp_name(OsStr::new("x"), "old")));
        for other in [
            &b"initrd.img"[..],
            b".initrd.img",
            b"..axoha-new-1-0123456789abcdef",
            b".x.axoha-new--0123456789abcdef",
            b".x.axoha-new-1-0123456789abcdeg",
        ] {
            assert!(!is_temp_name(other), "{}", String::from_utf8_lossy(other));
        }
    }
}
