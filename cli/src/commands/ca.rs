//! `slipway ca status | rotate | finish`: the coordinator's CA, rotated with an
//! overlap window in which both CAs are trusted.

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, print};
use crate::schema::CaRotation;

pub async fn status(client: &mut Client, output: Output) -> Result<(), Failure> {
    let rotation = client.rotate_ca("", false).await?;
    show(output, &rotation)
}

pub async fn rotate(client: &mut Client, output: Output) -> Result<(), Failure> {
    let rotation = client.rotate_ca("begin", false).await?;
    if !output.structured() {
        println!(
            "a new CA signs from now on; the previous one stays trusted until `slipway ca finish`.\n\
             Back up the coordinator's ca/ directory now (it holds the new CA in ca/next/).\n\
             Agents move over as they renew their certificates or are replaced; operators run `slipway cert renew`."
        );
    }
    show(output, &rotation)
}

pub async fn finish(client: &mut Client, output: Output, force: bool) -> Result<(), Failure> {
    let rotation = client.rotate_ca("finish", force).await?;
    if !output.structured() {
        println!(
            "the previous CA is trusted no more and its key is deleted: back up the coordinator's ca/ directory again"
        );
    }
    show(output, &rotation)
}

fn show(output: Output, rotation: &CaRotation) -> Result<(), Failure> {
    if output.structured() {
        return print(output, rotation);
    }
    println!("signing CA: {}", rotation.signing);
    match &rotation.previous {
        Some(previous) => println!("still trusted: {previous} (rotation under way)"),
        None => println!("no rotation under way"),
    }
    let named = |instances: &[String]| match instances.is_empty() {
        true => String::new(),
        false => format!(" ({})", instances.join(", ")),
    };
    println!(
        "connected agents: {} on the signing CA, {} on the previous{}, {} relayed by a standby (not seen here)",
        rotation.agents_on_signing,
        rotation.agents_on_previous.len(),
        named(&rotation.agents_on_previous),
        rotation.agents_unknown
    );
    if !rotation.agents_on_retired.is_empty() {
        println!(
            "{} connected on a CA no longer trusted{}: refused at their next reconnect",
            rotation.agents_on_retired.len(),
            named(&rotation.agents_on_retired)
        );
    }
    Ok(())
}
