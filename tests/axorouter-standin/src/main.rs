//! `axorouter`: a stand-in for AxoRouter, used by axoha's tests and demo image.
//!
//! The real AxoRouter package is not public, so axoha cannot build or test against it. This
//! crate is a real but tiny service with the same name, binary path and systemd unit, so the
//! image's units, drop-ins and health checks have something to start and talk to:
//!
//! ```text
//! axorouter [--listen ADDR:PORT]     (default 0.0.0.0:4317, or $AXOROUTER_LISTEN)
//! ```
//!
//! It binds a TCP listener, logs `axorouter stand-in listening on ADDR` to stderr, answers
//! every connection with the single line `axorouter-standin OK` and closes it. SIGTERM and
//! SIGINT end it with exit status 0, so `systemctl stop` is a clean stop.
//!
//! It is never baked into an image silently: `build-packages` (next to this crate) packages
//! it as `axorouter 0.0.0~demo-1` (.deb and .rpm) whose description says it is a stand-in,
//! and the image builder's manifest names the package it installed.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

const DEFAULT_LISTEN: &str = "0.0.0.0:4317";
const LISTEN_ENV: &str = "AXOROUTER_LISTEN";
const REPLY: &[u8] = b"axorouter-standin OK\n";
const USAGE: &str = "usage: axorouter [--listen ADDR:PORT]\n\
    \n\
    AxoRouter stand-in for axoha tests and demo images (the real package is not public).\n\
    Listens on TCP (default 0.0.0.0:4317, or $AXOROUTER_LISTEN) and answers each\n\
    connection with \"axorouter-standin OK\".";

/// Exit status 0 on SIGTERM/SIGINT, with nothing but std: the C library is linked anyway.
#[cfg(unix)]
mod signals {
    use std::ffi::c_int;

    const SIGINT: c_int = 2;
    const SIGTERM: c_int = 15;

    // SAFETY: the C library's own declarations of signal(2) and _exit(2).
    #[allow(unsafe_code)]
    unsafe extern "C" {
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
        fn _exit(status: c_int) -> !;
    }

    #[allow(unsafe_code)]
    extern "C" fn exit_cleanly(_signum: c_int) {
        // SAFETY: _exit is async-signal-safe; nothing needs flushing or unwinding.
        unsafe { _exit(0) }
    }

    #[allow(unsafe_code)]
    pub fn exit_zero_on_term() {
        for signum in [SIGTERM, SIGINT] {
            // SAFETY: installs a handler that only calls an async-signal-safe function.
            unsafe { signal(signum, exit_cleanly) };
        }
    }
}

/// `--listen ADDR`, `--listen=ADDR`, else `$AXOROUTER_LISTEN`, else the default.
/// `Ok(None)` means `--help`.
fn listen_addr(mut args: impl Iterator<Item = String>) -> Result<Option<String>, String> {
    let mut listen = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => match args.next() {
                Some(addr) => listen = Some(addr),
                None => return Err("--listen needs ADDR:PORT".into()),
            },
            _ => match arg.strip_prefix("--listen=") {
                Some(addr) => listen = Some(addr.to_owned()),
                None => return Err(format!("unexpected argument {arg:?}")),
            },
        }
    }
    Ok(Some(listen.unwrap_or_else(|| {
        std::env::var(LISTEN_ENV)
            .ok()
            .filter(|addr| !addr.is_empty())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned())
    })))
}

/// One line, then the stream is dropped, which closes the connection.
fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    stream.write_all(REPLY)
}

fn main() -> ExitCode {
    let addr = match listen_addr(std::env::args().skip(1)) {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("axorouter: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    #[cfg(unix)]
    signals::exit_zero_on_term();

    let listener = match TcpListener::bind(&addr) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("axorouter: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let bound = listener
        .local_addr()
        .map_or(addr, |local| local.to_string());
    eprintln!("axorouter stand-in listening on {bound}");

    for stream in listener.incoming() {
        // A failed accept or write concerns one client only; keep serving the others.
        if let Err(err) = stream.and_then(answer) {
            eprintln!("axorouter: connection: {err}");
        }
    }
    ExitCode::SUCCESS
}
