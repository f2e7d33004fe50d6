//! The coordinator's side of the local cloud: the cloud traits over its socket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::SOCKET;
use crate::protocol::{
    ErrorKind, InstanceInfo, InstanceStatus, MAX_LINE, MemberInfo, RecordInfo, Registration,
    Request, Response,
};
use slipway_domain::cloud::{
    CloudError, Compute, Dns, ImageFacts, Instance, LaunchRequest, LoadBalancer, LoadBalancerSpec,
    LoadBalancerState,
};
use slipway_domain::deploy::machine::{InstanceState, MemberState};

/// Longest a request may take; baking an image copies files, the rest is quick.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Instances described in one request: about 250 bytes each in the answer.
const DESCRIBE_AT_ONCE: usize = 1000;

#[derive(Debug, Clone)]
pub struct LocalCloud {
    socket: PathBuf,
}

impl LocalCloud {
    /// A client for the local cloud whose directory is `dir`.
    pub fn new(dir: &Path) -> Self {
        LocalCloud {
            socket: dir.join(SOCKET),
        }
    }

    pub async fn call(&self, request: &Request) -> Result<Response, CloudError> {
        let exchange = async {
            let stream = UnixStream::connect(&self.socket).await?;
            let (read, mut write) = stream.into_split();
            let mut line = serde_json::to_string(request).map_err(std::io::Error::other)?;
            line.push('\n');
            write.write_all(line.as_bytes()).await?;
            let mut answer = String::new();
            BufReader::new(read.take(MAX_LINE as u64))
                .read_line(&mut answer)
                .await?;
            serde_json::from_str::<Response>(&answer).map_err(std::io::Error::other)
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| self.unavailable("no answer in time".into()))?
            .map_err(|e| self.unavailable(e.to_string()))?;
        match response {
            Response::Error {
                kind: ErrorKind::NotFound,
                message,
            } => Err(CloudError::NotFound(message)),
            Response::Error {
                kind: ErrorKind::Invalid,
                message,
            } => Err(CloudError::Invalid(message)),
            other => Ok(other),
        }
    }

    fn unavailable(&self, why: String) -> CloudError {
        CloudError::Unavailable(format!(
            "local cloud at {} is unreachable ({why}): is `slipway-coordinator --dev` running?",
            self.socket.display()
        ))
    }

    pub async fn ping(&self) -> bool {
        matches!(self.call(&Request::Ping).await, Ok(Response::Ok))
    }

    /// Bakes `source` into an image tagged with `tags`.
    pub async fn import_image(
        &self,
        source: &Path,
        tags: BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let request = Request::ImportImage {
            source: source.to_path_buf(),
            tags,
        };
        match self.call(&request).await? {
            Response::Images { ids } if ids.len() == 1 => Ok(ids[0].clone()),
            other => Err(unexpected(other)),
        }
    }

    /// Every instance carrying `tags`, terminated ones too (they stay listed).
    /// Ask with a tag: every instance of a big fleet is more than an answer's
    /// line may hold (MAX_LINE).
    pub async fn all_instances(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError> {
        let request = Request::FindInstances { tags: tags.clone() };
        match self.call(&request).await? {
            Response::Instances { instances } => Ok(instances.into_iter().map(instance).collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Every load balancer registration so far, with its health at the time.
    pub async fn registrations(&self) -> Result<Vec<Registration>, CloudError> {
        match self.call(&Request::Registrations).await? {
            Response::Registrations { registrations } => Ok(registrations),
            other => Err(unexpected(other)),
        }
    }

    pub async fn shutdown(&self) -> Result<(), CloudError> {
        self.call(&Request::Shutdown).await.map(|_| ())
    }
}

fn unexpected(response: Response) -> CloudError {
    CloudError::Invalid(format!(
        "local cloud answered out of protocol: {response:?}"
    ))
}

fn instance(info: InstanceInfo) -> Instance {
    Instance {
        id: info.id,
        private_ip: info.private_ip,
        image_id: info.image_id,
        state: match info.status {
            InstanceStatus::Running => InstanceState::Running,
            InstanceStatus::Terminated => InstanceState::Gone,
        },
        tags: info.tags,
    }
}

#[async_trait]
impl Compute for LocalCloud {
    async fn check_image(&self, image_id: &str) -> Result<ImageFacts, CloudError> {
        let request = Request::DescribeImage {
            image_id: image_id.to_string(),
        };
        match self.call(&request).await? {
            // One machine, no accounts.
            Response::Image { tags: Some(tags) } => Ok(ImageFacts {
                owner_account: None,
                tags,
            }),
            Response::Image { tags: None } => Err(CloudError::NotFound(format!(
                "image {image_id} does not exist in the local cloud: `slipway release list` shows the baked ones"
            ))),
            other => Err(unexpected(other)),
        }
    }

    async fn find_image(&self, project: &str, version: &str) -> Result<String, CloudError> {
        let tags = BTreeMap::from([
            ("slipway:project".to_string(), project.to_string()),
            ("slipway:version".to_string(), version.to_string()),
        ]);
        match self.call(&Request::FindImages { tags }).await? {
            Response::Images { ids } => match ids.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(CloudError::NotFound(format!(
                    "no image tagged slipway:project={project} slipway:version={version}: bake one, or give --image"
                ))),
                many => Err(CloudError::Invalid(format!(
                    "{} images are tagged slipway:project={project} slipway:version={version} ({}): give --image",
                    many.len(),
                    many.join(", ")
                ))),
            },
            other => Err(unexpected(other)),
        }
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Instance, CloudError> {
        let request = Request::Launch {
            image_id: request.image_id,
            client_token: request.client_token,
            user_data: request.user_data,
            tags: request.tags,
        };
        match self.call(&request).await? {
            Response::Instance { instance: info } => Ok(instance(info)),
            other => Err(unexpected(other)),
        }
    }

    async fn describe(&self, ids: &[String]) -> Result<Vec<Instance>, CloudError> {
        // Each answer stays well under a line's limit (MAX_LINE) however
        // many instances are asked about.
        let mut described = Vec::new();
        for chunk in ids.chunks(DESCRIBE_AT_ONCE) {
            match self
                .call(&Request::Describe {
                    ids: chunk.to_vec(),
                })
                .await?
            {
                Response::Instances { instances } => {
                    described.extend(instances.into_iter().map(instance));
                }
                other => return Err(unexpected(other)),
            }
        }
        Ok(described)
    }

    async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        self.call(&Request::Terminate { ids: ids.to_vec() })
            .await
            .map(|_| ())
    }

    async fn find_instances(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError> {
        Ok(self
            .all_instances(tags)
            .await?
            .into_iter()
            .filter(|i| i.state != InstanceState::Gone)
            .collect())
    }
}

#[async_trait]
impl LoadBalancer for LocalCloud {
    async fn describe(&self, name: &str) -> Result<Option<LoadBalancerState>, CloudError> {
        match self
            .call(&Request::DescribeLoadBalancer {
                name: name.to_string(),
            })
            .await?
        {
            Response::LoadBalancer { found } => Ok(found.map(|lb| LoadBalancerState {
                endpoint: lb.endpoint,
                settings: lb.settings,
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn create(&self, spec: &LoadBalancerSpec) -> Result<(), CloudError> {
        let request = Request::CreateLoadBalancer {
            name: spec.name.clone(),
            settings: spec.settings.clone(),
        };
        self.call(&request).await.map(|_| ())
    }

    async fn configure(&self, spec: &LoadBalancerSpec) -> Result<(), CloudError> {
        let request = Request::ConfigureLoadBalancer {
            name: spec.name.clone(),
            settings: spec.settings.clone(),
        };
        self.call(&request).await.map(|_| ())
    }

    async fn register(&self, name: &str, ids: &[String]) -> Result<(), CloudError> {
        let request = Request::Register {
            name: name.to_string(),
            ids: ids.to_vec(),
        };
        self.call(&request).await.map(|_| ())
    }

    async fn deregister(&self, name: &str, ids: &[String]) -> Result<(), CloudError> {
        let request = Request::Deregister {
            name: name.to_string(),
            ids: ids.to_vec(),
        };
        self.call(&request).await.map(|_| ())
    }

    async fn members(&self, name: &str) -> Result<BTreeMap<String, MemberState>, CloudError> {
        match self
            .call(&Request::Members {
                name: name.to_string(),
            })
            .await?
        {
            Response::Members { members } => Ok(members
                .into_iter()
                .map(|(id, m)| {
                    let state = match m {
                        MemberInfo::InService => MemberState::InService,
                        MemberInfo::Draining { connections } => {
                            MemberState::Draining { connections }
                        }
                    };
                    (id, state)
                })
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    fn reports_draining(&self) -> bool {
        true
    }
}

impl LocalCloud {
    async fn record(&self, record: &str) -> Result<Option<RecordInfo>, CloudError> {
        match self
            .call(&Request::DescribeRecord {
                record: record.to_string(),
            })
            .await?
        {
            Response::Record { found } => Ok(found),
            other => Err(unexpected(other)),
        }
    }
}

#[async_trait]
impl Dns for LocalCloud {
    async fn upsert(&self, record: &str, load_balancer: &str) -> Result<(), CloudError> {
        let request = Request::UpsertRecord {
            record: record.to_string(),
            load_balancer: load_balancer.to_string(),
        };
        self.call(&request).await.map(|_| ())
    }

    async fn target(&self, record: &str) -> Result<Option<String>, CloudError> {
        Ok(self.record(record).await?.map(|r| r.load_balancer))
    }

    async fn endpoint(&self, record: &str) -> Result<Option<String>, CloudError> {
        Ok(self.record(record).await?.map(|r| r.endpoint))
    }
}
