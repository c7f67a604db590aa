//! Progress output: one line per stage with its time, for terminals and CI logs alike.

use std::io::Write;
use std::time::Instant;

pub struct Progress {
    total: usize,
    current: usize,
    stage_started: Option<(String, Instant)>,
    /// Per-stage durations, for bench/build.
    pub timings: Vec<(String, f64)>,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress {
            total,
            current: 0,
            stage_started: None,
            timings: Vec::new(),
        }
    }

    pub fn stage(&mut self, name: &str) {
        self.finish();
        self.current += 1;
        eprintln!("==> [{}/{}] {name}", self.current, self.total);
        self.stage_started = Some((name.to_owned(), Instant::now()));
    }

    pub fn note(&self, msg: &str) {
        eprintln!("    {msg}");
    }

    pub fn finish(&mut self) {
        if let Some((name, started)) = self.stage_started.take() {
            let secs = started.elapsed().as_secs_f64();
            eprintln!("    {name}: {secs:.1} s");
            self.timings.push((name, secs));
        }
        let _ = std::io::stderr().flush();
    }
}
