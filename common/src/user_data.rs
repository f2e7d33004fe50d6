//! What a launch hands the agent, as EC2 user-data: where the coordinator is, how
//! to recognise it, and a one-time join token. Never a private key: the agent
//! makes its own and sends only a certificate request.

use serde::{Deserialize, Serialize};

/// EC2 refuses user-data over 16 KiB; refuse earlier than the cloud does.
pub const MAX_USER_DATA: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserData {
    /// `https://host:port` of the coordinator's gRPC port.
    pub coordinator: String,
    /// The name on the coordinator's certificate.
    pub server_name: String,
    /// The CA certificate (public), so the agent can verify the coordinator.
    pub ca_pem: String,
    /// `sha256:<hex>` of the CA certificate's DER; the agent refuses a CA that
    /// does not match it.
    pub ca_fingerprint: String,
    /// One-time token, bound to this instance, to get the first certificate.
    pub join_token: String,
    /// The other coordinators sharing the store (`https://host:port` each),
    /// tried in turn when `coordinator` does not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_coordinators: Vec<String>,
}

impl UserData {
    pub fn to_toml(&self) -> String {
        // A struct of strings always serializes.
        toml::to_string(self).unwrap_or_default()
    }

    /// Every coordinator, the one written first first.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.coordinator.as_str())
            .chain(self.other_coordinators.iter().map(String::as_str))
    }

    pub fn parse(text: &str) -> Result<UserData, String> {
        if text.len() > MAX_USER_DATA {
            return Err(format!(
                "user-data is {} bytes, over the {MAX_USER_DATA} byte limit",
                text.len()
            ));
        }
        let data: UserData =
            toml::from_str(text).map_err(|e| format!("user-data is not Slipway's: {e}"))?;
        if let Some(plain) = data
            .addresses()
            .find(|address| !address.starts_with("https://"))
        {
            return Err(format!(
                "user-data coordinator {plain:?} must be an https:// address"
            ));
        }
        if data.ca_pem.contains("PRIVATE KEY") {
            return Err("user-data carries a private key: refusing it".into());
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UserData {
        UserData {
            coordinator: "https://127.0.0.1:7443".into(),
            server_name: "slipway-coordinator".into(),
            ca_pem: "-----BEGIN CERTIFICATE-----\n...".into(),
            ca_fingerprint: "sha256:00".into(),
            join_token: "abc".into(),
            other_coordinators: vec![],
        }
    }

    #[test]
    fn user_data_round_trips() {
        assert_eq!(UserData::parse(&sample().to_toml()).unwrap(), sample());
    }

    #[test]
    fn several_coordinators_round_trip_and_one_alone_writes_no_list() {
        let mut several = sample();
        several.other_coordinators = vec!["https://10.0.2.7:7443".into()];
        let text = several.to_toml();
        assert_eq!(UserData::parse(&text).unwrap(), several);
        assert_eq!(
            UserData::parse(&text)
                .unwrap()
                .addresses()
                .collect::<Vec<_>>(),
            ["https://127.0.0.1:7443", "https://10.0.2.7:7443"]
        );
        assert!(!sample().to_toml().contains("other_coordinators"));
        several
            .other_coordinators
            .push("http://10.0.3.9:7443".into());
        let err = UserData::parse(&several.to_toml()).unwrap_err();
        assert!(err.contains("http://10.0.3.9:7443"), "{err}");
    }

    #[test]
    fn plaintext_coordinators_and_keys_are_refused() {
        let mut plain = sample();
        plain.coordinator = "http://127.0.0.1:7443".into();
        assert!(
            UserData::parse(&plain.to_toml())
                .unwrap_err()
                .contains("https://")
        );
        let mut keyed = sample();
        keyed.ca_pem = "-----BEGIN PRIVATE KEY-----".into();
        assert!(
            UserData::parse(&keyed.to_toml())
                .unwrap_err()
                .contains("private key")
        );
        assert!(
            UserData::parse("garbage = [")
                .unwrap_err()
                .contains("not Slipway's")
        );
    }
}
