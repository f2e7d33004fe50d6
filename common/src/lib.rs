//! What Slipway's binaries share besides the wire protocol (which is
//! `slipway-proto`'s alone):
//!
//! - `user_data`: what a launch hands the agent (EC2 user-data).
//! - `profile`: the CLI's profile file and certificate bundle; `private_file`:
//!   owner-only files for keys.
//! - `http_probe`: one HTTP health check, shared by the agent and the local cloud.
//! - `process`: whether another process has ended (`/proc`).
//! - `protocol`: the agent protocol's version, and which ones a coordinator takes.
//! - `webhook`: POSTing JSON to a webhook (https, or http to loopback only).
//! - `logging`: `SLIPWAY_LOG` and `SLIPWAY_LOG_FORMAT` for the coordinator and
//!   the local cloud.

#![forbid(unsafe_code)]

pub mod http_probe;
pub mod logging;
pub mod private_file;
pub mod process;
pub mod profile;
pub mod protocol;
pub mod user_data;
pub mod webhook;

/// The gRPC metadata key with which a standby coordinator names the leader's
/// address (`https://host:port`) when it refuses a call only the leader takes:
/// the CLI and the agent then call the leader, whose certificate they check
/// against the same CA as ever.
pub const LEADER_METADATA: &str = "slipway-leader";

/// The gRPC metadata key of a request id: a call that carries one and is made
/// again (by CI, after a lost answer) gets its first answer, not a second act.
pub const REQUEST_ID_METADATA: &str = "slipway-request-id";

/// The leader's address in a `LEADER_METADATA` value, if it is an https:// one
/// (nothing else is ever called).
pub fn leader_address(value: &[u8]) -> Option<String> {
    let named = std::str::from_utf8(value).ok()?;
    named.starts_with("https://").then(|| named.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_an_https_leader_is_taken() {
        assert_eq!(
            super::leader_address(b"https://10.0.1.5:7443").as_deref(),
            Some("https://10.0.1.5:7443")
        );
        for refused in [&b"http://10.0.1.5:7443"[..], b"", b"\xff\xfe"] {
            assert_eq!(super::leader_address(refused), None);
        }
    }
}
