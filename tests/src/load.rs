//! A continuous HTTP load: one new connection per request, as many short-lived
//! clients would. Bounded in time, so a test that never finishes it does not
//! leave it running; a test that outlives the bound fails in `finish`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a load runs unless the test asks for longer (`Load::start_for`).
const MAX_RUN: Duration = Duration::from_secs(180);

/// What the load saw.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub requests: usize,
    /// (when, what went wrong)
    pub failures: Vec<String>,
    /// Response bodies in the order they arrived.
    pub bodies: Vec<String>,
    /// When each of `bodies` was asked for: wall-clock Unix milliseconds, the
    /// clock the coordinator stamps phases with.
    pub sent_at: Vec<i64>,
}

impl LoadReport {
    pub fn first_body(&self) -> &str {
        self.bodies.first().map(String::as_str).unwrap_or("")
    }

    pub fn last_body(&self) -> &str {
        self.bodies.last().map(String::as_str).unwrap_or("")
    }

    /// Bodies of the requests sent at or after `unix_ms`.
    pub fn answers_sent_after(&self, unix_ms: i64) -> Vec<&str> {
        self.sent_at
            .iter()
            .zip(&self.bodies)
            .filter(|(at, _)| **at >= unix_ms)
            .map(|(_, body)| body.as_str())
            .collect()
    }

    /// Fails the test, listing what went wrong, if any request failed.
    pub fn assert_no_failures(&self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} requests failed: {:?}",
            self.failures.len(),
            self.requests,
            self.failures
        );
    }
}

pub struct Load {
    limit: Duration,
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<LoadReport>>,
    thread: Option<JoinHandle<()>>,
}

/// One GET over a fresh connection; the body on a 200.
pub fn get(endpoint: &str, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(endpoint).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {response:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("status: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_string())
}

impl Load {
    pub fn start(endpoint: &str) -> Load {
        Load::start_for(endpoint, MAX_RUN)
    }

    /// A load that stops by itself after `limit` if the test has not finished it.
    pub fn start_for(endpoint: &str, limit: Duration) -> Load {
        Load::start_paced(endpoint, limit, Duration::from_millis(2))
    }

    /// A load that pauses `pause` between requests: many endpoints loaded at
    /// once on a small machine.
    pub fn start_paced(endpoint: &str, limit: Duration, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(LoadReport::default()));
        let (stop_flag, shared, endpoint) = (stop.clone(), report.clone(), endpoint.to_string());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !stop_flag.load(Ordering::SeqCst) && started.elapsed() < limit {
                let sent_at = crate::unix_ms();
                let result = get(&endpoint, "/");
                let mut report = shared.lock().expect("report");
                report.requests += 1;
                match result {
                    Ok(body) => {
                        report.bodies.push(body);
                        report.sent_at.push(sent_at);
                    }
                    Err(e) => report
                        .failures
                        .push(format!("+{:.2}s {e}", started.elapsed().as_secs_f64())),
                }
                drop(report);
                std::thread::sleep(pause);
            }
        });
        Load {
            limit,
            stop,
            report,
            thread: Some(thread),
        }
    }

    /// Waits until the load has made `count` more requests than now.
    pub fn wait_for_requests(&self, count: usize) {
        let target = self.requests() + count;
        crate::eventually("the load to make requests", Duration::from_secs(30), || {
            (self.requests() >= target).then_some(())
        });
    }

    /// How many requests so far.
    pub fn requests(&self) -> usize {
        self.report.lock().expect("report").requests
    }

    /// Stops the load and reports what it saw. Fails the test if the load had
    /// already stopped at its limit: then it did not cover the test's end.
    pub fn finish(mut self) -> LoadReport {
        let ran_out = self
            .thread
            .as_ref()
            .is_some_and(|thread| thread.is_finished());
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        assert!(
            !ran_out,
            "the load stopped at its {:?} limit before the test finished it: start it with Load::start_for and a longer limit",
            self.limit
        );
        self.report.lock().expect("report").clone()
    }
}
