//! Gates: what must be true before a release leaves the queue for an
//! environment (`requires_checks`, `requires_success_in` in the fleet file).
//! A gate never fails a deployment (DESIGN.md, settled questions): the
//! deployment waits at the head of its target's queue, saying which gate holds
//! it, and starts by itself once the gate opens; cancelling it lets the next
//! one through.

use std::collections::BTreeMap;

use crate::config::Environment;

/// The latest result of each named check on a release: passed or not.
pub type CheckResults = BTreeMap<String, bool>;

/// Why `project@version` may not start in an environment with `env`'s gates
/// yet, or None when every gate is open. `succeeded_in` says whether the
/// release has succeeded in an environment.
pub fn closed(
    env: &Environment,
    project: &str,
    version: &str,
    checks: &CheckResults,
    succeeded_in: impl Fn(&str) -> bool,
) -> Option<String> {
    let mut reasons = Vec::new();
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
            aws: Default::default(),
        }
    }

    #[test]
    fn each_closed_gate_is_named_until_all_are_open() {
        let mut checks = CheckResults::new();
        checks.insert("unit".into(), false);
        let nowhere = |_: &str| false;
        assert_eq!(
            closed(&prod(), "hello", "v2", &checks, nowhere).as_deref(),
            Some(
                "checks required on hello@v2: unit failed, integration not reported; hello@v2 has not succeeded in qaprod1 yet"
            )
        );
        checks.insert("unit".into(), true);
        checks.insert("integration".into(), true);
        assert_eq!(
            closed(&prod(), "hello", "v2", &checks, nowhere).as_deref(),
            Some("hello@v2 has not succeeded in qaprod1 yet")
        );
        assert_eq!(
            closed(&prod(), "hello", "v2", &checks, |e| e == "qaprod1"),
            None
        );
        let open = Environment {
            requires_checks: vec![],
            requires_success_in: vec![],
            ..prod()
        };
        assert_eq!(
            closed(&open, "hello", "v2", &CheckResults::new(), nowhere),
            None
        );
    }
}
