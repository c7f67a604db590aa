//! Failover bench: how long the VIP is gone for each kind of fault, with axoha's defaults and
//! with the keepalived guide's settings, on a real 2-node cluster (the same harness as the
//! tests: namespaces, `axoha-firstboot apply`, real keepalived). Plus a soak: a healthy cluster
//! with both cores busy must not move the VIP at all (fast adverts must not cost stability).
//!
//! Every time is measured from the fault injection (or the repair, for the primary's return) to
//! the first 10 ms sample that sees the VIP on the new holder; a sample costs one `ip` run, so
//! the figures are upper bounds within about 15 ms. Run it through `bench/failover`.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axoha_tests::cluster::{self, Cluster, Settings};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const USAGE: &str = "usage: failover-bench [--runs N] [--soak SECONDS] [--no-guide] [--reference]
  --runs N        measurements per scenario, the median is reported (default 5)
  --soak SECONDS  length of the busy-CPU stability check, 0 to skip (default 120)
  --no-guide      skip the keepalived-guide settings (their health timings make it slow)
  --reference     use the hand-written keepalived.conf of the design instead of axoha-firstboot";

struct Args {
    runs: usize,
    soak: Duration,
    guide: bool,
    reference: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        runs: 5,
        soak: Duration::from_secs(120),
        guide: true,
        reference: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => args.runs = it.next().context(USAGE)?.parse().context(USAGE)?,
            "--soak" => args.soak = Duration::from_secs(it.next().context(USAGE)?.parse()?),
            "--no-guide" => args.guide = false,
            "--reference" => args.reference = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => bail!("unknown argument {a:?}\n{USAGE}"),
        }
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(args)
}

/// The scenarios, in table order: failovers first, then the primary's return (preemption).
const ROWS: [&str; 7] = [
    "failover: keepalived crash (SIGKILL parent + VRRP child)",
    "failover: graceful stop (SIGTERM)",
    "failover: health check starts failing",
    "failover: HA link down (carrier lost)",
    "return (preemption): keepalived restarted after crash",
    "return (preemption): health check passes again",
    "return (preemption): HA link up",
];

const PRIMARY: usize = 0;
const SECONDARY: usize = 1;
const POLL: Duration = Duration::from_millis(10);
/// Generous: the guide's health recovery alone is rise 5 x interval 5 s.
const TIMEOUT: Duration = Duration::from_secs(90);
/// The cluster must be back to "VIP on the primary only" for this long before the next run.
const SETTLE: Duration = Duration::from_secs(1);

fn holds(node: usize) -> impl Fn(&[usize]) -> bool {
    move |h| h.contains(&node)
}

fn only(node: usize) -> impl Fn(&[usize]) -> bool {
    move |h| h == [node]
}

/// Times from `since` until `node` holds the VIP (no settle: this is the moment it appears).
fn time_until_held(c: &Cluster, what: &str, since: Instant, node: usize) -> Result<Duration> {
    let trace = c.watch(what, since, holds(node), TIMEOUT, Duration::ZERO)?;
    Ok(trace.reached.expect("watch returns only once reached"))
}

/// Waits for the steady state: VIP on the primary only, stable for [`SETTLE`].
fn settle(c: &Cluster) -> Result<()> {
    c.watch(
        "steady state: VIP on the primary only",
        Instant::now(),
        only(PRIMARY),
        TIMEOUT,
        SETTLE,
    )?;
    Ok(())
}

/// Measures every row `runs` times on `c`; returns the samples per row.
fn measure(c: &mut Cluster, runs: usize) -> Result<Vec<Vec<Duration>>> {
    let mut rows = vec![Vec::new(); ROWS.len()];
    let mut record = |row: usize, d: Duration| {
        eprintln!("  {:<58} {:>7.3} s", ROWS[row], d.as_secs_f64());
        rows[row].push(d);
    };
    for run in 1..=runs {
        eprintln!("run {run}/{runs}");
        // Crash, then restart (what Restart=always does).
        let t = Instant::now();
        c.crash(PRIMARY)?;
        record(0, time_until_held(c, "crash failover", t, SECONDARY)?);
        settle_secondary(c)?;
        let t = Instant::now();
        c.start(PRIMARY)?;
        record(4, time_until_held(c, "return after restart", t, PRIMARY)?);
        settle(c)?;

        // Graceful stop, then start again (not timed: same as the restart above).
        let t = Instant::now();
        c.terminate(PRIMARY)?;
        record(
            1,
            time_until_held(c, "graceful-stop failover", t, SECONDARY)?,
        );
        c.stop(PRIMARY)?;
        c.start(PRIMARY)?;
        settle(c)?;

        // Health check.
        let t = Instant::now();
        c.set_healthy(PRIMARY, false)?;
        record(2, time_until_held(c, "health failover", t, SECONDARY)?);
        settle_secondary(c)?;
        let t = Instant::now();
        c.set_healthy(PRIMARY, true)?;
        record(5, time_until_held(c, "return after health", t, PRIMARY)?);
        settle(c)?;

        // HA link.
        let t = Instant::now();
        c.set_ha_link(PRIMARY, false)?;
        record(3, time_until_held(c, "link-down failover", t, SECONDARY)?);
        settle_secondary(c)?;
        let t = Instant::now();
        c.set_ha_link(PRIMARY, true)?;
        record(6, time_until_held(c, "return after link up", t, PRIMARY)?);
        settle(c)?;
    }
    Ok(rows)
}

/// After a failover: the secondary holds the VIP (plus the crashed primary's stale copy, which
/// no one can remove until keepalived restarts) for [`SETTLE`], so the repair starts from a
/// settled cluster.
fn settle_secondary(c: &Cluster) -> Result<()> {
    c.watch(
        "the secondary holds the VIP",
        Instant::now(),
        holds(SECONDARY),
        TIMEOUT,
        SETTLE,
    )?;
    Ok(())
}

/// A 2-node cluster for `settings`, applied and started, in the steady state.
fn cluster(tag: &str, settings: Settings, reference: bool) -> Result<Cluster> {
    let mut c = Cluster::new(tag, 2, settings, &cluster::default_base_dir()?)?;
    c.set_poll(POLL);
    if reference {
        c.apply_reference()?;
    } else {
        c.apply()?;
    }
    c.start_all()?;
    settle(&c)?;
    Ok(c)
}

/// `stress-ng --cpu N`, killed by its PID when dropped (and by the kernel if we die first).
struct Stress(Child);

impl Stress {
    fn start(cpus: usize, limit: Duration) -> Result<Stress> {
        let mut cmd = Command::new("stress-ng");
        cmd.arg("--cpu")
            .arg(cpus.to_string())
            .arg("--timeout")
            .arg(format!("{}s", limit.as_secs() + 30))
            .arg("--quiet")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        Ok(Stress(cmd.spawn().context("starting stress-ng")?))
    }
}

impl Drop for Stress {
    fn drop(&mut self) {
        // SIGTERM to the parent: stress-ng stops its workers and reaps them before exiting.
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// Counts changes of the VIP holder set over `duration` with every core busy.
fn soak(c: &Cluster, duration: Duration) -> Result<(usize, String)> {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _stress = Stress::start(cpus, duration)?;
    // Sampled directly: `watch` waits for a change, here any change is the failure.
    let start = Instant::now();
    let mut last = c.vip_holders()?;
    let mut moves = 0;
    let mut log = String::new();
    while start.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(20));
        let now = c.vip_holders()?;
        if now != last {
            moves += 1;
            log.push_str(&format!(
                "  {:>8.3}s  {last:?} -> {now:?}\n",
                start.elapsed().as_secs_f64()
            ));
            last = now;
        }
    }
    Ok((moves, log))
}

fn summary(samples: &[Duration]) -> String {
    if samples.is_empty() {
        return "-".into();
    }
    let mut s = samples.to_vec();
    s.sort();
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2
    };
    format!(
        "{:.2} s ({:.2}-{:.2})",
        median.as_secs_f64(),
        s[0].as_secs_f64(),
        s[s.len() - 1].as_secs_f64()
    )
}

fn main() -> Result<()> {
    let args = parse_args()?;
    axoha_tests::require_root()?;
    let mut profiles = vec![("axoha defaults", "bdef", Settings::axoha_defaults())];
    if args.guide {
        profiles.push(("keepalived guide", "bgd", Settings::keepalived_guide()));
    }

    let mut columns: Vec<(String, Vec<Vec<Duration>>)> = Vec::new();
    let mut soak_result = None;
    for (name, tag, settings) in profiles {
        eprintln!("== {name} ==");
        let mut c = cluster(tag, settings, args.reference)?;
        let conf = std::fs::read_to_string(c.conf_path(PRIMARY))?;
        let timings = cluster::timing_summary(&conf);
        eprintln!("{timings}");
        let rows = measure(&mut c, args.runs)?;
        if tag == "bdef" && !args.soak.is_zero() {
            eprintln!("== soak: {:?} healthy with all cores busy ==", args.soak);
            soak_result = Some(soak(&c, args.soak)?);
        }
        columns.push((format!("{name}: {timings}"), rows));
        drop(c);
    }

    println!(
        "Failover times, 2 nodes, median of {} (min-max); from fault/repair to the VIP on the \
         new holder, 10 ms sampling\n",
        args.runs
    );
    let header: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    println!("| scenario | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(columns.len()));
    for (i, row) in ROWS.iter().enumerate() {
        let cells: Vec<String> = columns.iter().map(|(_, r)| summary(&r[i])).collect();
        println!("| {row} | {} |", cells.join(" | "));
    }
    let mut failed = false;
    if let Some((moves, log)) = soak_result {
        println!(
            "\nSoak (axoha defaults, healthy, all cores busy with stress-ng, {} s): {moves} VIP \
             moves{}",
            args.soak.as_secs(),
            if moves == 0 {
                " (OK)"
            } else {
                " (FAIL: must be 0)"
            }
        );
        if moves > 0 {
            print!("{log}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
