//! `slipway-sample-app`: the small HTTP app baked into the dev releases.
//!
//! Reads `app.toml` (version, healthy, schema, migration) from its working
//! directory (the image root) and listens on `$SLIPWAY_PRIVATE_IP:$PORT`.
//! `GET /` answers with the version and the schema its data store has;
//! `GET /health` answers 200, or 500 in a release baked unhealthy, or once
//! `$SAMPLE_HEALTHY_FOR` seconds have passed since it started (an instance
//! that sickens after taking traffic; `GET /` keeps answering).
//!
//! `slipway-sample-app migrate` is the release's migration: it brings the data
//! store (`$HELLO_DB`, a plain file holding `schema = N`) up to the release's
//! schema, printing what it does, or fails as a release baked with
//! `migration = "fail"` does.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Instant;

struct App {
    version: String,
    healthy: bool,
    /// When its health check starts failing, if ever.
    sickens_at: Option<std::time::Instant>,
    greeting: String,
    instance: String,
    /// The data store's file, if the project has one here.
    store: Option<String>,
}

/// The schema version a data store file holds; 0 before any migration.
fn schema_of(store: &str) -> u32 {
    std::fs::read_to_string(store)
        .ok()
        .and_then(|text| field(&text, "schema").and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// The release's migration: the store up to the release's schema.
fn migrate(manifest: &str) -> ExitCode {
    let Ok(store) = std::env::var("HELLO_DB") else {
        eprintln!("no HELLO_DB: the project has no data store in this environment");
        return ExitCode::from(2);
    };
    // Each run leaves its start and end in `STORE.runs`, so tests can tell
    // whether two ever overlapped.
    let log_run = |what: &str| {
        use std::io::Write;
        let now = slipway_domain::clock::Clock::now(&slipway_domain::clock::SystemClock);
        let line = format!("{what} {now} {}\n", std::process::id());
        let _ = std::path::Path::new(&store)
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all);
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{store}.runs"))
            .and_then(|mut f| f.write_all(line.as_bytes()));
    };
    log_run("start");
    let exit = run_migration(manifest, &store);
    log_run("end");
    exit
}

fn run_migration(manifest: &str, store: &str) -> ExitCode {
    let target: u32 = field(manifest, "schema")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let current = schema_of(store);
    println!("migrating {store}: schema {current} -> {target}");
    // A slow migration, for tests of what waits for it.
    if let Some(seconds) = std::env::var("SAMPLE_MIGRATION_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        println!("copying rows for {seconds}s");
        std::thread::sleep(std::time::Duration::from_secs(seconds));
    }
    if field(manifest, "migration") == Some("fail") {
        println!("adding column greeting_style");
        eprintln!("ERROR: column \"greeting_style\" of relation \"greetings\" already exists");
        return ExitCode::from(3);
    }
    if current >= target {
        println!("schema {current} is current: nothing to do");
        return ExitCode::SUCCESS;
    }
    for step in current + 1..=target {
        println!("applying schema {step}");
    }
    let written = std::path::Path::new(store)
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            let partial = format!("{store}.partial");
            std::fs::write(&partial, format!("schema = {target}\n"))?;
            std::fs::rename(&partial, store)
        });
    match written {
        Ok(()) => {
            println!("schema is now {target}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write {store}: {e}");
            ExitCode::FAILURE
        }
    }
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
        "/health" if app.healthy && app.sickens_at.is_none_or(|at| Instant::now() < at) => {
            ("200 OK", "ok\n".to_string())
        }
        "/health" => (
            "500 Internal Server Error",
            "unhealthy by design\n".to_string(),
        ),
        _ => (
            "200 OK",
            format!(
                "{} from {} on {}{}\n",
                app.greeting,
                app.version,
                app.instance,
                app.store
                    .as_deref()
                    .map(|store| format!(" (schema {})", schema_of(store)))
                    .unwrap_or_default()
            ),
        ),
    };
    // Requests other than the health check's, as an app's access log would.
    if !path.starts_with("/health") {
        println!("{} {path} {}", app.version, &status[..3]);
    }
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
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        return migrate(&manifest);
    }
    // A release that cannot start, for the tests: it says why and exits.
    if let Ok(why) = std::env::var("SAMPLE_EXIT") {
        println!("slipway-sample-app: starting");
        eprintln!("slipway-sample-app: cannot start: {why}");
        return ExitCode::FAILURE;
    }
    let app = App {
        store: std::env::var("HELLO_DB").ok(),
        version: field(&manifest, "version").unwrap_or("unknown").to_string(),
        healthy: field(&manifest, "healthy") != Some("false"),
        sickens_at: std::env::var("SAMPLE_HEALTHY_FOR")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(|secs| Instant::now() + std::time::Duration::from_secs(secs)),
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
    println!(
        "slipway-sample-app {} listening on {ip}:{port}",
        app.version
    );
    let app = std::sync::Arc::new(app);
    for stream in listener.incoming().flatten() {
        let app = app.clone();
        std::thread::spawn(move || {
            let _ = answer(&app, stream);
        });
    }
    ExitCode::SUCCESS
}
