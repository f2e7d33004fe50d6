//! The agent protocol's messages to and from the domain's, both ways, so the
//! coordinator's hub and executor and the agent's supervisor never see a
//! protobuf struct. A message from the other side is checked here: protobuf's
//! zero defaults (a missing health check, a zero interval) become an error
//! naming the field, not a silent zero.

use std::collections::BTreeMap;
use std::time::Duration;

use slipway_domain::agent::{
    Configuration, LogChunk, MAX_TAIL_LINES, MIGRATION_OUTPUT_LINES, MigrationCommand,
    MigrationState, ServiceReport, ServiceState, ServiceStatus, TailAsk,
};
use slipway_domain::config::{HealthCheck, Restart, RestartWhen, Service};

use crate::v1 as pb;

/// A message that does not say what the domain needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Longest line of migration output or detail kept, in characters.
pub const MAX_LINE: usize = 1000;

fn cut(line: String) -> String {
    if line.chars().count() <= MAX_LINE {
        return line;
    }
    let mut kept: String = line.chars().take(MAX_LINE).collect();
    kept.push('…');
    kept
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

fn positive(field: &str, ms: u32) -> Result<Duration, Invalid> {
    if ms == 0 {
        return Err(Invalid(format!("configure.{field} must be above 0")));
    }
    Ok(Duration::from_millis(u64::from(ms)))
}

impl From<&Configuration> for pb::Configure {
    fn from(c: &Configuration) -> pb::Configure {
        let check = &c.health_check;
        pb::Configure {
            version: c.version,
            project: c.project.clone(),
            environment: c.environment.clone(),
            release_version: c.release_version.clone(),
            variables: c.variables.clone().into_iter().collect(),
            services: c
                .services
                .iter()
                .map(|s| pb::ServiceSpec {
                    name: s.name.clone(),
                    command: s.command.clone(),
                    args: s.args.clone(),
                })
                .collect(),
            health_check: Some(pb::HealthCheck {
                path: check.path.clone(),
                port: u32::from(check.port),
                interval_ms: millis(check.interval),
                timeout_ms: millis(check.timeout),
                healthy_threshold: check.healthy_threshold,
                unhealthy_threshold: check.unhealthy_threshold,
            }),
            restart: Some(pb::RestartPolicy {
                when: match c.restart.when {
                    RestartWhen::Always => pb::restart_policy::When::Always,
                    RestartWhen::OnFailure => pb::restart_policy::When::OnFailure,
                    RestartWhen::Never => pb::restart_policy::When::Never,
                } as i32,
                limit: c.restart.limit,
                window_ms: millis(c.restart.window),
            }),
        }
    }
}

impl TryFrom<pb::Configure> for Configuration {
    type Error = Invalid;

    fn try_from(c: pb::Configure) -> Result<Configuration, Invalid> {
        if c.version == 0 {
            return Err(Invalid("configure.version must be above 0".into()));
        }
        if c.services.is_empty() {
            return Err(Invalid("configure.services is empty".into()));
        }
        let services = c
            .services
            .into_iter()
            .map(|s| {
                if s.name.is_empty() || s.command.is_empty() {
                    return Err(Invalid(
                        "configure.services: every service needs a name and a command".into(),
                    ));
                }
                Ok(Service {
                    name: s.name,
                    command: s.command,
                    args: s.args,
                })
            })
            .collect::<Result<_, _>>()?;
        let check = c
            .health_check
            .ok_or_else(|| Invalid("configure.health_check is missing".into()))?;
        let port = u16::try_from(check.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                Invalid(format!(
                    "configure.health_check.port {} is not a port",
                    check.port
                ))
            })?;
        let health_check = HealthCheck {
            path: check.path,
            port,
            interval: positive("health_check.interval_ms", check.interval_ms)?,
            timeout: positive("health_check.timeout_ms", check.timeout_ms)?,
            healthy_threshold: check.healthy_threshold.max(1),
            unhealthy_threshold: check.unhealthy_threshold.max(1),
        };
        // No policy: the documented default (always, 5 within 60 s).
        let restart = match c.restart {
            None => Restart::default(),
            Some(policy) => Restart {
                when: match policy.when() {
                    pb::restart_policy::When::Never => RestartWhen::Never,
                    pb::restart_policy::When::OnFailure => RestartWhen::OnFailure,
                    pb::restart_policy::When::Always | pb::restart_policy::When::Unspecified => {
                        RestartWhen::Always
                    }
                },
                limit: policy.limit,
                window: positive("restart.window_ms", policy.window_ms)?,
            },
        };
        Ok(Configuration {
            version: c.version,
            project: c.project,
            environment: c.environment,
            release_version: c.release_version,
            variables: c.variables.into_iter().collect::<BTreeMap<_, _>>(),
            services,
            health_check,
            restart,
        })
    }
}

impl From<ServiceStatus> for pb::ServiceStatus {
    fn from(status: ServiceStatus) -> pb::ServiceStatus {
        match status {
            ServiceStatus::Unknown => pb::ServiceStatus::Unspecified,
            ServiceStatus::Starting => pb::ServiceStatus::Starting,
            ServiceStatus::Running => pb::ServiceStatus::Running,
            ServiceStatus::Exited => pb::ServiceStatus::Exited,
            ServiceStatus::Stopped => pb::ServiceStatus::Stopped,
            ServiceStatus::Failed => pb::ServiceStatus::Failed,
        }
    }
}

impl From<pb::ServiceStatus> for ServiceStatus {
    fn from(status: pb::ServiceStatus) -> ServiceStatus {
        match status {
            pb::ServiceStatus::Unspecified => ServiceStatus::Unknown,
            pb::ServiceStatus::Starting => ServiceStatus::Starting,
            pb::ServiceStatus::Running => ServiceStatus::Running,
            pb::ServiceStatus::Exited => ServiceStatus::Exited,
            pb::ServiceStatus::Stopped => ServiceStatus::Stopped,
            pb::ServiceStatus::Failed => ServiceStatus::Failed,
        }
    }
}

impl From<&ServiceReport> for pb::ServiceReport {
    fn from(report: &ServiceReport) -> pb::ServiceReport {
        pb::ServiceReport {
            config_version: report.config_version,
            services: report.services.iter().map(pb::ServiceState::from).collect(),
        }
    }
}

impl From<&ServiceState> for pb::ServiceState {
    fn from(s: &ServiceState) -> pb::ServiceState {
        pb::ServiceState {
            name: s.name.clone(),
            status: pb::ServiceStatus::from(s.status) as i32,
            restarts: s.restarts,
            detail: s.detail.clone(),
        }
    }
}

/// Reports come from agents of any version: a status this build does not know
/// is `Unknown`, not an error.
impl From<pb::ServiceReport> for ServiceReport {
    fn from(report: pb::ServiceReport) -> ServiceReport {
        ServiceReport {
            config_version: report.config_version,
            services: report
                .services
                .into_iter()
                .map(|s| ServiceState {
                    status: s.status().into(),
                    name: s.name,
                    restarts: s.restarts,
                    detail: s.detail,
                })
                .collect(),
        }
    }
}

impl From<&MigrationCommand> for pb::Migrate {
    fn from(m: &MigrationCommand) -> pb::Migrate {
        pb::Migrate {
            run_id: m.run_id.clone(),
            command: m.command.clone(),
            args: m.args.clone(),
            timeout_ms: millis(m.timeout),
        }
    }
}

impl TryFrom<pb::Migrate> for MigrationCommand {
    type Error = Invalid;

    fn try_from(m: pb::Migrate) -> Result<MigrationCommand, Invalid> {
        if m.run_id.is_empty() || m.command.trim().is_empty() {
            return Err(Invalid("migrate needs a run_id and a command".into()));
        }
        Ok(MigrationCommand {
            timeout: positive("migrate.timeout_ms", m.timeout_ms)?,
            run_id: m.run_id,
            command: m.command,
            args: m.args,
        })
    }
}

impl From<&TailAsk> for pb::TailLogs {
    fn from(t: &TailAsk) -> pb::TailLogs {
        pb::TailLogs {
            request: t.request,
            service: t.service.clone().unwrap_or_default(),
            lines: t.lines,
            follow: t.follow,
        }
    }
}

/// From the coordinator: at most `MAX_TAIL_LINES` lines.
impl From<pb::TailLogs> for TailAsk {
    fn from(t: pb::TailLogs) -> TailAsk {
        TailAsk {
            request: t.request,
            service: Some(t.service).filter(|s| !s.is_empty()),
            lines: t.lines.min(MAX_TAIL_LINES),
            follow: t.follow,
        }
    }
}

impl From<&LogChunk> for pb::LogLines {
    fn from(c: &LogChunk) -> pb::LogLines {
        pb::LogLines {
            request: c.request,
            service: c.service.clone(),
            lines: c.lines.clone(),
            done: c.done,
            error: c.error.clone().unwrap_or_default(),
        }
    }
}

/// From an agent: lines cut to what is kept, at most `MAX_TAIL_LINES`.
impl From<pb::LogLines> for LogChunk {
    fn from(l: pb::LogLines) -> LogChunk {
        LogChunk {
            request: l.request,
            service: cut(l.service),
            lines: l
                .lines
                .into_iter()
                .take(MAX_TAIL_LINES as usize)
                .map(cut)
                .collect(),
            done: l.done,
            error: Some(cut(l.error)).filter(|e| !e.is_empty()),
        }
    }
}

impl From<&[MigrationState]> for pb::MigrationReport {
    fn from(runs: &[MigrationState]) -> pb::MigrationReport {
        pb::MigrationReport {
            runs: runs
                .iter()
                .map(|r| pb::MigrationState {
                    run_id: r.run_id.clone(),
                    finished: r.finished,
                    succeeded: r.succeeded,
                    detail: r.detail.clone(),
                    output: r.output.clone(),
                })
                .collect(),
        }
    }
}

/// From an agent of any version: output beyond what is kept is dropped here.
impl From<pb::MigrationReport> for Vec<MigrationState> {
    fn from(report: pb::MigrationReport) -> Vec<MigrationState> {
        report
            .runs
            .into_iter()
            .map(|r| {
                let skip = r.output.len().saturating_sub(MIGRATION_OUTPUT_LINES);
                MigrationState {
                    run_id: r.run_id,
                    finished: r.finished,
                    succeeded: r.finished && r.succeeded,
                    detail: cut(r.detail),
                    output: r.output.into_iter().skip(skip).map(cut).collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_domain::config::Fleet;
    use slipway_domain::sample::SAMPLE_FLEET;

    fn configuration() -> Configuration {
        let fleet = Fleet::parse(SAMPLE_FLEET, "sample").unwrap();
        let project = &fleet.projects["hello"];
        Configuration {
            version: 7,
            project: "hello".into(),
            environment: "staging".into(),
            release_version: "v2".into(),
            variables: BTreeMap::from([("GREETING".into(), "hi".into())]),
            services: project.services.clone(),
            health_check: project.health_check.clone(),
            restart: project.restart,
        }
    }

    #[test]
    fn a_configuration_survives_the_wire() {
        let sent = configuration();
        let received = Configuration::try_from(pb::Configure::from(&sent)).unwrap();
        assert_eq!(received, sent);
    }

    #[test]
    fn protobuf_zero_defaults_are_named_not_used() {
        let wire = pb::Configure::from(&configuration());
        let cases: [(&str, fn(&mut pb::Configure)); 5] = [
            ("configure.version", |c| c.version = 0),
            ("configure.services", |c| c.services.clear()),
            ("configure.health_check is missing", |c| {
                c.health_check = None
            }),
            ("health_check.interval_ms", |c| {
                if let Some(h) = c.health_check.as_mut() {
                    h.interval_ms = 0
                }
            }),
            ("health_check.port 70000", |c| {
                if let Some(h) = c.health_check.as_mut() {
                    h.port = 70_000
                }
            }),
        ];
        for (named, break_it) in cases {
            let mut broken = wire.clone();
            break_it(&mut broken);
            let err = Configuration::try_from(broken).unwrap_err().to_string();
            assert!(err.contains(named), "{named}: {err}");
        }
        let mut no_policy = wire;
        no_policy.restart = None;
        let c = Configuration::try_from(no_policy).unwrap();
        assert_eq!(c.restart, Restart::default());
    }

    #[test]
    fn a_status_from_a_newer_agent_reads_as_unknown() {
        let report = pb::ServiceReport {
            config_version: 3,
            services: vec![pb::ServiceState {
                name: "web".into(),
                status: 99,
                restarts: 0,
                detail: String::new(),
            }],
        };
        let report = ServiceReport::from(report);
        assert_eq!(report.services[0].status, ServiceStatus::Unknown);
        let back = pb::ServiceReport::from(&report);
        assert_eq!(back.services[0].status(), pb::ServiceStatus::Unspecified);
    }
}
