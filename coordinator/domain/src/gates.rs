//! Gates: what must be true before a release leaves the queue for an
//! environment (`freeze`, `requires_checks`, `requires_success_in`,
//! `requires_approval` in the fleet file).
//! A gate never fails a deployment (DESIGN.md, settled questions): the
//! deployment waits at the head of its target's queue, saying which gate holds
//! it, and starts by itself once the gate opens; cancelling it lets the next
//! one through.

use std::collections::BTreeMap;

use crate::clock::Millis;
use crate::config::Environment;
use crate::deploy::Deployment;

/// The latest result of each named check on a release: passed or not.
pub type CheckResults = BTreeMap<String, bool>;

/// Whether `d` passes a freeze that holds until `until`: a rollback passes
/// any; an admin's override, the windows it was given for.
pub fn passes_freeze(d: &Deployment, until: Millis) -> bool {
    match (&d.passes_freeze, d.freeze_override_until) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(_), Some(limit)) => until <= limit,
    }
}

/// Why deployment `d` may not start at `now` in an environment with `env`'s
/// gates, or None when every gate is open. `succeeded_in` says whether its
/// release has succeeded in an environment.
pub fn closed(
    env: &Environment,
    d: &Deployment,
    checks: &CheckResults,
    succeeded_in: impl Fn(&str) -> bool,
    now: Millis,
) -> Option<String> {
    let (project, version) = (&d.project, &d.version);
    let mut reasons = Vec::new();
    if let Some(frozen) = crate::freeze::frozen(&env.freeze, now)
        && !passes_freeze(d, frozen.until)
    {
        reasons.push(frozen.said);
    }
    let missing: Vec<String> = env
        .requires_checks
        .iter()
        .filter_map(|name| match checks.get(name) {
            Some(true) => None,
            Some(false) => Some(format!("{name} failed")),
            None => Some(format!("{name} not reported")),
        })
        .collect();
    if !missing.is_empty() {
        reasons.push(format!(
            "checks required on {project}@{version}: {}",
            missing.join(", ")
        ));
    }
    let before: Vec<&str> = env
        .requires_success_in
        .iter()
        .map(String::as_str)
        .filter(|first| !succeeded_in(first))
        .collect();
    if !before.is_empty() {
        reasons.push(format!(
            "{project}@{version} has not succeeded in {} yet",
            before.join(" and ")
        ));
    }
    if env.requires_approval && d.approved_by.is_none() {
        reasons.push(format!(
            "approval by a deployer of {} other than {} (`slipway approve {}`)",
            d.environment,
            crate::deploy::requester(d),
            d.id
        ));
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prod() -> Environment {
        Environment {
            instances: 2,
            variables: BTreeMap::new(),
            inherits: None,
            requires_checks: vec!["unit".into(), "integration".into()],
            requires_success_in: vec!["qaprod1".into()],
            requires_approval: false,
            keep_previous: Default::default(),
            freeze: vec![],
            aws: Default::default(),
        }
    }

    /// `hello@v2` queued for prod1 by admin, `d-7`.
    fn v2() -> Deployment {
        let mut d = crate::deploy::test_deployment(crate::deploy::Phase::Queued, 0, &[]);
        d.environment = "prod1".into();
        d
    }

    #[test]
    fn each_closed_gate_is_named_until_all_are_open() {
        let mut checks = CheckResults::new();
        checks.insert("unit".into(), false);
        let nowhere = |_: &str| false;
        assert_eq!(
            closed(&prod(), &v2(), &checks, nowhere, 0).as_deref(),
            Some(
                "checks required on hello@v2: unit failed, integration not reported; hello@v2 has not succeeded in qaprod1 yet"
            )
        );
        checks.insert("unit".into(), true);
        checks.insert("integration".into(), true);
        assert_eq!(
            closed(&prod(), &v2(), &checks, nowhere, 0).as_deref(),
            Some("hello@v2 has not succeeded in qaprod1 yet")
        );
        assert_eq!(closed(&prod(), &v2(), &checks, |e| e == "qaprod1", 0), None);
        let open = Environment {
            requires_checks: vec![],
            requires_success_in: vec![],
            ..prod()
        };
        assert_eq!(closed(&open, &v2(), &CheckResults::new(), nowhere, 0), None);
    }

    #[test]
    fn an_approval_gate_names_who_may_open_it_until_someone_does() {
        let env = Environment {
            requires_checks: vec![],
            requires_success_in: vec![],
            requires_approval: true,
            ..prod()
        };
        let mut d = v2();
        let nowhere = |_: &str| false;
        assert_eq!(
            closed(&env, &d, &CheckResults::new(), nowhere, 0).as_deref(),
            Some(format!(
                "approval by a deployer of prod1 other than {} (`slipway approve d-7`)",
                d.requested_by
            ))
            .as_deref()
        );
        // A rollback says more in requested_by; the gate names the person.
        d.requested_by = "alice (rollback from v3)".into();
        assert_eq!(crate::deploy::requester(&d), "alice");
        assert!(
            closed(&env, &d, &CheckResults::new(), nowhere, 0)
                .is_some_and(|r| r.contains("other than alice (`slipway")),
        );
        d.approved_by = Some("bob".into());
        assert_eq!(closed(&env, &d, &CheckResults::new(), nowhere, 0), None);
    }

    #[test]
    fn a_freeze_holds_until_its_end_and_rollbacks_or_overrides_pass_it() {
        let weekend: crate::freeze::Freeze = toml::from_str::<toml::Value>(
            r#"w = { every = "Fri 16:00 - Mon 08:00", zone = "UTC" }"#,
        )
        .unwrap()["w"]
            .clone()
            .try_into()
            .unwrap();
        let env = Environment {
            requires_checks: vec![],
            requires_success_in: vec![],
            freeze: vec![weekend],
            ..prod()
        };
        // Saturday 2026-12-05 12:00 UTC, and the Monday 08:00 it ends.
        let (saturday, monday) = (1_796_472_000_000, 1_796_630_400_000);
        let mut d = v2();
        let nowhere = |_: &str| false;
        assert_eq!(
            closed(&env, &d, &CheckResults::new(), nowhere, saturday).as_deref(),
            Some("frozen until Mon 08:00 UTC")
        );
        assert_eq!(
            closed(&env, &d, &CheckResults::new(), nowhere, monday - 1).as_deref(),
            Some("frozen until Mon 08:00 UTC")
        );
        assert_eq!(
            closed(&env, &d, &CheckResults::new(), nowhere, monday),
            None
        );
        // An override passes this weekend's window, not next weekend's.
        d.passes_freeze = Some("freeze overridden by alice: incident 7".into());
        d.freeze_override_until = Some(monday);
        assert_eq!(
            closed(&env, &d, &CheckResults::new(), nowhere, saturday),
            None
        );
        let next_saturday = saturday + 7 * 24 * 3_600_000;
        assert_eq!(
            closed(&env, &d, &CheckResults::new(), nowhere, next_saturday).as_deref(),
            Some("frozen until Mon 08:00 UTC")
        );
        d.passes_freeze = Some("a rollback".into());
        d.freeze_override_until = None;
        assert_eq!(
            closed(&env, &d, &CheckResults::new(), nowhere, next_saturday),
            None
        );
    }
}
