//! Rotating the CA with an overlap window, as operators drive it.
//!
//! `begin` makes a new CA that signs from then on; the old one stays trusted
//! and has signed the new one's certificate (presented after the server's),
//! so agents baked with the old CA and operators' old profiles still work.
//! Agents move over as they renew (the answer carries the CAs to trust) or
//! are replaced by deploys; operators with `slipway cert renew`. `finish`
//! drops the old CA, refusing while connected agents still hold its
//! certificates unless forced.
//!
//! The leader writes each step to the store (fingerprints only: the keys stay
//! files); standbys follow it from their own `ca/` (`follow`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::agents::AgentHub;
use crate::operations::OperationError;
use crate::pki::{Ca, RotationState};
use crate::store::{Db, Record, StoreError, Table};

/// Where a rotation stands, and who is still on the previous CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationView {
    pub signing: String,
    pub previous: Option<String>,
    /// Connected agents whose certificate the previous CA signed.
    pub agents_on_previous: Vec<String>,
    pub agents_on_signing: usize,
    /// Connected through a standby: their certificate is not seen here.
    pub agents_unknown: usize,
    /// Connected with a certificate of a CA no longer trusted (a forced
    /// finish): refused at their next reconnect.
    pub agents_on_retired: Vec<String>,
}

/// The leader's step, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Published {
    state: RotationState,
}

impl Record for Published {
    const TABLE: Table = Table::Ca;
    fn key(&self) -> String {
        KEY.to_string()
    }
}

const KEY: &str = "rotation";

pub struct CaRotation {
    ca: Arc<Ca>,
    agents: Arc<AgentHub>,
    db: Db,
    /// What a standby last said it lacks: said again only when it changes.
    said: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for CaRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaRotation")
    }
}

impl CaRotation {
    pub fn new(ca: Arc<Ca>, agents: Arc<AgentHub>, db: Db) -> CaRotation {
        CaRotation {
            ca,
            agents,
            db,
            said: Default::default(),
        }
    }

    pub fn view(&self) -> RotationView {
        let state = self.ca.rotation();
        let mut view = RotationView {
            signing: state.signing.clone(),
            previous: state.previous.clone(),
            agents_on_previous: Vec::new(),
            agents_on_signing: 0,
            agents_unknown: 0,
            agents_on_retired: Vec::new(),
        };
        for (instance, signer) in self.agents.certificate_cas() {
            if signer == state.signing {
                view.agents_on_signing += 1;
            } else if state.previous.as_ref() == Some(&signer) {
                view.agents_on_previous.push(instance);
            } else if signer.is_empty() {
                view.agents_unknown += 1;
            } else {
                view.agents_on_retired.push(instance);
            }
        }
        view.agents_on_previous.sort();
        view.agents_on_retired.sort();
        view
    }

    pub async fn begin(&self) -> Result<RotationView, OperationError> {
        self.ca.begin_rotation().map_err(OperationError::of)?;
        self.publish().await?;
        Ok(self.view())
    }

    pub async fn finish(&self, force: bool) -> Result<RotationView, OperationError> {
        let before = self.view();
        let Some(previous) = &before.previous else {
            return Err(OperationError::FailedPrecondition(
                "no CA rotation is under way: start one with `slipway ca rotate`".into(),
            ));
        };
        if !force && !before.agents_on_previous.is_empty() {
            let count = before.agents_on_previous.len();
            let shown: Vec<&str> = before
                .agents_on_previous
                .iter()
                .take(5)
                .map(String::as_str)
                .collect();
            return Err(OperationError::FailedPrecondition(format!(
                "{count} connected agent(s) still hold certificates of the previous CA {previous} ({}{}): \
                 wait for them to renew (`slipway ca status`), or --force to drop them at their next reconnect",
                shown.join(", "),
                if count > shown.len() { ", …" } else { "" }
            )));
        }
        self.ca.finish_rotation().map_err(OperationError::of)?;
        self.publish().await?;
        Ok(self.view())
    }

    /// Writes the step this coordinator's CA is at, for standbys.
    async fn publish(&self) -> Result<(), StoreError> {
        self.db
            .put(&Published {
                state: self.ca.rotation(),
            })
            .await
    }

    /// At a leader's start: publishes its CA's step, unless the store names
    /// another one (this host missed a step taken elsewhere), which it says
    /// loudly and leaves: publishing would send standbys backwards.
    pub async fn take_up(&self) -> Result<(), StoreError> {
        let mine = self.ca.rotation();
        match self.db.get::<Published>(KEY).await? {
            Some(stored) if stored.state != mine => error!(
                stored = ?stored.state,
                this_host = ?mine,
                "this host's CA (DATA_DIR/ca/) is not the one the last leader used: agents and operators that moved to it will be refused; copy that host's ca/ here and restart"
            ),
            Some(_) => {}
            None => self.publish().await?,
        }
        Ok(())
    }

    /// On a standby: takes up the leader's latest step (`Ca::follow`).
    pub async fn follow(&self) {
        let stored = match self.db.get::<Published>(KEY).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return,
            Err(e) => return warn!(error = %e, "standby: cannot read the CA rotation"),
        };
        match self.ca.follow(&stored.state) {
            Ok(followed) => {
                if followed.changed {
                    info!(signing = %stored.state.signing, previous = ?stored.state.previous, "standby: CA rotation step taken up");
                }
                let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
                if followed.behind != *said
                    && let Some(behind) = &followed.behind
                {
                    warn!("standby: {behind}");
                }
                *said = followed.behind;
            }
            Err(e) => warn!(error = %e, "standby: cannot take up the CA rotation"),
        }
    }
}
