use std::process::ExitCode;

use clap::Parser;

use axoha_firstboot::cli::{ApplyArgs, Cli, Command, SourceArgs};
use axoha_firstboot::commands::{self, ApplyOptions, Failure};
use axoha_firstboot::log;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Apply(ApplyArgs {
        sources: SourceArgs {
            root: "/".into(),
            cmdline: None,
            seed: None,
            instance_data: None,
            config_drive: None,
            metadata_url: None,
            metadata_wait: None,
            metadata_links: false,
        },
        no_start: false,
        force: false,
    }));
    let result = match &command {
        Command::Apply(a) => commands::apply(&ApplyOptions {
            sources: (&a.sources).into(),
            no_start: a.no_start,
            force: a.force,
            at_boot: std::env::var_os("AXOHA_BOOT").is_some_and(|v| v == "1"),
        }),
        Command::Render(r) => {
            commands::render(&(&r.sources).into(), r.explain).map(|text| print!("{text}"))
        }
        Command::Check(s) => commands::check(&s.into()).map(|summary| println!("ok: {summary}")),
        Command::Status(s) => commands::status(s).map(|text| print!("{text}")),
        Command::Watch(s) => commands::watch(&s.into()),
        Command::Health(h) => commands::health(h)
            .map(|summary| log::line(log::Level::Notice, &format!("healthy: {summary}"))),
        Command::Drain(d) => commands::drain(d).map(|text| println!("{text}")),
        Command::Undrain(s) => commands::undrain(s).map(|text| println!("{text}")),
        Command::Reboot(r) => commands::reboot(r),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            report(&failure);
            ExitCode::from(failure.exit_code())
        }
    }
}

fn report(failure: &Failure) {
    match failure {
        Failure::Metadata(_) => log::outcome(
            false,
            &format!("{failure}; nothing was written and keepalived stays stopped"),
        ),
        // The write error says what is on disk (nothing changed, put back, or mixed).
        Failure::Write(_) => log::outcome(false, &format!("{failure}")),
        Failure::Start(_) => log::outcome(false, &format!("{failure}")),
        Failure::Status(_) => log::error(&format!("{failure}")),
        // One line saying what is unhealthy; the unit decides what follows.
        Failure::Unhealthy(_) => log::error(&format!("{failure}")),
        Failure::Refused(_) => log::error(&format!("{failure}")),
    }
}
