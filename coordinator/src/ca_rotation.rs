//! Rotating the CA with an overlap window, as operators drive it.
//!
//! `begin` makes a new CA that signs from then on; the old one stays trusted
//! and has signed the new one's certificate (presented after the server's),
//! so agents baked with the old CA and operators' old profiles still work.
//! Agents move over as they renew (the answer carries the CAs to trust) or
//! are replaced by deploys; operators with `slipway cert renew`. `finish`
//! drops the old CA, refusing while connected agents still hold its
//! certificates unless forced.

use crate::agents::AgentHub;
use crate::operations::OperationError;
use crate::pki::Ca;

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
}

pub fn view(ca: &Ca, agents: &AgentHub) -> RotationView {
    let state = ca.rotation();
    let mut view = RotationView {
        signing: state.signing.clone(),
        previous: state.previous.clone(),
        agents_on_previous: Vec::new(),
        agents_on_signing: 0,
        agents_unknown: 0,
    };
    for (instance, signer) in agents.certificate_cas() {
        if signer == state.signing {
            view.agents_on_signing += 1;
        } else if state.previous.as_ref() == Some(&signer) {
            view.agents_on_previous.push(instance);
        } else {
            view.agents_unknown += 1;
        }
    }
    view.agents_on_previous.sort();
    view
}

pub fn begin(ca: &Ca, agents: &AgentHub) -> Result<RotationView, OperationError> {
    ca.begin_rotation().map_err(OperationError::of)?;
    Ok(view(ca, agents))
}

pub fn finish(ca: &Ca, agents: &AgentHub, force: bool) -> Result<RotationView, OperationError> {
    let before = view(ca, agents);
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
    ca.finish_rotation().map_err(OperationError::of)?;
    Ok(view(ca, agents))
}
