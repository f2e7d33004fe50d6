//! What Prometheus scrapes from `/metrics`: counters and histograms the
//! coordinator's parts move as they work, rendered in the Prometheus text
//! exposition format (version 0.0.4) together with the gauges the dashboard
//! reads at scrape time. Names and labels follow Prometheus' conventions:
//! `slipway_` prefix, base units (seconds), `_total` for counters.
//!
//! Counters start at zero with the process, as Prometheus expects (`rate()`
//! handles the reset); what must survive a restart is in the store.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::store::{Batch, Epoch, Range, Store, StoreError, Table};

/// Bucket bounds (seconds) for deployment phases: booting takes seconds,
/// draining up to minutes.
const PHASE_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];
/// Bucket bounds (seconds) for store writes: a flushed batch takes about a
/// millisecond on a local disk, a replicated database tens.
const WRITE_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A counter family: one value per label set.
#[derive(Debug)]
pub struct Counters {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl Counters {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Counters {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds one to the counter of `label_values` (in the family's label order).
    pub fn inc(&self, label_values: &[&str]) {
        debug_assert_eq!(label_values.len(), self.labels.len(), "{}", self.name);
        let key = label_values.iter().map(|v| v.to_string()).collect();
        *self
            .values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        for (key, value) in values.iter() {
            sample(out, self.name, &pairs(self.labels, key), *value as f64);
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Observations at or below each bound (not yet cumulative).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A histogram family.
#[derive(Debug)]
pub struct Histograms {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    values: Mutex<BTreeMap<Vec<String>, Histogram>>,
}

impl Histograms {
    const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Histograms {
            name,
            help,
            labels,
            bounds,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn observe(&self, label_values: &[&str], seconds: f64) {
        debug_assert_eq!(label_values.len(), self.labels.len(), "{}", self.name);
        let key = label_values.iter().map(|v| v.to_string()).collect();
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let h = values.entry(key).or_insert_with(|| Histogram {
            counts: vec![0; self.bounds.len()],
            ..Histogram::default()
        });
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            h.counts[i] += 1;
        }
        h.sum += seconds;
        h.count += 1;
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = format!("{}_bucket", self.name);
        for (key, h) in values.iter() {
            let labels = pairs(self.labels, key);
            let mut cumulative = 0;
            for (bound, count) in self.bounds.iter().zip(&h.counts) {
                cumulative += count;
                let mut with_le = labels.clone();
                with_le.push(("le", bound.to_string()));
                sample(out, &bucket, &with_le, cumulative as f64);
            }
            let mut with_le = labels.clone();
            with_le.push(("le", "+Inf".to_string()));
            sample(out, &bucket, &with_le, h.count as f64);
            sample(out, &format!("{}_sum", self.name), &labels, h.sum);
            sample(
                out,
                &format!("{}_count", self.name),
                &labels,
                h.count as f64,
            );
        }
    }
}

fn pairs(names: &'static [&'static str], values: &[String]) -> Vec<(&'static str, String)> {
    names.iter().copied().zip(values.iter().cloned()).collect()
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn sample(out: &mut String, name: &str, labels: &[(&str, String)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A gauge family whose values are read when scraped.
pub struct Gauges<'a> {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    pub values: Vec<(Vec<&'a str>, f64)>,
}

impl Gauges<'_> {
    pub fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "gauge");
        for (key, value) in &self.values {
            let labels: Vec<(&str, String)> = self
                .labels
                .iter()
                .copied()
                .zip(key.iter().map(|v| v.to_string()))
                .collect();
            sample(out, self.name, &labels, *value);
        }
    }
}

/// Every counter and histogram the coordinator keeps.
#[derive(Debug)]
pub struct Metrics {
    pub deployments: Counters,
    pub phase_seconds: Histograms,
    pub agent_messages: Counters,
    pub notifications_delivered: Counters,
    pub notification_attempts_failed: Counters,
    pub notifications_given_up: Counters,
    pub store_write_seconds: Histograms,
    pub rpcs: Counters,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            deployments: Counters::new(
                "slipway_deployments_total",
                "Deployments that finished, by target and outcome (succeeded, rolled_back, cancelled).",
                &["project", "environment", "outcome"],
            ),
            phase_seconds: Histograms::new(
                "slipway_deployment_phase_duration_seconds",
                "How long deployments spent in each phase.",
                &["phase"],
                PHASE_BUCKETS,
            ),
            agent_messages: Counters::new(
                "slipway_agent_stream_messages_total",
                "Messages received on agents' streams, by kind.",
                &["kind"],
            ),
            notifications_delivered: Counters::new(
                "slipway_notifications_delivered_total",
                "Events a notification sink acknowledged.",
                &["sink"],
            ),
            notification_attempts_failed: Counters::new(
                "slipway_notification_attempts_failed_total",
                "Delivery attempts that failed (each is retried until the sink gives up).",
                &["sink"],
            ),
            notifications_given_up: Counters::new(
                "slipway_notifications_given_up_total",
                "Events a notification sink gave up delivering.",
                &["sink"],
            ),
            store_write_seconds: Histograms::new(
                "slipway_store_write_duration_seconds",
                "How long committing a batch to the store took (flushed).",
                &[],
                WRITE_BUCKETS,
            ),
            rpcs: Counters::new(
                "slipway_rpc_requests_total",
                "gRPC calls answered, by method and status code.",
                &["method", "code"],
            ),
        }
    }
}

impl Metrics {
    /// The families this struct keeps, in the text format.
    pub fn render(&self, out: &mut String) {
        self.deployments.render(out);
        self.phase_seconds.render(out);
        self.agent_messages.render(out);
        self.notifications_delivered.render(out);
        self.notification_attempts_failed.render(out);
        self.notifications_given_up.render(out);
        self.store_write_seconds.render(out);
        self.rpcs.render(out);
    }
}

/// Counts finished deployments and times phases from the events, for as
/// long as the coordinator runs. A phase's duration is the time between the
/// event that entered it and the next one of the same deployment; phases
/// entered before this process started are not timed.
pub fn count_events(
    metrics: Arc<Metrics>,
    events: &crate::events::Events,
) -> tokio::task::JoinHandle<()> {
    let mut told = events.subscribe();
    tokio::spawn(async move {
        let mut entered: std::collections::HashMap<String, (String, crate::clock::Millis)> =
            std::collections::HashMap::new();
        loop {
            let event = match told.recv().await {
                Ok(event) => event,
                // Events were missed: a phase in progress can no longer be timed.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    entered.clear();
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let (Some(phase), Some(id)) = (
                event.kind.strip_prefix("deployment."),
                event.about.deployment.as_deref(),
            ) else {
                continue;
            };
            // Only phases: not a cancel asked for, not an approval.
            if crate::deploy::Phase::parse(phase).is_none() {
                continue;
            }
            if let Some((previous, at)) = entered.remove(id) {
                metrics
                    .phase_seconds
                    .observe(&[&previous], (event.at - at).max(0) as f64 / 1000.0);
            }
            if matches!(phase, "succeeded" | "rolled_back" | "cancelled") {
                let project = event.about.project.as_deref().unwrap_or("");
                let environment = event.about.environment.as_deref().unwrap_or("");
                metrics.deployments.inc(&[project, environment, phase]);
            } else {
                entered.insert(id.to_string(), (phase.to_string(), event.at));
            }
        }
    })
}

/// A store that times its writes into `slipway_store_write_duration_seconds`.
#[derive(Debug)]
pub struct TimedStore {
    pub inner: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl Store for TimedStore {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(table, key).await
    }

    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let started = Instant::now();
        let written = self.inner.write(batch).await;
        self.metrics
            .store_write_seconds
            .observe(&[], started.elapsed().as_secs_f64());
        written
    }

    async fn range(
        &self,
        table: Table,
        range: Range,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.range(table, range).await
    }

    async fn next_id(&self) -> Result<u64, StoreError> {
        self.inner.next_id().await
    }

    async fn raise_ids(&self, above: u64) -> Result<(), StoreError> {
        self.inner.raise_ids(above).await
    }

    async fn claim_epoch(&self) -> Result<Epoch, StoreError> {
        self.inner.claim_epoch().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_escapes_labels_and_accumulates_buckets() {
        let m = Metrics::default();
        m.deployments.inc(&["hello", "prod\"1\\\n", "succeeded"]);
        m.deployments.inc(&["hello", "prod\"1\\\n", "succeeded"]);
        m.phase_seconds.observe(&["booting"], 0.3);
        m.phase_seconds.observe(&["booting"], 7.0);
        m.phase_seconds.observe(&["booting"], 5000.0);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("# TYPE slipway_deployments_total counter\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "slipway_deployments_total{project=\"hello\",environment=\"prod\\\"1\\\\\\n\",outcome=\"succeeded\"} 2\n"
            ),
            "{out}"
        );
        let bucket = |le: &str| {
            format!(
                "slipway_deployment_phase_duration_seconds_bucket{{phase=\"booting\",le=\"{le}\"}} "
            )
        };
        for (le, n) in [
            ("0.1", 0),
            ("0.5", 1),
            ("5", 1),
            ("10", 2),
            ("900", 2),
            ("+Inf", 3),
        ] {
            assert!(out.contains(&format!("{}{n}\n", bucket(le))), "{le}: {out}");
        }
        assert!(
            out.contains(
                "slipway_deployment_phase_duration_seconds_sum{phase=\"booting\"} 5007.3\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("slipway_deployment_phase_duration_seconds_count{phase=\"booting\"} 3\n"),
            "{out}"
        );
    }
}
