//! `slipway secret set|list`: values go in on stdin and never come back out.

use std::io::Read;

use anyhow::Context;
use slipway_proto::v1::{ListSecretsRequest, SetSecretRequest};

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, print_json};

pub async fn set(
    client: &mut Client,
    output: Output,
    environment: String,
    key: String,
) -> Result<(), Failure> {
    let mut value = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut value)
        .context("cannot read the secret from stdin")?;
    let value = value.strip_suffix('\n').unwrap_or(&value).to_string();
    if value.is_empty() {
        return Err(Failure::new(
            "no value on stdin: pipe it in, e.g. `printf %s \"$VALUE\" | slipway secret set ...`",
            2,
        ));
    }
    let request = SetSecretRequest {
        environment,
        key,
        value,
    };
    let answer = client.api.set_secret(request).await;
    let secret = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&secret);
    }
    println!(
        "secret {}/{} set ({})",
        secret.environment, secret.key, secret.value
    );
    Ok(())
}

pub async fn list(
    client: &mut Client,
    output: Output,
    environment: Option<String>,
) -> Result<(), Failure> {
    let request = ListSecretsRequest {
        environment: environment.unwrap_or_default(),
    };
    let answer = client.api.list_secrets(request).await;
    let list = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&list.secrets);
    }
    let mut table = Table::new(["ENV", "KEY", "VALUE"]);
    for secret in list.secrets {
        table.row([secret.environment, secret.key, secret.value]);
    }
    table.print();
    Ok(())
}
