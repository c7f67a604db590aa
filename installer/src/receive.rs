//! What a fetch may bring: a size limit set before anything arrives (the target disk and the
//! memory the image is held in), a deadline for the whole transfer, and the announced size
//! (`Content-Length`, TFTP `tsize`) checked before any allocation and again at the end.
//! Values from the server are never trusted to size a buffer.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

use crate::console::say;

/// Limits of one fetch.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_bytes: u64,
    pub deadline: Instant,
}

impl Budget {
    pub fn new(max_bytes: u64, time: Duration) -> Budget {
        Budget {
            max_bytes,
            deadline: Instant::now() + time,
        }
    }

    /// Time left, or an error naming what ran out of it.
    pub fn left(&self, what: &str) -> Result<Duration> {
        match self.deadline.checked_duration_since(Instant::now()) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => bail!("{what}: the transfer's deadline passed"),
        }
    }
}

/// The bytes received so far, hashed as they arrive.
pub struct Receiver {
    label: String,
    budget: Budget,
    announced: Option<u64>,
    data: Vec<u8>,
    hasher: Sha256,
    next_report: u64,
    started: Instant,
}

impl Receiver {
    pub fn new(label: &str, budget: Budget) -> Receiver {
        Receiver {
            label: label.to_owned(),
            budget,
            announced: None,
            data: Vec::new(),
            hasher: Sha256::new(),
            next_report: 0,
            started: Instant::now(),
        }
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The size the server announced: checked against the budget, then reserved.
    pub fn announce(&mut self, total: u64) -> Result<()> {
        if total > self.budget.max_bytes {
            bail!(
                "{}: the server announces {total} bytes, more than the {} this node can take \
                 (target disk and memory)",
                self.label,
                self.budget.max_bytes
            );
        }
        if let Some(before) = self.announced.filter(|b| *b != total) {
            bail!(
                "{}: the server announced {before} bytes, then {total}",
                self.label
            );
        }
        if self.announced.is_none() {
            let wanted = usize::try_from(total)?.saturating_sub(self.data.len());
            self.data
                .try_reserve_exact(wanted)
                .map_err(|e| anyhow::anyhow!("{}: reserving {total} bytes: {e}", self.label))?;
        }
        self.announced = Some(total);
        Ok(())
    }

    pub fn received(&self) -> u64 {
        self.data.len() as u64
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        let after = self.received() + chunk.len() as u64;
        let limit = self.announced.unwrap_or(self.budget.max_bytes);
        if after > limit {
            bail!(
                "{}: more than {limit} bytes arrive ({})",
                self.label,
                if self.announced.is_some() {
                    "the size the server announced"
                } else {
                    "what this node can take"
                }
            );
        }
        self.budget.left(&self.label)?;
        self.data
            .try_reserve(chunk.len())
            .map_err(|e| anyhow::anyhow!("{}: out of memory: {e}", self.label))?;
        self.data.extend_from_slice(chunk);
        self.hasher.update(chunk);
        if after >= self.next_report && self.announced.unwrap_or(after) > 1 << 20 {
            match self.announced {
                Some(t) => say(&format!(
                    "{}: {} of {} MiB",
                    self.label,
                    after >> 20,
                    t >> 20
                )),
                None => say(&format!("{}: {} MiB", self.label, after >> 20)),
            }
            self.next_report = after + (32 << 20);
        }
        Ok(())
    }

    /// The data and its sha256 (hex), when it is exactly what was announced.
    pub fn finish(self) -> Result<(Vec<u8>, String)> {
        if let Some(total) = self.announced {
            if self.received() != total {
                bail!(
                    "{}: received {} bytes, the server announced {total}",
                    self.label,
                    self.received()
                );
            }
        }
        if self.data.len() > 1 << 20 {
            say(&format!(
                "{}: {} MiB in {:.1} s",
                self.label,
                self.data.len() >> 20,
                self.started.elapsed().as_secs_f64()
            ));
        }
        let hex = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((self.data, hex))
    }
}

/// How much of a fetched image this node can hold: no more than the target disk (a
/// compressed image is smaller than the disk it fills), and no more than the memory it is
/// held in, less a reserve for decompressing and writing it.
pub fn image_limit(disk_bytes: u64, meminfo: &str) -> Result<u64> {
    const RESERVE: u64 = 128 << 20;
    let available = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .and_then(|kb| kb.checked_mul(1024));
    let Some(available) = available else {
        bail!("/proc/meminfo has no MemAvailable line");
    };
    Ok(disk_bytes.min(available.saturating_sub(RESERVE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max: u64) -> Budget {
        Budget::new(max, Duration::from_secs(60))
    }

    #[test]
    fn an_announced_size_beyond_the_budget_is_refused_before_any_allocation() {
        let mut r = Receiver::new("disk.raw.zst", budget(1000));
        let err = r.announce(u64::MAX).unwrap_err().to_string();
        assert!(
            err.contains("announces 18446744073709551615 bytes"),
            "{err}"
        );
        assert_eq!(r.data.capacity(), 0);
        r.announce(1000).unwrap();
        assert!(r.announce(999).is_err(), "a second, different size");
    }

    #[test]
    fn more_or_fewer_bytes_than_announced_are_errors() {
        let mut r = Receiver::new("x", budget(100));
        r.announce(4).unwrap();
        r.push(b"abc").unwrap();
        assert!(r.push(b"de").is_err(), "more than announced");
        let err = r.finish().unwrap_err().to_string();
        assert!(
            err.contains("received 3 bytes, the server announced 4"),
            "{err}"
        );
        let mut r = Receiver::new("x", budget(4));
        r.push(b"abcd").unwrap();
        assert!(
            r.push(b"e").is_err(),
            "more than the budget without an announcement"
        );
        let (data, hex) = r.finish().unwrap();
        assert_eq!(data, b"abcd");
        assert_eq!(hex.len(), 64);
    }

    #[test]
    fn a_passed_deadline_ends_the_fetch() {
        let mut r = Receiver::new("x", Budget::new(100, Duration::ZERO));
        let err = r.push(b"a").unwrap_err().to_string();
        assert!(err.contains("deadline"), "{err}");
    }

    #[test]
    fn the_limit_is_the_smaller_of_disk_and_memory() {
        let mem = "MemTotal: 4000000 kB\nMemAvailable:    2097152 kB\n";
        assert_eq!(image_limit(10 << 30, mem).unwrap(), (2 << 30) - (128 << 20));
        assert_eq!(image_limit(1 << 20, mem).unwrap(), 1 << 20);
        assert_eq!(image_limit(1 << 30, "MemAvailable: 1 kB\n").unwrap(), 0);
        assert!(image_limit(1, "garbage").is_err());
        assert!(image_limit(1, "MemAvailable: 99999999999999999999 kB").is_err());
    }
}
