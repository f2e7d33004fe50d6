//! EC2: images by tag, idempotent launches, describe and terminate.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    Filter, HttpTokensState, IamInstanceProfileSpecification, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceStateName, InstanceType, ResourceType, Tag,
    TagSpecification,
};
use base64::Engine;

use super::AwsCloud;
use super::error::aws;
use slipway_domain::cloud::{CloudError, Compute, ImageFacts, Instance, LaunchRequest};
use slipway_domain::deploy::machine::InstanceState;

use slipway_domain::cloud::tags::{self, LAUNCH as LAUNCH_TAG};

/// The most values one EC2 filter takes.
const FILTER_VALUES: usize = 200;

fn filter(name: &str, values: &[&str]) -> Filter {
    let mut builder = Filter::builder().name(name);
    for value in values {
        builder = builder.values(*value);
    }
    builder.build()
}

fn instance(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let state = match i.state().and_then(|s| s.name()) {
        Some(InstanceStateName::Pending) => InstanceState::Pending,
        Some(InstanceStateName::Running) => InstanceState::Running,
        _ => InstanceState::Gone,
    };
    Some(Instance {
        id: i.instance_id()?.to_string(),
        private_ip: i.private_ip_address().unwrap_or_default().to_string(),
        image_id: i.image_id().unwrap_or_default().to_string(),
        state,
        tags: i
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
    })
}

/// The instance metadata service as every launch gets it: IMDSv2 only (a
/// session token is required, so an SSRF in the app that can only send GETs
/// cannot read the user-data and its join token), one hop (a container or a
/// forwarded request on the instance cannot reach it), and enabled (the agent
/// reads its instance id and user-data there). Set per launch, not left to
/// how the AMI was registered.
pub fn imds_v2_only() -> InstanceMetadataOptionsRequest {
    InstanceMetadataOptionsRequest::builder()
        .http_tokens(HttpTokensState::Required)
        .http_put_response_hop_limit(1)
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .build()
}

impl AwsCloud {
    async fn instances_matching(&self, filters: Vec<Filter>) -> Result<Vec<Instance>, CloudError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .ec2
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| aws("DescribeInstances", e))?;
            for reservation in page.reservations() {
                found.extend(reservation.instances().iter().filter_map(instance));
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(found),
            }
        }
    }
}

#[async_trait]
impl Compute for AwsCloud {
    async fn check_image(&self, image_id: &str) -> Result<ImageFacts, CloudError> {
        // This account's images only (`self`): one shared with it, or made
        // public by someone else, is not a release of this fleet. Asked as a
        // filter, not as ImageIds: an unknown id is then an empty answer, not
        // an error, and the owner applies however the endpoint reads ImageIds.
        let images = self
            .ec2
            .describe_images()
            .owners("self")
            .filters(filter("image-id", &[image_id]))
            .send()
            .await
            .map_err(|e| aws("DescribeImages", e))?;
        match images.images().first() {
            Some(image) => Ok(ImageFacts {
                owner_account: image.owner_id().map(str::to_string),
                tags: image
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                    .collect(),
            }),
            None => Err(CloudError::NotFound(format!(
                "no AMI {image_id} owned by this account: register images this fleet's account built (images shared by other accounts are refused)"
            ))),
        }
    }

    async fn find_image(&self, project: &str, version: &str) -> Result<String, CloudError> {
        let images = self
            .ec2
            .describe_images()
            .owners("self")
            .filters(filter(&format!("tag:{}", tags::IMAGE_PROJECT), &[project]))
            .filters(filter(&format!("tag:{}", tags::IMAGE_VERSION), &[version]))
            .send()
            .await
            .map_err(|e| aws("DescribeImages", e))?;
        let mut ids: Vec<String> = images
            .images()
            .iter()
            .filter_map(|i| i.image_id().map(str::to_string))
            .collect();
        ids.sort();
        match ids.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(CloudError::NotFound(format!(
                "no AMI tagged slipway:project={project} slipway:version={version}: tag the image, or give --image"
            ))),
            many => Err(CloudError::Invalid(format!(
                "{} AMIs are tagged slipway:project={project} slipway:version={version} ({}): give --image",
                many.len(),
                many.join(", ")
            ))),
        }
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Instance, CloudError> {
        let earlier = self
            .instances_matching(vec![
                filter(&format!("tag:{LAUNCH_TAG}"), &[&request.client_token]),
                filter("instance-state-name", &["pending", "running"]),
            ])
            .await?;
        if let Some(existing) = earlier.into_iter().next() {
            return Ok(existing);
        }
        let mut tags = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (key, value) in request
            .tags
            .iter()
            .chain([(&LAUNCH_TAG.to_string(), &request.client_token)])
        {
            tags = tags.tags(Tag::builder().key(key).value(value).build());
        }
        let placement = &request.placement;
        let mut run = self
            .ec2
            .run_instances()
            .image_id(&request.image_id)
            .instance_type(InstanceType::from(placement.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(&request.client_token)
            .user_data(
                base64::engine::general_purpose::STANDARD.encode(request.user_data.as_bytes()),
            )
            .tag_specifications(tags.build())
            .metadata_options(imds_v2_only())
            .set_subnet_id(placement.subnet.clone());
        for group in &placement.security_groups {
            run = run.security_group_ids(group);
        }
        if let Some(profile) = &placement.instance_profile {
            run = run.iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .name(profile)
                    .build(),
            );
        }
        let launched = run.send().await.map_err(|e| aws("RunInstances", e))?;
        launched
            .instances()
            .first()
            .and_then(instance)
            .ok_or_else(|| CloudError::Invalid("RunInstances answered with no instance".into()))
    }

    async fn describe(&self, ids: &[String]) -> Result<Vec<Instance>, CloudError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        // A filter, unlike InstanceIds, does not fail the whole call on one
        // unknown id; it takes at most 200 values, so more ids take more calls.
        let mut described = Vec::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            described.extend(
                self.instances_matching(vec![filter("instance-id", &chunk)])
                    .await?,
            );
        }
        Ok(described)
    }

    async fn find_instances(
        &self,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError> {
        let mut filters: Vec<Filter> = tags
            .iter()
            .map(|(key, value)| filter(&format!("tag:{key}"), &[value]))
            .collect();
        filters.push(filter(
            "instance-state-name",
            &["pending", "running", "stopping", "stopped"],
        ));
        self.instances_matching(filters).await
    }

    async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        // One unknown id fails the whole call: terminate only what still exists.
        let alive: Vec<String> = self
            .describe(ids)
            .await?
            .into_iter()
            .filter(|i| i.state != InstanceState::Gone)
            .map(|i| i.id)
            .collect();
        if alive.is_empty() {
            return Ok(());
        }
        match self
            .ec2
            .terminate_instances()
            .set_instance_ids(Some(alive))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match aws("TerminateInstances", e) {
                CloudError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }
}
