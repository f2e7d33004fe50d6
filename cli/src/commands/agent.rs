//! `slipway agents` and `slipway revoke`.

use slipway_proto::v1::{AgentsRequest, RevokeRequest};

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, print_json, yes};

pub async fn list(client: &mut Client, output: Output) -> Result<(), Failure> {
    let answer = client.api.agents(AgentsRequest {}).await;
    let list = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&list.agents);
    }
    let mut table = Table::new([
        "INSTANCE",
        "PROJECT",
        "ENV",
        "DEPLOYMENT",
        "IP",
        "CONNECTED",
        "READY",
        "VERSION",
    ]);
    for a in list.agents {
        table.row([
            a.instance_id,
            a.project,
            a.environment,
            a.deployment_id,
            a.private_ip,
            yes(a.connected),
            yes(a.ready),
            a.agent_version,
        ]);
    }
    table.print();
    Ok(())
}

/// Revokes every certificate of an operator or an agent.
pub async fn revoke(client: &mut Client, output: Output, name: String) -> Result<(), Failure> {
    let answer = client.api.revoke(RevokeRequest { name }).await;
    let revoked = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&revoked);
    }
    let closed = if revoked.stream_closed {
        "; its open stream was closed"
    } else {
        ""
    };
    println!("revoked every certificate of {}{closed}", revoked.name);
    Ok(())
}
