//! The deployments' index: small entries, written in the same batch as the
//! deployment they point to, so every question asked per tick, per deploy or
//! per request reads a short key range instead of the whole history.
//!
//! Keys end in the zero-padded sequence number, so a range is in arrival
//! order and `newest_first` reads the latest first:
//! - `all/SEQ`: every deployment (history pages);
//! - `project/P/SEQ`, `target/P/E/SEQ`: history pages of a project, a target;
//! - `unfinished/SEQ`: the queue (dropped when the deployment finishes);
//! - `queue/P/E/SEQ`: one target's line, the same way: its first entry is
//!   the deployment running there, if any (only a line's head ever starts);
//! - `succeeded/P/E/SEQ`: what serves a target, and what served before;
//! - `outcome/P/E/SEQ`: the latest succeeded or rolled back (the board's alarm);
//! - `release/P/V/E/SEQ`: whether a release succeeded in an environment (gates).
//!
//! Names and versions hold no '/' (`config::check_name`, `release::check_version`),
//! so the parts never run into each other.

use serde::{Deserialize, Serialize};

use super::{Deployment, Phase};
use crate::store::{Record, Table};

/// One index entry: where it sits, and enough of the deployment to answer
/// without reading it (its id, its version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indexed {
    pub key: String,
    pub id: String,
    pub version: String,
}

impl Record for Indexed {
    const TABLE: Table = Table::DeploymentIndex;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// Marks a store whose index covers every deployment (see `Deployments::open`).
pub const BUILT: &str = "~built/2";

pub const ALL: &str = "all/";
pub const UNFINISHED: &str = "unfinished/";

pub const QUEUE: &str = "queue/";

pub fn queue(project: &str, environment: &str) -> String {
    format!("queue/{project}/{environment}/")
}

pub fn project(project: &str) -> String {
    format!("project/{project}/")
}

pub fn target(project: &str, environment: &str) -> String {
    format!("target/{project}/{environment}/")
}

pub fn succeeded(project: &str, environment: &str) -> String {
    format!("succeeded/{project}/{environment}/")
}

pub fn outcome(project: &str, environment: &str) -> String {
    format!("outcome/{project}/{environment}/")
}

pub fn release(project: &str, version: &str, environment: &str) -> String {
    format!("release/{project}/{version}/{environment}/")
}

/// A key of `prefix` for sequence number `seq`.
pub fn at(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:020}")
}

/// Every entry `d` has in its present phase.
pub fn entries(d: &Deployment) -> Vec<Indexed> {
    let (p, e) = (d.project.as_str(), d.environment.as_str());
    let mut prefixes = vec![ALL.to_string(), project(p), target(p, e)];
    if !d.phase.is_finished() {
        prefixes.push(UNFINISHED.into());
        prefixes.push(queue(p, e));
    }
    if d.phase == Phase::Succeeded {
        prefixes.push(succeeded(p, e));
        prefixes.push(release(p, &d.version, e));
    }
    if matches!(d.phase, Phase::Succeeded | Phase::RolledBack) {
        prefixes.push(outcome(p, e));
    }
    prefixes
        .into_iter()
        .map(|prefix| Indexed {
            key: at(&prefix, d.seq),
            id: d.id.clone(),
            version: d.version.clone(),
        })
        .collect()
}

/// The keys to delete and the entries to put when `before` (None: new)
/// becomes `after`.
pub fn changes(before: Option<&Deployment>, after: &Deployment) -> (Vec<String>, Vec<Indexed>) {
    let old = before.map(entries).unwrap_or_default();
    let new = entries(after);
    let gone = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.key == o.key))
        .map(|o| o.key.clone())
        .collect();
    let added = new.into_iter().filter(|n| !old.contains(n)).collect();
    (gone, added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::test_deployment;

    fn keys(entries: &[Indexed]) -> Vec<&str> {
        entries.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn a_deployment_leaves_the_queue_and_joins_what_served_when_it_succeeds() {
        let queued = test_deployment(Phase::Queued, 0, &[]);
        let seq = "00000000000000000007";
        let (gone, added) = changes(None, &queued);
        assert!(gone.is_empty());
        assert_eq!(
            keys(&added),
            [
                format!("all/{seq}"),
                format!("project/hello/{seq}"),
                format!("target/hello/staging/{seq}"),
                format!("unfinished/{seq}"),
                format!("queue/hello/staging/{seq}"),
            ]
        );
        assert!(added.iter().all(|e| e.id == "d-7" && e.version == "v2"));

        let mut running = queued.clone();
        running.phase = Phase::Launching;
        assert_eq!(changes(Some(&queued), &running), (vec![], vec![]));

        let mut done = running.clone();
        done.phase = Phase::Succeeded;
        let (gone, added) = changes(Some(&running), &done);
        assert_eq!(
            gone,
            [
                format!("unfinished/{seq}"),
                format!("queue/hello/staging/{seq}")
            ]
        );
        assert_eq!(
            keys(&added),
            [
                format!("succeeded/hello/staging/{seq}"),
                format!("release/hello/v2/staging/{seq}"),
                format!("outcome/hello/staging/{seq}"),
            ]
        );

        let mut rolled = running.clone();
        rolled.phase = Phase::RolledBack;
        let (_, added) = changes(Some(&running), &rolled);
        assert_eq!(keys(&added), [format!("outcome/hello/staging/{seq}")]);
    }

    #[test]
    fn keys_sort_by_arrival() {
        assert!(at(ALL, 9) < at(ALL, 10));
        assert!(at(&target("a", "b"), 99) < at(&target("a", "b"), 100));
    }
}
