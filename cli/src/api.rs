//! The coordinator's operator calls, in the CLI's own types (`schema`): the one
//! module besides `client` that sees the wire, so commands never do.

use slipway_proto::v1 as pb;

use crate::client::Client;
use crate::failure::Failure;
use crate::schema::{self, present, rfc3339};

/// A page of the audit log and where the next one starts (None: the last).
pub struct AuditPage {
    pub entries: Vec<schema::AuditEntry>,
    pub next_after_seq: Option<u64>,
}

/// Which events to watch.
#[derive(Debug, Clone, Default)]
pub struct EventsAsked {
    /// After this sequence number (0: from the first).
    pub after: u64,
    /// Only those after the newest stored now.
    pub from_now: bool,
    pub since_ms: i64,
    pub project: Option<String>,
    pub environment: Option<String>,
    pub deployment: Option<String>,
    pub follow: bool,
}

/// Events as they come from one `WatchEvents` stream.
pub struct EventFeed(tonic::Streaming<pb::Event>);

/// How a stream of events failed: refused or unreachable when opened, or
/// broken while read (a coordinator killed mid-stream).
pub enum Broke {
    Opening(tonic::Status),
    Reading(tonic::Status),
}

impl EventFeed {
    /// The next event; None when the stream ended.
    pub async fn next(&mut self) -> Result<Option<schema::Event>, Broke> {
        Ok(self.0.message().await.map_err(Broke::Reading)?.map(event))
    }
}

/// Which output `logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogsAsked {
    pub project: String,
    pub environment: String,
    pub instance: Option<String>,
    pub service: Option<String>,
    pub lines: u32,
    pub follow: bool,
}

/// Lines as they come from one `Logs` stream.
pub struct LogFeed(tonic::Streaming<pb::LogLine>);

impl LogFeed {
    /// The next line; None when the stream ended.
    pub async fn next(&mut self) -> Result<Option<schema::LogLine>, Broke> {
        Ok(self
            .0
            .message()
            .await
            .map_err(Broke::Reading)?
            .map(|l| schema::LogLine {
                instance_id: l.instance,
                service: l.service,
                line: l.line,
            }))
    }
}

impl Client {
    pub async fn logs(&mut self, asked: &LogsAsked) -> Result<LogFeed, Broke> {
        let request = pb::LogsRequest {
            project: asked.project.clone(),
            environment: asked.environment.clone(),
            instance: asked.instance.clone().unwrap_or_default(),
            service: asked.service.clone().unwrap_or_default(),
            lines: asked.lines,
            follow: asked.follow,
        };
        let answer = self
            .call(request, |mut api, r| async move { api.logs(r).await })
            .await
            .map_err(Broke::Opening)?;
        Ok(LogFeed(answer.into_inner()))
    }

    /// Wakes the receiver at each event of `deployment` from now on, over a
    /// stream of its own (reconnected after the last event seen if it
    /// breaks), so a follower need not poll. Ends when the receiver is dropped.
    pub fn wake_on_events(&self, deployment: &str) -> tokio::sync::mpsc::Receiver<()> {
        let (wake, woken) = tokio::sync::mpsc::channel(1);
        let mut api = self.api.clone();
        let mut request = pb::WatchEventsRequest {
            deployment: deployment.to_string(),
            follow: true,
            from_now: true,
            ..Default::default()
        };
        tokio::spawn(async move {
            while !wake.is_closed() {
                if let Ok(answer) = api.watch_events(request.clone()).await {
                    let mut stream = answer.into_inner();
                    while let Ok(Some(event)) = stream.message().await {
                        request.after = event.seq;
                        request.from_now = false;
                        // Full: a wake is pending already, which is enough.
                        if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) =
                            wake.try_send(())
                        {
                            return;
                        }
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
        woken
    }

    pub async fn notifications(&mut self) -> Result<schema::Notifications, Failure> {
        let answer = self
            .call(pb::NotificationsRequest {}, |mut api, r| async move {
                api.notifications(r).await
            })
            .await;
        let answer = self.answer(answer)?;
        let when = |ms: i64| (ms > 0).then(|| rfc3339(ms));
        let ms = |ms: i64| (ms > 0).then_some(ms);
        Ok(schema::Notifications {
            notifications: answer
                .notifications
                .into_iter()
                .map(|n| schema::NotificationState {
                    name: n.name,
                    kind: n.kind,
                    target: n.target,
                    cursor: n.cursor,
                    newest: n.newest,
                    pending: n.pending,
                    delivered: n.delivered,
                    attempts: n.attempts,
                    failing_since: when(n.failing_since_ms),
                    failing_since_ms: ms(n.failing_since_ms),
                    last_error: present(n.last_error),
                    last_attempt: when(n.last_attempt_ms),
                    last_attempt_ms: ms(n.last_attempt_ms),
                    recent: n
                        .recent
                        .into_iter()
                        .map(|a| schema::DeliveryAttempt {
                            seq: a.seq,
                            delivery: a.delivery,
                            at: rfc3339(a.at_ms),
                            at_ms: a.at_ms,
                            error: present(a.error),
                        })
                        .collect(),
                    next: n
                        .next
                        .into_iter()
                        .map(|p| schema::PendingDelivery {
                            seq: p.seq,
                            delivery: p.delivery,
                            kind: p.kind,
                            summary: p.summary,
                        })
                        .collect(),
                })
                .collect(),
            undelivered: answer
                .undelivered
                .into_iter()
                .map(|u| schema::Undelivered {
                    notification: u.notification,
                    seq: u.seq,
                    delivery: u.delivery,
                    kind: u.kind,
                    attempts: u.attempts,
                    last_error: u.last_error,
                    at: rfc3339(u.at_ms),
                    at_ms: u.at_ms,
                })
                .collect(),
        })
    }

    pub async fn watch_events(&mut self, asked: &EventsAsked) -> Result<EventFeed, Broke> {
        let request = pb::WatchEventsRequest {
            after: asked.after,
            since_ms: asked.since_ms,
            project: asked.project.clone().unwrap_or_default(),
            environment: asked.environment.clone().unwrap_or_default(),
            deployment: asked.deployment.clone().unwrap_or_default(),
            follow: asked.follow,
            from_now: asked.from_now,
        };
        let answer = self
            .call(
                request,
                |mut api, r| async move { api.watch_events(r).await },
            )
            .await
            .map_err(Broke::Opening)?;
        Ok(EventFeed(answer.into_inner()))
    }

    pub async fn register_release(
        &mut self,
        project: String,
        version: String,
        image: Option<String>,
        provenance: schema::Provenance,
    ) -> Result<schema::Release, Failure> {
        let request = pb::RegisterReleaseRequest {
            project,
            version,
            image_id: image.unwrap_or_default(),
            provenance: Some(pb::Provenance {
                commit: provenance.commit.unwrap_or_default(),
                repository: provenance.repository.unwrap_or_default(),
                build_url: provenance.build_url.unwrap_or_default(),
                built_by: provenance.built_by.unwrap_or_default(),
            }),
        };
        let answer = self
            .call(request, |mut api, r| async move {
                api.register_release(r).await
            })
            .await;
        Ok(release(self.answer(answer)?))
    }

    pub async fn check_release(
        &mut self,
        project: String,
        version: String,
        name: String,
        passed: bool,
        url: Option<String>,
    ) -> Result<schema::ReleaseCheck, Failure> {
        let request = pb::CheckReleaseRequest {
            project,
            version,
            name,
            passed,
            url: url.unwrap_or_default(),
        };
        let answer = self
            .call(
                request,
                |mut api, r| async move { api.check_release(r).await },
            )
            .await;
        Ok(release_check(self.answer(answer)?))
    }

    /// Every registered release (of `project`), page by page.
    pub async fn releases(
        &mut self,
        project: Option<String>,
    ) -> Result<Vec<schema::Release>, Failure> {
        let mut releases = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::ListReleasesRequest {
                project: project.clone().unwrap_or_default(),
                limit: 0,
                page_token,
            };
            let answer = self
                .call(
                    request,
                    |mut api, r| async move { api.list_releases(r).await },
                )
                .await;
            let page = self.answer(answer)?;
            releases.extend(page.releases.into_iter().map(release));
            if page.next_page_token.is_empty() {
                return Ok(releases);
            }
            page_token = page.next_page_token;
        }
    }

    pub async fn deploy(
        &mut self,
        project: String,
        version: String,
        environment: String,
    ) -> Result<schema::Deployment, Failure> {
        let request = pb::DeployRequest {
            project,
            version,
            environment,
        };
        let answer = self
            .call(request, |mut api, r| async move { api.deploy(r).await })
            .await;
        Ok(deployment(self.answer(answer)?))
    }

    pub async fn rollback(
        &mut self,
        project: String,
        environment: String,
    ) -> Result<schema::Deployment, Failure> {
        let request = pb::RollbackRequest {
            project,
            environment,
        };
        let answer = self
            .call(request, |mut api, r| async move { api.rollback(r).await })
            .await;
        Ok(deployment(self.answer(answer)?))
    }

    pub async fn cancel(&mut self, id: String) -> Result<schema::Deployment, Failure> {
        let answer = self
            .call(pb::CancelRequest { id }, |mut api, r| async move {
                api.cancel(r).await
            })
            .await;
        Ok(deployment(self.answer(answer)?))
    }

    pub async fn override_freeze(
        &mut self,
        id: String,
        reason: String,
    ) -> Result<schema::Deployment, Failure> {
        let answer = self
            .api
            .override_freeze(pb::OverrideFreezeRequest { id, reason })
            .await;
        Ok(deployment(self.answer(answer)?))
    }

    pub async fn approve(&mut self, id: String) -> Result<schema::Deployment, Failure> {
        let answer = self
            .call(pb::ApproveRequest { id }, |mut api, r| async move {
                api.approve(r).await
            })
            .await;
        Ok(deployment(self.answer(answer)?))
    }

    /// One deployment; `Err(status)` is kept for a caller that retries.
    pub async fn try_deployment(&mut self, id: &str) -> Result<schema::Deployment, tonic::Status> {
        let request = pb::GetDeploymentRequest { id: id.to_string() };
        let reply = self
            .call(
                request,
                |mut api, r| async move { api.get_deployment(r).await },
            )
            .await?;
        Ok(deployment(reply.into_inner()))
    }

    pub async fn deployment(&mut self, id: &str) -> Result<schema::Deployment, Failure> {
        self.try_deployment(id)
            .await
            .map_err(|status| self.failure(&status))
    }

    /// History, newest first: at most `limit` (0: all), page by page.
    pub async fn deployments(
        &mut self,
        project: Option<String>,
        environment: Option<String>,
        limit: u32,
    ) -> Result<Vec<schema::Deployment>, Failure> {
        let mut deployments = Vec::new();
        let mut page_token = String::new();
        loop {
            let wanted = match limit {
                0 => 0,
                n => n.saturating_sub(u32::try_from(deployments.len()).unwrap_or(u32::MAX)),
            };
            let request = pb::DeploymentsRequest {
                project: project.clone().unwrap_or_default(),
                environment: environment.clone().unwrap_or_default(),
                limit: wanted,
                page_token,
            };
            let answer = self
                .call(
                    request,
                    |mut api, r| async move { api.deployments(r).await },
                )
                .await;
            let page = self.answer(answer)?;
            deployments.extend(page.deployments.into_iter().map(deployment));
            let enough = limit > 0 && deployments.len() >= limit as usize;
            if enough || page.next_page_token.is_empty() {
                return Ok(deployments);
            }
            page_token = page.next_page_token;
        }
    }

    pub async fn queue(&mut self) -> Result<Vec<schema::QueueTarget>, Failure> {
        let answer = self
            .call(pb::QueueRequest {}, |mut api, r| async move {
                api.queue(r).await
            })
            .await;
        Ok(self
            .answer(answer)?
            .targets
            .into_iter()
            .map(|t| schema::QueueTarget {
                project: t.project,
                environment: t.environment,
                active: t.active.map(deployment),
                waiting: t.waiting.into_iter().map(deployment).collect(),
            })
            .collect())
    }

    pub async fn status(
        &mut self,
        project: Option<String>,
    ) -> Result<Vec<schema::Project>, Failure> {
        let request = pb::StatusRequest {
            project: project.unwrap_or_default(),
        };
        let answer = self
            .call(request, |mut api, r| async move { api.status(r).await })
            .await;
        Ok(self
            .answer(answer)?
            .projects
            .into_iter()
            .map(project_status)
            .collect())
    }

    pub async fn agents(&mut self, project: Option<String>) -> Result<Vec<schema::Agent>, Failure> {
        let request = pb::AgentsRequest {
            project: project.unwrap_or_default(),
        };
        let answer = self
            .call(request, |mut api, r| async move { api.agents(r).await })
            .await;
        Ok(self.answer(answer)?.agents.into_iter().map(agent).collect())
    }

    pub async fn promote(
        &mut self,
        project: String,
        environment: String,
        override_freeze: Option<String>,
    ) -> Result<schema::PublicRecord, Failure> {
        let request = pb::PromoteRequest {
            project,
            environment,
            override_freeze: override_freeze.unwrap_or_default(),
        };
        let answer = self
            .call(request, |mut api, r| async move { api.promote(r).await })
            .await;
        Ok(public_record(self.answer(answer)?))
    }

    /// With `apply`, makes the changes; else only lists them.
    pub async fn infra(&mut self, apply: bool) -> Result<Vec<String>, Failure> {
        let answer = if apply {
            self.call(pb::InfraRequest {}, |mut api, r| async move {
                api.infra_apply(r).await
            })
            .await
        } else {
            self.call(pb::InfraRequest {}, |mut api, r| async move {
                api.infra_plan(r).await
            })
            .await
        };
        Ok(self.answer(answer)?.changes)
    }

    /// Instances Slipway tagged that no deployment knows about; with
    /// `terminate`, terminated.
    pub async fn infra_orphans(&mut self, terminate: bool) -> Result<schema::Orphans, Failure> {
        let answer = self
            .call(
                pb::InfraOrphansRequest { terminate },
                |mut api, r| async move { api.infra_orphans(r).await },
            )
            .await;
        let answer = self.answer(answer)?;
        Ok(schema::Orphans {
            orphans: answer
                .orphans
                .into_iter()
                .map(|o| schema::Orphan {
                    instance_id: o.instance_id,
                    project: o.project,
                    environment: o.environment,
                    deployment: o.deployment_id,
                    release: o.release,
                    private_ip: present(o.private_ip),
                })
                .collect(),
            terminated: answer.terminated,
        })
    }

    pub async fn audit_page(
        &mut self,
        since_ms: i64,
        after_seq: u64,
    ) -> Result<AuditPage, Failure> {
        let request = pb::AuditRequest {
            since_ms,
            after_seq,
            limit: 0,
        };
        let answer = self
            .call(request, |mut api, r| async move { api.audit(r).await })
            .await;
        let page = self.answer(answer)?;
        Ok(AuditPage {
            entries: page.entries.into_iter().map(audit_entry).collect(),
            next_after_seq: (page.next_after_seq > after_seq).then_some(page.next_after_seq),
        })
    }

    /// Checks the chain, and against an anchor `(count, hash)` if given.
    pub async fn audit_verify(
        &mut self,
        anchor: Option<(u64, String)>,
    ) -> Result<schema::AuditVerdict, Failure> {
        let (anchor_seq, anchor_hash) = anchor.unwrap_or_default();
        let request = pb::AuditVerifyRequest {
            anchor_seq,
            anchor_hash,
        };
        let answer = self
            .call(
                request,
                |mut api, r| async move { api.audit_verify(r).await },
            )
            .await;
        let v = self.answer(answer)?;
        Ok(schema::AuditVerdict {
            intact: v.intact,
            entries: v.entries,
            first_broken: (!v.intact).then_some(v.first_broken),
            reason: present(v.reason),
            head_hash: present(v.head_hash),
        })
    }

    /// Signs `csr_pem`; returns the certificate, the CA and the expiry (ms).
    pub async fn issue_certificate(
        &mut self,
        name: String,
        role: String,
        environments: Vec<String>,
        days: u32,
        csr_pem: String,
    ) -> Result<(String, String, i64), Failure> {
        let request = pb::IssueCertificateRequest {
            name,
            role,
            environments,
            days,
            csr_pem,
        };
        let answer = self
            .call(request, |mut api, r| async move {
                api.issue_certificate(r).await
            })
            .await;
        let issued = self.answer(answer)?;
        Ok((issued.certificate_pem, issued.ca_pem, issued.expires_at_ms))
    }

    /// A certificate for the caller's own identity, from the CA that signs now.
    pub async fn renew_certificate(
        &mut self,
        csr_pem: String,
    ) -> Result<(String, String, i64), Failure> {
        let answer = self
            .call(
                pb::RenewCertificateRequest { csr_pem },
                |mut api, r| async move { api.renew_certificate(r).await },
            )
            .await;
        let renewed = self.answer(answer)?;
        Ok((
            renewed.certificate_pem,
            renewed.ca_pem,
            renewed.expires_at_ms,
        ))
    }

    /// `step`: "begin", "finish", or "" for where the rotation stands.
    pub async fn rotate_ca(
        &mut self,
        step: &str,
        force: bool,
    ) -> Result<schema::CaRotation, Failure> {
        let request = pb::CaRotationRequest {
            step: step.to_string(),
            force,
        };
        let answer = self
            .call(request, |mut api, r| async move { api.rotate_ca(r).await })
            .await;
        let r = self.answer(answer)?;
        Ok(schema::CaRotation {
            signing: r.signing,
            previous: (!r.previous.is_empty()).then_some(r.previous),
            agents_on_previous: r.agents_on_previous,
            agents_on_signing: r.agents_on_signing,
            agents_unknown: r.agents_unknown,
            agents_on_retired: r.agents_on_retired,
        })
    }

    pub async fn set_secret(
        &mut self,
        environment: String,
        project: Option<String>,
        key: String,
        value: String,
    ) -> Result<schema::Secret, Failure> {
        let request = pb::SetSecretRequest {
            environment,
            key,
            value,
            project: project.unwrap_or_default(),
        };
        let answer = self
            .call(request, |mut api, r| async move { api.set_secret(r).await })
            .await;
        Ok(secret(self.answer(answer)?))
    }

    pub async fn delete_secret(
        &mut self,
        environment: String,
        project: Option<String>,
        key: String,
    ) -> Result<schema::Secret, Failure> {
        let request = pb::DeleteSecretRequest {
            environment,
            key,
            project: project.unwrap_or_default(),
        };
        let answer = self
            .call(
                request,
                |mut api, r| async move { api.delete_secret(r).await },
            )
            .await;
        Ok(secret(self.answer(answer)?))
    }

    pub async fn rotate_secrets_key(&mut self) -> Result<schema::SecretsKeyRotated, Failure> {
        let answer = self
            .call(pb::RotateSecretsKeyRequest {}, |mut api, r| async move {
                api.rotate_secrets_key(r).await
            })
            .await;
        let rotated = self.answer(answer)?;
        Ok(schema::SecretsKeyRotated {
            resealed: rotated.resealed,
            from_key: rotated.from_key,
            to_key: rotated.to_key,
        })
    }

    pub async fn secrets(
        &mut self,
        environment: Option<String>,
    ) -> Result<Vec<schema::Secret>, Failure> {
        let request = pb::ListSecretsRequest {
            environment: environment.unwrap_or_default(),
        };
        let answer = self
            .call(
                request,
                |mut api, r| async move { api.list_secrets(r).await },
            )
            .await;
        Ok(self
            .answer(answer)?
            .secrets
            .into_iter()
            .map(secret)
            .collect())
    }

    pub async fn revoke(&mut self, name: String) -> Result<schema::Revoked, Failure> {
        let answer = self
            .call(pb::RevokeRequest { name }, |mut api, r| async move {
                api.revoke(r).await
            })
            .await;
        let revoked = self.answer(answer)?;
        Ok(schema::Revoked {
            name: revoked.name,
            stream_closed: revoked.stream_closed,
        })
    }

    /// Mints a dashboard token and the URL that carries it.
    pub async fn dashboard_url(&mut self, name: String) -> Result<schema::DashboardToken, Failure> {
        let answer = self
            .api
            .dashboard_url(pb::DashboardUrlRequest { name })
            .await;
        Ok(dashboard_token(self.answer(answer)?))
    }

    pub async fn dashboard_tokens(&mut self) -> Result<Vec<schema::DashboardToken>, Failure> {
        let answer = self
            .api
            .dashboard_tokens(pb::DashboardTokensRequest {})
            .await;
        Ok(self
            .answer(answer)?
            .tokens
            .into_iter()
            .map(dashboard_token)
            .collect())
    }

    pub async fn revoke_dashboard(
        &mut self,
        id: Option<String>,
    ) -> Result<schema::DashboardRevoked, Failure> {
        let request = pb::RevokeDashboardRequest {
            all: id.is_none(),
            id: id.unwrap_or_default(),
        };
        let answer = self
            .call(request, |mut api, r| async move {
                api.revoke_dashboard(r).await
            })
            .await;
        Ok(schema::DashboardRevoked {
            revoked: self.answer(answer)?.revoked,
        })
    }

    /// What a new fleet file would change.
    pub async fn fleet_diff(&mut self, text: String) -> Result<Vec<String>, Failure> {
        let answer = self
            .call(pb::FleetFile { text }, |mut api, r| async move {
                api.fleet_diff(r).await
            })
            .await;
        Ok(self.answer(answer)?.changes)
    }

    /// Takes a new fleet file.
    pub async fn fleet_apply(&mut self, text: String) -> Result<schema::FleetApplied, Failure> {
        let answer = self
            .call(pb::FleetFile { text }, |mut api, r| async move {
                api.apply_fleet(r).await
            })
            .await;
        let applied = self.answer(answer)?;
        Ok(schema::FleetApplied {
            generation: applied.generation,
            changes: applied.changes,
            infra: applied.infra,
        })
    }

    pub async fn server_version(&mut self) -> Result<String, Failure> {
        let answer = self
            .call(pb::VersionRequest {}, |mut api, r| async move {
                api.version(r).await
            })
            .await;
        Ok(self.answer(answer)?.version)
    }
}

fn release(r: pb::Release) -> schema::Release {
    schema::Release {
        project: r.project,
        version: r.version,
        image_id: r.image_id,
        registered_at: rfc3339(r.registered_at_ms),
        registered_at_ms: r.registered_at_ms,
        registered_by: r.registered_by,
        owner_account: present(r.owner_account),
        checks: r.checks.into_iter().map(release_check).collect(),
        provenance: r.provenance.map(provenance),
    }
}

fn provenance(p: pb::Provenance) -> schema::Provenance {
    schema::Provenance {
        commit: present(p.commit),
        repository: present(p.repository),
        build_url: present(p.build_url),
        built_by: present(p.built_by),
    }
}

/// A proto enum value as the JSON names it: `PHASE_ROLLED_BACK` → `rolled_back`.
fn enum_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// `rolled_back`, as DESIGN.md names phases.
fn phase(p: pb::Phase) -> String {
    enum_name(p.as_str_name(), "PHASE_")
}

fn deployment(d: pb::Deployment) -> schema::Deployment {
    schema::Deployment {
        phase: phase(d.phase()),
        id: d.id,
        project: d.project,
        version: d.version,
        image_id: d.image_id,
        environment: d.environment,
        finished: d.finished,
        requested_by: d.requested_by,
        requested_at: rfc3339(d.requested_at_ms),
        requested_at_ms: d.requested_at_ms,
        phases: d
            .phases
            .into_iter()
            .map(|p| schema::PhaseTime {
                phase: phase(p.phase()),
                at: rfc3339(p.at_ms),
                at_ms: p.at_ms,
            })
            .collect(),
        reason: present(d.reason),
        waiting_on: present(d.waiting_on),
        new_instances: d.new_instances,
        old_instances: d.old_instances,
        cancel_requested: d.cancel_requested,
        migration: d.migration.map(|m| schema::Migration {
            store: m.store,
            state: m.state,
            instance_id: present(m.instance),
            detail: present(m.detail),
            output: m.output,
        }),
        config: d.config.map(|c| schema::Config {
            variables: c.variables.into_iter().collect(),
            secrets: c.secrets,
            digest: c.digest,
        }),
        fleet_generation: (d.fleet_generation > 0).then_some(d.fleet_generation),
        approved_by: present(d.approved_by),
        rollback_requested_by: present(d.rollback_requested_by),
        passes_freeze: present(d.passes_freeze),
        provenance: d.provenance.map(provenance),
    }
}

fn connection(c: pb::AgentConnection) -> String {
    enum_name(c.as_str_name(), "AGENT_CONNECTION_")
}

fn service(s: pb::ServiceState) -> schema::Service {
    let status = s.status();
    schema::Service {
        state: match status {
            pb::ServiceStatus::Unspecified => "unknown".to_string(),
            _ => enum_name(status.as_str_name(), "SERVICE_STATUS_"),
        },
        name: s.name,
        restarts: s.restarts,
        detail: present(s.detail),
    }
}

fn public_record(r: pb::PublicRecord) -> schema::PublicRecord {
    schema::PublicRecord {
        project: r.project,
        name: r.name,
        environment: present(r.environment),
        endpoint: present(r.endpoint),
        previous_environment: present(r.previous_environment),
        pending: r.pending,
        dns_error: present(r.dns_error),
        awaiting_approval: present(r.awaiting_approval),
    }
}

fn project_status(p: pb::ProjectStatus) -> schema::Project {
    schema::Project {
        name: p.name,
        environments: p
            .environments
            .into_iter()
            .map(|e| schema::Environment {
                name: e.name,
                active_version: present(e.active_version),
                active_provenance: e.active_provenance.map(provenance),
                load_balancer: e.load_balancer,
                endpoint: present(e.endpoint),
                instances: e
                    .instances
                    .into_iter()
                    .map(|i| schema::Instance {
                        agent: connection(i.agent()),
                        instance_id: i.instance_id,
                        private_ip: present(i.private_ip),
                        state: i.state,
                        ready: i.ready,
                        in_service: i.in_service,
                        standby: i.standby,
                        services: i.services.into_iter().map(service).collect(),
                    })
                    .collect(),
                in_flight: e.in_flight.map(deployment),
                queued: e.queued,
            })
            .collect(),
        public_record: p.public_record.map(public_record),
    }
}

fn agent(a: pb::Agent) -> schema::Agent {
    let seen = (a.last_seen_ms > 0).then_some(a.last_seen_ms);
    schema::Agent {
        agent: connection(a.connection()),
        instance_id: a.instance_id,
        project: a.project,
        environment: a.environment,
        deployment: a.deployment_id,
        last_seen: seen.map(rfc3339),
        last_seen_ms: seen,
        ready: a.ready,
        agent_version: present(a.agent_version),
        agent_protocol: (a.agent_protocol > 0).then_some(a.agent_protocol),
        image_id: a.image_id,
        private_ip: present(a.private_ip),
    }
}

fn audit_entry(e: pb::AuditEntry) -> schema::AuditEntry {
    schema::AuditEntry {
        seq: e.seq,
        at: rfc3339(e.at_ms),
        at_ms: e.at_ms,
        who: e.who,
        role: present(e.role),
        certificate: present(e.certificate),
        action: e.action,
        target: e.target,
        result: e.result,
        project: present(e.project),
        environment: present(e.environment),
        version: present(e.version),
        deployment: present(e.deployment),
        hash: e.hash,
    }
}

fn event(e: pb::Event) -> schema::Event {
    schema::Event {
        seq: e.seq,
        at: rfc3339(e.at_ms),
        at_ms: e.at_ms,
        kind: e.kind,
        project: present(e.project),
        environment: present(e.environment),
        version: present(e.version),
        deployment: present(e.deployment),
        who: present(e.who),
        reason: present(e.reason),
        summary: e.summary,
        provenance: e.provenance.map(provenance),
    }
}

fn secret(s: pb::Secret) -> schema::Secret {
    schema::Secret {
        environment: present(s.environment),
        project: present(s.project),
        data_store: present(s.data_store),
        notification: present(s.notification),
        key: s.key,
    }
}

fn dashboard_token(t: pb::DashboardToken) -> schema::DashboardToken {
    schema::DashboardToken {
        url: present(t.url),
        id: t.id,
        name: t.name,
        created_by: t.created_by,
        created_at: rfc3339(t.created_at_ms),
        created_at_ms: t.created_at_ms,
        revoked: t.revoked,
    }
}

fn release_check(c: pb::ReleaseCheck) -> schema::ReleaseCheck {
    schema::ReleaseCheck {
        project: c.project,
        version: c.version,
        name: c.name,
        passed: c.passed,
        url: present(c.url),
        by: c.by,
        at: rfc3339(c.at_ms),
        at_ms: c.at_ms,
    }
}
