//! The release queue: one FIFO per (project, environment) target, at most one
//! active deployment per target, different targets in parallel.
//!
//! The queue is not stored separately: it is the set of unfinished deployments,
//! ordered by arrival. Deriving it means it can never disagree with them.

use std::collections::BTreeMap;

use crate::deploy::{Deployment, Phase, Target};

/// One target's line: what runs now and who waits behind it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetQueue<'a> {
    pub target: Target,
    pub active: Option<&'a Deployment>,
    pub waiting: Vec<&'a Deployment>,
}

/// The queue view over every unfinished deployment.
#[derive(Debug)]
pub struct ReleaseQueue<'a> {
    targets: BTreeMap<Target, TargetQueue<'a>>,
}

impl<'a> ReleaseQueue<'a> {
    pub fn new(deployments: &'a [Deployment]) -> Self {
        let mut unfinished: Vec<&Deployment> = deployments
            .iter()
            .filter(|d| !d.phase.is_finished())
            .collect();
        unfinished.sort_by_key(|d| d.seq);
        let mut targets: BTreeMap<Target, TargetQueue<'a>> = BTreeMap::new();
        for d in unfinished {
            let line = targets.entry(d.target()).or_insert_with(|| TargetQueue {
                target: d.target(),
                active: None,
                waiting: Vec::new(),
            });
            if d.phase.is_active() && line.active.is_none() {
                line.active = Some(d);
            } else {
                line.waiting.push(d);
            }
        }
        ReleaseQueue { targets }
    }

    pub fn targets(&self) -> impl Iterator<Item = &TargetQueue<'a>> {
        self.targets.values()
    }

    /// The deployments that may start now: the head of each idle target.
    pub fn startable(&self) -> Vec<&'a Deployment> {
        self.targets
            .values()
            .filter(|line| line.active.is_none())
            .filter_map(|line| line.waiting.first().copied())
            .filter(|d| d.phase == Phase::Queued)
            .collect()
    }

    /// Who is ahead of deployment `id` on its target, nearest first.
    pub fn ahead_of(&self, id: &str) -> Vec<&'a Deployment> {
        for line in self.targets.values() {
            if let Some(pos) = line.waiting.iter().position(|d| d.id == id) {
                let mut ahead: Vec<&Deployment> = line.active.into_iter().collect();
                ahead.extend(line.waiting[..pos].iter().copied());
                ahead.reverse();
                return ahead;
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::PhaseEntry;
    use crate::release::Release;

    fn d(seq: u64, env: &str, phase: Phase) -> Deployment {
        let release = Release {
            project: "hello".into(),
            version: format!("v{seq}"),
            image_id: "ami-1".into(),
            registered_at: 0,
            registered_by: "ci".into(),
            owner_account: None,
            provenance: Default::default(),
        };
        let mut d = Deployment::queued(seq, &release, env, "ci".into(), 1, 0);
        d.phase = phase;
        d.history = vec![PhaseEntry { phase, at: 0 }];
        d
    }

    fn ids(list: Vec<&Deployment>) -> Vec<String> {
        list.into_iter().map(|d| d.id.clone()).collect()
    }

    #[test]
    fn one_target_runs_its_deployments_in_arrival_order() {
        let all = vec![
            d(3, "staging", Phase::Queued),
            d(1, "staging", Phase::Queued),
            d(2, "staging", Phase::Queued),
        ];
        let queue = ReleaseQueue::new(&all);
        assert_eq!(ids(queue.startable()), ["d-1"]);
        let line = queue.targets().next().unwrap();
        assert_eq!(ids(line.waiting.clone()), ["d-1", "d-2", "d-3"]);
    }

    #[test]
    fn an_active_deployment_blocks_its_target_only() {
        let all = vec![
            d(1, "staging", Phase::Ready),
            d(2, "staging", Phase::Queued),
            d(3, "prod1", Phase::Queued),
        ];
        let queue = ReleaseQueue::new(&all);
        assert_eq!(ids(queue.startable()), ["d-3"]);
    }

    #[test]
    fn finished_deployments_leave_the_queue() {
        let all = vec![
            d(1, "staging", Phase::Succeeded),
            d(2, "staging", Phase::Cancelled),
            d(3, "staging", Phase::Queued),
        ];
        assert_eq!(ids(ReleaseQueue::new(&all).startable()), ["d-3"]);
    }

    #[test]
    fn ahead_of_names_the_active_one_and_earlier_arrivals() {
        let all = vec![
            d(1, "staging", Phase::Attaching),
            d(2, "staging", Phase::Queued),
            d(3, "staging", Phase::Queued),
        ];
        let queue = ReleaseQueue::new(&all);
        assert_eq!(ids(queue.ahead_of("d-3")), ["d-2", "d-1"]);
        assert_eq!(ids(queue.ahead_of("d-2")), ["d-1"]);
        assert!(queue.ahead_of("d-1").is_empty());
    }
}
