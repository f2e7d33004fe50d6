//! Which coordinator the agent calls. User-data lists one, or several when
//! they share a store; the agent keeps calling the one that answered last,
//! moves to the next listed when it does not answer, and goes to the leader
//! when a standby names it (a standby takes no agents: only the leader pushes
//! configurations). Whichever it calls, the certificate is checked against the
//! user-data's CA, so a named leader is trusted no more than a listed one.

use std::sync::Mutex;

use slipway_common::LEADER_METADATA;
use slipway_common::user_data::UserData;
use tracing::info;

#[derive(Debug)]
pub struct Coordinators {
    listed: Vec<String>,
    current: Mutex<String>,
}

impl Coordinators {
    pub fn new(user_data: &UserData) -> Coordinators {
        Coordinators {
            listed: user_data.addresses().map(str::to_string).collect(),
            current: Mutex::new(user_data.coordinator.clone()),
        }
    }

    /// The coordinator to call now.
    pub fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After a call to `address` failed with `status` (None: no answer at
    /// all): the leader a standby named, else the next one listed. Another
    /// call that moved on first wins.
    pub fn move_on(&self, address: &str, status: Option<&tonic::Status>) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if *current != address {
            return;
        }
        let next = match status.and_then(leader_named) {
            Some(leader) => {
                info!(%leader, standby = %address, "a standby named the leader; calling it");
                leader
            }
            None => {
                let at = self.listed.iter().position(|a| a == address);
                let next = at.map_or(0, |i| (i + 1) % self.listed.len());
                self.listed[next].clone()
            }
        };
        *current = next;
    }
}

/// The leader's address in a standby's refusal, if it is an https:// one.
fn leader_named(status: &tonic::Status) -> Option<String> {
    slipway_common::leader_address(status.metadata().get(LEADER_METADATA)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataMap;

    fn listed(addresses: &[&str]) -> Coordinators {
        Coordinators::new(&UserData {
            coordinator: addresses[0].into(),
            other_coordinators: addresses[1..].iter().map(|a| a.to_string()).collect(),
            server_name: String::new(),
            ca_pem: String::new(),
            ca_fingerprint: String::new(),
            join_token: String::new(),
        })
    }

    fn naming(leader: &str) -> tonic::Status {
        let mut metadata = MetadataMap::new();
        metadata.insert(LEADER_METADATA, leader.parse().unwrap());
        tonic::Status::with_metadata(tonic::Code::Unavailable, "stands by", metadata)
    }

    #[test]
    fn silence_moves_to_the_next_listed_and_round_again() {
        let c = listed(&["https://a:1", "https://b:1", "https://c:1"]);
        c.move_on("https://a:1", None);
        assert_eq!(c.current(), "https://b:1");
        c.move_on("https://b:1", Some(&tonic::Status::unavailable("down")));
        c.move_on("https://c:1", None);
        assert_eq!(c.current(), "https://a:1");
        // A failure reported late, for an address already left, moves nothing.
        c.move_on("https://c:1", None);
        assert_eq!(c.current(), "https://a:1");
    }

    #[test]
    fn a_named_leader_is_called_next_and_a_plaintext_one_is_not() {
        let c = listed(&["https://a:1", "https://b:1"]);
        c.move_on("https://a:1", Some(&naming("https://b:1")));
        assert_eq!(c.current(), "https://b:1");
        // Named but not listed (a coordinator added later): still called.
        c.move_on("https://b:1", Some(&naming("https://d:1")));
        assert_eq!(c.current(), "https://d:1");
        // It fails: back to the first listed.
        c.move_on("https://d:1", None);
        assert_eq!(c.current(), "https://a:1");
        c.move_on("https://a:1", Some(&naming("http://evil:80")));
        assert_eq!(c.current(), "https://b:1");
    }
}
