//! Splitting a kernel command line the way the kernel does (`lib/cmdline.c`, `next_arg()`):
//! arguments are separated by the kernel's `isspace()` bytes, and double quotes group bytes
//! that contain spaces. Bytes, not text: the kernel passes any byte through, and an argument
//! that is not ours may hold bytes that are not UTF-8.
//!
//! `split` keeps each argument verbatim (quotes included), so an argument can be written
//! back where it came from; `param` gives its name and value as the kernel sees them.

/// The kernel's `isspace()`: space, \t, \n, \v, \f, \r.
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The arguments of a command line, verbatim (quotes kept).
pub fn split(line: &[u8]) -> Vec<&[u8]> {
    let mut args = Vec::new();
    let mut start = None;
    let mut in_quotes = false;
    for (i, &b) in line.iter().enumerate() {
        if is_space(b) && !in_quotes {
            if let Some(s) = start.take() {
                args.push(&line[s..i]);
            }
            continue;
        }
        if b == b'"' {
            in_quotes = !in_quotes;
        }
        start.get_or_insert(i);
    }
    if let Some(s) = start {
        args.push(&line[s..]);
    }
    args
}

/// `split` for text (a loader entry's `options`, always UTF-8 where we write it).
pub fn split_str(line: &str) -> Vec<&str> {
    split(line.as_bytes())
        .into_iter()
        // Splitting happens at ASCII bytes only, so every piece of a str is a str.
        .map(|a| std::str::from_utf8(a).expect("split at ASCII boundaries"))
        .collect()
}

/// The name of an argument: what comes before the first `=`, without an opening quote.
pub fn key(arg: &[u8]) -> &[u8] {
    let arg = arg.strip_prefix(b"\"").unwrap_or(arg);
    match arg.iter().position(|&b| b == b'=') {
        Some(i) => &arg[..i],
        None => arg.strip_suffix(b"\"").unwrap_or(arg),
    }
}

/// `key` for text.
pub fn key_str(arg: &str) -> &str {
    std::str::from_utf8(key(arg.as_bytes())).expect("key ends at an ASCII byte")
}

/// Name and value of one argument as the kernel hands them on (`next_arg()`): an argument
/// that starts with a quote loses it and its closing quote; a value that starts with a quote
/// loses it and a quote at its end. `None` for a bare flag.
pub fn param(arg: &[u8]) -> (&[u8], Option<&[u8]>) {
    let (arg, quoted) = match arg.strip_prefix(b"\"") {
        Some(rest) => (rest, true),
        None => (arg, false),
    };
    let mut arg = arg;
    if quoted {
        arg = arg.strip_suffix(b"\"").unwrap_or(arg);
    }
    match arg.iter().position(|&b| b == b'=') {
        None => (arg, None),
        Some(i) => {
            let mut value = &arg[i + 1..];
            if let Some(v) = value.strip_prefix(b"\"") {
                value = v.strip_suffix(b"\"").unwrap_or(v);
            }
            (&arg[..i], Some(value))
        }
    }
}

/// The value of the last argument named `name` (the kernel and systemd take the last one).
pub fn last_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    split(line)
        .into_iter()
        .rev()
        .map(param)
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_kernel() {
        assert_eq!(
            split(b"  a=1\tb=\"x y\" \"c=d e\" flag\n"),
            [&b"a=1"[..], b"b=\"x y\"", b"\"c=d e\"", b"flag"]
        );
        assert!(split(b" \n\t").is_empty());
        // An unclosed quote runs to the end, as in the kernel.
        assert_eq!(split(b"a=\"x y"), [&b"a=\"x y"[..]]);
        // A lone quote is an argument (an empty one, to the kernel).
        assert_eq!(split(b"a \"\" b"), [&b"a"[..], b"\"\"", b"b"]);
        assert_eq!(split(b"x=\xff y"), [&b"x=\xff"[..], b"y"]);
    }

    #[test]
    fn names_and_values() {
        assert_eq!(param(b"a=1"), (&b"a"[..], Some(&b"1"[..])));
        assert_eq!(param(b"b=\"x y\""), (&b"b"[..], Some(&b"x y"[..])));
        assert_eq!(param(b"\"c=d e\""), (&b"c"[..], Some(&b"d e"[..])));
        assert_eq!(param(b"rw"), (&b"rw"[..], None));
        assert_eq!(param(b"a=b=c"), (&b"a"[..], Some(&b"b=c"[..])));
        assert_eq!(key(b"\"root=x y\""), b"root");
        assert_eq!(key(b"\"rw\""), b"rw");
        assert_eq!(key_str("usrhash=ab"), "usrhash");
        assert_eq!(last_value(b"root=a x root=\"b\"", b"root"), Some(&b"b"[..]));
        assert_eq!(last_value(b"root", b"root"), None);
    }
}
