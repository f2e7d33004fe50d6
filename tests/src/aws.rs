//! The AWS side of the harness: a moto server (real AWS APIs on loopback), a boot
//! simulator that plays EC2 booting an AMI with the agent baked in, and baked
//! sample images registered as AMIs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::types::{Filter, InstanceAttributeName, InstanceStateName, Tag};
use base64::Engine;

use crate::{TempDir, binary, eventually, free_port};

pub const REGION: &str = "us-east-1";

/// A moto server on loopback, stopped on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// moto enforcing IAM: every request after the first `users.len() * 3`
    /// must be signed by a known access key whose policy allows its action.
    /// Those first requests make the users (unsigned: there is no key yet);
    /// their keys come back in the same order. moto 5.2 evaluates a policy's
    /// actions only (docs/aws.md says how far).
    pub fn start_enforcing_iam(users: &[(&str, &str)]) -> (Moto, Vec<AccessKey>) {
        let setup_calls = (users.len() * 3).to_string();
        let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", &setup_calls)]);
        let keys = users
            .iter()
            .map(|(name, policy)| moto.iam_user(name, policy))
            .collect();
        (moto, keys)
    }

    /// An IAM user holding `policy` inline, and its access key.
    fn iam_user(&self, name: &str, policy: &str) -> AccessKey {
        self.iam(&[("Action", "CreateUser"), ("UserName", name)]);
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "slipway"),
            ("PolicyDocument", policy),
        ]);
        let created = self.iam(&[("Action", "CreateAccessKey"), ("UserName", name)]);
        let field = |tag: &str| {
            created
                .split_once(&format!("<{tag}>"))
                .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
                .map(|(value, _)| value.to_string())
                .unwrap_or_else(|| panic!("no {tag} in CreateAccessKey's answer: {created}"))
        };
        AccessKey {
            id: field("AccessKeyId"),
            secret: field("SecretAccessKey"),
        }
    }

    /// One IAM query-API call, unsigned: only for the setup window. The
    /// Authorization header carries no valid signature; moto reads the
    /// service from its credential scope.
    fn iam(&self, params: &[(&str, &str)]) -> String {
        use std::io::{Read, Write};
        let mut body: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        body.push("Version=2010-05-08".into());
        let body = body.join("&");
        let host = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(host).expect("connect to moto");
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=setup/20260101/{REGION}/iam/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write to moto");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("moto's answer");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "IAM {params:?} failed: {answer}"
        );
        answer
    }

    /// SDK configuration for moto as the holder of `key`.
    pub async fn sdk_as(&self, key: &AccessKey) -> SdkConfig {
        sdk_with(
            &self.endpoint,
            Credentials::new(&key.id, &key.secret, None, None, "tests"),
        )
        .await
    }

    /// What a coordinator process needs to reach moto as the holder of `key`.
    pub fn coordinator_env_as(key: &AccessKey) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), key.id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), key.secret.clone()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }

    /// Extra environment for moto, e.g. `INITIAL_NO_AUTH_ACTION_COUNT=0` to check credentials.
    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        let port = free_port();
        let child = Command::new(crate::python_tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server: tests/run installs it into target/py");
        let endpoint = format!("http://127.0.0.1:{port}");
        eventually("moto to answer", Duration::from_secs(60), || {
            crate::load::get(&format!("127.0.0.1:{port}"), "/moto-api/")
                .ok()
                .map(|_| ())
        });
        Moto { child, endpoint }
    }

    /// SDK configuration for moto: static credentials, the region, the endpoint.
    pub async fn sdk(&self) -> SdkConfig {
        sdk_for(&self.endpoint).await
    }

    /// What a coordinator process needs in its environment to reach moto.
    pub fn coordinator_env() -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            // Never ask the real instance metadata service for credentials.
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }
}

pub async fn sdk_for(endpoint: &str) -> SdkConfig {
    sdk_with(
        endpoint,
        Credentials::new("testing", "testing", None, None, "tests"),
    )
    .await
}

async fn sdk_with(endpoint: &str, credentials: Credentials) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .load()
        .await
}

/// An IAM access key made in moto.
#[derive(Debug, Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The IMDS settings and tag keys of every instance Slipway launched, checked
/// against what the AWS cloud must send: IMDSv2 only, one hop, endpoint on,
/// and only the tag keys the documented IAM policy allows.
pub async fn assert_launches_hardened(ec2: &aws_sdk_ec2::Client) -> usize {
    use slipway_coordinator::cloud::tags::INSTANCE_TAG_KEYS;
    let mut checked = 0;
    for instance in &described_slipway_instances(ec2).await {
        let id = instance.instance_id().unwrap_or_default();
        let options = instance
            .metadata_options()
            .unwrap_or_else(|| panic!("{id} has no MetadataOptions"));
        assert_eq!(
            options.http_tokens().map(|t| t.as_str()),
            Some("required"),
            "{id} must require IMDSv2 tokens"
        );
        assert_eq!(options.http_put_response_hop_limit(), Some(1), "{id}");
        assert_eq!(
            options.http_endpoint().map(|e| e.as_str()),
            Some("enabled"),
            "{id}"
        );
        for tag in instance.tags() {
            let key = tag.key().unwrap_or_default();
            assert!(
                INSTANCE_TAG_KEYS.contains(&key),
                "{id} carries tag {key}, which the IAM policy's aws:TagKeys does not allow"
            );
        }
        checked += 1;
    }
    checked
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sample-app image: the agent and the app, with `app.toml` saying its version
/// and whether its health check passes (as `--dev` bakes them).
pub fn bake(dir: &Path, version: &str, healthy: bool) -> PathBuf {
    let root = dir.join("images").join(version);
    std::fs::create_dir_all(root.join("bin")).expect("image dir");
    for name in ["slipway-agent", "slipway-sample-app"] {
        let link = root.join("bin").join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(binary(name), link).expect("link binary");
    }
    std::fs::write(
        root.join("app.toml"),
        format!("version = \"{version}\"\nhealthy = {healthy}\n"),
    )
    .expect("app.toml");
    root
}

/// Registers an AMI in moto tagged like a Slipway build of `project` at `version`.
pub async fn register_ami(ec2: &aws_sdk_ec2::Client, project: &str, version: &str) -> String {
    let image = ec2
        .register_image()
        .name(format!("{project}-{version}-{}", free_port()))
        .root_device_name("/dev/sda1")
        .send()
        .await
        .expect("RegisterImage");
    let id = image.image_id().expect("image id").to_string();
    ec2.create_tags()
        .resources(&id)
        .tags(Tag::builder().key("slipway:project").value(project).build())
        .tags(Tag::builder().key("slipway:version").value(version).build())
        .send()
        .await
        .expect("CreateTags");
    id
}

/// Instances carrying Slipway's deployment tag.
fn launched_by_slipway() -> Filter {
    Filter::builder()
        .name("tag-key")
        .values("slipway:deployment")
        .build()
}

/// Instances Slipway launched, as DescribeInstances returns them.
async fn described_slipway_instances(
    ec2: &aws_sdk_ec2::Client,
) -> Vec<aws_sdk_ec2::types::Instance> {
    let out = ec2
        .describe_instances()
        .filters(launched_by_slipway())
        .send()
        .await
        .expect("DescribeInstances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances().iter().cloned())
        .collect()
}

/// Instances Slipway launched, as moto sees them: (id, state, tags).
pub async fn slipway_instances(
    ec2: &aws_sdk_ec2::Client,
) -> Vec<(String, String, HashMap<String, String>)> {
    described_slipway_instances(ec2)
        .await
        .iter()
        .map(|i| {
            let state = i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
                .unwrap_or_default();
            let tags = i
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect();
            (i.instance_id().unwrap_or_default().to_string(), state, tags)
        })
        .collect()
}

/// Running Slipway instances.
pub async fn running(ec2: &aws_sdk_ec2::Client) -> Vec<String> {
    slipway_instances(ec2)
        .await
        .into_iter()
        .filter(|(_, state, _)| state == "running")
        .map(|(id, _, _)| id)
        .collect()
}

/// Plays EC2 booting an AMI with the agent baked in: for every instance Slipway
/// launched in moto, it reads the user-data back (DescribeInstanceAttribute) and
/// starts a `slipway-agent` on a loopback address of its own; when moto says the
/// instance is terminated, it stops that agent and its services.
pub struct BootSimulator {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    agents: Arc<Mutex<HashMap<String, Child>>>,
    _dir: TempDir,
}

impl BootSimulator {
    /// `images` maps AMI ids to the directories that play their root filesystems.
    pub fn start(endpoint: &str, images: HashMap<String, PathBuf>) -> BootSimulator {
        let testing = AccessKey {
            id: "testing".into(),
            secret: "testing".into(),
        };
        BootSimulator::start_as(endpoint, &testing, images)
    }

    /// The same, reading moto as the holder of `key` (when moto enforces IAM).
    pub fn start_as(
        endpoint: &str,
        key: &AccessKey,
        images: HashMap<String, PathBuf>,
    ) -> BootSimulator {
        let credentials = Credentials::new(&key.id, &key.secret, None, None, "tests");
        let dir = TempDir::new("boot");
        let stop = Arc::new(AtomicBool::new(false));
        let agents: Arc<Mutex<HashMap<String, Child>>> = Arc::default();
        let (endpoint, root, flag, booted) = (
            endpoint.to_string(),
            dir.path().to_path_buf(),
            stop.clone(),
            agents.clone(),
        );
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let ec2 = aws_sdk_ec2::Client::new(&sdk_with(&endpoint, credentials).await);
                while !flag.load(Ordering::SeqCst) {
                    if let Ok(out) = ec2
                        .describe_instances()
                        .filters(launched_by_slipway())
                        .send()
                        .await
                    {
                        for instance in out.reservations().iter().flat_map(|r| r.instances()) {
                            let (Some(id), Some(state)) = (
                                instance.instance_id(),
                                instance.state().and_then(|s| s.name()),
                            ) else {
                                continue;
                            };
                            let known = booted.lock().expect("agents").contains_key(id);
                            match state {
                                InstanceStateName::Running if !known => {
                                    let Some(image_root) =
                                        instance.image_id().and_then(|ami| images.get(ami))
                                    else {
                                        continue;
                                    };
                                    if let Some(child) = boot(
                                        &ec2,
                                        &root,
                                        id,
                                        instance.image_id().unwrap_or_default(),
                                        image_root,
                                    )
                                    .await
                                    {
                                        booted
                                            .lock()
                                            .expect("agents")
                                            .insert(id.to_string(), child);
                                    }
                                }
                                InstanceStateName::Terminated
                                | InstanceStateName::ShuttingDown
                                | InstanceStateName::Stopped
                                    if known =>
                                {
                                    if let Some(child) = booted.lock().expect("agents").remove(id) {
                                        stop_instance(child);
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        });
        BootSimulator {
            stop,
            thread: Some(thread),
            agents,
            _dir: dir,
        }
    }

    /// Instance ids with a running agent.
    pub fn booted(&self) -> Vec<String> {
        self.agents
            .lock()
            .expect("agents")
            .keys()
            .cloned()
            .collect()
    }
}

async fn boot(
    ec2: &aws_sdk_ec2::Client,
    root: &Path,
    id: &str,
    ami: &str,
    image_root: &Path,
) -> Option<Child> {
    let attribute = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .ok()?;
    let encoded = attribute.user_data().and_then(|v| v.value())?;
    let user_data = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::write(dir.join("user-data"), user_data).ok()?;
    let log = std::fs::File::create(dir.join("agent.log")).ok()?;
    let [a, b, c]: [u8; 3] = rand_bytes();
    let ip = format!("127.{}.{b}.{}", a.max(16), c.clamp(2, 254));
    use std::os::unix::process::CommandExt;
    Command::new(image_root.join("bin/slipway-agent"))
        .arg("--user-data-file")
        .arg(dir.join("user-data"))
        .args(["--instance-id", id, "--private-ip", &ip, "--image-id", ami])
        .arg("--root")
        .arg(image_root)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().ok()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .ok()
}

fn rand_bytes() -> [u8; 3] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mixed = (nanos ^ (nanos >> 17) ^ u128::from(std::process::id()) << 7) as u32;
    let bytes = mixed.to_le_bytes();
    [bytes[0], bytes[1], bytes[2]]
}

/// Kills an instance's agent and every service in its process group.
fn stop_instance(mut child: Child) {
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

impl Drop for BootSimulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for (_, child) in self.agents.lock().expect("agents").drain() {
            stop_instance(child);
        }
    }
}

/// The AWS test fleet: the sample project on moto, deadlines short enough for tests.
pub fn fleet(endpoint: &str) -> String {
    format!(
        r#"
[cloud]
provider = "aws"
region = "{REGION}"
endpoint = "{endpoint}"

[coordinator]
heartbeat_interval = "1s"
agent_lost_after = "4s"

[environments.staging]
instances = 1
variables = {{ GREETING = "hello from staging" }}
aws = {{ instance_type = "t3.micro" }}

[environments.prod1]
instances = 2
variables = {{ GREETING = "hello from prod1" }}

[environments.prod2]
instances = 2
variables = {{ GREETING = "hello from prod2" }}

[projects.hello]
instance_port = 8080
services = [{{ name = "web", command = "bin/slipway-sample-app" }}]
health_check = {{ path = "/health", port = 8080, interval = "200ms", timeout = "1s" }}
deadlines = {{ launch = "20s", boot = "30s", configure = "20s", ready = "8s", attach = "20s", drain = "1s" }}
public = {{ name = "hello.example.com", environments = ["prod1", "prod2"] }}
"#
    )
}
