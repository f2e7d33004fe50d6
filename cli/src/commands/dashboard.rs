//! `slipway dashboard url|tokens|revoke`: read-only tokens for the wall
//! screen and for Prometheus (admin).

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, print, when, yes};

/// Mints a token and prints the URL that carries it.
pub async fn url(client: &mut Client, output: Output, name: String) -> Result<(), Failure> {
    let token = client.dashboard_url(name).await?;
    if output.structured() {
        return print(output, &token);
    }
    println!("{}", token.url.as_deref().unwrap_or_default());
    eprintln!(
        "open it on the screen (it is shown once; the page keeps it in a cookie); \
         Prometheus sends the part after token= as a bearer token. \
         End it with: slipway dashboard revoke {}",
        token.id
    );
    Ok(())
}

pub async fn tokens(client: &mut Client, output: Output) -> Result<(), Failure> {
    let tokens = client.dashboard_tokens().await?;
    if output.structured() {
        return print(output, &tokens);
    }
    let mut table = Table::new(["ID", "NAME", "CREATED", "BY", "REVOKED"]);
    for t in tokens {
        table.row([
            t.id,
            t.name,
            when(t.created_at_ms),
            t.created_by,
            yes(t.revoked),
        ]);
    }
    table.print(output.layout());
    Ok(())
}

/// Revokes one token, or all of them with `None`.
pub async fn revoke(
    client: &mut Client,
    output: Output,
    id: Option<String>,
) -> Result<(), Failure> {
    let revoked = client.revoke_dashboard(id).await?;
    if output.structured() {
        return print(output, &revoked);
    }
    match revoked.revoked.is_empty() {
        true => println!("nothing to revoke: already revoked"),
        false => println!(
            "revoked {}: its pages, streams and scrapes are refused from now on",
            revoked.revoked.join(", ")
        ),
    }
    Ok(())
}
