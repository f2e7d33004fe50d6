//! Route53: a project's public record and one record per environment, pointing
//! at load balancers (an alias where the load balancer has a canonical zone, a
//! CNAME otherwise).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord,
    ResourceRecordSet, RrType,
};

use super::AwsCloud;
use super::error::aws;
use slipway_domain::cloud::{CloudError, Dns};

/// Longest a record change may take to reach every Route53 server.
const IN_SYNC_DEADLINE: Duration = Duration::from_secs(180);

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn build_error(e: impl std::fmt::Display) -> CloudError {
    CloudError::Invalid(format!("ChangeResourceRecordSets: {e}"))
}

impl AwsCloud {
    /// The hosted zone whose name is the longest suffix of `record`.
    async fn zone_for(&self, record: &str) -> Result<String, CloudError> {
        let record = fqdn(record);
        let mut best: Option<(usize, String)> = None;
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .route53
                .list_hosted_zones()
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| aws("ListHostedZones", e))?;
            for zone in page.hosted_zones() {
                let name = fqdn(zone.name());
                let fits = record == name || record.ends_with(&format!(".{name}"));
                if fits && best.as_ref().is_none_or(|(len, _)| name.len() > *len) {
                    best = Some((name.len(), zone.id().to_string()));
                }
            }
            match page.next_marker() {
                Some(next) if page.is_truncated() => marker = Some(next.to_string()),
                _ => break,
            }
        }
        best.map(|(_, id)| id).ok_or_else(|| {
            CloudError::NotFound(format!(
                "no Route53 hosted zone holds {record}: create the zone, or set public.zone"
            ))
        })
    }

    /// The value a record points at (alias target or CNAME), if it exists.
    async fn record_value(&self, record: &str) -> Result<Option<String>, CloudError> {
        let zone = self.zone_for(record).await?;
        let name = fqdn(record);
        let out = self
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(&zone)
            .start_record_name(&name)
            .max_items(2)
            .send()
            .await
            .map_err(|e| aws("ListResourceRecordSets", e))?;
        Ok(out
            .resource_record_sets()
            .iter()
            .filter(|set| fqdn(set.name()).eq_ignore_ascii_case(&name))
            .find_map(|set| match set.alias_target() {
                Some(alias) => Some(alias.dns_name().to_string()),
                None => set
                    .resource_records()
                    .first()
                    .map(|r| r.value().to_string()),
            }))
    }
}

#[async_trait]
impl Dns for AwsCloud {
    async fn upsert(&self, record: &str, load_balancer: &str) -> Result<(), CloudError> {
        let (dns_name, canonical_zone) =
            self.load_balancer_dns(load_balancer)
                .await?
                .ok_or_else(|| {
                    CloudError::NotFound(format!(
                        "load balancer {load_balancer} does not exist: run `slipway infra apply`"
                    ))
                })?;
        let zone = self.zone_for(record).await?;
        let set = match canonical_zone {
            Some(zone_id) => ResourceRecordSet::builder()
                .name(fqdn(record))
                .r#type(RrType::A)
                .alias_target(
                    AliasTarget::builder()
                        .hosted_zone_id(zone_id)
                        .dns_name(&dns_name)
                        .evaluate_target_health(false)
                        .build()
                        .map_err(build_error)?,
                ),
            // Without a canonical zone id (some AWS-compatible endpoints), a CNAME.
            None => ResourceRecordSet::builder()
                .name(fqdn(record))
                .r#type(RrType::Cname)
                .ttl(60)
                .resource_records(
                    ResourceRecord::builder()
                        .value(&dns_name)
                        .build()
                        .map_err(build_error)?,
                ),
        }
        .build()
        .map_err(build_error)?;
        let batch = ChangeBatch::builder()
            .comment(format!("slipway: {record} -> {load_balancer}"))
            .changes(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(set)
                    .build()
                    .map_err(build_error)?,
            )
            .build()
            .map_err(build_error)?;
        let change = self
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| aws("ChangeResourceRecordSets", e))?;
        let Some(id) = change.change_info().map(|c| c.id().to_string()) else {
            return Ok(());
        };
        let started = Instant::now();
        loop {
            let status = self
                .route53
                .get_change()
                .id(&id)
                .send()
                .await
                .map_err(|e| aws("GetChange", e))?;
            if status
                .change_info()
                .is_some_and(|c| *c.status() == ChangeStatus::Insync)
            {
                return Ok(());
            }
            if started.elapsed() > IN_SYNC_DEADLINE {
                return Err(CloudError::Unavailable(format!(
                    "record change {id} not INSYNC after {IN_SYNC_DEADLINE:?}"
                )));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn target(&self, record: &str) -> Result<Option<String>, CloudError> {
        let Some(value) = self.record_value(record).await? else {
            return Ok(None);
        };
        let value = value
            .trim_end_matches('.')
            .trim_start_matches("dualstack.")
            .to_ascii_lowercase();
        let name = self
            .slipway_load_balancers()
            .await?
            .into_iter()
            .find(|(_, dns)| dns.trim_end_matches('.').eq_ignore_ascii_case(&value))
            .map(|(name, _)| name);
        Ok(Some(name.unwrap_or(value)))
    }

    async fn endpoint(&self, record: &str) -> Result<Option<String>, CloudError> {
        Ok(self.record_value(record).await?.map(|_| record.to_string()))
    }
}
