//! Progress output: one line per stage with its time, for terminals and CI logs alike, and
//! on a terminal only, a live line for a long activity inside a stage (a bar when it knows its
//! size, else a spinner with the elapsed time), cleared when it ends so the log keeps plain
//! lines.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

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

    /// Stages that do not run this time (a cached build): the next one keeps its number.
    pub fn skip(&mut self, stages: usize) {
        self.finish();
        self.current += stages;
    }

    /// A long activity inside the stage; `total` in the unit `Activity::set` counts (e.g. percent), if known.
    pub fn activity(&self, what: &str, total: Option<u64>) -> Activity {
        if !std::io::stderr().is_terminal() {
            return Activity(None);
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template("    {msg} [{bar:30}] {percent:>3}% {elapsed}")
                    .expect("valid template")
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("    {spinner} {msg} {elapsed}")
                    .expect("valid template"),
            ),
        };
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Activity(Some(bar))
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

/// A live progress line on a terminal; does nothing in logs.
pub struct Activity(Option<ProgressBar>);

impl Activity {
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}
