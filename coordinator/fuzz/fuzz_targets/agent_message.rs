//! What an agent sends up its stream: decoding any bytes, then applying what
//! decodes to the coordinator's agent hub, must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use slipway_coordinator::agents::{AgentHello, AgentHub};
use slipway_proto::v1::{AgentMessage, agent_message::Body};

fuzz_target!(|bytes: &[u8]| {
    let Ok(message) = AgentMessage::decode(bytes) else { return };
    let hub = AgentHub::default();
    let (sender, _receiver) = tokio::sync::mpsc::channel(1);
    let stream = hub.connect("i-fuzz", AgentHello::default(), sender);
    match message.body {
        Some(Body::Hello(hello)) => {
            let _ = hub.connect(&hello.instance_id, AgentHello { image_id: hello.image_id, agent_version: hello.agent_version, private_ip: hello.private_ip }, tokio::sync::mpsc::channel(1).0);
        }
        Some(Body::Heartbeat(_)) => hub.heartbeat("i-fuzz", stream),
        Some(Body::Services(report)) => hub.services("i-fuzz", stream, &report),
        Some(Body::Readiness(r)) => hub.readiness("i-fuzz", stream, r.ready, &r.detail),
        None => {}
    }
    let _ = hub.view("i-fuzz");
});
