//! The middle of the pyramid: the real coordinator (operations, executor, store
//! layout, tokens, audit) on the memory store, the fake cloud and a manual clock.
//! Each test runs in milliseconds and drives the executor tick by tick.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use slipway_coordinator::agents::AgentRecord;
use slipway_coordinator::cloud::CloudError;
use slipway_coordinator::deploy::Phase;
use slipway_coordinator::executor::Step;
use slipway_coordinator::operations::OperationError;
use slipway_coordinator::pki::Identity;
use slipway_coordinator::release::Release;
use slipway_coordinator::store::Table;
use slipway_coordinator::tokens::JoinTokenRecord;
use slipway_domain::sample::SAMPLE_FLEET;
use support::{Sandbox, admin};

#[tokio::test]
async fn a_crash_between_launch_and_its_record_adopts_the_instance() {
    let s = Sandbox::new().await;
    let id = s.deploy("v1", "staging").await;
    let d = s.tick_until(&id, Phase::Launching, 3).await;
    assert_eq!(d.phase, Phase::Launching);

    // The cloud launches; the write that records it fails, as a crash would leave it.
    let store = s.store.clone();
    s.cloud.after_next_launch(move || store.fail_next_writes(1));
    let failed = s.tick(&id).await;
    assert!(failed.is_err(), "the tick whose record failed: {failed:?}");
    assert!(s.stored(&id).await.launched.is_empty());
    let live = s.cloud.live_instances();
    assert_eq!(live.len(), 1, "the launched instance runs: {live:?}");
    let instance = live[0].id.clone();

    // The next tick finds it by its tags and records it, in one batch.
    s.tick(&id).await.unwrap();
    let d = s.stored(&id).await;
    let launched: Vec<&str> = d.launched.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(launched, [instance.as_str()]);
    assert_eq!(s.cloud.launches(), 1, "adopted, not launched again");
    let agent: Option<AgentRecord> = s.db.get(&instance).await.unwrap();
    assert_eq!(agent.map(|a| a.deployment_id), Some(id.clone()));
    let tokens: Vec<JoinTokenRecord> = s.db.all().await.unwrap();
    assert!(
        tokens
            .iter()
            .any(|t| t.instance_id.as_deref() == Some(instance.as_str())),
        "its join token is bound to it: {tokens:?}"
    );
}

#[tokio::test]
async fn a_fleet_applied_mid_deployment_is_for_the_next_one() {
    let s = Sandbox::new().await;
    let first = s.deploy("v1", "staging").await;
    let d = s.tick_until(&first, Phase::Booting, 10).await;
    assert_eq!((d.phase, d.fleet_generation), (Phase::Booting, Some(1)));

    // From now on a boot may take 2s, not 30s.
    let text = SAMPLE_FLEET.replace("boot = \"30s\"", "boot = \"2s\"");
    let (generation, changes, _) = s
        .coordinator
        .operations
        .fleet_apply(&admin(), &text)
        .await
        .unwrap();
    assert_eq!(
        (generation, changes),
        (2, vec!["project hello changed".to_string()])
    );
    let second = s.deploy("v1", "qaprod1").await;
    let d = s.tick_until(&second, Phase::Booting, 10).await;
    assert_eq!((d.phase, d.fleet_generation), (Phase::Booting, Some(2)));

    // No agent ever calls: the second passes its boot deadline, the first
    // (30s, as when it started) does not.
    s.clock.advance(Duration::from_secs(5));
    let d = s.tick_until(&second, Phase::RollingBack, 5).await;
    assert_eq!(d.phase, Phase::RollingBack, "{:?}", d.reason);
    for _ in 0..3 {
        s.tick(&first).await.unwrap();
    }
    let d = s.stored(&first).await;
    assert_eq!((d.phase, d.fleet_generation), (Phase::Booting, Some(1)));

    // Refused whole, naming the key: nothing changes.
    let bad = SAMPLE_FLEET.replace("boot = \"30s\"", "boot = \"soon\"");
    let refused = s.coordinator.operations.fleet_apply(&admin(), &bad).await;
    assert!(
        matches!(&refused, Err(OperationError::Invalid(m)) if m.contains("boot")),
        "{refused:?}"
    );
    assert_eq!(s.coordinator.fleets.current().number, 2);
}

#[tokio::test]
async fn a_cloud_refusal_rolls_back_with_the_clouds_message() {
    let s = Sandbox::new().await;
    s.cloud.refuse_launches(CloudError::Invalid(
        "You are not authorized to perform: ec2:RunInstances".into(),
    ));
    let id = s.deploy("v1", "staging").await;
    let d = s.tick_until(&id, Phase::RolledBack, 10).await;
    assert_eq!(d.phase, Phase::RolledBack);
    let reason = d.reason.unwrap_or_default();
    assert!(
        reason.contains("launching failed: You are not authorized to perform: ec2:RunInstances"),
        "{reason}"
    );
    assert_eq!(s.cloud.launches(), 0);
}

/// A deployment cancelled while booting, whose rollback cannot terminate its
/// instance, with `describe` refused too (the cloud cannot be looked at) or not.
async fn stuck_rollback(describes_fail: bool) -> (Sandbox, String, String) {
    let s = Sandbox::new().await;
    let id = s.deploy("v1", "staging").await;
    let d = s.tick_until(&id, Phase::Booting, 10).await;
    assert_eq!(d.phase, Phase::Booting, "{d:?}");
    let instance = d.launched[0].id.clone();
    s.coordinator
        .operations
        .cancel(&admin(), &id)
        .await
        .unwrap();
    let d = s.tick_until(&id, Phase::RollingBack, 5).await;
    assert_eq!(d.phase, Phase::RollingBack);

    let throttled = CloudError::Unavailable("RequestLimitExceeded".into());
    s.cloud.refuse_terminations(throttled.clone());
    if describes_fail {
        s.cloud.refuse_describes(throttled);
    }
    for _ in 0..3 {
        assert!(s.tick(&id).await.is_err(), "the cloud refuses");
    }
    assert_eq!(
        s.stored(&id).await.phase,
        Phase::RollingBack,
        "retried before the deadline"
    );
    s.clock.advance(Duration::from_secs(3600));
    assert!(matches!(s.tick(&id).await, Ok(Step::Finished)));
    (s, id, instance)
}

#[tokio::test]
async fn cleanup_gives_up_at_its_deadline_naming_what_is_left() {
    let (s, id, instance) = stuck_rollback(false).await;
    let d = s.stored(&id).await;
    assert_eq!(d.phase, Phase::RolledBack);
    let reason = d.reason.unwrap_or_default();
    assert!(reason.starts_with("cancelled by admin; "), "{reason}");
    assert!(
        reason.contains(&format!("did not finish within 10m: {instance} left")),
        "{reason}"
    );
    assert!(reason.ends_with("by hand"), "{reason}");
}

#[tokio::test]
async fn cleanup_gives_up_at_its_deadline_when_the_cloud_cannot_be_read() {
    let (s, id, instance) = stuck_rollback(true).await;
    let d = s.stored(&id).await;
    assert_eq!(d.phase, Phase::RolledBack);
    let reason = d.reason.unwrap_or_default();
    assert!(
        reason.contains("gave up after 10m: RequestLimitExceeded"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("{instance} may be left")),
        "{reason}"
    );
}

#[tokio::test]
async fn a_cancel_racing_a_phase_change_wins_and_the_executor_backs_off() {
    let s = Sandbox::new().await;
    let id = s.deploy("v1", "staging").await;
    // The executor reads the queued deployment, and pauses right after the read.
    let gate = s.store.hold_next_get(Table::Deployments, &id);
    let executor = {
        let coordinator = s.coordinator.clone();
        let id = id.clone();
        tokio::spawn(async move {
            slipway_coordinator::executor::tick(&coordinator.executor, &id).await
        })
    };
    gate.reached().await;
    // Meanwhile the operator cancels it.
    let cancelled = s
        .coordinator
        .operations
        .cancel(&admin(), &id)
        .await
        .unwrap();
    assert_eq!(cancelled.phase, Phase::Cancelled);
    gate.open();
    // The executor decided "launch" on what it read: the store refuses that
    // change (a conflict), and it re-reads instead of launching.
    let step = executor.await.unwrap();
    assert!(matches!(step, Ok(Step::Continue)), "{step:?}");
    let d = s.stored(&id).await;
    assert_eq!(d.phase, Phase::Cancelled);
    assert!(
        d.history
            .iter()
            .all(|entry| entry.phase != Phase::Launching),
        "{:?}",
        d.history
    );
    assert!(matches!(s.tick(&id).await, Ok(Step::Finished)));
    assert_eq!(s.cloud.launches(), 0);
}

#[tokio::test]
async fn a_release_is_immutable() {
    let s = Sandbox::new().await;
    let c = &s.coordinator.operations;
    let first = c
        .register_release(
            &admin(),
            "hello",
            "v3",
            Some("ami-0aaaaaaa"),
            &Default::default(),
        )
        .await
        .unwrap();
    s.clock.advance(Duration::from_secs(60));
    let again = c
        .register_release(
            &admin(),
            "hello",
            "v3",
            Some("ami-0aaaaaaa"),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        again, first,
        "the same registration is answered, not repeated"
    );
    // Provenance cannot be added afterwards: that would change the release.
    let later = slipway_coordinator::release::Provenance {
        commit: Some("3f2c1ab".into()),
        ..Default::default()
    };
    let added = c
        .register_release(&admin(), "hello", "v3", Some("ami-0aaaaaaa"), &later)
        .await
        .unwrap_err();
    assert!(
        matches!(&added, OperationError::Invalid(m) if m.contains("registered without that provenance")),
        "{added}"
    );
    let other = c
        .register_release(
            &admin(),
            "hello",
            "v3",
            Some("ami-0bbbbbbb"),
            &Default::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&other, OperationError::FailedPrecondition(m) if m.contains("releases are immutable")),
        "{other}"
    );
    let path = c
        .register_release(
            &admin(),
            "hello",
            "v4",
            Some("/some/dir"),
            &Default::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&path, OperationError::Invalid(m) if m.contains("is not an image id")),
        "{path}"
    );
    let stored: Option<Release> = s.db.get(&Release::key_of("hello", "v3")).await.unwrap();
    assert_eq!(stored.map(|r| r.image_id), Some("ami-0aaaaaaa".to_string()));
}

#[tokio::test]
async fn a_deployer_limited_to_staging_is_refused_prod1_and_registering() {
    let s = Sandbox::new().await;
    let c = &s.coordinator.operations;
    let ci = Identity::operator("ci", "deployer", &["staging".to_string()]).unwrap();
    let refused = c
        .deploy(&ci, "hello", "v1", "prod1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, OperationError::PermissionDenied(m) if m.contains("not prod1")),
        "{refused}"
    );
    let refused = c.rollback(&ci, "hello", "prod1", None).await.unwrap_err();
    assert!(
        matches!(refused, OperationError::PermissionDenied(_)),
        "{refused}"
    );
    let id = s.deploy("v1", "prod1").await;
    let refused = c.cancel(&ci, &id).await.unwrap_err();
    assert!(
        matches!(refused, OperationError::PermissionDenied(_)),
        "{refused}"
    );
    assert_eq!(
        s.stored(&id).await.phase,
        Phase::Queued,
        "the refused cancel changed nothing"
    );
    let refused = c
        .register_release(
            &ci,
            "hello",
            "v9",
            Some("ami-0ccccccc"),
            &Default::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, OperationError::PermissionDenied(m) if m.contains("may not register releases")),
        "{refused}"
    );
    let queued = c.deploy(&ci, "hello", "v1", "staging", None).await.unwrap();
    assert_eq!(queued.environment, "staging");
    let (all, _) = c.deployments(None, None, 100, None).await.unwrap();
    assert_eq!(all.len(), 2, "only the allowed deployments were stored");
}

#[tokio::test]
async fn a_terminated_instances_agent_identity_ends_with_it() {
    let s = Sandbox::new().await;
    let id = s.deploy("v1", "staging").await;
    let d = s.tick_until(&id, Phase::Booting, 10).await;
    let instance = d.launched[0].id.clone();
    assert!(!s.coordinator.revocations.is_revoked(&instance));
    s.coordinator
        .operations
        .cancel(&admin(), &id)
        .await
        .unwrap();
    let d = s.tick_until(&id, Phase::RolledBack, 10).await;
    assert_eq!(d.phase, Phase::RolledBack);
    assert!(s.cloud.live_instances().is_empty(), "terminated");
    assert!(
        s.coordinator.revocations.is_revoked(&instance),
        "its agent's certificates are revoked with it"
    );
}

#[tokio::test]
async fn listings_come_in_pages_that_cover_everything_once() {
    let s = Sandbox::new().await;
    let c = &s.coordinator.operations;
    let mut queued = Vec::new();
    for _ in 0..5 {
        queued.push(s.deploy("v1", "staging").await);
    }
    queued.reverse();
    let (mut seen, mut before) = (Vec::new(), None);
    loop {
        let (page, next) = c
            .deployments(None, Some("staging"), 2, before)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.into_iter().map(|v| v.deployment.id));
        match next {
            Some(seq) => before = Some(seq),
            None => break,
        }
    }
    assert_eq!(seen, queued, "newest first, each once");

    for version in ["v3", "v4", "v5"] {
        c.register_release(
            &admin(),
            "hello",
            version,
            Some("ami-0aaaaaaa"),
            &Default::default(),
        )
        .await
        .unwrap();
    }
    let (mut versions, mut from) = (Vec::new(), Some(0));
    while let Some(at) = from {
        let (page, next) = c.releases(Some("hello"), at, 2).await.unwrap();
        assert!(page.len() <= 2);
        versions.extend(page.into_iter().map(|(r, _)| r.version));
        from = next;
    }
    assert_eq!(versions, ["v1", "v2", "v3", "v4", "v5"]);
}

/// Applies the sample fleet with staging frozen by `window`.
async fn freeze_staging(s: &Sandbox, window: &str) {
    let frozen = SAMPLE_FLEET.replace(
        "[environments.staging]\n",
        &format!("[environments.staging]\nfreeze = [{window}]\n"),
    );
    assert_ne!(frozen, SAMPLE_FLEET);
    s.coordinator
        .operations
        .fleet_apply(&admin(), &frozen)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_deploy_queued_in_a_freeze_waits_for_its_end_and_starts_at_that_moment() {
    let s = Sandbox::new().await;
    // START is Monday 2026-11-30 00:00 UTC, 00:00 in Lisbon (WET, UTC+0).
    freeze_staging(
        &s,
        r#"{ every = "Mon 00:00 - Mon 06:00", zone = "Europe/Lisbon", name = "maintenance" }"#,
    )
    .await;
    let id = s.deploy("v1", "staging").await;
    let other = s.deploy("v1", "qaprod1").await;
    let runnable = |ids: Vec<slipway_coordinator::deploy::Deployment>| -> Vec<String> {
        ids.into_iter().map(|d| d.id).collect()
    };

    let scheduler = &s.coordinator.scheduler;
    assert_eq!(
        runnable(scheduler.runnable().await.unwrap()),
        std::slice::from_ref(&other)
    );
    let view = s.coordinator.operations.deployment(&id).await.unwrap();
    assert_eq!(
        view.waiting_on.as_deref(),
        Some("frozen until Mon 06:00 WET (maintenance)")
    );
    // A millisecond before the end it still waits; at the end it goes.
    s.clock
        .advance(Duration::from_secs(6 * 3600) - Duration::from_millis(1));
    assert_eq!(
        runnable(scheduler.runnable().await.unwrap()),
        std::slice::from_ref(&other)
    );
    s.clock.advance(Duration::from_millis(1));
    let mut now = runnable(scheduler.runnable().await.unwrap());
    now.sort();
    let mut both = vec![other, id.clone()];
    both.sort();
    assert_eq!(now, both);
    let view = s.coordinator.operations.deployment(&id).await.unwrap();
    assert_eq!(view.waiting_on, None);
}

#[tokio::test]
async fn a_freeze_override_needs_a_frozen_queued_deployment_and_a_reason() {
    let s = Sandbox::new().await;
    freeze_staging(&s, r#"{ every = "Mon 00:00 - Mon 06:00" }"#).await;
    let ops = &s.coordinator.operations;
    let id = s.deploy("v1", "staging").await;
    let unfrozen = s.deploy("v1", "qaprod1").await;
    let refused = |e: OperationError| e.to_string();

    let no_reason = ops.override_freeze(&admin(), &id, "  ").await.unwrap_err();
    assert!(refused(no_reason).contains("say why"));
    let not_frozen = ops
        .override_freeze(&admin(), &unfrozen, "incident 7")
        .await
        .unwrap_err();
    assert_eq!(
        refused(not_frozen),
        "qaprod1 is not frozen now: there is no freeze to override"
    );
    let passed = ops
        .override_freeze(&admin(), &id, "incident 7")
        .await
        .unwrap();
    assert_eq!(
        passed.passes_freeze.as_deref(),
        Some("freeze overridden by admin: incident 7")
    );
    let twice = ops
        .override_freeze(&admin(), &id, "again")
        .await
        .unwrap_err();
    assert!(refused(twice).contains("already passes this freeze"));
    let runnable: Vec<String> = s
        .coordinator
        .scheduler
        .runnable()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert!(runnable.contains(&id), "{runnable:?}");
    let events = s.coordinator.events.after(0, 100).await.unwrap();
    let told = events
        .iter()
        .find(|e| e.kind == "deployment.freeze_overridden")
        .expect("a deployment.freeze_overridden event");
    assert_eq!(told.who.as_deref(), Some("admin"));
    assert_eq!(
        told.reason.as_deref(),
        Some("freeze overridden by admin: incident 7")
    );
}

/// `status` reads what was last seen of the load balancers: at rest it asks
/// the cloud nothing; a deployment step that changed a target, or age, has
/// that target looked at again, once, whoever asks meanwhile.
#[tokio::test]
async fn status_asks_the_cloud_only_about_what_changed_or_aged() {
    let s = Sandbox::new().await;
    let observer = &s.coordinator.observer;
    let status = || s.coordinator.operations.status(None);
    let fleet = s.coordinator.fleets.current().fleet;
    let lbs = (fleet.projects.len() * fleet.environments.len()) as u64;

    status().await.unwrap();
    let first = observer.calls();
    // Never seen: each load balancer described once and asked for its members.
    assert_eq!(first, 2 * lbs, "no instance yet: nothing to describe");
    for _ in 0..5 {
        status().await.unwrap();
    }
    assert_eq!(
        observer.calls(),
        first,
        "at rest, no cloud call per request"
    );

    // A launch changes staging: the next status looks at it alone.
    let id = s.deploy("v1", "staging").await;
    let d = s.tick_until(&id, Phase::Booting, 10).await;
    let before = observer.calls();
    let (a, b) = tokio::join!(status(), status());
    let staging = a.unwrap()[0]
        .environments
        .iter()
        .find(|e| e.name == "staging")
        .cloned()
        .unwrap();
    b.unwrap();
    assert_eq!(
        observer.calls() - before,
        1,
        "two readers of a changed target share one look; not a member of the balancer yet, so nothing to describe"
    );
    assert!(staging.instances.is_empty(), "launched, not registered");

    // What aged is looked at again: every balancer's members, one description
    // of all their instances (here none), and never a balancer's address again.
    s.clock
        .advance(slipway_coordinator::observed::MAX_AGE + std::time::Duration::from_millis(1));
    let before = observer.calls();
    status().await.unwrap();
    assert_eq!(observer.calls() - before, lbs);
    assert_eq!(d.launched.len(), 1);
}

/// An instance as another history launched it: Slipway's tags, no record here.
async fn launched_elsewhere(s: &Sandbox, deployment: &str, environment: &str) -> String {
    use slipway_coordinator::cloud::{Compute, LaunchRequest, tags};
    let tags = [
        (tags::DEPLOYMENT, deployment),
        (tags::PROJECT, "hello"),
        (tags::ENV, environment),
        (tags::SLOT, "0"),
        (tags::RELEASE, "hello@v1"),
    ];
    let request = LaunchRequest {
        image_id: "ami-0elsewhere".into(),
        client_token: format!("elsewhere-{deployment}-{environment}"),
        user_data: String::new(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        placement: Default::default(),
    };
    s.cloud.launch(request).await.unwrap().id
}

#[tokio::test]
async fn instances_no_deployment_knows_are_listed_never_adopted_and_terminated_only_when_asked() {
    let s = Sandbox::new().await;
    let ops = &s.coordinator.operations;
    let id = s.deploy("v1", "staging").await;
    s.tick_until(&id, Phase::Launching, 3).await;
    // As a store restored from an older backup leaves them: one of a
    // deployment this store never had, one of an older deployment that had
    // the id this store gave to another (prod2's, not staging's).
    let unknown = launched_elsewhere(&s, "d-99", "prod1").await;
    let reused = launched_elsewhere(&s, &id, "prod2").await;

    // The deployment launches its own; the other one with its id and slot
    // is neither adopted nor terminated as a duplicate (a tick after a
    // launch looks for instances it launched but did not record).
    s.tick(&id).await.unwrap();
    assert!(s.stored(&id).await.launch_attempted);
    s.tick(&id).await.unwrap();
    let d = s.stored(&id).await;
    assert_eq!(d.launched.len(), 1, "{:?}", d.launched);
    let own = d.launched[0].id.clone();
    assert_ne!(own, reused, "adopted an instance of another environment");
    let live = |s: &Sandbox| -> Vec<String> {
        let mut ids: Vec<String> = s.cloud.live_instances().into_iter().map(|i| i.id).collect();
        ids.sort();
        ids
    };
    let mut all = vec![unknown.clone(), reused.clone(), own.clone()];
    all.sort();
    assert_eq!(live(&s), all);

    // Listed, with what their tags say; the deployment's own is not.
    let listed = ops.orphans().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|o| o.instance_id.as_str()).collect();
    assert_eq!(ids, [unknown.as_str(), reused.as_str()]);
    assert_eq!(
        (
            listed[0].deployment.as_str(),
            listed[0].environment.as_str()
        ),
        ("d-99", "prod1")
    );
    assert_eq!(listed[1].release, "hello@v1");
    assert_eq!(live(&s), all, "listing touches nothing");

    // Terminated when asked: exactly those.
    let terminated = ops.terminate_orphans().await.unwrap();
    assert_eq!(terminated, listed);
    assert_eq!(live(&s), [own]);
    assert!(ops.orphans().await.unwrap().is_empty());
}

#[tokio::test]
async fn what_is_older_than_keep_is_compacted_and_counted_and_the_audit_log_stays() {
    use slipway_coordinator::events::Event;
    use slipway_coordinator::fleets::TakenFleet;
    use slipway_coordinator::notify::{SinkState, Undelivered};
    use slipway_coordinator::requests::RequestKey;
    use slipway_coordinator::retention;
    let s = Sandbox::new().await;
    let c = &s.coordinator;
    let old = |kind: &str| Event::new(kind, "old");
    c.events
        .tell(vec![old("test.a"), old("test.b"), old("test.c")])
        .await
        .unwrap();
    let last_old = c.events.newest().await.unwrap();
    // A notification that has dealt with every event but the last.
    s.db.put(&SinkState {
        name: "chat".into(),
        cursor: last_old - 1,
        ..Default::default()
    })
    .await
    .unwrap();
    s.db.put(&Undelivered {
        sink: "chat".into(),
        seq: 1,
        delivery: "chat-1".into(),
        kind: "test.a".into(),
        attempts: 3,
        last_error: "HTTP 500".into(),
        at: support::START,
    })
    .await
    .unwrap();
    // The fleet applied after the start's: the one in force.
    s.db.put(&TakenFleet {
        generation: 2,
        text: SAMPLE_FLEET.into(),
        start_file: String::new(),
        by: "admin".into(),
        at: support::START,
    })
    .await
    .unwrap();
    let held = c
        .requests
        .hold(RequestKey::new("admin", "deploy", "ci-1").unwrap())
        .await;
    c.requests.remember(&held, b"d-1".to_vec()).await.unwrap();
    drop(held);
    assert_eq!(
        c.retention.run_once().await.unwrap().total(),
        0,
        "nothing is 90 days old yet"
    );

    s.clock.advance(Duration::from_secs(91 * 24 * 3600));
    c.events
        .tell(vec![Event::new("test.d", "new")])
        .await
        .unwrap();
    let removed = c.retention.run_once().await.unwrap();
    assert_eq!(removed.events, last_old - 1, "{removed:?}");
    assert_eq!(
        (removed.undelivered, removed.fleets, removed.requests),
        (1, 1, 1),
        "{removed:?}"
    );
    // What a notification has not dealt with stays, and the numbering goes on.
    let left: Vec<u64> = c
        .events
        .after(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, [last_old, last_old + 1]);
    c.events
        .tell(vec![Event::new("test.e", "next")])
        .await
        .unwrap();
    assert_eq!(c.events.newest().await.unwrap(), last_old + 2);
    let fleets: Vec<TakenFleet> = s.db.all().await.unwrap();
    assert_eq!(fleets.iter().map(|f| f.generation).collect::<Vec<_>>(), [2]);

    // Counted, and audited; a second run finds nothing more.
    assert_eq!(c.retention.run_once().await.unwrap().total(), 0);
    let totals = retention::totals(&s.db).await.unwrap().unwrap();
    assert_eq!(
        (
            totals.events,
            totals.undelivered,
            totals.fleets,
            totals.requests
        ),
        (removed.events, 1, 1, 1)
    );
    let (entries, _) = c.audit.page(0, 0, 1000).await.unwrap();
    let compacted: Vec<_> = entries.iter().filter(|e| e.action == "compact").collect();
    assert_eq!(compacted.len(), 1, "{entries:?}");
    assert_eq!(
        compacted[0].result,
        format!(
            "removed 0 deployments, {} events, 1 undelivered notifications, 1 fleet files, 1 request answers",
            removed.events
        )
    );
    assert!(c.audit.verify(None).await.unwrap().is_ok());
}

#[tokio::test]
async fn old_finished_deployments_go_but_what_serves_what_rolls_back_and_gates_read_stays() {
    use slipway_coordinator::deploy::PhaseEntry;
    use slipway_coordinator::deploy::index;
    use slipway_coordinator::store::Changes;
    let s = Sandbox::new().await;
    let c = &s.coordinator;
    // Two deployments of staging that roll back (the cloud refuses launches).
    s.cloud
        .refuse_launches(CloudError::Invalid("no capacity".into()));
    let first = s.deploy("v1", "staging").await;
    s.tick_until(&first, Phase::RolledBack, 10).await;
    let second = s.deploy("v2", "staging").await;
    let template = s.tick_until(&second, Phase::RolledBack, 10).await;
    // prod1 served v1, then v2 (stored as a finished deployment is).
    for (seq, version) in [(90, "v1"), (91, "v2")] {
        let mut d = template.clone();
        d.id = format!("d-{seq}");
        d.seq = seq;
        d.version = version.into();
        d.environment = "prod1".into();
        d.phase = Phase::Succeeded;
        d.history = vec![PhaseEntry {
            phase: Phase::Succeeded,
            at: support::START,
        }];
        let mut changes = Changes::default();
        changes.put(&d).unwrap();
        for entry in index::entries(&d) {
            changes.put(&entry).unwrap();
        }
        s.db.commit(changes).await.unwrap();
    }
    // One in the queue stays whatever its age.
    let queued = s.deploy("v1", "qaprod1").await;

    s.clock.advance(Duration::from_secs(91 * 24 * 3600));
    let removed = c.retention.run_once().await.unwrap();
    assert_eq!(removed.deployments, 2, "{removed:?}");
    let mut left = Vec::new();
    for id in [
        first.as_str(),
        "d-90",
        second.as_str(),
        "d-91",
        queued.as_str(),
    ] {
        if c.deployments.get(id).await.unwrap().is_some() {
            left.push(id);
        }
    }
    // Gone: an old outcome that is not the latest, an old success that no
    // longer serves.
    assert_eq!(left, [second.as_str(), "d-91", queued.as_str()]);
    let serving = c.deployments.serving("hello", "prod1").await.unwrap();
    assert_eq!(serving.map(|d| d.id), Some("d-91".to_string()));
    let outcome = c
        .deployments
        .latest_outcome("hello", "staging")
        .await
        .unwrap();
    assert_eq!(outcome.map(|d| d.id), Some(second.clone()));
    // A rollback still finds what served before, and a gate that v1 succeeded there.
    assert_eq!(
        c.deployments
            .served_before("hello", "prod1", "v2")
            .await
            .unwrap(),
        Some("v1".to_string())
    );
    assert!(
        c.deployments
            .succeeded_in("hello", "v1", "prod1")
            .await
            .unwrap()
    );
    // The history lists what stays; a second run finds nothing more.
    let listed: Vec<slipway_coordinator::deploy::Deployment> = c
        .deployments
        .page(Some("hello"), None, None, 100)
        .await
        .unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    let mut expected = vec![second.as_str(), "d-91", queued.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(c.retention.run_once().await.unwrap().deployments, 0);
}
