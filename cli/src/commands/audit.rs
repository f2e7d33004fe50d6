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
    // Page by page: the log grows for years; each answer stays small.
    let mut entries = Vec::new();
    let mut after_seq = 0;
    loop {
        let request = AuditRequest {
            since_ms,
            after_seq,
            limit: 0,
        };
        let answer = client.api.audit(request).await;
        let page = client.answer(answer)?;
        entries.extend(page.entries);
        if page.next_after_seq == 0 || page.next_after_seq <= after_seq {
            break;
        }
        after_seq = page.next_after_seq;
    }
    if output == Output::Json {
        return print_json(&entries);
    }
    let mut table = Table::new(["#", "WHEN", "WHO", "ACTION", "TARGET", "RESULT"]);
    for e in entries {
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

/// `COUNT:HASH` as the coordinator's request fields.
fn parse_anchor(text: &str) -> Result<(u64, String), Failure> {
    let parsed = text.split_once(':').and_then(|(count, hash)| {
        let count = count.parse::<u64>().ok().filter(|c| *c > 0)?;
        let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then(|| (count, hash.to_ascii_lowercase()))
    });
    parsed.ok_or_else(|| {
        Failure::new(
            format!("--anchor {text:?} is not an anchor: give COUNT:HASH as `slipway audit anchor` printed it"),
            2,
        )
    })
}

/// Checks the hash chain, and against `anchor` if given; fails naming the
/// first broken entry.
pub async fn verify(
    client: &mut Client,
    output: Output,
    anchor: Option<String>,
) -> Result<(), Failure> {
    let (anchor_seq, anchor_hash) = match anchor {
        Some(text) => parse_anchor(&text)?,
        None => (0, String::new()),
    };
    let request = AuditVerifyRequest {
        anchor_seq,
        anchor_hash,
    };
    let answer = client.api.audit_verify(request).await;
    let verdict = client.answer(answer)?;
    if output == Output::Json {
        print_json(&verdict)?;
    }
    if !verdict.intact {
        return Err(Failure::new(verdict.reason, 1));
    }
    if output == Output::Text {
        let anchored = if anchor_seq > 0 {
            ", matching the anchor"
        } else {
            ""
        };
        println!("audit log intact: {} entries{anchored}", verdict.entries);
    }
    Ok(())
}

/// Prints the anchor of an intact log (and writes it to `file`).
pub async fn anchor(
    client: &mut Client,
    output: Output,
    file: Option<std::path::PathBuf>,
) -> Result<(), Failure> {
    let answer = client.api.audit_verify(AuditVerifyRequest::default()).await;
    let verdict = client.answer(answer)?;
    if !verdict.intact {
        return Err(Failure::new(
            format!("no anchor for a broken log: {}", verdict.reason),
            1,
        ));
    }
    let anchor = format!("{}:{}", verdict.entries, verdict.head_hash);
    if let Some(file) = &file {
        std::fs::write(file, format!("{anchor}\n"))
            .map_err(|e| Failure::new(format!("cannot write {}: {e}", file.display()), 1))?;
    }
    if output == Output::Json {
        return print_json(
            &serde_json::json!({ "entries": verdict.entries, "hash": verdict.head_hash }),
        );
    }
    println!("{anchor}");
    Ok(())
}
