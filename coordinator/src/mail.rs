//! Email notifications: one message per event over SMTP, STARTTLS required
//! before anything else is said (so a login and the message never cross a
//! network in the clear), then the login, if the sink has one.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::Notification;
use crate::events::Event;

/// How long the SMTP server may take, per command.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `event` to the sink's recipients; `password` is its login's secret.
pub async fn send(
    sink: &Notification,
    event: &Event,
    delivery: &str,
    password: Option<String>,
) -> Result<(), String> {
    let server = sink.smtp.as_deref().ok_or("it has no smtp server")?;
    let (host, port) = server
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("smtp {server:?} is not HOST:PORT"))?;
    let mut tls = TlsParameters::builder(host.to_string());
    if let Some(file) = &sink.ca_file {
        let pem = std::fs::read(file)
            .map_err(|e| format!("cannot read its ca_file {}: {e}", file.display()))?;
        let ca = Certificate::from_pem(&pem).map_err(|e| {
            format!(
                "its ca_file {} is not a PEM certificate: {e}",
                file.display()
            )
        })?;
        tls = tls.add_root_certificate(ca);
    }
    let tls = tls.build_rustls().map_err(|e| format!("TLS: {e}"))?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(Tls::Required(tls))
        .timeout(Some(TIMEOUT));
    if let (Some(user), Some(password)) = (&sink.username, password) {
        transport = transport.credentials(Credentials::new(user.clone(), password));
    }
    let message = message(sink, event, delivery)?;
    transport
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("smtp {server}: {e}"))
}

/// The message a person reads: the summary as the subject, then each fact.
fn message(sink: &Notification, event: &Event, delivery: &str) -> Result<Message, String> {
    let from = sink.from.as_deref().unwrap_or_default();
    let mut builder = Message::builder()
        .from(from.parse().map_err(|e| format!("from {from:?}: {e}"))?)
        .subject(format!("[slipway] {}", event.summary))
        // The same on every attempt: a mailbox can drop the repeats.
        .message_id(Some(format!("<{delivery}@slipway>")))
        .header(ContentType::TEXT_PLAIN);
    for to in &sink.to {
        builder = builder.to(to.parse().map_err(|e| format!("to {to:?}: {e}"))?);
    }
    builder
        .body(body(event, delivery))
        .map_err(|e| e.to_string())
}

fn body(e: &Event, delivery: &str) -> String {
    let mut lines = vec![e.summary.clone(), String::new()];
    let mut fact = |name: &str, value: &Option<String>| {
        if let Some(value) = value {
            lines.push(format!("{name}: {value}"));
        }
    };
    fact("Deployment", &e.about.deployment);
    fact("Project", &e.about.project);
    fact("Release", &e.about.version);
    fact("Environment", &e.about.environment);
    fact("Reason", &e.reason);
    fact("Asked by", &e.who);
    let p = e.provenance.clone().unwrap_or_default();
    fact("Commit", &p.commit);
    fact("Repository", &p.repository);
    fact("Build", &p.build_url);
    fact("Built by", &p.built_by);
    lines.push(format!("Event: {} ({})", e.seq, e.kind));
    lines.push(format!(
        "At: {}",
        humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + Duration::from_millis(e.at.max(0) as u64)
        )
    ));
    lines.push(format!("Delivery: {delivery}"));
    lines.join("\n") + "\n"
}
