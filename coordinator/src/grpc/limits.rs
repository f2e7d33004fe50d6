//! What a peer that has not shown a client certificate may hold. Anyone can
//! open a TCP connection and finish a TLS handshake without a certificate
//! (Bootstrap needs none), so those connections are counted, per peer address
//! and in total, and live only so long; a connection over a limit is closed at
//! once. Authenticated connections (agents, operators) are not counted: the
//! coordinator's capacity bounds them (DESIGN.md, settled questions).

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

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

/// A connection as the server sees it: an unauthenticated one carries its
/// permit and ends at its deadline.
pub struct Limited<IO> {
    inner: IO,
    permit: Option<Permit>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> Limited<IO> {
    /// An authenticated connection: not counted, no deadline.
    pub fn authenticated(inner: IO) -> Self {
        Limited {
            inner,
            permit: None,
            deadline: None,
        }
    }

    /// An unauthenticated connection, closed after `lifetime`.
    pub fn unauthenticated(inner: IO, permit: Permit, lifetime: Duration) -> Self {
        Limited {
            inner,
            permit: Some(permit),
            deadline: Some(Box::pin(tokio::time::sleep(lifetime))),
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.deadline {
            Some(deadline) => deadline.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
}

fn expired_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "a connection without a client certificate outlived its deadline",
    )
}

use std::future::Future;

impl<IO: AsyncRead + Unpin> AsyncRead for Limited<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.expired(cx) {
            self.permit = None;
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Limited<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Limited<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
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
