//! What a peer that has not shown a client certificate may hold. Anyone can
//! open a TCP connection and finish a TLS handshake without a certificate
//! (Bootstrap needs none), so those connections are counted, per peer address
//! and in total, and live only so long; a connection over a limit is closed at
//! once. Authenticated connections (agents, operators) are not counted: the
//! coordinator's capacity bounds them (DESIGN.md, settled questions).
//!
//! Every port applies these: the gRPC port counts connections without a
//! client certificate, the dashboard's those that have shown no token yet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How much the unauthenticated may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Handshakes in progress, from one address and in total.
    pub handshakes_per_peer: usize,
    pub handshakes: usize,
    /// Established connections without a client certificate.
    pub unauthenticated_per_peer: usize,
    pub unauthenticated: usize,
    /// How long such a connection may live: enough for a Bootstrap and its retries.
    pub unauthenticated_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshakes_per_peer: 64,
            handshakes: 256,
            unauthenticated_per_peer: 32,
            unauthenticated: 256,
            unauthenticated_lifetime: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    handshakes: usize,
    unauthenticated: usize,
    by_peer: HashMap<IpAddr, (usize, usize)>,
}

/// The counts, shared by the accept loop and every permit.
#[derive(Debug, Clone)]
pub struct Admission {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Handshake,
    Unauthenticated,
}

/// Counts one connection of its kind until dropped.
#[derive(Debug)]
pub struct Permit {
    admission: Admission,
    peer: IpAddr,
    kind: Kind,
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            counts: Arc::default(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(&self, peer: IpAddr, kind: Kind) -> Option<Permit> {
        let limits = self.limits;
        let mut counts = self.counts();
        let (peer_handshakes, peer_unauthenticated) =
            counts.by_peer.get(&peer).copied().unwrap_or_default();
        let admitted = match kind {
            Kind::Handshake => {
                counts.handshakes < limits.handshakes
                    && peer_handshakes < limits.handshakes_per_peer
            }
            Kind::Unauthenticated => {
                counts.unauthenticated < limits.unauthenticated
                    && peer_unauthenticated < limits.unauthenticated_per_peer
            }
        };
        if !admitted {
            return None;
        }
        let entry = counts.by_peer.entry(peer).or_default();
        match kind {
            Kind::Handshake => entry.0 += 1,
            Kind::Unauthenticated => entry.1 += 1,
        }
        match kind {
            Kind::Handshake => counts.handshakes += 1,
            Kind::Unauthenticated => counts.unauthenticated += 1,
        }
        Some(Permit {
            admission: self.clone(),
            peer,
            kind,
        })
    }

    /// A handshake from `peer` may start, or None: close the connection.
    pub fn handshake(&self, peer: IpAddr) -> Option<Permit> {
        self.admit(peer, Kind::Handshake)
    }

    /// A connection from `peer` that finished its handshake without a
    /// certificate may stay (for `unauthenticated_lifetime`), or None.
    pub fn unauthenticated(&self, peer: IpAddr) -> Option<Permit> {
        self.admit(peer, Kind::Unauthenticated)
    }

    pub fn lifetime(&self) -> Duration {
        self.limits.unauthenticated_lifetime
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        match self.kind {
            Kind::Handshake => counts.handshakes -= 1,
            Kind::Unauthenticated => counts.unauthenticated -= 1,
        }
        if let Some(entry) = counts.by_peer.get_mut(&self.peer) {
            match self.kind {
                Kind::Handshake => entry.0 -= 1,
                Kind::Unauthenticated => entry.1 -= 1,
            }
            if *entry == (0, 0) {
                counts.by_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_and_the_total_are_capped_and_a_dropped_permit_frees_its_place() {
        let admission = Admission::new(Limits {
            handshakes_per_peer: 2,
            handshakes: 3,
            unauthenticated_per_peer: 1,
            unauthenticated: 1,
            unauthenticated_lifetime: Duration::from_secs(1),
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = admission.handshake(a).unwrap();
        let _second = admission.handshake(a).unwrap();
        assert!(admission.handshake(a).is_none(), "per peer");
        let _third = admission.handshake(b).unwrap();
        assert!(admission.handshake(b).is_none(), "in total");
        drop(first);
        assert!(
            admission.handshake(b).is_some(),
            "a closed handshake frees its place"
        );
        let kept = admission.unauthenticated(a).unwrap();
        assert!(
            admission.unauthenticated(b).is_none(),
            "unauthenticated in total"
        );
        drop(kept);
        assert!(admission.unauthenticated(b).is_some());
        assert!(admission.counts().by_peer.len() <= 2);
    }
}
