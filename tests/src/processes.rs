//! Finding an instance's processes: the agent carries `--instance-id ID` on its
//! command line, and every service it starts has `SLIPWAY_INSTANCE_ID=ID`.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn read(pid: u32, file: &str) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/{file}"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The agent's pid of an instance.
pub fn agent_pid(instance: &str) -> Option<u32> {
    pids().into_iter().find(|pid| {
        let cmdline = read(*pid, "cmdline");
        !slipway_common::process::is_zombie(*pid)
            && cmdline
                .windows(2)
                .any(|w| w[0] == "--instance-id" && w[1] == instance)
    })
}

/// Every live process of an instance: its agent and its services.
pub fn instance_processes(instance: &str) -> Vec<u32> {
    let marker = format!("SLIPWAY_INSTANCE_ID={instance}");
    pids()
        .into_iter()
        .filter(|pid| !slipway_common::process::is_zombie(*pid))
        .filter(|pid| {
            let cmdline = read(*pid, "cmdline");
            cmdline
                .windows(2)
                .any(|w| w[0] == "--instance-id" && w[1] == instance)
                || read(*pid, "environ").contains(&marker)
        })
        .collect()
}

pub fn kill9(pid: u32) {
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// The service processes of an instance (everything but its agent).
pub fn service_pids(instance: &str) -> Vec<u32> {
    let agent = agent_pid(instance);
    instance_processes(instance)
        .into_iter()
        .filter(|pid| Some(*pid) != agent)
        .collect()
}

/// Freezes a process (SIGSTOP): it holds its sockets but says nothing.
pub fn freeze(pid: u32) {
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGSTOP);
}

/// Lets a frozen process run again (SIGCONT).
pub fn thaw(pid: u32) {
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
}

/// Live processes that belong to `dir`: whose working directory is inside it
/// or whose command line names a path inside it (the coordinator started
/// there, its local cloud, every agent and service of its instances).
pub fn processes_in(dir: &std::path::Path) -> Vec<(u32, String)> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let text = dir.to_string_lossy().into_owned();
    pids()
        .into_iter()
        .filter(|pid| *pid != std::process::id() && !slipway_common::process::is_zombie(*pid))
        .filter_map(|pid| {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            let cmdline = read(pid, "cmdline");
            let inside = cwd.is_some_and(|cwd| cwd.starts_with(&dir))
                || cmdline.iter().any(|arg| arg.contains(&text));
            inside.then(|| (pid, cmdline.join(" ")))
        })
        .collect()
}
