//! The services an agent supervises, as it reports them: what each is doing,
//! how often it restarted, and when that means it is failing. Shared by the
//! agent protocol (`agent`) and the deploy machine's view of an agent.

/// A service restarted this often without staying up fails the deployment.
pub const RESTARTS_BEFORE_FAILING: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceStatus {
    /// A status this build does not know (a newer agent's).
    Unknown,
    Starting,
    Running,
    Exited,
    Stopped,
    /// Exited more often than the restart policy allows: the agent gave up on it.
    Failed,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Unknown => "unknown",
            ServiceStatus::Starting => "starting",
            ServiceStatus::Running => "running",
            ServiceStatus::Exited => "exited",
            ServiceStatus::Stopped => "stopped",
            ServiceStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub name: String,
    pub status: ServiceStatus,
    pub restarts: u32,
    /// Exit status or spawn error, for operators.
    pub detail: String,
}

impl ServiceState {
    /// Whether this service fails its deployment: the agent gave up on it, or
    /// it keeps exiting.
    pub fn is_failing(&self) -> bool {
        self.status == ServiceStatus::Failed
            || (self.restarts >= RESTARTS_BEFORE_FAILING && self.status != ServiceStatus::Running)
    }
}

/// The services an agent supervises and the configuration they run with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceReport {
    /// The configuration version the services were started with (0: none yet).
    pub config_version: u64,
    pub services: Vec<ServiceState>,
}

/// Most lines of a migration's output kept (the last ones), by the agent and
/// with the deployment.
pub const MIGRATION_OUTPUT_LINES: usize = 50;

/// A migration command the coordinator asks one agent to run, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationCommand {
    /// Unique per deployment: an agent runs a run id once, whatever is resent.
    pub run_id: String,
    /// Relative paths resolve against the image root.
    pub command: String,
    pub args: Vec<String>,
    /// The agent kills the command after this long and reports it failed.
    pub timeout: std::time::Duration,
}

/// A migration run as its agent reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationState {
    pub run_id: String,
    pub finished: bool,
    pub succeeded: bool,
    /// How it ended (`exit status: 3`, `timed out after 1m`), or that it runs.
    pub detail: String,
    /// The last lines of its output (stdout and stderr).
    pub output: Vec<String>,
}
