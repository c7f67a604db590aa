//! qcow2 from the raw disk: `qemu-img convert` with zstd compression (measured: 3.7 s and
//! 249 MiB where zlib takes 20 s for 256 MiB).

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::tool::{command, run};

/// Converts, calling `on_percent` with qemu-img's own progress (0-100) as it goes.
pub fn convert(raw: &Path, qcow2: &Path, mut on_percent: impl FnMut(f64)) -> Result<()> {
    let mut cmd = command("qemu-img");
    cmd.args([
        "convert",
        "-p",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "-c",
        "-o",
        "compression_type=zstd",
    ])
    .arg(raw)
    .arg(qcow2)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("starting qemu-img convert")?;
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    // stderr is drained on its own thread so a chatty qemu-img cannot block on a full pipe.
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let mut pending = String::new();
    let mut buf = [0u8; 256];
    loop {
        let n = stdout
            .read(&mut buf)
            .context("reading qemu-img's progress")?;
        if n == 0 {
            break;
        }
        pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        while let Some(end) = pending.find(['\r', '\n']) {
            if let Some(p) = parse_percent(&pending[..end]) {
                on_percent(p);
            }
            pending.drain(..=end);
        }
    }
    let status = child.wait().context("waiting for qemu-img")?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "qemu-img convert to qcow2 failed ({status}): {}",
            errors.trim()
        );
    }
    Ok(())
}

/// qemu-img -p prints `    (12.34/100%)` and rewrites it with a carriage return.
fn parse_percent(line: &str) -> Option<f64> {
    let inner = line.trim().strip_prefix('(')?.strip_suffix("/100%)")?;
    inner
        .parse()
        .ok()
        .filter(|p: &f64| (0.0..=100.0).contains(p))
}

pub fn check(qcow2: &Path) -> Result<String> {
    let out = run(command("qemu-img").arg("check").arg(qcow2))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn to_raw(qcow2: &Path, raw: &Path) -> Result<()> {
    run(command("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(qcow2)
        .arg(raw))
    .context("qemu-img convert to raw")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_percent;

    #[test]
    fn qemu_img_progress_lines() {
        assert_eq!(parse_percent("    (12.34/100%)"), Some(12.34));
        assert_eq!(parse_percent("(100.00/100%)"), Some(100.0));
        assert_eq!(parse_percent("(0.00/100%)"), Some(0.0));
        assert_eq!(parse_percent("qemu-img: warning"), None);
        assert_eq!(parse_percent("(250/100%)"), None);
    }
}
