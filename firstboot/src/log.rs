//! Log lines for journald and the console.
//!
//! The unit sends stdout and stderr to the journal and the console. Under systemd
//! (`JOURNAL_STREAM` set) each line starts with a syslog level prefix such as `<6>`, which
//! journald turns into the line's priority; on a terminal the prefix would only be noise.
//!
//! Metadata reaches these lines (a refused value, an unknown key's name), so every line is
//! made safe here, in one place: control characters (ESC, CR, newline, ...) and the Unicode
//! characters that reorder or break text on a terminal are written as escapes, so no value can
//! move the cursor, recolour the console or forge a second `SUCCESS` line. Values quoted in
//! messages go through [`quote`], which also cuts them to [`QUOTE_MAX`] characters.

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

/// How many characters of a value a message quotes.
pub const QUOTE_MAX: usize = 64;

/// Characters a terminal acts on rather than prints: C0 and C1 controls and DEL, the
/// bidirectional overrides and isolates, and the Unicode line and paragraph separators.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `text` with every unsafe character written as an escape (`\n`, `\r`, `\t`, `\u{1b}`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A metadata value for a message: in double quotes, escaped like Rust's `{:?}` (so a quote
/// or backslash in it cannot end the quoting), cut to [`QUOTE_MAX`] characters with `…`.
pub fn quote(value: &str) -> String {
    let cut: String = value.chars().take(QUOTE_MAX).collect();
    let more = if cut.len() < value.len() { "…" } else { "" };
    format!("{}{more}", escape(&format!("{cut:?}")))
}

pub fn line(level: Level, msg: &str) {
    let mut err = std::io::stderr().lock();
    // One line per message, and nothing the terminal acts on: see the module comment.
    let msg = escape(msg);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_value_can_move_the_cursor_or_forge_a_line() {
        let forged = "x\r\u{1b}[2K\u{1b}[1Gaxoha-firstboot: SUCCESS\u{9b}\u{202e}\u{2028}";
        let line = escape(&format!("FAILED: {}", quote(forged)));
        assert!(!line.chars().any(is_unsafe), "{line}");
        assert!(line.contains("\\r") && line.contains("\\u{1b}"), "{line}");
    }

    #[test]
    fn quoted_values_are_cut() {
        let long = "a".repeat(1000);
        let q = quote(&long);
        assert_eq!(q, format!("\"{}\"…", "a".repeat(QUOTE_MAX)));
        assert_eq!(quote("primary"), "\"primary\"");
        assert_eq!(
            quote("é".repeat(64).as_str()),
            format!("\"{}\"", "é".repeat(64))
        );
    }
}
