//! A cloud in memory: instances, load balancers and records as plain maps, with
//! refusals and pauses a test arms, and a count of every launch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use slipway_coordinator::cloud::{
    CloudError, Compute, Dns, ImageFacts, Instance, LaunchRequest, LoadBalancer,
    LoadBalancerSettings, LoadBalancerSpec, LoadBalancerState,
};
use slipway_coordinator::deploy::machine::{InstanceState, MemberState};

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub struct FakeCloud {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    instances: BTreeMap<String, Instance>,
    by_client_token: BTreeMap<String, String>,
    launches: usize,
    refuse_launch: Option<CloudError>,
    refuse_terminate: Option<CloudError>,
    refuse_describe: Option<CloudError>,
    after_launch: Option<Hook>,
    balancers: BTreeMap<String, (LoadBalancerSettings, BTreeMap<String, MemberState>)>,
    records: BTreeMap<String, String>,
}

impl FakeCloud {
    pub fn new() -> Arc<FakeCloud> {
        Arc::new(FakeCloud::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many launches the cloud carried out (a repeated client token is not one).
    pub fn launches(&self) -> usize {
        self.state().launches
    }

    pub fn refuse_launches(&self, error: CloudError) {
        self.state().refuse_launch = Some(error);
    }

    pub fn refuse_terminations(&self, error: CloudError) {
        self.state().refuse_terminate = Some(error);
    }

    /// Describing instances fails too: the cloud cannot even be looked at.
    pub fn refuse_describes(&self, error: CloudError) {
        self.state().refuse_describe = Some(error);
    }

    /// Runs `hook` right after the next launch, before its answer returns.
    pub fn after_next_launch(&self, hook: impl FnOnce() + Send + 'static) {
        self.state().after_launch = Some(Box::new(hook));
    }

    /// Instances not terminated.
    pub fn live_instances(&self) -> Vec<Instance> {
        self.state()
            .instances
            .values()
            .filter(|i| i.state != InstanceState::Gone)
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Compute for FakeCloud {
    async fn check_image(&self, _image_id: &str) -> Result<ImageFacts, CloudError> {
        Ok(ImageFacts::default())
    }

    /// Every release has an image: an id made from its project and version.
    async fn find_image(&self, project: &str, version: &str) -> Result<String, CloudError> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (project, version).hash(&mut hasher);
        Ok(format!("ami-0{:016x}", hasher.finish()))
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Instance, CloudError> {
        let (instance, hook) = {
            let mut state = self.state();
            if let Some(error) = &state.refuse_launch {
                return Err(error.clone());
            }
            if let Some(id) = state.by_client_token.get(&request.client_token) {
                return Ok(state.instances[id].clone());
            }
            state.launches += 1;
            let n = state.instances.len() + 1;
            let instance = Instance {
                id: format!("i-{n:04}"),
                private_ip: format!("10.0.0.{n}"),
                image_id: request.image_id,
                state: InstanceState::Running,
                tags: request.tags,
            };
            state
                .by_client_token
                .insert(request.client_token, instance.id.clone());
            state
                .instances
                .insert(instance.id.clone(), instance.clone());
            (instance, state.after_launch.take())
        };
        if let Some(hook) = hook {
            hook();
        }
        Ok(instance)
    }

    async fn describe(&self, ids: &[String]) -> Result<Vec<Instance>, CloudError> {
        let state = self.state();
        if let Some(error) = &state.refuse_describe {
            return Err(error.clone());
        }
        Ok(ids
            .iter()
            .filter_map(|id| state.instances.get(id).cloned())
            .collect())
    }

    async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        let mut state = self.state();
        if let Some(error) = &state.refuse_terminate {
            return Err(error.clone());
        }
        for id in ids {
            if let Some(instance) = state.instances.get_mut(id) {
                instance.state = InstanceState::Gone;
            }
        }
        Ok(())
    }

    async fn find_instances(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError> {
        Ok(self
            .live_instances()
            .into_iter()
            .filter(|i| tags.iter().all(|(k, v)| i.tags.get(k) == Some(v)))
            .collect())
    }
}

#[async_trait]
impl LoadBalancer for FakeCloud {
    async fn describe(&self, name: &str) -> Result<Option<LoadBalancerState>, CloudError> {
        Ok(self
            .state()
            .balancers
            .get(name)
            .map(|(settings, _)| LoadBalancerState {
                endpoint: format!("{name}.elb.example"),
                settings: settings.clone(),
            }))
    }

    async fn create(&self, spec: &LoadBalancerSpec) -> Result<(), CloudError> {
        self.state()
            .balancers
            .entry(spec.name.clone())
            .or_insert_with(|| (spec.settings.clone(), BTreeMap::new()));
        Ok(())
    }

    async fn configure(&self, spec: &LoadBalancerSpec) -> Result<(), CloudError> {
        if let Some((settings, _)) = self.state().balancers.get_mut(&spec.name) {
            *settings = spec.settings.clone();
        }
        Ok(())
    }

    async fn register(&self, name: &str, ids: &[String]) -> Result<(), CloudError> {
        let mut state = self.state();
        let (_, members) = state
            .balancers
            .get_mut(name)
            .ok_or_else(|| CloudError::NotFound(format!("no load balancer {name}")))?;
        for id in ids {
            members.insert(id.clone(), MemberState::InService);
        }
        Ok(())
    }

    async fn deregister(&self, name: &str, ids: &[String]) -> Result<(), CloudError> {
        if let Some((_, members)) = self.state().balancers.get_mut(name) {
            for id in ids {
                members.remove(id);
            }
        }
        Ok(())
    }

    async fn members(&self, name: &str) -> Result<BTreeMap<String, MemberState>, CloudError> {
        Ok(self
            .state()
            .balancers
            .get(name)
            .map(|(_, members)| members.clone())
            .unwrap_or_default())
    }

    fn reports_draining(&self) -> bool {
        true
    }
}

#[async_trait]
impl Dns for FakeCloud {
    async fn upsert(&self, record: &str, load_balancer: &str) -> Result<(), CloudError> {
        self.state()
            .records
            .insert(record.to_string(), load_balancer.to_string());
        Ok(())
    }

    async fn target(&self, record: &str) -> Result<Option<String>, CloudError> {
        Ok(self.state().records.get(record).cloned())
    }

    async fn endpoint(&self, record: &str) -> Result<Option<String>, CloudError> {
        Ok(self
            .state()
            .records
            .contains_key(record)
            .then(|| record.to_string()))
    }
}
