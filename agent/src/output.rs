//! A service's output: stdout and stderr through one pipe (so lines keep the
//! order they were written in), appended to `DIR/SERVICE.log`, which rotates
//! at `MAX_FILE` with one older file kept (`SERVICE.log.1`), and its last
//! lines kept in memory for the report of an exit.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::warn;

/// Size at which a service's log file rotates.
const MAX_FILE: u64 = 4 * 1024 * 1024;
/// Lines kept in memory, for the report of an exit.
const LAST_LINES: usize = 20;
/// Longest line kept, in characters.
const MAX_LINE: usize = 1000;
/// Lines an exit's report carries, and how much of each.
const TOLD_LINES: usize = 5;
const TOLD_LINE: usize = 200;

#[derive(Debug, Clone)]
pub struct Output {
    file: PathBuf,
    last: Arc<Mutex<VecDeque<String>>>,
}

impl Output {
    pub fn new(dir: &Path, service: &str) -> Output {
        Output {
            file: dir.join(format!("{service}.log")),
            last: Arc::default(),
        }
    }

    /// A pipe for one run of the service: (stdout, stderr) to give the
    /// process; its lines are read into the log until the process (and all it
    /// left behind) closes them. The last lines told are this run's.
    pub fn pipe(&self) -> std::io::Result<(std::io::PipeWriter, std::io::PipeWriter)> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let (reader, writer) = std::io::pipe()?;
        let output = self.clone();
        std::thread::spawn(move || output.read(reader));
        Ok((writer.try_clone()?, writer))
    }

    fn read(&self, reader: std::io::PipeReader) {
        let mut file = self.open();
        for line in std::io::BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            let line: String = line.chars().take(MAX_LINE).collect();
            if let Some(f) = file.as_mut() {
                let written = writeln!(f, "{line}");
                let full = f.metadata().map(|m| m.len() >= MAX_FILE).unwrap_or(false);
                if written.is_err() || full {
                    file = self.rotate();
                }
            }
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            last.push_back(line);
            while last.len() > LAST_LINES {
                last.pop_front();
            }
        }
    }

    fn open(&self) -> Option<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .inspect_err(|e| warn!(file = %self.file.display(), error = %e, "cannot keep the service's output"))
            .ok()
    }

    /// Moves the full file to `.1` (replacing the older one) and starts anew.
    fn rotate(&self) -> Option<std::fs::File> {
        let mut older = self.file.clone().into_os_string();
        older.push(".1");
        let _ = std::fs::rename(&self.file, older);
        self.open()
    }

    /// The last lines, for an exit's report: "; last output: a | b | c".
    pub fn told(&self) -> String {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let lines: Vec<String> = last
            .iter()
            .skip(last.len().saturating_sub(TOLD_LINES))
            .map(|l| l.chars().take(TOLD_LINE).collect())
            .collect();
        match lines.is_empty() {
            true => String::new(),
            false => format!("; last output: {}", lines.join(" | ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_and_the_last_ones_the_report() {
        let dir = std::env::temp_dir().join(format!("slipway-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let output = Output::new(&dir, "web");
        let (mut out, mut err) = output.pipe().unwrap();
        for i in 0..30 {
            writeln!(out, "line {i}").unwrap();
        }
        writeln!(err, "failed: no database").unwrap();
        drop((out, err));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !output.told().contains("no database") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            output.told(),
            "; last output: line 26 | line 27 | line 28 | line 29 | failed: no database"
        );
        let kept = std::fs::read_to_string(dir.join("web.log")).unwrap();
        assert_eq!(kept.lines().count(), 31);
        assert!(kept.starts_with("line 0\n"));

        // Full: it rotates, keeping one older file.
        output.rotate();
        assert!(dir.join("web.log.1").exists());
        assert_eq!(std::fs::metadata(dir.join("web.log")).unwrap().len(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
