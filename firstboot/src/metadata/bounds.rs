//! What every metadata file must satisfy before a parser sees it: UTF-8 text (its size is
//! capped where it is read, `root.rs`) nested at most [`MAX_NESTING`] deep.
//!
//! The nesting cap bounds parse time. serde_json stops at a recursion depth of 128 and
//! serde_yaml_ng at 128 as well, but only for values it deserializes: a deeply nested value
//! under a key we ignore (cloud-init keeps many) is skipped without that check, and libyaml
//! takes seconds to tokenise tens of thousands of nested `[`. Our own mapping is 3 deep and
//! cloud-init's meta-data and instance data stay well under 16, so 32 refuses nothing real.
//!
//! The scan is deliberately conservative and format-agnostic (YAML, JSON and TOML alike):
//! it counts `[` and `{` outside quoted strings and comments, plus, for YAML's block style,
//! the indentation levels and `- ` markers of each line. It can over-count (then a file is
//! refused that a parser would take), never under-count a flow collection.

use anyhow::{bail, Context, Result};

/// The deepest nesting of collections a metadata file may have.
pub const MAX_NESTING: usize = 32;

/// A UTF-8 byte order mark, as editors on Windows start a file with.
const BOM: &str = "\u{feff}";

/// The file's text, if it is UTF-8 and nested at most [`MAX_NESTING`] deep. One byte order
/// mark at the start is dropped: cloud-init's YAML loader (PyYAML) skips it, and RFC 8259
/// lets JSON parsers ignore it, so a seed saved by a Windows editor means what it says
/// (docs/decisions.md). Anywhere else it is a character like any other (and no key or value
/// may hold it).
pub fn text(bytes: Vec<u8>) -> Result<String> {
    let text = without_bom(String::from_utf8(bytes).context("not UTF-8 text")?);
    let depth = nesting(&text);
    if depth > MAX_NESTING {
        bail!("nested {depth} levels deep; at most {MAX_NESTING} are allowed");
    }
    Ok(text)
}

/// `text` without one byte order mark at its start: the one rule for every text file axoha
/// reads (metadata here, the builder's definition and cluster description).
pub fn without_bom(mut text: String) -> String {
    if text.starts_with(BOM) {
        text.drain(..BOM.len());
    }
    text
}

/// The deepest nesting in `text` (see the module comment).
pub fn nesting(text: &str) -> usize {
    let mut deepest = 0;
    let mut flow = 0usize;
    // Indentation of the enclosing block lines, innermost last.
    let mut indents: Vec<usize> = Vec::new();
    let mut quote: Option<char> = None;
    for line in text.lines() {
        if quote.is_none() && flow == 0 {
            let body = line.trim_start_matches(' ');
            if !body.is_empty() && !body.starts_with('#') {
                let indent = line.len() - body.len();
                while indents.last().is_some_and(|i| *i >= indent) {
                    indents.pop();
                }
                indents.push(indent);
                // `- - - x`: each marker opens a sequence inside the previous one.
                let markers = body
                    .split_inclusive(' ')
                    .take_while(|w| w.trim_end() == "-")
                    .count();
                deepest = deepest.max(indents.len() + markers);
            }
        }
        let mut prev = ' ';
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match quote {
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    // A quote opens a string only where a scalar can start (YAML's `it's`
                    // is plain text).
                    '"' | '\'' if matches!(prev, ' ' | '\t' | '[' | '{' | ',' | ':' | '=') => {
                        quote = Some(c)
                    }
                    '#' if matches!(prev, ' ' | '\t') => break,
                    '[' | '{' => {
                        flow += 1;
                        deepest = deepest.max(flow + indents.len());
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_flow_and_block_nesting() {
        assert_eq!(nesting("a: 1\n"), 1);
        assert_eq!(nesting("axoha:\n  health:\n    fall: 3\n"), 3);
        assert_eq!(nesting("a: [[1], {b: [2]}]\n"), 4);
        assert_eq!(nesting("- - - x\n"), 4);
        assert_eq!(nesting(r#"{"a": "[[[[", "b": ['x']}"#), 3);
        assert_eq!(nesting("a: it's [1]\n# [[[[[\n"), 2);
        let deep = format!("x: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(nesting(&deep) > MAX_NESTING);
        assert!(text(deep.into_bytes()).is_err());
        assert!(text(vec![0xff, b'a']).is_err());
    }
}
