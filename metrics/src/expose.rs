//! [`Facts`] in the Prometheus text format (0.0.4, what every scraper and `promtool check
//! metrics` read), pure. The metric names are the contract docs/alerts.rules.yml and
//! README's "Monitoring" table rely on.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use prometheus::core::Collector;
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use axoha_firstboot::health::{UnitState, Verdict, AXOROUTER_UNIT, KEEPALIVED_UNIT};
use axoha_firstboot::status::unix_seconds;

use crate::facts::Facts;

/// The states keepalived reports through the notify script: each instance has one series per
/// state, 1 for the one it is in.
pub const VRRP_STATES: [&str; 4] = ["MASTER", "BACKUP", "FAULT", "STOP"];
/// `axoha-update status`'s verdicts.
pub const OUTCOMES: [&str; 3] = ["ok", "pending", "rolled-back"];

struct Out(Registry);

impl Out {
    fn add<C: Collector + Clone + 'static>(&self, c: C) -> Result<C> {
        self.0
            .register(Box::new(c.clone()))
            .context("registering a metric")?;
        Ok(c)
    }
    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }
    fn seconds(&self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec> {
        self.add(GaugeVec::new(Opts::new(name, help), labels)?)
    }
    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// The text a scrape gets.
pub fn encode(f: &Facts) -> Result<String> {
    let out = Out(Registry::new());
    let ok = out.gauge(
        "axoha_read_ok",
        "1 when this part of the node's state could be read for this scrape, 0 when not \
         (the endpoint's log says why).",
        &["part"],
    )?;
    let part = |name: &str, fine: bool| ok.with_label_values(&[name]).set(flag(fine));
    part("config", f.config.is_ok());
    part("pair", f.pair.is_ok());
    part("health", f.health.is_ok());
    part("update", f.update.is_ok());
    if let Some(h) = &f.heard {
        part("heartbeat", h.is_ok());
    }

    out.gauge(
        "axoha_first_boot_done",
        "1 when axoha-firstboot configured this node (its stamp exists).",
        &[],
    )?
    .with_label_values(&[] as &[&str])
    .set(flag(f.first_boot_done));

    if let Ok(s) = &f.pair {
        out.gauge(
            "axoha_node_info",
            "This node's name, role and its pair's VIP, which names the pair (always 1).",
            &["node", "role", "vip"],
        )?
        .with_label_values(&[s.node.as_str(), s.role.as_str(), s.vip.as_str()])
        .set(1);
        // The last state of each name the notify script reported (the sync group and its
        // instances).
        let mut last: BTreeMap<&str, &axoha_firstboot::status::Transition> = BTreeMap::new();
        for t in &s.transitions {
            last.insert(&t.name, t);
        }
        let state = out.gauge(
            "axoha_vrrp_state",
            "1 for the VRRP state each instance (and the sync group) last reported, 0 for \
             the others.",
            &["vrrp_instance", "state"],
        )?;
        let at = out.seconds(
            "axoha_vrrp_last_transition_timestamp_seconds",
            "When each VRRP instance last changed state (Unix seconds).",
            &["vrrp_instance"],
        )?;
        for (name, t) in &last {
            for st in VRRP_STATES {
                state
                    .with_label_values(&[name, st])
                    .set(flag(t.state == st));
            }
            if let Some(secs) = unix_seconds(&t.at) {
                at.with_label_values(&[name]).set(secs);
            }
        }
        let count = out.counter(
            "axoha_vrrp_transitions_total",
            "VRRP state changes of each instance since this node booted.",
            &["vrrp_instance"],
        )?;
        for (name, n) in &s.transition_counts {
            count.with_label_values(&[name.as_str()]).inc_by(*n);
        }
        if let Some(held) = s.holds_vip {
            out.gauge(
                "axoha_vip_held",
                "1 when the VIP is on this node's VIP interface now.",
                &["vip", "interface"],
            )?
            .with_label_values(&[s.vip.as_str(), s.vip_if.as_str()])
            .set(flag(held));
        }
        if let Some(d) = s.drain {
            out.gauge(
                "axoha_drained",
                "1 when this node is drained (it advertises the drained priority).",
                &[],
            )?
            .with_label_values(&[] as &[&str])
            .set(flag(d.any()));
        }
    }

    if let Some(Ok(seen)) = &f.heard {
        let heard = out.gauge(
            "axoha_heartbeat_heard",
            "1 when the peer's VRRP adverts were heard on this path in the last window of \
             four advert intervals (only the master advertises: a master hears nobody).",
            &["path", "interface", "peer"],
        )?;
        let since = out.seconds(
            "axoha_heartbeat_since_timestamp_seconds",
            "Since when axoha_heartbeat_heard has had its value (Unix seconds).",
            &["path", "interface", "peer"],
        )?;
        for s in seen {
            let peer = s.peer.to_string();
            let l = [s.path, s.interface.as_str(), peer.as_str()];
            heard.with_label_values(&l).set(flag(s.heard));
            since.with_label_values(&l).set(s.since);
        }
    }

    if let Ok((observed, verdict)) = &f.health {
        out.gauge(
            "axoha_healthy",
            "1 when `axoha-firstboot health` would say healthy.",
            &[],
        )?
        .with_label_values(&[] as &[&str])
        .set(flag(matches!(verdict, Verdict::Healthy(_))));
        let problem = out.gauge(
            "axoha_health_problem",
            "1 for each reason `axoha-firstboot health` gives for an unhealthy node.",
            &["reason"],
        )?;
        if let Verdict::Unhealthy(reasons) = verdict {
            for r in reasons {
                problem.with_label_values(&[r.as_str()]).set(1);
            }
        }
        let active = out.gauge(
            "axoha_unit_active",
            "1 when the unit is active (`systemctl is-active`).",
            &["unit"],
        )?;
        for (unit, state) in [
            (KEEPALIVED_UNIT, &observed.keepalived),
            (AXOROUTER_UNIT, &observed.axorouter),
        ] {
            active
                .with_label_values(&[unit])
                .set(flag(*state == UnitState::Active));
        }
    }

    if let Ok(u) = &f.update {
        out.gauge(
            "axoha_image_info",
            "The running image: name, version, slot and build key (always 1).",
            &["name", "version", "slot", "build_key"],
        )?
        .with_label_values(&[
            u.running_name.as_deref().unwrap_or(""),
            u.running_version.as_deref().unwrap_or(""),
            u.running_slot.as_str(),
            u.running_build_key.as_deref().unwrap_or(""),
        ])
        .set(1);
        out.gauge(
            "axoha_other_slot_info",
            "The other slot and the image in it, when this node wrote or ran it (always 1).",
            &["slot", "version"],
        )?
        .with_label_values(&[
            u.other_slot.as_str(),
            u.other_version.as_deref().unwrap_or(""),
        ])
        .set(1);
        if let Some(floor) = &u.floor {
            out.gauge(
                "axoha_version_floor_info",
                "The lowest version `axoha-update apply` takes without --allow-downgrade \
                 (always 1).",
                &["version"],
            )?
            .with_label_values(&[floor.as_str()])
            .set(1);
        }
        let running = u.entries.iter().find(|e| e.running);
        out.gauge(
            "axoha_boot_tries_left",
            "Boot tries left of the running entry (0 when blessed: nothing is counted).",
            &[],
        )?
        .with_label_values(&[] as &[&str])
        .set(
            running
                .and_then(|e| e.tries)
                .map_or(0, |t| i64::from(t.left)),
        );
        out.gauge(
            "axoha_boot_blessed",
            "1 when the running boot entry is blessed (no tries counted).",
            &[],
        )?
        .with_label_values(&[] as &[&str])
        .set(flag(running.is_some_and(|e| e.tries.is_none())));
        let outcome = out.gauge(
            "axoha_update_outcome",
            "1 for `axoha-update status`'s verdict, 0 for the others.",
            &["outcome"],
        )?;
        for o in OUTCOMES {
            outcome.with_label_values(&[o]).set(flag(u.outcome == o));
        }
        out.gauge(
            "axoha_update_rolled_back",
            "1 when the newest update failed and the node fell back to the other slot.",
            &[],
        )?
        .with_label_values(&[] as &[&str])
        .set(flag(u.outcome == "rolled-back"));
        out.gauge(
            "axoha_etc_kept_files",
            "/etc files the last update kept over the image's (changed here and in the image).",
            &[],
        )?
        .with_label_values(&[] as &[&str])
        .set(u.etc_kept.len() as i64);
    }

    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&out.0.gather(), &mut text)
        .context("encoding the metrics")?;
    String::from_utf8(text).context("the encoded metrics")
}
