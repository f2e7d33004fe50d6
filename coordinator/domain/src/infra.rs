//! Infrastructure the fleet file implies: a load balancer per project and
//! environment (listener, health check, connection draining) and a DNS record per
//! environment of every project with a public name. `plan` compares it with the
//! cloud and changes nothing; `apply` makes the differences true and is idempotent.

use std::fmt;

use crate::cloud::{
    Cloud, CloudError, LoadBalancerSettings, LoadBalancerSpec, LoadBalancerState,
    load_balancer_name,
};
use crate::config::Fleet;

/// One difference between the fleet file and the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    CreateLoadBalancer(LoadBalancerSpec),
    ConfigureLoadBalancer {
        spec: LoadBalancerSpec,
        differences: Vec<String>,
    },
    UpsertRecord {
        record: String,
        load_balancer: String,
        current: Option<String>,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateLoadBalancer(spec) => write!(
                f,
                "create load balancer {} (port {} -> instance port {}, health check {}, draining {}s)",
                spec.name,
                spec.settings.listener_port,
                spec.settings.instance_port,
                spec.settings.health_target,
                spec.settings.draining_timeout_secs
            ),
            Change::ConfigureLoadBalancer { spec, differences } => {
                write!(
                    f,
                    "configure load balancer {}: {}",
                    spec.name,
                    differences.join("; ")
                )
            }
            Change::UpsertRecord {
                record,
                load_balancer,
                current,
            } => match current {
                Some(current) => write!(
                    f,
                    "point record {record} at {load_balancer} (now {current})"
                ),
                None => write!(f, "create record {record} -> {load_balancer}"),
            },
        }
    }
}

/// What the fleet file wants of a project's load balancer in an environment.
pub fn load_balancer_spec(
    fleet: &Fleet,
    project: &str,
    environment: &str,
) -> Option<LoadBalancerSpec> {
    let p = fleet.project(project)?;
    let env = fleet.environments.get(environment)?;
    let check = &p.health_check;
    // ELB's limits: interval 5-300 s, timeout 2-60 s and under the interval, thresholds 2-10.
    let interval = (check.interval.as_secs_f64().ceil() as u32).clamp(5, 300);
    let timeout = (check.timeout.as_secs_f64().ceil() as u32)
        .clamp(2, 60)
        .min(interval - 1);
    Some(LoadBalancerSpec {
        name: load_balancer_name(project, environment),
        settings: LoadBalancerSettings {
            listener_port: p.listener_port,
            instance_port: p.instance_port,
            health_target: format!("HTTP:{}{}", check.port, check.path),
            health_interval_secs: interval,
            health_timeout_secs: timeout,
            healthy_threshold: check.healthy_threshold.clamp(2, 10),
            unhealthy_threshold: check.unhealthy_threshold.clamp(2, 10),
            draining_timeout_secs: (p.deadlines.drain.as_secs() as u32).clamp(1, 3600),
        },
        subnets: env.aws.subnets.clone(),
        security_groups: env.aws.load_balancer_security_groups.clone(),
    })
}

/// The record naming one environment's cluster of a project: `ENV.NAME`.
pub fn environment_record(public_name: &str, environment: &str) -> String {
    format!("{environment}.{public_name}")
}

/// The differences between one wanted load balancer and what exists.
pub fn diff_load_balancer(
    spec: &LoadBalancerSpec,
    existing: Option<&LoadBalancerState>,
) -> Option<Change> {
    let Some(existing) = existing else {
        return Some(Change::CreateLoadBalancer(spec.clone()));
    };
    let (want, have) = (&spec.settings, &existing.settings);
    let mut differences = Vec::new();
    let mut compare = |what: &str, want: String, have: String| {
        if want != have {
            differences.push(format!("{what} {have} -> {want}"));
        }
    };
    compare(
        "health check",
        want.health_target.clone(),
        have.health_target.clone(),
    );
    compare(
        "interval",
        want.health_interval_secs.to_string(),
        have.health_interval_secs.to_string(),
    );
    compare(
        "timeout",
        want.health_timeout_secs.to_string(),
        have.health_timeout_secs.to_string(),
    );
    compare(
        "healthy threshold",
        want.healthy_threshold.to_string(),
        have.healthy_threshold.to_string(),
    );
    compare(
        "unhealthy threshold",
        want.unhealthy_threshold.to_string(),
        have.unhealthy_threshold.to_string(),
    );
    compare(
        "draining",
        want.draining_timeout_secs.to_string(),
        have.draining_timeout_secs.to_string(),
    );
    compare(
        "instance port",
        want.instance_port.to_string(),
        have.instance_port.to_string(),
    );
    if differences.is_empty() {
        None
    } else {
        Some(Change::ConfigureLoadBalancer {
            spec: spec.clone(),
            differences,
        })
    }
}

/// Compares the fleet file with the cloud; changes nothing.
pub async fn plan(fleet: &Fleet, cloud: &Cloud) -> Result<Vec<Change>, CloudError> {
    let mut changes = Vec::new();
    for (project, settings) in &fleet.projects {
        for environment in fleet.environments.keys() {
            let Some(spec) = load_balancer_spec(fleet, project, environment) else {
                continue;
            };
            let existing = cloud.load_balancer.describe(&spec.name).await?;
            changes.extend(diff_load_balancer(&spec, existing.as_ref()));
            if let Some(public) = &settings.public {
                let record = environment_record(&public.name, environment);
                let current = cloud.dns.target(&record).await?;
                if current.as_deref() != Some(spec.name.as_str()) {
                    changes.push(Change::UpsertRecord {
                        record,
                        load_balancer: spec.name.clone(),
                        current,
                    });
                }
            }
        }
    }
    Ok(changes)
}

/// Makes `changes` true, in order (records after the load balancers they name).
pub async fn apply(cloud: &Cloud, changes: &[Change]) -> Result<(), CloudError> {
    for change in changes
        .iter()
        .filter(|c| !matches!(c, Change::UpsertRecord { .. }))
    {
        match change {
            Change::CreateLoadBalancer(spec) => {
                cloud.load_balancer.create(spec).await?;
                cloud.load_balancer.configure(spec).await?;
            }
            Change::ConfigureLoadBalancer { spec, .. } => {
                cloud.load_balancer.configure(spec).await?
            }
            Change::UpsertRecord { .. } => {}
        }
    }
    for change in changes {
        if let Change::UpsertRecord {
            record,
            load_balancer,
            ..
        } = change
        {
            cloud.dns.upsert(record, load_balancer).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        Fleet::parse(crate::sample::SAMPLE_FLEET, "fleet.toml").unwrap()
    }

    #[test]
    fn the_spec_fits_elb_limits() {
        let spec = load_balancer_spec(&fleet(), "hello", "staging").unwrap();
        assert_eq!(spec.name, "slipway-hello-staging");
        assert_eq!(spec.settings.health_target, "HTTP:8080/health");
        // The sample checks every 200 ms; ELB's floor is 5 s.
        assert_eq!(spec.settings.health_interval_secs, 5);
        assert!(spec.settings.health_timeout_secs < spec.settings.health_interval_secs);
        assert_eq!(spec.settings.draining_timeout_secs, 10);
        assert_eq!(spec.settings.listener_port, 80);
    }

    #[test]
    fn a_missing_load_balancer_is_created_and_a_matching_one_left_alone() {
        let spec = load_balancer_spec(&fleet(), "hello", "prod1").unwrap();
        assert_eq!(
            diff_load_balancer(&spec, None),
            Some(Change::CreateLoadBalancer(spec.clone()))
        );
        let same = LoadBalancerState {
            endpoint: "x".into(),
            settings: spec.settings.clone(),
        };
        assert_eq!(diff_load_balancer(&spec, Some(&same)), None);
    }

    #[test]
    fn a_drifted_health_check_is_named() {
        let spec = load_balancer_spec(&fleet(), "hello", "prod1").unwrap();
        let mut drifted = LoadBalancerState {
            endpoint: "x".into(),
            settings: spec.settings.clone(),
        };
        drifted.settings.health_target = "TCP:8080".into();
        drifted.settings.draining_timeout_secs = 300;
        let Some(Change::ConfigureLoadBalancer { differences, .. }) =
            diff_load_balancer(&spec, Some(&drifted))
        else {
            panic!("expected a configure change");
        };
        assert_eq!(
            differences,
            vec![
                "health check TCP:8080 -> HTTP:8080/health",
                "draining 300 -> 10"
            ]
        );
    }
}
