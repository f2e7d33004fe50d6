//! `/metrics`: what the coordinator counts (`crate::metrics`) and gauges read
//! when Prometheus scrapes: queue depth and deployments in flight per target
//! (from the board), agents connected and lost (from the hub), events pending
//! per notification sink, open dashboard streams.

use std::sync::atomic::Ordering;

use hyper::{Response, StatusCode};

use super::{Body, Dashboard, board, failed, full};
use crate::clock::Millis;
use crate::deploy::machine::Connection;
use crate::metrics::Gauges;

/// `/metrics`: the counters the coordinator keeps, and gauges read now.
pub(super) async fn metrics(d: &Dashboard) -> Response<Body> {
    let mut out = String::new();
    d.metrics.render(&mut out);
    let board = d.board.snapshot();
    Gauges {
        name: "slipway_queue_depth",
        help: "Deployments waiting behind the one in flight, by target.",
        labels: &["project", "environment"],
        values: board
            .cells
            .iter()
            .map(|c| (target(c), c.queued as f64))
            .collect(),
    }
    .render(&mut out);
    Gauges {
        name: "slipway_deployment_in_flight",
        help: "Whether a deployment is in flight on the target (1) or not (0).",
        labels: &["project", "environment"],
        values: board
            .cells
            .iter()
            .map(|c| (target(c), f64::from(u8::from(c.in_flight.is_some()))))
            .collect(),
    }
    .render(&mut out);
    let now: Millis = d.clock.now();
    let lost_after = d
        .fleets
        .current()
        .fleet
        .coordinator
        .agent_lost_after
        .as_millis() as Millis;
    let (mut connected, mut lost) = (0, 0);
    for (_, view) in d.agents.views() {
        match Connection::of(Some(&view), now, lost_after) {
            Connection::Connected => connected += 1,
            Connection::Lost => lost += 1,
            Connection::Never => {}
        }
    }
    Gauges {
        name: "slipway_agents",
        help: "Agents the coordinator has heard from, by whether they are connected or lost (silent past agent_lost_after).",
        labels: &["state"],
        values: vec![(vec!["connected"], connected as f64), (vec!["lost"], lost as f64)],
    }
    .render(&mut out);
    let mut pending = Vec::new();
    match d.notifier.states().await {
        Ok((states, _)) => {
            for state in &states {
                match d.notifier.pending(state, 10_000, 0).await {
                    Ok((n, _)) => pending.push((state.name.clone(), n as f64)),
                    Err(e) => return failed(&e.to_string()),
                }
            }
        }
        Err(e) => return failed(&e.to_string()),
    }
    Gauges {
        name: "slipway_notification_events_pending",
        help: "Events a notification sink has yet to deliver (counted up to 10000).",
        labels: &["sink"],
        values: pending
            .iter()
            .map(|(s, n)| (vec![s.as_str()], *n))
            .collect(),
    }
    .render(&mut out);
    Gauges {
        name: "slipway_dashboard_streams",
        help: "Dashboard pages following the board's event stream now.",
        labels: &[],
        values: vec![(vec![], d.streams.load(Ordering::SeqCst) as f64)],
    }
    .render(&mut out);
    Gauges {
        name: "slipway_build_info",
        help: "The coordinator's version.",
        labels: &["version"],
        values: vec![(vec![env!("CARGO_PKG_VERSION")], 1.0)],
    }
    .render(&mut out);
    full(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        out,
    )
}

fn target(c: &board::Cell) -> Vec<&str> {
    vec![c.project.as_str(), c.environment.as_str()]
}
