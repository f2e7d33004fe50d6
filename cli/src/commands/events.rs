//! `slipway events`: what happened, one line per event; with `--follow`, as it
//! happens, across coordinator restarts, none missed and none twice. And
//! `slipway notifications`: how their delivery goes.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::api::{Broke, EventsAsked};
use crate::client::{Client, is_transport};
use crate::failure::Failure;
use crate::render::{Output, Table, print, text, when};
use crate::schema::Event;

/// How long `--follow` keeps trying a coordinator that went away.
const REACH_FOR: Duration = Duration::from_secs(30);

/// What the flags asked for.
#[derive(Debug, Default)]
pub struct Flags {
    /// A sequence number (events after it) or a duration (events since then).
    pub since: Option<String>,
    pub project: Option<String>,
    pub environment: Option<String>,
    pub deployment: Option<String>,
    pub follow: bool,
}

pub async fn run(client: &mut Client, output: Output, flags: Flags) -> Result<(), Failure> {
    let mut asked = EventsAsked {
        project: flags.project,
        environment: flags.environment,
        deployment: flags.deployment,
        follow: flags.follow,
        ..EventsAsked::default()
    };
    match flags.since.as_deref().map(|s| (s, s.parse::<u64>())) {
        None => {}
        Some((_, Ok(seq))) => asked.after = seq,
        Some((duration, Err(_))) => asked.since_ms = crate::render::since(duration)?,
    }
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut away_since: Option<Instant> = None;
    loop {
        let outcome = tokio::select! {
            // Stopping a follow is how it ends: not a failure.
            _ = &mut interrupted => return Ok(()),
            outcome = stream(client, output, &mut asked, &mut away_since) => outcome,
        };
        match outcome {
            Ok(()) if !asked.follow => return Ok(()),
            // A follow's stream ended (the coordinator stopping, or this
            // client too slow): go on after the last one printed.
            Ok(()) => tokio::time::sleep(Duration::from_millis(200)).await,
            // Refused or cannot be opened for another reason than the
            // coordinator being away: say why.
            Err(Broke::Opening(status)) if !(asked.follow && is_transport(&status)) => {
                return Err(client.failure(&status));
            }
            Err(Broke::Reading(status)) if !asked.follow => return Err(client.failure(&status)),
            // Away, or the stream broke (a coordinator killed mid-stream
            // leaves no local source on the status): try again.
            Err(Broke::Opening(status) | Broke::Reading(status)) => {
                let since = *away_since.get_or_insert_with(|| {
                    if !output.structured() {
                        eprintln!(
                            "(lost the coordinator; trying again for {}s)",
                            REACH_FOR.as_secs()
                        );
                    }
                    Instant::now()
                });
                if since.elapsed() >= REACH_FOR {
                    return Err(client.failure(&status));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Prints events from one stream until it ends; `asked.after` follows them.
async fn stream(
    client: &mut Client,
    output: Output,
    asked: &mut EventsAsked,
    away_since: &mut Option<Instant>,
) -> Result<(), Broke> {
    let mut feed = client.watch_events(asked).await?;
    if away_since.take().is_some() && !output.structured() {
        eprintln!("(the coordinator is back)");
    }
    while let Some(event) = feed.next().await? {
        asked.after = event.seq;
        print_event(output, &event);
    }
    Ok(())
}

/// One line per event (JSON: one object per line), flushed, so a pipe sees
/// each as it comes.
fn print_event(output: Output, e: &Event) {
    let line = match output {
        Output::Json => serde_json::to_string(e).unwrap_or_default(),
        Output::Yaml => {
            let json = serde_json::to_value(e).unwrap_or_default();
            format!("---\n{}", crate::yaml::to_yaml(&json).trim_end())
        }
        Output::Text | Output::Wide => format!(
            "{:>6}  {}  {:<28} {}",
            e.seq,
            when(e.at_ms),
            e.kind,
            text(&e.summary)
        ),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Each notification: delivered, pending, failing (and why); then the events
/// given up.
pub async fn notifications(client: &mut Client, output: Output) -> Result<(), Failure> {
    let answer = client.notifications().await?;
    if output.structured() {
        return print(output, &answer);
    }
    if answer.notifications.is_empty() {
        println!("no notifications: add [notifications.NAME] to the fleet file");
    }
    let mut table =
        Table::new(["NAME", "KIND", "TARGET", "DELIVERED", "PENDING", "STATE"]).states(5);
    for n in &answer.notifications {
        let state = match (&n.last_error, n.attempts) {
            (Some(error), attempts) if attempts > 0 => {
                format!("failing ({attempts} attempts): {}", text(error))
            }
            _ => "ok".to_string(),
        };
        table.row([
            n.name.clone(),
            n.kind.clone(),
            text(&n.target),
            n.delivered.to_string(),
            n.pending.to_string(),
            state,
        ]);
    }
    table.print(output.layout());
    for n in answer.notifications.iter().filter(|n| !n.next.is_empty()) {
        let next = &n.next[0];
        println!(
            "{} next: event {} ({}) {}",
            n.name,
            next.seq,
            next.kind,
            text(&next.summary)
        );
        for a in n.recent.iter().rev().take(3) {
            let how = a.error.as_deref().map_or("delivered".to_string(), text);
            println!("  {} event {} at {}: {how}", n.name, a.seq, a.at);
        }
    }
    if !answer.undelivered.is_empty() {
        println!("given up:");
        for u in &answer.undelivered {
            println!(
                "  {} event {} ({}) after {} attempts: {}",
                u.notification,
                u.seq,
                u.kind,
                u.attempts,
                text(&u.last_error)
            );
        }
    }
    Ok(())
}
