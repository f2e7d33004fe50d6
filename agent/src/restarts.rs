//! When a service that exited is started again: the project's restart policy
//! (never, on failure, always), at most `limit` restarts within a sliding
//! `window`, each after a pause that doubles up to a cap. Pure: the supervisor
//! passes the time of each exit in, so the budget is tested without processes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Longest pause between two starts of a service.
pub const MAX_PAUSE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Never,
    OnFailure,
    Always,
}

/// What to do about a service that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Start it again after `pause`.
    Restart { pause: Duration },
    /// The policy does not restart it (never, or it succeeded under on-failure).
    Leave,
    /// It used up its restarts within the window: give up and report it failed.
    GiveUp { restarts: usize },
}

#[derive(Debug, Clone)]
pub struct RestartBudget {
    when: When,
    limit: usize,
    window: Duration,
    /// When the restarts inside the window happened.
    recent: VecDeque<Instant>,
    restarts: u32,
}

impl RestartBudget {
    /// A limit of 0 or a zero window would never restart: both count as 1.
    pub fn new(when: When, limit: u32, window: Duration) -> RestartBudget {
        RestartBudget {
            when,
            limit: limit.max(1) as usize,
            window: window.max(Duration::from_millis(1)),
            recent: VecDeque::new(),
            restarts: 0,
        }
    }

    /// Restarts so far, over the service's whole life.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// The service exited at `now` (`failed`: with an error status).
    pub fn after_exit(&mut self, failed: bool, now: Instant) -> AfterExit {
        let restart = match self.when {
            When::Never => false,
            When::OnFailure => failed,
            When::Always => true,
        };
        if !restart {
            return AfterExit::Leave;
        }
        self.recent
            .retain(|at| now.saturating_duration_since(*at) < self.window);
        if self.recent.len() >= self.limit {
            return AfterExit::GiveUp {
                restarts: self.recent.len(),
            };
        }
        self.recent.push_back(now);
        self.restarts += 1;
        let pause = Duration::from_millis(200 * 2u64.saturating_pow(self.restarts.min(10)));
        AfterExit::Restart {
            pause: pause.min(MAX_PAUSE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(after: AfterExit) -> Duration {
        match after {
            AfterExit::Restart { pause } => pause,
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    #[test]
    fn a_service_that_keeps_exiting_gets_its_limit_of_restarts_within_the_window() {
        let t0 = Instant::now();
        let mut budget = RestartBudget::new(When::Always, 3, Duration::from_secs(10));
        let pauses: Vec<Duration> = (0..3)
            .map(|i| pause(budget.after_exit(true, t0 + Duration::from_secs(i))))
            .collect();
        assert_eq!(
            pauses,
            [400, 800, 1600].map(Duration::from_millis),
            "each pause doubles"
        );
        assert_eq!(
            budget.after_exit(true, t0 + Duration::from_secs(3)),
            AfterExit::GiveUp { restarts: 3 }
        );
        assert_eq!(budget.restarts(), 3);
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let t0 = Instant::now();
        let mut budget = RestartBudget::new(When::OnFailure, 2, Duration::from_secs(10));
        pause(budget.after_exit(true, t0));
        pause(budget.after_exit(true, t0 + Duration::from_secs(1)));
        // The first restart leaves the window 10 s after it happened.
        assert!(matches!(
            budget.after_exit(true, t0 + Duration::from_millis(9_999)),
            AfterExit::GiveUp { .. }
        ));
        pause(budget.after_exit(true, t0 + Duration::from_secs(10)));
        assert_eq!(budget.restarts(), 3);
    }

    #[test]
    fn the_pause_stops_growing_at_its_cap() {
        let t0 = Instant::now();
        let mut budget = RestartBudget::new(When::Always, 100, Duration::from_millis(1));
        let last = (0..20)
            .map(|i| pause(budget.after_exit(true, t0 + Duration::from_secs(i))))
            .last();
        assert_eq!(last, Some(MAX_PAUSE));
    }

    #[test]
    fn the_policy_decides_whether_an_exit_restarts_at_all() {
        let now = Instant::now();
        let window = Duration::from_secs(10);
        let mut never = RestartBudget::new(When::Never, 3, window);
        assert_eq!(never.after_exit(true, now), AfterExit::Leave);
        let mut on_failure = RestartBudget::new(When::OnFailure, 3, window);
        assert_eq!(on_failure.after_exit(false, now), AfterExit::Leave);
        assert!(matches!(
            on_failure.after_exit(true, now),
            AfterExit::Restart { .. }
        ));
        let mut always = RestartBudget::new(When::Always, 3, window);
        assert!(matches!(
            always.after_exit(false, now),
            AfterExit::Restart { .. }
        ));
    }

    #[test]
    fn a_zero_limit_or_window_still_allows_one_restart() {
        let now = Instant::now();
        let mut budget = RestartBudget::new(When::Always, 0, Duration::ZERO);
        assert!(matches!(
            budget.after_exit(true, now),
            AfterExit::Restart { .. }
        ));
        assert!(matches!(
            budget.after_exit(true, now),
            AfterExit::GiveUp { restarts: 1 }
        ));
    }
}
