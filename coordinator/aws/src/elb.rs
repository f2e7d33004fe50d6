//! Classic ELB: one load balancer per project and environment.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancing::types::{
    ConnectionDraining, HealthCheck, Instance as ElbInstance, Listener, LoadBalancerAttributes,
};

use super::AwsCloud;
use super::error::aws;
use slipway_domain::cloud::{
    CloudError, LoadBalancer, LoadBalancerSettings, LoadBalancerSpec, LoadBalancerState,
};
use slipway_domain::deploy::machine::MemberState;

fn build_error(action: &str, e: impl std::fmt::Display) -> CloudError {
    CloudError::Invalid(format!("{action}: {e}"))
}

fn instances(ids: &[String]) -> Vec<ElbInstance> {
    ids.iter()
        .map(|id| ElbInstance::builder().instance_id(id).build())
        .collect()
}

impl AwsCloud {
    /// The load balancer's DNS name and canonical hosted zone id, if it exists.
    pub(super) async fn load_balancer_dns(
        &self,
        name: &str,
    ) -> Result<Option<(String, Option<String>)>, CloudError> {
        match self
            .elb
            .describe_load_balancers()
            .load_balancer_names(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.load_balancer_descriptions().first().map(|d| {
                (
                    d.dns_name().unwrap_or_default().to_string(),
                    d.canonical_hosted_zone_name_id().map(str::to_string),
                )
            })),
            Err(e) => match aws("DescribeLoadBalancers", e) {
                CloudError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Every Slipway load balancer: (name, DNS name).
    pub(super) async fn slipway_load_balancers(&self) -> Result<Vec<(String, String)>, CloudError> {
        let mut found = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .elb
                .describe_load_balancers()
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| aws("DescribeLoadBalancers", e))?;
            for d in page.load_balancer_descriptions() {
                if let (Some(name), Some(dns)) = (d.load_balancer_name(), d.dns_name())
                    && name.starts_with("slipway-")
                {
                    found.push((name.to_string(), dns.to_string()));
                }
            }
            match page.next_marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_string()),
                _ => return Ok(found),
            }
        }
    }
}

#[async_trait]
impl LoadBalancer for AwsCloud {
    async fn describe(&self, name: &str) -> Result<Option<LoadBalancerState>, CloudError> {
        let out = match self
            .elb
            .describe_load_balancers()
            .load_balancer_names(name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match aws("DescribeLoadBalancers", e) {
                    CloudError::NotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        let Some(description) = out.load_balancer_descriptions().first() else {
            return Ok(None);
        };
        let listener = description
            .listener_descriptions()
            .first()
            .and_then(|l| l.listener());
        let check = description.health_check();
        let attributes = self
            .elb
            .describe_load_balancer_attributes()
            .load_balancer_name(name)
            .send()
            .await
            .map_err(|e| aws("DescribeLoadBalancerAttributes", e))?;
        let draining = attributes
            .load_balancer_attributes()
            .and_then(|a| a.connection_draining())
            .filter(|d| d.enabled())
            .and_then(|d| d.timeout())
            .unwrap_or(0);
        Ok(Some(LoadBalancerState {
            endpoint: description.dns_name().unwrap_or_default().to_string(),
            settings: LoadBalancerSettings {
                listener_port: listener.map_or(0, |l| l.load_balancer_port() as u16),
                instance_port: listener.map_or(0, |l| l.instance_port() as u16),
                health_target: check.map(|c| c.target().to_string()).unwrap_or_default(),
                health_interval_secs: check.map_or(0, |c| c.interval() as u32),
                health_timeout_secs: check.map_or(0, |c| c.timeout() as u32),
                healthy_threshold: check.map_or(0, |c| c.healthy_threshold() as u32),
                unhealthy_threshold: check.map_or(0, |c| c.unhealthy_threshold() as u32),
                draining_timeout_secs: draining as u32,
            },
        }))
    }

    async fn create(&self, spec: &LoadBalancerSpec) -> Result<(), CloudError> {
        let listener = Listener::builder()
            .protocol("HTTP")
            .load_balancer_port(i32::from(spec.settings.listener_port))
            .instance_protocol("HTTP")
            .instance_port(i32::from(spec.settings.instance_port))
            .build()
            .map_err(|e| build_error("CreateLoadBalancer", e))?;
        let mut create = self
            .elb
            .create_load_balancer()
            .load_balancer_name(&spec.name)
            .listeners(listener);
        if spec.subnets.is_empty() {
            // No subnets named: EC2-Classic style placement in the region's first zone.
            create = create.availability_zones(format!("{}a", self.region));
        }
        for subnet in &spec.subnets {
            create = create.subnets(subnet);
        }
        for group in &spec.security_groups {
            create = create.security_groups(group);
        }
        create
            .send()
            .await
            .map_err(|e| aws("CreateLoadBalancer", e))?;
        Ok(())
    }

    async fn configure(&self, spec: &LoadBalancerSpec) -> Result<(), CloudError> {
        let s = &spec.settings;
        let check = HealthCheck::builder()
            .target(&s.health_target)
            .interval(s.health_interval_secs as i32)
            .timeout(s.health_timeout_secs as i32)
            .healthy_threshold(s.healthy_threshold as i32)
            .unhealthy_threshold(s.unhealthy_threshold as i32)
            .build()
            .map_err(|e| build_error("ConfigureHealthCheck", e))?;
        self.elb
            .configure_health_check()
            .load_balancer_name(&spec.name)
            .health_check(check)
            .send()
            .await
            .map_err(|e| aws("ConfigureHealthCheck", e))?;
        let draining = ConnectionDraining::builder()
            .enabled(true)
            .timeout(s.draining_timeout_secs as i32)
            .build();
        self.elb
            .modify_load_balancer_attributes()
            .load_balancer_name(&spec.name)
            .load_balancer_attributes(
                LoadBalancerAttributes::builder()
                    .connection_draining(draining)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws("ModifyLoadBalancerAttributes", e))?;
        Ok(())
    }

    async fn register(&self, name: &str, ids: &[String]) -> Result<(), CloudError> {
        self.elb
            .register_instances_with_load_balancer()
            .load_balancer_name(name)
            .set_instances(Some(instances(ids)))
            .send()
            .await
            .map_err(|e| aws("RegisterInstancesWithLoadBalancer", e))?;
        Ok(())
    }

    async fn deregister(&self, name: &str, ids: &[String]) -> Result<(), CloudError> {
        self.elb
            .deregister_instances_from_load_balancer()
            .load_balancer_name(name)
            .set_instances(Some(instances(ids)))
            .send()
            .await
            .map_err(|e| aws("DeregisterInstancesFromLoadBalancer", e))?;
        Ok(())
    }

    async fn members(&self, name: &str) -> Result<BTreeMap<String, MemberState>, CloudError> {
        let health = self
            .elb
            .describe_instance_health()
            .load_balancer_name(name)
            .send()
            .await
            .map_err(|e| aws("DescribeInstanceHealth", e))?;
        let members = health
            .instance_states()
            .iter()
            .filter_map(|s| {
                let state = if s.state() == Some("InService") {
                    MemberState::InService
                } else {
                    MemberState::OutOfService
                };
                Some((s.instance_id()?.to_string(), state))
            })
            .collect();
        Ok(members)
    }

    /// DescribeInstanceHealth forgets an instance once it is deregistered,
    /// draining or not.
    fn reports_draining(&self) -> bool {
        false
    }
}
