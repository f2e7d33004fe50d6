//! `slipway audit [--since D]`, `audit verify` and `audit anchor`.

use crate::client::Client;
use crate::failure::{Exit, Failure};
use crate::render::{Output, Table, print, when};
use crate::schema::Anchor;

/// Which entries `audit` lists.
#[derive(Debug, Default)]
pub struct Filter {
    pub since: Option<String>,
    pub who: Option<String>,
    pub action: Option<String>,
    /// Entries whose target or result names this (a project, environment or
    /// deployment: a deploy's result names the deployment it queued).
    pub target: Option<String>,
}

pub async fn list(client: &mut Client, output: Output, filter: Filter) -> Result<(), Failure> {
    let since_ms = match &filter.since {
        None => 0,
        Some(text) => crate::render::since(text)?,
    };
    // Page by page: the log grows for years; each answer stays small.
    let mut entries = Vec::new();
    let mut after_seq = 0;
    loop {
        let page = client.audit_page(since_ms, after_seq).await?;
        entries.extend(page.entries);
        match page.next_after_seq {
            Some(next) => after_seq = next,
            None => break,
        }
    }
    entries.retain(|e| {
        let about = [&e.project, &e.environment, &e.deployment];
        filter.who.as_ref().is_none_or(|w| &e.who == w)
            && filter
                .action
                .as_ref()
                .is_none_or(|a| e.action.starts_with(a.as_str()))
            && filter.target.as_ref().is_none_or(|t| {
                about
                    .iter()
                    .any(|field| field.as_deref() == Some(t.as_str()))
                    || mentions(&e.target, t)
                    || mentions(&e.result, t)
            })
    });
    if output.structured() {
        return print(output, &entries);
    }
    let mut table = Table::new(["#", "WHEN", "WHO", "ACTION", "TARGET", "RESULT"]);
    for e in entries {
        table.row([
            e.seq.to_string(),
            when(e.at_ms),
            match &e.role {
                Some(role) => format!("{} ({role})", e.who),
                None => e.who.clone(),
            },
            e.action,
            e.target,
            e.result,
        ]);
    }
    table.print(output.layout());
    Ok(())
}

/// Whether `target` names `word` as a whole word (`hello` is in
/// `hello@v2 -> staging`, `d-1` is not in `d-12`).
fn mentions(target: &str, word: &str) -> bool {
    target
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .any(|piece| piece == word)
}

/// `COUNT:HASH` as the coordinator's request fields.
fn parse_anchor(text: &str) -> Result<(u64, String), Failure> {
    let parsed = text.split_once(':').and_then(|(count, hash)| {
        let count = count.parse::<u64>().ok().filter(|c| *c > 0)?;
        let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then(|| (count, hash.to_ascii_lowercase()))
    });
    parsed.ok_or_else(|| {
        Failure::usage(format!(
            "--anchor {text:?} is not an anchor: give COUNT:HASH as `slipway audit anchor` printed it"
        ))
    })
}

/// Checks the hash chain, and against `anchor` if given; fails naming the
/// first broken entry.
pub async fn verify(
    client: &mut Client,
    output: Output,
    anchor: Option<String>,
) -> Result<(), Failure> {
    let anchor = anchor.as_deref().map(parse_anchor).transpose()?;
    let anchored = anchor.is_some();
    let verdict = client.audit_verify(anchor).await?;
    if output.structured() {
        print(output, &verdict)?;
    }
    if !verdict.intact {
        return Err(Failure::new(
            verdict
                .reason
                .unwrap_or_else(|| "the chain is broken".into()),
            Exit::Failed,
        ));
    }
    if !output.structured() {
        let anchored = if anchored {
            ", matching the anchor"
        } else {
            ""
        };
        println!("audit log intact: {} entries{anchored}", verdict.entries);
    }
    Ok(())
}

/// Prints the anchor of an intact log (and writes it to `file`, and posts it
/// to `webhook`).
pub async fn anchor(
    client: &mut Client,
    output: Output,
    file: Option<std::path::PathBuf>,
    webhook: Option<String>,
) -> Result<(), Failure> {
    // A bad URL is a usage error before anything is asked.
    let webhook = webhook.as_deref().map(crate::webhook::check).transpose()?;
    let verdict = client.audit_verify(None).await?;
    if !verdict.intact {
        return Err(Failure::new(
            format!(
                "no anchor for a broken log: {}",
                verdict.reason.unwrap_or_default()
            ),
            Exit::Failed,
        ));
    }
    let anchor = Anchor {
        entries: verdict.entries,
        hash: verdict.head_hash.unwrap_or_default(),
    };
    let line = format!("{}:{}", anchor.entries, anchor.hash);
    if let Some(file) = &file {
        std::fs::write(file, format!("{line}\n")).map_err(|e| {
            Failure::new(
                format!("cannot write {}: {e}", file.display()),
                Exit::Failed,
            )
        })?;
    }
    if let Some(uri) = webhook {
        let json = serde_json::to_string(&anchor)
            .map_err(|e| Failure::new(format!("cannot print the anchor: {e}"), Exit::Failed))?;
        crate::webhook::post(uri, json).await?;
    }
    if output.structured() {
        return print(output, &anchor);
    }
    println!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_filter_matches_whole_names_only() {
        assert!(mentions("hello@v2 -> staging", "hello"));
        assert!(mentions("hello@v2 -> staging", "staging"));
        assert!(mentions("d-12", "d-12"));
        assert!(!mentions("d-12", "d-1"));
        assert!(!mentions("hello2@v2 -> staging", "hello"));
    }
}
