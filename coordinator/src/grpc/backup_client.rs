//! `slipway-coordinator backup` while the coordinator runs: it asks the
//! coordinator serving the data directory for a snapshot over its operator
//! port, as an admin whose certificate it makes itself from the CA there,
//! valid for minutes (whoever reads the data directory holds the CA's key
//! anyway). The coordinator audits it as any admin call. A standby passes
//! it to the leader it names: only the leader takes snapshots.

use slipway_proto::v1::BackupRequest;
use slipway_proto::v1::operator_service_client::OperatorServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::pki::{KeyedCertificate, SERVER_NAME};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot reach the coordinator at {address}: {message}")]
    Unreachable { address: String, message: String },
    #[error("the coordinator refused the backup: {0}")]
    Refused(String),
}

/// The snapshot document (JSON) of the coordinator at `address`; a standby
/// there names the leader, which is asked instead.
pub async fn fetch(
    address: &str,
    ca_pem: &str,
    admin: &KeyedCertificate,
) -> Result<Vec<u8>, SnapshotError> {
    match fetch_from(address, ca_pem, admin).await {
        Err(Fetch::StandsBy(leader)) if !leader.is_empty() && leader != address => fetch_from(
            &leader, ca_pem, admin,
        )
        .await
        .map_err(|e| match e {
            Fetch::StandsBy(_) => SnapshotError::Refused(format!(
                "{leader}, named the leader by {address}, stands by too: try again once one leads"
            )),
            Fetch::Failed(e) => e,
        }),
        Err(Fetch::StandsBy(_)) => Err(SnapshotError::Refused(format!(
            "{address} stands by and names no leader: try again once one leads"
        ))),
        Err(Fetch::Failed(e)) => Err(e),
        Ok(document) => Ok(document),
    }
}

enum Fetch {
    /// A standby refused, naming the leader it follows.
    StandsBy(String),
    Failed(SnapshotError),
}

async fn fetch_from(
    address: &str,
    ca_pem: &str,
    admin: &KeyedCertificate,
) -> Result<Vec<u8>, Fetch> {
    let unreachable = |message: String| {
        Fetch::Failed(SnapshotError::Unreachable {
            address: address.to_string(),
            message,
        })
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(&admin.cert_pem, &admin.key_pem))
        .domain_name(SERVER_NAME);
    let channel = Channel::from_shared(address.to_string())
        .map_err(|e| unreachable(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| unreachable(e.to_string()))?
        .connect()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let refused =
        |status: tonic::Status| match status.metadata().get(slipway_common::LEADER_METADATA) {
            Some(named) => Fetch::StandsBy(
                slipway_common::leader_address(named.as_bytes()).unwrap_or_default(),
            ),
            None => Fetch::Failed(SnapshotError::Refused(status.message().to_string())),
        };
    let mut chunks = OperatorServiceClient::new(channel)
        .backup(BackupRequest {})
        .await
        .map_err(refused)?
        .into_inner();
    let mut document = Vec::new();
    while let Some(chunk) = chunks.message().await.map_err(refused)? {
        document.extend_from_slice(&chunk.data);
    }
    Ok(document)
}
