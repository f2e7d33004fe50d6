//! `slipway-sample-app`: the small HTTP app baked into the dev releases.
//!
//! Reads `app.toml` (version, healthy) from its working directory (the image
//! root) and listens on `$SLIPWAY_PRIVATE_IP:$PORT`. `GET /` answers with the
//! version; `GET /health` answers 200, or 500 in a release baked unhealthy.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

struct App {
    version: String,
    healthy: bool,
    greeting: String,
    instance: String,
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

fn answer(app: &App, stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/health" if app.healthy => ("200 OK", "ok\n".to_string()),
        "/health" => (
            "500 Internal Server Error",
            "unhealthy by design\n".to_string(),
        ),
        _ => (
            "200 OK",
            format!(
                "{} from {} on {}\n",
                app.greeting, app.version, app.instance
            ),
        ),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn main() -> ExitCode {
    let manifest = std::fs::read_to_string("app.toml").unwrap_or_default();
    let app = App {
        version: field(&manifest, "version").unwrap_or("unknown").to_string(),
        healthy: field(&manifest, "healthy") != Some("false"),
        greeting: std::env::var("GREETING").unwrap_or_else(|_| "hello".into()),
        instance: std::env::var("SLIPWAY_INSTANCE_ID").unwrap_or_default(),
    };
    let ip = std::env::var("SLIPWAY_PRIVATE_IP").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = match TcpListener::bind(format!("{ip}:{port}")) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("slipway-sample-app: cannot listen on {ip}:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = std::sync::Arc::new(app);
    for stream in listener.incoming().flatten() {
        let app = app.clone();
        std::thread::spawn(move || {
            let _ = answer(&app, stream);
        });
    }
    ExitCode::SUCCESS
}
