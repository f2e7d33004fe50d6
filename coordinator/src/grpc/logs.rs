//! `Logs`: services' output from running instances, asked of each agent over
//! its stream and merged into the caller's, each line with its instance.
//!
//! Bounded like the event stream: a caller that does not read for `SLOW` is
//! cut off, and each agent's answer is asked to stop when the caller goes.

use std::sync::Arc;
use std::time::Duration;

use slipway_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::agents::AgentHub;
use crate::stopping::Stopping;

/// Lines queued for one caller.
const QUEUE: usize = 1024;
/// How long a full queue may stay full before the caller is cut off.
const SLOW: Duration = Duration::from_secs(10);

pub type LogStream = ReceiverStream<Result<pb::LogLine, Status>>;

/// Which output, of which instances.
#[derive(Debug, Clone)]
pub struct Asked {
    pub instances: Vec<String>,
    pub service: Option<String>,
    pub lines: u32,
    pub follow: bool,
}

pub fn stream(agents: Arc<AgentHub>, stopping: Stopping, asked: Asked) -> LogStream {
    let (tx, rx) = mpsc::channel(QUEUE);
    for instance in asked.instances {
        let Some((request, mut chunks)) =
            agents.tail(&instance, asked.service.clone(), asked.lines, asked.follow)
        else {
            let _ = tx.try_send(Ok(line(&instance, "", "(its agent is not connected)")));
            continue;
        };
        let (tx, agents, stopping) = (tx.clone(), agents.clone(), stopping.clone());
        tokio::spawn(async move {
            let forwarded = async {
                while let Some(chunk) = chunks.recv().await {
                    for text in &chunk.lines {
                        let sent = tokio::time::timeout(
                            SLOW,
                            tx.send(Ok(line(&instance, &chunk.service, text))),
                        )
                        .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            return;
                        }
                    }
                    if let Some(error) = &chunk.error {
                        let said = format!("(cannot read it: {error})");
                        let _ = tx.send(Ok(line(&instance, &chunk.service, &said))).await;
                    }
                    if chunk.done {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = forwarded => {}
                _ = tx.closed() => {}
                _ = stopping.asked() => {}
            }
            agents.stop_tail(request);
        });
    }
    ReceiverStream::new(rx)
}

fn line(instance: &str, service: &str, text: &str) -> pb::LogLine {
    pb::LogLine {
        instance: instance.to_string(),
        service: service.to_string(),
        line: text.to_string(),
    }
}
