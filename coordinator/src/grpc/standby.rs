//! What a standby coordinator serves: reads from the shared store, and for
//! every other call a refusal that names the leader (`LEADER_METADATA`), which
//! the CLI and the agent follow. Writes are redirected rather than forwarded
//! so that the caller's identity, role check and audit entry stay the
//! caller's own (DESIGN.md, settled questions). An agent's stream is relayed
//! to the leader (`relay`); its Bootstrap and Renew go to the leader.
//!
//! The list is of what may be answered here; anything not on it (a method
//! added later included) goes to the leader. The store refuses a standby's
//! writes in any case (its epoch is fenced), so a read that turned out to
//! write fails rather than acts.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use slipway_common::LEADER_METADATA;
use tokio::sync::watch;
use tonic::Status;
use tonic::metadata::{MetadataMap, MetadataValue};

/// `package.Service/Method` of the calls a standby answers itself (an
/// agent's stream it relays to the leader, `relay`).
const ANSWERED: &[&str] = &[
    "slipway.v1.AgentService/Connect",
    "slipway.v1.OperatorService/Status",
    "slipway.v1.OperatorService/ListReleases",
    "slipway.v1.OperatorService/GetDeployment",
    "slipway.v1.OperatorService/Deployments",
    "slipway.v1.OperatorService/Queue",
    "slipway.v1.OperatorService/Audit",
    "slipway.v1.OperatorService/AuditVerify",
    "slipway.v1.OperatorService/ListSecrets",
    "slipway.v1.OperatorService/FleetDiff",
    "slipway.v1.OperatorService/Version",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
];

/// Whether a standby answers `path` (`/package.Service/Method`) itself.
pub fn answers(path: &str) -> bool {
    ANSWERED.contains(&path.trim_start_matches('/'))
}

/// The refusal of a call only the leader takes. It always carries
/// `LEADER_METADATA`, empty while nobody leads, so a client can tell a
/// standby's refusal from any other.
pub fn refusal(leader: Option<&str>) -> Status {
    let named = leader.and_then(|address| MetadataValue::try_from(address).ok());
    let message = match (leader, &named) {
        (Some(address), Some(_)) => {
            format!("this coordinator stands by: call the leader at {address}")
        }
        _ => "this coordinator stands by and no coordinator leads right now (one takes over within the lease): try again in a few seconds".to_string(),
    };
    let mut metadata = MetadataMap::new();
    metadata.insert(
        LEADER_METADATA,
        named.unwrap_or_else(|| MetadataValue::from_static("")),
    );
    Status::with_metadata(tonic::Code::Unavailable, message, metadata)
}

/// Puts the standby's rule in front of the services.
#[derive(Debug, Clone)]
pub struct StandbyLayer {
    /// Where the leader takes calls, as the lease last said; None when this
    /// coordinator leads (or is the only one), and so answers everything.
    pub leader: Option<watch::Receiver<Option<String>>>,
}

impl<S> tower::Layer<S> for StandbyLayer {
    type Service = Standby<S>;
    fn layer(&self, inner: S) -> Standby<S> {
        Standby {
            inner,
            leader: self.leader.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Standby<S> {
    inner: S,
    leader: Option<watch::Receiver<Option<String>>>,
}

impl<S, B, R> tower::Service<hyper::http::Request<B>> for Standby<S>
where
    S: tower::Service<hyper::http::Request<B>, Response = hyper::http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: hyper::http::Request<B>) -> Self::Future {
        let Some(leader) = self
            .leader
            .as_ref()
            .filter(|_| !answers(request.uri().path()))
        else {
            return Box::pin(self.inner.call(request));
        };
        let refused = refusal(leader.borrow().as_deref()).into_http();
        Box::pin(async move { Ok(refused) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_answered_and_everything_else_goes_to_the_leader() {
        assert!(answers("/slipway.v1.OperatorService/Status"));
        assert!(answers("/grpc.health.v1.Health/Check"));
        for path in [
            "/slipway.v1.OperatorService/Deploy",
            "/slipway.v1.OperatorService/Logs",
            "/slipway.v1.AgentService/Bootstrap",
            "/slipway.v1.AgentService/Renew",
            "/slipway.v1.OperatorService/Made-up",
        ] {
            assert!(!answers(path), "{path}");
        }
    }

    #[test]
    fn a_refusal_names_the_leader_when_there_is_one() {
        let named = refusal(Some("https://10.0.1.5:7443"));
        assert_eq!(named.code(), tonic::Code::Unavailable);
        assert_eq!(
            named.metadata().get(LEADER_METADATA).unwrap(),
            "https://10.0.1.5:7443"
        );
        let none = refusal(None);
        assert_eq!(none.metadata().get(LEADER_METADATA).unwrap(), "");
        assert!(none.message().contains("no coordinator leads"), "{none:?}");
    }
}
