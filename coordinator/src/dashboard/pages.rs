//! The dashboard's HTML: the board's shell (drawn by `assets/board.js` from
//! the event stream), a page per deployment and a history per target, drawn
//! here, and the page that says how to get a token. Everything the store or
//! a caller wrote is escaped; no page has a form or a button that acts.

use std::fmt::Write as _;

use crate::clock::Millis;
use crate::operations::DeploymentView;
use crate::release::Provenance;

pub const BOARD_JS: &str = include_str!("assets/board.js");
pub const BOARD_CSS: &str = include_str!("assets/board.css");
const SHELL: &str = include_str!("assets/board.html");

/// Text safe inside HTML elements and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment as a link carries it.
fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn utc(at: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(at as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map(|s| {
            s.split('.')
                .next()
                .unwrap_or(&s)
                .trim_end_matches('Z')
                .replace('T', " ")
                + "Z"
        })
        .unwrap_or_else(|| at.to_string())
}

fn duration(ms: Millis) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{}.{}s", s, (ms.max(0) % 1000) / 100),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/board.css\"></head>\
         <body class=\"page\"><p class=\"nav\"><a href=\"/\">← board</a></p>{body}</body></html>\n",
        escape(title)
    )
}

/// The board: a shell the script fills from the event stream.
pub fn board() -> String {
    SHELL.to_string()
}

/// What a browser without a valid token sees.
pub fn unauthorized() -> String {
    page(
        "Slipway: a dashboard token is needed",
        "<h1>This dashboard needs a token</h1>\
         <p>Ask an admin to run <code>slipway dashboard url</code> and open the address it \
         prints on this screen. Tokens end with <code>slipway dashboard revoke</code>.</p>",
    )
}

/// One deployment: its phases with their times and durations.
pub fn deployment(view: &DeploymentView, now: Millis) -> String {
    let d = &view.deployment;
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{id} <span class=\"muted\">{project} {version} → {env}</span></h1>\
         <p class=\"phase phase-{phase}\">{phase}</p>\
         <p>requested by {who} at {at}; <a href=\"/targets/{p}/{e}\">history of {project} in {env}</a></p>",
        id = escape(&d.id),
        project = escape(&d.project),
        version = escape(&d.version),
        env = escape(&d.environment),
        phase = escape(d.phase.as_str()),
        who = escape(&d.requested_by),
        at = utc(d.requested_at),
        p = segment(&d.project),
        e = segment(&d.environment),
    );
    if let Some(p) = &d.provenance {
        let _ = write!(body, "<p class=\"provenance\">{}</p>", provenance(p));
    }
    if let Some(reason) = &d.reason {
        let _ = write!(body, "<p class=\"alarm\">{}</p>", escape(reason));
    }
    if let Some(waiting) = &view.waiting_on {
        let _ = write!(body, "<p>waiting: {}</p>", escape(waiting));
    }
    body.push_str("<table><tr><th>phase</th><th>entered (UTC)</th><th>took</th></tr>");
    let mut entered = d.requested_at;
    let mut previous = "queued";
    let mut rows = Vec::new();
    for h in &d.history {
        rows.push((previous.to_string(), entered, h.at - entered));
        previous = h.phase.as_str();
        entered = h.at;
    }
    let running = (!d.phase.is_finished()).then(|| now - entered);
    for (phase, at, took) in rows {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&phase),
            utc(at),
            duration(took)
        );
    }
    let _ = write!(
        body,
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        escape(previous),
        utc(entered),
        running.map_or_else(|| "—".to_string(), |ms| format!("{} so far", duration(ms)))
    );
    page(&format!("{} · Slipway", d.id), &body)
}

/// A URL as a link if it is a web address (the only kind a browser should
/// follow from here), else as text.
fn link(url: &str) -> String {
    if url.starts_with("https://") || url.starts_with("http://") {
        format!(
            "<a href=\"{u}\" rel=\"noreferrer\">{u}</a>",
            u = escape(url)
        )
    } else {
        escape(url)
    }
}

/// Where a release came from: commit, repository and CI build, linked.
fn provenance(p: &Provenance) -> String {
    let mut parts = Vec::new();
    if let Some(commit) = &p.commit {
        let of = p
            .repository
            .as_deref()
            .map(|r| format!(" of {}", link(r)))
            .unwrap_or_default();
        parts.push(format!("commit <code>{}</code>{of}", escape(commit)));
    } else if let Some(repository) = &p.repository {
        parts.push(format!("from {}", link(repository)));
    }
    if let Some(build) = &p.build_url {
        parts.push(format!("build {}", link(build)));
    }
    if let Some(by) = &p.built_by {
        parts.push(format!("built by {}", escape(by)));
    }
    parts.join("; ")
}

/// A target's deployments, newest first.
pub fn history(project: &str, environment: &str, views: &[DeploymentView]) -> String {
    let mut body = format!(
        "<h1>{} <span class=\"muted\">in {}</span></h1>\
         <table><tr><th>deployment</th><th>release</th><th>outcome</th><th>requested (UTC)</th><th>by</th><th>took</th></tr>",
        escape(project),
        escape(environment)
    );
    for view in views {
        let d = &view.deployment;
        let took = d
            .history
            .last()
            .filter(|_| d.phase.is_finished())
            .map_or_else(|| "—".to_string(), |h| duration(h.at - d.requested_at));
        let _ = write!(
            body,
            "<tr><td><a href=\"/deployments/{link}\">{id}</a></td><td>{version}{commit}</td>\
             <td class=\"phase-{phase}\">{phase}</td><td>{at}</td><td>{who}</td><td>{took}</td></tr>",
            link = segment(&d.id),
            id = escape(&d.id),
            version = escape(&d.version),
            commit = d
                .provenance
                .as_ref()
                .and_then(|p| p.commit.as_deref())
                .map(|c| format!(" <code>{}</code>", escape(&c[..c.len().min(12)])))
                .unwrap_or_default(),
            phase = escape(d.phase.as_str()),
            at = utc(d.requested_at),
            who = escape(&d.requested_by),
        );
    }
    body.push_str("</table>");
    if views.is_empty() {
        body.push_str("<p>Nothing deployed here yet.</p>");
    }
    page(&format!("{project} in {environment} · Slipway"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_cannot_become_markup_or_leave_its_link() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(segment("a/../b c"), "a%2F..%2Fb%20c");
    }

    #[test]
    fn provenance_links_web_addresses_only() {
        let p = Provenance {
            commit: Some("3f2c1ab".into()),
            repository: Some("git@example.com:team/hello.git".into()),
            build_url: Some("https://ci.example.com/jobs/41?a=1&b=\"2\"".into()),
            built_by: Some("<ci>".into()),
        };
        assert_eq!(
            provenance(&p),
            "commit <code>3f2c1ab</code> of git@example.com:team/hello.git; \
             build <a href=\"https://ci.example.com/jobs/41?a=1&amp;b=&quot;2&quot;\" rel=\"noreferrer\">https://ci.example.com/jobs/41?a=1&amp;b=&quot;2&quot;</a>; \
             built by &lt;ci&gt;"
        );
        assert_eq!(link("javascript:alert(1)"), "javascript:alert(1)");
    }

    #[test]
    fn times_and_durations_read_as_people_write_them() {
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(duration(1_250), "1.2s");
        assert_eq!(duration(125_000), "2m 05s");
        assert_eq!(duration(3_725_000), "1h 02m");
    }
}
