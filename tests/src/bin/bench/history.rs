//! `slipway-bench history [DEPLOYMENTS] [AUDIT]`: whether what an operator
//! asks, and what a deploy costs, grows with history.
//!
//! Two dev coordinators on the same fleet (nine projects, four environments):
//! one on a store holding one finished deployment per target, one on a store
//! filled beforehand (as a year of use would) with DEPLOYMENTS finished
//! deployments over the same targets and AUDIT chained audit entries. On each, one real deploy, then over one long-lived mTLS
//! connection, 200 times each: `Status`, `Queue`, a refused `Deploy` (its audit
//! entry is all it writes) and an enqueued `Deploy` (queue entry, event,
//! index and audit entry; prod2 requires an approval, so they stay queued).
//! Prints each call's median and p99.
//!
//! The filled store is written as an older coordinator left it, without the
//! deployment index: the start builds it once, and its time is printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_coordinator::audit::{About, AuditEntry, Fields};
use slipway_coordinator::deploy::{Deployment, LaunchedInstance, Phase, PhaseEntry};
use slipway_coordinator::release::Release;
use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_coordinator::store::{Changes, Db, SledStore, Store};
use slipway_proto::v1::operator_service_client::OperatorServiceClient;
use slipway_proto::v1::{DeployRequest, QueueRequest, StatusRequest};
use slipway_tests::{Coordinator, TempDir};

const CALLS: usize = 200;
const PROJECTS: usize = 9;
const ENVIRONMENTS: [&str; 4] = ["staging", "qaprod1", "prod1", "prod2"];

/// The sample fleet with prod2 gated, so the measured enqueues stay queued,
/// and eight more projects like `hello`: the original team's 36 targets.
pub fn fleet() -> String {
    let mut fleet = SAMPLE_FLEET.replace(
        "[environments.prod2]\n",
        "[environments.prod2]\nrequires_approval = true\n",
    );
    for n in 1..PROJECTS {
        fleet += &format!(
            "\n[projects.project-{n}]\ninstance_port = 8080\n\
             services = [{{ name = \"web\", command = \"bin/slipway-sample-app\" }}]\n\
             [projects.project-{n}.health_check]\npath = \"/health\"\nport = 8080\n"
        );
    }
    fleet
}

/// The fleet's projects: the sample's `hello`, then `project-1`...
fn project(n: usize) -> String {
    match n {
        0 => "hello".into(),
        n => format!("project-{n}"),
    }
}

pub fn run(deployments: usize, audit: usize) {
    println!(
        "calls over one connection, {CALLS} each, {PROJECTS} projects × {} environments: median / p99 ms\n",
        ENVIRONMENTS.len()
    );
    println!(
        "| call | 36 deployments (one per target) | {deployments} deployments, {audit} audit entries |"
    );
    println!("|---|---|---|");
    // The baseline holds one finished deployment per target (and as many
    // audit entries), so both sides read the same per-target records: only
    // the history's size differs.
    let baseline = TempDir::new("bench-baseline");
    fill(&baseline, 36, 36);
    let empty = measure(baseline);
    let dir = TempDir::new("bench-filled");
    let filling = Instant::now();
    fill(&dir, deployments, audit);
    let filled_in = filling.elapsed();
    let filled = measure(dir);
    for ((call, a), (_, b)) in empty.figures.iter().zip(&filled.figures) {
        println!("| {call} | {a} | {b} |");
    }
    println!(
        "\nfilling took {:.1} s; the filled coordinator's start (index built once) took {:.1} s, \
         against {:.1} s for the baseline",
        filled_in.as_secs_f64(),
        filled.start.as_secs_f64(),
        empty.start.as_secs_f64(),
    );
}

struct Measured {
    start: Duration,
    figures: Vec<(&'static str, String)>,
}

fn measure(dir: TempDir) -> Measured {
    let starting = Instant::now();
    let dev = Coordinator::start_in(dir, &fleet());
    let start = starting.elapsed();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let figures = runtime.block_on(async {
        let mut client = OperatorServiceClient::new(dev.admin_channel());
        let deploy = |version: &str, environment: &str| DeployRequest {
            project: "hello".into(),
            version: version.into(),
            environment: environment.into(),
        };
        let mut figures = Vec::new();
        let mut times = Vec::new();
        for _ in 0..CALLS {
            let at = Instant::now();
            client.status(StatusRequest::default()).await.unwrap();
            times.push(at.elapsed());
        }
        figures.push(("Status", spread(&mut times)));
        times.clear();
        for _ in 0..CALLS {
            let at = Instant::now();
            client.queue(QueueRequest::default()).await.unwrap();
            times.push(at.elapsed());
        }
        figures.push(("Queue", spread(&mut times)));
        times.clear();
        for _ in 0..CALLS {
            let at = Instant::now();
            let refused = client.deploy(deploy("v404", "prod2")).await;
            assert!(refused.is_err(), "an unknown release is refused");
            times.push(at.elapsed());
        }
        figures.push(("Deploy, refused (audit append)", spread(&mut times)));
        times.clear();
        for _ in 0..CALLS {
            let at = Instant::now();
            client.deploy(deploy("v1", "prod2")).await.unwrap();
            times.push(at.elapsed());
        }
        figures.push(("Deploy, enqueued", spread(&mut times)));
        figures
    });
    Measured { start, figures }
}

fn spread(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "{:.2} / {:.2}",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100])
    )
}

/// Writes `deployments` finished deployments and `audit` chained audit
/// entries into `dir`'s store, in batches, as a coordinator that ran a long
/// time would have left them (before the deployment index existed).
fn fill(dir: &TempDir, deployments: usize, audit: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
        let db = Db::open(store).await.unwrap();
        let at = slipway_tests::unix_ms() - 365 * 24 * 3600 * 1000;
        let mut changes = Changes::default();
        for n in 0..deployments {
            // Ids as the coordinator hands them out, so later ones follow on.
            let seq = db.next_id().await.unwrap();
            let release = Release {
                project: project(n % PROJECTS),
                version: format!("v{}", n / PROJECTS),
                image_id: "ami-00000001".into(),
                registered_at: at,
                registered_by: "ci".into(),
                owner_account: None,
                provenance: Default::default(),
            };
            let environment = ENVIRONMENTS[(n / PROJECTS) % ENVIRONMENTS.len()];
            let mut d = Deployment::queued(seq, &release, environment, "ci".into(), 2, at);
            d.phase = if n % 10 == 0 {
                Phase::RolledBack
            } else {
                Phase::Succeeded
            };
            d.history = [Phase::Queued, Phase::Launching, Phase::Booting, d.phase]
                .into_iter()
                .map(|phase| PhaseEntry { phase, at })
                .collect();
            d.launched = (0..2)
                .map(|slot| LaunchedInstance {
                    slot,
                    id: format!("i-{seq:08x}{slot}"),
                })
                .collect();
            changes.put(&d).unwrap();
            if n % 1000 == 999 {
                db.commit(std::mem::take(&mut changes)).await.unwrap();
            }
        }
        db.commit(std::mem::take(&mut changes)).await.unwrap();
        let mut last: Option<AuditEntry> = None;
        for n in 0..audit {
            let entry = AuditEntry::after(
                last.as_ref(),
                at,
                Fields {
                    who: "ci (deployer)",
                    certificate: "sha256:0000",
                    action: "deploy",
                    target: &format!("{}@v{n} -> staging", project(n % PROJECTS)),
                    result: "ok",
                },
                &About::default(),
            );
            changes.put(&entry).unwrap();
            last = Some(entry);
            if n % 10_000 == 9_999 {
                db.commit(std::mem::take(&mut changes)).await.unwrap();
            }
        }
        db.commit(changes).await.unwrap();
    });
}
