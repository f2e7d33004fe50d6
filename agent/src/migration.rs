//! Runs a migration command once per run id, with the variables the services
//! run with, and reports its output lines and how it ended. The coordinator
//! sends it to one instance of a deployment; a run id already known (a resend
//! after a reconnect) is not run again.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use slipway_domain::agent::{MIGRATION_OUTPUT_LINES, MigrationCommand, MigrationState};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::report::Report;

/// Longest output line kept, in characters.
const MAX_LINE: usize = 1000;

/// Starts `command` unless its run id is known; `env` is what services get.
pub fn start(
    command: MigrationCommand,
    env: Option<Vec<(String, String)>>,
    root: &Path,
    report: &watch::Sender<Report>,
) {
    // Reported either way: the coordinator waits for a report newer than
    // its command before it trusts what the runs list lacks.
    let mut known = false;
    report.send_modify(|r| {
        known = r.migrations.iter().any(|m| m.run_id == command.run_id);
        if !known {
            r.migrations.push(MigrationState {
                run_id: command.run_id.clone(),
                detail: "running".into(),
                ..MigrationState::default()
            });
        }
    });
    if known {
        info!(run_id = %command.run_id, "migration already known; not run again");
        return;
    }
    let Some(env) = env else {
        finish(
            report,
            &command.run_id,
            false,
            "no configuration runs on this instance to migrate with".into(),
        );
        return;
    };
    info!(run_id = %command.run_id, command = %command.command, "running migration");
    tokio::spawn(run(command, env, root.to_path_buf(), report.clone()));
}

async fn run(
    command: MigrationCommand,
    env: Vec<(String, String)>,
    root: PathBuf,
    report: watch::Sender<Report>,
) {
    let program = if Path::new(&command.command).is_absolute() {
        PathBuf::from(&command.command)
    } else {
        root.join(&command.command)
    };
    // One pipe for stdout and stderr, so the lines keep the order they were
    // written in (an error after the step it failed in).
    let spawned = std::io::pipe().and_then(|(reader, writer)| {
        let child = tokio::process::Command::new(&program)
            .args(&command.args)
            .envs(env)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .kill_on_drop(true)
            .spawn()?;
        Ok((child, reader))
    });
    let (mut child, reader) = match spawned {
        Ok(started) => started,
        Err(e) => {
            let detail = format!("cannot start {}: {e}", program.display());
            return finish(&report, &command.run_id, false, detail);
        }
    };
    let reading = tokio::task::spawn_blocking({
        let (report, run_id) = (report.clone(), command.run_id.clone());
        move || lines(reader, &report, &run_id)
    });
    let ran = tokio::time::timeout(command.timeout, child.wait()).await;
    let (succeeded, detail) = match ran {
        Ok(Ok(status)) => (status.success(), status.to_string()),
        Ok(Err(e)) => (false, format!("cannot wait for it: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            (
                false,
                format!("timed out after {}s", command.timeout.as_secs_f64()),
            )
        }
    };
    // The last lines are in before the end is reported (the pipe closes when
    // the command and anything it left behind exit; a straggler holding it
    // open past a second is not waited for).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), reading).await;
    if succeeded {
        info!(run_id = %command.run_id, "migration succeeded");
    } else {
        warn!(run_id = %command.run_id, %detail, "migration failed");
    }
    finish(&report, &command.run_id, succeeded, detail);
}

/// Reads the command's output line by line into the run's (the last lines kept).
fn lines(output: std::io::PipeReader, report: &watch::Sender<Report>, run_id: &str) {
    use std::io::BufRead;
    for line in std::io::BufReader::new(output).lines() {
        let Ok(line) = line else { return };
        let line: String = line.chars().take(MAX_LINE).collect();
        report.send_modify(|r| {
            if let Some(m) = r.migrations.iter_mut().find(|m| m.run_id == run_id) {
                m.output.push(line);
                let over = m.output.len().saturating_sub(MIGRATION_OUTPUT_LINES);
                m.output.drain(..over);
            }
        });
    }
}

fn finish(report: &watch::Sender<Report>, run_id: &str, succeeded: bool, detail: String) {
    report.send_modify(|r| {
        if let Some(m) = r.migrations.iter_mut().find(|m| m.run_id == run_id) {
            m.finished = true;
            m.succeeded = succeeded;
            m.detail = detail;
        }
    });
}
