//! Answers the coordinator's requests for services' output: the last lines
//! of each service's log file (`output`), then, following, new lines as they
//! are written (a rotation starts the new file from its top). One task per
//! request, stopped when asked or when the stream it answers on ends.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_domain::agent::{LogChunk, TailAsk};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often a followed file is looked at.
const POLL: Duration = Duration::from_millis(250);
/// Lines per chunk sent.
const CHUNK: usize = 500;

pub struct Tails {
    logs: PathBuf,
    running: HashMap<u64, JoinHandle<()>>,
}

impl Drop for Tails {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

impl Tails {
    pub fn new(logs: &Path) -> Tails {
        Tails {
            logs: logs.to_path_buf(),
            running: HashMap::new(),
        }
    }

    pub fn start(&mut self, ask: TailAsk, out: mpsc::Sender<LogChunk>) {
        self.running.retain(|_, task| !task.is_finished());
        let logs = self.logs.clone();
        let request = ask.request;
        self.running
            .insert(request, tokio::spawn(answer(logs, ask, out)));
    }

    pub fn stop(&mut self, request: u64) {
        if let Some(task) = self.running.remove(&request) {
            task.abort();
        }
    }
}

/// The services with output kept: `NAME.log` in `logs`.
fn services(logs: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(logs)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".log")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn answer(logs: PathBuf, ask: TailAsk, out: mpsc::Sender<LogChunk>) {
    let chunk = |service: &str, lines: Vec<String>| LogChunk {
        request: ask.request,
        service: service.to_string(),
        lines,
        ..LogChunk::default()
    };
    let kept = services(&logs);
    let names = match &ask.service {
        None => kept,
        Some(name) if kept.contains(name) => vec![name.clone()],
        Some(name) => {
            let error = format!(
                "no output kept for service {name:?} on this instance (kept: {})",
                if kept.is_empty() {
                    "none".to_string()
                } else {
                    kept.join(", ")
                }
            );
            let _ = out
                .send(LogChunk {
                    done: true,
                    error: Some(error),
                    ..chunk(name, vec![])
                })
                .await;
            return;
        }
    };
    let mut offsets = Vec::new();
    for name in &names {
        let file = logs.join(format!("{name}.log"));
        let (lines, offset) = last_lines(&file, ask.lines as usize);
        offsets.push((name.clone(), file, offset, String::new()));
        for part in lines.chunks(CHUNK) {
            if out.send(chunk(name, part.to_vec())).await.is_err() {
                return;
            }
        }
    }
    if !ask.follow {
        let _ = out
            .send(LogChunk {
                done: true,
                ..chunk("", vec![])
            })
            .await;
        return;
    }
    loop {
        tokio::time::sleep(POLL).await;
        for (name, file, offset, partial) in &mut offsets {
            let lines = new_lines(file, offset, partial);
            for part in lines.chunks(CHUNK) {
                if out.send(chunk(name, part.to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The last `n` lines of `file` (with its rotated `.1` before it) and the
/// current file's length, where following starts.
fn last_lines(file: &Path, n: usize) -> (Vec<String>, u64) {
    let (mut lines, len) = tail_of(file, n);
    if lines.len() < n {
        let mut older = file.as_os_str().to_owned();
        older.push(".1");
        let (mut before, _) = tail_of(Path::new(&older), n - lines.len());
        before.extend(lines);
        lines = before;
    }
    (lines, len)
}

/// Bytes read at a time from the end of a file.
const BLOCK: u64 = 64 * 1024;

/// The last `n` lines of `path` and its length. It reads backwards a block at
/// a time until it holds `n` whole lines, so a tail costs about the lines it
/// returns, not the file: a service's log is up to 4 MiB, on every instance.
fn tail_of(path: &Path, n: usize) -> (Vec<String>, u64) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return (vec![], 0);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut start = len;
    let mut bytes: Vec<u8> = Vec::new();
    // n lines need n + 1 newlines before the end, the first ending the line
    // cut in two where reading started (unless it started at the top).
    while start > 0 && bytes.iter().filter(|b| **b == b'\n').count() <= n {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; (start - from) as usize];
        if f.seek(SeekFrom::Start(from)).is_err() || f.read_exact(&mut block).is_err() {
            break;
        }
        block.extend_from_slice(&bytes);
        bytes = block;
        start = from;
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    (lines[skip..].iter().map(|l| l.to_string()).collect(), len)
}

/// Complete lines written to `file` since `offset`; a shorter file was
/// rotated, so it is read from its top.
fn new_lines(file: &Path, offset: &mut u64, partial: &mut String) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(file) else {
        return vec![];
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len < *offset {
        *offset = 0;
        partial.clear();
    }
    if len == *offset || f.seek(SeekFrom::Start(*offset)).is_err() {
        return vec![];
    }
    let mut bytes = Vec::new();
    if f.take(len - *offset).read_to_end(&mut bytes).is_err() {
        return vec![];
    }
    *offset += bytes.len() as u64;
    partial.push_str(&String::from_utf8_lossy(&bytes));
    let Some(end) = partial.rfind('\n') else {
        return vec![];
    };
    let complete: Vec<String> = partial[..end].lines().map(str::to_string).collect();
    *partial = partial[end + 1..].to_string();
    complete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_span_a_rotation_and_following_reads_only_what_is_new() {
        let dir = std::env::temp_dir().join(format!("slipway-tail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("web.log");
        std::fs::write(dir.join("web.log.1"), "a\nb\nc\n").unwrap();
        std::fs::write(&file, "d\ne\n").unwrap();
        let (lines, mut offset) = last_lines(&file, 3);
        assert_eq!(lines, ["c", "d", "e"]);
        let mut partial = String::new();
        std::fs::write(&file, "d\ne\nf\ng-half").unwrap();
        assert_eq!(new_lines(&file, &mut offset, &mut partial), ["f"]);
        std::fs::write(&file, "d\ne\nf\ng-half, done\n").unwrap();
        assert_eq!(
            new_lines(&file, &mut offset, &mut partial),
            ["g-half, done"]
        );
        // Rotated: the new file from its top.
        std::fs::write(&file, "h\n").unwrap();
        assert_eq!(new_lines(&file, &mut offset, &mut partial), ["h"]);
        assert_eq!(services(&dir), ["web"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_last_lines_of_a_file_many_blocks_long_are_read_from_its_end() {
        let dir = std::env::temp_dir().join(format!("slipway-tail-big-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("talker.log");
        let text: String = (1..=100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&file, format!("{text}partial")).unwrap();
        let (lines, offset) = last_lines(&file, 3);
        assert_eq!(lines, ["line 99999", "line 100000", "partial"]);
        assert_eq!(offset, text.len() as u64 + 7);
        // Across a block boundary, and more lines than a block holds.
        let (lines, _) = last_lines(&file, 20_000);
        assert_eq!(lines.len(), 20_000);
        assert_eq!(lines[0], "line 80002");
        assert_eq!(lines[19_998], "line 100000");
        // A file shorter than asked for gives what it has, the older file's first.
        std::fs::write(dir.join("talker.log.1"), "old 1\nold 2\n").unwrap();
        std::fs::write(&file, "new\n").unwrap();
        assert_eq!(last_lines(&file, 10).0, ["old 1", "old 2", "new"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
