//! The agent protocol's version. An agent is baked into an image and may run
//! for a year; the coordinator is upgraded under it. So the agent names the
//! version it speaks in its hello, and the coordinator takes its own version
//! and the one before; older and newer ones are refused with a message naming
//! both, rather than half-understood.
//!
//! History (add a line with each version; never reuse a number):
//! - 1: every agent before the hello carried a version (it sends none, which
//!   reads as 0).
//! - 2: the hello carries the version.

/// The version this build speaks.
pub const AGENT_PROTOCOL: u32 = 2;

/// The version an agent speaks, from its hello's field (0: sent none).
pub fn spoken(field: u32) -> u32 {
    field.max(1)
}

/// Whether a coordinator speaking `ours` takes an agent speaking `theirs`;
/// if not, why, for the agent's log and the coordinator's.
pub fn admit(theirs: u32, ours: u32) -> Result<(), String> {
    let oldest = ours.saturating_sub(1).max(1);
    if (oldest..=ours).contains(&theirs) {
        return Ok(());
    }
    let taken = if oldest == ours {
        format!("{ours}")
    } else {
        format!("{oldest} and {ours}")
    };
    let what = if theirs < oldest {
        "bake a newer agent into the image"
    } else {
        "upgrade the coordinator first"
    };
    Err(format!(
        "the agent speaks protocol version {theirs}; this coordinator takes versions {taken}: {what}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coordinator_takes_its_own_version_and_the_one_before() {
        assert_eq!(admit(AGENT_PROTOCOL, AGENT_PROTOCOL), Ok(()));
        assert_eq!(admit(AGENT_PROTOCOL - 1, AGENT_PROTOCOL), Ok(()));
        // An agent from before the hello carried a version speaks version 1.
        assert_eq!(spoken(0), 1);
        assert_eq!(admit(spoken(0), 2), Ok(()));
    }

    #[test]
    fn older_and_newer_agents_are_refused_naming_every_version() {
        assert_eq!(
            admit(1, 3),
            Err(
                "the agent speaks protocol version 1; this coordinator takes versions 2 and 3: \
                 bake a newer agent into the image"
                    .into()
            )
        );
        assert_eq!(
            admit(4, 3),
            Err(
                "the agent speaks protocol version 4; this coordinator takes versions 2 and 3: \
                 upgrade the coordinator first"
                    .into()
            )
        );
        assert!(admit(2, 1).unwrap_err().contains("takes versions 1:"));
    }
}
