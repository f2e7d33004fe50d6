//! Which coordinator the agent calls. User-data lists one, or several when
//! they share a store; the agent keeps calling the one that answered last,
//! moves to the next listed when it does not answer, and goes to the leader
//! when a standby names it (a standby takes no agents: only the leader pushes
//! configurations). Whichever it calls, the certificate is checked against the
//! user-data's CA, so a named leader is trusted no more than a listed one.

use std::sync::Mutex;

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

    /// After a call to `address` failed: the leader a standby named in its
    /// refusal (`leader`), else the next one listed. Another call that moved
    /// on first wins.
    pub fn move_on(&self, address: &str, leader: Option<String>) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if *current != address {
            return;
        }
        let next = match leader {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn silence_moves_to_the_next_listed_and_round_again() {
        let c = listed(&["https://a:1", "https://b:1", "https://c:1"]);
        c.move_on("https://a:1", None);
        assert_eq!(c.current(), "https://b:1");
        c.move_on("https://b:1", None);
        c.move_on("https://c:1", None);
        assert_eq!(c.current(), "https://a:1");
        // A failure reported late, for an address already left, moves nothing.
        c.move_on("https://c:1", None);
        assert_eq!(c.current(), "https://a:1");
    }

    #[test]
    fn a_named_leader_is_called_next_even_if_not_listed() {
        let c = listed(&["https://a:1", "https://b:1"]);
        c.move_on("https://a:1", Some("https://b:1".into()));
        assert_eq!(c.current(), "https://b:1");
        // Named but not listed (a coordinator added later): still called.
        c.move_on("https://b:1", Some("https://d:1".into()));
        assert_eq!(c.current(), "https://d:1");
        // It fails: back to the first listed.
        c.move_on("https://d:1", None);
        assert_eq!(c.current(), "https://a:1");
        c.move_on("https://a:1", None);
        assert_eq!(c.current(), "https://b:1");
    }
}
