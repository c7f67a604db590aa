//! The pair's decisions, pure: may this node be drained, may it reboot now?
//!
//! Everything is decided from one [`Look`] at the node: does it hold the VIP, is it drained,
//! and which peer is heard advertising (only a VRRP master advertises, so a peer heard is the
//! peer holding the VIP, healthy: a node in FAULT sends nothing). No lock server, no message
//! of our own: the adverts keepalived already sends on the heartbeat paths carry the sender's
//! priority, and a drained node advertises [`DRAINED_PRIORITY`].
//!
//! The reboot rule (docs/pair-operations.md has the protocol and its failure cases):
//! - a node holding the VIP never reboots: it drains (for the reboot) and waits until a peer
//!   has taken the VIP by preemption;
//! - a node not holding the VIP drains first (so it cannot take the VIP back on its way
//!   down), then reboots while it hears a peer holding the VIP.
//!
//! Run on both nodes at once, the node without the VIP goes first and the holder waits until
//! its peer is back at full priority and takes the VIP, then goes itself.

use std::net::IpAddr;

use crate::drain::{Drain, DRAINED_PRIORITY};

/// A peer heard advertising, with the priority of its last advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    pub from: IpAddr,
    pub priority: u8,
}

impl Heard {
    pub fn drained(self) -> bool {
        self.priority <= DRAINED_PRIORITY
    }
}

impl std::fmt::Display for Heard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (priority {}", self.from, self.priority)?;
        if self.drained() {
            write!(f, ", drained")?;
        }
        write!(f, ")")
    }
}

/// One look at this node and what it hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub holds_vip: bool,
    pub drain: Drain,
    /// The peer heard advertising (the VIP's holder), the highest priority if several.
    pub peer: Option<Heard>,
}

/// What `drain` may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainStep {
    /// Not holding the VIP and a peer holds it: set the drain, nothing moves.
    Set(String),
    /// Holding the VIP: set the drain and wait for a peer to take the VIP; if none does,
    /// no healthy peer exists (undo, unless forced).
    HandOver,
    /// Neither this node nor a heard peer holds the VIP as far as can be seen.
    Refuse(String),
}

pub fn drain_step(look: &Look) -> DrainStep {
    if look.holds_vip {
        return DrainStep::HandOver;
    }
    match look.peer {
        Some(p) => DrainStep::Set(format!("the VIP is held by {p}")),
        None => DrainStep::Refuse(
            "this node does not hold the VIP and hears no peer holding it (no advert on any \
             heartbeat path): the VIP may be unanswered already"
                .to_owned(),
        ),
    }
}

/// What a reboot may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebootStep {
    /// Reboot: a peer holds the VIP and this node cannot take it on its way down.
    Now(String),
    /// Set the reboot drain, then look again.
    DrainFirst(String),
    /// Look again later; says for what.
    Wait(String),
}

pub fn reboot_step(look: &Look) -> RebootStep {
    match (look.holds_vip, look.drain.any(), look.peer) {
        (true, false, _) => RebootStep::DrainFirst(
            "this node holds the VIP: lowering its priority so that a healthy peer takes it"
                .to_owned(),
        ),
        (true, true, peer) => RebootStep::Wait(format!(
            "this node still holds the VIP (drained): waiting for a healthy peer to take it \
             ({})",
            match peer {
                // Two holders: a split brain; the peer's adverts do not reach us as a backup's.
                Some(p) => format!("{p} is heard advertising too: split brain?"),
                None => "no peer heard yet; a peer that is rebooting takes it once it is back"
                    .to_owned(),
            }
        )),
        (false, false, Some(p)) => RebootStep::DrainFirst(format!(
            "the VIP is held by {p}; lowering this node's priority so that it cannot take the \
             VIP back while it shuts down"
        )),
        (false, true, Some(p)) => RebootStep::Now(format!("the VIP is held by {p}")),
        (false, _, None) => RebootStep::Wait(
            "this node does not hold the VIP and hears no peer holding it: waiting for a \
             peer to hold the VIP (rebooting now could leave it unanswered)"
                .to_owned(),
        ),
    }
}

/// The peer heard with the highest priority among `adverts` (sender, priority), counting only
/// senders among this node's configured `peers` (anything else on the link is not our pair).
pub fn best_peer(adverts: &[(IpAddr, u8)], peers: &[IpAddr]) -> Option<Heard> {
    adverts
        .iter()
        .filter(|(from, _)| peers.contains(from))
        .map(|&(from, priority)| Heard { from, priority })
        .max_by_key(|h| h.priority)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "192.0.2.10";
    const B: &str = "192.0.2.11";

    fn heard(addr: &str, priority: u8) -> Option<Heard> {
        Some(Heard {
            from: addr.parse().unwrap(),
            priority,
        })
    }

    fn look(holds_vip: bool, drained: bool, peer: Option<Heard>) -> Look {
        Look {
            holds_vip,
            drain: Drain {
                operator: false,
                reboot: drained,
            },
            peer,
        }
    }

    #[test]
    fn drain_hands_over_when_holding_and_needs_a_holder_otherwise() {
        assert_eq!(drain_step(&look(true, false, None)), DrainStep::HandOver);
        assert!(matches!(
            drain_step(&look(false, false, heard(A, 254))),
            DrainStep::Set(s) if s.contains("192.0.2.10 (priority 254)")
        ));
        // A drained holder still holds the VIP: draining this one too loses nothing.
        assert!(matches!(
            drain_step(&look(false, false, heard(A, 1))),
            DrainStep::Set(s) if s.contains("drained")
        ));
        assert!(matches!(
            drain_step(&look(false, false, None)),
            DrainStep::Refuse(s) if s.contains("hears no peer")
        ));
    }

    #[test]
    fn a_holder_never_reboots() {
        for drained in [false, true] {
            for peer in [None, heard(B, 204), heard(B, 1)] {
                let step = reboot_step(&look(true, drained, peer));
                assert!(!matches!(step, RebootStep::Now(_)), "{step:?}");
            }
        }
    }

    #[test]
    fn a_non_holder_reboots_only_drained_and_hearing_a_holder() {
        assert!(matches!(
            reboot_step(&look(false, false, heard(A, 254))),
            RebootStep::DrainFirst(_)
        ));
        assert!(matches!(
            reboot_step(&look(false, true, heard(A, 254))),
            RebootStep::Now(_)
        ));
        // The holder is drained for its own reboot: it keeps the VIP until we are back.
        assert!(matches!(
            reboot_step(&look(false, true, heard(A, 1))),
            RebootStep::Now(_)
        ));
        for drained in [false, true] {
            assert!(matches!(
                reboot_step(&look(false, drained, None)),
                RebootStep::Wait(s) if s.contains("hears no peer")
            ));
        }
    }

    /// Both nodes run the same reboot at the same moment: step the pair through the rule
    /// (with VRRP's preemption between looks) and check that the VIP always has a holder and
    /// that the nodes reboot one after the other.
    #[test]
    fn both_nodes_at_once_reboot_one_after_the_other() {
        // (holds_vip, drained, priority, up)
        #[derive(Clone, Copy)]
        struct Node {
            holds: bool,
            drained: bool,
            prio: u8,
            up: bool,
            rebooted: bool,
        }
        let mut n = [
            Node {
                holds: true,
                drained: false,
                prio: 254,
                up: true,
                rebooted: false,
            },
            Node {
                holds: false,
                drained: false,
                prio: 204,
                up: true,
                rebooted: false,
            },
        ];
        let addr = [A, B];
        let mut order = Vec::new();
        for _round in 0..20 {
            for i in 0..2 {
                let j = 1 - i;
                if !n[i].up || n[i].rebooted {
                    continue;
                }
                let peer = (n[j].up && n[j].holds)
                    .then(|| heard(addr[j], if n[j].drained { 1 } else { n[j].prio }))
                    .flatten();
                match reboot_step(&look(n[i].holds, n[i].drained, peer)) {
                    RebootStep::DrainFirst(_) => n[i].drained = true,
                    RebootStep::Now(_) => {
                        n[i].up = false;
                        order.push(i);
                    }
                    RebootStep::Wait(_) => {}
                }
            }
            // Preemption: an up node outranking the holder takes the VIP.
            let eff = |x: &Node| if x.drained { 1 } else { x.prio };
            for i in 0..2 {
                let j = 1 - i;
                if n[i].up && !n[i].holds && (!n[j].up || (n[j].holds && eff(&n[i]) > eff(&n[j]))) {
                    n[i].holds = true;
                    n[j].holds = false;
                }
            }
            assert!(n.iter().any(|x| x.up && x.holds), "nobody holds the VIP");
            // A node that went down comes back next round, undrained (the drain was on /run).
            for x in n.iter_mut() {
                if !x.up {
                    *x = Node {
                        holds: false,
                        drained: false,
                        up: true,
                        rebooted: true,
                        ..*x
                    };
                }
            }
        }
        assert_eq!(order, [1, 0], "the secondary first, then the primary");
        assert!(n[0].holds, "the primary preempts when it is back");
    }

    #[test]
    fn the_best_peer_is_the_highest_priority_of_a_configured_peer() {
        let a: IpAddr = A.parse().unwrap();
        let b: IpAddr = B.parse().unwrap();
        assert_eq!(best_peer(&[(a, 254), (b, 1)], &[b]), heard(B, 1));
        assert_eq!(best_peer(&[(b, 1), (b, 204)], &[b]), heard(B, 204));
        assert_eq!(best_peer(&[(a, 254)], &[b]), None, "not a configured peer");
        assert_eq!(best_peer(&[], &[b]), None);
    }
}
