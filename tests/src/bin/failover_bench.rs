//! Failover bench: for each kind of fault, how fast the VIP moves and how long it was on no
//! node or on two nodes, with axoha's defaults (two heartbeat paths, and the HA link alone as
//! before issue 10) and with the keepalived guide's settings, on a real 2-node cluster (the same
//! harness as the tests: namespaces, `axoha-firstboot apply`, real keepalived). Plus a soak: a
//! healthy cluster with both cores busy must not move the VIP at all.
//!
//! Times are measured from the fault injection to the first 20 ms sample that sees the VIP on
//! the new holder; a sample costs one `ip` run per node, so the figures are upper bounds within
//! about 30 ms. Then a second table: what a client on the public side sees (one TCP line and
//! one UDP datagram to the VIP every 10 ms, `axoha_tests::client`) for each fault, a drain and
//! a split-brain repair. Run it through `bench/failover`.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axoha_tests::client::{Traffic, Window};
use axoha_tests::cluster::{self, Bridge, Cluster, HaWiring, Layout, Settings, Trace};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const USAGE: &str =
    "usage: failover-bench [--runs N] [--soak SECONDS] [--no-guide] [--reference] [--client-only]
  --runs N        measurements per fault, the median is reported (default 3)
  --client-only   only the client table (what a client on the public side loses)
  --soak SECONDS  length of the busy-CPU stability check, 0 to skip (default 120)
  --no-guide      skip the keepalived-guide settings (their health timings make it slow)
  --reference     use the hand-written keepalived.conf of the design instead of axoha-firstboot";

struct Args {
    runs: usize,
    soak: Duration,
    guide: bool,
    reference: bool,
    client_only: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        runs: 3,
        soak: Duration::from_secs(120),
        guide: true,
        reference: false,
        client_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => args.runs = it.next().context(USAGE)?.parse().context(USAGE)?,
            "--soak" => args.soak = Duration::from_secs(it.next().context(USAGE)?.parse()?),
            "--no-guide" => args.guide = false,
            "--reference" => args.reference = true,
            "--client-only" => args.client_only = true,
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
    #[allow(unsafe_code)]
    fn start(cpus: usize, limit: Duration) -> Result<Stress> {
        let mut cmd = Command::new("stress-ng");
        cmd.arg("--cpu")
            .arg(cpus.to_string())
            .arg("--timeout")
            .arg(format!("{}s", limit.as_secs() + 30))
            .arg("--quiet")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: the closure only calls prctl(2), which is async-signal-safe after fork.
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

/// What the client table measures: the failovers, a drain, a split-brain repair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientCase {
    Crash,
    VipLinkDown,
    HealthFails,
    Drain,
    Undrain,
    SplitBrainRepair,
}

const CLIENT_CASES: [ClientCase; 6] = [
    ClientCase::Crash,
    ClientCase::VipLinkDown,
    ClientCase::HealthFails,
    ClientCase::Drain,
    ClientCase::Undrain,
    ClientCase::SplitBrainRepair,
];

impl ClientCase {
    fn name(self) -> &'static str {
        match self {
            ClientCase::Crash => "primary's keepalived crashes (SIGKILL)",
            ClientCase::VipLinkDown => "primary's VIP link down",
            ClientCase::HealthFails => "primary's health check fails",
            ClientCase::Drain => "`axoha-firstboot drain` on the primary",
            ClientCase::Undrain => "`axoha-firstboot undrain` on the primary",
            ClientCase::SplitBrainRepair => "split brain (both paths cut) repaired",
        }
    }

    /// Who holds the VIP at the end.
    fn holder(self) -> usize {
        match self {
            ClientCase::Undrain | ClientCase::SplitBrainRepair => PRIMARY,
            _ => SECONDARY,
        }
    }

    /// Runs the case on a settled cluster (VIP on the primary; for `Undrain`, on the
    /// secondary with the primary drained) and returns the instant it started at. `Drain`
    /// leaves the primary drained (the next case is `Undrain`); the others repair what they
    /// broke after the window (see `client_episode`).
    fn act(self, c: &mut Cluster) -> Result<Instant> {
        let both = |c: &Cluster, cut: bool| -> Result<()> {
            c.drop_vrrp(Bridge::Ha, cut)?;
            c.drop_vrrp(Bridge::Public, cut)
        };
        let t0 = Instant::now();
        match self {
            ClientCase::Crash => c.crash(PRIMARY)?,
            ClientCase::VipLinkDown => c.set_vip_link(PRIMARY, false)?,
            ClientCase::HealthFails => c.set_healthy(PRIMARY, false)?,
            ClientCase::Drain | ClientCase::Undrain => {
                let sub = if self == ClientCase::Drain {
                    "drain"
                } else {
                    "undrain"
                };
                let out = c.firstboot(PRIMARY, sub, &[])?;
                if !out.status.success() {
                    bail!(
                        "axoha-firstboot {sub}: {}\n{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            ClientCase::SplitBrainRepair => {
                both(c, true)?;
                c.watch(
                    "split brain",
                    Instant::now(),
                    |h| h == [0, 1],
                    TIMEOUT,
                    SETTLE,
                )?;
                let t0 = Instant::now();
                both(c, false)?;
                return Ok(t0);
            }
        }
        Ok(t0)
    }

    fn repair(self, c: &mut Cluster) -> Result<()> {
        match self {
            ClientCase::Crash => c.start(PRIMARY),
            ClientCase::VipLinkDown => c.set_vip_link(PRIMARY, true),
            ClientCase::HealthFails => c.set_healthy(PRIMARY, true),
            ClientCase::Drain | ClientCase::Undrain | ClientCase::SplitBrainRepair => Ok(()),
        }
    }
}

/// One case: act, wait for the VIP on the holder alone (plus a settle), read the client's
/// window, repair.
fn client_episode(c: &mut Cluster, traffic: &Traffic, case: ClientCase) -> Result<Window> {
    let holder = case.holder();
    let t0 = case.act(c)?;
    // A crashed primary keeps its stale VIP: there the holder set is {primary, secondary}.
    let until = move |h: &[usize]| {
        h.contains(&holder) && (h.len() == 1 || (case == ClientCase::Crash && h.len() == 2))
    };
    let trace = c.watch(case.name(), t0, until, TIMEOUT, SETTLE)?;
    let end = t0 + trace.reached.unwrap_or_default() + SETTLE;
    std::thread::sleep(end.saturating_duration_since(Instant::now()) + Duration::from_millis(300));
    let w = traffic.window(t0, end, holder);
    case.repair(c)?;
    if holder == SECONDARY && case != ClientCase::Drain {
        settle(c, Instant::now())?;
    }
    Ok(w)
}

/// The client table's rows: per case, the windows of every run.
fn measure_client(runs: usize) -> Result<Vec<Vec<Window>>> {
    let profile = Profile {
        name: "axoha defaults, two paths",
        tag: "bcl",
        settings: Settings::axoha_defaults(),
        public_path: true,
    };
    // Always axoha-firstboot's configs: the hand-written reference has no drain files.
    let mut c = cluster(profile.tag, &profile, HaWiring::Switch, false)?;
    let traffic = Traffic::start(&c)?;
    let mut rows = vec![Vec::new(); CLIENT_CASES.len()];
    for run in 1..=runs {
        for (row, case) in CLIENT_CASES.iter().enumerate() {
            let w = client_episode(&mut c, &traffic, *case)?;
            eprintln!(
                "  [client run {run}] {:<42} first line {:>8} gap {:>5} ms lost {}/{} lines, {} datagrams",
                case.name(),
                w.first_line
                    .map_or("-".into(), |d| format!("{:.3} s", d.as_secs_f64())),
                w.longest_gap.as_millis(),
                w.tcp_lost,
                w.lines,
                w.udp_lost
            );
            rows[row].push(w);
        }
    }
    Ok(rows)
}

fn client_table(runs: usize, rows: &[Vec<Window>]) {
    println!(
        "\nWhat a client on the public side sees (axoha defaults, two paths, 2 nodes on a \
         switch; one TCP line and one UDP datagram to the VIP every 10 ms; median of {runs} \
         run(s), max in brackets). \"first line\": from the fault (the command's start for \
         drain/undrain, the repair for split brain) to the first line the final holder \
         accepted; \"longest gap\": the longest time between two lines accepted by any node; \
         a line is lost when its write succeeded and no node received it.\n"
    );
    println!("| case | first line | longest gap | TCP lines lost | UDP datagrams lost |");
    println!("|---|---|---|---|---|");
    let max_of = |v: &[usize]| v.iter().copied().max().unwrap_or(0);
    let med_of = |mut v: Vec<usize>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    for (case, windows) in CLIENT_CASES.iter().zip(rows) {
        let first: Vec<Duration> = windows.iter().filter_map(|w| w.first_line).collect();
        let gaps: Vec<Duration> = windows.iter().map(|w| w.longest_gap).collect();
        let tcp: Vec<usize> = windows.iter().map(|w| w.tcp_lost).collect();
        let udp: Vec<usize> = windows.iter().map(|w| w.udp_lost).collect();
        println!(
            "| {} | {} | {} ms | {} ({}) | {} ({}) |",
            case.name(),
            if first.len() < windows.len() {
                "never".to_owned()
            } else {
                format!("{:.2} s", median(first).as_secs_f64())
            },
            median(gaps).as_millis(),
            med_of(tcp.clone()),
            max_of(&tcp),
            med_of(udp.clone()),
            max_of(&udp)
        );
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    axoha_tests::require_root()?;
    if args.client_only {
        eprintln!("== client ==");
        let rows = measure_client(args.runs)?;
        client_table(args.runs, &rows);
        return Ok(());
    }
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
    eprintln!("== client ==");
    let client_rows = measure_client(args.runs)?;
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
    client_table(args.runs, &client_rows);
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
