//! A VM's serial console, written by QEMU to a log file and read while the VM runs: the image
//! and PXE tests wait on it for the lines a node prints.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

pub struct Console {
    log: PathBuf,
}

impl Console {
    /// The console logged to `log`; a log left by an earlier run is removed first.
    pub fn new(log: &Path) -> Console {
        let _ = std::fs::remove_file(log);
        Console {
            log: log.to_owned(),
        }
    }

    /// Everything the VM printed so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Polls until `ready` holds for the text; returns it with the time waited. `None` on
    /// timeout, or as soon as `vm` (the process that writes the log) has exited.
    pub fn wait(
        &self,
        vm: &mut Child,
        timeout: Duration,
        ready: impl Fn(&str) -> bool,
    ) -> Option<(String, Duration)> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            let text = self.text();
            if ready(&text) {
                return Some((text, started.elapsed()));
            }
            if vm.try_wait().unwrap().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        None
    }
}
