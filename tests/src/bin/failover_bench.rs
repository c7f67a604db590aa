//! Failover bench: for each kind of fault, how fast the VIP moves and how long it was on no
//! node or on two nodes, with axoha's defaults (two heartbeat paths, and the HA link alone as
//! before issue 10) and with the keepalived guide's settings, on a real 2-node cluster (the same
//! harness as the tests: namespaces, `axoha-firstboot apply`, real keepalived). Plus a soak: a
//! healthy cluster with both cores busy must not move the VIP at all.
//!
//! Times are measured from the fault injection to the first 20 ms sample that sees the VIP on
//! the new holder; a sample costs one `ip` run per node, so the figures are upper bounds within
//! about 30 ms. Run it through `bench/failover`.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axoha_tests::cluster::{self, Bridge, Cluster, HaWiring, Layout, Settings, Trace};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const USAGE: &str = "usage: failover-bench [--runs N] [--soak SECONDS] [--no-guide] [--reference]
  --runs N        measurements per fault, the median is reported (default 3)
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
        runs: 3,
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

/// The faults, in table order. Each is injected on a settled 2-node cluster (VIP on the
/// primary), watched for the profile's window, repaired, and watched until the VIP is back on
/// the primary alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Crash,
    VipLinkDown,
    HealthFails,
    HaCablePulled,
    HaSwitchDropsVrrp,
    PublicSwitchDropsVrrp,
    BothPaths,
}

const FAULTS: [Fault; 7] = [
    Fault::Crash,
    Fault::VipLinkDown,
    Fault::HealthFails,
    Fault::HaCablePulled,
    Fault::HaSwitchDropsVrrp,
    Fault::PublicSwitchDropsVrrp,
    Fault::BothPaths,
];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Crash => "primary's keepalived crashes (SIGKILL), restarted",
            Fault::VipLinkDown => "primary's VIP link down, up",
            Fault::HealthFails => "primary's health check fails, passes",
            Fault::HaCablePulled => "direct HA cable pulled, replugged",
            Fault::HaSwitchDropsVrrp => "HA switch drops VRRP, stops",
            Fault::PublicSwitchDropsVrrp => "public switch drops VRRP, stops",
            Fault::BothPaths => "double fault: HA cable pulled + public switch drops VRRP",
        }
    }

    /// Every fault but the HA switch's runs on the direct-cable pair.
    fn wiring(self) -> HaWiring {
        match self {
            Fault::HaSwitchDropsVrrp => HaWiring::Switch,
            _ => HaWiring::Cable,
        }
    }

    /// Whether the VIP should move to the secondary (a failover whose time is reported).
    fn fails_over(self) -> bool {
        matches!(self, Fault::Crash | Fault::VipLinkDown | Fault::HealthFails)
    }

    fn set(self, c: &mut Cluster, faulty: bool) -> Result<()> {
        match self {
            Fault::Crash if faulty => c.crash(PRIMARY),
            Fault::Crash => c.start(PRIMARY),
            Fault::VipLinkDown => c.set_vip_link(PRIMARY, !faulty),
            Fault::HealthFails => c.set_healthy(PRIMARY, !faulty),
            Fault::HaCablePulled => c.set_ha_link(PRIMARY, !faulty),
            Fault::HaSwitchDropsVrrp => c.drop_vrrp(Bridge::Ha, faulty),
            Fault::PublicSwitchDropsVrrp => c.drop_vrrp(Bridge::Public, faulty),
            Fault::BothPaths => {
                c.set_ha_link(PRIMARY, !faulty)?;
                c.drop_vrrp(Bridge::Public, faulty)
            }
        }
    }
}

/// One measurement of one fault.
#[derive(Clone, Copy, Debug)]
struct Episode {
    /// From the fault to the VIP on the secondary (failovers only).
    failover: Option<Duration>,
    /// Over the whole episode (fault, window, repair, back to the primary alone).
    none: Duration,
    two: Duration,
}

const PRIMARY: usize = 0;
const SECONDARY: usize = 1;
const POLL: Duration = Duration::from_millis(20);
/// Generous: the guide's health recovery alone is rise 5 x interval 5 s.
const TIMEOUT: Duration = Duration::from_secs(90);
/// The cluster must be back to "VIP on the primary only" for this long before the next run.
const SETTLE: Duration = Duration::from_secs(1);

fn only(node: usize) -> impl Fn(&[usize]) -> bool {
    move |h| h == [node]
}

/// Waits for the steady state: VIP on the primary only, stable for [`SETTLE`].
fn settle(c: &Cluster, since: Instant) -> Result<Trace> {
    c.watch(
        "steady state: VIP on the primary only",
        since,
        only(PRIMARY),
        TIMEOUT,
        SETTLE,
    )
}

/// How long a fault is watched before it is repaired: past the slowest takeover of the
/// profile (the health check's `fall` intervals, or three adverts plus skew) and then some.
fn window(conf: &str) -> Duration {
    let num = |key: &str| -> f64 {
        conf.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(key)).then(|| w.next()?.parse().ok())?
            })
            .unwrap_or(1.0)
    };
    let health = num("interval") * (num("fall") + 1.0);
    let adverts = 4.0 * num("advert_int");
    Duration::from_secs_f64(health.max(adverts) + 2.0)
}

fn episode(c: &mut Cluster, fault: Fault, window: Duration) -> Result<Episode> {
    let t0 = Instant::now();
    fault.set(c, true)?;
    let mut trace = c.observe(t0, window)?;
    fault.set(c, false)?;
    trace.extend(settle(c, t0)?);
    let stale = (fault == Fault::Crash).then_some(PRIMARY);
    let failover = fault
        .fails_over()
        .then(|| {
            trace
                .samples
                .iter()
                .find(|s| s.holders.contains(&SECONDARY))
                .map(|s| s.at)
        })
        .flatten();
    Ok(Episode {
        failover,
        none: trace.time_with(stale, |n| n == 0),
        two: trace.time_with(stale, |n| n >= 2),
    })
}

/// A 2-node cluster, applied and started, in the steady state.
fn cluster(tag: &str, profile: &Profile, ha: HaWiring, reference: bool) -> Result<Cluster> {
    let layout = Layout {
        nodes: 2,
        ha,
        public_path: profile.public_path,
    };
    let mut c = Cluster::with_layout(
        tag,
        layout,
        profile.settings.clone(),
        &cluster::default_base_dir()?,
    )?;
    c.set_poll(POLL);
    if reference {
        c.apply_reference()?;
    } else {
        c.apply()?;
    }
    c.start_all()?;
    settle(&c, Instant::now())?;
    Ok(c)
}

struct Profile {
    name: &'static str,
    tag: &'static str,
    settings: Settings,
    public_path: bool,
}

/// Measures every fault `runs` times with `profile`; returns the episodes per fault and the
/// timing summary of its config.
fn measure(profile: &Profile, runs: usize, reference: bool) -> Result<(Vec<Vec<Episode>>, String)> {
    let mut rows = vec![Vec::new(); FAULTS.len()];
    let mut timings = String::new();
    for wiring in [HaWiring::Cable, HaWiring::Switch] {
        let tag = format!(
            "{}{}",
            profile.tag,
            if wiring == HaWiring::Cable { "c" } else { "s" }
        );
        let mut c = cluster(&tag, profile, wiring, reference)?;
        let conf = std::fs::read_to_string(c.conf_path(PRIMARY))?;
        timings = cluster::timing_summary(&conf);
        let window = window(&conf);
        for run in 1..=runs {
            for (row, fault) in FAULTS.iter().enumerate() {
                if fault.wiring() != wiring {
                    continue;
                }
                let e = episode(&mut c, *fault, window)?;
                eprintln!(
                    "  [{} run {run}] {:<58} failover {:>8} none {:>6} ms two {:>6} ms",
                    profile.name,
                    fault.name(),
                    e.failover
                        .map_or("-".into(), |d| format!("{:.3} s", d.as_secs_f64())),
                    e.none.as_millis(),
                    e.two.as_millis()
                );
                rows[row].push(e);
            }
        }
    }
    Ok((rows, timings))
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// `failover | ms none | ms two` cells of one profile for one fault (medians).
fn cells(episodes: &[Episode]) -> String {
    let failovers: Vec<Duration> = episodes.iter().filter_map(|e| e.failover).collect();
    let failover = if failovers.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.2} s", median(failovers).as_secs_f64())
    };
    let none = median(episodes.iter().map(|e| e.none).collect());
    let two = median(episodes.iter().map(|e| e.two).collect());
    format!("{failover} | {} | {}", none.as_millis(), two.as_millis())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    axoha_tests::require_root()?;
    let mut profiles = vec![
        Profile {
            name: "axoha defaults, two paths",
            tag: "bdp",
            settings: Settings::axoha_defaults(),
            public_path: true,
        },
        Profile {
            name: "axoha defaults, HA link only",
            tag: "bdh",
            settings: Settings::axoha_defaults(),
            public_path: false,
        },
    ];
    if args.guide {
        profiles.push(Profile {
            name: "guide settings, two paths",
            tag: "bgp",
            settings: Settings::keepalived_guide(),
            public_path: true,
        });
    }

    let mut columns: Vec<(String, Vec<Vec<Episode>>)> = Vec::new();
    for profile in &profiles {
        eprintln!("== {} ==", profile.name);
        let (rows, timings) = measure(profile, args.runs, args.reference)?;
        columns.push((format!("{} ({timings})", profile.name), rows));
    }
    let soak_result = if args.soak.is_zero() {
        None
    } else {
        eprintln!("== soak: {:?} healthy with all cores busy ==", args.soak);
        let c = cluster("bsoak", &profiles[0], HaWiring::Cable, args.reference)?;
        Some(soak(&c, args.soak)?)
    };

    println!(
        "Faults on a 2-node cluster, median of {} run(s), 20 ms sampling. Per profile: the time \
         from the fault to the VIP on the secondary (failovers), and the ms the VIP was on no \
         node / on two nodes from the fault until it was back on the primary alone after the \
         repair (a crashed node's leftover VIP does not count: it serves nothing).\n",
        args.runs
    );
    for (name, _) in &columns {
        println!("- {name}");
    }
    println!();
    let mut header = String::from("| fault |");
    let mut rule = String::from("|---|");
    for (i, _) in columns.iter().enumerate() {
        header.push_str(&format!(
            " {} failover | {0} ms none | {0} ms two |",
            (b'A' + i as u8) as char
        ));
        rule.push_str("---|---|---|");
    }
    println!("{header}\n{rule}");
    for (i, fault) in FAULTS.iter().enumerate() {
        let row: Vec<String> = columns.iter().map(|(_, r)| cells(&r[i])).collect();
        println!("| {} | {} |", fault.name(), row.join(" | "));
    }
    let mut failed = false;
    if let Some((moves, log)) = soak_result {
        println!(
            "\nSoak (axoha defaults, two paths, healthy, all cores busy with stress-ng, {} s): \
             {moves} VIP moves{}",
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
