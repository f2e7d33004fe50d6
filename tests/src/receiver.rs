//! A real HTTP receiver for notifications (`tests/servers/receiver.py`): it
//! records every request and checks each signature itself.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::{TempDir, json_lines, python_tool};

pub struct Receiver {
    child: Child,
    pub port: u16,
    record: PathBuf,
    /// While this file exists, every request is answered 500.
    pub failing: PathBuf,
    _dir: TempDir,
}

impl Receiver {
    /// Signatures are checked against `key`; the first `fail` requests get 500.
    pub fn start(key: &str, fail: u32) -> Receiver {
        let dir = TempDir::new("receiver");
        let record = dir.path().join("requests.jsonl");
        let failing = dir.path().join("failing");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/receiver.py");
        let mut child = Command::new(python_tool("python3"))
            .arg(&script)
            .arg(&record)
            .args(["--key", key, "--fail", &fail.to_string(), "--fail-while"])
            .arg(&failing)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the webhook receiver (python3)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the receiver's port");
        let port = line.trim().parse().expect("a port on the first line");
        Receiver {
            child,
            port,
            record,
            failing,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        json_lines(&std::fs::read_to_string(&self.record).unwrap_or_default())
    }

    /// Answers 500 to everything until `fail(false)`.
    pub fn fail(&self, failing: bool) {
        match failing {
            true => std::fs::write(&self.failing, b"").expect("flag file"),
            false => std::fs::remove_file(&self.failing).expect("flag file"),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
