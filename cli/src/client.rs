//! The connection to the coordinator: mutual TLS with the profile's certificate,
//! and what a failed call tells the user. Commands call the RPCs through `api`
//! and hand every answer to `answer`.

use std::time::Duration;

use anyhow::Context;
use slipway_proto::v1::operator_service_client::OperatorServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::failure::Failure;
use crate::profile::Profile;

pub struct Client {
    pub api: OperatorServiceClient<Channel>,
    pub profile: Profile,
}

impl Client {
    /// Connects now, so an unreachable coordinator is named before anything else.
    pub async fn connect(profile: Profile) -> Result<Client, Failure> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&profile.ca_pem))
            .identity(Identity::from_pem(&profile.cert_pem, &profile.key_pem))
            .domain_name(&profile.server_name);
        let channel = Channel::from_shared(profile.coordinator.clone())
            .context("the profile's coordinator address is invalid")?
            .tls_config(tls)
            .context("the profile's certificates are unusable")?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| unreachable(&profile, &source_chain(&e)))?;
        Ok(Client {
            api: OperatorServiceClient::new(channel),
            profile,
        })
    }

    /// The answer of a call, or what its failure means for the user.
    pub fn answer<T>(
        &self,
        result: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T, Failure> {
        result
            .map(tonic::Response::into_inner)
            .map_err(|status| self.failure(status))
    }

    pub fn failure(&self, status: tonic::Status) -> Failure {
        if is_transport(&status) {
            return unreachable(&self.profile, status.message());
        }
        Failure::new(status.message(), 1)
    }
}

/// Whether the call failed on this side (the connection failed or broke) rather
/// than being answered: tonic sets a status's source only for errors it made
/// locally from one (transport, hyper, I/O); a status the coordinator sent has none.
pub fn is_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

fn unreachable(profile: &Profile, why: &str) -> Failure {
    Failure::new(
        format!(
            "cannot reach the coordinator at {} ({why}): is it running, and is {} from this coordinator?",
            profile.coordinator,
            profile.path.display()
        ),
        1,
    )
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
