//! `slipway agents` and `slipway revoke`.

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, age, or_dash, print, yes};

pub async fn list(
    client: &mut Client,
    output: Output,
    project: Option<String>,
) -> Result<(), Failure> {
    let agents = client.agents(project).await?;
    if output.structured() {
        return print(output, &agents);
    }
    let mut table = Table::new([
        "INSTANCE",
        "PROJECT",
        "ENV",
        "DEPLOYMENT",
        "IP",
        "AGENT",
        "SEEN",
        "READY",
        "VERSION",
        "PROTOCOL",
    ])
    .states(5);
    for a in agents {
        table.row([
            a.instance_id,
            a.project,
            a.environment,
            a.deployment,
            or_dash(a.private_ip.as_deref()),
            a.agent,
            a.last_seen_ms
                .map_or_else(|| "-".into(), |ms| format!("{} ago", age(ms))),
            yes(a.ready),
            or_dash(a.agent_version.as_deref()),
            a.agent_protocol
                .map_or_else(|| "-".into(), |p| p.to_string()),
        ]);
    }
    table.print(output.layout());
    Ok(())
}

/// Revokes every certificate of an operator or an agent.
pub async fn revoke(client: &mut Client, output: Output, name: String) -> Result<(), Failure> {
    let revoked = client.revoke(name).await?;
    if output.structured() {
        return print(output, &revoked);
    }
    let closed = if revoked.stream_closed {
        "; its open stream was closed"
    } else {
        ""
    };
    println!("revoked every certificate of {}{closed}", revoked.name);
    Ok(())
}
