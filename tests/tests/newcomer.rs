//! The newcomer's path, as typed: README's run section and its walk-through,
//! from a fresh folder, with no `--data-dir` and no `--profile`. The commands
//! come from README.md itself, so the README cannot drift from what works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_tests::{TempDir, bin_dir, eventually, load, processes};

const README: &str = include_str!("../../README.md");

/// The commands of the first ```sh block after `heading`, comments stripped.
fn commands_under(heading: &str) -> Vec<String> {
    let after = README
        .split_once(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?} section"))
        .1;
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .unwrap_or_else(|| panic!("no sh block under {heading:?}"))
        .0;
    block
        .lines()
        .map(|line| line.split_once(" #").map_or(line, |(cmd, _)| cmd).trim())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// A fresh working folder where `target/debug` is the build's binaries, so the
/// README's relative paths work as typed, and a shell to type them in.
struct Folder {
    dir: TempDir,
    /// The coordinator's data dir, relative to the folder as typed.
    data_dir: PathBuf,
    /// Lines typed before each command (the README's alias).
    prelude: String,
    /// Where the coordinator's terminal output goes (outside the folder).
    output: TempDir,
}

impl Folder {
    fn new(name: &str, data_dir: &str) -> Folder {
        let dir = TempDir::new(name);
        std::fs::create_dir_all(dir.path().join("target")).unwrap();
        std::os::unix::fs::symlink(bin_dir(), dir.path().join("target/debug")).unwrap();
        Folder {
            dir,
            data_dir: PathBuf::from(data_dir),
            prelude: String::new(),
            output: TempDir::new(&format!("{name}-terminal")),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    /// A shell in the folder with a newcomer's environment: no SLIPWAY_* or
    /// AWS_* variable, only PATH and HOME.
    fn shell(&self, line: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .args(["-O", "expand_aliases", "-c"])
            .arg(format!("{}{line}", self.prelude))
            .current_dir(self.dir.path())
            .env_clear();
        for key in ["PATH", "HOME"] {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        command
    }

    /// Types `line` and waits for it, at most `deadline`.
    fn run(&self, line: &str, deadline: Duration) -> Output {
        let child = self
            .shell(line)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash");
        wait_with_deadline(child, deadline, line)
    }

    /// Types `line` and insists it succeeds; its standard output.
    fn ok(&self, line: &str) -> String {
        let out = self.run(line, Duration::from_secs(180));
        assert!(
            out.status.success(),
            "`{line}` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts the coordinator as the run section types it (on a free port),
    /// and waits for it to write the CLI's profile under `data_dir`.
    fn start_coordinator(&self, line: &str) -> Child {
        let terminal = std::fs::File::create(self.terminal()).unwrap();
        let mut child = self
            .shell(&format!("exec {line} --listen 127.0.0.1:0"))
            .stdin(Stdio::null())
            .stdout(terminal.try_clone().unwrap())
            .stderr(terminal)
            .spawn()
            .expect("bash");
        let profile = self.dir.path().join(&self.data_dir).join("profile.toml");
        // Ready as a person sees it: the profile written and the start-up
        // lines printed (the profile comes a moment before the last of them).
        eventually(
            "the coordinator to write its profile and say where it keeps its data",
            Duration::from_secs(90),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "`{line}` exited with {status}:\n{}",
                        std::fs::read_to_string(self.terminal()).unwrap_or_default()
                    );
                }
                let printed = std::fs::read_to_string(self.terminal()).unwrap_or_default();
                (profile.exists() && printed.contains("data dir: ")).then_some(())
            },
        );
        child
    }

    fn terminal(&self) -> PathBuf {
        self.output.path().join("terminal")
    }

    /// `status hello --output json`, through the CLI the way the README calls it.
    fn status(&self, cli: &str) -> Value {
        let text = self.ok(&format!("{cli} status hello --output json"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status is not JSON ({e}): {text}"))
    }

    fn endpoint(&self, cli: &str, env: &str) -> String {
        let status = self.status(cli);
        status["environments"]
            .as_array()
            .and_then(|envs| envs.iter().find(|e| e["name"] == env))
            .and_then(|e| e["endpoint"].as_str())
            .unwrap_or_else(|| panic!("no endpoint for {env} in {status}"))
            .to_string()
    }

    /// Asserts that `endpoint` answers from `version`.
    fn answers(&self, endpoint: &str, version: &str) {
        let body = load::get(endpoint, "/").unwrap_or_else(|e| panic!("GET {endpoint}: {e}"));
        assert!(
            body.contains(&format!("from {version} ")),
            "{endpoint} should answer from {version}: {body:?}"
        );
    }

    /// After `down`: the coordinator has exited and nothing of the folder runs.
    fn assert_all_stopped(&self, mut coordinator: Child) {
        let status = wait_with_deadline_status(&mut coordinator, Duration::from_secs(60));
        assert!(
            status.is_some(),
            "the coordinator still runs after `down`:\n{}",
            std::fs::read_to_string(self.terminal()).unwrap_or_default()
        );
        let left = eventually(
            "every process of the folder to end",
            Duration::from_secs(30),
            || {
                let left = processes::processes_in(&self.path());
                left.is_empty().then_some(left)
            },
        );
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

impl Drop for Folder {
    /// A test that failed half-way leaves nothing running: `down` stops the
    /// coordinator, the local cloud and its instances (a no-op after a `down`).
    fn drop(&mut self) {
        let _ = Command::new(bin_dir().join("slipway-coordinator"))
            .arg("--data-dir")
            .arg(self.dir.path().join(&self.data_dir))
            .arg("down")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn wait_with_deadline_status(
    child: &mut Child,
    deadline: Duration,
) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + deadline;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_with_deadline(child: Child, deadline: Duration, what: &str) -> Output {
    // wait_with_output reads both pipes to the end; a thread lets us bound it.
    let (sender, receiver) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(deadline) {
        Ok(output) => output.expect("output"),
        Err(_) => {
            processes::kill9(pid);
            panic!("`{what}` did not finish within {deadline:?}");
        }
    }
}

/// The README's first command, as written, minus the build (the suite built it).
fn readme_start_command() -> String {
    let run = commands_under("## Run it");
    assert_eq!(
        run,
        ["cargo build && target/debug/slipway-coordinator --dev"],
        "the test starts what README's run section says; update both together"
    );
    run[0]
        .split_once("&& ")
        .map(|(_, start)| start.to_string())
        .unwrap()
}

/// What the walk-through shows, in order; the test checks each as README says.
const WALK_THROUGH: [&str; 22] = [
    "alias slipway=target/debug/slipway",
    "slipway release list",
    "slipway deploy hello v1 --env staging --wait",
    "slipway status hello",
    "curl http://ENDPOINT/",
    "slipway deploy hello v2 --env staging --wait",
    "slipway deploy hello broken --env staging --wait",
    "slipway deployments",
    "slipway deploy hello v1 --env prod1 --wait",
    "slipway deploy hello v2 --env prod2 --wait",
    "slipway promote hello --to prod2",
    "slipway promote hello --to prod1",
    "slipway rollback hello --env staging --wait",
    "slipway deploy hello v2 --env qaprod1",
    "slipway deploy hello v1 --env qaprod1",
    "slipway queue",
    "slipway cancel d-8",
    "slipway show d-5",
    "slipway show d-7 --follow",
    "slipway deploy hello v3-bad-migration --env staging --wait",
    "slipway agents",
    "target/debug/slipway-coordinator down",
];

#[test]
fn the_readme_walk_through_works_as_typed_from_a_fresh_folder() {
    let mut folder = Folder::new("newcomer", ".slipway");
    let coordinator = folder.start_coordinator(&readme_start_command());
    let terminal = std::fs::read_to_string(folder.terminal()).unwrap();
    let data_dir = folder.path().join(".slipway");
    assert!(
        terminal.contains(&format!("data dir: {}\n", data_dir.display())),
        "the startup lines name the absolute data dir {}:\n{terminal}",
        data_dir.display()
    );

    let walk = commands_under("## Walk-through");
    assert_eq!(
        walk, WALK_THROUGH,
        "README's walk-through changed: update this test with it"
    );
    let cli = "target/debug/slipway";
    let public = |folder: &Folder| {
        let status = folder.status(cli);
        status["public_record"]["endpoint"]
            .as_str()
            .unwrap_or_else(|| panic!("no public endpoint in {status}"))
            .to_string()
    };
    let mut stopped = None;
    for line in &walk {
        match line.as_str() {
            alias if alias.starts_with("alias ") => folder.prelude = format!("{alias}\n"),
            "slipway release list" => {
                let out = folder.ok(line);
                for version in ["v1", "v2", "broken", "v3-bad-migration"] {
                    assert!(out.contains(version), "no {version} in:\n{out}");
                }
            }
            "curl http://ENDPOINT/" => {
                let endpoint = folder.endpoint(cli, "staging");
                let out = folder.ok(&line.replace("ENDPOINT", &endpoint));
                assert!(out.contains("from v1 "), "staging answers v1: {out:?}");
            }
            "slipway deploy hello broken --env staging --wait" => {
                let out = folder.run(line, Duration::from_secs(180));
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success(), "a broken release exits non-zero");
                assert!(stderr.contains("rolled_back"), "{stderr}");
                folder.answers(&folder.endpoint(cli, "staging"), "v2");
            }
            "slipway promote hello --to prod2" => {
                folder.ok(line);
                folder.answers(&public(&folder), "v2");
            }
            "slipway promote hello --to prod1" => {
                folder.ok(line);
                folder.answers(&public(&folder), "v1");
            }
            "slipway rollback hello --env staging --wait" => {
                folder.ok(line);
                folder.answers(&folder.endpoint(cli, "staging"), "v1");
            }
            "slipway deploy hello v2 --env qaprod1" => {
                let out = folder.ok(line);
                assert!(out.contains("queued d-7:"), "{out}");
            }
            "slipway deploy hello v1 --env qaprod1" => {
                let out = folder.ok(line);
                assert!(out.contains("queued d-8:"), "{out}");
            }
            "slipway queue" => {
                let out = folder.ok(line);
                assert!(out.contains("d-7") && out.contains("d-8"), "{out}");
            }
            "slipway cancel d-8" => {
                let out = folder.ok(line);
                assert!(out.contains("d-8: cancelled"), "{out}");
            }
            "slipway show d-5" => {
                let out = folder.ok(line);
                assert!(
                    out.contains("hello@v2 -> prod2")
                        && out.contains("migration of hello-db on i-")
                        && out.contains("| schema is now 2"),
                    "{out}"
                );
            }
            "slipway show d-7 --follow" => {
                folder.ok(line);
                let shown = folder.ok("target/debug/slipway show d-7");
                assert!(
                    shown.contains("migration of hello-db: skipped")
                        && shown.contains("already ran in d-5"),
                    "{shown}"
                );
            }
            "slipway deploy hello v3-bad-migration --env staging --wait" => {
                let out = folder.run(line, Duration::from_secs(180));
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(3), "rolled back: {stderr}");
                assert!(stderr.contains("exit status: 3"), "{stderr}");
                folder.answers(&folder.endpoint(cli, "staging"), "v1");
            }
            "target/debug/slipway-coordinator down" => {
                let out = folder.ok(line);
                assert!(out.contains("coordinator (pid"), "{out}");
                stopped = Some(());
            }
            plain => {
                folder.ok(plain);
            }
        }
        if line.ends_with("--env staging --wait") && line.contains(" v2 ") {
            folder.answers(&folder.endpoint(cli, "staging"), "v2");
        }
    }
    assert!(stopped.is_some(), "the walk-through ends with down");
    folder.assert_all_stopped(coordinator);
}

#[test]
fn a_relative_data_dir_works_from_the_folder_it_is_relative_to() {
    let folder = Folder::new("relative", "sub/dir");
    let coordinator =
        folder.start_coordinator("target/debug/slipway-coordinator --dev --data-dir sub/dir");
    let terminal = std::fs::read_to_string(folder.terminal()).unwrap();
    assert!(
        terminal.contains(&format!(
            "data dir: {}\n",
            folder.path().join("sub/dir").display()
        )),
        "{terminal}"
    );
    let cli = "target/debug/slipway --profile sub/dir/profile.toml";
    folder.ok(&format!("{cli} deploy hello v1 --env staging --wait"));
    folder.answers(&folder.endpoint(cli, "staging"), "v1");
    let out = folder.ok("target/debug/slipway-coordinator --data-dir sub/dir down");
    assert!(out.contains("coordinator (pid"), "{out}");
    folder.assert_all_stopped(coordinator);
}
