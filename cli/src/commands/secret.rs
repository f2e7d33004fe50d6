//! `slipway secret set|delete|list|rotate-key`: values go in on stdin (or a prompt that
//! does not echo) and never come back out.

use std::io::{IsTerminal, Read, Write};

use crate::client::Client;
use crate::failure::{Exit, Failure};
use crate::render::{Output, Table, print};

/// Largest value read: the coordinator refuses more anyway.
const MAX_VALUE: u64 = 64 * 1024;

/// Which secret: an environment's shared one, a project's own there, or a
/// data store's (`environment` then names the store).
#[derive(Debug)]
pub struct Named {
    pub environment: String,
    pub project: Option<String>,
    pub key: String,
}

impl Named {
    fn scope(&self) -> String {
        match &self.project {
            Some(project) => format!("{}/{project}/{}", self.environment, self.key),
            None => format!("{}/{}", self.environment, self.key),
        }
    }
}

pub async fn set(client: &mut Client, output: Output, named: Named) -> Result<(), Failure> {
    let value = if std::io::stdin().is_terminal() {
        prompt(&format!("value of {} (not shown): ", named.scope()))?
    } else {
        let mut value = String::new();
        std::io::stdin()
            .take(MAX_VALUE)
            .read_to_string(&mut value)
            .map_err(|e| {
                Failure::new(
                    format!("cannot read the secret from stdin: {e}"),
                    Exit::Failed,
                )
            })?;
        value.strip_suffix('\n').unwrap_or(&value).to_string()
    };
    if value.is_empty() {
        return Err(Failure::usage(
            "no value given: type it at the prompt, or pipe it in, e.g. `printf %s \"$VALUE\" | slipway secret set ...`",
        ));
    }
    let shown = named.scope();
    let secret = client
        .set_secret(named.environment, named.project, named.key, value)
        .await?;
    if output.structured() {
        return print(output, &secret);
    }
    println!("secret {shown} set");
    Ok(())
}

/// Reads a line from the terminal with echo off, restoring it afterwards
/// (also when reading fails).
fn prompt(question: &str) -> Result<String, Failure> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let fail = |e: &dyn std::fmt::Display| {
        Failure::new(
            format!("cannot read the secret from the terminal: {e}"),
            Exit::Failed,
        )
    };
    let stdin = std::io::stdin();
    let before = tcgetattr(&stdin).map_err(|e| fail(&e))?;
    let mut quiet = before.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| fail(&e))?;
    let mut line = String::new();
    let read = std::io::BufRead::read_line(&mut stdin.lock().take(MAX_VALUE), &mut line);
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &before);
    read.map_err(|e| fail(&e))?;
    restored.map_err(|e| fail(&e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn delete(client: &mut Client, output: Output, named: Named) -> Result<(), Failure> {
    let shown = named.scope();
    let secret = client
        .delete_secret(named.environment, named.project, named.key)
        .await?;
    if output.structured() {
        return print(output, &secret);
    }
    println!("secret {shown} deleted: instances launched from now on no longer receive it");
    Ok(())
}

pub async fn rotate_key(client: &mut Client, output: Output) -> Result<(), Failure> {
    let rotated = client.rotate_secrets_key().await?;
    if output.structured() {
        return print(output, &rotated);
    }
    println!(
        "re-sealed {} secrets with a new key ({} -> {}): back up the coordinator's secrets.key again; the old one opens nothing now",
        rotated.resealed, rotated.from_key, rotated.to_key
    );
    Ok(())
}

pub async fn list(
    client: &mut Client,
    output: Output,
    environment: Option<String>,
) -> Result<(), Failure> {
    let secrets = client.secrets(environment).await?;
    if output.structured() {
        return print(output, &secrets);
    }
    let mut table = Table::new(["ENV", "PROJECT", "KEY", "VALUE"]);
    for secret in secrets {
        // A data store's secret goes to every project using it, wherever.
        let (environment, project) = match (secret.data_store, secret.notification) {
            (Some(store), _) => (format!("(store {store})"), "(its users)".to_string()),
            (None, Some(sink)) => (format!("(notification {sink})"), "-".to_string()),
            (None, None) => (
                secret.environment.unwrap_or_default(),
                secret.project.unwrap_or_else(|| "(all)".into()),
            ),
        };
        table.row([environment, project, secret.key, "***".into()]);
    }
    table.print(output.layout());
    Ok(())
}
