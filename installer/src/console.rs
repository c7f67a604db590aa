//! Console messages. As PID 1 our stderr is /dev/console (the initramfs ships the node), the
//! last `console=` on the command line: the serial port on servers and in the tests.

pub fn say(msg: &str) {
    eprintln!("axoha-install: {msg}");
}
