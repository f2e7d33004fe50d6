//! What a new fleet file would change, as lines a person reads before
//! applying it: projects, environments and data stores added, removed or
//! changed, and each target's variables (the configuration its next
//! deployment gets). Pure: both fleets are already parsed and valid.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Fleet;

pub fn diff(old: &Fleet, new: &Fleet) -> Vec<String> {
    let mut changes = Vec::new();
    if old.coordinator != new.coordinator {
        changes.push("coordinator settings changed (takes a restart)".to_string());
    }
    if old.cloud != new.cloud {
        changes.push("cloud settings changed (takes a restart)".to_string());
    }
    named(
        &mut changes,
        "environment",
        &old.environments,
        &new.environments,
    );
    named(
        &mut changes,
        "data store",
        &old.data_stores,
        &new.data_stores,
    );
    named(&mut changes, "project", &old.projects, &new.projects);
    named(
        &mut changes,
        "notification",
        &old.notifications,
        &new.notifications,
    );
    for project in new
        .projects
        .keys()
        .filter(|p| old.projects.contains_key(*p))
    {
        for env in new
            .environments
            .keys()
            .filter(|e| old.environments.contains_key(*e))
        {
            let (was, now) = (old.variables(project, env), new.variables(project, env));
            for line in variables(&was, &now) {
                changes.push(format!("{project}/{env}: {line}"));
            }
        }
    }
    changes
}

/// Added, removed and changed entries of one kind.
fn named<T: PartialEq>(
    changes: &mut Vec<String>,
    kind: &str,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
) {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for name in names {
        match (old.get(name), new.get(name)) {
            (None, Some(_)) => changes.push(format!("{kind} {name} added")),
            (Some(_), None) => changes.push(format!("{kind} {name} removed")),
            (Some(a), Some(b)) if a != b => changes.push(format!("{kind} {name} changed")),
            _ => {}
        }
    }
}

fn variables(was: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    let keys: BTreeSet<&String> = was.keys().chain(now.keys()).collect();
    keys.into_iter()
        .filter_map(|key| match (was.get(key), now.get(key)) {
            (None, Some(v)) => Some(format!("+ {key}={v}")),
            (Some(_), None) => Some(format!("- {key}")),
            (Some(a), Some(b)) if a != b => Some(format!("~ {key}: {a} -> {b}")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::SAMPLE_FLEET;

    fn fleet(text: &str) -> Fleet {
        Fleet::parse(text, "fleet.toml").unwrap()
    }

    #[test]
    fn the_same_fleet_changes_nothing() {
        assert!(diff(&fleet(SAMPLE_FLEET), &fleet(SAMPLE_FLEET)).is_empty());
    }

    #[test]
    fn a_changed_variable_shows_on_every_target_it_reaches() {
        let old = fleet(SAMPLE_FLEET);
        let new = fleet(&SAMPLE_FLEET.replace(
            "variables = { HELLO_DB = \"../../stores/hello-db\" }",
            "variables = { HELLO_DB = \"../../stores/hello-db-2\", POOL = \"5\" }",
        ));
        let changes = diff(&old, &new);
        assert!(
            changes.contains(&"data store hello-db changed".to_string()),
            "{changes:?}"
        );
        for env in ["qaprod1", "prod1", "prod2"] {
            assert!(
                changes.contains(&format!(
                    "hello/{env}: ~ HELLO_DB: ../../stores/hello-db -> ../../stores/hello-db-2"
                )),
                "{changes:?}"
            );
            assert!(
                changes.contains(&format!("hello/{env}: + POOL=5")),
                "{changes:?}"
            );
        }
        assert!(
            !changes.iter().any(|c| c.starts_with("hello/staging")),
            "{changes:?}"
        );
    }

    #[test]
    fn added_and_removed_environments_and_projects_are_named() {
        let old = fleet(SAMPLE_FLEET);
        // A migrating project needs a store in every environment: hello-db
        // serves prod3 too.
        let sample = SAMPLE_FLEET.replace(
            "environments = [\"qaprod1\", \"prod1\", \"prod2\"]",
            "environments = [\"qaprod1\", \"prod1\", \"prod2\", \"prod3\"]",
        );
        let new = fleet(&format!(
            "{sample}\n[environments.prod3]\ninstances = 1\n\n[projects.admin]\ninstance_port = 8080\nservices = [{{ name = \"web\", command = \"bin/app\" }}]\nhealth_check = {{ path = \"/health\", port = 8080 }}\n"
        ));
        let changes = diff(&old, &new);
        assert!(
            changes.contains(&"environment prod3 added".to_string()),
            "{changes:?}"
        );
        assert!(
            changes.contains(&"project admin added".to_string()),
            "{changes:?}"
        );
        let back = diff(&new, &old);
        assert!(
            back.contains(&"project admin removed".to_string()),
            "{back:?}"
        );
    }
}
