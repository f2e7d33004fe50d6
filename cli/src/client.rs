//! The connection to the coordinator: mutual TLS with the profile's certificate,
//! and what a failed call tells the user (its message and exit code). The calls
//! themselves are in `api`.

use std::time::Duration;

use slipway_proto::v1::operator_service_client::OperatorServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::failure::{Exit, Failure};
use crate::profile::Profile;

pub struct Client {
    pub(crate) api: OperatorServiceClient<Channel>,
    pub profile: Profile,
    /// Sent with every call of a command that acts (`--request-id`).
    request_id: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    /// The id the CLI made (none was given), until the call that acts (the
    /// command's first) is made.
    unshown_id: Option<String>,
    /// That id, when that call failed so that it may have acted: the
    /// failure names it.
    unknown_outcome: Option<String>,
}

/// How long a call that acts may take before the id the CLI made for it is
/// shown: a quick answer needs none, and a CI step killed at its timeout
/// has it in its log.
const SHOW_ID_AFTER: Duration = Duration::from_secs(5);

impl Client {
    /// Connects now, so an unreachable coordinator is named before anything
    /// else: the profile's coordinator, else each of its others in turn.
    pub async fn connect(mut profile: Profile) -> Result<Client, Failure> {
        let addresses: Vec<String> = std::iter::once(profile.coordinator.clone())
            .chain(profile.others.iter().cloned())
            .collect();
        let mut failures = Vec::new();
        for address in addresses {
            profile.coordinator = address;
            match Client::connect_to(&profile).await {
                Ok(channel) => {
                    return Ok(Client {
                        api: OperatorServiceClient::new(channel),
                        profile,
                        request_id: None,
                        unshown_id: None,
                        unknown_outcome: None,
                    });
                }
                Err(failure) if failure.exit == Exit::Unreachable => failures.push(failure),
                Err(failure) => return Err(failure),
            }
        }
        match failures.len() {
            1 => Err(failures.remove(0)),
            _ => Err(Failure::new(
                failures
                    .iter()
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                Exit::Unreachable,
            )),
        }
    }

    /// Sends `asked`, or a new request id, with the calls from now on: the
    /// coordinator acts once per id (a retry with the same one gets the
    /// first answer). A new one is shown on stderr when the answer is slow to
    /// come, or in the error when the outcome is unknown. An id that is not
    /// plain text is sent as given, for the coordinator to refuse.
    pub fn with_request_id(&mut self, asked: Option<String>) {
        let id = asked.unwrap_or_else(|| {
            let id = format!("r-{:016x}", rand::random::<u64>());
            self.unshown_id = Some(id.clone());
            id
        });
        self.request_id = Some(
            tonic::metadata::MetadataValue::try_from(id.as_str())
                .unwrap_or_else(|_| tonic::metadata::MetadataValue::from_static("not-plain-text")),
        );
    }

    /// Makes a call. When a standby answers that only the leader takes it,
    /// makes it again at the leader it names (once), and calls the leader from
    /// then on: the caller's own certificate reaches the leader, so its role
    /// check and audit entry stay the caller's.
    pub(crate) async fn call<Q, T, F, Fut>(
        &mut self,
        request: Q,
        rpc: F,
    ) -> Result<tonic::Response<T>, tonic::Status>
    where
        Q: Clone,
        F: Fn(OperatorServiceClient<Channel>, tonic::Request<Q>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let answer = self
            .showing_id(rpc(self.api.clone(), self.request(request.clone())))
            .await;
        let leader = match &answer {
            Err(status) => status
                .metadata()
                .get(slipway_common::LEADER_METADATA)
                .and_then(|named| slipway_common::leader_address(named.as_bytes())),
            Ok(_) => None,
        };
        let Some(leader) = leader.filter(|named| *named != self.profile.coordinator) else {
            return answer;
        };
        let mut profile = self.profile.clone();
        profile.coordinator = leader;
        match Client::connect_to(&profile).await {
            Ok(channel) => {
                self.api = OperatorServiceClient::new(channel);
                self.profile = profile;
                self.showing_id(rpc(self.api.clone(), self.request(request)))
                    .await
            }
            Err(failure) => {
                let mut unreachable = tonic::Status::unavailable(format!(
                    "{} stands by and sends this call to the leader, but {}",
                    self.profile.coordinator, failure.message
                ));
                unreachable.metadata_mut().insert(
                    slipway_common::LEADER_METADATA,
                    tonic::metadata::MetadataValue::from_static(""),
                );
                Err(unreachable)
            }
        }
    }

    /// The answer of `call`. If it is the call that acts and the id is the
    /// CLI's own, the id is shown when the answer is slow (on its own line)
    /// or the call fails so that it may have acted (in the failure).
    async fn showing_id<T>(
        &mut self,
        call: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        let Some(id) = self.unshown_id.take() else {
            return call.await;
        };
        tokio::pin!(call);
        let answer = tokio::select! {
            answer = &mut call => answer,
            () = tokio::time::sleep(SHOW_ID_AFTER) => {
                eprintln!("request id: {id} (a retry with --request-id {id} acts once)");
                return call.await;
            }
        };
        match &answer {
            // A standby's refusal: nothing acted; the call to the leader it
            // names is the one that may.
            Err(status)
                if status
                    .metadata()
                    .contains_key(slipway_common::LEADER_METADATA) =>
            {
                self.unshown_id = Some(id);
            }
            Err(status) if is_transport(status) || outcome_unknown(status.code()) => {
                self.unknown_outcome = Some(id);
            }
            _ => {}
        }
        answer
    }

    /// `message` as a call, with the request id if there is one.
    fn request<Q>(&self, message: Q) -> tonic::Request<Q> {
        let mut request = tonic::Request::new(message);
        if let Some(id) = &self.request_id {
            request
                .metadata_mut()
                .insert(slipway_common::REQUEST_ID_METADATA, id.clone());
        }
        request
    }

    /// A channel to `profile.coordinator`.
    async fn connect_to(profile: &Profile) -> Result<Channel, Failure> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&profile.ca_pem))
            .identity(Identity::from_pem(&profile.cert_pem, &profile.key_pem))
            .domain_name(&profile.server_name);
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            Failure::new(
                format!("{}: {what} ({e})", profile.path.display()),
                Exit::Failed,
            )
        };
        Channel::from_shared(profile.coordinator.clone())
            .map_err(|e| invalid("the coordinator address is invalid", &e))?
            .tls_config(tls)
            .map_err(|e| invalid("the certificates are unusable", &e))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| unreachable(profile, &source_chain(&e)))
    }

    /// The answer of a call, or what its failure means for the user.
    pub(crate) fn answer<T>(
        &self,
        result: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T, Failure> {
        result
            .map(tonic::Response::into_inner)
            .map_err(|status| self.failure(&status))
    }

    pub(crate) fn failure(&self, status: &tonic::Status) -> Failure {
        if is_transport(status) {
            return self.naming_id(unreachable(&self.profile, &source_chain(status)));
        }
        use tonic::Code;
        // A standby that could not pass the call to a leader: none acts, or
        // the one it names is away (a takeover is under way).
        let from_standby = status
            .metadata()
            .contains_key(slipway_common::LEADER_METADATA);
        if status.code() == Code::Unimplemented {
            return self.naming_id(Failure::new(
                format!(
                    "the coordinator at {} does not know this command: it is older than this slipway; upgrade it, or use the slipway of its release",
                    self.profile.coordinator
                ),
                Exit::Failed,
            ));
        }
        let exit = match status.code() {
            Code::Unavailable if from_standby => Exit::Unreachable,
            Code::NotFound => Exit::NotFound,
            Code::PermissionDenied
            | Code::Unauthenticated
            | Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::ResourceExhausted => Exit::Refused,
            _ => Exit::Failed,
        };
        self.naming_id(Failure::new(status.message(), exit))
    }

    /// `failure`, naming the request id if the call that acted failed so
    /// that it may have acted.
    fn naming_id(&self, mut failure: Failure) -> Failure {
        if let Some(id) = &self.unknown_outcome {
            failure.message = format!(
                "{} (request id {id}: a retry with --request-id {id} acts once)",
                failure.message
            );
        }
        failure
    }
}

/// Whether the call failed on this side (the connection failed or broke) rather
/// than being answered: tonic sets a status's source only for errors it made
/// locally from one (transport, hyper, I/O); a status the coordinator sent has none.
pub(crate) fn is_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// Unreachable, or reachable but not trusted: a certificate problem is not
/// "is it running?".
fn unreachable(profile: &Profile, why: &str) -> Failure {
    let hint = if why.contains("certificate") || why.contains("UnknownIssuer") {
        format!(
            "its certificate is not one this profile trusts: is {} from this coordinator?",
            profile.path.display()
        )
    } else {
        format!(
            "is it running, and is {} from this coordinator?",
            profile.path.display()
        )
    };
    Failure::new(
        format!(
            "cannot reach the coordinator at {} ({why}): {hint}",
            profile.coordinator
        ),
        Exit::Unreachable,
    )
}

/// An error and its causes in one line, each said once: transports wrap the
/// same message in several layers ("tcp connect error: tcp connect error: …").
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(e);
    while let Some(error) = next {
        let text = error.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.retain(|p| !text.contains(p.as_str()));
            parts.push(text);
        }
        next = error.source();
    }
    parts.join(": ")
}

/// A failure after which the call may or may not have acted.
fn outcome_unknown(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn a_chain_says_each_cause_once() {
        let e = Layer(
            "transport error",
            Some(Box::new(Layer(
                "tcp connect error",
                Some(Box::new(Layer(
                    "tcp connect error",
                    Some(Box::new(Layer("Connection refused (os error 111)", None))),
                ))),
            ))),
        );
        assert_eq!(
            source_chain(&e),
            "transport error: tcp connect error: Connection refused (os error 111)"
        );
    }
}
