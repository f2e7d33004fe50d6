//! A failure worth one line to the user, and the exit code it ends with.
//!
//! Exit codes are part of the CLI's interface (CI branches on them): they are
//! listed in `slipway --help` and README, and each is produced by a test.

/// How a command ended. The numbers never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Any failure not named below (the cloud failed, a file is unwritable…).
    Failed = 1,
    /// The command line is wrong (unknown flag, a bad duration).
    Usage = 2,
    /// The deployment rolled back.
    RolledBack = 3,
    /// The coordinator refused: the role or its scope, an invalid request, or
    /// a state that does not allow it (a finished deployment cannot be cancelled).
    Refused = 4,
    /// A project, environment, release, deployment or secret does not exist.
    NotFound = 5,
    /// The deployment was cancelled.
    Cancelled = 6,
    /// `--timeout` passed before the deployment finished; it goes on.
    TimedOut = 7,
    /// The coordinator could not be reached, or its certificate not trusted.
    Unreachable = 8,
    /// The wait was interrupted (Ctrl-C, or the coordinator went away) while
    /// the deployment was still in flight; it goes on.
    InFlight = 9,
}

/// For `--help` and README: each code and when it happens.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (a waited deployment succeeded)
  1  failed: any failure not listed below
  2  usage: the command line is wrong
  3  rolled back: the waited deployment rolled back
  4  refused: by role, scope or validation, or the state does not allow it
  5  not found: no such project, environment, release, deployment or secret
  6  cancelled: the waited deployment was cancelled
  7  timed out: --timeout passed first; the deployment goes on
  8  unreachable: cannot reach or trust the coordinator
  9  in flight: the wait was interrupted; the deployment goes on";

#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit: Exit,
}

impl Failure {
    pub fn new(message: impl Into<String>, exit: Exit) -> Failure {
        Failure {
            message: message.into(),
            exit,
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(message, Exit::Usage)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::new(format!("{e:#}"), Exit::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_text_lists_every_code_once_with_its_number() {
        let all = [
            Exit::Failed,
            Exit::Usage,
            Exit::RolledBack,
            Exit::Refused,
            Exit::NotFound,
            Exit::Cancelled,
            Exit::TimedOut,
            Exit::Unreachable,
            Exit::InFlight,
        ];
        for exit in all {
            let line = format!("\n  {}  ", exit as u8);
            assert_eq!(EXIT_CODES.matches(&line).count(), 1, "{exit:?}");
        }
        assert_eq!(EXIT_CODES.lines().count(), all.len() + 2);
    }
}
