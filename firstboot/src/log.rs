//! Log lines for journald and the console.
//!
//! The unit sends stdout and stderr to the journal and the console. Under systemd
//! (`JOURNAL_STREAM` set) each line starts with a syslog level prefix such as `<6>`, which
//! journald turns into the line's priority; on a terminal the prefix would only be noise.

use std::io::Write;
use std::sync::OnceLock;

#[derive(Clone, Copy)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

fn journal() -> bool {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    *JOURNAL.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

pub fn line(level: Level, msg: &str) {
    let mut err = std::io::stderr().lock();
    // One line per message: a value with a newline must not forge a second log line.
    let msg = msg.replace('\n', "\\n");
    let _ = if journal() {
        // journald adds "axoha-firstboot[PID]:" itself.
        writeln!(err, "<{}>{msg}", level as u8)
    } else {
        writeln!(err, "axoha-firstboot: {msg}")
    };
}

pub fn info(msg: &str) {
    line(Level::Info, msg);
}

pub fn warn(msg: &str) {
    line(Level::Warning, msg);
}

pub fn error(msg: &str) {
    line(Level::Error, msg);
}

/// The one line an operator looks for on the serial console.
pub fn outcome(ok: bool, msg: &str) {
    if ok {
        line(Level::Notice, &format!("SUCCESS: {msg}"));
    } else {
        line(Level::Error, &format!("FAILED: {msg}"));
    }
}
