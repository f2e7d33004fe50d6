//! `slipway audit [--since D]` and `slipway audit verify`.

use slipway_proto::v1::{AuditRequest, AuditVerifyRequest};

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, now_ms, print_json, when};

pub async fn list(
    client: &mut Client,
    output: Output,
    since: Option<String>,
) -> Result<(), Failure> {
    let since_ms = match since {
        None => 0,
        Some(text) => {
            let back = humantime::parse_duration(&text).map_err(|e| {
                anyhow::anyhow!("--since {text:?} is not a duration ({e}): write it like 1h or 30m")
            })?;
            let back = i64::try_from(back.as_millis()).unwrap_or(i64::MAX);
            now_ms().saturating_sub(back).max(0)
        }
    };
    let answer = client.api.audit(AuditRequest { since_ms }).await;
    let log = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&log.entries);
    }
    let mut table = Table::new(["#", "WHEN", "WHO", "ACTION", "TARGET", "RESULT"]);
    for e in log.entries {
        table.row([
            e.seq.to_string(),
            when(e.at_ms),
            e.who,
            e.action,
            e.target,
            e.result,
        ]);
    }
    table.print();
    Ok(())
}

/// Checks the hash chain; fails naming the first broken entry.
pub async fn verify(client: &mut Client, output: Output) -> Result<(), Failure> {
    let answer = client.api.audit_verify(AuditVerifyRequest {}).await;
    let verdict = client.answer(answer)?;
    if output == Output::Json {
        print_json(&verdict)?;
    }
    if !verdict.intact {
        return Err(Failure::new(verdict.reason, 1));
    }
    if output == Output::Text {
        println!("audit log intact: {} entries", verdict.entries);
    }
    Ok(())
}
